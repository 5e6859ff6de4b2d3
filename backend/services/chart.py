"""The stats chart as a PNG: jobs per day by final status, retries per day by cause, billed
instance-hours per day by type, and each training plan's instance-hours used against bought.

Drawn here, in pure Python (an RGB raster, a 5x7 bitmap font, ``zlib`` for the PNG), so no
chart library ships in any Lambda artifact: matplotlib and numpy were three quarters of a
169 MB function for one picture. :func:`render` returns the PNG *and* the series read back from
the bars it drew (each bar keeps its value, as a plotting library's patch does), so tests check
the data the picture shows rather than trusting the input; tests/unit/test_stats_chart.py also
decodes the PNG and finds each bar's colour where the bar should be.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

JOB_COLORS = {"Completed": "#2e7d32", "Failed": "#c62828", "Stopped": "#757575", "Unfinished": "#90caf9"}
CAUSE_COLORS = {
    "capacity": "#ef6c00",
    "quota": "#6a1b9a",
    "algorithm": "#d81b60",
    "throttling": "#fbc02d",
    "unknown": "#9e9e9e",
    "user": "#5d4037",
    "stopped": "#424242",
    "plan_ended": "#afb42b",
    "manual": "#1565c0",
}
PLAN_COLORS = {"used": "#00695c", "unused": "#b2dfdb"}
TYPE_COLORS = ("#00838f", "#8e24aa", "#f4511e", "#3949ab", "#7cb342", "#6d4c41", "#c0ca33", "#5e35b1")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MAX_TICKS = 16
_FALLBACK_COLOR = "#607d8b"
_WHITE, _INK, _GRID, _MUTED = (255, 255, 255), (33, 33, 33), (224, 224, 224), (117, 117, 117)

# A 5x7 bitmap font (rows top to bottom, bit 4 the leftmost pixel); text is drawn upper-case.
_FONT = {
    " ": (0, 0, 0, 0, 0, 0, 0),
    "0": (14, 17, 19, 21, 25, 17, 14), "1": (4, 12, 4, 4, 4, 4, 14), "2": (14, 17, 1, 2, 4, 8, 31),
    "3": (31, 2, 4, 2, 1, 17, 14), "4": (2, 6, 10, 18, 31, 2, 2), "5": (31, 16, 30, 1, 1, 17, 14),
    "6": (6, 8, 16, 30, 17, 17, 14), "7": (31, 1, 2, 4, 8, 8, 8), "8": (14, 17, 17, 14, 17, 17, 14),
    "9": (14, 17, 17, 15, 1, 2, 12),
    "A": (14, 17, 17, 17, 31, 17, 17), "B": (30, 17, 17, 30, 17, 17, 30), "C": (14, 17, 16, 16, 16, 17, 14),
    "D": (28, 18, 17, 17, 17, 18, 28), "E": (31, 16, 16, 30, 16, 16, 31), "F": (31, 16, 16, 30, 16, 16, 16),
    "G": (14, 17, 16, 23, 17, 17, 15), "H": (17, 17, 17, 31, 17, 17, 17), "I": (14, 4, 4, 4, 4, 4, 14),
    "J": (7, 2, 2, 2, 2, 18, 12), "K": (17, 18, 20, 24, 20, 18, 17), "L": (16, 16, 16, 16, 16, 16, 31),
    "M": (17, 27, 21, 21, 17, 17, 17), "N": (17, 17, 25, 21, 19, 17, 17), "O": (14, 17, 17, 17, 17, 17, 14),
    "P": (30, 17, 17, 30, 16, 16, 16), "Q": (14, 17, 17, 17, 21, 18, 13), "R": (30, 17, 17, 30, 20, 18, 17),
    "S": (15, 16, 16, 14, 1, 1, 30), "T": (31, 4, 4, 4, 4, 4, 4), "U": (17, 17, 17, 17, 17, 17, 14),
    "V": (17, 17, 17, 17, 17, 10, 4), "W": (17, 17, 17, 21, 21, 21, 10), "X": (17, 17, 10, 4, 10, 17, 17),
    "Y": (17, 17, 17, 10, 4, 4, 4), "Z": (31, 1, 2, 4, 8, 16, 31),
    "-": (0, 0, 0, 31, 0, 0, 0), ".": (0, 0, 0, 0, 0, 12, 12), ":": (0, 12, 12, 0, 12, 12, 0),
    "/": (0, 1, 2, 4, 8, 16, 0), "(": (2, 4, 8, 8, 8, 4, 2), ")": (8, 4, 2, 2, 2, 4, 8),
    ",": (0, 0, 0, 0, 12, 4, 8), "=": (0, 0, 31, 0, 31, 0, 0), "%": (24, 25, 2, 4, 8, 19, 3),
    "_": (0, 0, 0, 0, 0, 0, 31), "+": (0, 4, 4, 31, 4, 4, 0), "·": (0, 0, 0, 4, 0, 0, 0),
    "?": (14, 17, 1, 2, 4, 0, 4), "#": (10, 10, 31, 10, 31, 10, 10), "@": (14, 17, 23, 21, 23, 16, 15),
}


@dataclass(frozen=True)
class Chart:
    png: bytes
    # What the bars show, read back from them: {"days": [...], "jobs": {series: [...]},
    # "retries": {cause: [...]}}.
    series: dict[str, Any]


@dataclass(frozen=True)
class Bar:
    """One drawn bar segment: its series, day, value, and the pixels it covers."""

    series: str
    day: int
    value: float
    x: int
    y: int
    width: int
    height: int
    color: tuple[int, int, int]


@dataclass
class Panel:
    """One bar chart: its plotting area in pixels and the bars drawn in it."""

    title: str
    ylabel: str
    left: int
    top: int
    width: int
    height: int
    bars: list[Bar] = field(default_factory=list)
    legend: list[str] = field(default_factory=list)


class Canvas:
    """An RGB raster with the few primitives a bar chart needs."""

    def __init__(self, width: int, height: int, background: tuple[int, int, int] = _WHITE) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(background) * (width * height))

    def fill(self, x: int, y: int, width: int, height: int, color: tuple[int, int, int]) -> None:
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(self.width, x + width), min(self.height, y + height)
        if x1 <= x0 or y1 <= y0:
            return
        run = bytes(color) * (x1 - x0)
        for row in range(y0, y1):
            start = (row * self.width + x0) * 3
            self.pixels[start : start + len(run)] = run

    def text(self, x: int, y: int, text: str, color: tuple[int, int, int] = _INK, scale: int = 2) -> int:
        """Draw ``text`` with its top-left corner at (x, y); returns the x after it."""
        for char in text.upper():
            glyph = _FONT.get(char, _FONT["?"])
            for row, bits in enumerate(glyph):
                for column in range(5):
                    if bits & (16 >> column):
                        self.fill(x + column * scale, y + row * scale, scale, scale, color)
            x += 6 * scale
        return x

    def png(self) -> bytes:
        stride = self.width * 3
        raw = b"".join(b"\x00" + bytes(self.pixels[row * stride : (row + 1) * stride]) for row in range(self.height))
        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")


def text_width(text: str, scale: int = 2) -> int:
    return len(text) * 6 * scale


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _rgb(color: str) -> tuple[int, int, int]:
    value = color.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def render(series: dict[str, Any], *, width: float = 10.0, height: float = 6.5, dpi: int = 100) -> Chart:
    """Draw ``series`` (see :func:`backend.services.stats.chart_series`) as a PNG of
    ``width`` x ``height`` inches at ``dpi``."""
    days: list[str] = list(series["days"])
    canvas, panels = draw(series, width=width, height=height, dpi=dpi)
    read: dict[str, Any] = {"days": days, "jobs": _read_back(panels[0], days), "retries": _read_back(panels[1], days)}
    if series.get("hours"):
        read["hours"] = _read_back(panels[2], days)
    if series.get("plans"):
        names = list(series["plans"]["names"])
        read["plans"] = {"names": names, **_read_back(panels[-1], names)}
    return Chart(png=canvas.png(), series=read)


def draw(series: dict[str, Any], *, width: float = 10.0, height: float = 6.5, dpi: int = 100) -> tuple[Canvas, tuple[Panel, ...]]:
    """The raster and its panels (with the bars drawn in them): jobs, retries, billed
    instance-hours by type when ``series`` has ``hours``, and last, when it has ``plans``, one
    bar per training plan: instance-hours used, with what was bought but not used on top (the
    bar's height is what was bought). Panels share the height."""
    days: list[str] = list(series["days"])
    hours = series.get("hours")
    plans = series.get("plans")
    count = 2 + bool(hours) + bool(plans)
    canvas = Canvas(round(width * dpi), round(height * dpi))
    canvas.text(16, 12, str(series.get("title", "Trainbot jobs")), scale=2)
    left, right, top, bottom = 80, 16, 52, 62
    gap = 36
    panel_height = (canvas.height - top - bottom - gap * (count - 1)) // count
    plot_width = canvas.width - left - right
    jobs = Panel("Jobs per day by final status", "jobs created", left, top, plot_width, panel_height)
    retries = Panel("Retries per day by cause", "retries", left, top + panel_height + gap, plot_width, panel_height)
    _stacked(canvas, jobs, days, series["jobs"], JOB_COLORS)
    _stacked(canvas, retries, days, series["retries"], CAUSE_COLORS)
    panels: tuple[Panel, ...] = (jobs, retries)
    if hours:
        spent = Panel("Billed instance-hours per day by instance type", "inst-hours", left, top + 2 * (panel_height + gap), plot_width, panel_height)
        colors = {kind: TYPE_COLORS[i % len(TYPE_COLORS)] for i, kind in enumerate(hours)}
        _stacked(canvas, spent, days, hours, colors)
        panels = (jobs, retries, spent)
    _x_ticks(canvas, panels[-1], days)
    if plans:
        names = [str(name) for name in plans["names"]]
        used = Panel(
            "Training plans: instance-hours used, and unused of those bought", "plan-hours", left, top + len(panels) * (panel_height + gap), plot_width, panel_height
        )
        _stacked(canvas, used, names, {"used": plans["used"], "unused": plans["unused"]}, PLAN_COLORS)
        _x_ticks(canvas, used, names, shorten=False)
        panels = (*panels, used)
    return canvas, panels


def _stacked(canvas: Canvas, panel: Panel, days: list[str], values: dict[str, list[float]], colors: dict[str, str]) -> None:
    totals = [0.0] * len(days)
    for counts in values.values():
        totals = [t + float(c) for t, c in zip(totals, counts, strict=True)]
    top_value = _nice_max(max([1.0, *totals]) * 1.3)  # headroom for the legend
    scale = panel.height / top_value
    step = _tick_step(top_value)
    tick = 0.0
    while tick <= top_value + 1e-9:
        y = panel.top + panel.height - round(tick * scale)
        canvas.fill(panel.left, y, panel.width, 1, _GRID)
        label = f"{tick:g}"
        canvas.text(panel.left - 8 - text_width(label, 1), y - 3, label, _MUTED, scale=1)
        tick += step
    canvas.fill(panel.left, panel.top, 1, panel.height, _MUTED)
    canvas.fill(panel.left, panel.top + panel.height, panel.width, 1, _MUTED)
    canvas.text(panel.left, panel.top - 16, panel.title, _INK, scale=1)
    canvas.text(4, panel.top + panel.height // 2, panel.ylabel[:12], _MUTED, scale=1)

    slot = panel.width / max(1, len(days))
    bar_width = max(1, round(slot * 0.8))
    bottoms = [0.0] * len(days)
    for name, counts in values.items():
        color = _rgb(colors.get(name, _FALLBACK_COLOR))
        panel.legend.append(name)
        for day, count in enumerate(counts):
            value = float(count)
            base = panel.top + panel.height - round(bottoms[day] * scale)
            pixels = round((bottoms[day] + value) * scale) - round(bottoms[day] * scale)
            x = panel.left + round(day * slot + (slot - bar_width) / 2)
            bar = Bar(name, day, value, x, base - pixels, bar_width, pixels, color)
            panel.bars.append(bar)
            if pixels > 0:
                canvas.fill(bar.x, bar.y, bar.width, bar.height, color)
            bottoms[day] += value
    _legend(canvas, panel, colors)
    if not days:
        message = "no jobs in this window"
        canvas.text(panel.left + (panel.width - text_width(message)) // 2, panel.top + panel.height // 2, message, _MUTED)


def _legend(canvas: Canvas, panel: Panel, colors: dict[str, str]) -> None:
    x, y = panel.left + 8, panel.top + 6
    for name in panel.legend:
        canvas.fill(x, y, 10, 10, _rgb(colors.get(name, _FALLBACK_COLOR)))
        x = canvas.text(x + 14, y + 2, name, _INK, scale=1) + 12


def _x_ticks(canvas: Canvas, panel: Panel, days: list[str], *, shorten: bool = True) -> None:
    """Labels under ``panel``'s bars: days without their year (``shorten``), or names as they are."""
    slot = panel.width / max(1, len(days))
    every = max(1, -(-len(days) // _MAX_TICKS))
    for index in range(0, len(days), every):
        label = days[index][5:] if shorten else days[index][:24]
        center = panel.left + round(index * slot + slot / 2)
        canvas.fill(center, panel.top + panel.height, 1, 4, _MUTED)
        canvas.text(center - text_width(label, 1) // 2, panel.top + panel.height + 8, label, _MUTED, scale=1)


def _nice_max(value: float) -> float:
    step = _tick_step(value)
    return step * -(-value // step)


def _tick_step(value: float) -> float:
    """An integer step giving about five gridlines up to ``value``."""
    raw = max(1.0, value / 5)
    magnitude = 10 ** (len(str(int(raw))) - 1)
    for multiple in (1, 2, 5, 10):
        if multiple * magnitude >= raw:
            return float(multiple * magnitude)
    return float(10 * magnitude)


def _read_back(panel: Panel, days: list[str]) -> dict[str, list[float]]:
    """Each bar series as drawn: its name and, per day, the value of the bar drawn there."""
    out: dict[str, list[float]] = {name: [0.0] * len(days) for name in panel.legend}
    for bar in panel.bars:
        out[bar.series][bar.day] = bar.value
    return out


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; ValueError if ``png`` is not a PNG."""
    if not png.startswith(PNG_SIGNATURE) or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")

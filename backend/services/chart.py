"""The stats chart, drawn with matplotlib: stacked bars per day, one panel per group of series.

Only the chart function (its own artifact carries matplotlib, template.yaml ``ChartFunction``),
``trainbot stats --png`` and local mode import this module; the bot, launcher and monitor never
do (tests/unit/test_import_boundaries.py), so their artifacts stay small and their cold starts
fast. The figure is drawn on matplotlib's Agg canvas directly (``Figure`` + ``FigureCanvasAgg``,
no pyplot): no global state, no GUI backend, safe in threads.

:func:`render` is the one entry point: a :class:`backend.services.stats.Stats` in, a
:class:`Chart` out, whose ``series`` are read back from the drawn bars (each patch's height and
position), not copied from the input, so a test of ``series`` checks what the picture shows.
The panels are :func:`backend.services.stats.chart_series`'s groups in :data:`PANELS` order
(a group it adds and this table does not name is drawn after them, titled by its key).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from backend.services.stats import DEFAULT_DAYS, chart_series

if TYPE_CHECKING:
    from datetime import datetime

    from matplotlib.axes import Axes

    from backend.domain.model import Owner
    from backend.ports import JobHistory
    from backend.services.stats import Stats

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


@dataclass(frozen=True)
class PanelStyle:
    title: str
    ylabel: str
    colors: Mapping[str, str]
    whole_numbers: bool  # counts: integer ticks only


# The panels in the order they are drawn, by chart_series' key.
PANELS: dict[str, PanelStyle] = {
    "jobs": PanelStyle("Jobs per day by outcome", "jobs created", JOB_COLORS, True),
    "retries": PanelStyle("Retries per day by cause", "retries", CAUSE_COLORS, True),
    "hours": PanelStyle("Billed instance-hours per day by instance type", "instance-hours", {}, False),
}
# Not a panel over the days: "plans" is drawn last, on its own axis (one bar per training plan).
NOT_PANELS = frozenset({"days", "title", "plans"})
PLANS_STYLE = PanelStyle("Training plans: instance-hours used, and unused of those bought", "plan-hours", PLAN_COLORS, False)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WIDTH_INCHES = 11.0
PANEL_INCHES = 2.4
DPI = 110
MAX_DAY_LABELS = 14  # more days than this: every n-th day is labelled, so labels never touch
EMPTY_NOTE = "nothing in this window"


@dataclass(frozen=True)
class Chart:
    png: bytes
    # What the bars show, read back from them: {"days": [...], "<panel>": {series: [per day]}}.
    series: dict[str, Any]
    figure: Figure  # kept for tests that measure the layout (labels, legends)


def render(stats: Stats) -> Chart:
    """The chart of ``stats``: jobs per day by outcome, retries per day by cause, billed
    instance-hours per day by type (when anything was billed)."""
    return render_series(chart_series(stats))


def chart_png(
    store: JobHistory, *, days: int = DEFAULT_DAYS, now: datetime, owner: Owner | str | None = None, preset: str | None = None
) -> bytes:
    """One call for a PNG of the last ``days`` days (the local page's ``/stats.png``)."""
    from backend.services.stats import collect

    return render(collect(store, owner, days, preset, now)).png


def render_series(series: Mapping[str, Any]) -> Chart:
    """Draw ``series`` (the shape of :func:`backend.services.stats.chart_series`) as a PNG."""
    figure = draw(series)
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)  # type: ignore[no-untyped-call]  # matplotlib leaves it untyped
    return Chart(png=buffer.getvalue(), series=read_back(figure, list(series["days"])), figure=figure)


def panel_keys(series: Mapping[str, Any]) -> list[str]:
    known = [key for key in PANELS if series.get(key)]
    return known + [key for key in series if key not in PANELS and key not in NOT_PANELS and series.get(key)]


def draw(series: Mapping[str, Any]) -> Figure:
    """The figure: one panel (stacked bars) per group, days along a shared x axis, each panel
    with its title, y label and legend; the legends stand right of the plots, never over bars."""
    days: list[str] = list(series["days"])
    keys = panel_keys(series)
    plans = series.get("plans")
    rows = len(keys) + bool(plans)
    figure = Figure(figsize=(WIDTH_INCHES, 1.1 + PANEL_INCHES * rows), dpi=DPI, layout="constrained")
    figure.suptitle(str(series.get("title") or "Trainbot jobs"), fontsize=14, fontweight="bold")
    grid = figure.add_gridspec(rows, 1)
    first: Axes | None = None
    axes: list[Axes] = []
    for row, key in enumerate(keys):
        ax = figure.add_subplot(grid[row, 0], sharex=first)
        first = first or ax
        style = PANELS.get(key) or PanelStyle(key.replace("_", " ").capitalize(), key, {}, False)
        ax.set_gid(key)
        _stacked(ax, days, series[key], style)
        axes.append(ax)
    for ax in axes[:-1]:
        ax.tick_params(labelbottom=False)
    if axes:
        _day_ticks(axes[-1], days)
    if plans:
        # One bar per plan (its own x axis): used, with what was bought but not used on top.
        ax = figure.add_subplot(grid[rows - 1, 0])
        ax.set_gid("plans")
        names = [str(name) for name in plans["names"]]
        _stacked(ax, names, {"used": plans["used"], "unused": plans["unused"]}, PLANS_STYLE)
        ax.set_xticks(range(len(names)), names)
        ax.set_xlim(-0.6, max(len(names), 1) - 0.4)
    return figure


def _stacked(ax: Axes, days: list[str], values: Mapping[str, list[float]], style: PanelStyle) -> None:
    bottoms = [0.0] * len(days)
    shown = []
    # Thin white edges part stacked segments; past a few weeks the bars are too thin for them.
    edge = 0.5 if len(days) <= 60 else 0.0
    for index, (name, counts) in enumerate(values.items()):
        heights = [float(c) for c in counts]
        color = style.colors.get(name) or TYPE_COLORS[index % len(TYPE_COLORS)]
        # A bar only where there is something: a year of mostly empty days stays cheap to draw,
        # and a day without a bar reads back as 0.
        days_with = [day for day, height in enumerate(heights) if height]
        bars = ax.bar(
            days_with, [heights[d] for d in days_with], width=0.8, bottom=[bottoms[d] for d in days_with],
            label=name, color=color, edgecolor="white", linewidth=edge,
        )
        if days_with:
            shown.append(bars)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    ax.set_title(style.title, loc="left", fontsize=11)
    ax.set_ylabel(style.ylabel)
    top = max([0.0, *bottoms])
    ax.set_ylim(0, top * 1.1 if top else 1)
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5, integer=style.whole_numbers))
    ax.grid(axis="y", color="#e0e0e0", linewidth=0.8)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    if shown:
        # Only the series with something to show; outside the plot, so it hides no bar.
        ax.legend(handles=shown, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=9)
    else:
        ax.text(0.5, 0.5, EMPTY_NOTE, transform=ax.transAxes, ha="center", va="center", color="#757575")


def _day_ticks(ax: Axes, days: list[str]) -> None:
    """One label per day up to MAX_DAY_LABELS days, else every n-th day, so labels never meet."""
    every = max(1, math.ceil(len(days) / MAX_DAY_LABELS))
    ticks = list(range(0, len(days), every))
    ax.set_xticks(ticks, [_day_label(days[i]) for i in ticks])
    ax.set_xlim(-0.6, max(len(days), 1) - 0.4)


def _day_label(day: str) -> str:
    """``2026-11-02`` → ``Nov 02``."""
    from datetime import date

    return date.fromisoformat(day).strftime("%b %d")


def read_back(figure: Figure, days: list[str]) -> dict[str, Any]:
    """Each panel's series as drawn: per series (a bar container's label) and day (the bar's
    centre), the height of the bar there."""
    out: dict[str, Any] = {"days": days}
    for ax in figure.axes:
        key = ax.get_gid()
        if not key:
            continue
        # The plans panel's bars stand one per plan (its tick labels), not one per day.
        slots = [tick.get_text() for tick in ax.get_xticklabels()] if key == "plans" else days
        panel: dict[str, Any] = {"names": slots} if key == "plans" else {}
        for container in ax.containers:
            if not isinstance(container, BarContainer):
                continue
            drawn = [0.0] * len(slots)
            for patch in container.patches:
                day = round(patch.get_x() + patch.get_width() / 2)
                drawn[day] = float(patch.get_height())
            panel[str(container.get_label())] = drawn
        out[key] = panel
    return out


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; ValueError if ``png`` is not a PNG."""
    if not png.startswith(PNG_SIGNATURE) or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")

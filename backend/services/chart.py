"""The stats chart as a PNG: jobs per day by final status, and retries per day by cause.

matplotlib's object API with the Agg canvas (no pyplot, so no global figure state and no GUI
backend); this module is imported only when a chart is drawn. :func:`render` returns the PNG
*and* the series read back from the bars it drew, so tests check the data the picture shows
rather than its pixels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
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
    "manual": "#1565c0",
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MAX_TICKS = 16


@dataclass(frozen=True)
class Chart:
    png: bytes
    # What the bars show, read back from them: {"days": [...], "jobs": {series: [...]},
    # "retries": {cause: [...]}}.
    series: dict[str, Any]


def render(series: dict[str, Any], *, width: float = 10.0, height: float = 6.5, dpi: int = 100) -> Chart:
    """Draw ``series`` (see :func:`backend.services.stats.chart_series`) as a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    days: list[str] = list(series["days"])
    positions = list(range(len(days)))
    figure = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    jobs_axes, retries_axes = figure.subplots(2, 1, sharex=True)
    figure.suptitle(series.get("title", "Trainbot jobs"))
    _stacked(jobs_axes, positions, series["jobs"], JOB_COLORS)
    jobs_axes.set_ylabel("jobs created")
    jobs_axes.set_title("Jobs per day by final status", fontsize=10, loc="left")
    _stacked(retries_axes, positions, series["retries"], CAUSE_COLORS)
    retries_axes.set_ylabel("retries")
    retries_axes.set_title("Retries per day by cause", fontsize=10, loc="left")
    step = max(1, -(-len(days) // _MAX_TICKS))
    retries_axes.set_xticks(positions[::step], [d[5:] for d in days[::step]], rotation=45, ha="right")
    for axes in (jobs_axes, retries_axes):
        axes.yaxis.get_major_locator().set_params(integer=True)
        axes.grid(axis="y", alpha=0.3)
        if axes.containers:
            axes.legend(loc="upper left", fontsize=8, ncols=4, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return Chart(
        png=buffer.getvalue(),
        series={"days": days, "jobs": _read_back(jobs_axes, days), "retries": _read_back(retries_axes, days)},
    )


def _stacked(axes, positions: list[int], values: dict[str, list[float]], colors: dict[str, str]) -> None:  # noqa: ANN001
    bottom = [0.0] * len(positions)
    for name, counts in values.items():
        axes.bar(positions, counts, bottom=bottom, label=name, color=colors.get(name), width=0.8)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    axes.set_ylim(0, max([1.0, *bottom]) * 1.3)  # headroom for the legend
    if not positions:
        axes.text(0.5, 0.5, "no jobs in this window", ha="center", va="center", transform=axes.transAxes)


def _read_back(axes, days: list[str]) -> dict[str, list[float]]:  # noqa: ANN001
    """Each bar series as drawn: its label and, per day (from the bar's x position), its height."""
    out: dict[str, list[float]] = {}
    for container in axes.containers:
        heights = [0.0] * len(days)
        for patch in container.patches:
            heights[round(patch.get_x() + patch.get_width() / 2)] = float(patch.get_height())
        out[container.get_label()] = heights
    return out


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; ValueError if ``png`` is not a PNG."""
    if not png.startswith(PNG_SIGNATURE) or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")

"""The stats chart: a valid PNG whose bars show the expected series (checked from the data
read back off the drawn bars, not from pixels)."""

from __future__ import annotations

from backend.services import stats
from backend.services.chart import PNG_SIGNATURE, png_size, render
from tests.stats_history import EXPECTED, NOW, known_history


def _stats(days: int = 7, jobs=None):
    return stats.compute_stats(known_history() if jobs is None else jobs, stats.Window.last_days(days, NOW), NOW)


def test_the_chart_is_a_png_showing_jobs_per_day_by_status_and_retries_by_cause():
    chart = stats.render_chart(_stats())

    assert chart.png.startswith(PNG_SIGNATURE)
    assert png_size(chart.png) == (1000, 650)
    assert chart.series["days"] == EXPECTED["days"]
    assert chart.series["jobs"] == EXPECTED["jobs"]
    drawn_retries = {cause: values for cause, values in chart.series["retries"].items() if any(values)}
    assert drawn_retries == EXPECTED["retries_per_day"]


def test_the_series_are_read_back_from_the_bars_so_a_wrong_drawing_would_show():
    series = {"days": ["2026-11-01", "2026-11-02"], "jobs": {"Completed": [3, 0], "Failed": [1, 2]}, "retries": {"capacity": [0, 5]}}
    chart = render(series)
    assert chart.series == {"days": series["days"], "jobs": {"Completed": [3.0, 0.0], "Failed": [1.0, 2.0]}, "retries": {"capacity": [0.0, 5.0]}}


def test_an_empty_window_still_draws_a_valid_chart_of_zeros():
    chart = stats.render_chart(_stats(days=2, jobs=[]))
    assert png_size(chart.png)[0] > 0
    assert all(v == [0.0, 0.0, 0.0] for v in chart.series["jobs"].values())


def test_png_size_refuses_what_is_not_a_png():
    import pytest

    with pytest.raises(ValueError):
        png_size(b"GIF89a....")


def _decode(png: bytes) -> tuple[int, int, bytes]:
    """(width, height, RGB rows) of an 8-bit RGB PNG with filter 0 rows, as chart.py writes."""
    import struct
    import zlib

    width, height = png_size(png)
    offset, data = 8, b""
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind = png[offset + 4 : offset + 8]
        if kind == b"IDAT":
            data += png[offset + 8 : offset + 8 + length]
        offset += 12 + length
    raw = zlib.decompress(data)
    stride = width * 3 + 1
    assert all(raw[row * stride] == 0 for row in range(height))
    return width, height, b"".join(raw[row * stride + 1 : (row + 1) * stride] for row in range(height))


def test_each_bar_is_painted_in_its_series_colour_where_it_stands_and_taller_values_are_taller_bars():
    from backend.services.chart import JOB_COLORS, _rgb

    series = {"days": ["2026-11-01", "2026-11-02"], "jobs": {"Completed": [3, 0], "Failed": [1, 6]}, "retries": {"capacity": [0, 5]}}
    chart = render(series)
    width, _height, pixels = _decode(chart.png)

    def colour_at(x: int, y: int) -> tuple[int, int, int]:
        start = (y * width + x) * 3
        return tuple(pixels[start : start + 3])

    from backend.services.chart import draw

    _canvas, panels = draw(series)
    drawn = [bar for panel in panels for bar in panel.bars if bar.value]
    assert {(bar.series, bar.day, bar.value) for bar in drawn} == {("Completed", 0, 3.0), ("Failed", 0, 1.0), ("Failed", 1, 6.0), ("capacity", 1, 5.0)}
    for bar in drawn:
        assert colour_at(bar.x + bar.width // 2, bar.y + bar.height // 2) == bar.color
    heights = {(bar.series, bar.day): bar.height for bar in drawn}
    assert abs(heights[("Failed", 1)] - 2 * heights[("Completed", 0)]) <= 1
    assert abs(heights[("Completed", 0)] - 3 * heights[("Failed", 0)]) <= 2
    assert _rgb(JOB_COLORS["Failed"]) == next(bar.color for bar in drawn if bar.series == "Failed")


def test_the_plans_panel_shows_each_plans_hours_used_with_the_unused_bought_hours_on_top():
    from backend.services.chart import PLAN_COLORS, _rgb, draw

    series = {
        "days": ["2026-11-01", "2026-11-02"],
        "jobs": {"Completed": [1, 1]},
        "retries": {"capacity": [0, 0]},
        "plans": {"names": ["p5-dec", "idle"], "used": [30.0, 0.0], "unused": [10.0, 40.0]},
    }
    chart = render(series)
    assert chart.series["plans"] == {"names": ["p5-dec", "idle"], "used": [30.0, 0.0], "unused": [10.0, 40.0]}
    assert png_size(chart.png) == (1000, 650)

    _canvas, panels = draw(series)
    plans = panels[-1]
    assert plans.title.startswith("Training plans") and plans.legend == ["used", "unused"]
    bars = {(bar.series, bar.day): bar for bar in plans.bars}
    # Both plans bought 40 h: their bars stand equally tall, p5-dec's three quarters used.
    assert bars[("used", 0)].height + bars[("unused", 0)].height == bars[("unused", 1)].height
    assert abs(bars[("used", 0)].height - 3 * bars[("unused", 0)].height) <= 2
    width, _height, pixels = _decode(chart.png)
    for bar in (bars[("used", 0)], bars[("unused", 1)]):
        start = ((bar.y + bar.height // 2) * width + bar.x + bar.width // 2) * 3
        assert tuple(pixels[start : start + 3]) == bar.color == _rgb(PLAN_COLORS[bar.series])

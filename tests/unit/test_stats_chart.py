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

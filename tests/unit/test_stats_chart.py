"""The stats chart drawn with matplotlib: its series are read back from the drawn bars (each
patch's height and position), never copied from the input, and its labels are laid out so that
none overlaps another, for a week and for a year."""

from __future__ import annotations

import itertools

import pytest

from backend.services import stats
from backend.services.chart import EMPTY_NOTE, PANELS, PNG_SIGNATURE, png_size, read_back, render, render_series
from tests.stats_history import EXPECTED, NOW, known_history


def _stats(days: int = 7, jobs=None):
    return stats.compute_stats(known_history() if jobs is None else jobs, stats.Window.last_days(days, NOW), NOW)


def test_the_chart_is_a_png_whose_bars_show_jobs_per_day_by_outcome_and_retries_by_cause():
    chart = render(_stats())

    assert chart.png.startswith(PNG_SIGNATURE) and png_size(chart.png)[0] >= 1000
    assert chart.series["days"] == EXPECTED["days"]
    assert chart.series["jobs"] == EXPECTED["jobs"]
    drawn_retries = {cause: values for cause, values in chart.series["retries"].items() if any(values)}
    assert drawn_retries == EXPECTED["retries_per_day"]


def test_the_series_are_read_back_from_the_patches_so_a_wrong_drawing_would_show():
    series = {"days": ["2026-11-01", "2026-11-02"], "jobs": {"Completed": [3, 0], "Failed": [1, 2]}, "retries": {"capacity": [0, 5]}}
    chart = render_series(series)
    assert {k: v for k, v in chart.series.items()} == {
        "days": series["days"], "jobs": {"Completed": [3.0, 0.0], "Failed": [1.0, 2.0]}, "retries": {"capacity": [0.0, 5.0]}
    }
    # Stacked: Failed stands on Completed, so a bar's bottom is the sum of those below it.
    (jobs,) = [ax for ax in chart.figure.axes if ax.get_gid() == "jobs"]
    completed, failed = jobs.containers
    assert [p.get_y() for p in failed.patches] == [3.0, 0.0]
    # What read_back reports is the figure's, not the input's: change a patch, and it says so.
    failed.patches[1].set_height(7)
    assert read_back(chart.figure, series["days"])["jobs"]["Failed"] == [1.0, 7.0]


def test_each_panel_has_its_title_y_label_and_a_legend_of_the_series_it_shows():
    chart = render(_stats())
    axes = {ax.get_gid(): ax for ax in chart.figure.axes if ax.get_gid()}
    assert list(axes) == ["jobs", "retries", "hours"]  # the known history bills hours: three panels
    for key, ax in axes.items():
        assert ax.get_title(loc="left") == PANELS[key].title and ax.get_ylabel() == PANELS[key].ylabel
        legend = [text.get_text() for text in ax.get_legend().get_texts()]
        shown = [name for name, values in chart.series[key].items() if any(values)]
        assert legend == shown, key
    assert chart.figure.get_suptitle().startswith("Trainbot jobs · everyone · ")


def test_an_empty_window_still_draws_a_valid_chart_of_zeros_and_says_so():
    chart = render(_stats(days=2, jobs=[]))
    assert png_size(chart.png)[0] > 0
    assert all(v == [0.0, 0.0, 0.0] for v in chart.series["jobs"].values())
    notes = [t.get_text() for ax in chart.figure.axes for t in ax.texts]
    assert notes and set(notes) == {EMPTY_NOTE}


def _boxes(chart):
    figure = chart.figure
    renderer = figure.canvas.get_renderer()
    return figure, renderer


@pytest.mark.parametrize("days", [1, 7, 30, 366])
def test_no_label_title_or_legend_overlaps_another_or_a_plot(days):
    history = [j for j in known_history(NOW)]
    chart = render(_stats(days=days, jobs=history))
    figure, renderer = _boxes(chart)
    axes = [ax for ax in figure.axes if ax.get_gid()]
    # Day labels along the bottom: a readable number, none touching its neighbour.
    labels = [t for t in axes[-1].get_xticklabels() if t.get_text()]
    assert 1 <= len(labels) <= 15
    extents = [t.get_window_extent(renderer) for t in labels]
    for left, right in itertools.pairwise(sorted(extents, key=lambda b: b.x0)):
        assert left.x1 < right.x0, (days, left, right)
    # Legends stand right of the plots; titles, plots and legends of different panels are apart.
    parts = []
    for ax in axes:
        plot = ax.get_window_extent(renderer)
        legend = ax.get_legend()
        if legend is not None:
            box = legend.get_window_extent(renderer)
            assert box.x0 >= plot.x1 - 1, (ax.get_gid(), box, plot)
            parts.append(box)
        parts.append(ax.title.get_window_extent(renderer))
        parts.append(plot)
    parts.append(figure._suptitle.get_window_extent(renderer))
    for a, b in itertools.combinations(parts, 2):
        assert not a.overlaps(b) or (a.x1 <= b.x0 + 1 or b.x1 <= a.x0 + 1 or a.y1 <= b.y0 + 1 or b.y1 <= a.y0 + 1), (a, b)
    # Everything drawn lies within the picture.
    whole = figure.bbox
    for part in [*parts, *extents]:
        assert part.x0 >= whole.x0 - 1 and part.x1 <= whole.x1 + 1 and part.y0 >= whole.y0 - 1 and part.y1 <= whole.y1 + 1


def test_png_size_refuses_what_is_not_a_png():
    with pytest.raises(ValueError):
        png_size(b"GIF89a....")


def test_the_plans_panel_shows_each_plans_hours_used_with_the_unused_bought_hours_on_top():
    """The last panel stands one bar per training plan on its own axis (not the days'): the
    hours used, and on top what was bought but not used, read back from the drawn patches."""
    from matplotlib.colors import to_hex

    from backend.services.chart import PLAN_COLORS

    series = {
        "days": ["2026-11-01", "2026-11-02"],
        "jobs": {"Completed": [1, 1]},
        "retries": {"capacity": [0, 0]},
        "plans": {"names": ["p5-dec", "idle"], "used": [30.0, 0.0], "unused": [10.0, 40.0]},
    }
    chart = render_series(series)
    assert chart.series["plans"] == {"names": ["p5-dec", "idle"], "used": [30.0, 0.0], "unused": [10.0, 40.0]}
    [ax] = [ax for ax in chart.figure.axes if ax.get_gid() == "plans"]
    assert ax.get_title(loc="left").startswith("Training plans")
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["used", "unused"]
    used, unused = [c for c in ax.containers]
    # Stacked: the unused part starts where the used part ends, in the plan colours.
    assert unused.patches[0].get_y() == used.patches[0].get_height() == 30.0
    assert to_hex(used.patches[0].get_facecolor()) == PLAN_COLORS["used"]
    assert to_hex(unused.patches[0].get_facecolor()) == PLAN_COLORS["unused"]
    # The plan names label its axis; the days' panels keep theirs.
    assert [t.get_text() for t in ax.get_xticklabels()] == ["p5-dec", "idle"]
    assert chart.series["jobs"]["Completed"] == [1.0, 1.0]

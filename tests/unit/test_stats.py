"""Stats computed from generated job histories whose answers are known (no I/O)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backend.domain.model import Owner
from backend.services import stats
from backend.services.stats import Window, compute_stats, percentile
from tests.stats_history import DAY, EXPECTED, HOUR, MIN, NOW, F, O, S, job_with, known_history


def _window(days: int = 7) -> Window:
    return Window.last_days(days, NOW)


def test_a_mixed_history_gives_the_answers_worked_out_by_hand():
    result = compute_stats(known_history(), _window(), NOW)

    assert result.total == EXPECTED["total"]
    assert result.by_status == EXPECTED["by_status"]
    assert result.finished == EXPECTED["finished"] and result.completed == 2
    assert result.success_rate == pytest.approx(EXPECTED["success_rate"])
    assert {k: v for k, v in result.retries_by_cause.items() if v} == EXPECTED["retries"]
    assert result.total_retries == 5
    assert (result.queue_wait.count, result.queue_wait.median, result.queue_wait.p90) == pytest.approx(EXPECTED["queue_wait"])
    assert (result.run_time.count, result.run_time.median, result.run_time.p90) == pytest.approx(EXPECTED["run_time"])
    assert result.instance_hours == pytest.approx(EXPECTED["instance_hours"])
    assert list(result.instance_hours) == list(EXPECTED["instance_hours"])  # most hours first
    assert [(s.instance_type, s.median_wait, s.jobs) for s in result.slowest_to_start] == EXPECTED["slowest"]


def test_jobs_and_retries_per_day_land_on_the_right_days():
    result = compute_stats(known_history(), _window(), NOW)
    series = stats.chart_series(result)

    assert series["days"] == EXPECTED["days"]
    assert series["jobs"] == EXPECTED["jobs"]
    assert {k: v for k, v in series["retries"].items() if any(v)} == EXPECTED["retries_per_day"]
    # The four main causes are always charted, even at zero.
    assert list(series["retries"])[:4] == ["capacity", "quota", "algorithm", "throttling"]


def test_an_empty_window_has_zero_counts_and_no_rates_or_percentiles():
    result = compute_stats([], _window(3), NOW)

    assert result.total == 0 and result.finished == 0
    assert result.success_rate is None
    assert result.by_status == {"Completed": 0, "Failed": 0, "Stopped": 0}
    assert result.retries_by_cause == {"capacity": 0, "quota": 0, "algorithm": 0, "throttling": 0}
    assert (result.queue_wait.count, result.queue_wait.median, result.queue_wait.p90) == (0, None, None)
    assert (result.run_time.count, result.run_time.median, result.run_time.p90) == (0, None, None)
    assert result.instance_hours == {} and result.slowest_to_start == []
    assert all(sum(day.values()) == 0 for day in result.jobs_per_day.values())
    assert len(result.jobs_per_day) == 4  # 3 days back from 09:00 touch 4 calendar days
    assert "jobs: 0" in stats.format_text(result)


def test_a_single_job_is_its_own_median_and_p90():
    created = NOW - 5 * HOUR
    job = job_with(
        "solo", created, S.COMPLETED,
        [dict(claimed=created + MIN, launched=created + 2 * MIN, started=created + 3 * MIN, ended=created + 63 * MIN, billable=3600)],
        instance="ml.p3.2xlarge", count=4,
    )
    result = compute_stats([job], _window(1), NOW)

    assert result.total == 1 and result.success_rate == 1.0
    assert result.queue_wait.median == result.queue_wait.p90 == 120.0
    assert result.run_time.median == result.run_time.p90 == 3600.0
    assert result.instance_hours == {"ml.p3.2xlarge": 4.0}  # billable wall-clock × 4 instances
    assert result.retries_by_cause == {"capacity": 0, "quota": 0, "algorithm": 0, "throttling": 0}


def test_jobs_outside_the_window_are_ignored_and_its_start_is_inclusive():
    window = _window(2)
    at_start = job_with("edge", window.since, S.NEW, [])
    just_before = job_with("before", window.since - timedelta(microseconds=1), S.NEW, [])
    result = compute_stats([at_start, just_before], window, NOW)
    assert result.total == 1


def test_percentiles_interpolate_between_ranks():
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([1, 2, 3, 4], 90) == pytest.approx(3.7)
    assert percentile([7], 90) == 7
    assert percentile([], 50) is None


def test_a_user_retry_after_a_failure_counts_as_manual_not_as_the_failure_class():
    created = NOW - 10 * HOUR
    job = job_with(
        "manual", created, S.RETRYING,
        [dict(claimed=created, launched=created, started=created + MIN, ended=created + 2 * MIN, outcome=O.FAILED, failure=F.USER)],
        history=[(S.NEW, S.LAUNCHED, created), (S.LAUNCHED, S.FAILED, created + 2 * MIN), (S.FAILED, S.RETRYING, created + HOUR)],
    )
    assert [cause for cause, _ in stats.retries(job)] == ["manual"]


def test_a_capacity_refusal_keeps_the_job_waiting_until_a_launch_succeeds():
    created = NOW - DAY
    job = job_with(
        "wait", created, S.IN_PROGRESS,
        [
            dict(claimed=created + MIN, ended=created + MIN, outcome=O.NOT_STARTED, failure=F.CAPACITY),
            dict(claimed=created + HOUR, ended=created + HOUR, outcome=O.NOT_STARTED, failure=F.CAPACITY),
            dict(claimed=created + 2 * HOUR, launched=created + 2 * HOUR, started=created + 3 * HOUR, outcome=O.RUNNING),
        ],
    )
    assert stats.queue_wait(job) == 7200
    assert [cause for cause, _ in stats.retries(job)] == ["capacity", "capacity"]


def test_owner_and_preset_filters_match_by_user_id_or_whole_owner():
    job = job_with("x", NOW - HOUR, S.NEW, [], user="U7", preset="nlp")
    assert stats.matches(job, "U7", None) and stats.matches(job, None, "nlp")
    assert stats.matches(job, Owner(team_id="T1", user_id="U7"), "nlp")
    assert not stats.matches(job, Owner(team_id="T9", user_id="U7"), None)
    assert not stats.matches(job, "U8", None) and not stats.matches(job, None, "cv")


def test_the_coverage_says_the_window_and_what_retention_has_removed():
    plain = compute_stats([], _window(7), NOW)
    assert plain.coverage().startswith("Jobs created 2026-10-26 09:00 – 2026-11-02 09:00 UTC")
    assert "expired" not in plain.coverage()

    kept = compute_stats([], _window(30), NOW, retention_days=14)
    assert "kept 14 days" in kept.coverage() and "ended before 2026-10-19 have expired" in kept.coverage()
    assert kept.expired_before == NOW - 14 * DAY
    inside = compute_stats([], _window(7), NOW, retention_days=14)
    assert "kept 14 days" in inside.coverage() and "expired" not in inside.coverage()


def test_a_window_must_be_one_day_to_a_year():
    with pytest.raises(ValueError):
        Window.last_days(0, NOW)
    with pytest.raises(ValueError):
        Window.last_days(stats.MAX_DAYS + 1, NOW)


def _on_plan(job, plan: str):
    return job.model_copy(update={"attempts": [a.model_copy(update={"plan": plan}) for a in job.attempts]})


def test_plan_hours_count_the_billable_hours_run_on_each_plan_against_what_it_reserved_inside_the_window():
    from backend.domain.plans import PlanState, TrainingPlan

    base = NOW - 3 * DAY
    two = _on_plan(job_with("two", base, S.COMPLETED, [dict(claimed=base, ended=base + HOUR, billable=1800)], count=2), "p5-dec")
    stopped = _on_plan(
        job_with("cut", base, S.STOPPED, [dict(claimed=base, ended=base + HOUR, billable=3600, outcome=O.STOPPED, failure=F.PLAN_ENDED)]),
        "p5-dec",
    )
    on_demand = job_with("free", base, S.COMPLETED, [dict(claimed=base, ended=base + HOUR, billable=7200)])
    gone = _on_plan(job_with("gone", base, S.COMPLETED, [dict(claimed=base, ended=base + HOUR, billable=360)]), "old-plan")

    def p(name: str, start, hours: int, total: int, state: PlanState = PlanState.ACTIVE) -> TrainingPlan:
        return TrainingPlan(name, f"arn:aws:sagemaker:us-east-1:123456789012:training-plan/{name}", state, start, start + timedelta(hours=hours), "ml.p5.48xlarge", total, 0)

    plans = {
        "p5-dec": p("p5-dec", NOW - 10 * DAY, 24 * 9, 2),  # began before the window, ends a day before now: 6 days inside it
        "idle": p("idle", NOW - 2 * HOUR, 24, 4),  # bought, unused: 2 hours so far × 4
        "never": p("never", NOW - DAY, 48, 8, PlanState.FAILED),  # a failed purchase reserves nothing
    }
    result = compute_stats([two, stopped, on_demand, gone], _window(7), NOW, plans=plans)

    rows = {row.plan: row for row in result.plan_hours}
    assert set(rows) == {"p5-dec", "idle", "old-plan"}
    assert (rows["p5-dec"].used, rows["p5-dec"].bought) == pytest.approx((2.0, 2 * 6 * 24))
    assert (rows["idle"].used, rows["idle"].bought) == pytest.approx((0.0, 8.0))
    assert (rows["old-plan"].used, rows["old-plan"].bought) == pytest.approx((0.1, None))
    assert [row.plan for row in result.plan_hours] == ["p5-dec", "old-plan", "idle"]  # most used first
    assert "plan-hours (used of bought): p5-dec 2.00 of 288.00 (1%), old-plan 0.10 of ?, idle 0.00 of 8.00 (0%)" in stats.format_text(result)
    assert result.retries_by_cause.get("plan_ended", 0) == 0  # a stop that ended the job retried nothing


def test_without_plans_in_use_or_known_no_plan_hours_are_shown():
    result = compute_stats(known_history(), _window(), NOW)
    assert result.plan_hours == [] and "plan-hours" not in stats.format_text(result)
    assert "plans" not in stats.chart_series(result)

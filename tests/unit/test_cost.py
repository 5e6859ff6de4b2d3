"""The cost guard's pure parts (issue 14): estimates, the price table, approval rules, spend,
the settings that configure them, and the usage count on the in-memory store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from backend.config import Settings
from backend.domain.approval import ApprovalRules, approval_reasons
from backend.domain.cost import LIST_PRICE, PRICES_FILE, PriceTable, describe, estimate, iso_week, repo_prices, spend
from backend.domain.model import Approval, Attempt, AttemptOutcome
from backend.errors import ConfigError
from backend.services import stats
from backend.services.budget import BudgetCheck, Budgets, CostGuard, OverBudget, attempt_ended
from tests.conftest import T0, job_args, make_job
from tests.fakes.memory_store import MemoryJobStore

PRICES = PriceTable({"ml.g5.xlarge": 1.5, "ml.p4d.24xlarge": 40.0}, "USD", "test", "2026-01")


def _args(instance: str = "ml.g5.xlarge", count: int = 1, hours: float = 1.0):
    return job_args(
        ResourceConfig={"InstanceType": instance, "InstanceCount": count, "VolumeSizeInGB": 50},
        StoppingCondition={"MaxRuntimeInSeconds": int(hours * 3600)},
    )


def test_an_estimate_is_count_times_max_runtime_and_a_sweep_is_the_sum():
    one = estimate([_args(count=4, hours=2.5)], PRICES)
    assert one.instance_hours == 10.0 and one.money == 15.0 and one.by_type == {"ml.g5.xlarge": 10.0}

    sweep = estimate([_args(hours=1), _args(hours=2), _args("ml.p4d.24xlarge", count=2, hours=0.5)], PRICES)
    assert sweep.jobs == 3 and sweep.instance_hours == 4.0
    assert sweep.by_type == {"ml.g5.xlarge": 3.0, "ml.p4d.24xlarge": 1.0}
    assert sweep.money == pytest.approx(3 * 1.5 + 40.0)
    assert describe(sweep) == "≤ 4.00 instance-hours over 3 jobs (≤ $44.50 by built-in table of 2026-01)"


def test_an_estimate_says_which_source_and_date_each_of_its_prices_came_from():
    listed = PriceTable({"ml.g5.xlarge": 1.5, "ml.p4d.24xlarge": 40.0}, "USD", "Price List API", "2026-12-07", kind=LIST_PRICE)
    assert describe(estimate([_args()], listed)) == "≤ 1.00 instance-hours (≤ $1.50 by list price of 2026-12-07)"

    overridden = listed.overridden({"ml.p4d.24xlarge": 30.0})
    mixed = estimate([_args(), _args("ml.p4d.24xlarge")], overridden)
    assert mixed.money == 31.5
    assert describe(mixed).endswith("(≤ $31.50 by list price of 2026-12-07 and price override)")
    assert describe(estimate([_args("ml.p4d.24xlarge")], overridden)).endswith("(≤ $30.00 by price override)")
    assert describe(estimate([_args()], repo_prices())).endswith(f"by built-in table of {repo_prices().as_of})")


def test_a_type_without_a_price_gets_hours_but_no_money():
    est = estimate([_args(), _args("ml.m5.large")], PRICES)
    assert est.money is None and est.unpriced == ("ml.m5.large",)
    assert "no price configured for ml.m5.large" in describe(est)


def test_the_repos_price_table_names_its_source_and_date_and_knows_only_real_types():
    from backend.domain.instance_types import TRAINING_INSTANCE_TYPES

    data = json.loads(PRICES_FILE.read_text())
    assert data["source"].startswith("https://aws.amazon.com/sagemaker/pricing") and data["as_of"]
    table = repo_prices()
    assert set(table.prices) <= TRAINING_INSTANCE_TYPES and all(p > 0 for p in table.prices.values())
    assert table.overridden({"ml.g5.xlarge": 2.0}).price("ml.g5.xlarge") == 2.0


def test_approval_rules_name_every_reason_and_are_off_at_zero():
    rules = ApprovalRules(instance_hours=100, instance_types={"ml.p5.48xlarge"}, sweep_size=50)
    assert approval_reasons(rules, instance_hours=100, instance_types=["ml.g5.xlarge"], jobs=50) == []
    assert approval_reasons(rules, instance_hours=100.5, instance_types=["ml.p5.48xlarge", "ml.g5.xlarge"], jobs=51) == [
        "100.5 instance-hours is more than 100",
        "ml.p5.48xlarge needs approval",
        "a sweep of 51 jobs is more than 50",
    ]
    assert approval_reasons(ApprovalRules(), instance_hours=1e6, instance_types=["ml.p5.48xlarge"], jobs=10**4) == []


def test_budgets_and_teams_parse_from_json_or_pairs_and_bad_values_name_the_variable():
    pairs = Settings.from_env({"JOBS_TABLE_NAME": "jobs", "TRAINBOT_TEAM_BUDGETS": "nlp=500, *=50", "TRAINBOT_USER_TEAMS": "U1=nlp"})
    assert pairs.team_budgets == {"nlp": 500.0, "*": 50.0} and pairs.team_of("U1") == "nlp" and pairs.team_of("U2") == "U2"
    as_json = Settings.from_env({"JOBS_TABLE_NAME": "jobs", "TRAINBOT_INSTANCE_PRICES": '{"ml.g5.xlarge": 2}'})
    assert as_json.instance_prices == {"ml.g5.xlarge": 2.0}
    with pytest.raises(ConfigError, match="TRAINBOT_TEAM_BUDGETS"):
        Settings.from_env({"JOBS_TABLE_NAME": "jobs", "TRAINBOT_TEAM_BUDGETS": "nlp"})
    with pytest.raises(ConfigError, match="TRAINBOT_TEAM_BUDGETS"):
        Settings.from_env({"JOBS_TABLE_NAME": "jobs", "TRAINBOT_TEAM_BUDGETS": "nlp=-1"})
    with pytest.raises(ConfigError, match="TRAINBOT_APPROVAL_INSTANCE_TYPES: .*p5.48xlarge"):
        Settings.from_env({"JOBS_TABLE_NAME": "jobs", "TRAINBOT_APPROVAL_INSTANCE_TYPES": "p5.48xlarge"})
    with pytest.raises(ConfigError, match="TRAINBOT_INSTANCE_PRICES"):
        Settings.from_env({"JOBS_TABLE_NAME": "jobs", "TRAINBOT_INSTANCE_PRICES": "ml.g5.huge=3"})
    with pytest.raises(ConfigError, match="TRAINBOT_BUDGET_MODE"):
        Settings.from_env({"JOBS_TABLE_NAME": "jobs", "TRAINBOT_BUDGET_MODE": "warn"})


def test_usage_counts_each_attempt_once_and_a_user_in_no_team_has_their_own_budget():
    store = MemoryJobStore()
    budgets = Budgets(store, budgets={"nlp": 10, "*": 2}, user_teams={"U1": "nlp"}, clock=lambda: T0)
    job = make_job(user="U1", job_args=_args(count=3))
    attempt = Attempt(number=1, name=f"{job.job_id}-a1", claimed_at=T0, ended_at=T0, billable_seconds=1200, outcome=AttemptOutcome.COMPLETED)

    assert budgets.record_attempt(job, attempt) is True
    assert budgets.record_attempt(job, attempt) is False  # a duplicated event
    assert budgets.check("U1") == BudgetCheck("nlp", iso_week(T0), 1.0, 10.0)
    assert budgets.check("U9", asked_hours=2.5) == BudgetCheck("U9", iso_week(T0), 0.0, 2.0, 2.5)
    assert budgets.check("U9", asked_hours=2.5).over and not budgets.check("U1", asked_hours=9).over


def test_only_the_write_that_ends_an_attempt_with_billed_time_counts_it():
    job = make_job()
    running = Attempt(number=1, name=f"{job.job_id}-a1", claimed_at=T0, outcome=AttemptOutcome.RUNNING)
    ended = running.model_copy(update={"ended_at": T0, "billable_seconds": 60, "outcome": AttemptOutcome.COMPLETED})
    before = job.model_copy(update={"attempts": [running]})
    after = job.model_copy(update={"attempts": [ended]})
    assert attempt_ended(before, after) == ended
    assert attempt_ended(after, after) is None
    assert attempt_ended(before, before) is None


def test_the_guard_refuses_over_budget_in_refuse_mode_and_holds_in_approve_mode():
    store = MemoryJobStore()
    store.add_usage(f"U1#{iso_week(T0)}", "old-a1", 3600)
    budgets = Budgets(store, budgets={"*": 2}, user_teams={}, clock=lambda: T0)
    with pytest.raises(OverBudget, match=r"1.00 of 2.00"):
        CostGuard(PRICES, ApprovalRules(), budgets).assess([_args(hours=1.5)], "U1")
    held = CostGuard(PRICES, ApprovalRules(), budgets, budget_mode="approve").assess([_args(hours=1.5)], "U1")
    assert isinstance(held.approval, Approval) and "over the weekly budget" in held.approval.reasons[0]
    fits = CostGuard(PRICES, ApprovalRules(), budgets).assess([_args(hours=1)], "U1")
    assert fits.approval is None and fits.estimate.instance_hours == 1.0


def _ran(name: str, user: str, instance: str, count: int, seconds: int, ended: datetime):
    job = make_job(name, user=user, job_args=_args(instance, count), now=ended - timedelta(hours=1))
    attempt = Attempt(number=1, name=f"{job.job_id}-a1", claimed_at=ended, ended_at=ended, billable_seconds=seconds, outcome=AttemptOutcome.COMPLETED)
    return job.model_copy(update={"attempts": [attempt]})


def test_spend_groups_billed_hours_by_user_team_and_type_and_prices_them():
    day2 = T0 + timedelta(days=1)
    jobs = [
        _ran("a", "U1", "ml.g5.xlarge", 2, 3600, T0),  # 2 h
        _ran("b", "U2", "ml.p4d.24xlarge", 1, 1800, day2),  # 0.5 h
        _ran("c", "U3", "ml.g5.xlarge", 1, 3600, day2),  # 1 h
        make_job("never-ran", user="U3"),
    ]
    teams = {"U1": "nlp", "U2": "nlp"}
    result = spend(jobs, PRICES, team_of=lambda user: teams.get(user, user))
    assert [(line.name, line.instance_hours, line.money) for line in result.by_user] == [
        ("U1", 2.0, 3.0), ("U3", 1.0, 1.5), ("U2", 0.5, 20.0),
    ]
    assert [(line.name, line.instance_hours, line.money) for line in result.by_team] == [("nlp", 2.5, 23.0), ("U3", 1.0, 1.5)]
    assert [(line.name, line.instance_hours, line.money) for line in result.by_type] == [
        ("ml.g5.xlarge", 3.0, 4.5), ("ml.p4d.24xlarge", 0.5, 20.0),
    ]
    assert result.instance_hours == 3.5 and result.money == 24.5
    assert result.per_day == {T0.date().isoformat(): {"ml.g5.xlarge": 2.0}, day2.date().isoformat(): {"ml.g5.xlarge": 1.0, "ml.p4d.24xlarge": 0.5}}


def test_stats_carry_spend_by_team_and_the_chart_draws_it_per_day():
    day2 = T0 + timedelta(days=1)
    jobs = [_ran("a", "U1", "ml.g5.xlarge", 2, 3600, T0), _ran("b", "U2", "ml.p4d.24xlarge", 1, 1800, day2)]
    window = stats.Window(T0 - timedelta(days=2), T0 + timedelta(days=2))
    result = stats.compute_stats(jobs, window, T0 + timedelta(days=2), prices=PRICES, team_of=lambda u: "nlp" if u == "U1" else "vision")

    assert result.spend is not None
    assert [(line.name, line.instance_hours, line.money) for line in result.spend.by_team] == [("nlp", 2.0, 3.0), ("vision", 0.5, 20.0)]
    assert "spend: 2.50 instance-hours ≈ $23.00" in stats.format_text(result)
    assert "by team: nlp 2.00 h $3.00, vision 0.50 h $20.00" in stats.format_text(result)

    from backend.services.chart import render

    chart = render(result)
    days = chart.series["days"]
    drawn = chart.series["hours"]
    assert drawn["ml.g5.xlarge"][days.index(T0.date().isoformat())] == 2.0
    assert drawn["ml.p4d.24xlarge"][days.index(day2.date().isoformat())] == 0.5
    assert sum(map(sum, drawn.values())) == 2.5


def test_an_attempt_that_ended_outside_the_window_is_charted_on_its_edge():
    late = datetime(2026, 11, 9, 12, tzinfo=UTC)
    job = _ran("a", "U1", "ml.g5.xlarge", 1, 3600, late)
    window = stats.Window(T0, late - timedelta(days=1))
    result = stats.compute_stats([job.model_copy(update={"created_at": T0})], window, late, prices=PRICES)
    assert result.spend is not None and list(result.spend.per_day) == [(late - timedelta(days=1)).date().isoformat()]


def test_a_fallback_attempt_counts_and_is_priced_under_the_type_it_ran_on():
    """``instance=ml.g5.xlarge,ml.p4d.24xlarge`` (types only for the price table's sake): the
    first attempt ran on the first choice, the second on the fallback; spend, the stats' hours
    and the SNS summary each name the type an attempt really used."""
    from backend.adapters.sns import summary

    job = make_job("fb", user="U1", job_args=_args("ml.g5.xlarge"), now=T0).model_copy(update={"fallback_types": ("ml.p4d.24xlarge",)})
    first = Attempt(number=1, name=f"{job.job_id}-a1", claimed_at=T0 + timedelta(minutes=10), ended_at=T0 + timedelta(hours=1),
                    billable_seconds=3600, outcome=AttemptOutcome.FAILED, instance_type="ml.g5.xlarge")
    second = Attempt(number=2, name=f"{job.job_id}-a2", claimed_at=T0 + timedelta(hours=1), ended_at=T0 + timedelta(hours=2),
                     billable_seconds=1800, outcome=AttemptOutcome.COMPLETED, instance_type="ml.p4d.24xlarge")
    ran = job.model_copy(update={"attempts": [first, second]})

    result = spend([ran], PRICES)
    assert [(line.name, line.instance_hours, line.money) for line in result.by_type] == [
        ("ml.g5.xlarge", 1.0, 1.5), ("ml.p4d.24xlarge", 0.5, 20.0),
    ]
    assert result.money == 21.5

    window = stats.Window(T0 - timedelta(days=1), T0 + timedelta(days=1))
    computed = stats.compute_stats([ran], window, T0 + timedelta(days=1))
    assert computed.instance_hours == {"ml.g5.xlarge": 1.0, "ml.p4d.24xlarge": 0.5}

    body = summary(ran, ran.last_seq)
    assert body["instanceType"] == "ml.p4d.24xlarge"
    assert body["requestedInstanceTypes"] == ["ml.g5.xlarge", "ml.p4d.24xlarge"]

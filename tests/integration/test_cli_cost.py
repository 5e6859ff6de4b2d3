"""`trainbot submit --dry-run` / `trainbot sweep --dry-run` (issue 14): the estimate and what
the cost guard would do, against moto's server; nothing is registered."""

from __future__ import annotations

import json

import pytest

from backend.domain.cost import iso_week
from backend.domain.times import utcnow
from tests.integration.test_cli import _mine, cli


def test_a_dry_run_shows_the_estimate_and_registers_nothing(aws, spec):
    code, out, err = cli("submit", "--spec", spec(), "count=2", "max_runtime=3h", "--dry-run")

    assert code == 0, err
    # 2 instances x 3 h of ml.g5.xlarge at the repo's $1.408 an hour
    assert "≤ 6.00 instance-hours" in out and "$8.45" in out and "ml.g5.xlarge: 6.00 instance-hours" in out
    assert _mine(aws) == []


def test_a_sweeps_dry_run_sums_its_jobs_and_says_it_would_wait_for_approval(aws, spec, monkeypatch):
    monkeypatch.setenv("TRAINBOT_APPROVAL_SWEEP_SIZE", "4")
    code, out, err = cli("sweep", "--spec", spec(), "--hp", "lr=1e-5,3e-5,1e-4", "--hp", "batch=16,32", "--dry-run", "--json")

    assert code == 0, err
    answer = json.loads(out)
    assert answer["jobs"] == 6 and answer["instance_hours"] == 6.0 and answer["money"] == 8.45
    assert answer["needs_approval"] == ["a sweep of 6 jobs is more than 4"]
    assert _mine(aws) == []


def test_a_dry_run_past_the_budget_is_refused_with_the_numbers(aws, spec, monkeypatch):
    monkeypatch.setenv("TRAINBOT_TEAM_BUDGETS", "*=10")
    aws.add_usage(f"alice#{iso_week(utcnow())}", "tb-old-a1", 9 * 3600)

    code, out, err = cli("submit", "--spec", spec(), "max_runtime=2h", "--dry-run")

    assert code == 4
    assert "over the weekly budget" in err and "9.00 of 10.0" in err and "1.00 left" in err


def test_a_held_submission_says_so_and_is_registered_held(aws, spec, monkeypatch):
    monkeypatch.setenv("TRAINBOT_APPROVAL_INSTANCE_HOURS", "0.5")
    code, out, err = cli("submit", "--spec", spec())

    assert code == 0, err
    assert "waiting for an admin's approval: 1.0 instance-hours is more than 0.5" in out
    [job] = _mine(aws)
    assert job.is_held


def test_stats_show_spend_by_user_team_and_type_and_the_weeks_budget(aws, monkeypatch):
    from backend.domain.status import JobStatus
    from tests.stats_history import DAY, MIN, job_with

    monkeypatch.setenv("TRAINBOT_USER_TEAMS", "alice=nlp,bob=nlp")
    monkeypatch.setenv("TRAINBOT_TEAM_BUDGETS", "nlp=20")
    now = utcnow()
    base = now - DAY
    run = dict(claimed=base + MIN, launched=base + 2 * MIN, started=base + 3 * MIN, ended=base + 63 * MIN)
    aws.register(job_with("a", base, JobStatus.COMPLETED, [{**run, "billable": 3600}], count=3, user="alice", team="cli"))
    aws.register(job_with("b", base, JobStatus.COMPLETED, [{**run, "billable": 3600}], instance="ml.m5.large", user="bob", team="cli"))
    aws.add_usage(f"nlp#{iso_week(now)}", "tb-a-a1", 4 * 3600)

    code, out, err = cli("stats", "--all", "--days", "3")
    assert code == 0, err
    assert "spend: 4.00 instance-hours ≈ $4.34" in out  # 3 h x $1.408 + 1 h x $0.115
    assert "by user: alice 3.00 h $4.22, bob 1.00 h $0.12" in out
    assert "by team: nlp 4.00 h $4.34" in out
    assert "this week: team `nlp` has 4.00 of 20.0 instance-hours committed" in out

    code, out, err = cli("stats", "--all", "--days", "3", "--json")
    answer = json.loads(out)
    assert answer["spend"]["by_type"][0] == {"name": "ml.g5.xlarge", "instance_hours": 3.0, "money": pytest.approx(4.224)}
    assert answer["budget"]["team"] == "nlp" and answer["budget"]["budget_hours"] == 20.0


def test_an_admin_approves_or_rejects_from_the_cli_and_anyone_else_is_refused(aws, spec, monkeypatch):
    monkeypatch.setenv("TRAINBOT_APPROVAL_INSTANCE_TYPES", "ml.g5.xlarge")
    cli("submit", "--spec", spec(), "--name", "one")
    cli("submit", "--spec", spec(), "--name", "two")
    one, two = sorted(_mine(aws), key=lambda job: job.name)
    assert one.is_held and two.is_held

    code, _, err = cli("approve", one.job_id, user="alice")
    assert code == 4 and "only an admin" in err and aws.get(one.job_id).is_held

    code, out, _ = cli("approve", one.job_id, user="boss")
    assert code == 0 and f"{one.job_id}: approved (New)" in out and not aws.get(one.job_id).is_held
    code, out, _ = cli("approve", one.job_id, user="boss")
    assert code == 4 and "nothing changed (New, approval approved)" in out

    code, out, _ = cli("reject", two.job_id, "--reason", "too big this week", user="boss")
    job = aws.get(two.job_id)
    assert code == 0 and job.status.value == "Stopped" and job.history[-1].reason == "rejected by boss: too big this week"

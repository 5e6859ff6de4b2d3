"""Training plans from chat, signed as Slack signs them, through the template's bot handler:
``/train plans`` lists the team's plans from the launcher's board, a submit of the team runs on
its default plan (the item records it), and a job the plan cannot run is refused at submit."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backend.domain.model import Owner
from backend.domain.plans import PlanBoard, PlanState, TrainingPlan
from backend.domain.records import RecordKind
from backend.domain.times import utcnow
from backend.services.plans import BOARD_KEY
from tests.bot_fixtures import GOOD_SUBMIT, TEAM, USER

ARN = "arn:aws:sagemaker:us-east-1:123456789012:training-plan/g5-dec"


@pytest.fixture
def with_team_plan(monkeypatch, store):
    monkeypatch.setenv("TRAINBOT_TEAM_PLANS", "nlp=g5-dec")
    monkeypatch.setenv("TRAINBOT_USER_TEAMS", f"{USER}=nlp")
    now = utcnow()
    plan = TrainingPlan("g5-dec", ARN, PlanState.SCHEDULED, now + timedelta(days=1), now + timedelta(days=2), "ml.g5.xlarge", 4, 0)
    # What a launcher writes after reading ListTrainingPlans.
    store.put_record(RecordKind.PLANS, BOARD_KEY, PlanBoard(now, {"g5-dec": plan}, {}, {"g5-dec": 2}).to_record())
    return plan


def test_plans_lists_the_teams_plan_with_its_window_type_use_and_waiting_jobs(bot_env, with_team_plan):
    bot_env.command("plans")

    text = bot_env.ephemerals()[-1]
    assert "`g5-dec` (your team's default): scheduled" in text
    assert "ml.g5.xlarge: 0 of 4 in use, 2 job(s) waiting" in text


def test_a_submit_runs_on_the_teams_default_plan_and_one_past_the_plans_end_is_refused(bot_env, with_team_plan, store):
    bot_env.command(GOOD_SUBMIT)
    (job,) = store.jobs_of_owner(Owner(team_id=TEAM, user_id=USER), limit=5).jobs
    assert job.plan == "g5-dec"

    bot_env.command(GOOD_SUBMIT.replace("bert-lr3", "too-long").replace("max_runtime=1h", "max_runtime=3d"))
    assert "would not finish before it" in bot_env.ephemerals()[-1]
    assert len(store.jobs_of_owner(Owner(team_id=TEAM, user_id=USER), limit=5).jobs) == 1

    bot_env.command(GOOD_SUBMIT.replace("bert-lr3", "on-demand") + " plan=none")
    plans = {j.name: j.plan for j in store.jobs_of_owner(Owner(team_id=TEAM, user_id=USER), limit=5).jobs}
    assert plans["on-demand"] is None

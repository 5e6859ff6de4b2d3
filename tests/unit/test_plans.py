"""Training plans: the pure rules (backend.domain.plans), the grammar's ``plan=`` and the
team default setting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from backend.config import Settings
from backend.domain.plans import PlanBoard, PlanState, TrainingPlan, launch_verdict, parse_team_plans, plan_of_arn
from backend.domain.spec import BadCommand, job_spec
from backend.errors import ConfigError

NOW = datetime(2025, 12, 1, 12, 0, tzinfo=UTC)  # a Monday
ARN = "arn:aws:sagemaker:us-east-1:123456789012:training-plan/p5-dec"
FIELDS = {
    "name": "bert",
    "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest",
    "instance": "ml.p5.48xlarge",
    "output": "s3://out/runs",
    "role": "arn:aws:iam::123456789012:role/SageMakerRole",
    "max_runtime": "4h",
}


def plan(state: PlanState = PlanState.ACTIVE, *, start: datetime = NOW - timedelta(hours=1), hours: int = 48, in_use: int = 0) -> TrainingPlan:
    return TrainingPlan("p5-dec", ARN, state, start, start + timedelta(hours=hours), "ml.p5.48xlarge", 4, in_use)


def verdict(p: TrainingPlan | None, *, instance_type: str = "ml.p5.48xlarge", count: int = 2, runtime: int = 4 * 3600, own: int = 0):
    return launch_verdict(p, "p5-dec", instance_type=instance_type, count=count, max_runtime_seconds=runtime, own_in_use=own, now=NOW)


def test_an_active_plan_with_room_launches_on_the_plans_arn() -> None:
    assert verdict(plan()).action == "launch"
    assert verdict(plan()).arn == ARN


def test_a_job_of_a_plan_not_yet_started_waits_with_the_plans_start_in_its_reason() -> None:
    tomorrow = datetime(2025, 12, 2, 9, 0, tzinfo=UTC)
    result = verdict(plan(PlanState.SCHEDULED, start=tomorrow))
    assert result.action == "wait"
    assert result.reason == "waiting: plan `p5-dec` starts Tue 09:00 UTC"


def test_a_full_plan_makes_the_job_wait_counting_trainbots_own_newer_count() -> None:
    assert verdict(plan(in_use=3)).action == "wait"
    assert "full (3 of 4" in verdict(plan(in_use=3)).reason
    # SageMaker's count is a minute old; Trainbot's own launches since count too.
    assert verdict(plan(in_use=0), own=3).action == "wait"
    assert verdict(plan(in_use=2), count=2).action == "launch"


def test_a_job_of_another_instance_type_is_refused_naming_the_plans_type() -> None:
    result = verdict(plan(), instance_type="ml.g5.xlarge")
    assert result.action == "refuse"
    assert "reserves ml.p5.48xlarge, not ml.g5.xlarge" in result.reason


def test_a_job_that_would_not_finish_before_the_plan_ends_is_refused_with_the_plans_end() -> None:
    result = verdict(plan(hours=3), runtime=4 * 3600)  # began an hour ago: 2 h left
    assert result.action == "refuse"
    assert "ends Mon 14:00 UTC" in result.reason and "4h" in result.reason


def test_an_expired_or_unknown_plan_refuses_and_more_instances_than_reserved_never_fit() -> None:
    assert verdict(plan(PlanState.EXPIRED)).action == "refuse"
    assert "no training plan named `p5-dec`" in verdict(None).reason
    assert "reserves 4 instances" in verdict(plan(), count=5).reason


def test_team_plans_parse_and_refuse_what_is_not_a_plan_name() -> None:
    assert parse_team_plans("nlp=p5-dec, vision=p4-q1") == {"nlp": "p5-dec", "vision": "p4-q1"}
    assert Settings.from_env({"JOBS_TABLE_NAME": "jobs", "TRAINBOT_TEAM_PLANS": "nlp=p5-dec"}).team_plans == {"nlp": "p5-dec"}
    with pytest.raises(ConfigError, match="TRAINBOT_TEAM_PLANS"):
        Settings.from_env({"JOBS_TABLE_NAME": "jobs", "TRAINBOT_TEAM_PLANS": "nlp=p5_dec"})


def test_plan_and_plan_fallback_are_submit_fields() -> None:
    spec = job_spec({**FIELDS, "plan": "p5-dec", "plan_fallback": "ondemand"})
    assert (spec.plan, spec.plan_fallback) == ("p5-dec", True)
    assert job_spec(FIELDS).plan is None
    with pytest.raises(BadCommand, match="not a training plan name"):
        job_spec({**FIELDS, "plan": "p5 dec"})
    with pytest.raises(BadCommand, match="plan's instance type"):
        job_spec({**FIELDS, "plan": "p5-dec", "instance": "ml.p5.48xlarge,ml.p4d.24xlarge"})


def test_the_create_names_the_plan_in_resource_config() -> None:
    request = job_spec(FIELDS).job_args.to_request("tb-bert-a1", training_plan_arn=ARN)
    assert request["ResourceConfig"]["TrainingPlanArn"] == ARN
    assert "TrainingPlanArn" not in job_spec(FIELDS).job_args.to_request("tb-bert-a1")["ResourceConfig"]


def test_the_plan_board_round_trips_through_its_record_and_arns_name_their_plan() -> None:
    board = PlanBoard(NOW, {"p5-dec": plan()}, {"p5-dec": 2}, {"p5-dec": 3})
    assert PlanBoard.from_record(board.to_record()) == board
    assert PlanBoard.from_record({"Plans": {}}) is None
    assert plan_of_arn(ARN) == "p5-dec"
    assert plan_of_arn(None) is None


def test_the_adapter_reads_plans_as_sagemaker_documents_them() -> None:
    from backend.adapters.sagemaker_events import training_status
    from backend.adapters.sagemaker_plans import to_plan
    from tests.fixtures import samples

    documented = samples.load("sagemaker_training_plans.json")
    scheduled = to_plan(documented["DescribeTrainingPlan"])
    assert scheduled is not None
    assert (scheduled.state, scheduled.instance_type, scheduled.total) == (PlanState.SCHEDULED, "ml.p5.48xlarge", 2)
    assert scheduled.start == datetime(2025, 12, 2, 9, 0, tzinfo=UTC)
    listed = [to_plan(s) for s in documented["ListTrainingPlans"]["TrainingPlanSummaries"]]
    assert listed[0] is not None and (listed[0].state, listed[0].in_use) == (PlanState.ACTIVE, 3)
    assert listed[1] is None  # a HyperPod-only plan: no training job can use it
    status = training_status({"TrainingJobName": "tb-x-a1", "TrainingJobStatus": "InProgress", "ResourceConfig": documented["DescribeTrainingJob.ResourceConfig"]})
    assert status.training_plan == "p5-dec"
    assert training_status({"TrainingJobName": "tb-x-a1", "TrainingJobStatus": "InProgress"}).training_plan is None


def test_a_running_job_is_warned_once_its_plan_is_within_the_warning_time_of_ending_and_it_may_outlive_the_plan() -> None:
    from backend.domain.plans import end_warning_due, stops_jobs_at

    p = plan(hours=6)  # began an hour ago: ends 17:00, SageMaker stops its jobs from 16:30
    assert stops_jobs_at(p) == datetime(2025, 12, 1, 16, 30, tzinfo=UTC)
    ahead = timedelta(hours=2)

    def due(started: datetime, runtime_hours: float, at: datetime, warn: timedelta = ahead) -> bool:
        return end_warning_due(p, started_at=started, max_runtime_seconds=int(runtime_hours * 3600), now=at, ahead=warn)

    at_15 = datetime(2025, 12, 1, 15, 0, tzinfo=UTC)
    assert due(NOW, 5, at_15)  # 12:00 + 5 h = 17:00, past 16:30
    assert not due(NOW, 4.5, at_15)  # ends at 16:30 at the latest: nothing to warn of
    assert not due(NOW, 5, datetime(2025, 12, 1, 14, 59, tzinfo=UTC))  # not yet two hours ahead
    assert not due(NOW, 5, datetime(2025, 12, 1, 16, 30, tzinfo=UTC))  # SageMaker is stopping it already
    assert not due(NOW, 5, at_15, timedelta(0))  # TRAINBOT_PLAN_END_WARNING_SECONDS=0: off


def test_the_plan_end_warning_setting_defaults_to_two_hours_and_refuses_a_negative_value() -> None:
    assert Settings.from_env({"JOBS_TABLE_NAME": "jobs"}).plan_end_warning_seconds == 7200
    assert Settings.from_env({"JOBS_TABLE_NAME": "jobs", "TRAINBOT_PLAN_END_WARNING_SECONDS": "0"}).plan_end_warning_seconds == 0
    with pytest.raises(ConfigError, match="TRAINBOT_PLAN_END_WARNING_SECONDS"):
        Settings.from_env({"JOBS_TABLE_NAME": "jobs", "TRAINBOT_PLAN_END_WARNING_SECONDS": "-1"})


def test_a_max_runtime_must_end_before_sagemaker_stops_the_plans_jobs_half_an_hour_before_its_end() -> None:
    # The plan ends at 16:20: SageMaker stops its jobs from 15:50, so 4 h from 12:00 does not fit.
    result = verdict(plan(hours=5, start=NOW - timedelta(minutes=40)), runtime=4 * 3600)
    assert result.action == "refuse"
    assert "30 minutes before its end: at most 3h50m from now" in result.reason
    assert verdict(plan(hours=5, start=NOW - timedelta(minutes=40)), runtime=3 * 3600 + 50 * 60).action == "launch"

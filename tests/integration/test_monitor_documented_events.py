"""The monitor on the event shapes AWS documents (tests/fixtures): SageMaker's training job
state change, whose times are strings of epoch milliseconds, and the scheduled event. An
event the monitor cannot parse is logged and counted, never raised (a raise would be retried
into the dead-letter queue and fire its alarm)."""

from __future__ import annotations

import pytest
from moto import mock_aws

from backend.domain.cost import iso_week
from tests.fixtures import samples
from tests.harness import Stack


@pytest.fixture
def stack():
    with mock_aws():
        stack = Stack(duration=60.0, startup=5.0)
        try:
            yield stack
        finally:
            stack.close()


def _launched(stack: Stack):
    job = stack.submit("documented")
    stack.clock.advance(1.0)
    stack.launcher_handler(samples.scheduled_event(), stack.context)
    job = stack.store.get(job.job_id)
    assert job.status.value == "Launched"
    return job


def test_the_documented_state_change_event_with_times_as_strings_of_epoch_millis_completes_the_job(stack):
    job = _launched(stack)
    event = samples.sagemaker_state_change(TrainingJobName=job.current_attempt.name)
    assert event["detail"]["TrainingStartTime"] == "1583831889050"  # as AWS documents it

    report = stack.monitor_handler(event, stack.context)

    assert report["applied"] >= 1
    done = stack.store.get(job.job_id)
    assert done.status.value == "Completed"
    assert done.current_attempt.started_at.isoformat().startswith("2020-03-10T09:18:09.050")


def test_the_documented_scheduled_event_runs_the_launcher_and_the_monitors_sweep(stack):
    job = _launched(stack)
    stack.clock.advance(120.0)
    report = stack.monitor_handler(samples.scheduled_event(), stack.context)
    assert report["observed"] == 1
    assert stack.store.get(job.job_id).status.value == "Completed"


@pytest.mark.parametrize(
    "detail",
    [
        {"TrainingStartTime": "not a time"},
        {"TrainingEndTime": {"nested": 1}},
        {"TrainingJobName": None},
        {"TrainingJobName": 12},
    ],
    ids=["unparseable-time", "time-as-object", "no-name", "name-not-a-string"],
)
def test_an_event_the_monitor_cannot_parse_is_counted_and_answered_never_raised(stack, detail):
    job = _launched(stack)
    event = samples.sagemaker_state_change(TrainingJobName=job.current_attempt.name)
    event["detail"].update(detail)

    report = stack.monitor_handler(event, stack.context)

    assert report == {"unparseable": 1, "reason": report["reason"]} and report["reason"]
    assert stack.store.get(job.job_id).status.value == "Launched"


def test_an_event_without_a_detail_object_is_counted_not_raised(stack):
    event = samples.sagemaker_state_change()
    event["detail"] = "not an object"
    assert stack.monitor_handler(event, stack.context)["unparseable"] == 1


@pytest.fixture
def budget_stack():
    with mock_aws():
        stack = Stack(duration=60.0, startup=5.0, env={"TRAINBOT_TEAM_BUDGETS": "*=100"})
        try:
            yield stack
        finally:
            stack.close()


def test_a_documented_end_event_has_no_billable_time_so_one_describe_per_attempt_supplies_it(budget_stack):
    stack = budget_stack
    job = _launched(stack)
    stack.clock.advance(120.0)  # SageMaker has ended the attempt; its Describe bills 60 s
    stack.sagemaker.drain_events()  # only AWS's documented event reaches the monitor
    name = job.current_attempt.name
    event = samples.sagemaker_state_change(TrainingJobName=name)
    assert "BillableTimeInSeconds" not in event["detail"]  # as AWS documents it
    describes = stack.sagemaker.calls["DescribeTrainingJob"]

    stack.monitor_handler(event, stack.context)
    stack.monitor_handler(event, stack.context)  # EventBridge delivers at least once
    stack.sweep()  # the job ended: the sweep describes it no more

    done = stack.store.get(job.job_id)
    assert done.status.value == "Completed"
    assert done.current_attempt.billable_seconds == 60
    assert stack.sagemaker.calls["DescribeTrainingJob"] == describes + 1
    week = iso_week(done.current_attempt.ended_at)
    assert stack.container.budgets.used_hours(job.owner.user_id, week) == pytest.approx(60 / 3600)

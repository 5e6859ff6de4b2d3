"""The lifecycle through the Lambda handlers `template.yaml` declares: boto3 against moto
(DynamoDB, SNS) and the SageMaker stand-in (AWS_ENDPOINT_URL_SAGEMAKER)."""

from __future__ import annotations

import pytest

from backend.domain.model import AttemptOutcome, FailureClass
from backend.domain.status import JobStatus
from backend.errors import IllegalTransition, NotAuthorized
from tests.harness import ADMIN, ALICE, BOB, Stack

S = JobStatus


@pytest.fixture
def stack(moto_aws):
    built = Stack()
    yield built
    built.close()


def statuses(job) -> list[str]:
    return [h.to_status.value for h in job.history]


def test_a_job_runs_from_new_to_completed_and_each_change_is_published(stack):
    job = stack.submit("happy")
    stack.launch()
    job = stack.store.get(job.job_id)
    assert job.status is S.LAUNCHED
    assert job.attempts[0].name == f"{job.job_id}-a1"
    assert stack.sagemaker.created_names == [f"{job.job_id}-a1"]

    [job] = stack.run_until_settled([job.job_id])
    assert statuses(job) == ["New", "Launched", "InProgress", "Completed"]
    attempt = job.attempts[0]
    assert attempt.outcome is AttemptOutcome.COMPLETED
    assert attempt.billable_seconds == 120
    assert attempt.started_at and attempt.ended_at and attempt.ended_at > attempt.started_at

    published = stack.notifications()
    assert [m["body"]["status"] for m in published] == ["New", "Launched", "InProgress", "Completed"]
    last = published[-1]["attributes"]
    assert last["JobId"] == {"Type": "String", "Value": job.job_id}
    assert last["JobStatus"]["Value"] == "Completed"
    assert last["Owner"]["Value"] == "T1:UALICE"


def test_capacity_errors_are_retried_for_free_until_the_job_completes(stack):
    job = stack.submit("capacity", hp={"trainbot_standin_outcome": "CapacityError", "trainbot_standin_outcome_attempts": "2"})
    [job] = stack.run_until_settled([job.job_id])
    assert job.status is S.COMPLETED
    assert [a.failure_class for a in job.attempts] == [FailureClass.CAPACITY, FailureClass.CAPACITY, None]
    assert job.algorithm_failures == 0
    assert statuses(job).count("Retrying") == 2


def test_algorithm_errors_are_resubmitted_within_the_budget_then_fail(stack):
    job = stack.submit("algo", retry_budget=2, hp={"trainbot_standin_outcome": "AlgorithmError"})
    [job] = stack.run_until_settled([job.job_id])
    assert job.status is S.FAILED
    assert len(job.attempts) == 3  # budget 2 = two resubmissions
    assert "retry budget 2" in job.history[-1].reason
    assert "AlgorithmError" in job.history[-1].reason


def test_max_runtime_exceeded_fails_with_that_reason(stack):
    job = stack.submit("slow", hp={"trainbot_standin_duration": "500", "max_runtime": "300"})
    [job] = stack.run_until_settled([job.job_id])
    assert job.status is S.FAILED and len(job.attempts) == 1
    assert "MaxRuntimeExceeded" in job.history[-1].reason


def test_resource_limit_exceeded_retries_and_holds_the_instance_type(stack):
    stack.sagemaker.capacity["ml.g5.xlarge"] = 1
    first, second, third = (stack.submit(f"quota-{i}") for i in range(3))
    report = stack.launch()
    assert (report["launched"], report["retrying"], report["held"]) == (1, 1, 1)
    assert stack.sagemaker.calls["CreateTrainingJob"] == 2  # the third was not hammered
    job = stack.store.get(second.job_id)
    assert job.status is S.RETRYING and job.attempts[0].failure_class is FailureClass.QUOTA
    assert job.capacity_wait_since is not None and job.algorithm_failures == 0
    jobs = stack.run_until_settled([first.job_id, second.job_id, third.job_id])
    assert all(j.status is S.COMPLETED for j in jobs)
    assert max(stack.sagemaker.max_concurrent_attempts.values()) == 1


def test_a_zero_instance_quota_fails_at_once_telling_the_user_to_ask_for_more(stack):
    stack.sagemaker.capacity["ml.p4d.24xlarge"] = 0
    job = stack.submit("no-quota", hp={"instance": "ml.p4d.24xlarge"})
    stack.launch()
    job = stack.store.get(job.job_id)
    assert job.status is S.FAILED
    assert "quota increase" in job.history[-1].reason


def test_a_validation_error_fails_the_job_with_sagemakers_reason(stack):
    stack.sagemaker.script_create(None, "ValidationException")
    job = stack.submit("invalid")
    stack.launch()
    job = stack.store.get(job.job_id)
    assert job.status is S.FAILED
    assert job.history[-1].reason.startswith("ValidationException")


def test_throttling_on_create_keeps_the_job_due_and_spends_no_attempt(stack):
    stack.sagemaker.script_create(None, "ThrottlingException", times=10)
    job = stack.submit("throttled")
    stack.launch()
    job = stack.store.get(job.job_id)
    assert job.status is S.NEW
    assert [a.outcome for a in job.attempts] == [AttemptOutcome.PENDING]
    stack.sagemaker.faults.clear_scripts()
    [job] = stack.run_until_settled([job.job_id])
    assert job.status is S.COMPLETED
    assert [a.name for a in job.attempts] == [f"{job.job_id}-a1"]


def test_a_lost_create_response_is_adopted_not_duplicated(stack):
    stack.sagemaker.script_create(None, "LostResponse", times=4)
    job = stack.submit("lost")
    [job] = stack.run_until_settled([job.job_id])
    assert job.status is S.COMPLETED
    assert stack.sagemaker.created_names == [f"{job.job_id}-a1"]
    assert "adopted" in " ".join(h.reason for h in job.history)


def test_a_throttled_describe_leaves_the_job_as_it_is(stack):
    job = stack.submit("unknown")
    stack.launch()
    stack.sagemaker.drain_events()  # lose the events: only the sweep can tell
    stack.clock.advance(600)
    stack.sagemaker.script_describe(None, "ThrottlingException", times=10)
    report = stack.sweep()
    assert report["unknown"] == 1
    assert stack.store.get(job.job_id).status is S.LAUNCHED
    stack.sagemaker.faults.clear_scripts()
    stack.sagemaker.drain_events()
    report = stack.sweep()
    assert stack.store.get(job.job_id).status is S.COMPLETED


def test_stop_before_launch_goes_straight_to_stopped_and_nothing_is_created(stack):
    job = stack.submit("early-stop")
    stopped = stack.jobs.stop(job.job_id, ALICE)
    assert stopped.status is S.STOPPED
    stack.launch()
    assert stack.sagemaker.created_names == []


def test_stop_after_launch_goes_through_stopping_to_stopped(stack):
    job = stack.submit("late-stop")
    stack.tick(30)
    assert stack.store.get(job.job_id).status is S.IN_PROGRESS
    assert stack.jobs.stop(job.job_id, ALICE).status is S.STOPPING
    [job] = stack.run_until_settled([job.job_id])
    assert statuses(job)[-2:] == ["Stopping", "Stopped"]
    assert job.attempts[-1].outcome is AttemptOutcome.STOPPED
    assert stack.sagemaker.calls["StopTrainingJob"] == 1


def test_retry_of_a_failed_job_starts_a_new_attempt_with_a_fresh_budget(stack):
    job = stack.submit("again", retry_budget=0, hp={"trainbot_standin_outcome": "AlgorithmError", "trainbot_standin_outcome_attempts": "1"})
    [job] = stack.run_until_settled([job.job_id])
    assert job.status is S.FAILED and job.algorithm_failures == 1
    retried = stack.jobs.retry(job.job_id, ALICE)
    assert retried.status is S.RETRYING and retried.algorithm_failures == 0
    [job] = stack.run_until_settled([job.job_id])
    assert job.status is S.COMPLETED
    assert [a.name for a in job.attempts] == [f"{job.job_id}-a1", f"{job.job_id}-a2"]


def test_stop_and_retry_are_refused_from_other_states_and_for_other_users(stack):
    job = stack.submit("guarded")
    with pytest.raises(IllegalTransition):
        stack.jobs.retry(job.job_id, ALICE)
    with pytest.raises(NotAuthorized):
        stack.jobs.stop(job.job_id, BOB)
    assert stack.jobs.stop(job.job_id, ADMIN).status is S.STOPPED
    with pytest.raises(IllegalTransition):
        stack.jobs.stop(job.job_id, ALICE)
    with pytest.raises(NotAuthorized):  # Stopped may be retried, but only by its owner or an admin
        stack.jobs.retry(job.job_id, BOB)
    stored = stack.store.get(job.job_id)
    assert stored.status is S.STOPPED and stored.version == 2


@pytest.fixture
def stack_without_sdk_retries(moto_aws):
    built = Stack(sagemaker_retries=1)  # boto3 would otherwise re-send the create itself
    yield built
    built.close()


def test_an_attempt_whose_create_answer_was_lost_is_looked_up_not_taken_for_unused(stack_without_sdk_retries):
    # The create went through but its answer was lost; the next create of that name would be
    # refused for quota (the attempt itself fills it). Taking that refusal for "not started"
    # would launch a second attempt beside the first.
    stack = stack_without_sdk_retries
    stack.sagemaker.capacity["ml.g5.xlarge"] = 1
    stack.sagemaker.script_create(None, "LostResponse")
    stack.sagemaker.script_create(None, "ResourceLimitExceeded")
    job = stack.submit("lost-then-full")
    stack.launch()
    # Outcome unknown, not failed: the job backs off with a Waiting reason, its pending attempt
    # kept (and the service error counted on it), so the next try Describes before creating.
    job = stack.store.get(job.job_id)
    assert job.status is S.RETRYING
    assert job.waiting is not None and job.waiting.startswith(f"waiting: SageMaker could not say whether {job.job_id}-a1 was created")
    [pending] = job.attempts
    assert pending.outcome is AttemptOutcome.PENDING and pending.create_errors == 1
    assert job.next_attempt_at is not None
    stack.clock.set(job.next_attempt_at.timestamp())
    stack.launch()
    job = stack.store.get(job.job_id)
    assert job.status is S.LAUNCHED
    assert job.history[-1].reason == f"adopted existing {job.job_id}-a1"
    [job] = stack.run_until_settled([job.job_id])
    assert job.status is S.COMPLETED and len(job.attempts) == 1
    assert stack.sagemaker.created_names == [f"{job.job_id}-a1"]
    assert max(stack.sagemaker.max_concurrent_attempts.values()) == 1

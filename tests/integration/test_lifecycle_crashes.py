"""Crash injection: a launcher that dies between claim and create, or between create and its
DynamoDB write, is reconciled by the next run from the recorded attempt name."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backend.domain.model import AttemptOutcome
from backend.domain.status import JobStatus
from backend.services.launcher import LEASE
from tests.harness import Stack

S = JobStatus


class Crash(Exception):
    """The Lambda dies here (out of memory, timeout, a host failure)."""


class CrashingSageMaker:
    """A boto3 SageMaker client that dies around CreateTrainingJob, once."""

    def __init__(self, client, *, after_create: bool) -> None:
        self._client = client
        self._after = after_create
        self.crashed = False

    def create_training_job(self, **request):
        if self.crashed:
            return self._client.create_training_job(**request)
        self.crashed = True
        if self._after:
            self._client.create_training_job(**request)
        raise Crash("launcher died")

    def __getattr__(self, name):
        return getattr(self._client, name)


@pytest.fixture
def crashing(moto_aws):
    made: list[Stack] = []

    def make(*, after_create: bool) -> Stack:
        stack = Stack(sagemaker_client=lambda client: CrashingSageMaker(client, after_create=after_create))
        made.append(stack)
        return stack

    yield make
    for stack in made:
        stack.close()


def test_a_crash_between_claim_and_create_is_reconciled_after_the_lease_expires(crashing):
    stack = crashing(after_create=False)
    job = stack.submit("claim-crash")
    with pytest.raises(Crash):
        stack.launch()
    claimed = stack.store.get(job.job_id)
    assert claimed.status is S.NEW and claimed.lease is not None
    assert claimed.attempts[0].outcome is AttemptOutcome.PENDING
    assert stack.sagemaker.created_names == []

    stack.launch()  # the lease still holds: nobody touches it
    assert stack.sagemaker.created_names == []
    stack.clock.advance(LEASE.total_seconds() + 1)
    stack.launch()
    job = stack.store.get(job.job_id)
    assert job.status is S.LAUNCHED
    assert stack.sagemaker.created_names == [f"{job.job_id}-a1"]


def test_a_crash_between_create_and_the_write_is_adopted_by_the_next_launcher(crashing):
    stack = crashing(after_create=True)
    job = stack.submit("create-crash")
    with pytest.raises(Crash):
        stack.launch()
    stack.sagemaker.drain_events()  # suppose the state-change events were lost as well
    assert stack.store.get(job.job_id).status is S.NEW
    stack.clock.advance(LEASE.total_seconds() + 1)
    stack.launch()
    job = stack.store.get(job.job_id)
    assert job.status is S.LAUNCHED
    assert job.history[-1].reason == f"adopted existing {job.job_id}-a1"
    [job] = stack.run_until_settled([job.job_id])
    assert job.status is S.COMPLETED
    assert stack.sagemaker.created_names == [f"{job.job_id}-a1"]


def test_a_crash_between_create_and_the_write_is_adopted_by_the_monitor_from_the_event(crashing):
    stack = crashing(after_create=True)
    job = stack.submit("event-adopt")
    with pytest.raises(Crash):
        stack.launch()
    stack.clock.advance(30)
    stack.deliver_events()  # SageMaker says the attempt is running: the monitor adopts it
    job = stack.store.get(job.job_id)
    assert job.status is S.IN_PROGRESS
    assert job.lease is None
    assert [h.to_status.value for h in job.history] == ["New", "Launched", "InProgress"]
    stack.clock.advance(LEASE.total_seconds())
    stack.launch()  # nothing due any more: no second create
    assert stack.sagemaker.created_names == [f"{job.job_id}-a1"]


def test_a_user_stop_during_a_create_does_not_leave_the_training_job_running(crashing):
    stack = crashing(after_create=True)
    job = stack.submit("stop-race")
    with pytest.raises(Crash):
        stack.launch()
    from tests.harness import ALICE

    assert stack.jobs.stop(job.job_id, ALICE).status is S.STOPPED
    stack.clock.advance(30)
    stack.deliver_events()
    stack.clock.advance(timedelta(minutes=1).total_seconds())
    stack.sagemaker.poll()
    assert stack.sagemaker.describe_job(f"{job.job_id}-a1")["TrainingJobStatus"] in {"Stopping", "Stopped"}

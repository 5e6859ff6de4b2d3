"""Issue 16, through the Lambda handlers `template.yaml` declares: each way a job was lost,
stuck or mislabelled, and the rule that now holds. boto3 talks to moto (DynamoDB, SNS) and to
the SageMaker stand-in; faults are injected at the network edge (botocore's ``before-call``
hook answers for the service, as a refusing DynamoDB or a forgetful SageMaker would)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from backend.domain.model import AttemptOutcome, FailureClass
from backend.domain.policy import SERVICE_FAILURES_MAX
from backend.domain.status import JobStatus
from backend.domain.terms import LAUNCH_LEASE
from tests.harness import ALICE, BOB, FakeContext, Stack, job_request

S = JobStatus


@pytest.fixture
def stack(moto_aws):
    built = Stack()
    yield built
    built.close()


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_kwargs: Any):
        yield self._body


def refuse(client, operation: str, code: str, message: str, *, when, status: int = 400) -> None:
    """Make ``client`` answer ``operation`` with an AWS error whenever ``when(params)`` holds,
    as the service itself would (the request never reaches moto or the stand-in)."""

    def answer(params, **_kwargs):
        body = params.get("body") or b"{}"
        if isinstance(body, bytes | str) and (body[:1] in (b"{", "{")):
            request = json.loads(body)
        else:  # query protocol (SNS): form fields
            request = dict(params.get("body") or {}) if isinstance(params.get("body"), dict) else {}
        if not when(request):
            return None
        body = {"__type": code, "message": message}
        response = AWSResponse("https://aws.invalid", status, {"x-amzn-ErrorType": code}, _Raw(json.dumps(body).encode()))
        return response, {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}

    client.meta.events.register(f"before-call.{client.meta.service_model.service_id.hyphenize()}.{operation}", answer)


def refuse_writes_of(stack: Stack, job_id: str) -> None:
    """DynamoDB refuses every UpdateItem of one job's item, as it refuses an item past 400 KB
    (moto would apply such an update partially; the real service rejects it whole)."""
    refuse(
        stack.store._client,
        "UpdateItem",
        "ValidationException",
        "Item size has exceeded the maximum allowed size",
        when=lambda params: params.get("Key", {}).get("JobId", {}).get("S") == job_id,
    )


def statuses(job) -> list[str]:
    return [h.to_status.value for h in job.history]


# --- 1. one job's failure never aborts a tick or a sweep for the others ----------------------


def test_a_job_whose_writes_dynamodb_refuses_does_not_stop_the_launcher_for_the_jobs_behind_it(stack):
    poisoned = stack.submit("huge")
    behind = [stack.submit(f"behind-{i}") for i in range(3)]
    refuse_writes_of(stack, poisoned.job_id)

    report = stack.launch()
    assert report["errors"] == 1
    assert [stack.store.get(j.job_id).status for j in behind] == [S.LAUNCHED] * 3
    stack.launch()  # and the next tick too
    assert stack.store.get(poisoned.job_id).status is S.NEW


def test_a_job_whose_writes_dynamodb_refuses_does_not_abort_the_monitor_sweep(stack):
    first, second = stack.submit("huge"), stack.submit("fine")
    stack.launch()
    stack.clock.advance(60)
    stack.sagemaker.drain_events()  # lost: only the sweep can tell
    refuse_writes_of(stack, first.job_id)

    report = stack.sweep()
    assert report["errors"] == 1
    assert stack.store.get(second.job_id).status is S.IN_PROGRESS


# --- 2. InternalServerError: backoff and a bound -----------------------------------------------


def test_attempts_failing_with_internal_server_error_back_off_and_end_failed_after_a_bound(stack):
    job = stack.submit("unlucky", hp={"trainbot_standin_outcome": "InternalServerError"})
    [job] = stack.run_until_settled([job.job_id], max_ticks=400, seconds=60)
    assert job.status is S.FAILED
    assert job.attempts[-1].number == SERVICE_FAILURES_MAX, [h.reason for h in job.history][-3:]
    assert "internal error" in job.history[-1].reason and "InternalServerError" in job.history[-1].reason
    assert all(a.failure_class is FailureClass.THROTTLING for a in job.attempts)
    # Each retry waited: the next attempt was claimed well after the last one ended.
    for before, after in zip(job.attempts, job.attempts[1:], strict=False):
        assert (after.claimed_at - before.ended_at).total_seconds() >= 30


# --- 3. head-of-line: a job whose type has room launches whatever waits ahead ----------------


@pytest.fixture
def limited(moto_aws):
    built = Stack(env={"TRAINBOT_INSTANCE_LIMITS": '{"ml.p4d.24xlarge": 1}'}, duration=7200)
    yield built
    built.close()


def test_a_job_on_an_idle_type_launches_within_two_ticks_behind_a_long_queue_of_a_full_type(limited):
    stack = limited
    sweep = [stack.submit(f"big-{i}", hp={"instance": "ml.p4d.24xlarge", "max_runtime": "86400"}) for i in range(120)]
    stack.tick(30)
    # An hour later, fair share puts Bob's job after the first 60 of Alice's sweep.
    stack.clock.advance(3600)
    bobs = stack.submit("small", actor=BOB)

    stack.tick(30)
    stack.tick(30)
    assert stack.store.get(bobs.job_id).status in (S.LAUNCHED, S.IN_PROGRESS)
    assert stack.store.get(sweep[0].job_id).status in (S.LAUNCHED, S.IN_PROGRESS)

    # The waiting sweep is not read again while its type is full: a tick costs what it does.
    stack.store.metrics.reset()
    stack.launch()
    assert stack.store.metrics.items_read <= 2 + 2  # the active jobs, and the parked types
    assert stack.unsettled() == 121

    # When the running one ends, the next of the sweep launches.
    [first] = stack.run_until_settled([sweep[0].job_id], seconds=600)
    assert first.status is S.COMPLETED
    stack.tick(30)
    assert stack.store.get(sweep[1].job_id).status in (S.LAUNCHED, S.IN_PROGRESS)


# --- 4. a retry after a stop starts a new attempt -------------------------------------------------


class StopDuringCreate:
    """A SageMaker client whose first CreateTrainingJob is overtaken by a user's stop."""

    def __init__(self, client, stop) -> None:
        self._client = client
        self._stop = stop
        self.done = False

    def create_training_job(self, **request):
        if not self.done:
            self.done = True
            self._stop()
        return self._client.create_training_job(**request)

    def __getattr__(self, name):
        return getattr(self._client, name)


@pytest.fixture
def racing(moto_aws):
    holder: dict[str, Any] = {}
    built = Stack(sagemaker_client=lambda client: StopDuringCreate(client, lambda: holder["stop"]()))
    yield built, holder
    built.close()


def test_a_retry_after_a_stop_during_the_create_starts_a_new_attempt(racing):
    stack, holder = racing
    job = stack.submit("raced")
    holder["stop"] = lambda: stack.jobs.stop(job.job_id, ALICE)
    stack.launch()
    assert stack.store.get(job.job_id).status is S.STOPPED
    [job] = stack.run_until_settled([job.job_id])  # the orphan is stopped

    stack.clock.advance(LAUNCH_LEASE.total_seconds())  # a retry inside the launcher's claim waits for it
    stack.jobs.retry(job.job_id, ALICE)
    [job] = stack.run_until_settled([job.job_id])
    assert job.status is S.COMPLETED, [h.reason for h in job.history]
    assert [a.name for a in job.attempts] == [f"{job.job_id}-a1", f"{job.job_id}-a2"]
    assert job.attempts[0].outcome is AttemptOutcome.STOPPED
    assert stack.sagemaker.created_names == [f"{job.job_id}-a1", f"{job.job_id}-a2"]


# --- 5. MaxRuntimeExceeded / MaxWaitTimeExceeded are failures that name the limit -------------


def test_a_job_stopped_by_sagemaker_at_its_max_runtime_fails_naming_the_limit(stack):
    job = stack.submit("slow", hp={"trainbot_standin_duration": "500", "max_runtime": "300"})
    [job] = stack.run_until_settled([job.job_id])
    described = stack.sagemaker.describe_job(job.attempts[0].name)
    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
    assert job.status is S.FAILED and len(job.attempts) == 1
    assert "max_runtime (300 s)" in job.history[-1].reason
    assert "outside Trainbot" not in " ".join(h.reason for h in job.history)


def test_a_spot_job_stopped_at_its_max_wait_waited_for_capacity_and_is_retried_naming_the_limit(stack):
    """Its run fits in max_runtime; waiting for spot capacity ate the rest of max_wait: capacity
    (free, bounded by the capacity wait), not the user's limit."""
    args = job_request(trainbot_standin_duration="500", max_runtime="440").model_copy(
        update={
            "EnableManagedSpotTraining": True,
            "StoppingCondition": job_request().StoppingCondition.model_copy(update={"MaxRuntimeInSeconds": 440, "MaxWaitTimeInSeconds": 450}),
        }
    )
    job = stack.submit("spot", job_args=args)
    for _ in range(200):
        stack.tick(30)
        job = stack.store.get(job.job_id)
        if job.attempts and job.attempts[0].ended_at is not None:
            break
    described = stack.sagemaker.describe_job(job.attempts[0].name)
    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Stopped", "MaxWaitTimeExceeded")
    assert job.status is S.RETRYING and job.attempts[0].failure_class is FailureClass.CAPACITY and job.algorithm_failures == 0
    assert "max_wait (450 s)" in job.history[-1].reason


# --- 6. the sweep reaches every active job, and the outbox, under load ----------------------------


class DwindlingContext(FakeContext):
    """A Lambda context whose remaining time drops by ``step_ms`` each time it is asked."""

    def __init__(self, start_ms: int, step_ms: int) -> None:
        super().__init__(remaining_ms=start_ms)
        self.step_ms = step_ms

    def get_remaining_time_in_millis(self) -> int:
        self.remaining_ms -= self.step_ms
        return self.remaining_ms


def test_successive_sweeps_walk_all_active_jobs_and_still_drain_the_outbox(stack):
    # The long-running ones are the least recently changed: every sweep starts with them, and
    # there are more of them than one sweep has time to describe.
    long_ones = [stack.submit(f"long-{i}", hp={"trainbot_standin_duration": "100000"}) for i in range(20)]
    stack.tick(30)
    stack.tick(30)
    short_ones = [stack.submit(f"short-{i}", hp={"trainbot_standin_duration": "100"}) for i in range(3)]
    stack.tick(30)
    stack.tick(30)
    assert {j.status for j in stack.store.get_many([j.job_id for j in long_ones + short_ones])} == {S.IN_PROGRESS}
    # A change whose notification could not be sent waits in the outbox.
    sns_client = stack.container.notifiers[0]._client
    down = {"on": True}
    refuse(sns_client, "Publish", "InternalError", "SNS is down", when=lambda _p: down["on"], status=500)
    quiet = stack.submit("quiet")
    down["on"] = False
    # (Quiet changes of the others wait too, not yet due: backend.domain.notice.)
    assert quiet.job_id in stack.store.outbox_job_ids()

    stack.clock.advance(600)
    stack.sagemaker.drain_events()  # the short ones completed, but the events are lost
    # Each describe takes 2 s of a sweep that starts with 50 s left.
    for _ in range(10):
        stack.monitor_handler({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}, DwindlingContext(52_000, 2_000))

    assert [stack.store.get(j.job_id).status for j in short_ones] == [S.COMPLETED] * 3
    assert stack.store.outbox_job_ids(due_by=stack.container.clock()) == []


# --- 7. a Stopping job SageMaker no longer knows ----------------------------------------------------


def test_a_stopping_job_whose_training_job_sagemaker_forgot_ends_stopped_and_the_sweep_goes_on(stack):
    forgotten, other = stack.submit("forgotten"), stack.submit("other")
    stack.tick(30)
    stack.jobs.stop(forgotten.job_id, ALICE)
    assert stack.store.get(forgotten.job_id).status is S.STOPPING
    name = stack.store.get(forgotten.job_id).attempts[0].name
    refuse(
        stack.container.backend._client,
        "DescribeTrainingJob",
        "ValidationException",
        "Requested resource not found.",
        when=lambda params: params.get("TrainingJobName") == name,
    )
    stack.clock.advance(1200)
    stack.sagemaker.drain_events()
    report = stack.sweep()
    assert report["errors"] == 0
    job = stack.store.get(forgotten.job_id)
    assert job.status is S.STOPPED and job.attempts[0].outcome is AttemptOutcome.STOPPED
    assert stack.store.get(other.job_id).status is S.COMPLETED


# --- also noted: the capacity clock ends when an attempt gets its instances -----------------------


def test_the_capacity_clock_is_not_reset_when_an_attempt_gets_its_instances(stack):
    """Spot instances can be taken back after any start: the clock runs from the first wait."""
    stack.sagemaker.script_create(None, "ResourceLimitExceeded")
    job = stack.submit("waited", hp={"trainbot_standin_duration": "3000"})
    stack.launch()
    assert stack.store.get(job.job_id).capacity_wait_since is not None
    for _ in range(80):
        stack.tick(30)
        if stack.store.get(job.job_id).attempts[-1].started_at is not None and stack.store.get(job.job_id).status is S.IN_PROGRESS:
            stack.tick(30)
            break
    job = stack.store.get(job.job_id)
    assert job.status is S.IN_PROGRESS
    assert job.capacity_wait_since is not None


def test_creates_that_always_fail_while_describe_is_refused_end_failed_naming_both(stack):
    """Every CreateTrainingJob answers 500 and the role may not DescribeTrainingJob: nothing
    can ever tell whether the attempt exists. The job fails past the service-error bound,
    naming both causes, and a stop is sent for the name in case it does exist (found by the
    simulator: it stayed Retrying for ever)."""
    from infra.local.standins.sagemaker import INTERNAL_FAILURE

    stack.sagemaker.script_create(None, INTERNAL_FAILURE, times=1000)
    refuse(
        stack.container.extras["sagemaker_client"], "DescribeTrainingJob", "AccessDeniedException",
        "User is not authorized to perform: sagemaker:DescribeTrainingJob", when=lambda _params: True,
    )
    job = stack.submit("unseen")
    [job] = stack.run_until_settled([job.job_id], max_ticks=400, seconds=60)
    assert job.status is S.FAILED, [h.reason for h in job.history][-2:]
    reason = job.history[-1].reason
    assert "service error" in reason and "may not look it up" in reason and "AccessDenied" in reason
    assert stack.sagemaker.calls["StopTrainingJob"] == 1

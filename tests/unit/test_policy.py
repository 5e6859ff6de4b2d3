"""The retry policy: classification of each failure class, backoff bounds, decisions."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend.domain.model import FailureClass as F
from backend.domain.policy import (
    Action,
    Classification,
    RetryPolicy,
    classify_create_error,
    classify_failure_reason,
    full_jitter_delay,
)
from tests.conftest import T0, make_job

LIMIT_MSG = (
    "The account-level service limit 'ml.p4d.24xlarge for training job usage' is 4 Instances, with current "
    "utilization of 4 Instances and a request delta of 1 Instances. Please use AWS Service Quotas to request an increase."
)
ZERO_MSG = LIMIT_MSG.replace("is 4 Instances", "is 0 Instances")


@pytest.mark.parametrize(
    ("code", "message", "status", "expected"),
    [
        ("ResourceLimitExceeded", LIMIT_MSG, 400, F.QUOTA),
        ("ResourceLimitExceeded", ZERO_MSG, 400, F.USER),
        ("ThrottlingException", "Rate exceeded", 400, F.THROTTLING),
        ("InternalFailure", "oops", 500, F.THROTTLING),
        ("", "Bad gateway", 502, F.THROTTLING),
        ("ServiceUnavailable", "busy", 503, F.THROTTLING),
        ("ValidationException", "Could not find role", 400, F.USER),
        ("AccessDeniedException", "not allowed", 400, F.USER),
        ("ResourceNotFound", "no such image", 400, F.USER),
        ("SomethingNew", "?", 400, F.UNKNOWN),
    ],
)
def test_create_errors_are_classified_by_code(code, message, status, expected):
    assert classify_create_error(code, message, instance_type="ml.p4d.24xlarge", http_status=status).failure_class is expected


def test_a_zero_instance_quota_tells_the_user_to_request_an_increase():
    reason = classify_create_error("ResourceLimitExceeded", ZERO_MSG, instance_type="ml.p4d.24xlarge").reason
    assert "quota increase" in reason and "ml.p4d.24xlarge" in reason


@pytest.mark.parametrize(
    ("reason", "secondary", "expected"),
    [
        ("CapacityError: Unable to provision requested ML compute capacity.", "", F.CAPACITY),
        ("AlgorithmError: ExecuteUserScriptError: exit code 1", "", F.ALGORITHM),
        ("ClientError: Data download failed", "", F.USER),
        ("InternalServerError: We encountered an internal error.", "", F.THROTTLING),
        ("", "MaxRuntimeExceeded", F.USER),
        ("MaxRuntimeExceeded: Training job exceeded its max runtime", "", F.USER),
        ("", "", F.USER),
    ],
)
def test_finished_attempts_are_classified_by_failure_reason_prefix(reason, secondary, expected):
    assert classify_failure_reason(reason, secondary_status=secondary).failure_class is expected


@given(
    retry=st.integers(min_value=0, max_value=500),
    base=st.floats(min_value=0.001, max_value=3600),
    cap=st.floats(min_value=0.001, max_value=86400),
    seed=st.integers(),
)
def test_full_jitter_backoff_stays_within_zero_and_the_capped_exponential(retry, base, cap, seed):
    delay = full_jitter_delay(retry, base=base, cap=cap, rng=random.Random(seed))
    assert 0 <= delay <= min(cap, base * 2**retry)


def test_backoff_grows_on_average_until_the_cap():
    rng = random.Random(7)
    means = [sum(full_jitter_delay(r, base=60, cap=1800, rng=rng) for _ in range(2000)) / 2000 for r in range(8)]
    assert means[0] < means[1] < means[2] < means[3]
    assert 800 < means[7] < 1000  # capped at 1800: the mean of uniform(0, 1800) is 900


POLICY = RetryPolicy(base_seconds=60, max_seconds=1800, capacity_max_wait_seconds=3600)


def test_capacity_retries_are_free_and_backed_off():
    job = make_job()
    decision = POLICY.decide(job, Classification(F.CAPACITY, "CapacityError: none"), now=T0, rng=random.Random(1))
    assert decision.action is Action.RETRY
    assert not decision.spends_budget
    assert 0 <= decision.delay_seconds <= 60


def test_capacity_retries_give_up_after_the_max_wait_with_a_clear_reason():
    job = make_job().model_copy(update={"capacity_wait_since": T0})
    decision = POLICY.decide(job, Classification(F.QUOTA, "ResourceLimitExceeded: busy"), now=T0 + timedelta(hours=1))
    assert decision.action is Action.FAIL
    assert "no capacity on ml.g5.xlarge for 1 h" in decision.reason


def test_algorithm_errors_spend_the_budget_then_fail():
    job = make_job(retry_budget=2)
    first = POLICY.decide(job, Classification(F.ALGORITHM, "AlgorithmError: x"), now=T0)
    assert first.action is Action.RETRY and first.spends_budget
    spent = job.model_copy(update={"algorithm_failures": 2})
    last = POLICY.decide(spent, Classification(F.ALGORITHM, "AlgorithmError: x"), now=T0)
    assert last.action is Action.FAIL
    assert "retry budget 2" in last.reason


def test_a_zero_budget_fails_on_the_first_algorithm_error():
    job = make_job(retry_budget=0)
    assert POLICY.decide(job, Classification(F.ALGORITHM, "AlgorithmError: x"), now=T0).action is Action.FAIL


@pytest.mark.parametrize(
    ("cls", "action"),
    [(F.USER, Action.FAIL), (F.THROTTLING, Action.RETRY), (F.UNKNOWN, Action.KEEP), (F.STOPPED, Action.STOP)],
)
def test_other_classes_map_to_their_action(cls, action):
    assert POLICY.decide(make_job(), Classification(cls, "r"), now=T0).action is action


def test_an_attempt_sagemaker_failed_internally_is_retried_with_backoff_until_a_bound():
    from backend.domain.model import Attempt, AttemptOutcome, attempt_name
    from backend.domain.policy import SERVICE_FAILURES_MAX

    job = make_job()
    for number in range(1, SERVICE_FAILURES_MAX + 1):
        failed = Attempt(
            number=number, name=attempt_name(job.job_id, number), claimed_at=T0,
            outcome=AttemptOutcome.FAILED, failure_class=F.THROTTLING,
        )
        job = job.model_copy(update={"attempts": job.with_attempt(failed)})
        decision = POLICY.decide(job, Classification(F.THROTTLING, "InternalServerError: oops"), now=T0)
        if number < SERVICE_FAILURES_MAX:
            assert decision.action is Action.RETRY and decision.delay_seconds >= POLICY.base_seconds / 2
            assert not decision.spends_budget
    assert decision.action is Action.FAIL
    assert f"{SERVICE_FAILURES_MAX} attempts in a row" in decision.reason


def _ended(job, number: int, cls: F):
    from backend.domain.model import Attempt, AttemptOutcome, attempt_name

    failed = Attempt(number=number, name=attempt_name(job.job_id, number), claimed_at=T0, outcome=AttemptOutcome.FAILED, failure_class=cls)
    return job.model_copy(update={"attempts": job.with_attempt(failed)})


def test_capacity_losses_between_internal_errors_do_not_restart_the_internal_error_streak():
    """The streak counts internal errors since the job last made progress; a capacity or quota
    loss got the job no further, so internal errors alternating with them still end the job."""
    from backend.domain.policy import SERVICE_FAILURES_MAX, service_failure_streak

    job, number, internal = make_job(), 0, 0
    while internal < SERVICE_FAILURES_MAX:
        number += 1
        job = _ended(job, number, F.THROTTLING)
        internal += 1
        decision = POLICY.decide(job, Classification(F.THROTTLING, "InternalServerError: oops"), now=T0)
        if internal < SERVICE_FAILURES_MAX:
            assert decision.action is Action.RETRY
            number += 1
            job = _ended(job, number, F.CAPACITY if number % 4 else F.QUOTA)
    assert service_failure_streak(job) == SERVICE_FAILURES_MAX - 1
    assert decision.action is Action.FAIL and f"{SERVICE_FAILURES_MAX} attempts in a row" in decision.reason


def test_an_algorithm_error_between_internal_errors_ends_the_streak():
    from backend.domain.policy import service_failure_streak

    job = make_job()
    for number, cls in enumerate([F.THROTTLING, F.THROTTLING, F.ALGORITHM, F.THROTTLING, F.CAPACITY, F.THROTTLING], start=1):
        job = _ended(job, number, cls)
    # Before the current attempt (6): attempt 4, past the capacity loss (5), up to the algorithm error (3).
    assert service_failure_streak(job) == 1


def test_a_failure_reason_naming_max_runtime_is_told_in_trainbots_words_with_the_limit():
    """What a person reads when SageMaker's FailureReason (not its secondary status) names the
    limit: Trainbot's sentence with the job's own max_runtime, not SageMaker's raw text."""
    told = classify_failure_reason("MaxRuntimeExceeded: Training job runtime exceeded MaxRuntimeInSeconds", max_runtime_seconds=3600)
    assert told.failure_class is F.USER
    assert told.reason == "MaxRuntimeExceeded: the job ran longer than its max_runtime (3600 s); SageMaker stopped it"

"""The retry policy at its edges: the exact reason each failure class tells the user, the budget
and the capacity wait at their boundaries, the backoff ceiling per retry, and the attempt cap."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from backend.domain.model import MAX_ATTEMPTS, Attempt, AttemptOutcome
from backend.domain.model import FailureClass as F
from backend.domain.policy import (
    Action,
    Classification,
    Decision,
    RetryPolicy,
    classify_create_error,
    classify_failure_reason,
    full_jitter_delay,
    next_attempt_time,
)
from tests.conftest import T0, make_job

POLICY = RetryPolicy(base_seconds=60, max_seconds=1800, capacity_max_wait_seconds=3600)
ZERO = "The account-level service limit 'ml.p5.48xlarge for training job usage' is 0 Instances"


class Ceiling(random.Random):
    """An rng that answers every ``uniform(a, b)`` with ``b``: the backoff's ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


def _with_attempts(count: int, **changes):
    attempts = [
        Attempt(number=n, name=f"bert-abc123-a{n}", claimed_at=T0, outcome=AttemptOutcome.FAILED) for n in range(1, count + 1)
    ]
    return make_job().model_copy(update={"attempts": attempts, **changes})


# --- classifying create errors ---------------------------------------------------------------


def test_a_zero_quota_names_the_instance_type_or_says_this_instance_type():
    named = classify_create_error("ResourceLimitExceeded", ZERO, instance_type="ml.p5.48xlarge")
    assert named == Classification(
        F.USER,
        "the account's quota for ml.p5.48xlarge training is 0 instances: request a quota increase for "
        "'ml.p5.48xlarge for training job usage' in AWS Service Quotas, or pick another instance type "
        f"(SageMaker said: {ZERO})",
        zero_quota=True,
    )
    unnamed = classify_create_error("ResourceLimitExceeded", ZERO.upper())  # the message's case does not matter
    assert unnamed.failure_class is F.USER
    assert unnamed.reason.startswith("the account's quota for this instance type training is 0 instances")


def test_a_quota_smaller_than_the_request_fails_at_once_naming_the_quota_and_the_request():
    message = (
        "The account-level service limit 'ml.p4d.24xlarge for training job usage' is 2 Instances, with current "
        "utilization of 0 Instances and a request delta of 4 Instances. Please use AWS Service Quotas to request "
        "an increase for this quota."
    )
    refused = classify_create_error("ResourceLimitExceeded", message, instance_type="ml.p4d.24xlarge")
    assert refused.failure_class is F.USER and refused.zero_quota
    assert refused.reason.startswith(
        "the account's quota for ml.p4d.24xlarge training is 2 instances, fewer than the 4 this job asks for: "
        "request a quota increase for 'ml.p4d.24xlarge for training job usage' in AWS Service Quotas"
    )
    assert POLICY.decide(make_job(), refused, now=T0).action is Action.FAIL


def test_a_quota_the_request_fits_once_others_finish_retries():
    message = (
        "The account-level service limit 'ml.p4d.24xlarge for training job usage' is 4 Instances, with current "
        "utilization of 4 Instances and a request delta of 4 Instances. Please use AWS Service Quotas to request "
        "an increase for this quota."
    )
    assert classify_create_error("ResourceLimitExceeded", message).failure_class is F.QUOTA


def test_a_quota_in_use_retries_with_sagemakers_words():
    assert classify_create_error("ResourceLimitExceeded", "is 4 Instances") == Classification(
        F.QUOTA, "ResourceLimitExceeded: is 4 Instances"
    )
    assert classify_create_error("ResourceLimitExceeded", "is 10 Instances").failure_class is F.QUOTA  # not "0 Instances"


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("", 500, Classification(F.THROTTLING, "500: m", service_error=True)),
        ("", 499, Classification(F.UNKNOWN, "499: m")),
        ("Throttling", 400, Classification(F.THROTTLING, "Throttling: m")),
        ("RequestTimeout", 0, Classification(F.THROTTLING, "RequestTimeout: m", service_error=True)),
        ("CustomValidationException", 400, Classification(F.USER, "CustomValidationException: m")),
        ("MissingParameter", 400, Classification(F.USER, "MissingParameter: m")),
        ("SomethingNew", 0, Classification(F.UNKNOWN, "SomethingNew: m")),
        ("", 0, Classification(F.UNKNOWN, "0: m")),
    ],
)
def test_create_errors_keep_the_code_or_status_in_the_reason(code, status, expected):
    assert classify_create_error(code, "m", http_status=status) == expected


@pytest.mark.parametrize(
    ("reason", "secondary", "expected"),
    [
        ("", "MaxRuntimeExceeded", Classification(F.USER, "MaxRuntimeExceeded: the job ran longer than its max_runtime; SageMaker stopped it")),
        ("MaxRuntimeExceeded: over", "", Classification(F.USER, "MaxRuntimeExceeded: the job ran longer than its max_runtime; SageMaker stopped it")),
        # SageMaker's stopping condition wins over the container's last words: the limit is named.
        ("AlgorithmError: x", "MaxRuntimeExceeded", Classification(F.USER, "MaxRuntimeExceeded: the job ran longer than its max_runtime; SageMaker stopped it")),
        ("InsufficientCapacityError: none", "", Classification(F.CAPACITY, "InsufficientCapacityError: none")),
        ("ResourceLimitExceeded: quota", "", Classification(F.QUOTA, "ResourceLimitExceeded: quota")),
        ("InternalFailure: oops", "", Classification(F.THROTTLING, "InternalFailure: oops")),
        (" AlgorithmError : spaced", "", Classification(F.ALGORITHM, " AlgorithmError : spaced")),
        ("", "", Classification(F.USER, "SageMaker reported the job Failed without a reason")),
        ("Something: else", "Completed", Classification(F.USER, "Something: else")),
    ],
)
def test_finished_attempts_keep_sagemakers_reason(reason, secondary, expected):
    assert classify_failure_reason(reason, secondary_status=secondary) == expected


# --- backoff ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("retry", "ceiling"), [(0, 60), (1, 120), (2, 240), (4, 960), (5, 1800), (40, 1800)])
def test_the_backoff_ceiling_doubles_per_retry_up_to_the_cap(retry, ceiling):
    assert full_jitter_delay(retry, base=60, cap=1800, rng=Ceiling()) == ceiling


def test_an_uncapped_backoff_stops_doubling_at_two_to_the_62nd():
    assert full_jitter_delay(10_000, base=1, cap=float("inf"), rng=Ceiling()) == 2.0**62


def test_the_backoff_uses_the_module_rng_when_given_none():
    random.seed(3)
    expected = random.Random(3).uniform(0, 60)
    assert full_jitter_delay(0, base=60, cap=1800) == expected


@pytest.mark.parametrize(("attempts", "ceiling"), [(0, 60), (1, 60), (2, 120), (3, 240)])
def test_a_retry_waits_up_to_the_ceiling_of_the_retries_so_far(attempts, ceiling):
    decision = POLICY.decide(_with_attempts(attempts), Classification(F.CAPACITY, "c"), now=T0, rng=Ceiling())
    assert decision == Decision(Action.RETRY, "c", F.CAPACITY, delay_seconds=ceiling, spends_budget=False)
    assert next_attempt_time(T0, decision) == T0 + timedelta(seconds=ceiling)


# --- decisions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "action"), [(0, Action.RETRY), (1, Action.RETRY), (2, Action.FAIL), (3, Action.FAIL)]
)
def test_the_algorithm_budget_of_two_allows_exactly_two_resubmissions(failures, action):
    job = make_job(retry_budget=2).model_copy(update={"algorithm_failures": failures})
    decision = POLICY.decide(job, Classification(F.ALGORITHM, "AlgorithmError: x"), now=T0, rng=Ceiling())
    assert decision.action is action and decision.spends_budget and decision.failure_class is F.ALGORITHM
    if action is Action.FAIL:
        assert decision.reason == f"algorithm error on {failures + 1} attempts (retry budget 2): AlgorithmError: x"
        assert decision.delay_seconds == 0
    else:
        assert decision.reason == "AlgorithmError: x" and decision.delay_seconds == 60


@pytest.mark.parametrize(("budget", "failures_allowed"), [(0, 0), (1, 1), (5, 5)])
def test_each_budget_allows_exactly_that_many_resubmissions(budget, failures_allowed):
    job = make_job(retry_budget=budget)
    last_retry = job.model_copy(update={"algorithm_failures": failures_allowed - 1})
    first_fail = job.model_copy(update={"algorithm_failures": failures_allowed})
    cls = Classification(F.ALGORITHM, "AlgorithmError: x")
    if failures_allowed:
        assert POLICY.decide(last_retry, cls, now=T0).action is Action.RETRY
    assert POLICY.decide(first_fail, cls, now=T0).action is Action.FAIL


@pytest.mark.parametrize(
    ("waited", "action"), [(timedelta(0), Action.RETRY), (timedelta(seconds=3599), Action.RETRY), (timedelta(seconds=3600), Action.FAIL)]
)
def test_capacity_retries_go_on_until_exactly_the_max_wait(waited, action):
    job = make_job().model_copy(update={"capacity_wait_since": T0})
    decision = POLICY.decide(job, Classification(F.QUOTA, "ResourceLimitExceeded: busy"), now=T0 + waited, rng=Ceiling())
    assert decision.action is action and not decision.spends_budget
    if action is Action.FAIL:
        assert decision.reason == (
            "no capacity on ml.g5.xlarge for 1 h: Trainbot stopped waiting; last: ResourceLimitExceeded: busy"
        )


def test_the_capacity_wait_starts_now_for_a_job_that_has_not_waited_and_is_told_in_minutes_or_hours():
    policy = RetryPolicy(capacity_max_wait_seconds=0)
    decision = policy.decide(make_job(), Classification(F.CAPACITY, "c"), now=T0)
    assert decision.action is Action.FAIL and "no capacity on ml.g5.xlarge for 0 min" in decision.reason
    half = RetryPolicy(capacity_max_wait_seconds=5400)
    job = make_job().model_copy(update={"capacity_wait_since": T0})
    assert "for 1.5 h: Trainbot stopped waiting" in half.decide(job, Classification(F.CAPACITY, "c"), now=T0 + timedelta(hours=2)).reason


@pytest.mark.parametrize("cls", [F.CAPACITY, F.QUOTA, F.ALGORITHM])
def test_no_job_is_retried_past_the_last_attempt_name(cls):
    at_cap = _with_attempts(MAX_ATTEMPTS, retry_budget=20)
    decision = POLICY.decide(at_cap, Classification(cls, "r"), now=T0)
    assert decision == Decision(Action.FAIL, f"gave up after {MAX_ATTEMPTS} attempts; last: r", cls)
    below = _with_attempts(MAX_ATTEMPTS - 1, retry_budget=20)
    assert POLICY.decide(below, Classification(cls, "r"), now=T0).action is Action.RETRY


def test_stops_are_not_failures():
    assert POLICY.decide(make_job(), Classification(F.STOPPED, ""), now=T0) == Decision(
        Action.STOP, "stopped by request", F.STOPPED
    )
    assert POLICY.decide(make_job(), Classification(F.STOPPED, "by U1"), now=T0).reason == "by U1"
    assert POLICY.decide(make_job(), Classification(F.USER, "u"), now=T0) == Decision(Action.FAIL, "u", F.USER)


def test_the_defaults_are_the_documented_ones():
    assert RetryPolicy() == RetryPolicy(base_seconds=60.0, max_seconds=1800.0, capacity_max_wait_seconds=86400.0)


def test_an_error_without_a_code_or_status_says_status_zero():
    assert classify_create_error("", "m") == Classification(F.UNKNOWN, "0: m")


def test_a_capacity_give_up_keeps_its_failure_class():
    job = make_job().model_copy(update={"capacity_wait_since": T0})
    decision = POLICY.decide(job, Classification(F.CAPACITY, "c"), now=T0 + timedelta(hours=2))
    assert decision.action is Action.FAIL and decision.failure_class is F.CAPACITY and not decision.spends_budget

"""The retry policy: what kind of failure this is, and what to do about it.

Two inputs are classified: errors from CreateTrainingJob (an error code and message) and
finished attempts (SageMaker's ``FailureReason``, whose prefix names the cause). The decision
then follows the failure table in docs/architecture.md; backoff is exponential with full jitter so a thousand jobs hit
by the same capacity shortage do not come back in lockstep.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from backend.domain.bounds import ATTEMPTS_KEPT, clip
from backend.domain.terms import MAX_ATTEMPTS, FailureClass

if TYPE_CHECKING:
    from backend.domain.model import Job

F = FailureClass

# Codes where SageMaker failed on its side (or the answer was lost): unlike a rate limit, the
# create may have happened, and if it goes on, something is wrong with it.
_SERVICE_ERROR_CODES = frozenset(
    {
        "InternalFailure",
        "InternalServerError",
        "InternalServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
_THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
    }
) | _SERVICE_ERROR_CODES
_USER_CODES = frozenset(
    {
        "ValidationException",
        "AccessDeniedException",
        "AccessDenied",
        "ResourceNotFound",
        "ResourceNotFoundException",
        "UnrecognizedClientException",
        "InvalidParameterValue",
        "MissingParameter",
    }
)
# SageMaker's ResourceLimitExceeded: "The account-level service limit '<type> for training job
# usage' is 2 Instances, with current utilization of 0 Instances and a request delta of 4
# Instances." The limit is the account's quota; the delta is what this create asks for.
_QUOTA_LIMIT = re.compile(r"\bis (\d+) Instances\b", re.IGNORECASE)
_REQUEST_DELTA = re.compile(r"\brequest delta of (\d+) Instances\b", re.IGNORECASE)
_UTILIZATION = re.compile(r"\bcurrent utilization of (\d+) Instances\b", re.IGNORECASE)
# Attempts in a row that SageMaker may fail with an internal error before the job is failed:
# AWS documents InternalServerError as retryable, not as free forever. With the default
# backoff (60 s doubling, 30 min cap) that is a few hours of trying.
SERVICE_FAILURES_MAX = 8
assert SERVICE_FAILURES_MAX <= ATTEMPTS_KEPT, "the streak is counted on the attempts the item keeps"
# CreateTrainingJob calls in a row for one attempt that SageMaker answered with a service error
# (or an error we do not know) before the launcher gives up on it: then, if DescribeTrainingJob
# says the name does not exist, the job fails; with the backoff, a few hours of trying.
CREATE_SERVICE_ERRORS_MAX = 8


@dataclass(frozen=True)
class Classification:
    """A failure's class and the reason to show the user."""

    failure_class: FailureClass
    reason: str
    # ResourceLimitExceeded for a quota that can never fit the request (0 instances, or fewer
    # than the request asks for): a user error for one type, but a job with other types in its
    # list (instance=a,b) falls back instead of failing.
    zero_quota: bool = False
    # A create answered with a service error (5xx, internal failure, timeout), not a rate limit:
    # its outcome is unknown, and the launcher counts these in a row (CREATE_SERVICE_ERRORS_MAX).
    service_error: bool = False
    # ResourceLimitExceeded whose message shows the quota had room for this request
    # (utilization + request <= limit): the refusal is this job's, not its type's, so the
    # launcher backs off this job only instead of holding every job of the type.
    quota_has_room: bool = False

    def __post_init__(self) -> None:
        # SageMaker's reasons run to 1 KB; a job item keeps many of them (see REASON_MAX).
        object.__setattr__(self, "reason", clip(self.reason))


def classify_create_error(code: str, message: str, *, instance_type: str = "", http_status: int = 0) -> Classification:
    """Classify an error answer to CreateTrainingJob."""
    if code == "ResourceLimitExceeded":
        limit, delta = _QUOTA_LIMIT.search(message), _REQUEST_DELTA.search(message)
        quota = int(limit.group(1)) if limit else None
        asked = int(delta.group(1)) if delta else None
        if quota == 0 or (quota is not None and asked is not None and asked > quota):
            # No wait can help: even with nothing else running the quota is below the request.
            what = instance_type or "this instance type"
            size = "0 instances" if quota == 0 else f"{quota} instances, fewer than the {asked} this job asks for"
            return Classification(
                F.USER,
                f"the account's quota for {what} training is {size}: request a quota increase "
                f"for '{what} for training job usage' in AWS Service Quotas, or pick another instance type "
                f"(SageMaker said: {message})",
                zero_quota=True,
            )
        used = _UTILIZATION.search(message)
        room = quota is not None and asked is not None and used is not None and int(used.group(1)) + asked <= quota
        return Classification(F.QUOTA, f"ResourceLimitExceeded: {message}", quota_has_room=room)
    if code in _THROTTLING_CODES or http_status >= 500:
        service_error = code in _SERVICE_ERROR_CODES or http_status >= 500
        return Classification(F.THROTTLING, f"{code or http_status}: {message}", service_error=service_error)
    if code in _USER_CODES or code.endswith("ValidationException"):
        return Classification(F.USER, f"{code}: {message}")
    # An error we have never seen: not a reason to fail a scientist's job, nor to hammer.
    return Classification(F.UNKNOWN, f"{code or http_status}: {message}")


def classify_failure_reason(
    reason: str,
    *,
    secondary_status: str = "",
    max_runtime_seconds: int | None = None,
    max_wait_seconds: int | None = None,
    spot_interrupted: bool = False,
) -> Classification:
    """Classify a finished attempt from SageMaker's ``FailureReason`` (and secondary status).

    SageMaker ends a job at its stopping condition (Stopping, then Stopped) with the secondary
    status naming the condition (API_DescribeTrainingJob, "SecondaryStatus"; sample in
    tests/fixtures/sagemaker_describe_spot_max_runtime.json):

    - ``MaxRuntimeExceeded``: the job ran out of its own time. Running it again would hit the
      same limit, so it fails, naming the limit, whether or not spot interruptions came first.
    - ``MaxWaitTimeExceeded`` (spot only): the job's max wait, its runtime plus the time spent
      waiting for spot capacity, ran out while its runtime had not. It waited for capacity too
      long: capacity, a free retry bounded by the capacity wait.

    ``Interrupted`` is an InProgress secondary status (the spot instances were taken back; the
    job resumes when capacity returns). An interrupted spot job that then failed for capacity,
    or without a reason, lost its capacity, not its code: capacity too."""
    text = reason or ""
    prefix = text.split(":", 1)[0].strip()
    if secondary_status == "MaxRuntimeExceeded" or text.startswith("MaxRuntimeExceeded"):
        limit = f" ({max_runtime_seconds} s)" if max_runtime_seconds else ""
        return Classification(F.USER, f"MaxRuntimeExceeded: the job ran longer than its max_runtime{limit}; SageMaker stopped it")
    if secondary_status == "MaxWaitTimeExceeded" or text.startswith("MaxWaitTimeExceeded"):
        limit = f" ({max_wait_seconds} s)" if max_wait_seconds else ""
        interrupted = "spot interruption: EC2 took the spot instances back and " if spot_interrupted else ""
        return Classification(
            F.CAPACITY,
            f"MaxWaitTimeExceeded: {interrupted}no spot capacity let the job finish within its max_wait{limit}; SageMaker stopped it",
        )
    if spot_interrupted and prefix in {"CapacityError", "InsufficientCapacityError", ""}:
        return Classification(
            F.CAPACITY,
            "spot interruption: EC2 took the spot instances back" + (f" (SageMaker said: {text})" if text else ""),
        )
    if prefix in {"CapacityError", "InsufficientCapacityError"}:
        return Classification(F.CAPACITY, text)
    if prefix == "ResourceLimitExceeded":
        return Classification(F.QUOTA, text)
    if prefix == "AlgorithmError":
        return Classification(F.ALGORITHM, text)
    if prefix in {"InternalServerError", "InternalFailure"}:
        return Classification(F.THROTTLING, text)
    return Classification(F.USER, text or "SageMaker reported the job Failed without a reason")


def full_jitter_delay(retry: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``retry`` (0-based): uniform in
    ``[0, min(cap, base * 2**retry)]`` ("full jitter")."""
    ceiling = min(cap, base * (2 ** min(retry, 62)))
    return (rng or random).uniform(0, ceiling)


class Action(StrEnum):
    RETRY = "retry"
    FAIL = "fail"
    STOP = "stop"
    KEEP = "keep"  # no change: the job stays as it is (due again / looked at next tick)


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    failure_class: FailureClass
    delay_seconds: float = 0.0
    spends_budget: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    """The knobs (from TRAINBOT_RETRY_*): backoff base and cap, and how long free capacity
    retries may go on before the job is failed."""

    base_seconds: float = 60.0
    max_seconds: float = 1800.0
    capacity_max_wait_seconds: float = 24 * 3600.0

    def decide(
        self,
        job: Job,
        classification: Classification,
        *,
        now: datetime,
        rng: random.Random | None = None,
    ) -> Decision:
        """What to do with ``job`` whose current attempt (or create call) failed this way."""
        cls, reason = classification.failure_class, classification.reason
        retries_so_far = max(0, job.attempt_count - 1)
        delay = full_jitter_delay(retries_so_far, base=self.base_seconds, cap=self.max_seconds, rng=rng)
        if job.attempt_count >= MAX_ATTEMPTS and cls in {F.CAPACITY, F.QUOTA, F.ALGORITHM, F.THROTTLING, F.PLAN_ENDED}:
            return Decision(Action.FAIL, f"gave up after {MAX_ATTEMPTS} attempts; last: {reason}", cls)
        if cls is F.STOPPED:
            return Decision(Action.STOP, reason or "stopped by request", cls)
        if cls is F.PLAN_ENDED:
            # The plan's capacity is gone: a retry on it can only wait for an ended plan. With
            # plan_fallback=ondemand it runs again at once, on-demand (the launcher's plan gate
            # spills it over); otherwise it ends Stopped. Neither spends the algorithm budget.
            if job.plan_fallback:
                return Decision(Action.RETRY, f"{reason}; not a failure of your code: running it again on on-demand capacity (plan_fallback=ondemand)", cls)
            return Decision(Action.STOP, f"{reason}; not a failure of your code: retry it on a later plan, or with plan_fallback=ondemand", cls)
        if cls is F.THROTTLING:
            # A finished attempt that SageMaker failed with an internal error (a refused create
            # never gets here: the launcher keeps it due). Retry with backoff, a bounded number
            # of times in a row; it spends neither the algorithm budget nor the capacity wait.
            streak = 1 + service_failure_streak(job)
            if streak >= SERVICE_FAILURES_MAX:
                return Decision(
                    Action.FAIL,
                    f"SageMaker failed {streak} attempts in a row with an internal error; last: {reason}",
                    cls,
                )
            backoff = full_jitter_delay(streak - 1, base=self.base_seconds, cap=self.max_seconds, rng=rng)
            return Decision(Action.RETRY, reason, cls, delay_seconds=max(backoff, self.base_seconds / 2))
        if cls is F.UNKNOWN:
            return Decision(Action.KEEP, reason, cls)
        if cls is F.USER:
            return Decision(Action.FAIL, reason, cls)
        if cls in {F.CAPACITY, F.QUOTA}:
            since = job.capacity_wait_since or now
            waited = (now - since).total_seconds()
            if waited >= self.capacity_max_wait_seconds:
                # In the owner's words: every type it tried and how long, not the setting's name.
                tried = " or ".join(dict.fromkeys(job.instance_type_of(a) for a in job.attempts) or [job.job_args.instance_type])
                return Decision(
                    Action.FAIL,
                    f"no capacity on {tried} for {_wait_words(self.capacity_max_wait_seconds)}: Trainbot stopped waiting; last: {reason}",
                    cls,
                )
            return Decision(Action.RETRY, reason, cls, delay_seconds=delay)
        # ALGORITHM: resubmit while the job's budget lasts
        if job.algorithm_failures + 1 > job.retry_budget:
            return Decision(
                Action.FAIL,
                f"algorithm error on {job.algorithm_failures + 1} attempts (retry budget {job.retry_budget}): {reason}",
                cls,
                spends_budget=True,
            )
        return Decision(Action.RETRY, reason, cls, delay_seconds=delay, spends_budget=True)


def _wait_words(seconds: float) -> str:
    """A capacity wait as a person says it: "15 min", "1 h", "1.5 h"."""
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds / 60:g} min"


# Attempts that got the job no further: lost to capacity or quota before or while running.
_NO_PROGRESS = frozenset({F.CAPACITY, F.QUOTA})


def service_failure_streak(job: Job) -> int:
    """How many attempts before the current one SageMaker failed with an internal error
    (THROTTLING class) since the job last made progress. Attempts lost to capacity or quota in
    between are no progress: they neither count nor end the streak (else internal errors
    alternating with capacity losses would be retried for ever). Any other end (an algorithm
    error, a stop, a run that ended otherwise) is progress and ends it."""
    streak = 0
    for attempt in reversed(job.attempts[:-1]):
        if attempt.failure_class is F.THROTTLING:
            streak += 1
        elif attempt.failure_class not in _NO_PROGRESS:
            break
    return streak


def next_attempt_time(now: datetime, decision: Decision) -> datetime:
    return now + timedelta(seconds=decision.delay_seconds)

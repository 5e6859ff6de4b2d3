"""A job item stays below DynamoDB's 400 KB item limit however often the job is retried.

Measured on the serialized job, not through moto: moto applies an oversized UpdateItem partially
where DynamoDB rejects it whole, so a test near the limit must not trust it. The JSON text of
the item over-counts DynamoDB's size (quotes, braces, commas), so passing here is conservative."""

from __future__ import annotations

from datetime import timedelta

from backend.domain.model import MAX_ATTEMPTS, Attempt, AttemptOutcome, FailureClass, attempt_name, transition
from backend.domain.policy import classify_failure_reason
from backend.domain.status import JobStatus
from tests.conftest import T0, job_args, make_job

S = JobStatus
ITEM_LIMIT = 400 * 1024
INDEX_KEYS = 1024  # QueueKey/QueueSort, OwnerId, CreatedDay, Outbox keys, with their names


def largest_request():
    """A CreateTrainingJob request at SageMaker's own limits (what validation still accepts)."""
    return job_args(
        HyperParameters={f"{i:03d}" + "k" * 253: "v" * 2500 for i in range(100)},
        Tags=[{"Key": f"{i:02d}" + "t" * 126, "Value": "v" * 256} for i in range(50)],
        InputDataConfig=[
            {"ChannelName": f"c{i}", "DataSource": {"S3DataSource": {"S3Uri": "s3://data-bucket/" + "p" * 900}}}
            for i in range(20)
        ],
    )


def size(job) -> int:
    return len(job.model_dump_json(by_alias=True, exclude_none=True).encode()) + INDEX_KEYS


def test_a_job_retried_to_the_attempt_limit_with_long_reasons_stays_below_the_item_limit():
    job = make_job("huge", job_args=largest_request())
    base = size(job)
    reason = "InternalServerError: " + "x" * 1100  # SageMaker's FailureReason runs to 1 KB
    at = T0
    for number in range(1, MAX_ATTEMPTS + 1):
        at += timedelta(minutes=3)
        attempt = Attempt(number=number, name=attempt_name(job.job_id, number), claimed_at=at, launched_at=at)
        job = transition(job, S.LAUNCHED, at=at, reason=f"created {attempt.name}", attempts=job.with_attempt(attempt))
        job = transition(job, S.IN_PROGRESS, at=at, reason="training")
        why = classify_failure_reason(reason)
        failed = attempt.model_copy(
            update={"outcome": AttemptOutcome.FAILED, "failure_class": FailureClass.THROTTLING, "reason": why.reason, "ended_at": at}
        )
        job = transition(job, S.RETRYING, at=at, reason=why.reason, attempts=job.replace_attempt(failed))

    assert job.attempt_count == MAX_ATTEMPTS and job.last_seq == 1 + 3 * MAX_ATTEMPTS
    assert size(job) < ITEM_LIMIT
    # What retries add on top of the request is bounded, and small: a write costs the same on
    # the thousandth attempt as on the tenth.
    assert size(job) - base < 64 * 1024
    assert job.history[0].to_status is S.NEW and job.entry(1) is job.history[0]
    assert job.entry(2) is None  # compacted: the outbox skips it
    assert job.entry(job.last_seq) is job.history[-1]

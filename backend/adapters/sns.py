"""The SNS notifier: one message per status change on ``NOTIFY_TOPIC_ARN``, with message
attributes ``JobId``, ``JobStatus`` and ``Owner`` (String) for subscription filter policies,
a readable subject and a JSON body with the job summary and the reason.

Each message also carries ``dedupKey`` = ``<JobId>#<seq>`` (attribute and body): the outbox
sends a change once, but a publish that succeeded and whose answer was lost is sent again, and
a subscriber recognises that duplicate by its key. On a FIFO topic (``.fifo``) the key is the
``MessageDeduplicationId`` (SNS drops the repeat itself) and the job id the message group."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from backend.domain.forensics import exit_code
from backend.domain.logtail import SNS_TAIL_BYTES, SNS_TAIL_LINES
from backend.domain.status import JobStatus
from backend.domain.times import format_utc
from backend.errors import NotifierUnavailable

if TYPE_CHECKING:
    from backend.domain.model import Job


def dedup_key(job: Job, seq: int) -> str:
    """The same for every publish of change ``seq`` of ``job``, and for nothing else."""
    return f"{job.job_id}#{seq}"


def summary(job: Job, seq: int) -> dict[str, Any]:
    """The JSON body: the job at a glance and the change being told."""
    entry = job.entry(seq)
    assert entry is not None, "the dispatcher skips compacted entries"
    attempt = job.current_attempt
    return {
        "jobId": job.job_id,
        "name": job.name,
        "status": entry.to_status.value,
        "previousStatus": entry.from_status.value if entry.from_status else None,
        "reason": entry.reason,
        "at": format_utc(entry.at),
        "seq": seq,
        "dedupKey": dedup_key(job, seq),
        "owner": {"teamId": job.owner.team_id, "userId": job.owner.user_id},
        "instanceType": job.running_instance_type,  # the current attempt's (a fallback type, maybe)
        "requestedInstanceTypes": job.instance_choices,
        "instanceCount": job.job_args.instance_count,
        "attempts": job.attempt_count,
        "trainingJobName": attempt.name if attempt else None,
        "failureClass": attempt.failure_class.value if attempt and attempt.failure_class else None,
        "sweepId": job.sweep_id,
        **_forensics(job, entry.to_status, entry.at),
    }


def _forensics(job: Job, status: JobStatus, at: datetime) -> dict[str, Any]:
    """For a failure that points at the container: the exit code and a short tail of the log
    (lines already made inert when read; SNS subscribers include e-mail and chat relays)."""
    if status not in (JobStatus.FAILED, JobStatus.RETRYING):
        return {}
    attempts = [a for a in job.attempts if a.claimed_at <= at]
    attempt = attempts[-1] if attempts else None
    if attempt is None or attempt.log_tail is None:
        return {}
    tail = attempt.log_tail
    return {
        "exitCode": exit_code(attempt.reason) or None,
        "logState": tail.state.value,
        "logTail": tail.text(max_lines=SNS_TAIL_LINES, max_bytes=SNS_TAIL_BYTES),
        "logStream": tail.hosts[0].stream if tail.hosts else None,
    }


# Retries per publish after the first try (botocore's ``max_attempts`` config: 3 tries in all):
# with the client's 5 s connect and 10 s read timeouts and backoff, a publish ends within
# backend.domain.notice.SEND_BOUND, so no second dispatcher takes over its delivery lease while
# it may still succeed (tests/unit/test_send_bound.py).
SNS_MAX_ATTEMPTS = 2


class SnsNotifier:
    """:class:`backend.ports.Notifier` publishing to one SNS topic."""

    name = "sns"

    def __init__(self, client: Any, topic_arn: str) -> None:
        self._client = client
        self._topic_arn = topic_arn
        self.published = 0

    def notify(self, job: Job, seq: int) -> None:
        body = summary(job, seq)
        subject = f"Trainbot: {job.name} is {body['status']}"
        if body["reason"]:
            subject += f" ({body['reason']})"
        fifo: dict[str, str] = {}
        if self._topic_arn.endswith(".fifo"):
            fifo = {"MessageDeduplicationId": body["dedupKey"], "MessageGroupId": job.job_id}
        try:
            self._client.publish(
                TopicArn=self._topic_arn,
                # SNS subjects: ASCII, no newlines, at most 100 characters.
                Subject=subject.encode("ascii", "replace").decode().replace("\n", " ")[:100],
                Message=json.dumps(body),
                MessageAttributes={
                    "JobId": {"DataType": "String", "StringValue": job.job_id},
                    "JobStatus": {"DataType": "String", "StringValue": body["status"]},
                    "Owner": {"DataType": "String", "StringValue": job.owner.key},
                    "dedupKey": {"DataType": "String", "StringValue": body["dedupKey"]},
                },
                **fifo,
            )
        except (ClientError, BotoCoreError) as exc:
            raise NotifierUnavailable(f"SNS publish failed: {exc}") from exc
        self.published += 1

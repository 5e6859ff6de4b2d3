"""Training job logs in CloudWatch Logs: the tail of a failed attempt, and when a running one
last wrote a line.

SageMaker writes each host's output to log group ``/aws/sagemaker/TrainingJobs``, stream
``<training-job-name>/algo-<n>-<epoch seconds>``
(https://docs.aws.amazon.com/sagemaker/latest/dg/logging-cloudwatch.html; a sample in
tests/fixtures/cloudwatch_training_job_logs.json). A tail is one DescribeLogStreams
(``logStreamNamePrefix="<name>/"``: the slash keeps ``job-a1`` from matching ``job-a10``) and one
GetLogEvents per host read (``startFromHead=false``, ``limit``), at most TAIL_HOSTS hosts.

Paced and bounded: every call takes a token from this process's bucket
(TRAINBOT_LOGS_CALLS_PER_SECOND; CloudWatch Logs' account quotas are shared with everything else
that reads logs), boto3 retries a throttled call a few times, and a read that still fails never
raises: the tail says it could not be read, and the status change it belongs to goes out without
it (with the console link). Log text is untrusted: every line is made inert here
(:func:`backend.domain.forensics.inert_line`) before anything stores or shows it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from backend.domain.forensics import LOG_GROUP, TAIL_HOSTS, inert_line
from backend.domain.logtail import TAIL_BYTES, TAIL_LINES, TailState
from backend.errors import BackendUnavailable

if TYPE_CHECKING:
    from backend.domain.model import HostTail, LogTail


class Pacer(Protocol):
    """A token bucket (backend.services.pacing.TokenBucket) shared by this process's calls."""

    def acquire(self) -> None: ...
    def penalize(self) -> None: ...
    def reward(self) -> None: ...


# The most streams one DescribeLogStreams returns; a training job has one per instance (<= 100).
_STREAMS_PAGE = 50


class CloudWatchTrainingLogs:
    """:class:`backend.ports.TrainingLogs` over a boto3 ``logs`` client."""

    def __init__(self, client: Any, pacer: Pacer, *, group: str = LOG_GROUP) -> None:
        self._client = client
        self._pacer = pacer
        self._group = group
        self.calls = 0

    def tail(self, training_job_name: str, *, lines: int = TAIL_LINES) -> LogTail:
        """The last ``lines`` of each host's stream (the hosts that stopped writing first come
        first: the one that failed most likely did), kept within TAIL_BYTES. Never raises."""
        from backend.domain.model import HostTail, LogTail  # a failure's first tail builds them

        try:
            streams = self._streams(training_job_name)
        except BackendUnavailable as exc:
            return LogTail(state=TailState.UNREADABLE, note=str(exc)[:200])
        if not streams:
            return LogTail(state=TailState.MISSING, note=f"no log stream named {training_job_name}/…")
        streams.sort(key=lambda s: (s.get("lastEventTimestamp") or 0, s["logStreamName"]))
        read, rest = streams[:TAIL_HOSTS], streams[TAIL_HOSTS:]
        hosts: list[HostTail] = []
        for stream in read:
            name = stream["logStreamName"]
            try:
                events = self._call("get_log_events", logGroupName=self._group, logStreamName=name, startFromHead=False, limit=lines)[
                    "events"
                ]
            except BackendUnavailable as exc:
                if not hosts:
                    return LogTail(state=TailState.UNREADABLE, note=str(exc)[:200], more_hosts=len(rest))
                break  # what was read is shown; the console has the rest
            if events:
                last = max(int(e.get("timestamp", 0)) for e in events)
                hosts.append(
                    HostTail(
                        stream=name,
                        lines=[inert_line(str(e.get("message", ""))) for e in events],
                        last_at=datetime.fromtimestamp(last / 1000, tz=UTC),
                    )
                )
        if not hosts:
            return LogTail(state=TailState.EMPTY, more_hosts=len(rest), note="the log streams have no lines")
        # Kept as it will be shown: within the byte budget.
        kept = _within_budget(hosts)
        return LogTail(state=TailState.READ, hosts=kept, more_hosts=len(rest) + len(hosts) - len(kept))

    def last_line_at(self, training_job_name: str) -> datetime | None:
        """When any host of the training job last wrote a line (None: no line yet); raises
        :class:`BackendUnavailable` when CloudWatch could not say."""
        stamps = [s.get("lastEventTimestamp") for s in self._streams(training_job_name)]
        known = [int(t) for t in stamps if t]
        return datetime.fromtimestamp(max(known) / 1000, tz=UTC) if known else None

    def _streams(self, training_job_name: str) -> list[dict[str, Any]]:
        answer = self._call(
            "describe_log_streams",
            logGroupName=self._group,
            logStreamNamePrefix=f"{training_job_name}/",
            limit=_STREAMS_PAGE,
        )
        return list(answer.get("logStreams", []))

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        self._pacer.acquire()
        self.calls += 1
        try:
            answer: dict[str, Any] = getattr(self._client, operation)(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") == "ResourceNotFoundException":
                return {"logStreams": [], "events": []}  # no log group yet: no stream either
            if error.get("Code") in {"ThrottlingException", "LimitExceededException"}:
                self._pacer.penalize()
            raise BackendUnavailable(f"CloudWatch Logs {operation}: {error.get('Code')}: {error.get('Message')}") from exc
        except BotoCoreError as exc:
            raise BackendUnavailable(f"CloudWatch Logs {operation}: {exc}") from exc
        self._pacer.reward()
        return answer


def _within_budget(hosts: list[HostTail]) -> list[HostTail]:
    """The hosts, in order, with each one's newest lines that still fit TAIL_BYTES in all."""
    kept: list[HostTail] = []
    used = 0
    for host in hosts:
        lines = host.lines[-TAIL_LINES:]
        header = len(host.stream.encode()) + 4
        while lines and used + header + sum(len(line.encode()) + 1 for line in lines) > TAIL_BYTES:
            lines = lines[1:]
        if not lines:
            break
        kept.append(host.model_copy(update={"lines": lines}))
        used += header + sum(len(line.encode()) + 1 for line in lines)
    return kept

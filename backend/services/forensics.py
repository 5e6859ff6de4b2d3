"""Failure forensics for the monitor: the log tail of an attempt that failed in its container,
and the stall warning for a running job that stopped writing its log.

**The tail is read by the monitor, before the failure's transition is written, and stored on the
failed attempt** (so that write carries it: no extra write). The Slack reply and the SNS
message of that change then tell the same lines however often the change is delivered, and
the notifiers (which also run in the bot) need no access to the logs. A read that is throttled
or fails is *not* retried by waiting: the status change must never wait for a log, so the tail is
stored as ``unreadable`` and the reply says so, with the console link to the stream. Reads are
bounded: at most TAILS_PER_MINUTE tails per process (a thousand jobs failing at once must not
stall the monitor on CloudWatch; the rest say "not read", with the link), each one
DescribeLogStreams plus one GetLogEvents per host, at most 4 hosts, paced by the adapter.

**Stall warning** (``stall_alert=45m`` on a job, or the team default
TRAINBOT_STALL_ALERT_SECONDS): the monitor's sweep asks, for at most STALL_CHECKS_PER_SWEEP
running jobs with an alert set (starting after the job the last sweep's checks stopped at, so
all of them are checked in turn), when the job last wrote a line (one DescribeLogStreams). Silent
for longer than the alert: one conditional write records the time of that last line
(``StallWarnedAt``), and only the writer that won posts the warning, so a silence is told once
however many sweeps see it. A later line is a new "last line": when that one goes quiet, a new
warning may follow.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from backend.domain.forensics import wants_tail
from backend.domain.logtail import TailState
from backend.errors import BackendUnavailable, TrainbotError
from backend.ports import Applied, JobRepository, StallNotifier, TrainingLogs

if TYPE_CHECKING:
    from backend.domain.model import Attempt, Job, LogTail

logger = Logger(service="trainbot", child=True)

TAILS_PER_MINUTE = 30
STALL_CHECKS_PER_SWEEP = 25


class Forensics:
    def __init__(
        self,
        store: JobRepository,
        logs: TrainingLogs,
        *,
        clock: Callable[[], datetime],
        stall_notifier: StallNotifier | None = None,
        stall_default_seconds: int = 0,
        monotonic: Callable[[], float] = time.monotonic,
        tails_per_minute: int = TAILS_PER_MINUTE,
        stall_checks_per_sweep: int = STALL_CHECKS_PER_SWEEP,
    ) -> None:
        self._store = store
        self._logs = logs
        self._clock = clock
        self._stall_notifier = stall_notifier
        self._stall_default = stall_default_seconds
        self._monotonic = monotonic
        self._tails_per_minute = tails_per_minute
        self._recent_tails: deque[float] = deque()
        self._stall_checks_per_sweep = stall_checks_per_sweep
        self._stall_checks_left = stall_checks_per_sweep
        self.tails_read = 0
        self.stall_checks = 0

    # --- the tail of a failed attempt ----------------------------------------------------------

    def with_tail(self, job: Job, failed: Attempt, attempts: list[Attempt], failure_reason: str) -> list[Attempt]:
        """``attempts`` with ``failed`` carrying its log tail when its failure points at the
        container; older attempts drop theirs (the item keeps one tail)."""
        if failed.failure_class is None or not wants_tail(failed.failure_class, failure_reason or failed.reason):
            return attempts
        tail = self._read_tail(failed.name)
        return [
            a.model_copy(update={"log_tail": tail})
            if a.number == failed.number
            else (a.model_copy(update={"log_tail": None}) if a.log_tail else a)
            for a in attempts
        ]

    def _read_tail(self, training_job_name: str) -> LogTail:
        now = self._monotonic()
        while self._recent_tails and now - self._recent_tails[0] > 60:
            self._recent_tails.popleft()
        if len(self._recent_tails) >= self._tails_per_minute:
            from backend.domain.model import LogTail

            return LogTail(state=TailState.UNREADABLE, note="not read: too many failures at once")
        self._recent_tails.append(now)
        self.tails_read += 1
        tail = self._logs.tail(training_job_name)
        if tail.state is TailState.UNREADABLE:
            logger.warning("log tail not read; the reply goes out without it", extra={"training_job": training_job_name, "note": tail.note})
        return tail

    # --- stall warnings ----------------------------------------------------------------------------

    def new_sweep(self) -> None:
        self._stall_checks_left = self._stall_checks_per_sweep

    def can_check_stall(self) -> bool:
        """Whether this sweep has stall checks left (STALL_CHECKS_PER_SWEEP)."""
        return self._stall_checks_left > 0

    def stall_seconds(self, job: Job) -> int:
        return self._stall_default if job.stall_alert_seconds is None else job.stall_alert_seconds

    def check_stall(self, job: Job, attempt: Attempt) -> bool:
        """Warn once if running ``job`` has written no log line for its stall alert; whether a
        warning was given."""
        alert = self.stall_seconds(job)
        if alert <= 0 or self._stall_notifier is None or self._stall_checks_left <= 0:
            return False
        self._stall_checks_left -= 1
        self.stall_checks += 1
        try:
            last = self._logs.last_line_at(attempt.name)
        except BackendUnavailable as exc:
            logger.info(
                "could not tell when the job last logged; looking again next sweep", extra={"job_id": job.job_id, "error": str(exc)}
            )
            return False
        since = last or attempt.started_at
        if since is None:
            return False
        silent = (self._clock() - since).total_seconds()
        if silent < alert or job.stall_warned_at == since:
            return False
        try:
            outcome = self._store.update(job, at=self._clock(), stall_warned_at=since)
        except TrainbotError as exc:
            logger.warning("stall mark not written; looking again next sweep", extra={"job_id": job.job_id, "error": str(exc)})
            return False
        if not isinstance(outcome, Applied):
            return False  # someone else moved the job: the next sweep looks again
        try:
            self._stall_notifier.stalled(outcome.job, since, silent)
        except TrainbotError as exc:
            # Marked but not told: at most once, not at least once (a stall warning is advice).
            logger.warning("stall warning not posted", extra={"job_id": job.job_id, "error": str(exc)})
            return False
        return True

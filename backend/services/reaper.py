"""The orphan reaper: the monitor's sweep stops training jobs that no job runs.

A user's stop can land while a launcher is inside CreateTrainingJob: the stop's StopTrainingJob
runs before the create lands, and when the launcher's record of the create is then lost (its
write throttled, its run killed), the job item never learns that ``<JobId>-a<n>`` exists. The
launcher stops such an attempt before the job's next one, a retry before the job moves, and the
monitor when an event of it arrives; nothing stops it when no event arrives and the job never
moves again. The reaper does, without events: each sweep lists the training jobs SageMaker
created since a cursor (ListTrainingJobs, oldest first, a few pages at most), reads the jobs of
the running ones named ``<JobId>-a<n>`` (one batch read a page) and stops each whose job does
not run attempt ``n`` (:func:`verdict`).

The cursor (an entry of the monitor's cursor record) is a creation time: every running job
created before it was judged. It never passes a name whose verdict waits (a create in its
launch window, a stop SageMaker refused for now), so the next sweep judges that one again, and
it stays :data:`MARGIN` behind the sweep's start, so a job a listing shows late is still
listed. Work per run follows what was created since, not history: an idle run is one list
call that finds the newest job again and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools import Logger

from backend.domain.terms import AttemptOutcome, parse_attempt_name
from backend.domain.times import format_utc, parse_utc
from backend.errors import BackendRefused, BackendUnavailable, StoreUnavailable
from backend.ports import LIST_PAGE_MAX, JobRepository, RecordStore, TrainingBackend, TrainingJobSummary, TrainingState
from backend.services.pacing import TokenBucket

if TYPE_CHECKING:
    from backend.domain.model import Job

logger = Logger(service="trainbot", child=True)

# Listing pages one sweep reads at most: 1,000 training jobs, a few seconds at worst.
PAGES = 10
# How far behind the sweep's start the cursor stays: a listing may show a job some time after
# its create (it is eventually consistent), and SageMaker's clock is not ours.
MARGIN = timedelta(minutes=5)
# The cursor's entry in the monitor's cursor record (backend.services.monitor.SWEEP_CURSOR).
ENTRY = "ReapedTo"
# The cursor stands this much before a job it must list again (one whose verdict waits, or the
# last of a listing cut short), so that job and any created in the same millisecond are.
_TICK = timedelta(milliseconds=1)


class Verdict(Enum):
    KEEP = "keep"  # its job runs it (or it is not this table's): leave it
    WAIT = "wait"  # in its launch window: judged again next sweep
    STOP = "stop"  # no job runs it: stop it


def verdict(job: Job | None, number: int) -> Verdict:
    """What to do with a running training job named as attempt ``number`` of ``job`` (as read,
    consistently, after the listing showed it running).

    - No such job: left alone. A Trainbot create always follows the write that records its
      attempt on an existing item, so this name is not this table's (another deployment in the
      account using the same prefix, or a name that only looks like ours).
    - An attempt the item does not know yet (a number past its newest): left alone, for the
      same reason.
    - The job's current attempt, not ended, the job neither ended nor held: claimed and in
      its launch window (the create landed, its record not yet written) it waits; launched, the
      monitor watches it (a stop being sent included): kept.
    - Anything else (the job stopped, ended, held, rejected, or Retrying with another attempt,
      or this attempt marked ended) runs it no more: stopped.
    """
    if job is None or number > job.attempt_count:
        return Verdict.KEEP
    current = job.current_attempt
    if current is not None and current.number == number and not job.is_terminal and not job.is_held:
        if current.outcome is AttemptOutcome.PENDING:
            return Verdict.WAIT
        if current.outcome is AttemptOutcome.RUNNING:
            return Verdict.KEEP
    return Verdict.STOP


class ReaperStore(JobRepository, RecordStore, Protocol):
    """What the reaper needs from the store: jobs by id, and its cursor's record entry."""


@dataclass
class ReapReport:
    listed: int = 0  # training jobs the listing showed (every state)
    stopped: int = 0  # orphans StopTrainingJob was sent for
    waiting: int = 0  # names judged again next sweep: in their launch window, or their stop refused for now
    unknown: bool = False  # could not find out (listing or read refused): not "nothing to reap"


class Reaper:
    def __init__(
        self,
        store: ReaperStore,
        backend: TrainingBackend,
        *,
        pacer: TokenBucket,
        clock: Callable[[], datetime],
        cursor: tuple[str, str],
        pages: int = PAGES,
        page_size: int = LIST_PAGE_MAX,
    ) -> None:
        self._store = store
        self._backend = backend
        self._pacer = pacer
        self._clock = clock
        self._cursor = cursor  # (kind, key) of the record holding ENTRY
        self._pages = pages
        self._page_size = page_size

    def reap(self, position: dict[str, Any] | None) -> ReapReport:
        """List what was created since the cursor (at most ``pages`` pages), stop the orphans
        among the running jobs, and carry the cursor forward up to the first name that waits.
        ``position``: the cursor record's entries as the sweep read them (None: unreadable)."""
        report = ReapReport()
        if position is None:
            # Listing from the start instead would only redo work, and could move the cursor
            # back: the next sweep reaps.
            report.unknown = True
            logger.info("reaper cursor unreadable; reaping next sweep")
            return report
        saved = position.get(ENTRY)
        cursor = parse_utc(saved) if saved else None
        started = self._clock()
        hold: datetime | None = None  # the first name whose verdict waits
        newest: datetime | None = None  # the newest creation time judged before it
        token: str | None = None
        for _ in range(self._pages):
            self._pacer.acquire()
            try:
                page = self._backend.list_created(cursor, next_token=token, limit=self._page_size)
            except (BackendUnavailable, BackendRefused) as exc:
                # Not the pacer's penalty: SageMaker throttles each API on its own, and the
                # pacer's rate is the sweep's Describes'.
                report.unknown = True
                logger.warning("training jobs could not be listed; reaping next sweep", extra={"error": str(exc)})
                break
            report.listed += len(page.jobs)
            settled = self._judge(page.jobs, report)
            for summary in page.jobs:
                if hold is not None:
                    break
                if summary.name in settled:
                    newest = summary.created_at
                else:
                    hold = summary.created_at
            token = page.next_token
            if token is None:
                break
        if hold is not None:
            after: datetime | None = hold - _TICK
        elif newest is not None:
            # A listing cut short (its page cap, a refusal) may have left jobs of the newest
            # one's millisecond to its next page: that millisecond is listed again.
            after = newest if token is None and not report.unknown else newest - _TICK
        else:
            after = None
        if after is not None:
            moved = min(after, started - MARGIN)
            if cursor is None or moved > cursor:
                self._save(moved)
        if report.stopped or report.waiting or report.unknown:
            logger.info("reaper", extra={"reaped": vars(report)})
        return report

    def _judge(self, jobs: Iterable[TrainingJobSummary], report: ReapReport) -> set[str]:
        """Stop the orphans among ``jobs`` (one page); the names settled (not to be judged again)."""
        settled: set[str] = set()
        ours: list[tuple[str, str, int]] = []
        for summary in jobs:
            parsed = parse_attempt_name(summary.name) if summary.state is TrainingState.RUNNING else None
            if parsed is None:
                settled.add(summary.name)  # not running, or not a name of Trainbot's: not ours to stop
            else:
                ours.append((summary.name, *parsed))
        if not ours:
            return settled
        try:
            found = {job.job_id: job for job in self._store.get_many(dict.fromkeys(job_id for _, job_id, _ in ours))}
        except StoreUnavailable as exc:
            report.unknown = True
            logger.warning("jobs of listed training jobs unreadable; reaping next sweep", extra={"error": str(exc)})
            return settled
        for name, job_id, number in ours:
            decided = verdict(found.get(job_id), number)
            if decided is Verdict.KEEP:
                settled.add(name)
            elif decided is Verdict.WAIT:
                report.waiting += 1
            elif self._stop(name, job_id, report):
                settled.add(name)
        return settled

    def _stop(self, name: str, job_id: str, report: ReapReport) -> bool:
        """StopTrainingJob for an orphan; False when SageMaker could not take it now (throttled,
        5xx: the next sweep asks again)."""
        self._pacer.acquire()
        try:
            self._backend.stop(name)
        except BackendUnavailable as exc:
            report.waiting += 1
            logger.warning("orphan stop not sent; next sweep", extra={"job_id": job_id, "attempt": name, "error": str(exc)})
            return False
        except BackendRefused as exc:  # may not stop it (AccessDenied), for good: asking again cannot help
            logger.error("orphan stop refused", extra={"job_id": job_id, "attempt": name, "error": str(exc)})
            return True
        report.stopped += 1
        logger.warning("stopped a training job no job runs", extra={"job_id": job_id, "attempt": name})
        return True

    def _save(self, after: datetime) -> None:
        try:
            # Updates, not a put: the monitor's role may update records, not put them.
            self._store.set_record_entry(*self._cursor, "Position", ENTRY, format_utc(after))
        except StoreUnavailable:
            pass  # the next sweep lists from the old cursor: more work, not less safety

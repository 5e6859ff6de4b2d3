"""The queue as the launcher sees it, and why each queued job waits.

Reads what a launcher tick reads (the Queue index's ready, waiting and claimed partitions, the
Active index for instances in use, the instance-type holds record) plus the configured limits
and capacity-wait budget, and hands them to :func:`backend.domain.waiting.wait_reasons`. Used
by `/train queue`, `/train status` and `trainbot status`; it never writes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from backend.domain.queue_order import Rank, rank_queue
from backend.domain.records import RecordKind
from backend.domain.times import parse_utc
from backend.domain.waiting import QueueSnapshot, WaitReason, wait_reason, wait_reasons
from backend.ports import JobRepository, RecordStore

if TYPE_CHECKING:
    from backend.domain.model import Job

HOLDS_KEY = "instance-types"  # the launcher's holds record (backend.services.launcher.HOLDS_KEY)
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
QUEUE_PAGE = 20
HELD_SHOWN = 10  # held jobs listed under the queue (the rest are counted)


@dataclass(frozen=True)
class QueuePage:
    """One page of the queue in launch order: ``reasons`` for jobs ``start``+1 … of ``total``."""

    reasons: list[WaitReason]
    start: int
    total: int
    instance_type: str | None
    page: int
    pages: int
    # Waiting for an admin's approval (issue 22): not in the launch order, listed apart.
    held: tuple[Job, ...] = ()
    held_total: int = 0


class QueueStore(JobRepository, RecordStore, Protocol):
    """What the view reads: the queue and active jobs, and the holds record."""


# The most parked jobs of one type the view reads (a page of the queue shows far fewer).
PARKED_READ_LIMIT = 2000


class QueueView:
    def __init__(
        self,
        store: QueueStore,
        *,
        limits: dict[str, int],
        capacity_max_wait: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._limits = dict(limits)
        self._capacity_max_wait = capacity_max_wait
        self._clock = clock

    def snapshot(self) -> QueueSnapshot:
        now = self._clock()
        queued = {j.job_id: j for j in self._store.ready_jobs(None)}
        for job in self._store.retrying_due(FAR_FUTURE, None):
            queued[job.job_id] = job
        for job in self._store.expired_claims(FAR_FUTURE, None):
            queued[job.job_id] = job
        # Jobs the launcher parked (their type had no room) wait too, in their own partition.
        for instance_type in self._store.parked_types():
            for job in self._store.parked_jobs(instance_type, PARKED_READ_LIMIT):
                queued[job.job_id] = job
        usage: Counter[str] = Counter(self._store.active_usage())
        return QueueSnapshot(
            now=now,
            queued=list(queued.values()),
            usage=dict(usage),
            limits=self._limits,
            holds=self._holds(now, usage),
            capacity_max_wait=self._capacity_max_wait,
        )

    def reasons(self, instance_type: str | None = None) -> list[WaitReason]:
        """Every queued job's reason (reads every queued job whole: the CLI's full listing and
        a page filtered by instance type, which the Queue index's entries cannot tell)."""
        found = wait_reasons(self.snapshot())
        return [r for r in found if instance_type is None or instance_type in (r.instance_type, *r.fallback_types)]

    def reason(self, job_id: str, job: Job | None = None) -> WaitReason | None:
        """Why ``job_id`` waits; None when it is not queued. Ranked from the Queue index's
        entries; only this job is read whole (``job``: as the caller just read it; one that
        is not in the launch queue costs no read at all)."""
        if job is not None and (not job.is_queued or job.is_held):
            return None
        rank = next((r for r in self._ranks() if r.job.job_id == job_id), None)
        if rank is None:
            return None
        found = [job] if job is not None else self._store.get_many([job_id])
        return wait_reason(self._context(), rank, found[0]) if found else None

    def page(self, instance_type: str | None = None, page: int = 1, size: int = QUEUE_PAGE) -> QueuePage:
        if instance_type is not None:
            return self._filtered_page(instance_type, page, size)
        ranks = self._ranks()
        pages = max(1, -(-len(ranks) // size))
        page = min(max(1, page), pages)
        start = (page - 1) * size
        shown = ranks[start : start + size]
        jobs = {job.job_id: job for job in self._store.get_many(r.job.job_id for r in shown)}
        context = self._context()
        # A job that left the queue since the index was read is not shown (the next look is right).
        reasons = [wait_reason(context, rank, jobs[rank.job.job_id]) for rank in shown if rank.job.job_id in jobs]
        held = self._store.held_jobs(HELD_SHOWN)
        held_total = self._store.held_count() if len(held) >= HELD_SHOWN else len(held)
        return QueuePage(reasons, start, len(ranks), None, page, pages, tuple(held), held_total)

    def _filtered_page(self, instance_type: str, page: int, size: int) -> QueuePage:
        found = self.reasons(instance_type)
        pages = max(1, -(-len(found) // size))
        page = min(max(1, page), pages)
        start = (page - 1) * size
        held = [j for j in self._store.held_jobs(None) if instance_type in j.instance_choices]
        return QueuePage(found[start : start + size], start, len(found), instance_type, page, pages, tuple(held[:HELD_SHOWN]), len(held))

    def _ranks(self) -> list[Rank]:
        return rank_queue(self._store.queued_jobs(), self._clock())

    def _context(self) -> QueueSnapshot:
        """What a reason needs beyond the job and its rank: instances in use, limits, holds."""
        now = self._clock()
        usage: Counter[str] = Counter(self._store.active_usage())
        return QueueSnapshot(
            now=now, queued=[], usage=dict(usage), limits=self._limits, holds=self._holds(now, usage), capacity_max_wait=self._capacity_max_wait
        )

    def _holds(self, now: datetime, usage: Counter[str]) -> dict[str, datetime]:
        """The launcher's holds still in effect: not past, and no job of the type ended since."""
        record = self._store.get_record(RecordKind.HOLDS, HOLDS_KEY) or {}
        holds = {}
        for instance_type, raw in (record.get("Holds") or {}).items():
            until = parse_utc(raw["Until"])
            if now < until and usage[instance_type] >= int(raw["Active"]):
                holds[instance_type] = until
        return holds

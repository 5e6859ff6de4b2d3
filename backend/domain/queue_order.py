"""The queue's order and each queued job's place in it, from what ordering needs and nothing more.

A :class:`QueuedJob` is a queued job without its request: who owns it, its priority and
fair-share tag, when it was created, whether a launcher holds it and when it may run. The Queue
index projects exactly these (issue 23), so ``/train queue`` and ``/train status`` rank a
10,000-job queue from small index entries and read whole only the jobs they show.
:func:`rank_queue` puts them in the order the launcher would take them and counts, for each,
the jobs ahead of it at its priority: its own owner's and the others' (fair share).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from backend.domain.status import JobStatus

if TYPE_CHECKING:
    from backend.domain.model import Job


@dataclass(frozen=True)
class QueuedJob:
    """What ranking a queued job needs (see :func:`backend.domain.fairness.launch_order`)."""

    job_id: str
    owner: str  # Owner.key
    priority: int
    queue_tag: float
    created_at: datetime
    claimed_until: datetime | None = None  # a launcher's lease
    next_attempt_at: datetime | None = None
    status: JobStatus = JobStatus.NEW

    @classmethod
    def of(cls, job: Job) -> QueuedJob:
        return cls(
            job_id=job.job_id,
            owner=job.owner.key,
            priority=job.priority,
            queue_tag=job.queue_tag,
            created_at=job.created_at,
            claimed_until=job.lease.expires_at if job.lease is not None else None,
            next_attempt_at=job.next_attempt_at,
            status=job.status,
        )

    def claimed(self, now: datetime) -> bool:
        return self.claimed_until is not None and self.claimed_until > now

    def due_at(self, now: datetime) -> datetime | None:
        """Its next attempt time while it is still ahead (None: due now)."""
        if self.next_attempt_at is not None and self.next_attempt_at > now:
            return self.next_attempt_at
        return None


@dataclass(frozen=True)
class Rank:
    """A queued job's place: ``order`` over the whole queue, ``position`` among the jobs of its
    priority (both from 1), and of the jobs ahead of it at its priority, how many are its own
    owner's and how many other owners'."""

    job: QueuedJob
    order: int
    position: int
    same_priority: int
    ahead_of_own: int
    ahead_of_other_owners: int


def queue_order(jobs: Iterable[QueuedJob], now: datetime) -> list[QueuedJob]:
    """The queue in the order the launcher would take it at ``now``: due jobs by launch order
    (claimed ones first: a launcher is on them), then Retrying jobs not yet due, by their next
    attempt time."""

    def key(job: QueuedJob) -> tuple[bool, bool, datetime, tuple[int, float, datetime, str]]:
        claimed = job.claimed(now)
        not_due = job.due_at(now) is not None and not claimed
        due = (job.next_attempt_at or now) if not_due else now
        return (not claimed, not_due, due, (9 - job.priority, job.queue_tag, job.created_at, job.job_id))

    return sorted(jobs, key=key)


def rank_queue(jobs: Iterable[QueuedJob], now: datetime) -> list[Rank]:
    """Every queued job's :class:`Rank`, in launch order."""
    ordered = queue_order([j for j in jobs if j.status in (JobStatus.NEW, JobStatus.RETRYING)], now)
    per_priority = Counter(j.priority for j in ordered)
    seen_priority: Counter[int] = Counter()
    seen_owner: Counter[tuple[int, str]] = Counter()  # (priority, owner) -> jobs ahead
    ranks = []
    for order, job in enumerate(ordered, start=1):
        ahead_same = seen_priority[job.priority]
        ahead_own = seen_owner[(job.priority, job.owner)]
        seen_priority[job.priority] += 1
        seen_owner[(job.priority, job.owner)] += 1
        ranks.append(Rank(job, order, ahead_same + 1, per_priority[job.priority], ahead_own, ahead_same - ahead_own))
    return ranks

"""Fair share and launch order: pure rules the job store applies when it queues a job.

Each owner has a virtual clock (the next fair-share tag). A queued job takes the owner's tag,
or now if the owner's clock is behind, and advances the clock by one quantum. The queue is
ordered by priority, then tag, then age, so a 1,000-job sweep is queued as if spread over
1,000 quanta and a colleague's single job submitted a moment later sorts among the first of
them, not after all of them.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from backend.domain.times import to_utc

if TYPE_CHECKING:
    from backend.domain.model import Job

# Virtual time, in seconds, that one queued job adds to its owner's fair-share clock.
FAIR_SHARE_QUANTUM = 60.0

LaunchOrder = tuple[int, float, datetime, str]


def first_tag(owner_next_tag: float | None, now: datetime) -> float:
    """The fair-share tag of an owner's next queued job: now, or later if the owner's earlier
    jobs already hold the queue's virtual time up to then (``owner_next_tag``; None: no clock)."""
    return max(to_utc(now).timestamp(), owner_next_tag or 0.0)


def batch_tags(first: float, count: int) -> list[float]:
    """The tags of ``count`` jobs queued together (a sweep), one quantum apart from ``first``."""
    return [first + i * FAIR_SHARE_QUANTUM for i in range(count)]


def next_clock(first: float, count: int) -> float:
    """The owner's clock after queueing ``count`` jobs starting at tag ``first``."""
    return first + count * FAIR_SHARE_QUANTUM


def launch_order(job: Job) -> LaunchOrder:
    """The order in which the launcher takes due jobs: highest priority first, then the
    owner-fair tag, then age (ready and due Retrying jobs merged by this one rule)."""
    return (9 - job.priority, job.queue_tag, job.created_at, job.job_id)

"""Why is a job waiting? Pure rules over what the launcher itself looks at.

A queued job (New, or Retrying) waits for one or more of:

- its **turn**: jobs ahead of it in launch order (priority, then the owner-fair tag, then age);
  its position is counted among the jobs of its own priority;
- **fair share**: of the jobs ahead of it at its priority, those of other owners (a colleague's
  sweep interleaved before it) and those of its own owner (its earlier jobs hold its owner's
  fair-share clock);
- an instance-type **hold**: after ResourceLimitExceeded or a capacity error the launcher holds
  the type until a time, or until one of its jobs ends;
- the type's **limit**: instances in use against TRAINBOT_INSTANCE_LIMITS;
- its **next attempt time** (Retrying, backing off);
- and, for capacity/quota waits, how much of the **capacity-wait budget**
  (TRAINBOT_CAPACITY_MAX_WAIT_SECONDS) is left before the job fails.

:func:`wait_reasons` turns a :class:`QueueSnapshot` (read by :mod:`backend.services.queue`) into
one :class:`WaitReason` per queued job, in launch order; rendering is the adapters' job.

The launcher also records, on the job item, why it parked a job (:func:`waiting_text`: its
types held or at their limit), so the job's card shows it. That text holds no countdown and no
queue position, which change every tick: it changes only when the cause does, so the item is
written and the card updated once per real change, within Slack's card-update budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from backend.domain.queue_order import QueuedJob, Rank, rank_queue
from backend.domain.status import JobStatus

if TYPE_CHECKING:
    from backend.domain.model import Job


@dataclass(frozen=True)
class QueueSnapshot:
    """What the launcher sees at ``now``: queued jobs, instances in use, holds and limits."""

    now: datetime
    queued: list[Job]  # New and Retrying jobs, in any order
    usage: dict[str, int] = field(default_factory=dict)  # instances in use per type
    limits: dict[str, int] = field(default_factory=dict)  # TRAINBOT_INSTANCE_LIMITS
    holds: dict[str, datetime] = field(default_factory=dict)  # held instance type -> until
    capacity_max_wait: timedelta = timedelta(days=1)


@dataclass(frozen=True)
class TypeRoom:
    """One of a job's fallback types as the launcher sees it: held, or how many of its
    instances are in use against its limit."""

    instance_type: str
    hold_until: datetime | None
    in_use: int
    limit: int | None

    def has_room(self, count: int) -> bool:
        return self.hold_until is None and (self.limit is None or self.in_use + count <= self.limit)


@dataclass(frozen=True)
class WaitReason:
    """Why one queued job has not launched yet (every field the launcher's own data)."""

    job_id: str
    owner: str
    status: JobStatus
    instance_type: str
    instance_count: int
    order: int  # 1-based place in launch order over the whole queue
    position: int  # 1-based place among queued jobs of its priority
    same_priority: int  # queued jobs of its priority
    priority: int
    ahead_of_other_owners: int  # fair share: other owners' jobs ahead of it at its priority
    ahead_of_own: int  # its owner's earlier jobs ahead of it at its priority
    claimed: bool  # a launcher holds it right now (creating it)
    due_at: datetime | None  # Retrying: its next attempt time (None: due now)
    hold_until: datetime | None  # its instance type is held until then (or until a job of it ends)
    in_use: int  # instances of its type in use
    limit: int | None  # the type's limit (None: no limit of ours)
    capacity_budget_left: timedelta | None  # capacity/quota waits: time left before it fails
    fallback_types: tuple[str, ...] = ()  # ``instance=a,b``: the types it may also run on
    fallback_rooms: tuple[TypeRoom, ...] = ()  # those types, as the launcher sees them

    @property
    def at_limit(self) -> bool:
        return self.limit is not None and self.in_use + self.instance_count > self.limit

    @property
    def fallback_with_room(self) -> str | None:
        """The first fallback type with room when its first choice has none: the type it
        launches on at its turn (its first choice's hold or limit does not hold it back)."""
        if self.hold_until is None and not self.at_limit:
            return None
        return next((room.instance_type for room in self.fallback_rooms if room.has_room(self.instance_count)), None)

    @property
    def causes(self) -> list[str]:
        """The causes in effect, by name: hold, limit, backoff, queue, fair-share, launching."""
        found = []
        if self.claimed:
            found.append("launching")
        blocked_everywhere = self.fallback_with_room is None
        if self.hold_until is not None and blocked_everywhere:
            found.append("hold")
        if self.at_limit and blocked_everywhere:
            found.append("limit")
        if self.due_at is not None:
            found.append("backoff")
        if self.position > 1:
            found.append("queue")
        if self.ahead_of_other_owners:
            found.append("fair-share")
        return found


def wait_reasons(snapshot: QueueSnapshot) -> list[WaitReason]:
    """One reason per queued job of ``snapshot``, in launch order."""
    jobs = {job.job_id: job for job in snapshot.queued}
    return [wait_reason(snapshot, rank, jobs[rank.job.job_id]) for rank in rank_queue((QueuedJob.of(j) for j in jobs.values()), snapshot.now)]


def wait_reason(snapshot: QueueSnapshot, rank: Rank, job: Job) -> WaitReason:
    """Why ``job``, at its place ``rank`` in the queue, waits (``snapshot``: usage, limits and
    holds; its ``queued`` list is not read)."""
    now = snapshot.now
    args = job.job_args
    rooms = tuple(TypeRoom(t, _held(snapshot, t), snapshot.usage.get(t, 0), snapshot.limits.get(t)) for t in job.fallback_types or ())
    budget = None
    if job.capacity_wait_since is not None:
        budget = max(timedelta(0), snapshot.capacity_max_wait - (now - job.capacity_wait_since))
    return WaitReason(
        job_id=job.job_id,
        owner=job.owner.key,
        status=job.status,
        instance_type=args.instance_type,
        instance_count=args.instance_count,
        order=rank.order,
        position=rank.position,
        same_priority=rank.same_priority,
        priority=job.priority,
        ahead_of_other_owners=rank.ahead_of_other_owners,
        ahead_of_own=rank.ahead_of_own,
        claimed=job.lease is not None and job.lease.expires_at > now,
        due_at=job.next_attempt_at if job.next_attempt_at is not None and job.next_attempt_at > now else None,
        hold_until=_held(snapshot, args.instance_type),
        in_use=snapshot.usage.get(args.instance_type, 0),
        limit=snapshot.limits.get(args.instance_type),
        capacity_budget_left=budget,
        fallback_types=tuple(job.fallback_types or ()),
        fallback_rooms=rooms,
    )


def _held(snapshot: QueueSnapshot, instance_type: str) -> datetime | None:
    hold = snapshot.holds.get(instance_type)
    return hold if hold is not None and hold > snapshot.now else None


def _in(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)}m"
    return f"{seconds / 3600:.1f}h"


def describe(reason: WaitReason, now: datetime) -> list[str]:
    """Plain words, one cause a line, most binding first (the bot and the CLI show these)."""
    lines = []
    if reason.claimed:
        lines.append("being launched now")
    if reason.hold_until is not None:
        lines.append(
            f"{reason.instance_type} is held until {reason.hold_until:%H:%M:%S} UTC (in {_in(reason.hold_until - now)}) "
            "after SageMaker refused it for capacity or quota, or until one of its jobs ends"
        )
    if reason.at_limit:
        lines.append(f"{reason.instance_type}: {reason.in_use} of {reason.limit} instances in use (instance limit); needs {reason.instance_count}")
    elif reason.limit is not None:
        lines.append(f"{reason.instance_type}: {reason.in_use} of {reason.limit} instances in use")
    if reason.due_at is not None:
        lines.append(f"next attempt at {reason.due_at:%H:%M:%S} UTC (in {_in(reason.due_at - now)})")
    if reason.capacity_budget_left is not None:
        lines.append(f"capacity wait left before it fails: {_in(reason.capacity_budget_left)}")
    if reason.fallback_types:
        lines.append(f"may also run on {', '.join(reason.fallback_types)} (fallback)")
    switch_to = reason.fallback_with_room
    if switch_to is not None:
        lines.append(f"{switch_to} has room: it launches there at its turn")
    elif reason.hold_until is not None or reason.at_limit:
        for room in reason.fallback_rooms:
            if room.hold_until is not None:
                lines.append(f"{room.instance_type} is held too, until {room.hold_until:%H:%M:%S} UTC (in {_in(room.hold_until - now)})")
            elif room.limit is not None:
                lines.append(f"{room.instance_type}: {room.in_use} of {room.limit} instances in use (instance limit)")
    lines.append(f"#{reason.position} of {reason.same_priority} queued at priority {reason.priority} (#{reason.order} overall)")
    if reason.ahead_of_other_owners or reason.ahead_of_own:
        lines.append(
            f"fair share: {reason.ahead_of_other_owners} of other people's jobs and {reason.ahead_of_own} of its owner's own are ahead"
        )
    return lines


_HOLD_END = re.compile(r" until \d\d:\d\d:\d\d UTC")


def same_kind(text: str | None, other: str | None) -> bool:
    """Whether two waiting texts give the same reason: the same types held or at their limit.
    A hold that moves (another refusal of a held type) is no new reason: comparing without its
    end keeps the launcher from rewriting every parked job (and its card) at each refusal."""
    if text is None or other is None:
        return text == other
    return _HOLD_END.sub("", text) == _HOLD_END.sub("", other)


def waiting_text(types: list[tuple[str, datetime | None, int | None]]) -> str:
    """Why the launcher left a job waiting, for its card: each of its types (first choice
    first) with its hold's end or its limit. ``types``: (type, held until, limit) for each."""
    parts = []
    for instance_type, held_until, limit in types:
        if held_until is not None:
            parts.append(f"{instance_type} is held until {held_until:%H:%M:%S} UTC after a capacity or quota refusal (or until one of its jobs ends)")
        elif limit is not None:
            parts.append(f"{instance_type} is at its limit of {limit} instances in use")
        else:
            parts.append(f"{instance_type} has no room")
    return "waiting: " + "; ".join(parts)

"""The status machine: the one place that knows which status moves are legal.

Every status change in Trainbot goes through :func:`check_transition` (pure) and then a
conditional write in the store on the status and version the caller read, so two launchers,
a duplicated SageMaker event or a re-run after a crash can never move a job twice.

No pydantic here (every cold start imports the statuses); a job's history of moves and notes
is :mod:`backend.domain.history`.
"""

from __future__ import annotations

from enum import StrEnum

from backend.errors import IllegalTransition


class JobStatus(StrEnum):
    """The `JobStatus` attribute's values (a fixed point other tools rely on)."""

    NEW = "New"
    LAUNCHED = "Launched"
    IN_PROGRESS = "InProgress"
    RETRYING = "Retrying"
    STOPPING = "Stopping"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPED = "Stopped"


S = JobStatus

TERMINAL: frozenset[JobStatus] = frozenset({S.COMPLETED, S.FAILED, S.STOPPED})
# Waiting for the launcher (New, or Retrying once its next attempt time has come).
QUEUED: frozenset[JobStatus] = frozenset({S.NEW, S.RETRYING})
# Known to SageMaker and not finished: the monitor watches these.
ACTIVE: frozenset[JobStatus] = frozenset({S.LAUNCHED, S.IN_PROGRESS, S.STOPPING})

# from -> the statuses it may move to. Terminal jobs move only through an explicit user retry
# (Failed/Stopped -> Retrying); a Completed job is never re-run.
ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    S.NEW: frozenset({S.LAUNCHED, S.RETRYING, S.FAILED, S.STOPPED}),
    # Launched may jump straight to a terminal status: a short job can finish between two
    # looks, and the monitor must apply what it sees.
    S.LAUNCHED: frozenset({S.IN_PROGRESS, S.RETRYING, S.STOPPING, S.COMPLETED, S.FAILED, S.STOPPED}),
    S.IN_PROGRESS: frozenset({S.RETRYING, S.STOPPING, S.COMPLETED, S.FAILED, S.STOPPED}),
    S.RETRYING: frozenset({S.LAUNCHED, S.FAILED, S.STOPPED}),
    # A stop request can lose the race against the job's own end: it then ends as it ended.
    # Retrying: SageMaker itself stopped it (Stopping, then Stopped with MaxWaitTimeExceeded:
    # a spot job out of capacity; or its training plan ending, with plan_fallback=ondemand), a
    # free retry; never for a stop Trainbot asked for.
    S.STOPPING: frozenset({S.STOPPED, S.COMPLETED, S.FAILED, S.RETRYING}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset({S.RETRYING}),
    S.STOPPED: frozenset({S.RETRYING}),
}


def is_allowed(from_status: JobStatus, to_status: JobStatus) -> bool:
    """Whether the status machine allows ``from_status -> to_status``."""
    return to_status in ALLOWED[from_status]


def check_transition(job_id: str, from_status: JobStatus, to_status: JobStatus) -> None:
    """Raise :class:`IllegalTransition` unless ``from_status -> to_status`` is allowed."""
    if not is_allowed(from_status, to_status):
        raise IllegalTransition(job_id, from_status.value, to_status.value)


class EntryKind(StrEnum):
    """What a history entry records when it is not a status move."""

    NOTE = "note"  # something that happened to the job without moving it (an admin's approval)

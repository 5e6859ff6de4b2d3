"""The status machine: the one place that knows which status moves are legal.

Every status change in Trainbot goes through :func:`check_transition` (pure) and then a
conditional write in the store on the status and version the caller read, so two launchers,
a duplicated SageMaker event or a re-run after a crash can never move a job twice.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic.alias_generators import to_pascal

from backend.domain.bounds import HISTORY_KEPT, clip
from backend.domain.times import UtcDatetime
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
    # a spot job out of capacity), a free retry; never for a stop Trainbot asked for.
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


class HistoryEntry(BaseModel):
    """One status move: when, from what, to what, and why. ``seq`` numbers the moves of one job
    from 1, so notifiers can tell which moves they already delivered."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, frozen=True)

    seq: int
    at: UtcDatetime
    from_status: JobStatus | None = None
    to_status: JobStatus
    reason: str = ""

    @field_validator("reason")
    @classmethod
    def _bounded(cls, value: str) -> str:
        return clip(value)


def compact_history(history: list[HistoryEntry]) -> list[HistoryEntry]:
    """The first entry (submitted) and the newest ones: HISTORY_KEPT in all."""
    if len(history) <= HISTORY_KEPT:
        return history
    return [history[0], *history[-(HISTORY_KEPT - 1) :]]

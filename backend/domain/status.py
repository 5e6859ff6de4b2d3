"""The status machine: the one place that knows which status moves are legal.

Every status change in Trainbot goes through :func:`check_transition` (pure) and then a
conditional write in the store on the status and version the caller read, so two launchers,
a duplicated SageMaker event or a re-run after a crash can never move a job twice.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, field_validator, model_validator
from pydantic.alias_generators import to_pascal

from backend.domain.base import DomainModel
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


class HistoryEntry(DomainModel):
    """One status move (or, with ``kind`` NOTE, an event that moves nothing): when, from what,
    to what, and why. ``seq`` numbers the entries of one job from 1, so notifiers can tell
    which they already delivered. Make them with :func:`move_entry` and :func:`note_entry`."""

    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, frozen=True)

    seq: int
    at: UtcDatetime
    from_status: JobStatus | None = None
    to_status: JobStatus
    reason: str = ""
    kind: EntryKind | None = None  # None: a status move

    @field_validator("reason")
    @classmethod
    def _bounded(cls, value: str) -> str:
        return clip(value)

    @model_validator(mode="before")
    @classmethod
    def _stored_before_notes(cls, data: Any) -> Any:
        # Items written before notes existed recorded an approval as a New -> New move: read
        # such a stored entry (attribute names) as the note it was, so the item stays readable.
        if isinstance(data, dict) and "Kind" not in data and "ToStatus" in data and data.get("FromStatus") == data["ToStatus"]:
            return {**data, "Kind": EntryKind.NOTE.value}
        return data

    @model_validator(mode="after")
    def _moves_or_notes(self) -> HistoryEntry:
        if self.kind is EntryKind.NOTE and self.from_status is not self.to_status:
            raise ValueError("a note moves nothing: its from and to status are the job's status")
        if self.kind is None and self.from_status is self.to_status:
            raise ValueError(f"{self.to_status.value} -> {self.to_status.value} is not a status move; record it as a note")
        return self

    @property
    def is_note(self) -> bool:
        return self.kind is EntryKind.NOTE


def move_entry(job_id: str, seq: int, at: Any, from_status: JobStatus, to_status: JobStatus, reason: str = "") -> HistoryEntry:
    """The entry of move ``seq`` ``from_status -> to_status``; :class:`IllegalTransition`
    unless the status machine allows it (a same-status move never is)."""
    check_transition(job_id, from_status, to_status)
    return HistoryEntry(seq=seq, at=at, from_status=from_status, to_status=to_status, reason=reason)


def note_entry(seq: int, at: Any, status: JobStatus, reason: str) -> HistoryEntry:
    """Entry ``seq`` noting ``reason`` on a job in ``status``, without moving it."""
    return HistoryEntry(seq=seq, at=at, from_status=status, to_status=status, reason=reason, kind=EntryKind.NOTE)


def compact_history(history: list[HistoryEntry]) -> list[HistoryEntry]:
    """The first entry (submitted) and the newest ones: HISTORY_KEPT in all."""
    if len(history) <= HISTORY_KEPT:
        return history
    return [history[0], *history[-(HISTORY_KEPT - 1) :]]

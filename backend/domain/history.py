"""A job's history: its status moves and notes, as the job item keeps them (the newest
HISTORY_KEPT, and the first). The moves themselves are :mod:`backend.domain.status`'s."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, field_validator, model_validator
from pydantic.alias_generators import to_pascal

from backend.domain.base import DomainModel, UtcDatetime
from backend.domain.bounds import HISTORY_KEPT, clip
from backend.domain.status import EntryKind, JobStatus, check_transition


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

"""Every (from, to) pair of the status machine, allowed and refused."""

from __future__ import annotations

import itertools

import pytest

from backend.domain.history import HistoryEntry, move_entry, note_entry
from backend.domain.model import transition
from backend.domain.status import (
    ALLOWED,
    TERMINAL,
    EntryKind,
    JobStatus,
    check_transition,
    is_allowed,
)
from backend.errors import IllegalTransition
from tests.conftest import T0, make_job

S = JobStatus

EXPECTED_ALLOWED = {
    (S.NEW, S.LAUNCHED), (S.NEW, S.RETRYING), (S.NEW, S.FAILED), (S.NEW, S.STOPPED),
    (S.LAUNCHED, S.IN_PROGRESS), (S.LAUNCHED, S.RETRYING), (S.LAUNCHED, S.STOPPING),
    (S.LAUNCHED, S.COMPLETED), (S.LAUNCHED, S.FAILED), (S.LAUNCHED, S.STOPPED),
    (S.IN_PROGRESS, S.RETRYING), (S.IN_PROGRESS, S.STOPPING), (S.IN_PROGRESS, S.COMPLETED),
    (S.IN_PROGRESS, S.FAILED), (S.IN_PROGRESS, S.STOPPED),
    (S.RETRYING, S.LAUNCHED), (S.RETRYING, S.FAILED), (S.RETRYING, S.STOPPED),
    (S.STOPPING, S.STOPPED), (S.STOPPING, S.COMPLETED), (S.STOPPING, S.FAILED), (S.STOPPING, S.RETRYING),
    (S.FAILED, S.RETRYING), (S.STOPPED, S.RETRYING),
}  # fmt: skip

ALL_PAIRS = list(itertools.product(JobStatus, JobStatus))


def test_the_status_names_are_the_seed_systems_words():
    assert [s.value for s in JobStatus] == [
        "New", "Launched", "InProgress", "Retrying", "Stopping", "Completed", "Failed", "Stopped",
    ]  # fmt: skip


@pytest.mark.parametrize(("from_status", "to_status"), ALL_PAIRS, ids=[f"{a}->{b}" for a, b in ALL_PAIRS])
def test_each_pair_is_allowed_exactly_when_the_table_says_so(from_status, to_status):
    expected = (from_status, to_status) in EXPECTED_ALLOWED
    assert is_allowed(from_status, to_status) is expected
    if expected:
        check_transition("job-1", from_status, to_status)
    else:
        with pytest.raises(IllegalTransition) as info:
            check_transition("job-1", from_status, to_status)
        assert info.value.from_status == from_status.value
        assert info.value.to_status == to_status.value


def test_completed_is_final_and_no_status_moves_to_new():
    assert ALLOWED[S.COMPLETED] == frozenset()
    assert all(S.NEW not in targets for targets in ALLOWED.values())
    assert {S.COMPLETED, S.FAILED, S.STOPPED} == TERMINAL


def test_transition_appends_history_bumps_the_version_and_applies_changes():
    job = make_job()
    later = T0.replace(minute=5)
    moved = transition(job, S.LAUNCHED, at=later, reason="created", priority=7)
    assert moved.status is S.LAUNCHED
    assert moved.version == job.version + 1
    assert moved.priority == 7
    assert moved.updated_at == later
    assert [(h.seq, h.from_status, h.to_status, h.reason) for h in moved.history] == [
        (1, None, S.NEW, "submitted"),
        (2, S.NEW, S.LAUNCHED, "created"),
    ]
    assert job.status is S.NEW  # the original is untouched


def test_an_illegal_transition_raises_and_changes_nothing():
    job = make_job()
    with pytest.raises(IllegalTransition):
        transition(job, S.COMPLETED, at=T0)
    assert job.status is S.NEW and job.version == 1


def test_the_status_module_refuses_a_same_status_move_entry():
    for status in JobStatus:
        with pytest.raises(IllegalTransition):
            move_entry("job-1", 2, T0, status, status, "approved")
        with pytest.raises(ValueError, match="not a status move"):
            HistoryEntry(seq=2, at=T0, from_status=status, to_status=status)


def test_a_note_records_an_event_without_moving_the_job():
    entry = note_entry(2, T0, S.NEW, "approved by <@UADMIN>")
    assert entry.is_note and entry.from_status is entry.to_status is S.NEW
    with pytest.raises(ValueError, match="moves nothing"):
        HistoryEntry(seq=2, at=T0, from_status=S.NEW, to_status=S.LAUNCHED, kind=EntryKind.NOTE)


def test_an_approval_stored_as_a_same_status_move_before_notes_existed_reads_as_a_note():
    stored = {"Seq": 2, "At": "2026-01-05T09:00:00Z", "FromStatus": "New", "ToStatus": "New", "Reason": "approved by <@UADMIN>"}
    assert HistoryEntry.model_validate(stored).is_note

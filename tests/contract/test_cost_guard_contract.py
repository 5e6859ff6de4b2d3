"""The cost guard's store contract (issue 14), on the in-memory fake and DynamoDB alike: a held
job is in no launch query until approved, and usage counts each attempt once."""

from __future__ import annotations

from backend.domain.approval import Approval, ApprovalState
from backend.domain.records import RecordKind
from backend.ports import Applied
from tests.conftest import T0, make_job


def test_a_held_job_is_in_no_launch_query_until_it_is_approved(store):
    held = store.register(make_job("held", approval=Approval(state=ApprovalState.PENDING, reasons=["big"]))).job
    plain = store.register(make_job("plain")).job

    assert [j.job_id for j in store.ready_jobs(None)] == [plain.job_id]
    assert [j.job_id for j in store.due_for_launch(T0, 10)] == [plain.job_id]

    approved = held.approval.model_copy(update={"state": ApprovalState.APPROVED, "decided_by": "UADMIN", "decided_at": T0})
    outcome = store.update(held, at=T0, approval=approved)
    assert isinstance(outcome, Applied) and not outcome.job.is_held
    assert sorted(j.job_id for j in store.ready_jobs(None)) == sorted([held.job_id, plain.job_id])
    assert store.get(held.job_id).approval == approved


def test_usage_adds_each_attempt_once(store):
    assert store.add_usage("nlp#2026-W45", "tb-a-a1", 600) is True
    assert store.add_usage("nlp#2026-W45", "tb-a-a1", 600) is False
    assert store.add_usage("nlp#2026-W45", "tb-b-a1", 60) is True
    assert store.get_record(RecordKind.USAGE, "nlp#2026-W45")["Seconds"] == 660
    assert store.get_record(RecordKind.USAGE, "nlp#2026-W46") is None


def test_the_usage_record_stays_the_same_size_however_many_attempts_it_counted(store):
    # It once kept every counted attempt's name: past ~10,000 attempts a team-week it passed
    # DynamoDB's 400 KB item limit and every later count failed.
    store.add_usage("nlp#2026-W45", "tb-sweep-0-a1", 1)
    first = store.get_record(RecordKind.USAGE, "nlp#2026-W45")
    names = [f"tb-sweep-{i}-a1" for i in range(1, 150)]
    for name in names:
        assert store.add_usage("nlp#2026-W45", name, 1) is True
    for name in names:  # repeated (a duplicated event, a retried count): nothing more
        assert store.add_usage("nlp#2026-W45", name, 1) is False

    record = store.get_record(RecordKind.USAGE, "nlp#2026-W45")
    assert record["Seconds"] == 150 and record.keys() == first.keys()
    assert len(repr(record)) == len(repr(first)) + 2  # "1" became "150"


def test_an_attempt_counted_in_one_week_is_not_counted_again_under_another_key(store):
    # The mark is the attempt's own: a count retried after midnight on Sunday (a new ISO week)
    # still counts once.
    assert store.add_usage("nlp#2026-W45", "tb-late-a1", 100) is True
    assert store.add_usage("nlp#2026-W46", "tb-late-a1", 100) is False
    assert store.get_record(RecordKind.USAGE, "nlp#2026-W46") is None

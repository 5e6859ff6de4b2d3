"""The cost guard's store contract (issue 14), on the in-memory fake and DynamoDB alike: a held
job is in no launch query until approved, and usage counts each attempt once."""

from __future__ import annotations

from backend.domain.approval import ApprovalState
from backend.domain.model import Approval
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
    assert len(repr(record)) == len(repr(first)) + 4  # "1" became "150" in Seconds and in Committed


def test_an_attempt_counted_in_one_week_is_not_counted_again_under_another_key(store):
    # The mark is the attempt's own: a count retried after midnight on Sunday (a new ISO week)
    # still counts once.
    assert store.add_usage("nlp#2026-W45", "tb-late-a1", 100) is True
    assert store.add_usage("nlp#2026-W46", "tb-late-a1", 100) is False
    assert store.get_record(RecordKind.USAGE, "nlp#2026-W46") is None


def test_a_reservation_fits_the_limit_or_is_refused_and_a_repeat_reserves_nothing_more(store):
    assert store.reserve("nlp#2026-W45", ["tb-a.1"], 40 * 3600, 50 * 3600) is True
    assert store.reserve("nlp#2026-W45", ["tb-a.1"], 40 * 3600, 50 * 3600) is True  # a repeat: held already
    assert store.reserve("nlp#2026-W45", ["tb-b.1"], 40 * 3600, 50 * 3600) is False
    assert store.reserve("nlp#2026-W46", ["tb-c.1"], 60 * 3600, 50 * 3600) is False  # more than the budget
    record = store.get_record(RecordKind.USAGE, "nlp#2026-W45")
    assert record["Reserved"] == 40 * 3600 and record["Committed"] == 40 * 3600 and list(record["Holding"]) == ["tb-a.1"]


def test_billed_time_counts_against_the_room_and_a_release_gives_back_once(store):
    store.reserve("nlp#2026-W45", ["tb-a.1", "tb-b.1"], 20 * 3600, 50 * 3600)
    store.add_usage("nlp#2026-W45", "tb-a-a1", 25 * 3600)
    assert store.reserve("nlp#2026-W45", ["tb-c.1"], 10 * 3600, 50 * 3600) is False  # 45 committed

    assert store.release("nlp#2026-W45", "tb-a.1", 10 * 3600) is True
    assert store.release("nlp#2026-W45", "tb-a.1", 10 * 3600) is False
    assert store.reserve("nlp#2026-W45", ["tb-c.1"], 10 * 3600, 50 * 3600) is True
    record = store.get_record(RecordKind.USAGE, "nlp#2026-W45")
    assert record["Seconds"] == 25 * 3600 and record["Reserved"] == 20 * 3600 and record["Committed"] == 45 * 3600


def test_of_two_reservations_racing_for_the_last_hours_exactly_one_wins(store):
    import threading

    def race(key: str) -> list[bool]:
        barrier = threading.Barrier(2)
        results: list[bool] = []

        def take(token: str) -> None:
            barrier.wait()
            results.append(store.reserve(key, [token], 40 * 3600, 50 * 3600))

        threads = [threading.Thread(target=take, args=(f"tb-{who}.1",)) for who in ("alice", "bob")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        return results

    for round_ in range(5):
        key = f"nlp#2026-W4{round_}"
        store.reserve(key, [f"tb-first.{round_}"], 10 * 3600, 50 * 3600)
        assert sorted(race(key)) == [False, True]
        assert store.get_record(RecordKind.USAGE, key)["Committed"] == 50 * 3600


def test_held_jobs_are_listed_apart_oldest_first(store):
    pending = Approval(state=ApprovalState.PENDING, reasons=["big"])
    first = store.register(make_job("held1", approval=pending)).job
    second = store.register(make_job("held2", approval=pending, now=T0.replace(minute=5))).job
    store.register(make_job("plain"))

    assert [j.job_id for j in store.held_jobs(None)] == [first.job_id, second.job_id]


def test_a_repeated_reservation_reserves_once_even_with_no_limit_to_stop_it(store):
    # An admin's approval reserves past the budget (no limit): only the held token stops a
    # second press from reserving twice.
    assert store.reserve("nlp#2026-W45", ["tb-a.1"], 3600, None) is True
    assert store.reserve("nlp#2026-W45", ["tb-a.1"], 3600, None) is True
    assert store.get_record(RecordKind.USAGE, "nlp#2026-W45")["Reserved"] == 3600


def test_a_reservation_of_exactly_the_limit_fits_and_no_tokens_reserve_nothing(store):
    assert store.reserve("nlp#2026-W45", ["tb-a.1"], 3600, 3600) is True
    assert store.reserve("nlp#2026-W46", [], 3600, 0) is True
    assert store.get_record(RecordKind.USAGE, "nlp#2026-W46") is None


def test_a_counted_attempt_leaves_its_own_mark_naming_the_week(store):
    store.add_usage("nlp#2026-W45", "tb-a-a1", 60)
    assert store.get_record(RecordKind.COUNTED, "tb-a-a1")["UsageKey"] == "nlp#2026-W45"


def _usage(store, key):
    record = store.get_record("usage", key) or {}
    return int(record.get("Seconds", 0)), int(record.get("Reserved", 0)), int(record.get("Committed", 0)), sorted(record.get("Holding") or ())


def test_billed_time_replaces_the_reservation_in_one_write_on_the_same_week(store):
    assert store.reserve("nlp#2026-W45", ["tb-a-r1"], 3600, None)
    assert store.add_usage("nlp#2026-W45", "tb-a-a1", 600, release=("nlp#2026-W45", "tb-a-r1", 3600)) is True
    assert _usage(store, "nlp#2026-W45") == (600, 0, 600, [])
    # Counted before (a repeat of the count that landed): nothing more, and nothing to give back.
    assert store.add_usage("nlp#2026-W45", "tb-a-a1", 600, release=("nlp#2026-W45", "tb-a-r1", 3600)) is False
    assert _usage(store, "nlp#2026-W45") == (600, 0, 600, [])


def test_billed_time_in_another_week_still_gives_the_reservation_back_in_the_same_write(store):
    assert store.reserve("nlp#2026-W45", ["tb-a-r1"], 3600, None)
    assert store.add_usage("nlp#2026-W46", "tb-a-a1", 600, release=("nlp#2026-W45", "tb-a-r1", 3600)) is True
    assert _usage(store, "nlp#2026-W45") == (0, 0, 0, [])
    assert _usage(store, "nlp#2026-W46") == (600, 0, 600, [])


def test_a_reservation_given_back_already_does_not_stop_the_count(store):
    assert store.reserve("nlp#2026-W45", ["tb-a-r1"], 3600, None)
    assert store.reserve("nlp#2026-W45", ["tb-b-r1"], 3600, None)
    assert store.release("nlp#2026-W45", "tb-a-r1", 3600)
    assert store.add_usage("nlp#2026-W45", "tb-a-a1", 600, release=("nlp#2026-W45", "tb-a-r1", 3600)) is True
    assert _usage(store, "nlp#2026-W45") == (600, 3600, 4200, ["tb-b-r1"])


def test_a_count_that_landed_before_a_killed_release_gives_the_reservation_back_when_repeated(store):
    assert store.reserve("nlp#2026-W45", ["tb-a-r1"], 3600, None)
    assert store.add_usage("nlp#2026-W45", "tb-a-a1", 600) is True  # an older run: counted, then killed
    assert store.add_usage("nlp#2026-W45", "tb-a-a1", 600, release=("nlp#2026-W45", "tb-a-r1", 3600)) is False
    assert _usage(store, "nlp#2026-W45") == (600, 0, 600, [])

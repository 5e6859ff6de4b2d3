"""The job store's contract (backend.ports.JobStore), run on the fake and on DynamoDB (moto).

What a service may rely on: idempotent registration, conditional writes that turn a lost race
into a LostRace, the queue's partitions and order (fair share included), the outbox and its
delivery lease, the small records, and pages with cursors only the store understands.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from backend.domain import notice, sweeps
from backend.domain.approval import ApprovalState
from backend.domain.fairness import FAIR_SHARE_QUANTUM
from backend.domain.model import Approval, Lease, NotifyMode, Owner, SlackThread
from backend.domain.queue_order import QueuedJob
from backend.domain.records import RecordKind
from backend.domain.status import JobStatus
from backend.domain.times import format_utc
from backend.errors import IllegalTransition, JobNotFound
from backend.ports import BATCH_LEASE, Applied, BatchBusy, DuplicateBatch, LostRace
from tests.conftest import T0, job_args, make_job
from tests.store_spies import clock_moves, job_writes

S = JobStatus
MINUTE = timedelta(minutes=1)


def _launched(store, name: str, at=T0, **kwargs):
    job = store.register(make_job(name, **kwargs)).job
    return store.transition(job, S.LAUNCHED, at=at).job


# --- registration -----------------------------------------------------------------------------


def test_register_is_idempotent_on_the_client_token(store):
    first = store.register(make_job("bert", client_token="trigger-1"))
    again = store.register(make_job("bert", client_token="trigger-1", now=T0 + timedelta(seconds=3)))
    assert first.created and not again.created
    assert again.job.job_id == first.job.job_id
    assert again.job.created_at == T0  # the stored one, not the duplicate
    assert len(store.ready_jobs(None)) == 1


def test_get_of_an_unknown_or_non_job_key_raises_job_not_found_naming_the_id_asked(store):
    """The bot tells the user which id it could not find (render.not_found(exc.job_id))."""
    store.register(make_job("bert"))
    with pytest.raises(JobNotFound) as unknown:
        store.get("nope-000000")
    assert unknown.value.job_id == "nope-000000"
    with pytest.raises(JobNotFound) as record:
        store.get("owner#T1:U1")
    assert record.value.job_id == "owner#T1:U1"


def test_get_many_returns_the_jobs_that_exist_in_the_order_asked(store):
    ids = [store.register(make_job(f"m-{i}", now=T0 + timedelta(seconds=i))).job.job_id for i in range(3)]
    asked = [ids[2], "missing-000000", ids[0], ids[2]]
    assert [j.job_id for j in store.get_many(asked)] == [ids[2], ids[0]]
    assert store.existing_ids(asked) == {ids[0], ids[2]}


def test_a_batch_registers_every_job_and_a_repeat_registers_nothing_new(store):
    jobs = [make_job(f"sweep-{i}", client_token=f"sweep-1/{i}", sweep_id="sweep-1") for i in range(30)]
    progress: list[tuple[int, int]] = []
    registered = store.register_many(jobs, "sweep-1", on_progress=lambda done, total: progress.append((done, total)))
    assert registered == [job.job_id for job in jobs]
    assert progress[-1] == (30, 30)
    moved = store.transition(store.get(registered[0]), S.LAUNCHED, at=T0)
    assert isinstance(moved, Applied)

    assert store.register_many(jobs, "sweep-1") == registered
    assert store.get(registered[0]).status is S.LAUNCHED  # not reset to New
    assert len(store.ready_jobs(None)) == 29
    assert store.register_many([], "empty") == []


def test_an_owners_second_sweep_queues_behind_their_first(store):
    """Fair share holds across batches: an owner's clock moves past their first sweep, so a
    second sweep registered at the same moment is tagged after it, not beside it."""
    first = store.register_many([make_job(f"one-{i}", client_token=f"one/{i}") for i in range(3)], "one")
    second = store.register_many([make_job(f"two-{i}", client_token=f"two/{i}") for i in range(3)], "two")
    tags = [j.queue_tag for j in store.get_many([*first, *second])]
    assert tags == [tags[0] + i * FAIR_SHARE_QUANTUM for i in range(6)]
    assert [j.job_id for j in store.ready_jobs(None)] == [*first, *second]


def test_a_registered_batch_record_says_which_jobs_whose_and_since_when(store):
    """What the sweep's record holds for the services that read it (its job ids: the card's
    cost, the sweep's stop, its results) and for a person reading the table."""
    jobs = [make_job(f"shape-{i}", client_token=f"shape/{i}", sweep_id="shape") for i in range(3)]
    ids = store.register_many(jobs, "shape")
    assert store.get_record(RecordKind.SWEEP, "shape") == {
        "State": "registered",
        "JobIds": ids,  # ids a sweep did not derive (see sweeps.batch_record_ids): kept one by one
        "Until": format_utc(T0 + BATCH_LEASE),
        "OwnerKey": jobs[0].owner.key,
        "CreatedAt": format_utc(T0),
        # Its progress (jobs written) and its jobs' first fair-share tag, for a repeat to resume.
        "Registered": 3,
        "FirstTag": store.get(ids[0]).queue_tag,
    }


def test_a_batch_id_reused_for_other_jobs_is_refused(store):
    store.register_many([make_job("a", client_token="x/1")], "batch")
    with pytest.raises(DuplicateBatch):
        store.register_many([make_job("b", client_token="x/2")], "batch")


def test_a_repeat_of_a_batch_being_registered_writes_no_job_and_moves_no_clock(store):
    jobs = [make_job(f"busy-{i}", client_token=f"busy/{i}", sweep_id="busy") for i in range(30)]
    writes, moves = job_writes(store), clock_moves(store)
    refused: list[Exception] = []

    def repeat_once(done: int, total: int) -> None:
        if not refused:  # a retried request registers the same batch while the first writes it
            with pytest.raises(BatchBusy) as busy:
                store.register_many(jobs, "busy")
            refused.append(busy.value)

    assert store.register_many(jobs, "busy", on_progress=repeat_once) == [j.job_id for j in jobs]
    assert refused and refused[0].batch_id == "busy"
    assert set(writes) == {j.job_id for j in jobs} and set(writes.values()) == {1}
    assert len(moves) == 1
    assert store.register_many(jobs, "busy") == [j.job_id for j in jobs]  # finished: a repeat is a no-op
    assert set(writes.values()) == {1} and len(moves) == 1


def test_a_dead_writers_batch_is_taken_over_from_the_moment_its_lease_ends(store):
    jobs = [make_job(f"edge-{i}", client_token=f"edge/{i}", sweep_id="edge") for i in range(30)]

    def die(done: int, total: int) -> None:
        raise RuntimeError("the writer's function timed out")

    with pytest.raises(RuntimeError):
        store.register_many(jobs, "edge", on_progress=die)
    just_before = [j.model_copy(update={"created_at": T0 + BATCH_LEASE - timedelta(microseconds=1)}) for j in jobs]
    with pytest.raises(BatchBusy):
        store.register_many(just_before, "edge")
    at_its_end = [j.model_copy(update={"created_at": T0 + BATCH_LEASE}) for j in jobs]
    assert store.register_many(at_its_end, "edge") == [j.job_id for j in jobs]
    assert len(store.ready_jobs(None)) == len(jobs)


def test_a_batch_whose_writer_died_is_finished_by_a_later_repeat_writing_only_the_missing_jobs(store):
    jobs = [make_job(f"dead-{i}", client_token=f"dead/{i}", sweep_id="dead") for i in range(30)]

    def die(done: int, total: int) -> None:
        raise RuntimeError("the writer's function timed out")

    with pytest.raises(RuntimeError):
        store.register_many(jobs, "dead", on_progress=die)
    written = store.existing_ids(j.job_id for j in jobs)
    assert 0 < len(written) < len(jobs)
    with pytest.raises(BatchBusy):  # within the lease the writer may still be running
        store.register_many(jobs, "dead")

    later = [j.model_copy(update={"created_at": T0 + BATCH_LEASE + MINUTE}) for j in jobs]
    writes, moves = job_writes(store), clock_moves(store)
    assert store.register_many(later, "dead") == [j.job_id for j in jobs]
    assert set(writes) == {j.job_id for j in jobs} - written and set(writes.values()) == {1}
    assert len(moves) == 1
    assert len(store.ready_jobs(None)) == len(jobs)


# --- conditional writes -------------------------------------------------------------------------


def test_twenty_racing_threads_move_a_job_from_new_exactly_once(store):
    job = store.register(make_job("race")).job
    barrier = threading.Barrier(20)
    outcomes: list = []
    lock = threading.Lock()

    def claim(i: int) -> None:
        barrier.wait()
        outcome = store.transition(job, S.LAUNCHED, at=T0, reason=f"thread {i}")
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = [o for o in outcomes if isinstance(o, Applied)]
    losers = [o for o in outcomes if isinstance(o, LostRace)]
    assert len(winners) == 1 and len(losers) == 19
    stored = store.get(job.job_id)
    assert stored.status is S.LAUNCHED and stored.version == 2
    assert stored.history[-1].reason == winners[0].job.history[-1].reason
    assert all(loser.current is not None and loser.current.status is S.LAUNCHED for loser in losers)


def test_a_move_records_the_reason_it_was_given_and_none_when_given_none(store):
    """The history's reason is what the job's thread and `/train status` show."""
    job = store.register(make_job("why")).job
    launched = store.transition(job, S.LAUNCHED, at=T0).job
    stopped = store.transition(launched, S.STOPPED, at=T0 + MINUTE, reason="stopped by U1").job
    assert [h.reason for h in store.get(job.job_id).history[1:]] == ["", "stopped by U1"]
    assert stopped.history[-1].reason == "stopped by U1"


def test_a_job_write_never_writes_the_dispatchers_marks_or_the_thread_root(store):
    """Only the dispatcher writes what was delivered, and a thread's root is set once
    (set_thread): a job write leaves both as stored, whatever the job it was handed carries."""
    store.set_notify_targets(["slack"])
    job = store.register(make_job("marks", slack=SlackThread(channel_id="C1"))).job
    store.set_thread(job.job_id, "C1", "111.1")
    taken = store.acquire_delivery(job.job_id, "t", T0, T0 + MINUTE)
    store.finish_delivery(taken, "t", {"slack": 1}, all_done=True)
    current = store.get(job.job_id)
    forged = SlackThread(channel_id="C9", thread_ts="999.9")
    assert isinstance(store.update(current, at=T0 + MINUTE, priority=8, delivered={"slack": 0}, slack=forged), Applied)
    stored = store.get(job.job_id)
    assert stored.priority == 8
    assert stored.delivered == {"slack": 1} and stored.slack.thread_ts == "111.1"


def test_a_write_that_clears_an_optional_field_clears_it_in_the_store(store):
    """A retry the budget cannot renew drops the job's reservation (it was given back): the
    stored job must say so, or the next release or reserve reads a token that is gone."""
    job = store.register(make_job("clears")).job
    job = store.update(job, at=T0, reservation="nlp#2026-W45|t1", stall_warned_at=T0, model_artifact="s3://out/model.tar.gz").job
    store.update(job, at=T0 + MINUTE, reservation=None, stall_warned_at=None, model_artifact=None)
    stored = store.get(job.job_id)
    assert (stored.reservation, stored.stall_warned_at, stored.model_artifact) == (None, None, None)


def test_a_change_written_from_a_read_older_than_a_drains_finish_stays_in_the_outbox(store):
    """A drain delivered everything and took the job out of the outbox after the writer read
    it; the writer's new change must put it back in, due, or a writer that crashes before
    delivering it leaves it where no drain looks."""
    store.set_notify_targets(["slack"])
    job = store.register(make_job("reread")).job
    launched = store.transition(job, S.LAUNCHED, at=T0 + MINUTE).job  # the writer's read
    drained = store.acquire_delivery(job.job_id, "drain", T0 + MINUTE, T0 + 2 * MINUTE)
    store.finish_delivery(drained, "drain", {"slack": drained.last_seq}, all_done=True)
    assert store.outbox_job_ids() == []
    ended = store.transition(launched, S.FAILED, at=T0 + 3 * MINUTE, reason="boom").job
    assert store.outbox_job_ids(due_by=T0 + timedelta(days=1)) == [ended.job_id]


def test_a_stale_version_loses_even_when_the_status_matches(store):
    job = store.register(make_job("stale")).job
    assert isinstance(store.update(job, at=T0, priority=9), Applied)
    outcome = store.transition(job, S.LAUNCHED, at=T0)
    assert isinstance(outcome, LostRace)
    assert (outcome.job_id, outcome.expected_status, outcome.expected_version) == (job.job_id, S.NEW, 1)
    assert outcome.current.priority == 9 and outcome.current.version == 2


def test_an_illegal_transition_is_refused_before_anything_is_written(store):
    job = store.register(make_job("illegal")).job
    with pytest.raises(IllegalTransition):
        store.transition(job, S.COMPLETED, at=T0)
    assert store.get(job.job_id).version == 1


def test_an_update_stamps_the_job_with_the_writes_time_and_a_new_version(store):
    """updated_at orders the active jobs (least recently changed first) and the monitor's
    sweep; a bookkeeping update moves it like any write."""
    job = store.register(make_job("stamp")).job
    outcome = store.update(job, at=T0 + MINUTE, priority=9)
    assert isinstance(outcome, Applied)
    stored = store.get(job.job_id)
    assert (stored.updated_at, stored.version, stored.priority) == (T0 + MINUTE, 2, 9)
    assert outcome.job == stored


def test_update_refuses_a_status_change(store):
    job = store.register(make_job("no-status")).job
    with pytest.raises(ValueError):
        store.update(job, at=T0, status=S.LAUNCHED)


def test_a_write_of_a_job_that_is_gone_loses_with_nothing_current(store):
    ghost = make_job("ghost")
    outcome = store.transition(ghost, S.LAUNCHED, at=T0)
    assert isinstance(outcome, LostRace) and outcome.current is None


def test_a_job_write_keeps_the_thread_root_and_what_was_delivered(store):
    store.set_notify_targets(["slack"])
    job = store.register(make_job("thread", slack=SlackThread(channel_id="C1"))).job
    store.set_thread(job.job_id, "C1", "111.1")
    store.set_thread(job.job_id, "C1", "222.2")  # a second root never replaces the first
    lease = store.acquire_delivery(job.job_id, "tok", T0, T0 + MINUTE)
    store.finish_delivery(lease, "tok", {"slack": 1}, all_done=True)

    moved = store.transition(job, S.LAUNCHED, at=T0 + MINUTE)  # computed from the first read
    assert isinstance(moved, Applied)
    stored = store.get(job.job_id)
    assert stored.slack.thread_ts == "111.1"
    assert stored.delivered == {"slack": 1}
    assert store.outbox_job_ids() == [job.job_id]  # its new change is pending


# --- the launch queue -----------------------------------------------------------------------------


def test_due_jobs_come_by_priority_then_fair_tag_with_due_retries_merged_in(store):
    ready = [store.register(make_job(f"ready-{i}", now=T0 + timedelta(seconds=i), priority=p)).job for i, p in enumerate([5, 9, 5, 1])]
    retry_due = store.register(make_job("retry-due")).job
    retry_due = store.transition(retry_due, S.RETRYING, at=T0, next_attempt_at=T0 + MINUTE).job
    retry_later = store.register(make_job("retry-later")).job
    store.transition(retry_later, S.RETRYING, at=T0, next_attempt_at=T0 + timedelta(hours=1))
    _launched(store, "active")

    due = store.due_for_launch(T0 + 5 * MINUTE, limit=100)
    assert [j.job_id for j in due] == [ready[1].job_id, ready[0].job_id, ready[2].job_id, retry_due.job_id, ready[3].job_id]
    assert [j.job_id for j in store.iter_due(T0 + 5 * MINUTE, 2)] == [ready[1].job_id, ready[0].job_id]
    assert [j.job_id for j in store.retrying_due(T0 + 5 * MINUTE, None)] == [retry_due.job_id]
    assert store.retrying_due(T0, None) == []
    assert {j.job_id for j in store.ready_jobs(None)} == {j.job_id for j in ready}


def test_a_claimed_job_leaves_the_ready_queue_until_its_lease_expires_then_comes_first(store):
    job = store.register(make_job("claimed")).job
    other = store.register(make_job("other", priority=9)).job
    store.update(job, at=T0, lease=Lease(token="launcher-1", expires_at=T0 + 5 * MINUTE))
    assert [j.job_id for j in store.due_for_launch(T0 + MINUTE, 10)] == [other.job_id]
    assert store.expired_claims(T0 + MINUTE, None) == []
    assert [j.job_id for j in store.due_for_launch(T0 + 6 * MINUTE, 10)] == [job.job_id, other.job_id]
    assert [j.job_id for j in store.expired_claims(T0 + 6 * MINUTE, None)] == [job.job_id]


def test_releasing_a_claim_puts_the_job_back_in_the_ready_queue(store):
    job = store.register(make_job("released")).job
    claimed = store.update(job, at=T0, lease=Lease(token="l", expires_at=T0 + 5 * MINUTE)).job
    assert store.ready_jobs(None) == []
    store.update(claimed, at=T0, lease=None)
    assert [j.job_id for j in store.ready_jobs(None)] == [job.job_id]


def test_the_queued_jobs_come_with_what_ranking_needs_and_without_held_ones(store):
    ready = store.register(make_job("ready", priority=7)).job
    retrying = store.transition(store.register(make_job("retrying")).job, S.RETRYING, at=T0, next_attempt_at=T0 + MINUTE).job
    claimed = store.update(store.register(make_job("claimed")).job, at=T0, lease=Lease(token="l", expires_at=T0 + 5 * MINUTE)).job
    store.register(make_job("held", approval=Approval(state=ApprovalState.PENDING, reasons=["big"])))
    _launched(store, "active")
    found = {q.job_id: q for q in store.queued_jobs()}
    assert set(found) == {ready.job_id, retrying.job_id, claimed.job_id}
    assert found[ready.job_id] == QueuedJob.of(ready)
    assert found[retrying.job_id].next_attempt_at == T0 + MINUTE and found[retrying.job_id].status is S.RETRYING
    assert found[claimed.job_id].claimed_until == T0 + 5 * MINUTE
    assert store.held_count() == 1


def test_one_users_big_sweep_does_not_starve_a_colleagues_later_job(store):
    sweep = [make_job(f"sweep-{i}", user="UBIG", client_token=f"s/{i}") for i in range(60)]
    store.register_many(sweep, "big")
    colleague = store.register(make_job("single", user="USMALL", now=T0 + timedelta(seconds=30))).job
    due = store.due_for_launch(T0 + MINUTE, limit=5)
    assert colleague.job_id in [j.job_id for j in due[:2]]
    assert colleague.queue_tag < sweep[0].created_at.timestamp() + 2 * FAIR_SHARE_QUANTUM
    tags = [j.queue_tag for j in store.get_many(j.job_id for j in sweep)]
    assert tags == [tags[0] + i * FAIR_SHARE_QUANTUM for i in range(60)]


def test_an_owners_next_single_job_queues_behind_their_own_earlier_jobs(store):
    first = store.register(make_job("one", client_token="1")).job
    second = store.register(make_job("two", client_token="2")).job
    assert second.queue_tag == first.queue_tag + FAIR_SHARE_QUANTUM
    assert [j.job_id for j in store.ready_jobs(None)] == [first.job_id, second.job_id]


# --- active, owner, history -------------------------------------------------------------------------


def test_active_jobs_are_launched_in_progress_or_stopping_in_the_order_they_became_active(store):
    a = _launched(store, "a", at=T0 + 2 * MINUTE)
    b = _launched(store, "b", at=T0 + MINUTE)
    # A change while active (InProgress) keeps its place: the index entry is not rewritten.
    c = store.transition(_launched(store, "c", at=T0), S.IN_PROGRESS, at=T0 + 3 * MINUTE).job
    done = _launched(store, "done", at=T0)
    store.transition(store.transition(done, S.IN_PROGRESS, at=T0).job, S.COMPLETED, at=T0)
    store.register(make_job("queued"))
    assert [j.job_id for j in store.active_jobs()] == [c.job_id, b.job_id, a.job_id]
    assert [j.job_id for j in store.active_jobs(limit=1)] == [c.job_id]


def test_active_places_give_the_active_jobs_ids_in_the_order_they_became_active(store):
    a = _launched(store, "a", at=T0 + MINUTE)
    b = store.transition(_launched(store, "b", at=T0), S.IN_PROGRESS, at=T0 + 2 * MINUTE).job
    store.register(make_job("queued"))
    places = store.active_places()
    assert [job_id for _place, job_id in places] == [b.job_id, a.job_id]
    assert places[0][0] == f"2026-11-02T09:00:00.000000Z#{b.job_id}"
    assert [p for p, _ in places] == sorted(p for p, _ in places)


def test_active_usage_counts_the_instances_of_active_jobs_per_type_and_forgets_ended_ones(store):
    big = job_args(ResourceConfig={"InstanceType": "ml.p4d.24xlarge", "InstanceCount": 4, "VolumeSizeInGB": 50})
    a = _launched(store, "a", at=T0)
    b = _launched(store, "b", at=T0 + MINUTE, job_args=big)
    done = _launched(store, "done", at=T0)
    store.transition(store.transition(done, S.IN_PROGRESS, at=T0).job, S.COMPLETED, at=T0)
    store.register(make_job("queued"))
    assert store.active_usage() == {"ml.g5.xlarge": 1, "ml.p4d.24xlarge": 4}
    # The index projects only what usage needs; the active jobs still read whole, in order.
    assert [(j.job_id, j.job_args.instance_count) for j in store.active_jobs()] == [(a.job_id, 1), (b.job_id, 4)]


def test_jobs_of_an_owner_come_newest_first_in_pages(store):
    me = Owner(team_id="T1", user_id="U1")
    ids = [store.register(make_job(f"mine-{i}", now=T0 + timedelta(minutes=i))).job.job_id for i in range(7)]
    store.register(make_job("theirs", user="U2"))
    seen, cursor = [], None
    for _ in range(5):
        page = store.jobs_of_owner(me, limit=3, cursor=cursor)
        assert len(page.jobs) <= 3
        seen.extend(j.job_id for j in page.jobs)
        cursor = page.cursor
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    with pytest.raises(ValueError):
        store.jobs_of_owner(me, cursor="garbage!")


def test_everyones_jobs_come_newest_first_across_days_and_a_foreign_cursor_is_refused(store):
    ids = [store.register(make_job(f"day-{i}", user=f"U{i}", now=T0 - timedelta(days=i, minutes=i))).job.job_id for i in range(5)]
    store.register(make_job("too-old", user="UOLD", now=T0 - timedelta(days=40)))
    seen, cursor = [], None
    for _ in range(10):
        page = store.recent_jobs(limit=2, cursor=cursor, today=T0, max_days=10)
        seen.extend(j.job_id for j in page.jobs)
        cursor = page.cursor
        if cursor is None:
            break
    assert seen == ids
    store.register(make_job("day-0b", user="U0", now=T0 - timedelta(hours=1)))
    owner_cursor = store.jobs_of_owner(Owner(team_id="T1", user_id="U0"), limit=1).cursor
    with pytest.raises(ValueError):
        store.recent_jobs(cursor=owner_cursor, today=T0)


def test_jobs_created_on_a_day_within_a_window_oldest_first(store):
    ids = [store.register(make_job(f"h-{i}", user=f"U{i}", now=T0 + timedelta(hours=i))).job.job_id for i in range(4)]
    store.register(make_job("next-day", now=T0 + timedelta(days=1)))
    day = T0.date().isoformat()
    assert [j.job_id for j in store.jobs_created_on(day)] == ids
    since, until = "2026-11-02T10:00:00", "2026-11-02T11:30:00"
    window = [j.job_id for j in store.jobs_created_on(day, since=since, until=until)]
    assert window == ids[1:3]
    assert [j.job_id for j in store.jobs_created_on(day, since=since)] == ids[1:]
    assert [j.job_id for j in store.jobs_created_on(day, until=until)] == ids[:3]


# --- the outbox -----------------------------------------------------------------------------------


def test_a_change_stays_in_the_outbox_until_every_target_has_it(store):
    store.set_notify_targets(["slack", "sns"])
    job = store.register(make_job("out")).job
    assert store.outbox_job_ids() == [job.job_id]

    current = store.acquire_delivery(job.job_id, "t1", T0, T0 + MINUTE)
    assert current is not None and current.delivered == {}
    store.finish_delivery(current, "t1", {"slack": 1}, all_done=False)
    assert store.get(job.job_id).delivered == {"slack": 1}
    assert store.outbox_job_ids() == [job.job_id]

    current = store.acquire_delivery(job.job_id, "t2", T0, T0 + MINUTE)
    store.finish_delivery(current, "t2", {"slack": 1, "sns": 1}, all_done=True)
    assert store.outbox_job_ids() == []


def test_the_outbox_lists_oldest_change_first(store):
    store.set_notify_targets(["slack"])
    later = store.register(make_job("later", now=T0 + MINUTE)).job
    earlier = store.register(make_job("earlier", user="U2")).job
    assert store.outbox_job_ids() == [earlier.job_id, later.job_id]
    assert store.outbox_job_ids(limit=1) == [earlier.job_id]


def test_a_delivery_lease_is_exclusive_until_it_expires(store):
    store.set_notify_targets(["slack"])
    job = store.register(make_job("lease")).job
    assert store.acquire_delivery(job.job_id, "a", T0, T0 + MINUTE) is not None
    assert store.acquire_delivery(job.job_id, "b", T0 + timedelta(seconds=30), T0 + 2 * MINUTE) is None
    assert store.acquire_delivery(job.job_id, "c", T0 + 2 * MINUTE, T0 + 3 * MINUTE) is not None
    assert store.acquire_delivery("missing-000000", "d", T0, T0 + MINUTE) is None


def test_a_finish_under_an_expired_lease_records_nothing(store):
    store.set_notify_targets(["slack"])
    job = store.register(make_job("late")).job
    stale = store.acquire_delivery(job.job_id, "old", T0, T0 + MINUTE)
    store.acquire_delivery(job.job_id, "new", T0 + 2 * MINUTE, T0 + 3 * MINUTE)
    store.finish_delivery(stale, "old", {"slack": 1}, all_done=True)
    assert store.get(job.job_id).delivered == {}
    assert store.outbox_job_ids() == [job.job_id]


def test_a_job_that_changed_during_delivery_stays_in_the_outbox(store):
    store.set_notify_targets(["slack"])
    job = store.register(make_job("moving")).job
    current = store.acquire_delivery(job.job_id, "t", T0, T0 + MINUTE)
    store.transition(job, S.LAUNCHED, at=T0)  # a new change while seq 1 was being sent
    # Recorded, and the answer says a newer change waits (its dispatcher delivers it now).
    assert store.finish_delivery(current, "t", {"slack": 1}, all_done=True) is True
    assert store.get(job.job_id).delivered == {"slack": 1}
    assert store.outbox_job_ids() == [job.job_id]
    taken = store.acquire_delivery(job.job_id, "t2", T0, T0 + MINUTE)  # lease released
    assert taken is not None
    assert store.finish_delivery(taken, "t2", {"slack": 2}, all_done=True) is False  # nothing newer
    assert store.outbox_job_ids() == []


def test_a_finish_whose_lease_was_taken_over_says_nothing_is_newer(store):
    store.set_notify_targets(["slack"])
    job = store.register(make_job("taken")).job
    stale = store.acquire_delivery(job.job_id, "old", T0, T0 + MINUTE)
    store.transition(job, S.LAUNCHED, at=T0)
    store.acquire_delivery(job.job_id, "new", T0 + 2 * MINUTE, T0 + 3 * MINUTE)
    assert store.finish_delivery(stale, "old", {"slack": 1}, all_done=True) is False  # the new holder delivers


# --- small records --------------------------------------------------------------------------------


def test_a_record_written_only_if_absent_keeps_the_first_writer(store):
    assert store.put_record(RecordKind.SWEEP_ROOT, "sw-1", {"Ts": "1.1", "Total": 2}, only_if_absent=True)
    assert not store.put_record("sweep-root", "sw-1", {"Ts": "2.2"}, only_if_absent=True)
    assert store.get_record("sweep-root", "sw-1") == {"Ts": "1.1", "Total": 2}
    assert store.get_record(RecordKind.SWEEP_ROOT, "sw-2") is None


def test_a_conditional_record_write_needs_the_stored_values(store):
    store.put_record(RecordKind.PRESET, "nlp", {"Creator": "U1", "Fields": {"lr": "1"}})
    assert not store.put_record(RecordKind.PRESET, "nlp", {"Creator": "U2"}, only_if={"Creator": "U2"})
    assert not store.put_record(RecordKind.PRESET, "none", {"Creator": "U1"}, only_if={"Creator": "U1"})
    assert store.put_record(RecordKind.PRESET, "nlp", {"Creator": "U1", "Fields": {"lr": "2"}}, only_if={"Creator": "U1"})
    assert store.get_record(RecordKind.PRESET, "nlp") == {"Creator": "U1", "Fields": {"lr": "2"}}
    assert store.get_record(RecordKind.PRESET, "none") is None
    store.delete_record(RecordKind.PRESET, "nlp")
    assert store.get_record(RecordKind.PRESET, "nlp") is None


def test_a_record_written_only_while_it_lacks_an_attribute(store):
    """only_if={name: None}: the record must exist and lack the attribute (a pending sweep's
    confirmation claims it only while nobody has)."""
    store.put_record(RecordKind.PENDING_SWEEP, "sw-1", {"Total": 3})
    assert store.put_record(RecordKind.PENDING_SWEEP, "sw-1", {"Total": 3, "ClaimedUntil": "t1"}, only_if={"ClaimedUntil": None})
    assert not store.put_record(RecordKind.PENDING_SWEEP, "sw-1", {"Total": 3, "ClaimedUntil": "t2"}, only_if={"ClaimedUntil": None})
    assert not store.put_record(RecordKind.PENDING_SWEEP, "sw-2", {"ClaimedUntil": "t1"}, only_if={"ClaimedUntil": None})
    assert store.get_record(RecordKind.PENDING_SWEEP, "sw-1") == {"Total": 3, "ClaimedUntil": "t1"}


def test_a_mark_expected_at_a_value_it_never_had_is_not_moved(store):
    """A writer that saw the mark at 5 claims it from 5 only: a mark never set (0) is not 5."""
    store.register_many([make_job("m-0", client_token="mk/0")], "unset")
    store.count_sweep_end("unset", 0, "Completed")
    assert not store.claim_sweep_mark("unset", "Digested", 5, 6)
    assert not store.claim_record_mark("approval", "tb-y#1", "Told:boss", 5, 6)
    assert store.claim_sweep_mark("unset", "Digested", 0, 6)
    assert store.claim_record_mark("approval", "tb-y#1", "Told:boss", 0, 6)


def test_map_entries_of_a_record_are_set_and_removed_one_at_a_time(store):
    store.set_record_entry(RecordKind.PRESET_INDEX, "all", "Names", "nlp", "U1")
    store.set_record_entry(RecordKind.PRESET_INDEX, "all", "Names", "cv", "U2")
    store.set_record_entry(RecordKind.PRESET_INDEX, "all", "Names", "nlp", None)
    assert store.get_record(RecordKind.PRESET_INDEX, "all") == {"Names": {"cv": "U2"}}


def test_numbers_in_records_read_back_as_written(store):
    store.put_record(RecordKind.HOLDS, "instance-types", {"Holds": {"ml.p4d.24xlarge": {"Until": "x", "Active": 3}}, "Rate": 1.5})
    assert store.get_record(RecordKind.HOLDS, "instance-types") == {
        "Holds": {"ml.p4d.24xlarge": {"Until": "x", "Active": 3}},
        "Rate": 1.5,
    }


def test_parked_jobs_leave_the_ready_queue_and_are_found_by_type(store):
    p4 = {"InstanceType": "ml.p4d.24xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50}
    store.register(make_job("p4", job_id="p4-a", job_args=job_args(ResourceConfig=p4)))
    store.register(make_job("g5", job_id="g5-a"))
    job = store.get("p4-a")
    outcome = store.update(job, at=job.updated_at, parked_at=job.updated_at)
    assert isinstance(outcome, Applied)
    assert [j.job_id for j in store.ready_jobs(None)] == ["g5-a"]
    assert store.parked_types() == ["ml.p4d.24xlarge"]
    assert [j.job_id for j in store.parked_jobs("ml.p4d.24xlarge", 10)] == ["p4-a"]
    assert store.parked_jobs("ml.g5.xlarge", 10) == []


def test_records_never_show_up_as_jobs(store):
    store.put_record(RecordKind.PRESET, "nlp", {"Creator": "U1"})
    store.register(make_job("real"))
    with pytest.raises(JobNotFound):
        store.get("preset#nlp")
    assert len(store.ready_jobs(None)) == 1
    assert len(store.jobs_of_owner(Owner(team_id="T1", user_id="U1")).jobs) == 1


# --- issue 12: delivery bookkeeping folded into the writes that happen anyway --------------------


def test_a_sweep_job_end_is_counted_once_in_one_write_with_its_failure_line(store):
    store.register_many([make_job(f"c-{i}", client_token=f"c/{i}") for i in range(3)], "count")
    first = store.count_sweep_end("count", 1, "Completed")
    assert first is not None and first.tally == {"Completed": 1} and first.failures == []
    assert store.count_sweep_end("count", 1, "Completed") is None  # a redelivery counts nothing
    failed = store.count_sweep_end("count", 2, "Failed", "c-2 Failed: boom")
    assert failed.tally == {"Completed": 1, "Failed": 1} and failed.failures == ["c-2 Failed: boom"]
    assert failed.digested == 0 and not failed.final
    assert store.count_sweep_end("count", 2, "Failed", "again") is None


def test_a_sweep_end_record_keeps_only_its_newest_failure_lines_and_counts_the_others(store):
    kept = notice.SWEEP_FAILURES_KEPT
    seen = [store.count_sweep_end("many", i, "Failed", f"f-{i} Failed") for i in range(5 * kept)]
    # Each writer saw every line since the last trim, numbered from the sweep's first failure.
    assert all(end is not None and end.failed == i + 1 for i, end in enumerate(seen))
    assert seen[-1].failures[-1] == f"f-{5 * kept - 1} Failed"
    assert seen[-1].failures_from(5 * kept - 3) == [f"f-{i} Failed" for i in range(5 * kept - 3, 5 * kept)]
    record = store.get_record(RecordKind.SWEEP_ENDS, "many")
    assert kept <= len(record["Failures"]) <= 2 * kept
    assert record["FailuresBefore"] + len(record["Failures"]) == 5 * kept
    assert record["Failures"][-1] == f"f-{5 * kept - 1} Failed"
    assert record["Tally"] == {"Failed": 5 * kept}


def test_a_sweeps_batch_record_names_derived_job_ids_by_their_stem_not_one_by_one(store):
    stem = sweeps.sweep_stem("sw-0123456789abcdef", "grid", "tb-")
    jobs = [make_job(f"grid-{i + 1}", job_id=sweeps.sweep_job_id(stem, i), client_token=f"sw-0123456789abcdef/{i}") for i in range(60)]
    ids = store.register_many(jobs, "sw-0123456789abcdef")
    record = store.get_record(RecordKind.SWEEP, "sw-0123456789abcdef")
    assert "JobIds" not in record and (record["IdStem"], record["Size"]) == (stem, 60)
    assert sweeps.batch_job_ids(record) == ids == [job.job_id for job in jobs]
    assert len(store.get_many(ids)) == 60
    assert store.register_many(jobs, "sw-0123456789abcdef") == ids  # a repeat: nothing new
    with pytest.raises(DuplicateBatch):
        store.register_many(jobs[:59], "sw-0123456789abcdef")


def test_a_sweep_mark_moves_once_from_what_its_writer_saw(store):
    store.register_many([make_job("m-0", client_token="m/0")], "marks")
    store.count_sweep_end("marks", 1, "Failed", "m-1 Failed")
    assert store.claim_sweep_mark("marks", "Digested", 0, 10)
    assert not store.claim_sweep_mark("marks", "Digested", 0, 10)  # another writer saw 0 too: refused
    assert store.claim_sweep_mark("marks", "Digested", 10, 20)
    assert store.claim_sweep_mark("marks", "Final", 0, 1) and not store.claim_sweep_mark("marks", "Final", 0, 1)
    ended = store.count_sweep_end("marks", 0, "Completed")
    assert ended.digested == 20 and ended.final


def test_a_record_mark_is_created_on_first_use_and_moves_once_from_what_its_writer_saw(store):
    assert store.claim_record_mark("approval", "tb-x#1", "Told:boss", 0, -100, expires_at=999)
    assert not store.claim_record_mark("approval", "tb-x#1", "Told:boss", 0, -100)  # another writer saw 0 too
    assert store.claim_record_mark("approval", "tb-x#1", "Told:chief", 0, 1)  # another admin's mark: its own
    assert store.claim_record_mark("approval", "tb-x#1", "Told:boss", -100, 1)
    record = store.get_record("approval", "tb-x#1")
    assert record["Told:boss"] == 1 and record["Told:chief"] == 1 and record["ExpiresAt"] == 999


def test_an_urgent_transition_takes_the_delivery_lease_in_its_own_write(store):
    store.set_notify_targets(["slack"])
    job = store.register(make_job("fold")).job
    assert not store.holds_delivery(job)
    launched = store.transition(job, S.LAUNCHED, at=T0 + MINUTE).job
    assert not store.holds_delivery(launched)  # nothing urgent: no lease, it waits
    assert store.acquire_delivery(job.job_id, "drain", T0 + MINUTE, T0 + 2 * MINUTE) is not None  # so a drain may
    store.finish_delivery(store.get(job.job_id), "drain", {"slack": 2}, all_done=True)
    ended = store.transition(launched, S.FAILED, at=T0 + 3 * MINUTE, reason="boom").job
    assert store.holds_delivery(ended) and not store.holds_delivery(ended)  # asked once
    # Its holder delivers from what is stored: the drain sent change 2 after this writer read
    # the job, and sending it again would be a duplicate.
    assert ended.delivered == {"slack": 2}
    assert store.acquire_delivery(job.job_id, "other", T0 + 3 * MINUTE, T0 + 4 * MINUTE) is None  # the writer's
    store.finish_delivery(ended, f"v{ended.version}", {"slack": ended.last_seq}, all_done=True)
    assert store.outbox_job_ids() == []


def test_an_urgent_transition_leaves_a_live_drain_lease_alone(store):
    store.set_notify_targets(["slack"])
    job = store.register(make_job("busy")).job
    assert store.acquire_delivery(job.job_id, "drain", T0, T0 + 5 * MINUTE) is not None
    outcome = store.transition(job, S.STOPPED, at=T0 + MINUTE, reason="stopped")
    assert isinstance(outcome, Applied) and store.get(job.job_id).status is S.STOPPED
    assert not store.holds_delivery(outcome.job)  # the drain delivers it


def test_a_crashed_drains_lease_is_taken_by_a_transition_only_a_send_bound_after_it_ran_out(store):
    """The drain took the lease and died without releasing it. Its last send may still be under
    way until SEND_BOUND after the lease ran out: an urgent transition before then leaves the
    change to the drain; one after takes the lease in its own write."""
    store.set_notify_targets(["slack"])
    job = store.register(make_job("orphan", notify=NotifyMode.ALL)).job
    assert store.acquire_delivery(job.job_id, "dead-drain", T0, T0 + MINUTE) is not None
    ran_out = T0 + MINUTE
    launched = store.transition(job, S.LAUNCHED, at=ran_out + notice.SEND_BOUND).job
    assert not store.holds_delivery(launched)
    running = store.transition(launched, S.IN_PROGRESS, at=ran_out + notice.SEND_BOUND + timedelta(seconds=1)).job
    assert store.holds_delivery(running)


def test_the_lease_holder_gets_the_thread_root_posted_after_its_read(store):
    """The writer read the job before its root card was posted (set_thread); the delivery it
    makes from its own write must reply in that thread, not post a second root."""
    store.set_notify_targets(["slack"])
    job = store.register(make_job("rooted", slack=SlackThread(channel_id="C1"))).job
    store.set_thread(job.job_id, "C1", "111.1")
    ended = store.transition(job, S.STOPPED, at=T0 + MINUTE, reason="stopped").job
    assert store.holds_delivery(ended)
    assert (ended.slack.channel_id, ended.slack.thread_ts) == ("C1", "111.1")


def test_the_outbox_lists_what_is_due_by_a_time(store):
    store.set_notify_targets(["slack"])
    queued = store.register(make_job("waits")).job
    ended = store.transition(store.register(make_job("ended")).job, S.STOPPED, at=T0, reason="stopped").job
    assert store.outbox_job_ids(due_by=T0) == []
    assert store.outbox_job_ids(due_by=T0 + MINUTE) == []  # its writer's lease may have a send under way
    assert store.outbox_job_ids(due_by=T0 + 3 * MINUTE) == [ended.job_id]  # once it may be taken over
    assert store.outbox_job_ids(due_by=T0 + timedelta(days=2)) == [ended.job_id, queued.job_id]


# --- delivery rounds that outlast their lease, and failing ones that back off ---------------------


def test_a_delivery_lease_is_extended_with_the_progress_so_far_only_by_its_holder(store):
    store.set_notify_targets(["slack"])
    job = store.register(make_job("long")).job
    current = store.acquire_delivery(job.job_id, "a", T0, T0 + MINUTE)
    assert store.extend_delivery(current, "a", {"slack": 1}, T0 + 3 * MINUTE)
    assert store.get(job.job_id).delivered == {"slack": 1}
    assert store.acquire_delivery(job.job_id, "b", T0 + 2 * MINUTE, T0 + 4 * MINUTE) is None  # extended
    taken = store.acquire_delivery(job.job_id, "b", T0 + 4 * MINUTE, T0 + 5 * MINUTE)
    assert taken is not None and taken.delivered == {"slack": 1}
    assert not store.extend_delivery(current, "a", {"slack": 2}, T0 + 9 * MINUTE)  # lost: stop sending
    assert store.get(job.job_id).delivered == {"slack": 1}


def test_a_round_that_failed_leaves_its_job_in_the_outbox_due_at_its_retry_time(store):
    store.set_notify_targets(["slack"])
    ended = store.transition(store.register(make_job("fails")).job, S.STOPPED, at=T0, reason="stopped").job
    current = store.acquire_delivery(ended.job_id, "t", T0 + 2 * MINUTE, T0 + 3 * MINUTE)
    store.finish_delivery(current, "t", {"slack": 1}, all_done=False, retry_at=T0 + 10 * MINUTE)
    assert store.get(ended.job_id).delivered == {"slack": 1}
    assert store.outbox_job_ids(due_by=T0 + 9 * MINUTE) == []
    assert store.outbox_job_ids(due_by=T0 + 10 * MINUTE) == [ended.job_id]
    assert store.acquire_delivery(ended.job_id, "t2", T0 + 10 * MINUTE, T0 + 11 * MINUTE) is not None  # released


# --- sends in doubt: a lease never given back, doubts recorded with the delivered marks ----------


def test_a_lease_taken_over_from_a_holder_that_never_gave_it_back_puts_its_changes_in_doubt(store):
    store.set_notify_targets(["slack", "sns"])
    job = store.transition(store.register(make_job("killed")).job, S.LAUNCHED, at=T0).job
    first = store.acquire_delivery(job.job_id, "killed", T0, T0 + MINUTE)
    assert first is not None and first.doubts is None  # nobody held it before
    # Its holder is killed after sending, before recording: the lease stays on the item.
    taken = store.acquire_delivery(job.job_id, "next", T0 + 3 * MINUTE, T0 + 4 * MINUTE)
    assert taken is not None and taken.doubts == {"slack": 2, "sns": 2}
    # Told by the taking write itself: nothing else was written.
    assert store.get(job.job_id).doubts is None
    store.finish_delivery(taken, "next", {"slack": 2, "sns": 2}, all_done=True, doubts={})
    # A lease given back leaves nothing in doubt for the next holder.
    again = store.transition(store.get(job.job_id), S.IN_PROGRESS, at=T0 + 5 * MINUTE).job
    assert store.acquire_delivery(again.job_id, "after", T0 + 5 * MINUTE, T0 + 6 * MINUTE).doubts is None


def test_doubts_ride_in_the_finishing_write_and_no_job_write_touches_them(store):
    store.set_notify_targets(["slack", "sns"])
    job = store.register(make_job("doubt")).job
    current = store.acquire_delivery(job.job_id, "t", T0, T0 + MINUTE)
    store.finish_delivery(current, "t", {"sns": 1}, all_done=False, retry_at=T0 + 5 * MINUTE, doubts={"slack": 1})
    assert store.get(job.job_id).doubts == {"slack": 1}
    moved = store.transition(job, S.LAUNCHED, at=T0 + MINUTE)  # computed from a read without them
    assert isinstance(moved, Applied) and store.get(job.job_id).doubts == {"slack": 1}
    current = store.acquire_delivery(job.job_id, "u", T0 + 6 * MINUTE, T0 + 7 * MINUTE)
    assert current.doubts == {"slack": 1}  # given back: only what was recorded
    store.finish_delivery(current, "u", {"sns": 2}, all_done=False)  # not given: left as it is
    assert store.get(job.job_id).doubts == {"slack": 1}
    current = store.acquire_delivery(job.job_id, "v", T0 + 8 * MINUTE, T0 + 9 * MINUTE)
    store.finish_delivery(current, "v", {"sns": 2, "slack": 2}, all_done=True, doubts={})
    assert store.get(job.job_id).doubts is None


def test_an_urgent_transition_over_a_lease_never_given_back_puts_the_earlier_changes_in_doubt(store):
    store.set_notify_targets(["slack"])
    job = store.transition(store.register(make_job("fold-doubt")).job, S.LAUNCHED, at=T0).job
    assert store.acquire_delivery(job.job_id, "killed", T0, T0 + MINUTE) is not None  # then killed
    ended = store.transition(job, S.FAILED, at=T0 + 4 * MINUTE, reason="boom").job
    assert store.holds_delivery(ended)
    # The killed round may have told changes 1 and 2; change 3 is this write's own.
    assert ended.doubts == {"slack": 2} and ended.last_seq == 3

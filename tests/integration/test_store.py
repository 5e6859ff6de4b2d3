"""The DynamoDB job store against moto (in-process), through boto3's real API."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from backend.adapters.dynamo import from_item, to_item
from backend.domain.fairness import FAIR_SHARE_QUANTUM
from backend.domain.model import Lease, Owner
from backend.domain.status import JobStatus
from backend.errors import IllegalTransition, JobNotFound
from backend.ports import Applied, LostRace
from tests.conftest import T0, make_job

S = JobStatus


def test_an_item_round_trips_with_the_fixed_point_attributes(store):
    job = make_job("bert", client_token="t1")
    item = to_item(job)
    assert item["JobId"] == {"S": job.job_id}
    assert item["JobStatus"] == {"S": "New"}
    assert item["JobArgs"]["M"]["ResourceConfig"]["M"]["InstanceType"] == {"S": "ml.g5.xlarge"}
    assert from_item(item) == job


def test_register_is_idempotent_on_the_client_token(store):
    first = store.register(make_job("bert", client_token="trigger-1"))
    again = store.register(make_job("bert", client_token="trigger-1", now=T0 + timedelta(seconds=3)))
    assert first.created and not again.created
    assert again.job.job_id == first.job.job_id
    assert again.job.created_at == T0  # the stored one, not the duplicate
    assert len(store.ready_jobs(None)) == 1


def test_get_of_an_unknown_or_non_job_key_raises_job_not_found(store):
    store.register(make_job("bert"))
    with pytest.raises(JobNotFound):
        store.get("nope-000000")
    with pytest.raises(JobNotFound):
        store.get("owner#T1:U1")


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


def test_a_stale_version_loses_even_when_the_status_matches(store):
    job = store.register(make_job("stale")).job
    assert isinstance(store.update(job, at=T0, priority=9), Applied)
    outcome = store.transition(job, S.LAUNCHED, at=T0)
    assert isinstance(outcome, LostRace) and outcome.current.priority == 9


def test_an_illegal_transition_is_refused_before_anything_is_written(store):
    job = store.register(make_job("illegal")).job
    with pytest.raises(IllegalTransition):
        store.transition(job, S.COMPLETED, at=T0)
    assert store.get(job.job_id).version == 1


def test_a_batch_of_2000_jobs_registers_every_one_and_a_repeat_writes_nothing(store):
    jobs = [make_job(f"sweep-{i}", client_token=f"sweep-1/{i}", sweep_id="sweep-1") for i in range(2000)]
    progress: list[tuple[int, int]] = []
    registered = store.register_many(jobs, "sweep-1", on_progress=lambda done, total: progress.append((done, total)))
    assert len(registered) == 2000 and len(set(registered)) == 2000
    assert registered == [job.job_id for job in jobs]
    assert progress[-1] == (2000, 2000)
    writes = store.metrics.calls["batch_write_item"]
    assert writes == 2000 // 25

    store.metrics.reset()
    again = store.register_many(jobs, "sweep-1")
    assert again == registered
    assert store.metrics.calls["batch_write_item"] == 0


def test_a_batch_that_died_half_way_is_completed_without_overwriting_jobs_that_moved_on(store):
    jobs = [make_job(f"b-{i}", client_token=f"b/{i}") for i in range(60)]
    # Simulate a crash after the first 25 jobs were written: the batch record says registering.
    store.register_many(jobs[:25], "half")
    store._client.update_item(  # noqa: SLF001 - test sets up the crashed state
        TableName=store.table_name,
        Key={"JobId": {"S": "sweep#half"}},
        UpdateExpression="SET JobIds = :ids, #s = :r",
        ExpressionAttributeNames={"#s": "State"},
        ExpressionAttributeValues={":ids": {"L": [{"S": j.job_id} for j in jobs]}, ":r": {"S": "registering"}},
    )
    moved = store.transition(store.get(jobs[0].job_id), S.LAUNCHED, at=T0)
    assert isinstance(moved, Applied)

    registered = store.register_many(jobs, "half")
    assert len(registered) == 60
    assert len(store.get_many(registered)) == 60
    assert store.get(jobs[0].job_id).status is S.LAUNCHED  # not reset to New


def _seed_finished(store, count: int) -> None:
    """Write ``count`` finished jobs straight into the table (BatchWriteItem)."""
    done = []
    for i in range(count):
        job = make_job(f"old-{i}", now=T0 - timedelta(days=30))
        done.append(job.model_copy(update={"status": S.COMPLETED if i % 3 else S.FAILED}))
    store._batch_put(done, None, total=count, already=0)  # noqa: SLF001 - bulk seeding


def test_due_and_active_queries_read_only_what_they_return_with_5000_finished_jobs(store):
    _seed_finished(store, 5000)
    ready = [store.register(make_job(f"ready-{i}", now=T0 + timedelta(seconds=i), priority=p)).job for i, p in enumerate([5, 9, 5, 1])]
    retry_due = store.register(make_job("retry-due")).job
    retry_due = store.transition(retry_due, S.RETRYING, at=T0, next_attempt_at=T0 + timedelta(minutes=1)).job
    retry_later = store.register(make_job("retry-later")).job
    store.transition(retry_later, S.RETRYING, at=T0, next_attempt_at=T0 + timedelta(hours=1))
    active = []
    for i, status in enumerate([S.LAUNCHED, S.IN_PROGRESS, S.STOPPING]):
        job = store.register(make_job(f"active-{i}")).job
        job = store.transition(job, S.LAUNCHED, at=T0 + timedelta(seconds=i)).job
        if status is not S.LAUNCHED:
            job = store.transition(job, status, at=T0 + timedelta(seconds=i)).job
        active.append(job)

    store.metrics.reset()
    due = store.due_for_launch(T0 + timedelta(minutes=5), limit=100)
    assert [j.job_id for j in due] == [ready[1].job_id, ready[0].job_id, ready[2].job_id, retry_due.job_id, ready[3].job_id]
    assert store.metrics.items_read == len(due)
    assert "scan" not in store.metrics.calls

    store.metrics.reset()
    found = store.active_jobs()
    assert {j.job_id for j in found} == {j.job_id for j in active}
    assert store.metrics.items_read == len(found) == 3


def test_a_claimed_job_leaves_the_ready_queue_until_its_lease_expires(store):
    job = store.register(make_job("claimed")).job
    lease = Lease(token="launcher-1", expires_at=T0 + timedelta(minutes=5))
    store.update(job, at=T0, lease=lease)
    assert store.due_for_launch(T0 + timedelta(minutes=1), 10) == []
    assert [j.job_id for j in store.due_for_launch(T0 + timedelta(minutes=6), 10)] == [job.job_id]


def test_one_users_big_sweep_does_not_starve_a_colleagues_later_job(store):
    sweep = [make_job(f"sweep-{i}", user="UBIG", client_token=f"s/{i}") for i in range(200)]
    store.register_many(sweep, "big")
    colleague = store.register(make_job("single", user="USMALL", now=T0 + timedelta(seconds=30))).job
    due = store.due_for_launch(T0 + timedelta(minutes=1), limit=5)
    assert colleague.job_id in [j.job_id for j in due[:2]]
    assert colleague.queue_tag < sweep[0].created_at.timestamp() + 2 * FAIR_SHARE_QUANTUM


def test_jobs_of_an_owner_come_newest_first_in_pages(store):
    me = Owner(team_id="T1", user_id="U1")
    ids = [store.register(make_job(f"mine-{i}", now=T0 + timedelta(minutes=i))).job.job_id for i in range(7)]
    store.register(make_job("theirs", user="U2"))
    first = store.jobs_of_owner(me, limit=3)
    second = store.jobs_of_owner(me, limit=3, cursor=first.cursor)
    third = store.jobs_of_owner(me, limit=3, cursor=second.cursor)
    seen = [j.job_id for page in (first, second, third) for j in page.jobs]
    assert seen == list(reversed(ids))
    with pytest.raises(ValueError):
        store.jobs_of_owner(me, cursor="garbage!")


def test_everyones_jobs_come_newest_first_across_days_and_a_foreign_cursor_is_refused(store):
    ids = [store.register(make_job(f"day-{i}", user=f"U{i}", now=T0 - timedelta(days=i, minutes=i))).job.job_id for i in range(5)]
    seen, cursor = [], None
    for _ in range(5):
        page = store.recent_jobs(limit=2, cursor=cursor, today=T0, max_days=10)
        seen.extend(j.job_id for j in page.jobs)
        cursor = page.cursor
        if cursor is None or len(seen) == 5:
            break
    assert seen == ids
    store.register(make_job("day-0b", user="U0", now=T0 - timedelta(hours=1)))
    owner_cursor = store.jobs_of_owner(Owner(team_id="T1", user_id="U0"), limit=1).cursor
    with pytest.raises(ValueError):
        store.recent_jobs(cursor=owner_cursor, today=T0)

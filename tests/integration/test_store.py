"""What is particular to the DynamoDB job store, against moto (in-process), through boto3's
real API: the item shape and index keys, BatchWriteItem chunks and unprocessed items, a
half-registered batch, and queries that read only what they return. The port's behaviour
shared with the in-memory fake is in tests/contract/test_store_contract.py."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from backend.adapters.dynamo import DynamoJobStore, from_item, index_keys, to_item
from backend.adapters.dynamo import jobs as jobs_module
from backend.domain import sweeps
from backend.domain.model import Lease
from backend.domain.records import RecordKind
from backend.domain.status import JobStatus
from backend.errors import JobNotFound, StoreUnavailable
from backend.ports import BATCH_LEASE, Applied, BatchBusy, LostRace
from tests.conftest import T0, make_job
from tests.store_spies import job_writes

S = JobStatus


def test_an_item_round_trips_with_the_fixed_point_attributes(store):
    job = make_job("bert", client_token="t1")
    item = to_item(job)
    assert item["JobId"] == {"S": job.job_id}
    assert item["JobStatus"] == {"S": "New"}
    assert item["JobArgs"]["M"]["ResourceConfig"]["M"]["InstanceType"] == {"S": "ml.g5.xlarge"}
    assert from_item(item) == job


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
    # Simulate a crash after the first 25 jobs were written: the batch record says registering,
    # and its writer's lease (Until) still runs.
    store.register_many(jobs[:25], "half")
    store._client.update_item(
        TableName=store.table_name,
        Key={"JobId": {"S": "sweep#half"}},
        UpdateExpression="SET JobIds = :ids, #s = :r",
        ExpressionAttributeNames={"#s": "State"},
        ExpressionAttributeValues={":ids": {"L": [{"S": j.job_id} for j in jobs]}, ":r": {"S": "registering"}},
    )
    moved = store.transition(store.get(jobs[0].job_id), S.LAUNCHED, at=T0)
    assert isinstance(moved, Applied)

    # Within the batch's lease its writer may still be running: a repeat writes nothing.
    store.metrics.reset()
    with pytest.raises(BatchBusy):
        store.register_many(jobs, "half")
    assert store.metrics.calls["batch_write_item"] == 0
    assert len(store.existing_ids(j.job_id for j in jobs)) == 25

    # After it, a repeat takes the batch over and writes only the 35 missing jobs.
    later = [j.model_copy(update={"created_at": T0 + BATCH_LEASE + timedelta(minutes=1)}) for j in jobs]
    registered = store.register_many(later, "half")
    assert store.metrics.calls["batch_write_item"] == 2  # 35 jobs: 25 + 10
    assert len(registered) == 60
    assert len(store.get_many(registered)) == 60
    assert store.get(jobs[0].job_id).status is S.LAUNCHED  # not reset to New


def _sweep(sweep_id: str, size: int, *, now=T0):
    stem = sweeps.sweep_stem(sweep_id, "grid", "tb-")
    return [
        make_job(f"grid-{i + 1}", job_id=sweeps.sweep_job_id(stem, i), client_token=f"{sweep_id}/{i}", sweep_id=sweep_id, now=now)
        for i in range(size)
    ]


def test_a_sweeps_batch_record_stays_small_however_many_jobs_it_registers(store, dynamodb, jobs_table):
    store.register_many(_sweep("sw-00000000000000aa", 2000), "sw-00000000000000aa")
    item = dynamodb.get_item(TableName=jobs_table, Key={"JobId": {"S": "sweep#sw-00000000000000aa"}})["Item"]
    assert len(json.dumps(item)) < 600  # every id was about 100 KB; the stem and the count stay put
    assert item["Registered"] == {"N": "2000"} and item["State"] == {"S": "registered"}


def test_a_sweep_whose_writer_died_resumes_after_its_last_written_chunk_reading_only_that_chunk(store, monkeypatch):
    monkeypatch.setattr(jobs_module, "REGISTER_CHUNK", 50)
    jobs = _sweep("sw-00000000000000bb", 230)
    # The first writer dies after its third chunk's first 30 jobs (DynamoDB took them, the
    # progress was not recorded): a BatchWriteItem that fails for good after that.
    batch_write = store._client.batch_write_item
    calls = {"n": 0}

    def dies(**kwargs):
        calls["n"] += 1
        if calls["n"] == 6:  # chunks of 50 = two calls each: 2 + 2 + one more
            raise StoreUnavailable("the writer's Lambda timed out")
        return batch_write(**kwargs)

    store._client = _Patched(store._client, batch_write_item=dies)
    with pytest.raises(StoreUnavailable):
        store.register_many(jobs, "sw-00000000000000bb")
    store._client = store._client._client
    assert len(store.existing_ids(j.job_id for j in jobs)) == 125  # 2 chunks + 25 of the third

    # A repeat after the lease: it reads the keys of the third chunk only, writes the other 105.
    later = [j.model_copy(update={"created_at": T0 + BATCH_LEASE + timedelta(minutes=1)}) for j in jobs]
    store.metrics.reset()
    assert store.register_many(later, "sw-00000000000000bb") == [j.job_id for j in jobs]
    assert store.metrics.calls["batch_get_item"] == 1  # 50 keys
    assert store.metrics.items_read == 25
    stored = store.get_many(j.job_id for j in jobs)
    assert len(stored) == 230
    # Tagged as one writer would have: one quantum apart, in the sweep's order.
    tags = [j.queue_tag for j in stored]
    assert tags == sorted(tags) and len(set(tags)) == 230


def test_a_batch_registration_writes_at_most_its_rate_of_jobs_in_any_second(dynamodb, jobs_table):
    clock = {"now": 0.0}

    def sleep(seconds: float) -> None:
        clock["now"] += seconds

    written: list[tuple[float, int]] = []
    store = DynamoJobStore(dynamodb, jobs_table, sleep=sleep, monotonic=lambda: clock["now"])
    batch_write = dynamodb.batch_write_item

    def timed(**kwargs):
        written.append((clock["now"], sum(len(r) for r in kwargs["RequestItems"].values())))
        return batch_write(**kwargs)

    store._client = _Patched(dynamodb, batch_write_item=timed)
    store.register_many(_sweep("sw-00000000000000cc", 900), "sw-00000000000000cc")
    per_second: dict[int, int] = {}
    for at, items in written:
        per_second[int(at)] = per_second.get(int(at), 0) + items
    # Every job puts a small entry into the same Queue, Outbox, ByDay and Owner partitions:
    # at most REGISTER_RATE (40% of a partition's 1,000 WCU) in any second.
    assert max(per_second.values()) <= jobs_module.REGISTER_RATE < 500
    assert sum(per_second.values()) == 900 and len(per_second) == 3


class _Patched:
    """A DynamoDB client with some calls replaced."""

    def __init__(self, client: Any, **calls: Any) -> None:
        self._client = client
        self.__dict__.update(calls)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _seed_finished(store, count: int) -> None:
    """Write ``count`` finished jobs straight into the table (BatchWriteItem)."""
    done = []
    for i in range(count):
        job = make_job(f"old-{i}", now=T0 - timedelta(days=30))
        done.append(job.model_copy(update={"status": S.COMPLETED if i % 3 else S.FAILED}))
    store._batch_put(done, None, total=count, already=0)


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
    # The Queue index projects keys only: its entries, then those items by id.
    assert store.metrics.items_read == 2 * len(due)
    assert "scan" not in store.metrics.calls

    store.metrics.reset()
    found = store.active_jobs()
    assert {j.job_id for j in found} == {j.job_id for j in active}
    # Its small index entries (keys and ActiveUse only), then the whole items by id.
    assert store.metrics.items_read == 2 * len(found) == 6

    store.metrics.reset()
    assert store.active_usage() == {"ml.g5.xlarge": 3}
    assert store.metrics.items_read == 3 and "batch_get_item" not in store.metrics.calls


def test_a_job_carries_the_index_keys_of_its_state_and_only_those(store):
    job = make_job("keys")
    assert index_keys(job, ["slack"]) == {
        "OwnerId": "T1:U1",
        "CreatedDay": "2026-11-02",
        "QueueKey": "ready",
        "QueueSort": f"4#{job.queue_tag:017.3f}#2026-11-02T09:00:00.000000Z#{job.job_id}",
        "OutboxKey": "pending",
        # A queued job's "New" waits to be told when it starts or ends (backend.domain.notice).
        "OutboxSort": f"2026-11-03T09:00:00.000000Z#{job.job_id}",
    }
    claimed = job.model_copy(update={"lease": Lease(token="l", expires_at=T0 + timedelta(minutes=5))})
    assert (index_keys(claimed)["QueueKey"], index_keys(claimed)["QueueSort"]) == ("claimed", f"2026-11-02T09:05:00.000000Z#{job.job_id}")
    launched = job.model_copy(update={"status": S.LAUNCHED})
    assert {k for k in index_keys(launched) if k.startswith(("Queue", "Active"))} == {"ActiveKey", "ActiveSort", "ActiveUse"}


def test_a_write_that_moves_a_job_out_of_the_queue_removes_its_queue_keys(store, dynamodb):
    job = store.register(make_job("leaves")).job
    store.transition(job, S.LAUNCHED, at=T0)
    item = dynamodb.get_item(TableName=store.table_name, Key={"JobId": {"S": job.job_id}})["Item"]
    assert "QueueKey" not in item and "QueueSort" not in item
    assert item["ActiveKey"] == {"S": "active"}


def test_a_running_job_keeps_its_active_index_keys_so_its_writes_rewrite_no_entry(store, dynamodb):
    job = store.register(make_job("runs")).job
    launched = store.transition(job, S.LAUNCHED, at=T0 + timedelta(minutes=1)).job
    store.transition(launched, S.IN_PROGRESS, at=T0 + timedelta(minutes=9))
    item = dynamodb.get_item(TableName=store.table_name, Key={"JobId": {"S": job.job_id}})["Item"]
    # Its place is when it became active, not its last change (each change would move the
    # entry: a delete and a put on the index).
    assert item["ActiveSort"] == {"S": f"2026-11-02T09:01:00.000000Z#{job.job_id}"}


class _LaggingQueue:
    """A DynamoDB client whose Queue index still holds ``stale`` entries, as a GSI does for a
    moment after a write moved the item (GSIs are updated asynchronously)."""

    def __init__(self, client: Any, stale: list[dict[str, Any]]) -> None:
        self._client = client
        self._stale = stale

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def query(self, **kwargs: Any) -> dict[str, Any]:
        answer = self._client.query(**kwargs)
        if kwargs.get("IndexName") == "Queue":
            partition = kwargs["ExpressionAttributeValues"][":k"]["S"]
            lagging = [e for e in self._stale if e["QueueKey"]["S"] == partition]
            answer = {**answer, "Items": lagging + answer.get("Items", [])}
            answer["Count"] = answer["ScannedCount"] = len(answer["Items"])
        return answer


def test_a_queue_entry_the_item_has_already_left_is_not_handed_out(store, dynamodb, jobs_table):
    def entry(job_id: str) -> dict[str, Any]:
        item = dynamodb.get_item(TableName=jobs_table, Key={"JobId": {"S": job_id}})["Item"]
        return {k: item[k] for k in ("JobId", "QueueKey", "QueueSort")}

    launched = store.register(make_job("launched")).job
    was_ready = entry(launched.job_id)
    store.transition(launched, S.LAUNCHED, at=T0)
    put_off = store.transition(store.register(make_job("put-off")).job, S.RETRYING, at=T0, next_attempt_at=T0 + timedelta(minutes=1)).job
    was_due = entry(put_off.job_id)
    store.update(put_off, at=T0, next_attempt_at=T0 + timedelta(hours=2))
    waiting = store.register(make_job("waiting")).job

    lagging = DynamoJobStore(_LaggingQueue(dynamodb, [was_ready, was_due]), jobs_table)
    assert [j.job_id for j in lagging.ready_jobs(None)] == [waiting.job_id]
    assert lagging.retrying_due(T0 + timedelta(minutes=5), None) == []
    assert [j.job_id for j in lagging.due_for_launch(T0 + timedelta(minutes=5), 10)] == [waiting.job_id]


def test_small_records_carry_their_kind_and_no_index_key(store, dynamodb):
    store.put_record(RecordKind.PRESET, "nlp", {"Creator": "U1"})
    item = dynamodb.get_item(TableName=store.table_name, Key={"JobId": {"S": "preset#nlp"}})["Item"]
    assert item == {"JobId": {"S": "preset#nlp"}, "RecordType": {"S": "preset"}, "Creator": {"S": "U1"}}
    # Records made by an update (a map entry, a mark) carry their kind too.
    store.set_record_entry(RecordKind.PRESET_INDEX, "all", "Names", "nlp", "U1")
    store.claim_record_mark(RecordKind.APPROVAL, "tb-x#1", "Told:boss", 0, 1)
    for key, kind in (("preset-index#all", "preset-index"), ("approval#tb-x#1", "approval")):
        assert dynamodb.get_item(TableName=store.table_name, Key={"JobId": {"S": key}})["Item"]["RecordType"] == {"S": kind}


class _Throttling:
    """A DynamoDB client that, like DynamoDB under load, leaves part of a BatchWriteItem
    unprocessed for the first ``rounds`` calls (what it does process reaches moto)."""

    def __init__(self, client: Any, rounds: int) -> None:
        self._client = client
        self._rounds = rounds

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        if self._rounds <= 0:
            return self._client.batch_write_item(RequestItems=RequestItems)
        self._rounds -= 1
        (table, requests), = RequestItems.items()
        half = len(requests) // 2
        self._client.batch_write_item(RequestItems={table: requests[:half]})
        return {"UnprocessedItems": {table: requests[half:]}}


def test_unprocessed_batch_items_are_sent_again_after_a_backoff(dynamodb, jobs_table):
    sleeps: list[float] = []
    store = DynamoJobStore(_Throttling(dynamodb, rounds=3), jobs_table, sleep=sleeps.append)
    jobs = [make_job(f"u-{i}", client_token=f"u/{i}") for i in range(25)]
    assert store.register_many(jobs, "throttled") == [j.job_id for j in jobs]
    assert len(store.get_many(j.job_id for j in jobs)) == 25
    assert len(sleeps) == 3 and all(0 <= s <= 2.0 for s in sleeps)


class _ThrottlingGets:
    """A DynamoDB client that, like DynamoDB under load, answers the first ``rounds``
    BatchGetItem calls for half their keys and hands the rest back as UnprocessedKeys."""

    def __init__(self, client: Any, rounds: int) -> None:
        self._client = client
        self._rounds = rounds

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        if self._rounds <= 0:
            return self._client.batch_get_item(RequestItems=RequestItems)
        self._rounds -= 1
        (table, request), = RequestItems.items()
        half = len(request["Keys"]) // 2
        answer = self._client.batch_get_item(RequestItems={table: {**request, "Keys": request["Keys"][:half]}})
        return {"Responses": answer["Responses"], "UnprocessedKeys": {table: {**request, "Keys": request["Keys"][half:]}}}


def test_unprocessed_batch_get_keys_are_asked_again_after_a_backoff_in_every_chunk(dynamodb, jobs_table):
    """get_many of 120 jobs: two BatchGetItem chunks (100, 20); the first is throttled for three
    rounds. Every job comes back, in the order asked, each read counted once."""
    sleeps: list[float] = []
    store = DynamoJobStore(_ThrottlingGets(dynamodb, rounds=3), jobs_table, sleep=sleeps.append)
    ids = store.register_many([make_job(f"g-{i}", client_token=f"g/{i}") for i in range(120)], "gets")
    store.metrics.reset()
    sleeps.clear()  # registration's own pacing (REGISTER_RATE) sleeps too: only the reads' backoffs count
    assert [j.job_id for j in store.get_many(ids)] == ids
    assert len(sleeps) == 3 and store.metrics.items_read == 120


def test_a_batch_dynamodb_keeps_refusing_fails_as_store_unavailable(dynamodb, jobs_table):
    store = DynamoJobStore(_Throttling(dynamodb, rounds=100), jobs_table, sleep=lambda _s: None)
    with pytest.raises(StoreUnavailable):
        store.register_many([make_job(f"r-{i}", client_token=f"r/{i}") for i in range(4)], "refused")


def _cancelled(*codes: str):
    from botocore.exceptions import ClientError

    return ClientError(
        {"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"}, "CancellationReasons": [{"Code": c} for c in codes]},
        "TransactWriteItems",
    )


def test_a_usage_count_that_meets_another_transaction_tries_again_and_counts_once(store, monkeypatch):
    real = store._client.transact_write_items
    answers = [_cancelled("None", "TransactionConflict")]

    def conflicting(**kwargs):
        if answers:
            raise answers.pop()
        return real(**kwargs)

    monkeypatch.setattr(store._client, "transact_write_items", conflicting)
    assert store.add_usage("nlp#2026-W45", "tb-a-a1", 60) is True
    assert store.get_record(RecordKind.USAGE, "nlp#2026-W45")["Seconds"] == 60


def test_a_usage_count_refused_for_another_reason_is_store_unavailable_not_a_retry(store, monkeypatch):
    calls = []

    def throttled(**kwargs):
        calls.append(kwargs)
        raise _cancelled("None", "ThrottlingError")

    monkeypatch.setattr(store._client, "transact_write_items", throttled)
    with pytest.raises(StoreUnavailable, match="ThrottlingError"):
        store.add_usage("nlp#2026-W45", "tb-a-a1", 60)
    assert len(calls) == 1


def test_the_counted_mark_expires_after_about_five_weeks(store):
    import time

    before = int(time.time())
    store.add_usage("nlp#2026-W45", "tb-a-a1", 60)
    item = store._client.get_item(TableName=store.table_name, Key={"JobId": {"S": "counted#tb-a-a1"}})["Item"]
    expires = int(item["ExpiresAt"]["N"])
    assert before + 35 * 24 * 3600 <= expires <= int(time.time()) + 35 * 24 * 3600


def test_a_registration_whose_owner_clock_cannot_be_moved_is_still_registered(store, dynamodb):
    """The job item is written first; the owner's fair-share clock after it. DynamoDB failing
    that second write (here a 500 past boto3's retries) must not turn a registered job into
    "nothing changed": the job is there, so register says created."""
    from tests.integration.test_lifecycle_hardening import refuse

    refuse(
        dynamodb, "UpdateItem", "InternalServerError", "Internal server error", status=500,
        when=lambda params: params.get("Key", {}).get("JobId", {}).get("S", "").startswith(f"{RecordKind.OWNER}#"),
    )
    job = make_job("clocked", client_token="c1")
    registered = store.register(job)
    assert registered.created
    assert store.get(job.job_id).status is S.NEW
    assert store.metrics.owner_clock_misses == 1
    # A repeat (same token, same id) finds it and writes nothing more.
    assert store.register(job).created is False
    assert store.register(make_job("clocked-2", client_token="c2")).created
    assert store.metrics.owner_clock_misses == 2  # counted, each


# --- reads: consistent, as small as asked, and counted --------------------------------------------


def _stale_replica(client, table: str) -> None:
    """Answer every eventually consistent read of ``table`` as a replica that has not seen the
    last writes yet (DynamoDB may, for a moment after a write): the item is not there. A
    strongly consistent read reaches moto."""
    from botocore.awsrequest import AWSResponse

    class _Empty:
        def stream(self, **_kwargs: Any):
            yield b"{}"

    def stale(params, model, **_kwargs):
        request = json.loads(params.get("body") or b"{}")
        if model.name == "GetItem" and not request.get("ConsistentRead"):
            parsed: dict[str, Any] = {}
        elif model.name == "BatchGetItem" and not all(r.get("ConsistentRead") for r in request["RequestItems"].values()):
            parsed = {"Responses": {table: []}, "UnprocessedKeys": {}}
        else:
            return None
        return AWSResponse("https://aws.invalid", 200, {}, _Empty()), {**parsed, "ResponseMetadata": {"HTTPStatusCode": 200}}

    for operation in ("GetItem", "BatchGetItem"):
        client.meta.events.register(f"before-call.dynamodb.{operation}", stale)


def test_reads_by_id_see_the_write_just_made(store, dynamodb):
    """A job read right after its write (a /train's reply, a conditional write computed from
    it, a sweep's repeat reading its batch record) must see that write: every read by key is
    strongly consistent, so a replica that lags never answers it."""
    _stale_replica(dynamodb, store.table_name)
    job = store.register(make_job("fresh", client_token="f1")).job
    assert store.get(job.job_id).job_id == job.job_id
    assert [j.job_id for j in store.get_many([job.job_id])] == [job.job_id]
    assert store.existing_ids([job.job_id]) == {job.job_id}
    jobs = [make_job(f"s-{i}", client_token=f"s/{i}") for i in range(3)]
    ids = store.register_many(jobs, "fresh-sweep")
    assert store.register_many(jobs, "fresh-sweep") == ids  # the repeat reads the batch record
    # The owner's fair-share clock, read by each registration: the next job queues behind.
    later = store.register(make_job("fresh-2", client_token="f2")).job
    assert later.queue_tag > max(j.queue_tag for j in store.get_many(ids))
    store.put_record(RecordKind.PRESET, "nlp", {"Creator": "U1"})
    assert store.get_record(RecordKind.PRESET, "nlp") == {"Creator": "U1"}


def test_existing_ids_asks_dynamodb_for_the_keys_only(store, dynamodb):
    """A sweep's repeat asks which of its (up to thousands of) jobs exist: it reads their keys,
    not every whole item (a few KB each)."""
    asked: list[dict[str, Any]] = []
    dynamodb.meta.events.register(
        "provide-client-params.dynamodb.BatchGetItem", lambda params, **_kw: asked.extend(params["RequestItems"].values())
    )
    ids = [store.register(make_job(f"k-{i}", client_token=f"k/{i}")).job.job_id for i in range(3)]
    assert store.existing_ids(ids) == set(ids)
    assert [a.get("ProjectionExpression") for a in asked] == ["JobId"]
    assert len(store.get_many(ids)[0].history) == 1  # get_many reads whole items
    assert "ProjectionExpression" not in asked[-1]


def test_a_get_reads_one_item_and_a_records_key_reads_none(store):
    job = store.register(make_job("counted")).job
    store.metrics.reset()
    store.get(job.job_id)
    assert store.metrics.items_read == 1
    store.get(job.job_id)
    assert store.metrics.items_read == 2  # each get counts its own
    store.metrics.reset()
    with pytest.raises(JobNotFound):
        store.get(f"{RecordKind.OWNER}#T1:U1")  # it exists: the registration moved its clock
    assert store.metrics.calls["get_item"] == 0


def test_a_sweeps_batch_record_carries_its_kind(store, dynamodb):
    """A scan tells records from jobs by RecordType (the local demo's verdict, operators)."""
    store.register_many([make_job("b-0", client_token="b/0")], "kinded")
    item = dynamodb.get_item(TableName=store.table_name, Key={"JobId": {"S": "sweep#kinded"}})["Item"]
    assert item["RecordType"] == {"S": "sweep"}


def test_a_batch_half_registered_before_batch_leases_is_taken_over_at_once(store, dynamodb):
    """A batch record with no Until (written before batches held a lease) has no live writer
    to wait for: a repeat takes it over and finishes it."""
    jobs = [make_job(f"old-{i}", client_token=f"old/{i}") for i in range(4)]
    store.register_many(jobs[:2], "legacy")
    dynamodb.update_item(
        TableName=store.table_name,
        Key={"JobId": {"S": "sweep#legacy"}},
        UpdateExpression="SET JobIds = :ids, #s = :r REMOVE #u",
        ExpressionAttributeNames={"#s": "State", "#u": "Until"},
        ExpressionAttributeValues={":ids": {"L": [{"S": j.job_id} for j in jobs]}, ":r": {"S": "registering"}},
    )
    assert store.register_many(jobs, "legacy") == [j.job_id for j in jobs]
    assert len(store.get_many(j.job_id for j in jobs)) == 4
    record = dynamodb.get_item(TableName=store.table_name, Key={"JobId": {"S": "sweep#legacy"}})["Item"]
    assert record["State"] == {"S": "registered"} and "Until" in record


def test_active_jobs_with_a_limit_read_only_what_they_return(store):
    """The monitor's sweep reads the active jobs a page at a time: a limit bounds the index
    entries read too, not only what comes back."""
    for i in range(3):
        job = store.register(make_job(f"act-{i}")).job
        store.transition(job, S.LAUNCHED, at=T0 + timedelta(seconds=i))
    store.metrics.reset()
    assert len(store.active_jobs(limit=1)) == 1
    assert store.metrics.items_read == 2  # one index entry, one whole item


def test_of_two_repeats_racing_for_a_dead_writers_batch_only_one_takes_it_over(store, dynamodb):
    """Both read the batch record with the dead writer's lease; the first to write takes the
    lease over and finishes the batch. The other's take-over is conditional on the lease it
    read, so it is refused (BatchBusy) and writes no job, rather than racing the first."""
    jobs = [make_job(f"r-{i}", client_token=f"r/{i}") for i in range(30)]

    def die(done: int, total: int) -> None:
        raise RuntimeError("the writer's function timed out")

    with pytest.raises(RuntimeError):
        store.register_many(jobs, "raced", on_progress=die)  # after its first 25
    later = [j.model_copy(update={"created_at": T0 + BATCH_LEASE + timedelta(minutes=1)}) for j in jobs]
    other = DynamoJobStore(dynamodb, store.table_name, sleep=lambda _s: None)
    raced: list[list[str]] = []
    once: list[bool] = []

    def first_in_between(params, **_kwargs):
        if not once and "#u = :held" in params.get("ConditionExpression", ""):
            once.append(True)  # (the other's own take-over passes through here too)
            raced.append(other.register_many(later, "raced"))  # gets in between our read and our write

    dynamodb.meta.events.register("provide-client-params.dynamodb.UpdateItem", first_in_between)
    writes = job_writes(store)
    with pytest.raises(BatchBusy) as busy:
        store.register_many(later, "raced")
    assert busy.value.batch_id == "raced"
    assert raced == [[j.job_id for j in jobs]]
    assert set(writes) == {j.job_id for j in jobs[25:]} and set(writes.values()) == {1}  # the other's only


def test_a_write_that_loses_to_an_item_this_version_cannot_read_is_a_lost_race_with_nothing_current(store, dynamodb):
    """A newer Trainbot moved the job to a status this one does not know: the older reader's
    write loses (LostRace, nothing current it could act on), urgent or not, and raises nothing."""
    store.set_notify_targets(["slack"])
    job = store.register(make_job("newer")).job
    dynamodb.update_item(
        TableName=store.table_name,
        Key={"JobId": {"S": job.job_id}},
        UpdateExpression="SET JobStatus = :s, Version = :v",
        ExpressionAttributeValues={":s": {"S": "Hibernating"}, ":v": {"N": "2"}},
    )
    for to_status in (S.LAUNCHED, S.STOPPED):  # Stopped is urgent: its write takes the delivery lease
        outcome = store.transition(job, to_status, at=T0, reason="stopped")
        assert isinstance(outcome, LostRace) and outcome.current is None


def test_an_urgent_transition_that_lost_its_race_costs_one_write(store):
    """Only a live lease of another dispatcher is worth a second write (the move without the
    lease); a write that lost to another writer is a LostRace at once."""
    store.set_notify_targets(["slack"])
    job = store.register(make_job("raced")).job
    store.update(job, at=T0, priority=9)
    store.metrics.reset()
    outcome = store.transition(job, S.STOPPED, at=T0, reason="stopped")
    assert isinstance(outcome, LostRace) and outcome.current.priority == 9
    assert store.metrics.calls["update_item"] == 1


def test_a_process_remembers_the_leases_of_its_last_1024_folded_writes(store):
    """holds_delivery answers from memory, so the memory is bounded: the oldest folded lease
    is forgotten first (its change then waits for the drain, as any lease not held)."""
    from backend.adapters.dynamo.outbox import _LEASES_KEPT, remember_lease

    jobs = [make_job(f"f-{i}", job_id=f"f-{i}").model_copy(update={"version": 3}) for i in range(_LEASES_KEPT + 1)]
    for job in jobs:
        remember_lease(store, job.job_id, job.version)
    assert not store.holds_delivery(jobs[0])
    assert store.holds_delivery(jobs[1]) and store.holds_delivery(jobs[-1])
    assert not store.holds_delivery(jobs[-1])  # asked once
    remember_lease(store, jobs[2].job_id, 4)  # a later write of the same job: its version counts
    assert not store.holds_delivery(jobs[2])


def test_a_lease_taken_by_one_thread_is_not_answered_to_another(store):
    """Local mode runs a function's concurrent invocations as threads of one process (Lambda
    gives each its own environment): another invocation asking about the job, at the version
    it read, must neither be told it holds the lease nor use up the writer's answer."""
    import threading

    from backend.adapters.dynamo.outbox import remember_lease

    job = make_job("t-1", job_id="t-1").model_copy(update={"version": 6})
    remember_lease(store, job.job_id, job.version)
    answers: list[bool] = []
    reader = threading.Thread(
        target=lambda: answers.extend([store.holds_delivery(job.model_copy(update={"version": 5})), store.holds_delivery(job)])
    )
    reader.start()
    reader.join()
    assert answers == [False, False]
    assert store.holds_delivery(job)  # the writer's own thread still holds it


def test_the_outbox_drain_reads_only_what_it_takes(store):
    """A drain asks for a page of due jobs, then takes each one's lease with the write that
    reads it: a limit bounds the index entries read, and each lease taken counts its item."""
    store.set_notify_targets(["slack"])
    ids = [store.register(make_job(f"o-{i}", now=T0 + timedelta(seconds=i))).job.job_id for i in range(3)]
    store.metrics.reset()
    assert store.outbox_job_ids(limit=1) == ids[:1]
    assert store.metrics.items_read == 1
    store.metrics.reset()
    for i, job_id in enumerate(ids[:2]):
        assert store.acquire_delivery(job_id, f"t{i}", T0, T0 + timedelta(minutes=1)) is not None
    assert store.metrics.items_read == 2


def test_an_owners_fair_share_clock_never_moves_back(store):
    """Two registrations of one owner read the clock at once; the one that computed the later
    tag may write first. The other's earlier tag must not move the clock back, or the owner's
    next job would queue beside jobs they queued before it."""
    owner = make_job("clock").owner
    store._advance_owner_clock(owner, 2000.0)
    store._advance_owner_clock(owner, 1000.0)  # the slower registration, computed from the same read
    assert store._owner_next_tag(owner) == 2000.0


def test_sweep_ends_counted_at_once_by_two_jobs_both_count(store, dynamodb):
    """The first ends of a sweep race to create its small end-count record: the one that finds
    it created meanwhile counts into it, never over it."""
    store.register_many([make_job(f"e-{i}", client_token=f"e/{i}") for i in range(2)], "ends")
    other = DynamoJobStore(dynamodb, store.table_name, sleep=lambda _s: None)
    once: list[bool] = []

    def the_other_end_first(params, **_kwargs):
        if not once and params.get("Item", {}).get("RecordType") == {"S": RecordKind.SWEEP_ENDS.value}:
            once.append(True)
            other.count_sweep_end("ends", 1, "Completed")  # creates the record and counts job 1

    dynamodb.meta.events.register("provide-client-params.dynamodb.PutItem", the_other_end_first)
    counted = store.count_sweep_end("ends", 0, "Failed", "e-0 Failed: boom")
    assert once and counted is not None
    assert counted.tally == {"Completed": 1, "Failed": 1} and counted.failures == ["e-0 Failed: boom"]


def test_a_thread_root_is_recorded_by_a_request_dynamodb_accepts(store, dynamodb):
    """DynamoDB refuses a NULL attribute value that is not true (moto does not): this stand-in
    refuses it as the service does, and set_thread still records the root."""
    from tests.integration.test_lifecycle_hardening import refuse

    refuse(
        dynamodb, "UpdateItem", "ValidationException", "Null attribute value types must have the value of true",
        when=lambda params: any(v == {"NULL": False} for v in (params.get("ExpressionAttributeValues") or {}).values()),
    )
    job = store.register(make_job("rooted")).job
    store.set_thread(job.job_id, "C1", "111.1")
    assert store.get(job.job_id).slack.thread_ts == "111.1"

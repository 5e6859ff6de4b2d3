"""A job item this version cannot decode, written raw into DynamoDB (on moto) as a newer
version would write it: the store's listings skip and count it, reading it by id is a typed
error, and a launcher tick over the real store goes on with the other jobs."""

from __future__ import annotations

import random

import pytest

from backend.adapters.dynamo import to_item
from backend.domain.policy import RetryPolicy
from backend.domain.status import JobStatus
from backend.errors import UnreadableItem
from backend.services.launcher import Launcher
from backend.services.notify import Dispatcher
from backend.services.pacing import TokenBucket
from tests.conftest import T0, make_job
from tests.fakes.training import FakeTrainingBackend

S = JobStatus


def _put_raw(store, item) -> None:
    store._client.put_item(TableName=store.table_name, Item=item)


def test_unreadable_items_cost_only_themselves_in_a_launcher_tick_over_dynamodb(store):
    queued = to_item(make_job("newer-queued", now=T0))
    queued["JobStatus"] = {"S": "Paused"}  # a status a newer version added
    active = to_item(make_job("newer-active", now=T0))
    active.update({"JobStatus": {"S": "Suspended"}, "ActiveKey": {"S": "active"}, "ActiveSort": {"S": "2026#x"}})
    active["Priority"] = {"S": "high"}  # and a field type it changed
    _put_raw(store, queued)
    _put_raw(store, active)
    good = store.register(make_job("good", now=T0)).job

    backend = FakeTrainingBackend()
    launcher = Launcher(
        store,
        backend,
        Dispatcher(store, [], lambda: T0),
        policy=RetryPolicy(),
        instance_limits={},
        pacer=TokenBucket(rate=1000, burst=1000, monotonic=lambda: 0.0, sleep=lambda _s: None),
        clock=lambda: T0,
        rng=random.Random(1),
    )
    report = launcher.run_tick()

    assert report.launched == 1 and backend.created == [f"{good.job_id}-a1"]
    assert store.get(good.job_id).status is S.LAUNCHED
    assert store.metrics.unreadable_items >= 2
    with pytest.raises(UnreadableItem):
        store.get(queued["JobId"]["S"])

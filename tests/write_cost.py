"""What a job's writes cost in DynamoDB write capacity, priced from item sizes and the
projections template.yaml declares (issue 23). The in-memory store reports each job-item write
to :class:`WriteMeter`, which charges, per write, 1 WCU per started KB of the larger of the item
before and after on the base table, and on each index whose entry changes a put (and a delete
when its keys change), 1 WCU per started KB of the projected entry. bench/scale.py prints these
figures; tests/unit/test_write_cost.py holds the happy path to its target.

Sizes are DynamoDB's, approximately: attribute names plus values (codec.to_item), from the JSON.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from datetime import timedelta
from typing import Any

from backend.adapters.dynamo.codec import to_item
from backend.domain.model import Job
from backend.domain.policy import RetryPolicy
from backend.domain.status import JobStatus
from backend.ports import TrainingState
from backend.services.launcher import Launcher
from backend.services.monitor import Monitor
from backend.services.notify import Dispatcher
from backend.services.pacing import TokenBucket
from infra.template import load_template
from tests.conftest import make_job
from tests.fakes.memory_store import MemoryJobStore
from tests.fakes.notifier import RecordingNotifier
from tests.fakes.training import FakeTrainingBackend
from tests.unit.services.conftest import Clock

POLICY = RetryPolicy()  # the template's defaults: 60 s base, 30 min cap, 24 h capacity wait
# Issue 23's target for a happy-path job (submit -> Completed, notifications included).
HAPPY_PATH_WCU_TARGET = 30


def attribute_sizes(item: dict[str, Any]) -> dict[str, int]:
    """Each attribute's DynamoDB size, approximately: its name plus its value's text."""
    return {name: len(name) + len(json.dumps(value, separators=(",", ":"))) - 7 for name, value in item.items()}


def item_size(item: dict[str, Any]) -> int:
    return sum(attribute_sizes(item).values())


def _template_indexes() -> list[tuple[str, tuple[str, ...], str, tuple[str, ...]]]:
    """(name, key attributes, projection type, included attributes) of each GSI in template.yaml."""
    table = load_template()["Resources"]["JobsTable"]["Properties"]
    found = []
    for gsi in table["GlobalSecondaryIndexes"]:
        keys = tuple(k["AttributeName"] for k in gsi["KeySchema"])
        projection = gsi["Projection"]
        found.append((gsi["IndexName"], keys, projection["ProjectionType"], tuple(projection.get("NonKeyAttributes", ()))))
    return found


INDEXES = _template_indexes()


def index_entry(item: dict[str, Any] | None, keys: tuple[str, ...], projection: str, included: tuple[str, ...]) -> dict[str, Any] | None:
    """The index entry ``item`` has in one index (None: not in it; the index is sparse)."""
    if item is None or any(k not in item for k in keys):
        return None
    if projection == "ALL":
        return item
    names = {"JobId", *keys, *(included if projection == "INCLUDE" else ())}
    return {k: v for k, v in item.items() if k in names}


# DynamoDB's write limit per partition, a second; a GSI's partition key value is one partition
# (a table item's key, of course, too).
PARTITION_WCU = 1000


class PartitionMeter:
    """WCU written to each partition in each second of simulated time: the base table's items
    (by key) and each index's partition key values (``ready``, ``pending``, a day, an owner)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.wcu: Counter[tuple[int, str, str]] = Counter()

    def charge(self, where: str, partition: Any, wcu: int) -> None:
        """``partition``: a key value, plain or in DynamoDB JSON (``{"S": "ready"}``)."""
        if isinstance(partition, dict):
            partition = next(iter(partition.values()))
        self.wcu[(int(self.clock.monotonic()), where, str(partition))] += wcu

    def charge_put(self, item: dict[str, Any]) -> None:
        """A new item (DynamoDB JSON) put: the table and each index it enters."""
        sizes = attribute_sizes(item)
        self.charge("table", item["JobId"], math.ceil(sum(sizes.values()) / 1024))
        for name, keys, projection, included in INDEXES:
            entry = index_entry(item, keys, projection, included)
            if entry is not None:
                self.charge(name, entry[keys[0]], math.ceil(sum(sizes[k] for k in entry) / 1024))

    def peak(self) -> tuple[int, str, str]:
        """(WCU, table or index, partition) of the busiest partition-second; (0, "", "") if none."""
        if not self.wcu:
            return 0, "", ""
        (_second, where, partition), wcu = self.wcu.most_common(1)[0]
        return wcu, where, partition


class WriteMeter:
    """Prices every job-item write the store makes: base table and each index, in WCU (and, with
    ``partitions``, charges each partition it writes, by simulated second)."""

    def __init__(self, store: MemoryJobStore, partitions: PartitionMeter | None = None) -> None:
        self.targets = store.notify_targets
        self.wcu: Counter[str] = Counter()
        self.per_job: Counter[str] = Counter()
        self.writes_while_parked = 0
        self.parked: set[str] = set()
        self.partitions = partitions

    def __call__(self, before: Job | None, after: Job) -> None:
        old = to_item(before, self.targets) if before is not None else None
        new = to_item(after, self.targets)
        old_sizes, new_sizes = attribute_sizes(old or {}), attribute_sizes(new)
        table = math.ceil(max(sum(old_sizes.values()), sum(new_sizes.values())) / 1024)
        cost = table
        for name, keys, projection, included in INDEXES:
            was, now = index_entry(old, keys, projection, included), index_entry(new, keys, projection, included)
            if was == now:
                continue
            if was is not None and (now is None or any(was[k] != now[k] for k in keys)):
                deleted = math.ceil(sum(old_sizes[k] for k in was) / 1024)  # the old entry goes
                cost += deleted
                self.wcu[name] += deleted
                self._charge(name, was[keys[0]], deleted)
            if now is not None:
                put = math.ceil(sum(new_sizes[k] for k in now) / 1024)
                cost += put
                self.wcu[name] += put
                self._charge(name, now[keys[0]], put)
        self.wcu["table"] += table
        self._charge("table", new["JobId"], table)
        self.per_job[after.job_id] += cost
        if after.parked_at is not None:
            self.parked.add(after.job_id)
        if (before is not None and before.parked_at is not None) or (after.parked_at is not None and (before is None or before.parked_at is None)):
            self.writes_while_parked += 1


    def _charge(self, where: str, key: Any, wcu: int) -> None:
        if self.partitions is not None:
            self.partitions.charge(where, key, wcu)


def sim_pacer(clock: Clock, rate: float = 1000) -> TokenBucket:
    """A pacer on the simulated clock (by default a generous one; bench/scale.py's burst uses
    the template's SageMakerCallsPerSecond, as a deployed launcher does). Its sleeps move the
    monotonic clock (not the time of day) by at least 1 µs:
    the bucket's wait for the last fraction of a token can fall below the fake clock's float
    resolution, and a sleep that moves no clock never ends (real time always moves; the
    simulated one must too)."""
    return TokenBucket(rate=rate, burst=max(1.0, rate), monotonic=clock.monotonic, sleep=lambda s: clock.sleep(max(s, 1e-6)))


def happy_path_wcu() -> tuple[float, Counter[str]]:
    """One job: submit, launch, InProgress, Completed, every notification delivered."""
    clock = Clock()
    store = MemoryJobStore()
    notifier = RecordingNotifier()
    store.set_notify_targets([notifier.name])
    meter = WriteMeter(store)
    store.write_observer = meter
    dispatcher = Dispatcher(store, [notifier], clock)
    backend = FakeTrainingBackend()
    job = store.register(make_job("happy", now=clock())).job
    dispatcher.deliver(job)
    Launcher(store, backend, dispatcher, policy=POLICY, instance_limits={}, pacer=sim_pacer(clock), clock=clock).run_tick()
    monitor = Monitor(store, backend, dispatcher, policy=POLICY, pacer=sim_pacer(clock), clock=clock)
    for state in (TrainingState.RUNNING, TrainingState.COMPLETED):
        clock.advance(timedelta(minutes=10))
        backend.finish(f"{job.job_id}-a1", state, ended_at=clock() if state is TrainingState.COMPLETED else None)
        monitor.sweep()
    clock.advance(timedelta(minutes=10))
    monitor.sweep()
    assert store.get(job.job_id).status is JobStatus.COMPLETED
    return float(meter.per_job[job.job_id]), meter.wcu

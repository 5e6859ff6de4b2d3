"""Scale benchmark (issue 23, "Past one team"): the workload's figures, in simulated time.

    .venv/bin/python bench/scale.py [--seed 23] [--burst 2000] [--active 10000] [--sweep 10000] [--history 10000]
    .venv/bin/python bench/scale.py --rollup-writes   # the stats rollup's writes at 100,000 jobs a day

The workload: 100,000 jobs a day from 20 teams, bursty (peaks of 2,000 submissions a minute, a
10,000-job sweep), jobs 10 min to 2 days, ~5% of creates refused, up to 10,000 running at once.
Nothing sleeps: a fake clock, the in-memory store (tests/fakes/memory_store.py, with its write
observer) and a fake SageMaker, driving the real launcher, monitor, queue view and kicker, and
the real DynamoDB store's batch registration over a client that accepts every write. Prints
counts (CPU seconds, ``time.process_time``, where said):

- **launches per minute** over the 10 minutes after a 2,000-job burst (spread over its minute),
  with 5% of creates refused by ResourceLimitExceeded while the quota has room, and one type
  (ml.p4d.24xlarge) at its TRAINBOT_INSTANCE_LIMITS limit so some jobs park; **writes per parked
  job**; and the **busiest partition-second** of that burst (tests/write_cost.py: every write
  charged to the table's item and to each index partition it touches, by simulated second; the
  launcher and monitor paced as deployed);
- **WCU per happy-path job** (submit → launch → InProgress → Completed, notifications
  included), on the table and each index (tests/write_cost.py);
- **items read and RCU per launcher tick at 10,000 active**, and that tick's CPU seconds;
- **the monitor at 10,000 active jobs whose events never come**: describes and reads per run,
  and the time until every job was described once (template.yaml's schedule and timeout);
- **``/train queue``, ``status``, ``list`` and ``stats``**: items and index entries each reads,
  and its CPU;
- **start on submit**: the kick record's writes for a lone submission and in a burst, against
  invoking the launcher for every submission;
- **a 10,000-job sweep**: the busiest partition-second of its registration, its batch record's
  size, its ``sweep-ends`` record's largest size and the WCU of each end's count.

Sizes are DynamoDB's: attribute names plus values (codec.to_item), approximated from the JSON.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
logging.disable(logging.ERROR)
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")

from backend.adapters.dynamo import DynamoJobStore  # noqa: E402
from backend.adapters.dynamo.codec import to_item  # noqa: E402
from backend.domain import sweeps  # noqa: E402
from backend.domain.model import Attempt, AttemptOutcome, Job, attempt_name  # noqa: E402
from backend.domain.policy import classify_create_error  # noqa: E402
from backend.domain.records import RecordKind  # noqa: E402
from backend.domain.status import JobStatus  # noqa: E402
from backend.errors import AlreadyExists, CreateRefused  # noqa: E402
from backend.ports import TrainingState, TrainingStatus  # noqa: E402
from backend.services.launcher import Launcher  # noqa: E402
from backend.services.monitor import Monitor  # noqa: E402
from backend.services.notify import Dispatcher  # noqa: E402
from infra.template import load_template  # noqa: E402
from tests.conftest import job_args, make_job  # noqa: E402
from tests.fakes.memory_store import MemoryJobStore  # noqa: E402
from tests.fakes.notifier import RecordingNotifier  # noqa: E402
from tests.fakes.training import FakeTrainingBackend  # noqa: E402
from tests.unit.services.conftest import Clock  # noqa: E402
from tests.write_cost import INDEXES, PARTITION_WCU, POLICY, PartitionMeter, WriteMeter, happy_path_wcu, index_entry, item_size, sim_pacer  # noqa: E402

TYPES = {"ml.g5.xlarge": 0.6, "ml.g5.2xlarge": 0.2, "ml.p3.2xlarge": 0.15, "ml.p4d.24xlarge": 0.05}
LIMITS = {"ml.p4d.24xlarge": 40}
TEAMS = 20
MINUTE = timedelta(minutes=1)
# The launcher's and monitor's pace of SageMaker calls as deployed (template.yaml's default):
# what spreads a tick's writes over its seconds.
CALLS_PER_SECOND = float(load_template()["Parameters"]["SageMakerCallsPerSecond"]["Default"])


# --- a SageMaker that refuses 5% of creates and ends jobs on time ---------------------------------


class BenchBackend(FakeTrainingBackend):
    """Creates succeed except a share refused with ResourceLimitExceeded while the account's
    quota has room (SageMaker's words, classified by the real classifier); jobs end (Completed)
    when their simulated run time has passed."""

    def __init__(self, clock: Clock, rng: random.Random, refuse_share: float) -> None:
        super().__init__()
        self.clock, self.rng, self.refuse_share = clock, rng, refuse_share
        self.ends: dict[str, Any] = {}
        self.in_use: Counter[str] = Counter()
        self.refused = self.creates = 0

    def create(self, name: str, request: dict[str, Any]) -> None:
        self.creates += 1
        if name in self.jobs:
            raise AlreadyExists(name)
        config = request["ResourceConfig"]
        instance_type, count = config["InstanceType"], config["InstanceCount"]
        if self.rng.random() < self.refuse_share:
            self.refused += 1
            limit = 20000
            message = (
                f"The account-level service limit '{instance_type} for training job usage' is {limit} Instances, "
                f"with current utilization of {self.in_use[instance_type]} Instances and a request delta of {count} Instances."
            )
            raise CreateRefused(classify_create_error("ResourceLimitExceeded", message, instance_type=instance_type))
        self.jobs[name] = TrainingStatus(name=name, state=TrainingState.RUNNING)
        self.created_at[name] = self.clock()  # listed for the monitor's reaper, as SageMaker would
        self.in_use[instance_type] += count
        self.requests[name] = request
        seconds = math.exp(self.rng.uniform(math.log(600), math.log(2 * 86400)))
        self.ends[name] = (self.clock() + timedelta(seconds=seconds), instance_type, count)

    def describe(self, name: str) -> TrainingStatus | None:
        status = self.jobs.get(name)
        end = self.ends.get(name)
        if status is not None and end is not None and status.state is TrainingState.RUNNING and self.clock() >= end[0]:
            status = self.finish(name, TrainingState.COMPLETED, ended_at=end[0])
            self.in_use[end[1]] -= end[2]
        return status


def _job(rng: random.Random, clock: Clock, i: int, prefix: str) -> Job:
    instance_type = rng.choices(list(TYPES), weights=list(TYPES.values()))[0]
    team = rng.randrange(TEAMS)
    args = job_args(ResourceConfig={"InstanceType": instance_type, "InstanceCount": 1, "VolumeSizeInGB": 50})
    return make_job(f"{prefix}-{i}", user=f"U{team}-{rng.randrange(5)}", team=f"T{team}", now=clock(), job_args=args, client_token=f"{prefix}/{i}")


# --- the figures ------------------------------------------------------------------------------------


def burst(seed: int, size: int, minutes: int = 10) -> dict[str, Any]:
    """A burst of ``size`` submissions, then a launcher tick and a monitor sweep every minute."""
    rng = random.Random(seed)
    clock = Clock()
    store = MemoryJobStore()
    notifier = RecordingNotifier()
    store.set_notify_targets([notifier.name])
    partitions = PartitionMeter(clock)
    meter = WriteMeter(store, partitions)
    store.write_observer = meter
    dispatcher = Dispatcher(store, [notifier], clock)
    backend = BenchBackend(clock, rng, refuse_share=0.05)
    for i in range(size):  # spread over the burst's minute
        store.register(_job(rng, clock, i, "burst"))
        clock.sleep(60 / size)
    launched = 0
    for _ in range(minutes):
        launcher = Launcher(
            store, backend, dispatcher, policy=POLICY, instance_limits=LIMITS, pacer=sim_pacer(clock, CALLS_PER_SECOND), clock=clock, rng=rng
        )
        launched += launcher.run_tick().launched
        Monitor(store, backend, dispatcher, policy=POLICY, pacer=sim_pacer(clock, CALLS_PER_SECOND), clock=clock, rng=rng).sweep()
        clock.advance(MINUTE)
    parked = len(meter.parked)
    happy = [j for j in store._jobs.values() if j.status is not JobStatus.NEW and j.attempt_count == 1 and j.parked_at is None]
    return {
        "launches_per_minute": launched / minutes,
        "refused": backend.refused,
        "creates": backend.creates,
        "parked_jobs": parked,
        "writes_per_parked_job": meter.writes_while_parked / parked if parked else 0.0,
        "peak_partition": partitions.peak(),
        "happy": happy,
    }


class ReadMeter:
    """Counts the items the store's listings hand the launcher; their sizes are priced after
    the tick (:meth:`price`), so the meter's own work stays out of the tick's CPU seconds."""

    def __init__(self, store: MemoryJobStore) -> None:
        self.store = store
        self.targets = store.notify_targets
        self.seen: list[tuple[str, list[Job]]] = []
        self.usage_reads = 0
        for name in ("active_jobs", "ready_jobs", "retrying_due", "expired_claims", "parked_jobs"):
            self._wrap(name)
        if hasattr(store, "active_usage"):
            # Read before the tick: the index entries the tick's usage query will read.
            self.active = [j for j in store._jobs.values() if j.status.value in ("Launched", "InProgress", "Stopping")]
            inner = store.active_usage

            def counted() -> Any:
                self.usage_reads += 1
                return inner()

            store.active_usage = counted  # type: ignore[method-assign]

    def _wrap(self, name: str) -> None:
        inner = getattr(self.store, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            jobs = inner(*args, **kwargs)
            self.seen.append((name, jobs))
            return jobs

        setattr(self.store, name, counted)

    def price(self) -> tuple[int, float]:
        """(items read, RCU) by the listings seen: the index entries (a Query on a GSI is
        eventually consistent, 0.5 RCU per started 4 KB of all entries read), and, where the
        index does not project whole items, each item read by id (BatchGetItem, consistent:
        1 RCU per started 4 KB of each item). ``active_usage`` needs its entries only."""
        reads = [(name, jobs) for name, jobs in self.seen]
        if self.usage_reads:
            reads += [("active_usage", self.active)] * self.usage_reads
        items = 0
        entry_bytes = 0
        by_id = 0
        for name, jobs in reads:
            projection = _projection(name)
            for j in jobs:
                item = to_item(j, self.targets)
                keys = ("ActiveKey", "ActiveSort") if name.startswith("active") else ("QueueKey", "QueueSort")
                entry_bytes += item_size(index_entry(item, keys, *projection) or {})
                items += 1
                if projection[0] != "ALL" and name != "active_usage":
                    by_id += math.ceil(item_size(item) / 4096)
                    items += 1
        return items, math.ceil(entry_bytes / 4096) / 2 + by_id


def _projection(listing: str) -> tuple[str, tuple[str, ...]]:
    """The projection of the index a listing reads (the queue's listings read the Queue index)."""
    name = "Active" if listing.startswith("active") else "Queue"
    for index, _keys, projection, included in INDEXES:
        if index == name:
            return projection, included
    raise KeyError(name)


def tick_at_active(seed: int, active: int, due: int = 200) -> dict[str, Any]:
    """One launcher tick with ``active`` jobs running and ``due`` jobs waiting to launch."""
    rng = random.Random(seed)
    clock = Clock()
    store = MemoryJobStore()
    dispatcher = Dispatcher(store, [], clock)
    backend = FakeTrainingBackend()
    jobs = [_job(rng, clock, i, "run") for i in range(active)]
    store.register_many(jobs, "running")
    for job in jobs:
        stored = store.get(job.job_id)
        attempt = Attempt(number=1, name=attempt_name(job.job_id, 1), claimed_at=clock(), outcome=AttemptOutcome.RUNNING)
        store.transition(stored, JobStatus.LAUNCHED, at=clock(), reason="created", attempts=[attempt])
    for i in range(due):
        store.register(_job(rng, clock, i, "due"))
    meter = ReadMeter(store)
    launcher = Launcher(store, backend, dispatcher, policy=POLICY, instance_limits=LIMITS, pacer=sim_pacer(clock), clock=clock, rng=rng)
    started = time.process_time()
    report = launcher.run_tick()
    cpu = time.process_time() - started
    items, rcu = meter.price()
    return {"items": items, "rcu": rcu, "cpu": cpu, "launched": report.launched}


def _rate_minutes(expression: str) -> float:
    """``rate(5 minutes)`` -> 5."""
    amount, unit = expression.removeprefix("rate(").removesuffix(")").split()
    return float(amount) * {"minute": 1, "minutes": 1, "hour": 60, "hours": 60}[unit]


def monitor_pass(seed: int, active: int) -> dict[str, Any]:
    """The monitor's scheduled sweeps at ``active`` running jobs whose events never come, as
    deployed: template.yaml's schedule and timeout, the handler's reserves (it describes until
    RESERVE_MS + DRAIN_MS are left), SageMakerCallsPerSecond. Describes per run, items read per
    run, and how long until every active job has been described once (a full pass)."""
    from backend.entrypoints.runtime import DRAIN_MS, RESERVE_MS

    monitor_fn = load_template()["Resources"]["MonitorFunction"]["Properties"]
    every = _rate_minutes(monitor_fn["Events"]["Sweep"]["Properties"]["Schedule"])
    window = float(monitor_fn["Timeout"]) - (RESERVE_MS + DRAIN_MS) / 1000
    rng = random.Random(seed)
    clock = Clock()
    store = MemoryJobStore()
    dispatcher = Dispatcher(store, [], clock)
    backend = FakeTrainingBackend()
    jobs = [_job(rng, clock, i, "run") for i in range(active)]
    store.register_many(jobs, "running")
    for job in jobs:
        name = attempt_name(job.job_id, 1)
        attempt = Attempt(number=1, name=name, claimed_at=clock(), launched_at=clock(), outcome=AttemptOutcome.RUNNING)
        launched = store.transition(store.get(job.job_id), JobStatus.LAUNCHED, at=clock(), reason="created", attempts=[attempt]).job
        store.transition(launched, JobStatus.IN_PROGRESS, at=clock(), reason="training")
        backend.jobs[name] = TrainingStatus(name=name, state=TrainingState.RUNNING)
    described: set[str] = set()
    per_run: list[int] = []
    reads = ReadCounter(store)
    inner = backend.describe

    def describe(name: str) -> TrainingStatus | None:
        described.add(name)
        per_run[-1] += 1
        return inner(name)

    backend.describe = describe  # type: ignore[method-assign]
    while len(described) < active and len(per_run) < 100:
        per_run.append(0)
        began = clock.monotonic()
        monitor = Monitor(store, backend, dispatcher, policy=POLICY, pacer=sim_pacer(clock, CALLS_PER_SECOND), clock=clock, rng=rng)
        monitor.sweep(describe_while=lambda: clock.monotonic() - began < window)  # noqa: B023 (this run's start)
        clock.advance(timedelta(minutes=every))
    return {
        "describes_per_run": per_run[0],
        "items_per_run": reads.items / len(per_run),
        "runs": len(per_run),
        "full_pass_minutes": len(per_run) * every,
        "window": window,
        "every": every,
    }


class ReadCounter:
    """Items the monitor's sweeps read: Active index entries and jobs by id."""

    def __init__(self, store: MemoryJobStore) -> None:
        self.items = 0
        for name in ("active_places", "get_many", "active_jobs"):
            if hasattr(store, name):  # (an older store, measured for a "before" figure, lacks some)
                self._wrap(store, name)

    def _wrap(self, store: MemoryJobStore, name: str) -> None:
        inner = getattr(store, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            found = inner(*args, **kwargs)
            self.items += len(found)
            return found

        setattr(store, name, counted)


_LISTINGS = (
    "ready_jobs", "retrying_due", "expired_claims", "parked_jobs", "held_jobs", "get_many",
    "jobs_of_owner", "recent_jobs", "active_places", "queued_jobs",
)
_ENTRIES = ("active_places", "queued_jobs")  # index entries, not items


class AnswerMeter:
    """What one answer reads from the store: whole items (jobs handed over), and index entries
    read without their items (instances in use, active places)."""

    def __init__(self, store: MemoryJobStore) -> None:
        self.items = self.entries = 0
        for name in _LISTINGS:
            if hasattr(store, name):  # (an older store, measured for a "before" figure, lacks some)
                self._wrap(store, name)
        usage, history = store.active_usage, store.jobs_created_on
        active = sum(1 for j in store._jobs.values() if j.is_active)

        def counted_usage() -> dict[str, int]:
            self.entries += active
            return usage()

        def counted_history(*args: Any, **kwargs: Any) -> Any:
            for job in history(*args, **kwargs):
                self.items += 1
                yield job

        store.active_usage = counted_usage  # type: ignore[method-assign]
        store.jobs_created_on = counted_history  # type: ignore[method-assign]

    def _wrap(self, store: MemoryJobStore, name: str) -> None:
        inner = getattr(store, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            found = inner(*args, **kwargs)
            jobs = found.jobs if hasattr(found, "jobs") else found
            if name in _ENTRIES:
                self.entries += len(jobs)
            else:
                self.items += len(jobs)
            return found

        setattr(store, name, counted)

    def measure(self, answer: Callable[[], Any]) -> dict[str, float]:
        self.items = self.entries = 0
        started = time.process_time()
        answer()
        return {"items": self.items, "entries": self.entries, "cpu": time.process_time() - started}


def answers(seed: int, active: int, queued: int, history: int) -> dict[str, dict[str, float]]:
    """``/train queue``, ``status <job>``, ``list`` and ``stats`` (everyone, 14 days) over a store
    with ``active`` running jobs, ``queued`` New ones (a sweep's) and ``history`` finished jobs
    created in the last day: whole items (the status card's own read of its job not counted) and
    index entries each reads, and its CPU seconds (the fake store's copies standing in for the
    decoding of DynamoDB's items)."""
    from backend.services.jobs import JobService
    from backend.services.queue import QueueView
    from backend.services.stats import collect

    rng = random.Random(seed)
    clock = Clock()
    store = MemoryJobStore()
    dispatcher = Dispatcher(store, [], clock)
    for job in (_job(rng, clock, i, "run") for i in range(active)):
        store.register(job)
        attempt = Attempt(number=1, name=attempt_name(job.job_id, 1), claimed_at=clock(), outcome=AttemptOutcome.RUNNING)
        store.transition(store.get(job.job_id), JobStatus.LAUNCHED, at=clock(), reason="created", attempts=[attempt])
    sweep_id = "sw-00000000000000dd"
    stem = sweeps.sweep_stem(sweep_id, "grid", "tb-")
    owner_of_sweep = _job(rng, clock, 0, "x").owner
    grid = [
        make_job(f"grid-{i + 1}", job_id=sweeps.sweep_job_id(stem, i), user=owner_of_sweep.user_id, team=owner_of_sweep.team_id,
                 now=clock(), client_token=f"{sweep_id}/{i}", sweep_id=sweep_id)
        for i in range(queued)
    ]
    store.register_many(grid, sweep_id)
    for i in range(history):
        job = _job(rng, clock, i, "done")
        done = job.model_copy(update={"status": JobStatus.COMPLETED, "created_at": clock() - timedelta(hours=rng.uniform(0, 20))})
        store._store(done)
    clock.advance(timedelta(minutes=1))
    queue = QueueView(store, limits=LIMITS, capacity_max_wait=timedelta(seconds=POLICY.capacity_max_wait_seconds), clock=clock)
    service = JobService(store, FakeTrainingBackend(), dispatcher, clock=clock, is_admin=lambda _user: False)
    meter = AnswerMeter(store)
    middle = grid[len(grid) // 2].job_id if grid else ""
    return {
        "queue": meter.measure(lambda: queue.page(None, 1)),
        "status": meter.measure(lambda: queue.reason(middle, service.get(middle))),  # as the bot: the card's job
        "list": meter.measure(lambda: service.list_owner(owner_of_sweep, limit=10)),
        "stats": meter.measure(lambda: collect(store, None, 14, None, clock())),
    }


class _CountingRecords:
    """The kick's record writes (every conditional put is one, refused or not: DynamoDB charges
    a refused conditional write too) and reads, over the in-memory store."""

    def __init__(self, store: MemoryJobStore) -> None:
        self.store, self.writes, self.reads = store, 0, 0

    def put_record(self, *args: Any, **kwargs: Any) -> bool:
        self.writes += 1
        return self.store.put_record(*args, **kwargs)

    def delete_record(self, *args: Any, **kwargs: Any) -> None:
        self.writes += 1
        self.store.delete_record(*args, **kwargs)

    def get_record(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        self.reads += 1
        return self.store.get_record(*args, **kwargs)


def rollup_figures(per_day: int, *, days: int = 14, users: int = 200, seed: int = 0) -> dict[str, float]:
    """``/train stats`` from the rollup's tallies (backend.services.rollup): ``days`` days of
    ``per_day`` finished jobs (``users`` owners, 8 instance types, 5% failed, each finished
    within 6 hours of its creation), rolled up hour by hour as the monitor would; then what one
    answer for everyone over 14 days reads (records and their KB, jobs read one by one) and its
    CPU, and what the rollup wrote per job (WCU: 1 a started KB of each record written)."""
    import json as _json

    from backend.domain.times import format_utc
    from backend.services import rollup
    from backend.services.stats import collect
    from tests.stats_history import job_with

    rng = random.Random(seed)
    clock = Clock()
    clock.now -= timedelta(days=days + 1)
    store = MemoryJobStore()
    roller = rollup.StatsRoller(store, clock)
    written = {"wcu": 0}
    put, set_entry = store.put_record, store.set_record_entry

    def counted_put(kind: str, key: str, attributes: dict[str, Any], **kwargs: Any) -> bool:
        written["wcu"] += math.ceil(len(_json.dumps(attributes)) / 1024)
        return put(kind, key, attributes, **kwargs)

    def counted_entry(*args: Any) -> None:
        written["wcu"] += 1
        set_entry(*args)

    store.put_record, store.set_record_entry = counted_put, counted_entry  # type: ignore[method-assign]
    types = ["ml.g5.xlarge", "ml.g5.2xlarge", "ml.g5.12xlarge", "ml.g5.48xlarge", "ml.p4d.24xlarge", "ml.p5.48xlarge", "ml.m5.large", "ml.c5.xlarge"]
    roller.roll()
    total = 0
    for _hour in range((days + 1) * 24):
        for _ in range(per_day // 24):
            created = clock() + timedelta(minutes=rng.uniform(0, 59))
            launched = created + timedelta(minutes=rng.expovariate(1 / 20))
            ended = launched + timedelta(minutes=rng.uniform(10, 300))
            failed = rng.random() < 0.05
            job = job_with(
                f"r{total}", created, JobStatus.FAILED if failed else JobStatus.COMPLETED,
                [{"claimed": launched, "launched": launched, "started": launched, "ended": ended, "billable": int((ended - launched).total_seconds()),
                  "outcome": AttemptOutcome.FAILED if failed else AttemptOutcome.COMPLETED}],
                instance=rng.choice(types), user=f"U{rng.randrange(users):04d}", job_id=f"r{total:07d}-{seed}",
            )
            store._store(job)
            total += 1
        clock.advance(timedelta(hours=1))
        roller.roll()
    reads = {"records": 0, "bytes": 0, "jobs": 0}
    get_record, get_many, created_on = store.get_record, store.get_many, store.jobs_created_on

    def counted_get(kind: str, key: str) -> dict[str, Any] | None:
        found = get_record(kind, key)
        reads["records"] += 1
        reads["bytes"] += len(_json.dumps(found)) if found else 0
        return found

    def counted_many(ids: Any, **kwargs: Any) -> list[Job]:
        jobs = get_many(ids, **kwargs)
        reads["jobs"] += len(jobs)
        return jobs

    def counted_on(*args: Any, **kwargs: Any) -> Any:
        for job in created_on(*args, **kwargs):
            reads["jobs"] += 1
            yield job

    # DynamoDB answers a COUNT query itself; the fake would walk every job for it, so the
    # answer's CPU counts a sorted list's bisection instead (and the queries are counted).
    import bisect

    created_sorted = sorted(format_utc(j.created_at) for j in store._jobs.values())
    owned_sorted: dict[Any, list[str]] = {}
    for job in store._jobs.values():
        owned_sorted.setdefault(job.owner, []).append(format_utc(job.created_at))
    for stamps in owned_sorted.values():
        stamps.sort()

    def counted_created(since: str, until: str) -> int:
        reads["counts"] += 1
        return bisect.bisect_right(created_sorted, until) - bisect.bisect_left(created_sorted, since)

    def counted_owned(owner: Any, since: str, until: str) -> int:
        reads["counts"] += 1
        stamps = owned_sorted.get(owner, [])
        return bisect.bisect_right(stamps, until) - bisect.bisect_left(stamps, since)

    reads["counts"] = 0
    store.get_record, store.get_many, store.jobs_created_on = counted_get, counted_many, counted_on  # type: ignore[method-assign]
    store.count_created, store.count_owned = counted_created, counted_owned  # type: ignore[method-assign]
    started = time.process_time()
    stats = collect(store, None, 14, None, clock())
    cpu = time.process_time() - started
    return {
        "per_day": per_day, "jobs": total, "counted": stats.total, "records": reads["records"], "kb": reads["bytes"] / 1024,
        "jobs_read": reads["jobs"], "counts": reads["counts"], "cpu": cpu, "wcu_per_job": written["wcu"] / total, "wcu_per_day": written["wcu"] / (days + 1),
    }


def rollup_write_figures(
    per_day: int, *, days: int = 3, teams: int = 20, users_per_team: int = 100, presets: int = 100, seed: int = 0
) -> dict[str, float]:
    """The rollup's write cost at the issue's workload: ``per_day`` jobs a day for ``days``
    simulated days from ``teams`` × ``users_per_team`` owners, 40% of them from one of
    ``presets`` presets, each lasting 10 min to 2 days (log-uniform) and 5% failing, rolled as
    the monitor's every-5-minute runs would. Priced as DynamoDB prices writes: a put or an
    update of a record costs one WCU per started KB of the larger of the item before and after.
    Reported for the last day only (the first ones fill the pipeline: jobs end up to 2 days
    after they start), per job that ended, with what the records hold at the end."""
    import json as _json

    from backend.services import rollup
    from tests.stats_history import job_with

    rng = random.Random(seed)
    clock = Clock()
    clock.now -= timedelta(days=days + 1)
    store = MemoryJobStore()
    roller = rollup.StatsRoller(store, clock)
    sizes: dict[tuple[str, str], int] = {}
    written = Counter()  # WCU by what: the tallies, the slices' lists, the hourly counts, the cursor
    put, set_entry = store.put_record, store.set_record_entry

    def what(key: str) -> str:
        if key.startswith(("ends#", "created#")) or key == "cursor":
            return "slice lists" if key.startswith("ends#") else "created counts" if key.startswith("created#") else "cursor"
        scope = key.split("#")[0]
        kind = "everyone's" if scope.startswith("all") else "owners'" if scope.startswith("u:") else "presets'"
        return f"{kind} spend shards" if "$" in scope else f"{kind} tallies"

    def charge(kind: str, key: str) -> None:
        stored = store._records.get((str(kind), key))
        after = len(_json.dumps(stored, default=str)) if stored is not None else 0
        written[what(key)] += max(1, math.ceil(max(after, sizes.get((str(kind), key), 0)) / 1024))
        sizes[(str(kind), key)] = after

    def counted_put(kind: str, key: str, attributes: dict[str, Any], **kwargs: Any) -> bool:
        done = put(kind, key, attributes, **kwargs)
        if done:
            charge(kind, key)
        return done

    def counted_entry(kind: str, key: str, *args: Any) -> None:
        set_entry(kind, key, *args)
        charge(kind, key)

    store.put_record, store.set_record_entry = counted_put, counted_entry  # type: ignore[method-assign]
    owners = [f"U{t:02d}{u:03d}" for t in range(teams) for u in range(users_per_team)]
    names = [f"preset-{p:03d}" for p in range(presets)]
    types = ["ml.g5.xlarge", "ml.g5.2xlarge", "ml.g5.12xlarge", "ml.p4d.24xlarge", "ml.p5.48xlarge", "ml.m5.large"]
    roller.roll()
    step = timedelta(minutes=5)
    per_step = per_day / (24 * 12)
    total = ended_last_day = 0
    last_day = clock() + timedelta(days=days) - timedelta(days=1)
    before_last: Counter[str] | None = None  # the writes when the last day began
    carry = 0.0
    for _ in range(days * 24 * 12 + 12):  # the days, and an hour more to roll the last slices
        carry += per_step if clock() < last_day + timedelta(days=1) else 0
        for _ in range(int(carry)):
            created = clock() + timedelta(seconds=rng.uniform(0, 300))
            launched = created + timedelta(minutes=rng.expovariate(1 / 10))
            ended = launched + timedelta(minutes=math.exp(rng.uniform(math.log(10), math.log(2 * 24 * 60))))
            failed = rng.random() < 0.05
            team = rng.randrange(teams)
            owner = team * users_per_team + rng.randrange(users_per_team)
            # An owner trains on one or two instance types: its own, and now and then another.
            kind = types[owner % len(types)] if rng.random() < 0.8 else rng.choice(types)
            job = job_with(
                f"r{total}", created, JobStatus.FAILED if failed else JobStatus.COMPLETED,
                [{"claimed": launched, "launched": launched, "started": launched, "ended": ended, "billable": int((ended - launched).total_seconds()),
                  "outcome": AttemptOutcome.FAILED if failed else AttemptOutcome.COMPLETED}],
                instance=kind, user=owners[owner], team=f"T{team:02d}",
                preset=rng.choice(names) if rng.random() < 0.4 else None, job_id=f"r{total:07d}-{seed}",
            )
            store._store(job)
            total += 1
            if last_day <= ended < last_day + timedelta(days=1):
                ended_last_day += 1
        carry -= int(carry)
        clock.advance(step)
        if clock() >= last_day and before_last is None:
            before_last = Counter(written)
        roller.roll()
    # Every slice of the last day is rolled by now (the hour after it); its writes are the
    # difference, and an ended job of the last day is in exactly one of its slices.
    last = {k: written[k] - (before_last or Counter()).get(k, 0) for k in written}
    wcu = sum(last.values())
    tally_sizes = [size for (kind, key), size in sizes.items() if "tallies" in what(key) or "shards" in what(key)]
    return {
        "per_day": per_day, "jobs": total, "ended_last_day": ended_last_day, "wcu_last_day": wcu,
        "wcu_per_job": wcu / max(1, ended_last_day), "by_what": last, "tallies": len(tally_sizes),
        "tally_kb_mean": sum(tally_sizes) / max(1, len(tally_sizes)) / 1024, "tally_kb_max": max(tally_sizes, default=0) / 1024,
        "users": teams * users_per_team, "presets": presets,
    }


def kick_figures(submissions: int, run_seconds: float = 2.0) -> dict[str, Any]:
    """Start on submit, priced: the kick record's writes for a lone submission, and for
    ``submissions`` spread over a minute the launcher runs asked for and run, with the kick
    record (backend/services/kick.py) and without it (every submission invokes the launcher;
    Lambda's async queue, the launcher's reserved concurrency 1, runs them one at a time and
    drops those older than its MaximumEventAgeInSeconds). A run takes ``run_seconds``."""
    from backend.services.kick import Kicker

    max_age = float(load_template()["Resources"]["LauncherFunction"]["Properties"]["EventInvokeConfig"]["MaximumEventAgeInSeconds"])

    def simulate(with_record: bool, count: int) -> dict[str, float]:
        clock = Clock()
        start = clock()
        records = _CountingRecords(MemoryJobStore())
        invoked: list[float] = []

        class Trigger:
            def start_launcher(self, job_id: str | None = None) -> None:
                invoked.append(clock.monotonic())

        kicker = Kicker(records, Trigger(), clock=clock)  # type: ignore[arg-type] (the records it calls)
        runs = dropped = 0
        busy_until = 0.0
        pending: list[float] = []

        def run_until(moment: float) -> None:
            nonlocal runs, dropped, busy_until
            while pending and max(pending[0], busy_until) <= moment:
                asked = pending.pop(0)
                began = max(asked, busy_until)
                if began - asked > max_age:
                    dropped += 1
                    continue
                clock.now, clock.monotonic_seconds = start + timedelta(seconds=began), began
                if with_record:
                    kicker.consume()  # the kicked run, before it reads the queue
                runs += 1
                busy_until = began + run_seconds

        for i in range(count):
            moment = i * 60 / count
            run_until(moment)
            clock.now, clock.monotonic_seconds = start + timedelta(seconds=moment), moment
            before = len(invoked)
            if with_record:
                kicker.kick(f"job-{i}")
            else:
                Trigger().start_launcher(f"job-{i}")
            pending.extend(invoked[before:])
        run_until(float("inf"))
        return {"writes": records.writes / count, "reads": records.reads / count, "invoked": len(invoked), "runs": runs, "dropped": dropped}

    return {
        "lone": simulate(True, 1),
        "burst": simulate(True, submissions),
        "burst_without": simulate(False, submissions),
    }


def _record_size(key: str, record: dict[str, Any]) -> int:
    """A small record's DynamoDB size; ``Counted`` is a number set (about 1 byte per two digits
    plus one per member, not its JSON text)."""
    plain = {k: v for k, v in record.items() if k != "Counted"}
    counted = sum(1 + math.ceil(len(str(n)) / 2) for n in record.get("Counted", ()))
    return item_size({"JobId": key, **plain}) + (len("Counted") + counted if "Counted" in record else 0)


def sweep_figures(size: int, seed: int) -> dict[str, float]:
    """A ``size``-job sweep: its batch record's size once registered (its job ids derived from
    the sweep's id, as the submit use case makes them), and its end record's (``sweep-ends``)
    as its jobs end, 5% of them failed: the largest it gets and the WCU of the count each end
    writes (1 per started KB of the larger of the record before and after)."""
    rng = random.Random(seed)
    clock = Clock()
    store = MemoryJobStore()
    sweep_id = "sw-0123456789abcdef"
    stem = sweeps.sweep_stem(sweep_id, "grid", "tb-")
    jobs = [
        make_job(f"grid-{i + 1:05d}", job_id=sweeps.sweep_job_id(stem, i), now=clock(), client_token=f"{sweep_id}/{i}", sweep_id=sweep_id)
        for i in range(size)
    ]
    store.register_many(jobs, sweep_id)
    record = store.get_record(RecordKind.SWEEP, sweep_id) or {}
    key = f"{RecordKind.SWEEP_ENDS}#{sweep_id}"
    largest = before = counted = 0
    wcu = 0
    for i in range(size):
        failed = rng.random() < 0.05
        line = f"*grid-{i + 1:05d}* Failed (lr=3e-5, batch=64): AlgorithmError: CUDA out of memory. Tried to allocate 2.00 GiB"
        store.count_sweep_end(sweep_id, i, "Failed" if failed else "Completed", line if failed else None)
        # Sized from the fake's own record (no copy of its 10,000 members per end), the member
        # set's share added as it grows: a number set costs about 1 byte per two digits, plus 1.
        ends = store._records[(RecordKind.SWEEP_ENDS.value, sweep_id)]
        counted += 1 + math.ceil(len(str(i)) / 2)
        after = _record_size(key, {k: v for k, v in ends.items() if k != "Counted"}) + len("Counted") + counted
        wcu += math.ceil(max(before, after) / 1024)
        largest, before = max(largest, after), after
    return {
        "record_bytes": _record_size(f"{RecordKind.SWEEP}#{sweep_id}", record),
        "ends_largest_bytes": largest,
        "wcu_per_end": wcu / size,
    }


class _AcceptingDynamoDB:
    """DynamoDB's API as a batch registration calls it, accepting every write and storing
    nothing: the real adapter's requests and pacing, on the simulated clock, each item charged
    to the partitions it writes."""

    def __init__(self, partitions: PartitionMeter) -> None:
        self.partitions = partitions

    def get_item(self, **_kwargs: Any) -> dict[str, Any]:
        return {}

    def update_item(self, **_kwargs: Any) -> dict[str, Any]:
        return {}

    def put_item(self, **kwargs: Any) -> dict[str, Any]:
        self.partitions.charge_put(kwargs["Item"])
        return {}

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        for requests in RequestItems.values():
            for request in requests:
                self.partitions.charge_put(request["PutRequest"]["Item"])
        return {}


def sweep_registration(size: int) -> dict[str, Any]:
    """A ``size``-job sweep registered by the DynamoDB store (its own pacing, simulated time):
    the busiest partition-second and how long it took."""
    clock = Clock()
    partitions = PartitionMeter(clock)
    store = DynamoJobStore(_AcceptingDynamoDB(partitions), "jobs", sleep=clock.sleep, monotonic=clock.monotonic)
    sweep_id = "sw-00000000000000aa"
    stem = sweeps.sweep_stem(sweep_id, "grid", "tb-")
    jobs = [
        make_job(f"grid-{i + 1:05d}", job_id=sweeps.sweep_job_id(stem, i), now=clock(), client_token=f"{sweep_id}/{i}", sweep_id=sweep_id)
        for i in range(size)
    ]
    store.register_many(jobs, sweep_id)
    return {"peak": partitions.peak(), "seconds": clock.monotonic()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--active", type=int, default=10000)
    parser.add_argument("--sweep", type=int, default=10000)
    parser.add_argument("--history", type=int, default=10000, help="finished jobs of the last day, for /train stats")
    parser.add_argument("--rollup-per-day", type=int, default=12000, help="jobs a day for the rollup's write figure (2 days of them)")
    parser.add_argument(
        "--rollup-writes", action="store_true",
        help="also the rollup's writes at 100,000 jobs a day, 400 and 2,000 owners (3 simulated days each; about 9 CPU minutes each)",
    )
    args = parser.parse_args()
    if args.rollup_writes:
        for per_team, presets in ((20, 20), (100, 100)):
            w = rollup_write_figures(100_000, users_per_team=per_team, presets=presets)
            parts = ", ".join(f"{k} {v:,}" for k, v in sorted(w["by_what"].items(), key=lambda kv: -kv[1]))
            print(f"rollup writes, 100,000 jobs a day, {w['users']:,} owners, {w['presets']} presets: {w['wcu_per_job']:.2f} WCU a job"
                  f" ({w['wcu_last_day']:,} a day: {parts}); {w['tallies']:,} records, {w['tally_kb_mean']:.1f} KB mean,"
                  f" {w['tally_kb_max']:.1f} KB largest", flush=True)
        return

    peak = burst(args.seed, args.burst)
    print("scale figures (bench/scale.py, simulated time, in-memory store)", flush=True)
    print(f"launches per minute, {args.burst}-job burst, 5% of creates refused : {peak['launches_per_minute']:.1f}"
          f"  ({peak['refused']} of {peak['creates']} creates refused)")
    print(f"writes per parked job                                       : {peak['writes_per_parked_job']:.1f}"
          f"  ({peak['parked_jobs']} jobs parked)")
    wcu, where, partition = peak["peak_partition"]
    print(f"busiest partition-second, {args.burst}/min burst and its 10 min       : {wcu} WCU ({wcu / PARTITION_WCU:.0%} of"
          f" {PARTITION_WCU}: {where} '{partition}')", flush=True)
    wcu, by_index = happy_path_wcu()
    print(f"WCU per happy-path job                                      : {wcu:.0f}  ({', '.join(f'{k} {v}' for k, v in sorted(by_index.items()))})", flush=True)
    tick = tick_at_active(args.seed, args.active)
    print(f"launcher tick at {args.active} active: items read                  : {tick['items']}  ({tick['rcu']:.0f} RCU)", flush=True)
    print(f"launcher tick at {args.active} active: CPU seconds                 : {tick['cpu']:.2f}  ({tick['launched']} launched)", flush=True)
    sweeps_ = monitor_pass(args.seed, args.active)
    print(f"monitor at {args.active} active, no events: describes per run      : {sweeps_['describes_per_run']}"
          f"  ({sweeps_['items_per_run']:.0f} items read a run; a run every {sweeps_['every']:.0f} min describing"
          f" for {sweeps_['window']:.0f} s)", flush=True)
    print(f"monitor at {args.active} active, no events: full pass            : {sweeps_['full_pass_minutes']:.0f} min"
          f"  ({sweeps_['runs']} runs)", flush=True)
    answered = answers(args.seed, args.active, args.sweep, args.history)
    for name, figures in answered.items():
        print(f"/train {name:<6} at {args.active} active, {args.sweep} queued          : {figures['items']} items,"
              f" {figures['entries']} index entries, {figures['cpu']:.2f} s CPU", flush=True)
    stats = answered["stats"]
    scale = 14 * 100_000 / stats["items"] if stats["items"] else 0.0
    print(f"/train stats read job by job, 14 days of 100,000 a day (linear): {stats['items'] * scale:,.0f} items,"
          f" {stats['cpu'] * scale:.0f} s CPU (before the rollup runs, or days before it began)", flush=True)
    for per_day, days in ((240, 14), (args.rollup_per_day, 2)):
        rolled = rollup_figures(per_day, days=days)
        print(f"/train stats from the rollup, {days} days of {per_day:,} jobs a day: {rolled['records']} records"
              f" ({rolled['kb']:.0f} KB), {rolled['counts']} COUNT queries, {rolled['jobs_read']} jobs read, {rolled['cpu']:.2f} s CPU; the rollup wrote {rolled['wcu_per_day']:,.0f} WCU a day"
              f" ({rolled['wcu_per_job']:.2f} a job)", flush=True)
    kick = kick_figures(args.burst)
    lone, with_record, without = kick["lone"], kick["burst"], kick["burst_without"]
    print(f"start on submit, a lone submission: kick record writes         : {lone['writes']:.0f}"
          f"  (1 launcher run; without the record: 0 writes, the same run)", flush=True)
    print(f"start on submit, {args.burst} submissions in a minute             : {with_record['writes']:.2f} writes and"
          f" {with_record['reads']:.2f} reads a submission, {with_record['runs']} launcher runs; without the record"
          f" {without['invoked']} invocations, {without['runs']} runs, {without['dropped']} dropped", flush=True)
    registration = sweep_registration(args.sweep)
    wcu, where, partition = registration["peak"]
    print(f"busiest partition-second, {args.sweep}-job sweep registration   : {wcu} WCU ({wcu / PARTITION_WCU:.0%} of"
          f" {PARTITION_WCU}: {where} '{partition}'; {registration['seconds']:.0f} s to register)", flush=True)
    sweep = sweep_figures(args.sweep, args.seed)
    print(f"sweep record of a {args.sweep}-job sweep                       : {sweep['record_bytes']} bytes (cap 400 KB)", flush=True)
    print(f"its sweep-ends record at its largest (5% failed)              : {sweep['ends_largest_bytes'] / 1024:.1f} KB"
          f"  ({sweep['wcu_per_end']:.1f} WCU per job end counted)", flush=True)


if __name__ == "__main__":
    main()

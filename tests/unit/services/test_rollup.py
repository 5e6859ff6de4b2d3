"""The stats rollup (backend.services.rollup) against the answer it replaces: reading every job.

Each seed runs the real launcher, monitor and job service on the in-memory store over three
simulated days: users submit, jobs run, fail (algorithm errors the monitor retries), complete,
are stopped, and owners retry failed and stopped jobs by hand, some after their first end was
rolled up and some before. The roller runs at random moments, and some of its runs crash after a
random number of writes (the next run finishes the work). The stats read from the tallies must
then agree with :func:`backend.services.stats.compute_stats` over every job of the window:
counts, retries, hours and spend exactly, medians and p90s to a bucket's width.
"""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest

from backend.domain import tally
from backend.domain.model import AttemptOutcome, Owner
from backend.domain.policy import RetryPolicy
from backend.domain.records import RecordKind
from backend.domain.status import TERMINAL, JobStatus
from backend.domain.times import format_utc
from backend.errors import TrainbotError
from backend.ports import TrainingState
from backend.services import rollup
from backend.services.jobs import Actor, JobService
from backend.services.launcher import Launcher
from backend.services.monitor import Monitor
from backend.services.notify import Dispatcher
from backend.services.stats import Window, collect, compute_stats
from tests.conftest import T0, job_args, make_job
from tests.fakes.memory_store import MemoryJobStore
from tests.fakes.notifier import RecordingNotifier
from tests.fakes.training import FakeTrainingBackend
from tests.unit.services.conftest import Clock
from tests.write_cost import sim_pacer

S = JobStatus
USERS = ("U1", "U2", "U3")
TYPES = ("ml.g5.xlarge", "ml.p4d.24xlarge")
ROLLED = rollup.ROLL_SLICES * rollup.SLICE + rollup.GRACE + timedelta(minutes=5)  # long enough for a roll to take a slice in
POLICY = RetryPolicy(base_seconds=60, max_seconds=600, capacity_max_wait_seconds=3600)


class Crash(Exception):
    """A roller run killed between two writes."""


class CrashingStore:
    """The store, but the ``after``-th record write (and every one after it) raises: a roller
    killed mid-run."""

    def __init__(self, store: MemoryJobStore, after: int) -> None:
        self._store, self._left = store, after

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def _spend(self) -> None:
        if self._left <= 0:
            raise Crash()
        self._left -= 1

    def put_record(self, *args, **kwargs):
        self._spend()
        return self._store.put_record(*args, **kwargs)

    def set_record_entry(self, *args, **kwargs):
        self._spend()
        return self._store.set_record_entry(*args, **kwargs)


class World:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.presets = random.Random(-seed - 1)  # apart, so the timelines stay what they were
        self.clock = Clock(now=T0)
        self.store = MemoryJobStore()
        notifier = RecordingNotifier()
        self.store.set_notify_targets([notifier.name])
        self.backend = FakeTrainingBackend()
        dispatcher = Dispatcher(self.store, [notifier], self.clock)
        self.launcher = Launcher(
            self.store, self.backend, dispatcher, policy=POLICY, instance_limits={}, pacer=sim_pacer(self.clock), clock=self.clock,
            rng=random.Random(seed),
        )
        self.monitor = Monitor(
            self.store, self.backend, dispatcher, policy=POLICY, pacer=sim_pacer(self.clock), clock=self.clock, rng=random.Random(seed)
        )
        self.jobs = JobService(self.store, self.backend, dispatcher, clock=self.clock)
        self.roller = rollup.StatsRoller(self.store, self.clock)
        self.crashes = 0
        self.ids: list[str] = []

    def submit(self) -> None:
        user = self.rng.choice(USERS)
        args = job_args(ResourceConfig={"InstanceType": self.rng.choice(TYPES), "InstanceCount": self.rng.choice((1, 2)), "VolumeSizeInGB": 50})
        preset = self.presets.choice((None, None, "nlp", "vision"))
        job = make_job(f"j{len(self.ids)}", user=user, now=self.clock(), job_args=args, client_token=f"t{len(self.ids)}", preset=preset)
        self.ids.append(self.store.register(job).job.job_id)

    def settle_attempts(self) -> None:
        """SageMaker moves the running attempts on: start, complete, or fail."""
        for job in self.store.active_jobs():
            attempt = job.attempts[-1]
            status = self.backend.jobs.get(attempt.name)
            if status is None or status.state not in (TrainingState.RUNNING,):
                continue
            roll = self.rng.random()
            if roll < 0.3:
                ended = self.clock()
                if self.rng.random() < 0.75:
                    self.backend.finish(attempt.name, TrainingState.COMPLETED, ended_at=ended)
                else:
                    self.backend.finish(attempt.name, TrainingState.FAILED, "AlgorithmError: loss is nan", ended_at=ended)
                self.backend.jobs[attempt.name] = _with_billing(self.backend.jobs[attempt.name], self.rng.randint(60, 7200))

    def user_moves(self) -> None:
        known = self.store.get_many(self.rng.sample(self.ids, min(4, len(self.ids))))
        for job in known:
            actor = Actor(team_id=job.owner.team_id, user_id=job.owner.user_id)
            try:
                if job.status in (S.FAILED, S.STOPPED) and self.rng.random() < 0.4:
                    self.jobs.retry(job.job_id, actor)
                elif job.status not in TERMINAL and self.rng.random() < 0.05:
                    self.jobs.stop(job.job_id, actor)
            except TrainbotError:  # a refused move (raced, illegal) changes nothing here
                pass

    def roll(self) -> None:
        if self.rng.random() < 0.25:
            crashing = rollup.StatsRoller(CrashingStore(self.store, self.rng.randint(0, 6)), self.clock)  # type: ignore[arg-type]
            try:
                crashing.roll()
            except Crash:
                self.crashes += 1
                return
        self.roller.roll()

    def step(self) -> None:
        self.clock.advance(timedelta(minutes=self.rng.randint(1, 9)))
        for _ in range(self.rng.choice((0, 0, 1, 2, 3))):
            self.submit()
        self.launcher.run_tick()
        self.monitor.sweep()
        self.settle_attempts()
        self.user_moves()
        if self.rng.random() < 0.3:
            self.roll()

    def finish_everything(self) -> None:
        """No more retries: every job ends (running ones complete, queued ones are stopped)."""
        for job in self.store.get_many(self.ids):
            if job.status not in TERMINAL:
                try:
                    self.jobs.stop(job.job_id, Actor(team_id=job.owner.team_id, user_id=job.owner.user_id))
                except TrainbotError:
                    pass
        for _ in range(30):
            self.clock.advance(timedelta(minutes=5))
            for name, status in list(self.backend.jobs.items()):
                if status.state in (TrainingState.RUNNING, TrainingState.STOPPING):
                    self.backend.finish(name, TrainingState.STOPPED, ended_at=self.clock())
            self.monitor.sweep()
            if all(j.status in TERMINAL for j in self.store.get_many(self.ids)):
                return


def _with_billing(status, seconds: int):
    from dataclasses import replace

    return replace(status, billable_seconds=seconds)


def _exact(world: World, days: int):
    now = world.clock()
    start = (now - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    window = Window(start, now)
    return compute_stats(world.store.get_many(world.ids), window, now)


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=0.026, abs_tol=1.0)


def _agree(rolled, exact, *, owners: bool = True) -> None:
    assert rolled.window == exact.window
    assert (rolled.total, rolled.finished, rolled.completed) == (exact.total, exact.finished, exact.completed)
    assert rolled.by_status == exact.by_status
    assert rolled.retries_by_cause == exact.retries_by_cause
    assert {d: r for d, r in rolled.retries_per_day.items() if r} == {d: r for d, r in exact.retries_per_day.items() if r}
    assert rolled.jobs_per_day == exact.jobs_per_day
    assert rolled.instance_hours.keys() == exact.instance_hours.keys()
    assert all(math.isclose(rolled.instance_hours[k], exact.instance_hours[k]) for k in exact.instance_hours)
    if not owners:  # a preset's stats keep no spend by owner or team
        assert rolled.spend.by_user == [] and rolled.spend.by_team == []
    groups = [(rolled.spend.by_type, exact.spend.by_type)]
    if owners:
        groups += [(rolled.spend.by_user, exact.spend.by_user), (rolled.spend.by_team, exact.spend.by_team)]
    for mine_, theirs_ in groups:
        assert [(line.name, round(line.instance_hours, 6), round(line.money or 0, 4)) for line in mine_] == [
            (line.name, round(line.instance_hours, 6), round(line.money or 0, 4)) for line in theirs_
        ]
    assert {d: {k: round(h, 6) for k, h in t.items()} for d, t in rolled.spend.per_day.items()} == {
        d: {k: round(h, 6) for k, h in t.items()} for d, t in exact.spend.per_day.items()
    }
    for mine, theirs in ((rolled.queue_wait, exact.queue_wait), (rolled.run_time, exact.run_time)):
        assert mine.count == theirs.count
        assert _close(mine.median, theirs.median) and _close(mine.p90, theirs.p90), (mine, theirs)
    assert [s.instance_type for s in rolled.slowest_to_start] == [s.instance_type for s in exact.slowest_to_start] or all(
        _close(a.median_wait, b.median_wait) for a, b in zip(rolled.slowest_to_start, exact.slowest_to_start, strict=True)
    )


def _retried_after_a_counted_end(world: World) -> int:
    count = 0
    for job in world.store.get_many(world.ids):
        before = tally.previous_end(job)
        if before is not None and job.job_id in world.roller.counted_in(rollup.slice_of(job.history[before].at)):
            count += 1
    return count


# Seeds 15 and 21 found a roll stopped half-way counted twice by the read (when rolls were a
# slice at a time); test_a_roll_killed_after_any_write_leaves_the_answer_right now tries every
# kill point.
@pytest.mark.parametrize("seed", [0, 15])
def test_stats_from_the_tallies_agree_with_reading_every_job(seed: int) -> None:
    world = World(seed)
    for _ in range(20):  # jobs from before the rollup's first run: read one by one
        world.step()
    world.roller.roll()
    for _ in range(250):
        world.step()
    # The timeline reached the hard cases, else agreeing would prove little.
    assert world.crashes >= 1 and _retried_after_a_counted_end(world) >= 1
    world.finish_everything()
    # Right away: the newest finished jobs are read one by one (not rolled yet)...
    assert world.store.get_record(RecordKind.STATS, "cursor") is not None
    rolled = collect(world.store, None, 3, None, world.clock())
    assert rolled.from_tallies
    _agree(rolled, _exact(world, 3))
    # ...and once the roller has caught up, from the tallies alone.
    world.clock.advance(timedelta(hours=2))
    world.roller.roll()
    cursor = world.store.get_record(RecordKind.STATS, "cursor")
    assert len(list(rollup.pending_slices(cursor, world.clock() - rollup.SLICE - rollup.GRACE))) < rollup.ROLL_SLICES
    _agree(collect(world.store, None, 3, None, world.clock()), _exact(world, 3))
    # Per user too (unfinished jobs are not counted per user: none are left here).
    for user in USERS:
        mine = collect(world.store, user, 3, None, world.clock())
        exact = compute_stats([j for j in world.store.get_many(world.ids) if j.owner.user_id == user], mine.window, world.clock())
        _agree(mine, exact)
    # Per preset (everyone's jobs of it).
    for preset in ("nlp", "vision"):
        theirs = collect(world.store, None, 3, preset, world.clock())
        assert theirs.from_tallies
        _agree(theirs, compute_stats([j for j in world.store.get_many(world.ids) if j.preset == preset], theirs.window, world.clock()), owners=False)


def test_unfinished_jobs_are_the_created_less_the_finished() -> None:
    world = World(3)
    world.roller.roll()
    for _ in range(200):
        world.step()
    world.clock.advance(timedelta(hours=2))
    world.roller.roll()
    rolled = collect(world.store, None, 2, None, world.clock())
    jobs = world.store.get_many(world.ids)
    unfinished = sum(1 for j in jobs if j.status not in TERMINAL)
    retried_not_ended = sum(1 for j in jobs if j.status not in TERMINAL and tally.previous_end(j) is not None)
    # A job retried by hand and not finished again keeps its counted end until it finishes.
    assert rolled.unfinished == unfinished - retried_not_ended
    assert rolled.total == len(jobs)
    # Per owner too (the Owner index counts their jobs created).
    for user in USERS:
        owner = Owner(team_id="T1", user_id=user)
        theirs = [j for j in jobs if j.owner == owner]
        mine = collect(world.store, owner, 2, None, world.clock())
        left = sum(1 for j in theirs if j.status not in TERMINAL and tally.previous_end(j) is None)
        assert (mine.unfinished or 0, mine.total) == (left, len(theirs))
        assert "not another user's" not in mine.coverage()
    # A user named by id alone: their unfinished jobs are not known, and the answer says so.
    assert "not another user's" in collect(world.store, USERS[0], 2, None, world.clock()).coverage()
    assert "not counted per preset" in collect(world.store, None, 2, "nlp", world.clock()).coverage()


def test_a_repeated_roll_adds_nothing() -> None:
    world = World(5)
    world.roller.roll()
    for _ in range(150):
        world.step()
    world.clock.advance(timedelta(hours=1))
    world.roller.roll()
    before = {key: dict(v) for key, v in world.store._records.items() if key[0] == RecordKind.STATS}
    cursor = world.store.get_record(RecordKind.STATS, "cursor")
    # Another roller that read the cursor before the first moved it rolls the same slices again.
    name = rollup.next_slice(cursor["Since"] + ":0")
    replay = rollup.StatsRoller(world.store, world.clock)
    replay.roll_slices([name], since=cursor["Since"])
    after = {key: dict(v) for key, v in world.store._records.items() if key[0] == RecordKind.STATS}
    assert after == before


def test_percentiles_from_buckets_are_within_their_width() -> None:
    rng = random.Random(1)
    values = [rng.lognormvariate(6, 2) for _ in range(5000)]
    hist: dict[int, int] = {}
    for v in values:
        hist[tally.bucket(v)] = hist.get(tally.bucket(v), 0) + 1
    from backend.services.stats import percentile

    for q in (50, 90, 99):
        exact = percentile(values, q)
        assert exact is not None
        assert math.isclose(tally.percentile(hist, q), exact, rel_tol=0.026)


def test_a_job_stopped_three_times_counts_once_whichever_ends_were_rolled_up() -> None:
    """Ends E1 (rolled up), E2 (retried before its slice was rolled: never counted) and E3: the
    third end replaces the first, not the never-counted second."""
    world = World(0)
    world.roller.roll()
    world.submit()
    [job_id] = world.ids
    owner = Actor(team_id="T1", user_id=world.store.get(job_id).owner.user_id)
    world.jobs.stop(job_id, owner)  # E1: Stopped before launch
    world.clock.advance(ROLLED)
    world.roller.roll()
    world.jobs.retry(job_id, owner)
    world.jobs.stop(job_id, owner)  # E2
    world.clock.advance(timedelta(minutes=1))
    world.jobs.retry(job_id, owner)  # before E2's slice is rolled up
    world.clock.advance(ROLLED)
    world.roller.roll()
    world.jobs.stop(job_id, owner)  # E3
    world.clock.advance(ROLLED)
    world.roller.roll()
    day = format_utc(world.store.get(job_id).created_at)[:10]
    stored = world.store.get_record(RecordKind.STATS, f"all#{day}")
    assert {k: v for k, v in stored["Tally"].items() if k.startswith("s|")} == {"s|Stopped": 1}


def test_a_roll_killed_after_any_write_leaves_the_answer_right() -> None:
    """A roll killed after its n-th write, for every n: the slice lists written, some tallies
    holding the batch and some not, the cursor not moved. The answer then must count each
    finished job once (read one by one only where its day's tally lacks the slice)."""
    import copy

    world = World(2)
    world.roller.roll()
    for _ in range(60):
        world.step()
    world.finish_everything()
    world.clock.advance(ROLLED)
    exact = _exact(world, 3)
    before = copy.deepcopy(world.store._records)
    written_at_most = 0
    for after in range(200):
        world.store._records = copy.deepcopy(before)
        try:
            rollup.StatsRoller(CrashingStore(world.store, after), world.clock).roll()  # type: ignore[arg-type]
        except Crash:
            written_at_most = after
        else:
            break  # the whole roll fit in ``after`` writes: every kill point was tried
        _agree(collect(world.store, None, 3, None, world.clock()), exact)
    assert written_at_most >= 5  # the kills landed among slice lists and tallies alike


def test_no_tally_grows_with_the_number_of_owners() -> None:
    """2,000 owners' jobs ending in one slice: everyone's billed hours by owner go to spend
    shards (a preset's keep none), each record far below DynamoDB's 400 KB item limit (everyone's
    one tally held 115 KB here, and 517 KB in bench/scale.py at 12,000 jobs a day),
    and the answer still names every owner's hours."""
    import json

    from tests.stats_history import job_with

    clock = Clock(now=T0)
    store = MemoryJobStore()
    roller = rollup.StatsRoller(store, clock)
    roller.roll()
    jobs = []
    for n in range(2000):
        created = clock() + timedelta(minutes=1)
        attempt = {"claimed": created, "launched": created, "started": created, "ended": created + timedelta(minutes=20),
                   "billable": 1200, "outcome": AttemptOutcome.COMPLETED}
        jobs.append(job_with(f"j{n}", created, S.COMPLETED, [attempt], instance=TYPES[n % 2], user=f"U{n:05d}", preset="nlp", job_id=f"j{n:05d}"))
    for job in jobs:
        store._store(job)
    clock.advance(timedelta(hours=2))
    roller.roll()
    sizes = {key: len(json.dumps(record)) for (kind, key), record in store._records.items() if kind == RecordKind.STATS and not key.startswith("ends#")}
    assert max(sizes.values()) < 16 * 1024, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]
    assert sum(1 for key in sizes if key.startswith("all$")) == rollup.SPEND_SHARDS
    window_now = clock()
    for preset in (None, "nlp"):
        rolled = collect(store, None, 1, preset, window_now)
        assert rolled.from_tallies and rolled.counted_until is None
        _agree(rolled, compute_stats(jobs, rolled.window, window_now), owners=preset is None)
        assert len(rolled.spend.by_user) == (2000 if preset is None else 0)


def test_a_stored_tally_packs_its_histograms_and_reads_back_the_same() -> None:
    """A tally is stored with each histogram as one string (a roll rewrites it whole, and
    DynamoDB charges by size): it reads back entry for entry, and takes far less room."""
    import json

    world = World(3)
    for _ in range(120):
        world.step()
    world.finish_everything()
    merged: dict[str, float] = {}
    for job in world.store.get_many(world.ids):
        if job.status in TERMINAL:
            tally.add(merged, tally.contribution(job))
    assert any(k.startswith("t|") for k in merged) and any(k.startswith("r|") for k in merged)
    packed = tally.pack(merged)
    assert tally.unpack(json.loads(json.dumps(packed))) == pytest.approx(merged)
    histograms = {k: v for k, v in merged.items() if k.startswith(("w|", "r|", "t|"))}
    assert len(json.dumps(tally.pack(histograms))) < 0.7 * len(json.dumps({"Tally": histograms}))
    assert tally.unpack({"Tally": {"s|Completed": 2}}) == {"s|Completed": 2}  # a record written before packing

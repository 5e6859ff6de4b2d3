"""One small world for the services' unit tests: the in-memory store, a fake training backend,
a recording notifier and a clock the test moves. No I/O, no sleeping."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from backend.domain.model import Job
from backend.domain.policy import RetryPolicy
from backend.services.jobs import Actor, JobService
from backend.services.launcher import Launcher
from backend.services.monitor import Monitor
from backend.services.notify import Dispatcher
from backend.services.pacing import TokenBucket
from tests.conftest import T0, make_job
from tests.fakes.memory_store import MemoryJobStore
from tests.fakes.notifier import RecordingNotifier
from tests.fakes.training import FakeTrainingBackend

ADMIN = "UADMIN"
OWNER = Actor(team_id="T1", user_id="U1")
COLLEAGUE = Actor(team_id="T1", user_id="U2")
POLICY = RetryPolicy(base_seconds=60, max_seconds=600, capacity_max_wait_seconds=3600)


@dataclass
class Clock:
    now: datetime = T0
    monotonic_seconds: float = 0.0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        self.monotonic_seconds += delta.total_seconds()
        return self.now

    def monotonic(self) -> float:
        return self.monotonic_seconds

    def sleep(self, seconds: float) -> None:
        self.monotonic_seconds += seconds


@dataclass
class World:
    clock: Clock = field(default_factory=Clock)
    store: MemoryJobStore = field(default_factory=MemoryJobStore)
    backend: FakeTrainingBackend = field(default_factory=FakeTrainingBackend)
    notifier: RecordingNotifier = field(default_factory=RecordingNotifier)
    instance_limits: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.backend.clock is None:
            self.backend.clock = self.clock  # SageMaker's creation times on the test's clock
        self.store.set_notify_targets([self.notifier.name])
        self.dispatcher = Dispatcher(self.store, [self.notifier], self.clock)
        self.jobs = JobService(
            self.store, self.backend, self.dispatcher, clock=self.clock, is_admin=lambda user: user == ADMIN
        )
        self.rng = random.Random(7)

    def pacer(self) -> TokenBucket:
        return TokenBucket(rate=1000, burst=1000, monotonic=self.clock.monotonic, sleep=self.clock.sleep)

    def launcher(self) -> Launcher:
        return Launcher(
            self.store,
            self.backend,
            self.dispatcher,
            policy=POLICY,
            instance_limits=self.instance_limits,
            pacer=self.pacer(),
            clock=self.clock,
            rng=self.rng,
        )

    def monitor(self) -> Monitor:
        return Monitor(self.store, self.backend, self.dispatcher, policy=POLICY, pacer=self.pacer(), clock=self.clock, rng=self.rng)

    def submit(self, name: str = "bert", **kwargs) -> Job:
        """Register a New job (as the job service does) created at the clock's now."""
        job = self.store.register(make_job(name, now=self.clock(), **kwargs)).job
        self.dispatcher.deliver(job)
        return job

    def launched(self, name: str = "bert", **kwargs) -> Job:
        """A job the launcher has launched (attempt 1 running)."""
        job = self.submit(name, **kwargs)
        self.launcher().run_tick()
        return self.store.get(job.job_id)


@pytest.fixture
def world() -> World:
    return World()

"""Stall checks are bounded per sweep (STALL_CHECKS_PER_SWEEP) yet reach every running job:
each sweep's checks start after the job the previous sweep's checks stopped at."""

from __future__ import annotations

from datetime import datetime, timedelta

from backend.domain.model import Job, LogTail
from backend.ports import TrainingState, TrainingStatus
from backend.services.forensics import Forensics
from backend.services.monitor import Monitor
from tests.unit.services.conftest import POLICY, World


class _Logs:
    """Jobs in ``loud`` wrote a line just now (``now``); the others last wrote at ``last``."""

    def __init__(self, now: datetime, last: datetime, loud: set[str]) -> None:
        self.now, self.last, self.loud = now, last, loud

    def tail(self, training_job_name: str) -> LogTail:
        raise AssertionError("no tail is read for a running job")

    def last_line_at(self, training_job_name: str) -> datetime | None:
        return self.now if training_job_name in self.loud else self.last


class _Stalls:
    def __init__(self) -> None:
        self.warned: list[str] = []

    def stalled(self, job: Job, last_line_at: datetime, silent_seconds: float) -> None:
        self.warned.append(job.job_id)


def test_sixty_running_jobs_are_all_checked_within_three_sweeps_of_25_checks(world: World):
    """The 25 jobs a sweep reaches first keep logging (a check writes nothing for them); the 35
    silent ones behind them are still warned, each once, within three sweeps."""
    jobs = [world.submit(f"job{i:02d}", stall_alert_seconds=600) for i in range(60)]
    while len(world.backend.created) < len(jobs):
        world.launcher().run_tick()
    for job in jobs:
        name = f"{job.job_id}-a1"
        world.backend.jobs[name] = TrainingStatus(name=name, state=TrainingState.RUNNING, started_at=world.clock())
        world.monitor().observe(job.job_id, 1, world.backend.jobs[name])
    assert all(world.store.get(job.job_id).status.value == "InProgress" for job in jobs)
    world.clock.advance(timedelta(hours=1))
    in_sweep_order = [job.job_id for job in world.store.active_jobs()]
    loud = set(in_sweep_order[:25])
    stalls = _Stalls()
    logs = _Logs(world.clock(), world.clock() - timedelta(minutes=30), {f"{job_id}-a1" for job_id in loud})
    forensics = Forensics(world.store, logs, clock=world.clock, stall_notifier=stalls, stall_checks_per_sweep=25)
    monitor = Monitor(world.store, world.backend, world.dispatcher, policy=POLICY, pacer=world.pacer(), clock=world.clock, forensics=forensics)
    for sweep in range(1, 4):
        monitor.sweep()
        assert forensics.stall_checks <= 25 * sweep
    assert sorted(stalls.warned) == sorted(set(in_sweep_order) - loud)  # each silent job once

"""Issue 23: at 10,000 active jobs the monitor's sweep reads only the jobs it has time to
describe (the Active index's keys give the order; the items are read by id, a page at a time)."""

from __future__ import annotations

from datetime import timedelta

from backend.domain.status import JobStatus
from backend.services.monitor import SWEEP_PAGE
from backend.services.reaper import MARGIN as REAP_MARGIN
from tests.unit.services.conftest import World


def _running(world: World, count: int) -> None:
    for i in range(count):
        world.submit(f"j{i}", user=f"U{i % 7}")
    while world.launcher().run_tick().launched:
        pass
    world.monitor().sweep()  # all in progress now
    # Past the reaper's margin: its cursor passes them (the reaper reads a job's item only
    # while its training job is new; tests/unit/services/test_monitor_reaper.py).
    world.clock.advance(REAP_MARGIN + timedelta(seconds=1))
    world.monitor().sweep()


def _count_reads(world: World) -> list[int]:
    """Jobs the store hands the monitor, whole."""
    read: list[int] = []
    for name in ("get_many", "active_jobs"):
        inner = getattr(world.store, name)

        def counted(*args, _inner=inner, **kwargs):
            jobs = _inner(*args, **kwargs)
            read.append(len(jobs))
            return jobs

        setattr(world.store, name, counted)
    return read


def test_a_sweep_reads_whole_only_the_active_jobs_it_has_time_to_describe(world: World):
    _running(world, 3 * SWEEP_PAGE)
    read = _count_reads(world)
    left = iter(range(30))
    report = world.monitor().sweep(describe_while=lambda: next(left, None) is not None)
    assert report.stopped_early and report.observed == 30
    assert sum(read) == SWEEP_PAGE  # one page by id, not every active job


def test_a_sweep_skips_a_job_that_ended_after_the_index_was_read(world: World):
    _running(world, 3)
    places = world.store.active_places()
    ended = world.store.get(places[1][1])
    world.store.transition(ended, JobStatus.STOPPING, at=world.clock(), reason="stop")
    world.store.transition(world.store.get(ended.job_id), JobStatus.STOPPED, at=world.clock(), reason="stopped")
    world.store.active_places = lambda: places  # type: ignore[method-assign] (the index lags)
    described: list[str] = []
    describe = world.backend.describe
    world.backend.describe = lambda name: described.append(name) or describe(name)  # type: ignore[method-assign]
    world.clock.advance(timedelta(minutes=1))
    world.monitor().sweep()
    assert ended.current_attempt.name not in described and len(described) == 2

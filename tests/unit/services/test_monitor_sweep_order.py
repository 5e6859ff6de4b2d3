"""The order in which the monitor's sweeps describe active jobs: with more active jobs than one
sweep has time for, each sweep starts after the job the previous one stopped at (its cursor
record), so successive sweeps walk every job; a sweep that describes them all starts the next
one at the head again, and costs no cursor write."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from backend.domain.times import format_utc
from backend.errors import StoreUnavailable
from backend.services.monitor import SWEEP_CURSOR
from tests.unit.services.conftest import World


def _running_jobs(world: World, count: int) -> list[str]:
    """``count`` jobs in progress, nothing new to say about them: their attempt names in the
    order the sweep walks them from the head."""
    for i in range(count):
        world.launched(f"j{i}", user=f"U{i}")
        world.clock.advance(timedelta(seconds=1))
    world.monitor().sweep()  # all in progress now; seen running again changes nothing
    return [job.current_attempt.name for job in world.store.active_jobs()]


def _record_describes(world: World) -> list[str]:
    described: list[str] = []
    describe = world.backend.describe

    def recording(name: str):
        described.append(name)
        return describe(name)

    world.backend.describe = recording  # type: ignore[method-assign]
    return described


def _time_for(describes: int) -> Callable[[], bool]:
    """A sweep's ``describe_while``: time for that many describes, then none."""
    left = iter(range(describes))
    return lambda: next(left, None) is not None


def test_successive_short_sweeps_walk_every_active_job_in_turn(world: World):
    a, b, c = _running_jobs(world, 3)
    described = _record_describes(world)
    reports = [world.monitor().sweep(describe_while=_time_for(2)) for _ in range(3)]
    assert described == [a, b, c, a, b, c]
    assert all(report.stopped_early for report in reports)


def test_a_sweep_with_time_for_every_job_describes_them_all_then_the_next_starts_at_the_head(world: World):
    a, b, c = _running_jobs(world, 3)
    described = _record_describes(world)
    world.monitor().sweep(describe_while=_time_for(2))
    assert described == [a, b]
    report = world.monitor().sweep()
    assert described[2:] == [c, a, b] and not report.stopped_early  # the one it stopped at is not skipped
    world.monitor().sweep(describe_while=_time_for(1))
    assert described[5:] == [a]


def test_a_sweep_that_walks_every_job_costs_no_cursor_write(world: World):
    _running_jobs(world, 2)
    world.monitor().sweep()
    assert "After" not in (world.store.get_record(*SWEEP_CURSOR) or {}).get("Position", {})  # the reaper's entry aside


def test_a_short_sweep_records_where_it_stopped(world: World):
    _running_jobs(world, 3)
    world.monitor().sweep(describe_while=_time_for(2))
    second = world.store.active_jobs()[1]
    after = f"{format_utc(second.active_since)}#{second.job_id}"  # its place in the Active index
    assert world.store.get_record(*SWEEP_CURSOR)["Position"]["After"] == after


def test_a_sweep_that_cannot_read_its_cursor_starts_at_the_head_and_leaves_the_cursor_be(world: World):
    a, b, c = _running_jobs(world, 3)
    world.monitor().sweep(describe_while=_time_for(1))
    readable = world.store.get_record
    kept = readable(*SWEEP_CURSOR)

    def unreadable(kind, key):
        raise StoreUnavailable("throttled")

    world.store.get_record = unreadable  # type: ignore[method-assign]
    described = _record_describes(world)
    world.monitor().sweep()
    assert described == [a, b, c]
    assert readable(*SWEEP_CURSOR) == kept

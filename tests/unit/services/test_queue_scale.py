"""Issue 23: `/train queue` and `/train status` answer a 10,000-job queue from the Queue index's
small entries (backend.domain.queue_order), reading whole only the jobs they show, with the same
places and fair-share counts as the full listing."""

from __future__ import annotations

from datetime import timedelta

from backend.domain.model import Lease
from backend.domain.status import JobStatus
from backend.services.queue import QUEUE_PAGE
from tests.unit.services.conftest import World
from tests.unit.services.test_queue import view


def _whole_reads(world: World) -> list[int]:
    """Jobs the store hands over whole, per listing call."""
    read: list[int] = []
    for name in ("ready_jobs", "retrying_due", "expired_claims", "parked_jobs", "held_jobs", "get_many"):
        inner = getattr(world.store, name)

        def counted(*args, _inner=inner, **kwargs):
            found = _inner(*args, **kwargs)
            read.append(len(found))
            return found

        setattr(world.store, name, counted)
    return read


def _queue(world: World) -> None:
    for i in range(120):
        world.submit(f"sweep-{i}", user="U2")
    world.clock.advance(timedelta(seconds=1))
    for i in range(30):
        world.submit(f"mine-{i}", user="U1", priority=7 if i % 10 == 0 else 5)
    retrying = world.submit("retrying", user="U3")
    world.store.transition(retrying, JobStatus.RETRYING, at=world.clock(), next_attempt_at=world.clock() + timedelta(minutes=5))
    claimed = world.submit("claimed", user="U3")
    world.store.update(claimed, at=world.clock(), lease=Lease(token="l", expires_at=world.clock() + timedelta(minutes=5)))


def test_the_first_page_of_the_queue_reads_whole_only_the_jobs_it_shows(world: World):
    _queue(world)
    full = view(world).reasons()
    read = _whole_reads(world)
    page = view(world).page()
    assert sum(read) == QUEUE_PAGE  # the shown jobs, by id; the ranking came from index entries
    assert page.total == len(full) == 152
    assert page.reasons == full[:QUEUE_PAGE]  # the same places and counts as reading every job


def test_a_later_page_and_a_jobs_status_agree_with_the_full_listing(world: World):
    _queue(world)
    full = view(world).reasons()
    assert view(world).page(page=4).reasons == full[3 * QUEUE_PAGE : 4 * QUEUE_PAGE]
    read = _whole_reads(world)
    middle = world.store.get(full[77].job_id)
    assert view(world).reason(middle.job_id, middle) == full[77]
    assert sum(read) == 0  # the caller's own read of the job is enough


def test_a_job_that_is_not_in_the_launch_queue_costs_its_status_no_queue_read(world: World):
    job = world.launched("running")
    world.store.queued_jobs = None  # type: ignore[assignment] (any read of the queue would fail)
    assert view(world).reason(job.job_id, job) is None

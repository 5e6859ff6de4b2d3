"""How much one launcher tick does: at most its batch of launches (the rest wait for the next
tick), every active job's instances counted against its type's limit, and one job's failing
write counted in the report without stopping the others."""

from __future__ import annotations

from backend.domain.status import JobStatus
from backend.errors import StoreUnavailable
from backend.services.launcher import Launcher
from tests.conftest import job_args
from tests.unit.services.conftest import POLICY, World

S = JobStatus
BIG = "ml.p4d.24xlarge"


def _args(instance_type: str = "ml.g5.xlarge", count: int = 1):
    return job_args(ResourceConfig={"InstanceType": instance_type, "InstanceCount": count, "VolumeSizeInGB": 50})


def _launcher(world: World, batch: int) -> Launcher:
    return Launcher(
        world.store, world.backend, world.dispatcher, policy=POLICY, instance_limits=world.instance_limits,
        pacer=world.pacer(), clock=world.clock, rng=world.rng, batch=batch,
    )


def test_a_tick_launches_at_most_its_batch_and_the_rest_go_next_tick(world: World):
    jobs = [world.submit(f"j{i}", user=f"U{i}") for i in range(3)]
    report = _launcher(world, batch=2).run_tick()
    assert report.launched == 2 and report.stopped_early
    assert [world.store.get(job.job_id).status for job in jobs].count(S.LAUNCHED) == 2
    report = _launcher(world, batch=2).run_tick()
    assert report.launched == 1 and not report.stopped_early
    assert all(world.store.get(job.job_id).status is S.LAUNCHED for job in jobs)


def test_every_active_job_of_a_type_counts_against_its_limit(world: World):
    world.instance_limits[BIG] = 2
    world.launched("first", job_args=_args(BIG))
    world.launched("second", job_args=_args(BIG), user="U2")
    third = world.submit("third", job_args=_args(BIG), user="U3")
    report = world.launcher().run_tick()
    assert report.launched == 0 and report.at_limit == 1
    assert world.store.get(third.job_id).status is S.NEW


def test_a_tick_counts_each_job_whose_write_failed_and_goes_on_with_the_others(world: World):
    world.instance_limits[BIG] = 0
    refused = world.submit("refused")
    fine = world.submit("fine", user="U2")
    full = world.submit("full", job_args=_args(BIG), user="U3")  # to be parked: its type has no room
    update = world.store.update

    def refusing(job, **kwargs):
        if job.job_id in {refused.job_id, full.job_id}:
            raise StoreUnavailable("the item was refused")
        return update(job, **kwargs)

    world.store.update = refusing  # type: ignore[method-assign]
    report = world.launcher().run_tick()
    assert report.errors == 2 and report.launched == 1 and report.parked == 0
    assert world.store.get(fine.job_id).status is S.LAUNCHED
    assert world.store.get(refused.job_id).status is S.NEW and world.store.get(full.job_id).parked_at is None

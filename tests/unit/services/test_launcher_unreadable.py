"""Items this version cannot decode (a status or field type written by a newer version, or
before a rollback) cost only themselves: the launcher's tick goes on with the other jobs."""

from __future__ import annotations

from backend.domain.records import RecordKind
from backend.domain.status import JobStatus
from backend.services.launcher import HOLDS_KEY
from tests.unit.services.conftest import World

S = JobStatus


def test_unreadable_items_in_the_queue_and_among_the_active_jobs_are_skipped_and_counted(world: World):
    for partition in ("ready", "waiting", "claimed", "active"):
        world.store.plant_unreadable(f"newer-{partition}", partition)
    job = world.submit()
    report = world.launcher().run_tick()
    assert report.launched == 1 and world.store.get(job.job_id).status is S.LAUNCHED
    # The queue's three partitions; the active jobs are counted from the index's projection,
    # never decoded by the launcher (the monitor's sweep skips and counts them).
    assert world.store.unreadable_items >= 3


def test_a_kicked_run_asked_for_an_unreadable_job_does_not_look_again_for_it(world: World):
    world.store.plant_unreadable("newer-1", "ready")
    assert world.launcher().may_be_unseen("newer-1") is False


def test_an_instance_type_hold_this_version_cannot_read_is_dropped_and_the_tick_goes_on(world: World):
    world.store.put_record(RecordKind.HOLDS, HOLDS_KEY, {"Holds": {"ml.g5.xlarge": {"UntilEpoch": 1}, "ml.p5.48xlarge": "x"}})
    job = world.submit()
    assert world.launcher().run_tick().launched == 1
    assert world.store.get(job.job_id).status is S.LAUNCHED
    assert world.store.get_record(RecordKind.HOLDS, HOLDS_KEY) == {"Holds": {}}

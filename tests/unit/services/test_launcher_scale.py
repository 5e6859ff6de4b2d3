"""Issue 23 ("Past one team"): a refusal that leaves its type room backs off that job only, and
parked jobs are written again only when why they wait changes in kind (see bench/scale.py)."""

from __future__ import annotations

from datetime import timedelta

from backend.domain.model import FailureClass
from backend.domain.policy import classify_create_error
from backend.domain.records import RecordKind
from backend.domain.status import JobStatus
from backend.errors import CreateRefused
from backend.services.launcher import HOLDS_KEY
from tests.conftest import job_args
from tests.unit.services.conftest import POLICY, World

S = JobStatus
F = FailureClass
BIG = "ml.p4d.24xlarge"
ROOM = (
    "The account-level service limit 'ml.p4d.24xlarge for training job usage' is 200 Instances, "
    "with current utilization of 12 Instances and a request delta of 1 Instances."
)
FULL = (
    "The account-level service limit 'ml.p4d.24xlarge for training job usage' is 200 Instances, "
    "with current utilization of 200 Instances and a request delta of 1 Instances."
)


def _big():
    return job_args(ResourceConfig={"InstanceType": BIG, "InstanceCount": 1, "VolumeSizeInGB": 50})


def _refuse(world: World, message: str) -> None:
    world.backend.refusals.append(CreateRefused(classify_create_error("ResourceLimitExceeded", message, instance_type=BIG)))


def test_a_quota_message_says_whether_the_quota_had_room_for_the_request():
    assert classify_create_error("ResourceLimitExceeded", ROOM).quota_has_room
    assert not classify_create_error("ResourceLimitExceeded", FULL).quota_has_room
    assert not classify_create_error("ResourceLimitExceeded", "quota in use").quota_has_room


def test_a_refusal_while_the_quota_has_room_backs_off_that_job_and_the_rest_of_its_type_launches(world: World):
    first = world.submit("first", job_args=_big())
    others = [world.submit(f"other-{i}", job_args=_big(), user=f"U{i}") for i in range(3)]
    _refuse(world, ROOM)
    report = world.launcher().run_tick()

    assert world.store.get(first.job_id).status is S.RETRYING
    assert report.launched == 3 and report.held == 0 and report.parked == 0
    assert all(world.store.get(o.job_id).status is S.LAUNCHED for o in others)
    assert BIG not in (world.store.get_record(RecordKind.HOLDS, HOLDS_KEY) or {}).get("Holds", {})


def test_a_capacity_refusal_at_create_does_not_hold_the_type(world: World):
    world.submit("first", job_args=_big())
    other = world.submit("other", job_args=_big(), user="U2")
    world.backend.refuse_next(F.CAPACITY, "InsufficientCapacityError: none left")
    report = world.launcher().run_tick()
    assert report.held == 0 and world.store.get(other.job_id).status is S.LAUNCHED


def test_a_hold_that_only_moves_does_not_rewrite_the_jobs_parked_behind_it(world: World):
    jobs = [world.submit(f"big-{i}", job_args=_big(), user=f"U{i}") for i in range(5)]
    _refuse(world, FULL)
    world.launcher().run_tick()
    parked = {j.job_id: world.store.get(j.job_id) for j in jobs if world.store.get(j.job_id).parked_at is not None}
    assert len(parked) == 4

    # The hold ends; the next create is refused again with the quota full: a new hold, a new end.
    world.clock.advance(timedelta(seconds=POLICY.max_seconds + 1))
    _refuse(world, FULL)
    world.launcher().run_tick()
    still = [world.store.get(i) for i in parked if world.store.get(i).parked_at is not None]
    assert still, "some jobs stay parked behind the new hold"
    # The same kind of reason (held after a refusal): no write, no card refresh, per job.
    assert all(job.version == parked[job.job_id].version for job in still)


def test_a_tick_counts_instances_in_use_without_reading_the_active_jobs(world: World):
    world.instance_limits[BIG] = 2
    for i in range(2):
        world.launched(f"running-{i}", job_args=_big(), user=f"U{i}")

    def whole_items(limit=None):
        raise AssertionError("the launcher read every active item")

    world.store.active_jobs = whole_items  # type: ignore[method-assign]
    waiting = world.submit("waiting", job_args=_big(), user="U9")
    report = world.launcher().run_tick()
    assert report.at_limit == 1 and world.store.get(waiting.job_id).status is S.NEW

"""The launcher's rules on the in-memory store: retry classes at create time, launch order
with fair share, instance-type holds and limits, and the race with a user's stop."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backend.domain.model import AttemptOutcome, FailureClass
from backend.domain.records import RecordKind
from backend.domain.status import JobStatus
from backend.domain.terms import LAUNCH_LEASE
from backend.ports import TrainingState
from backend.services.jobs import LaunchInFlight
from backend.services.launcher import HOLDS_KEY
from tests.conftest import job_args, make_job
from tests.unit.services.conftest import OWNER, POLICY, World

S = JobStatus
F = FailureClass
BIG = "ml.p4d.24xlarge"


def _args(instance_type: str = "ml.g5.xlarge", count: int = 1):
    return job_args(ResourceConfig={"InstanceType": instance_type, "InstanceCount": count, "VolumeSizeInGB": 50})


def test_a_due_job_is_created_under_its_attempt_name_and_launched(world: World):
    job = world.submit()
    report = world.launcher().run_tick()
    stored = world.store.get(job.job_id)
    assert report.launched == 1 and world.backend.created == [f"{job.job_id}-a1"]
    assert stored.status is S.LAUNCHED and stored.lease is None
    assert stored.current_attempt.outcome is AttemptOutcome.RUNNING
    # Nothing urgent yet: "New" and "Launched" wait for the next round (backend.domain.notice).
    assert world.notifier.statuses(job.job_id) == []
    assert world.store.outbox_job_ids() == [job.job_id]


def test_a_quota_refusal_retries_for_free_after_a_backoff_and_holds_the_type(world: World):
    first = world.submit("first", job_args=_args(BIG))
    second = world.submit("second", job_args=_args(BIG), user="U2")
    world.backend.refuse_next(F.QUOTA, "ResourceLimitExceeded: quota in use")
    report = world.launcher().run_tick()

    stored = world.store.get(first.job_id)
    assert stored.status is S.RETRYING
    assert world.clock() < stored.next_attempt_at <= world.clock() + timedelta(seconds=POLICY.base_seconds)
    assert stored.algorithm_failures == 0 and stored.capacity_wait_since == world.clock()
    assert stored.current_attempt.outcome is AttemptOutcome.NOT_STARTED
    # No hammering: the other job of the held type waits; the hold is stored for the next tick.
    assert report.held == 1 and world.backend.created == []
    assert world.store.get(second.job_id).status is S.NEW
    assert BIG in world.store.get_record(RecordKind.HOLDS, HOLDS_KEY)["Holds"]

    world.clock.advance(timedelta(seconds=POLICY.base_seconds + 1))
    report = world.launcher().run_tick()
    assert report.launched == 2
    assert world.store.get(first.job_id).current_attempt.name == f"{first.job_id}-a2"


def test_capacity_retries_stop_when_the_capacity_wait_runs_out(world: World):
    job = world.submit()
    for _ in range(10):
        world.backend.refuse_next(F.CAPACITY, "InsufficientCapacityError: none left")
        world.launcher().run_tick()
        if world.store.get(job.job_id).status is S.FAILED:
            break
        world.clock.advance(timedelta(seconds=POLICY.max_seconds + 1))
    stored = world.store.get(job.job_id)
    assert stored.status is S.FAILED
    assert "capacity" in stored.history[-1].reason
    waited = (stored.history[-1].at - stored.capacity_wait_since).total_seconds()
    assert waited >= POLICY.capacity_max_wait_seconds
    assert stored.algorithm_failures == 0


def test_throttling_keeps_the_job_due_with_its_pending_attempt_and_spends_nothing(world: World):
    job = world.submit()
    world.backend.refuse_next(F.THROTTLING, "ThrottlingException: slow down")
    report = world.launcher().run_tick()

    stored = world.store.get(job.job_id)
    assert report.kept_due == 1 and stored.status is S.NEW and stored.lease is None
    assert [a.outcome for a in stored.attempts] == [AttemptOutcome.PENDING]
    assert [j.job_id for j in world.store.due_for_launch(world.clock(), 10)] == [job.job_id]

    world.launcher().run_tick()  # the same name is tried again, not a second attempt
    assert world.backend.created == [f"{job.job_id}-a1"]
    assert world.store.get(job.job_id).status is S.LAUNCHED


def test_a_user_error_at_create_fails_the_job_at_once(world: World):
    job = world.submit()
    world.backend.refuse_next(F.USER, "ValidationException: bad role")
    report = world.launcher().run_tick()
    stored = world.store.get(job.job_id)
    assert report.failed == 1 and stored.status is S.FAILED
    assert stored.history[-1].reason == "ValidationException: bad role"
    assert world.notifier.statuses(job.job_id) == [S.NEW, S.FAILED]


def test_a_colleagues_single_job_launches_among_the_first_of_a_big_sweep(world: World):
    world.instance_limits["ml.g5.xlarge"] = 3
    sweep = [make_job(f"s-{i}", user="UBIG", now=world.clock(), client_token=f"s/{i}") for i in range(20)]
    world.store.register_many(sweep, "big")
    world.clock.advance(timedelta(seconds=30))
    colleague = world.submit("single", user="USMALL")
    report = world.launcher().run_tick()
    launched = [name.rsplit("-a", 1)[0] for name in world.backend.created]
    assert report.launched == 3 and report.at_limit > 0
    assert colleague.job_id in launched[:2]


def test_higher_priority_launches_first(world: World):
    world.instance_limits["ml.g5.xlarge"] = 1
    world.submit("low", priority=1)
    urgent = world.submit("urgent", priority=9, user="U2")
    world.launcher().run_tick()
    assert world.backend.created == [f"{urgent.job_id}-a1"]


def test_an_instance_limit_holds_jobs_until_a_running_one_ends(world: World):
    world.instance_limits[BIG] = 2
    first = world.submit("first", job_args=_args(BIG, count=2))
    second = world.submit("second", job_args=_args(BIG, count=1), user="U2")
    other = world.submit("other", user="U3")  # another type is not limited
    report = world.launcher().run_tick()
    assert report.launched == 2 and report.at_limit == 1
    assert world.store.get(second.job_id).status is S.NEW
    assert world.store.get(other.job_id).status is S.LAUNCHED

    world.backend.finish(f"{first.job_id}-a1", TrainingState.COMPLETED)
    world.monitor().sweep()
    assert world.launcher().run_tick().launched == 1
    assert world.store.get(second.job_id).status is S.LAUNCHED


def test_a_hold_ends_early_when_one_of_its_types_jobs_ends(world: World):
    running = world.launched("running", job_args=_args(BIG))
    refused = world.submit("refused", job_args=_args(BIG), user="U2")
    world.clock.advance(timedelta(seconds=1))
    fresh = world.submit("fresh", job_args=_args(BIG), user="U3")
    world.backend.refuse_next(F.QUOTA, "ResourceLimitExceeded: quota in use")
    report = world.launcher().run_tick()
    assert world.store.get(refused.job_id).status is S.RETRYING
    assert report.held == 1 and world.store.get(fresh.job_id).status is S.NEW
    created = list(world.backend.created)
    second = world.launcher().run_tick()  # still held on the next tick (parked aside, not launched)
    assert second.launched == 0 and world.store.get(fresh.job_id).status is S.NEW
    assert world.backend.created == created

    world.backend.finish(running.current_attempt.name, TrainingState.COMPLETED)
    world.monitor().sweep()
    # Quota freed: the hold lifts at once, though its backoff has not passed.
    assert world.clock() < world.store.get(refused.job_id).next_attempt_at
    assert world.launcher().run_tick().launched == 1
    assert world.store.get(fresh.job_id).status is S.LAUNCHED


def test_a_job_stopped_while_its_create_was_in_flight_has_its_training_job_stopped(world: World):
    job = world.submit()

    def user_stops(_name: str) -> None:
        world.backend.unavailable = True  # the service's own StopTrainingJob does not get through
        world.jobs.stop(job.job_id, OWNER)
        world.backend.unavailable = False

    world.backend.during_create = user_stops
    report = world.launcher().run_tick()
    name = f"{job.job_id}-a1"
    assert report.lost_races == 1 and report.launched == 0
    assert world.store.get(job.job_id).status is S.STOPPED
    assert name in world.backend.stops  # no orphan left running


def test_a_job_stopped_and_retried_while_its_create_was_in_flight_has_the_orphan_attempt_stopped(world: World):
    """The retry inside the create is refused (the run that claimed -a1 may still create it: a
    killed run would tell nobody, seed 9001); the launcher's lost race stops -a1, and once the
    claim has expired the retry starts a new attempt, stopping -a1 again first."""
    job = world.submit()
    name = f"{job.job_id}-a1"
    refusals: list[LaunchInFlight] = []

    def user_stops_then_retries(_name: str) -> None:
        # The user's stop ran before the create reached SageMaker: its StopTrainingJob found nothing.
        world.backend.unavailable = True
        world.jobs.stop(job.job_id, OWNER)
        world.backend.unavailable = False
        with pytest.raises(LaunchInFlight) as refused:
            world.jobs.retry(job.job_id, OWNER)
        refusals.append(refused.value)

    world.backend.during_create = user_stops_then_retries
    report = world.launcher().run_tick()
    assert report.lost_races == 1 and report.launched == 0
    assert world.store.get(job.job_id).status is S.STOPPED  # the refused retry changed nothing
    assert world.backend.stops == [name]  # -a1 is nobody's attempt: not left running
    assert "try again in 5 minutes" in str(refusals[0])

    world.clock.advance(LAUNCH_LEASE - timedelta(seconds=45))
    with pytest.raises(LaunchInFlight, match="try again in 45 seconds"):
        world.jobs.retry(job.job_id, OWNER)
    world.clock.advance(timedelta(seconds=45))
    assert world.jobs.retry(job.job_id, OWNER).status is S.RETRYING
    assert world.backend.stops == [name, name]

    world.launcher().run_tick()  # the retry is a new attempt; -a1 is never created or adopted again
    stored = world.store.get(job.job_id)
    assert world.backend.created == [name, f"{job.job_id}-a2"]
    assert stored.status is S.LAUNCHED and stored.current_attempt.name == f"{job.job_id}-a2"


def test_a_launch_that_loses_its_race_to_a_launcher_that_adopted_the_attempt_does_not_stop_it(world: World):
    job = world.submit()

    def another_launcher_adopts(_name: str) -> None:
        # This launcher's lease ran out mid-create; another one reconciled and adopted -a1.
        stored = world.store.get(job.job_id)
        attempt = stored.current_attempt.model_copy(update={"outcome": AttemptOutcome.RUNNING, "launched_at": world.clock()})
        world.store.transition(stored, S.LAUNCHED, at=world.clock(), reason="adopted", attempts=stored.replace_attempt(attempt), lease=None)

    world.backend.during_create = another_launcher_adopts
    report = world.launcher().run_tick()
    assert report.lost_races == 1
    assert world.backend.stops == [] and world.store.get(job.job_id).current_attempt.name == f"{job.job_id}-a1"


def test_two_launchers_never_create_one_attempt_twice(world: World):
    job = world.submit()
    first, second = world.launcher(), world.launcher()
    world.backend.during_create = lambda _name: second.run_tick()
    first.run_tick()
    assert world.backend.created == [f"{job.job_id}-a1"]
    assert world.store.get(job.job_id).status is S.LAUNCHED


def _stop_inside_the_create(world: World, job, then) -> None:
    """The owner's stop lands inside the launcher's create, its StopTrainingJob before the create
    (nothing to stop yet); ``then`` runs after it (what the create's record write meets)."""

    def user_stops(_name: str) -> None:
        world.backend.unavailable = True
        world.jobs.stop(job.job_id, OWNER)
        world.backend.unavailable = False
        then()

    world.backend.during_create = user_stops


def test_a_create_whose_record_could_not_be_written_is_stopped_at_once_when_the_job_moved_meanwhile(world: World, monkeypatch):
    """The owner's stop inside the create, and the launcher's record of the create
    answered with an error: it reads the job back, finds the attempt nobody's, and stops it in
    the same tick (found by the simulator, seed 8001: the retry was held for approval, and
    held means nothing runs)."""
    from backend.errors import StoreUnavailable

    job = world.submit()
    name = f"{job.job_id}-a1"
    transition = world.store.transition

    def refused(*args, **kwargs):
        monkeypatch.setattr(world.store, "transition", transition)
        raise StoreUnavailable("InternalServerError")

    _stop_inside_the_create(world, job, lambda: monkeypatch.setattr(world.store, "transition", refused))
    world.launcher().run_tick()
    assert world.backend.created == [name] and world.backend.stops == [name]


def test_a_create_whose_record_could_not_be_written_is_left_while_its_job_still_runs_it(world: World, monkeypatch):
    """The same error with nobody's move in between: the job (read back) still runs the
    attempt, so nothing is stopped; the next tick adopts it."""
    from backend.errors import StoreUnavailable

    job = world.submit()
    transition = world.store.transition

    def refused(*args, **kwargs):
        monkeypatch.setattr(world.store, "transition", transition)
        raise StoreUnavailable("InternalServerError")

    monkeypatch.setattr(world.store, "transition", refused)
    world.launcher().run_tick()
    assert world.backend.created == [f"{job.job_id}-a1"] and world.backend.stops == []


def test_an_orphan_attempt_whose_launch_was_never_recorded_is_stopped_before_the_retry_starts_another(world: World, monkeypatch):
    """The stop lands inside the create, and the launcher's record of the create is refused, its
    read back too: no lost race tells it to stop -a1. The owner's later retry stops it, and so
    does the retry's next attempt before it starts (found by the simulator: -a1 ran on beside
    -a2)."""
    from backend.errors import StoreUnavailable

    job = world.submit()
    name = f"{job.job_id}-a1"
    transition = world.store.transition

    get = world.store.get

    def unreadable(*args, **kwargs):  # and the read that would find out: throttled too
        monkeypatch.setattr(world.store, "get", get)
        raise StoreUnavailable("ProvisionedThroughputExceededException")

    def refused(*args, **kwargs):  # the launcher's write recording the create: throttled
        monkeypatch.setattr(world.store, "transition", transition)
        monkeypatch.setattr(world.store, "get", unreadable)
        raise StoreUnavailable("ProvisionedThroughputExceededException")

    _stop_inside_the_create(world, job, lambda: monkeypatch.setattr(world.store, "transition", refused))
    world.launcher().run_tick()
    assert world.backend.created == [name] and world.backend.stops == []  # nobody knows -a1 runs

    world.clock.advance(LAUNCH_LEASE)  # the claim has expired: the retry is let through
    world.jobs.retry(job.job_id, OWNER)
    assert world.backend.stops == [name]  # the retry stopped -a1 before the job moved
    world.launcher().run_tick()
    assert world.backend.stops == [name, name]  # again, before -a2 started
    assert world.backend.created == [name, f"{job.job_id}-a2"]
    assert world.store.get(job.job_id).current_attempt.name == f"{job.job_id}-a2"

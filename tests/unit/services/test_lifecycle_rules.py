"""The lifecycle rules a mutation spot-check showed the suite would not notice breaking (issue
17), each as what a user or an operator would see: a job that keeps losing capacity at run time
is failed when the capacity wait runs out, a repeated failure event is applied once, a job
SageMaker does not know yet gets its full grace period, a stop resent by the sweep is counted,
and a job stopped while its create was in flight never leaves an attempt running."""

from __future__ import annotations

from datetime import timedelta

from backend.domain.model import AttemptOutcome, FailureClass
from backend.domain.status import JobStatus
from backend.errors import BackendUnavailable
from backend.ports import TrainingState
from backend.services.monitor import MISSING_GRACE
from tests.unit.services.conftest import COLLEAGUE, OWNER, POLICY, World

S = JobStatus
T = TrainingState
F = FailureClass


def _fail_current_attempt(world: World, job_id: str, reason: str) -> None:
    job = world.store.get(job_id)
    status = world.backend.finish(job.current_attempt.name, T.FAILED, reason)
    world.monitor().observe(job_id, job.current_attempt.number, status)


def test_a_job_that_keeps_losing_capacity_at_run_time_is_failed_once_the_capacity_wait_runs_out(world: World):
    job = world.launched(retry_budget=0)
    started = world.clock()
    for _ in range(20):
        _fail_current_attempt(world, job.job_id, "CapacityError: spot capacity reclaimed")
        stored = world.store.get(job.job_id)
        if stored.status is S.FAILED:
            break
        assert stored.status is S.RETRYING and stored.capacity_wait_since == started  # the wait began at the first loss
        world.clock.now = stored.next_attempt_at + timedelta(minutes=10)
        world.launcher().run_tick()
        assert world.store.get(job.job_id).status is S.LAUNCHED
    stored = world.store.get(job.job_id)
    assert stored.status is S.FAILED
    assert (world.clock() - started).total_seconds() >= POLICY.capacity_max_wait_seconds
    assert "no capacity on ml.g5.xlarge for 1 h" in stored.history[-1].reason
    assert stored.algorithm_failures == 0  # capacity never spends the budget
    assert world.notifier.statuses(job.job_id)[-1] is S.FAILED


def test_the_capacity_wait_starts_again_after_an_attempt_ends_some_other_way(world: World):
    job = world.launched(retry_budget=3)
    _fail_current_attempt(world, job.job_id, "CapacityError: reclaimed")
    assert world.store.get(job.job_id).capacity_wait_since == world.clock()
    world.clock.now = world.store.get(job.job_id).next_attempt_at
    world.launcher().run_tick()
    _fail_current_attempt(world, job.job_id, "AlgorithmError: loss is nan")
    stored = world.store.get(job.job_id)
    assert stored.status is S.RETRYING and stored.capacity_wait_since is None
    assert stored.algorithm_failures == 1


def test_a_repeated_failure_event_is_applied_once(world: World):
    job = world.launched(retry_budget=2)
    status = world.backend.finish(f"{job.job_id}-a1", T.FAILED, "AlgorithmError: loss is nan")
    world.monitor().observe(job.job_id, 1, status)
    after_first = world.store.get(job.job_id)
    assert after_first.status is S.RETRYING and after_first.algorithm_failures == 1

    report = world.monitor().observe(job.job_id, 1, status)  # EventBridge delivers it again
    stored = world.store.get(job.job_id)
    assert report.ignored == 1 and report.applied == 0
    assert stored.version == after_first.version and stored.algorithm_failures == 1
    assert [a.outcome for a in stored.attempts] == [AttemptOutcome.FAILED]
    assert world.notifier.statuses(job.job_id) == [S.NEW, S.LAUNCHED, S.RETRYING]


def test_a_repeated_stop_or_completion_event_is_applied_once(world: World):
    job = world.launched()
    status = world.backend.finish(f"{job.job_id}-a1", T.STOPPED)
    world.monitor().observe(job.job_id, 1, status)
    version = world.store.get(job.job_id).version
    assert world.monitor().observe(job.job_id, 1, status).ignored == 1
    assert world.store.get(job.job_id).version == version
    assert world.notifier.statuses(job.job_id) == [S.NEW, S.LAUNCHED, S.STOPPED]


def test_a_job_sagemaker_does_not_know_yet_keeps_its_full_grace_period_from_its_launch(world: World):
    job = world.submit()
    world.backend.refuse_next(F.THROTTLING, "ThrottlingException: slow down")
    world.launcher().run_tick()  # claimed (attempt 1 named) but not created
    world.clock.advance(timedelta(minutes=9))
    world.launcher().run_tick()  # created now: the grace counts from here, not from the claim
    launched = world.store.get(job.job_id)
    assert launched.status is S.LAUNCHED and launched.current_attempt.launched_at == world.clock()
    del world.backend.jobs[f"{job.job_id}-a1"]  # eventual consistency: Describe does not see it yet

    world.clock.advance(MISSING_GRACE - timedelta(seconds=1))
    report = world.monitor().sweep()
    assert world.store.get(job.job_id).status is S.LAUNCHED and report.ignored == 1

    world.clock.advance(timedelta(seconds=1))  # exactly the grace: now it is missing
    report = world.monitor().sweep()
    stored = world.store.get(job.job_id)
    assert stored.status is S.RETRYING and report.applied == 1
    assert stored.next_attempt_at == world.clock()  # due again at once
    gone = stored.current_attempt
    assert gone.outcome is AttemptOutcome.FAILED and gone.failure_class is F.UNKNOWN
    assert gone.reason == "SageMaker has no record of it"
    assert stored.history[-1].reason == f"SageMaker has no record of {job.job_id}-a1; trying again"
    assert stored.algorithm_failures == 0

    world.launcher().run_tick()  # tried again under the next name
    assert world.store.get(job.job_id).current_attempt.name == f"{job.job_id}-a2"


def test_the_sweep_counts_each_stop_it_resends_and_an_unreachable_sagemaker_as_unknown(world: World):
    first, second = world.launched("first"), world.launched("second", user="U2")
    world.backend.unavailable = True
    world.jobs.stop(first.job_id, OWNER)
    world.jobs.stop(second.job_id, COLLEAGUE)
    world.backend.unavailable = False

    report = world.monitor().sweep()
    assert report.stops_resent == 2 and report.unknown == 0
    assert sorted(world.backend.stops) == sorted([f"{first.job_id}-a1", f"{second.job_id}-a1"])

    def refuse(_name: str) -> None:
        raise BackendUnavailable("throttled")

    for name in list(world.backend.jobs):  # still running: the stop did not take yet
        world.backend.finish(name, T.RUNNING)
    world.backend.stop = refuse
    report = world.monitor().sweep()
    assert report.stops_resent == 0 and report.unknown == 2
    assert world.store.get(first.job_id).status is S.STOPPING


def test_a_job_stopped_during_its_create_has_its_attempt_stopped_even_if_the_first_stop_fails(world: World):
    job = world.submit()
    name = f"{job.job_id}-a1"
    attempts: list[str] = []

    def flaky_stop(stopped: str) -> None:
        attempts.append(stopped)
        raise BackendUnavailable("throttled")

    def user_stops(_name: str) -> None:
        world.backend.unavailable = True  # the service's own StopTrainingJob does not get through
        world.jobs.stop(job.job_id, OWNER)
        world.backend.unavailable = False
        world.backend.stop = flaky_stop  # nor does the launcher's

    world.backend.during_create = user_stops
    report = world.launcher().run_tick()  # the launcher does not crash on it
    assert report.lost_races == 1 and report.launched == 0 and attempts == [name]
    assert world.store.get(job.job_id).status is S.STOPPED

    del world.backend.stop  # SageMaker answers again; it still reports the attempt running
    world.monitor().observe(job.job_id, 1, world.backend.describe(name))
    assert world.backend.stops == [name]  # the monitor stops what runs for a stopped job

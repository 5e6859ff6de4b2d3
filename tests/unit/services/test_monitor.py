"""The monitor's rules on the in-memory store: what each way an attempt ends does to its job."""

from __future__ import annotations

from datetime import timedelta

from backend.domain.model import AttemptOutcome
from backend.domain.status import JobStatus
from backend.ports import TrainingState
from tests.unit.services.conftest import OWNER, POLICY, World

S = JobStatus
T = TrainingState


def _end(world: World, job_id: str, state: TrainingState, reason: str = "", **kwargs) -> None:
    """The current attempt ends on the backend this way; the monitor's event path applies it."""
    job = world.store.get(job_id)
    status = world.backend.finish(job.current_attempt.name, state, reason, **kwargs)
    world.monitor().observe(job_id, job.current_attempt.number, status)


def _relaunch(world: World, job_id: str) -> None:
    world.clock.now = world.store.get(job_id).next_attempt_at
    world.launcher().run_tick()


def test_a_running_attempt_moves_the_job_in_progress_then_completed(world: World):
    job = world.launched()
    world.monitor().sweep()
    assert world.store.get(job.job_id).status is S.IN_PROGRESS
    _end(world, job.job_id, T.COMPLETED)
    stored = world.store.get(job.job_id)
    assert stored.status is S.COMPLETED and stored.current_attempt.outcome is AttemptOutcome.COMPLETED
    assert world.notifier.statuses(job.job_id) == [S.NEW, S.LAUNCHED, S.IN_PROGRESS, S.COMPLETED]


def test_algorithm_errors_retry_within_the_budget_then_fail(world: World):
    job = world.launched(retry_budget=2)
    for failures in (1, 2):
        _end(world, job.job_id, T.FAILED, "AlgorithmError: loss is nan")
        stored = world.store.get(job.job_id)
        assert stored.status is S.RETRYING and stored.algorithm_failures == failures
        assert world.clock() <= stored.next_attempt_at <= world.clock() + timedelta(seconds=POLICY.max_seconds)
        _relaunch(world, job.job_id)
        assert world.store.get(job.job_id).current_attempt.number == failures + 1
    _end(world, job.job_id, T.FAILED, "AlgorithmError: loss is nan")
    stored = world.store.get(job.job_id)
    assert stored.status is S.FAILED and stored.algorithm_failures == 3
    assert "retry budget 2" in stored.history[-1].reason


def test_a_user_error_fails_the_job_at_once(world: World):
    job = world.launched(retry_budget=5)
    _end(world, job.job_id, T.FAILED, "ClientError: the image does not exist")
    stored = world.store.get(job.job_id)
    assert stored.status is S.FAILED and len(stored.attempts) == 1


def test_running_past_max_runtime_is_the_users_error(world: World):
    job = world.launched(retry_budget=5)
    _end(world, job.job_id, T.FAILED, "", max_runtime_exceeded=True)
    assert world.store.get(job.job_id).status is S.FAILED


def test_capacity_lost_at_runtime_retries_without_spending_the_budget(world: World):
    job = world.launched(retry_budget=0)
    _end(world, job.job_id, T.FAILED, "CapacityError: spot capacity reclaimed")
    stored = world.store.get(job.job_id)
    assert stored.status is S.RETRYING
    assert stored.algorithm_failures == 0 and stored.capacity_wait_since == world.clock()


def test_a_sagemaker_internal_error_retries_for_free(world: World):
    job = world.launched(retry_budget=0)
    _end(world, job.job_id, T.FAILED, "InternalServerError: we had a problem")
    stored = world.store.get(job.job_id)
    assert stored.status is S.RETRYING and stored.algorithm_failures == 0
    assert stored.capacity_wait_since is None


def test_a_duplicate_or_late_event_changes_nothing(world: World):
    job = world.launched()
    _end(world, job.job_id, T.COMPLETED)
    version = world.store.get(job.job_id).version
    status = world.backend.describe(f"{job.job_id}-a1")
    report = world.monitor().observe(job.job_id, 1, status)
    assert report.ignored == 1 and world.store.get(job.job_id).version == version
    assert world.monitor().observe(job.job_id, 7, status).ignored == 1  # an attempt we never made


def test_the_sweep_sends_the_stop_again_while_the_attempt_still_runs(world: World):
    job = world.launched()
    world.backend.unavailable = True
    world.jobs.stop(job.job_id, OWNER)  # recorded as Stopping; StopTrainingJob did not get through
    world.backend.unavailable = False
    assert world.store.get(job.job_id).status is S.STOPPING and world.backend.stops == []

    report = world.monitor().sweep()
    assert report.stops_resent == 1 and world.backend.stops == [f"{job.job_id}-a1"]
    _end(world, job.job_id, T.STOPPED)
    assert world.store.get(job.job_id).status is S.STOPPED


def test_an_attempt_that_fails_while_stopping_is_not_resubmitted(world: World):
    job = world.launched(retry_budget=5)
    world.jobs.stop(job.job_id, OWNER)
    _end(world, job.job_id, T.FAILED, "AlgorithmError: interrupted")
    assert world.store.get(job.job_id).status is S.FAILED


def test_an_attempt_sagemaker_forgot_is_tried_again_after_a_grace_period(world: World):
    job = world.launched()
    del world.backend.jobs[f"{job.job_id}-a1"]
    world.monitor().sweep()
    assert world.store.get(job.job_id).status is S.LAUNCHED  # too early to tell
    world.clock.advance(timedelta(hours=1))
    world.monitor().sweep()
    assert world.store.get(job.job_id).status is S.RETRYING


def test_an_event_that_loses_a_race_with_a_stop_is_applied_to_the_stopping_job(world: World):
    job = world.launched()
    status = world.backend.finish(f"{job.job_id}-a1", T.COMPLETED)
    world.store.interleave(lambda: world.jobs.stop(job.job_id, OWNER))
    report = world.monitor().observe(job.job_id, 1, status)
    stored = world.store.get(job.job_id)
    assert report.lost_races == 1 and report.applied == 1
    assert [h.to_status for h in stored.history][-2:] == [S.STOPPING, S.COMPLETED]

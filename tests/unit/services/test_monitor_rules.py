"""The monitor's rules in detail: what it records about each attempt (times, billable seconds,
reasons), which observations it ignores, how it adopts an attempt the launcher did not record,
and what its report tells an operator."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from backend.adapters.sagemaker_events import training_status
from backend.domain.model import AttemptOutcome, FailureClass
from backend.domain.status import JobStatus
from backend.errors import NotifierUnavailable, StoreUnavailable
from backend.ports import TrainingState, TrainingStatus
from backend.services.monitor import Monitor, MonitorReport
from backend.services.pacing import TokenBucket
from tests.conftest import T0, job_args
from tests.fixtures import samples
from tests.unit.services.conftest import OWNER, POLICY, World

S = JobStatus
T = TrainingState
F = FailureClass


def _status(name: str, state: TrainingState, **kwargs) -> TrainingStatus:
    return TrainingStatus(name=name, state=state, **kwargs)



class _LauncherCrash(Exception):
    """The launcher dies right after its create went through."""


def _launcher_dies_after_its_create(world: World) -> None:
    """One launcher tick whose process dies once SageMaker has the attempt, before Trainbot
    records it."""

    def crash(_name: str) -> None:
        raise _LauncherCrash()

    world.backend.during_create = crash
    with pytest.raises(_LauncherCrash):
        world.launcher().run_tick()

def test_a_completed_attempt_records_sagemakers_times_and_billable_seconds(world: World):
    job = world.launched()
    name = f"{job.job_id}-a1"
    started, ended = T0 + timedelta(minutes=2), T0 + timedelta(minutes=30)
    world.monitor().observe(job.job_id, 1, _status(name, T.RUNNING, started_at=started))
    world.clock.advance(timedelta(hours=1))
    report = world.monitor().observe(job.job_id, 1, _status(name, T.COMPLETED, ended_at=ended, billable_seconds=1680))
    attempt = world.store.get(job.job_id).current_attempt
    assert (attempt.started_at, attempt.ended_at, attempt.billable_seconds) == (started, ended, 1680)
    assert attempt.outcome is AttemptOutcome.COMPLETED and attempt.reason == "completed"
    assert world.store.get(job.job_id).history[-1].reason == "completed"
    assert report.applied == 1 and report.moved == {"Completed": 1} and report.observed == 1


def test_times_sagemaker_did_not_give_are_taken_from_the_monitors_clock(world: World):
    job = world.launched()
    name = f"{job.job_id}-a1"
    world.clock.advance(timedelta(minutes=3))
    world.monitor().observe(job.job_id, 1, _status(name, T.RUNNING))
    assert world.store.get(job.job_id).current_attempt.started_at == world.clock()
    first_look = world.clock()
    world.clock.advance(timedelta(minutes=5))
    world.monitor().observe(job.job_id, 1, _status(name, T.FAILED, failure_reason="ClientError: x"))
    attempt = world.store.get(job.job_id).current_attempt
    assert attempt.started_at == first_look and attempt.ended_at == world.clock()  # the start it recorded stands


def test_sagemakers_start_time_replaces_the_monitors_guess_when_it_comes(world: World):
    """Events come out of order: a "Starting" event (no TrainingStartTime) read after the
    attempt ended gave the attempt the monitor's clock as its start, after its end. When
    SageMaker says when training started, that time is kept."""
    job = world.launched()
    name = f"{job.job_id}-a1"
    world.clock.advance(timedelta(minutes=3))
    world.monitor().observe(job.job_id, 1, _status(name, T.RUNNING))  # late, read at T0+3m
    started, ended = T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)
    world.monitor().observe(job.job_id, 1, _status(name, T.COMPLETED, started_at=started, ended_at=ended))
    attempt = world.store.get(job.job_id).current_attempt
    assert (attempt.started_at, attempt.ended_at) == (started, ended)


def test_an_attempt_that_ends_before_the_monitor_saw_it_run_takes_sagemakers_start(world: World):
    job = world.launched()
    started = T0 + timedelta(minutes=1)
    world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.COMPLETED, started_at=started))
    assert world.store.get(job.job_id).current_attempt.started_at == started


def test_a_running_job_seen_running_again_changes_nothing(world: World):
    job = world.launched()
    running = _status(f"{job.job_id}-a1", T.RUNNING)
    world.monitor().observe(job.job_id, 1, running)
    version = world.store.get(job.job_id).version
    report = world.monitor().observe(job.job_id, 1, running)
    assert report.ignored == 1 and report.applied == 0 and world.store.get(job.job_id).version == version


def test_a_stop_requested_outside_trainbot_is_followed_and_ends_stopped_outside_trainbot(world: World):
    job = world.launched()
    name = f"{job.job_id}-a1"
    world.monitor().observe(job.job_id, 1, _status(name, T.STOPPING))
    stopping = world.store.get(job.job_id)
    assert stopping.status is S.STOPPING and stopping.history[-1].reason == "stopping (requested outside Trainbot)"
    assert world.monitor().observe(job.job_id, 1, _status(name, T.STOPPING)).ignored == 1

    other = world.launched("other", user="U2")
    world.monitor().observe(other.job_id, 1, _status(f"{other.job_id}-a1", T.STOPPED))
    stopped = world.store.get(other.job_id)
    assert stopped.status is S.STOPPED and stopped.history[-1].reason == "stopped outside Trainbot"
    attempt = stopped.current_attempt
    assert attempt.outcome is AttemptOutcome.STOPPED and attempt.failure_class is F.STOPPED


def test_a_stop_asked_in_trainbot_ends_stopped(world: World):
    job = world.launched()
    world.jobs.stop(job.job_id, OWNER)
    world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.STOPPED))
    assert world.store.get(job.job_id).history[-1].reason == "stopped"


def test_an_attempt_the_launcher_did_not_record_is_adopted_from_its_first_event(world: World):
    job = world.submit()

    _launcher_dies_after_its_create(world)
    assert world.store.get(job.job_id).status is S.NEW
    report = world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.RUNNING))
    stored = world.store.get(job.job_id)
    assert stored.status is S.IN_PROGRESS and stored.lease is None and stored.next_attempt_at is None
    assert [h.reason for h in stored.history][-2:] == [f"adopted {job.job_id}-a1", "training"]
    assert stored.current_attempt.outcome is AttemptOutcome.RUNNING and stored.current_attempt.launched_at == world.clock()
    assert report.applied == 2 and report.moved == {"Launched": 1, "InProgress": 1}


def test_an_event_for_a_job_that_does_not_exist_is_ignored(world: World):
    report = world.monitor().observe("nobody-abc123", 1, _status("nobody-abc123-a1", T.RUNNING))
    assert report.ignored == 1 and report.observed == 1 and report.applied == 0


def test_an_event_for_a_job_without_attempts_is_ignored(world: World):
    job = world.submit()
    assert world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.RUNNING)).ignored == 1
    assert world.store.get(job.job_id).status is S.NEW


def test_an_older_attempts_late_news_is_ignored(world: World):
    job = world.launched(retry_budget=2)
    world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.FAILED, failure_reason="AlgorithmError: x"))
    world.clock.now = world.store.get(job.job_id).next_attempt_at
    world.launcher().run_tick()
    version = world.store.get(job.job_id).version
    report = world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.COMPLETED))
    assert report.ignored == 1 and world.store.get(job.job_id).version == version


def test_failures_are_counted_by_class_and_resubmissions_by_class(world: World):
    job = world.launched(retry_budget=2)
    report = world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.FAILED, failure_reason="AlgorithmError: x"))
    assert report.outcomes == {"algorithm": 1} and report.retried == {"algorithm": 1} and report.moved == {"Retrying": 1}
    other = world.launched("other", user="U2")
    report = world.monitor().observe(other.job_id, 1, _status(f"{other.job_id}-a1", T.FAILED, failure_reason="ClientError: x"))
    assert report.outcomes == {"user": 1} and report.retried == {} and report.moved == {"Failed": 1}
    failed = world.store.get(other.job_id)
    assert failed.algorithm_failures == 0 and failed.current_attempt.failure_class is F.USER
    assert failed.current_attempt.reason == "ClientError: x" and failed.history[-1].reason == "ClientError: x"


def test_the_last_algorithm_error_is_counted_in_the_failed_job(world: World):
    job = world.launched(retry_budget=0)
    world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.FAILED, failure_reason="AlgorithmError: x"))
    failed = world.store.get(job.job_id)
    assert failed.status is S.FAILED and failed.algorithm_failures == 1
    assert failed.history[-1].reason == "algorithm error on 1 attempts (retry budget 0): AlgorithmError: x"


def test_a_resubmission_after_an_internal_error_waits_its_backoff(world: World):
    job = world.launched()
    world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.FAILED, failure_reason="InternalServerError: x"))
    stored = world.store.get(job.job_id)
    assert world.clock() <= stored.next_attempt_at <= world.clock() + timedelta(seconds=60)
    assert stored.current_attempt.failure_class is F.THROTTLING


def test_the_sweep_reports_what_it_could_not_see_and_sends_pending_notifications(world: World):
    first = world.launched("first")
    world.launched("second", user="U2")
    world.backend.unavailable = True
    report = world.monitor().sweep()
    assert report.unknown == 2 and report.observed == 0 and report.applied == 0
    world.backend.unavailable = False
    world.backend.finish(f"{first.job_id}-a1", T.COMPLETED)
    report = world.monitor().sweep()
    assert report.observed == 2 and report.applied == 2 and report.moved == {"Completed": 1, "InProgress": 1}
    assert report.notifications_pending == 0


def test_an_interrupted_sweep_says_so(world: World):
    world.launched("first")
    world.launched("second", user="U2")
    calls = iter([True, False, False])
    report = world.monitor().sweep(should_continue=lambda: next(calls, False))
    assert report.stopped_early and report.observed == 1


def test_the_sweep_report_reads_as_a_flat_dict():
    report = MonitorReport(applied=1)
    report.outcomes["capacity"] += 1
    report.moved["Retrying"] += 1
    report.retried["capacity"] += 1
    data = report.as_dict()
    assert data["applied"] == 1
    assert (data["outcomes"], data["moved"], data["retried"]) == ({"capacity": 1}, {"Retrying": 1}, {"capacity": 1})
    assert all(type(data[k]) is dict for k in ("outcomes", "moved", "retried"))


def test_an_event_that_keeps_losing_races_gives_up_after_five_rounds(world: World):
    job = world.launched()

    def bump() -> None:
        world.store.update(world.store.get(job.job_id), at=world.clock(), priority=6)
        world.store.interleave(bump)

    world.store.interleave(bump)
    report = world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.RUNNING))
    assert report.lost_races == 5 and report.applied == 0


def test_a_run_past_max_runtime_is_told_as_such(world: World):
    job = world.launched(retry_budget=5)
    world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.FAILED, max_runtime_exceeded=True))
    stored = world.store.get(job.job_id)
    assert stored.status is S.FAILED
    assert stored.history[-1].reason == "MaxRuntimeExceeded: the job ran longer than its max_runtime (3600 s); SageMaker stopped it"


def test_a_job_being_stopped_whose_attempt_fails_ends_failed_with_sagemakers_reason(world: World):
    job = world.launched(retry_budget=5)
    world.jobs.stop(job.job_id, OWNER)
    world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.FAILED, failure_reason="AlgorithmError: interrupted"))
    stored = world.store.get(job.job_id)
    assert stored.status is S.FAILED and stored.history[-1].reason == "AlgorithmError: interrupted"
    assert stored.current_attempt.outcome is AttemptOutcome.FAILED and stored.current_attempt.failure_class is F.ALGORITHM
    assert stored.algorithm_failures == 0 and world.store.due_for_launch(world.clock(), 10) == []


def test_a_quota_lost_at_run_time_starts_the_capacity_wait(world: World):
    job = world.launched(retry_budget=0)
    world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.FAILED, failure_reason="ResourceLimitExceeded: quota"))
    stored = world.store.get(job.job_id)
    assert stored.status is S.RETRYING and stored.capacity_wait_since == world.clock()


def test_a_job_in_progress_stopped_outside_trainbot_moves_to_stopping(world: World):
    job = world.launched()
    world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.RUNNING))
    world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.STOPPING))
    assert world.store.get(job.job_id).status is S.STOPPING


def test_one_sweep_counts_every_move_and_failure_it_applies(world: World):
    jobs = [world.launched(f"j{i}", user=f"U{i}", retry_budget=2) for i in range(4)]
    for job in jobs[:2]:
        world.backend.finish(f"{job.job_id}-a1", T.COMPLETED)
    for job in jobs[2:]:
        world.backend.finish(f"{job.job_id}-a1", T.FAILED, "AlgorithmError: x")
    report = world.monitor().sweep()
    assert report.moved == {"Completed": 2, "Retrying": 2} and report.applied == 4 and report.observed == 4
    assert report.outcomes == {"algorithm": 2} and report.retried == {"algorithm": 2}


def test_observations_add_to_the_report_they_are_given(world: World):
    job = world.launched()
    report = MonitorReport(observed=3, applied=1)
    same = world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.RUNNING), report)
    assert same is report and (report.observed, report.applied) == (4, 2)


def test_an_active_job_without_an_attempt_does_not_stop_the_sweep(world: World):
    odd = world.store.transition(world.submit("odd"), S.LAUNCHED, at=world.clock()).job  # launched, no attempt
    world.clock.advance(timedelta(seconds=1))
    job = world.launched("normal", user="U2")
    report = world.monitor().sweep()
    assert world.store.get(job.job_id).status is S.IN_PROGRESS and report.observed == 1
    assert world.store.get(odd.job_id).status is S.LAUNCHED


def test_a_stopped_jobs_late_stop_event_sends_no_second_stop(world: World):
    job = world.submit()
    world.backend.refuse_next(F.THROTTLING, "ThrottlingException")
    world.launcher().run_tick()  # attempt 1 named, not created
    world.jobs.stop(job.job_id, OWNER)
    stops = list(world.backend.stops)
    report = world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.STOPPED))
    assert report.ignored == 1 and world.backend.stops == stops and report.stops_resent == 0


def test_an_unreachable_sagemaker_slows_the_sweep_down(world: World):
    world.launched()
    pacer = TokenBucket(rate=8, burst=100, monotonic=world.clock.monotonic, sleep=world.clock.sleep)
    monitor = Monitor(world.store, world.backend, world.dispatcher, policy=POLICY, pacer=pacer, clock=world.clock)
    world.backend.unavailable = True
    monitor.sweep()
    assert pacer.rate == 4
    world.backend.unavailable = False
    monitor.sweep()
    assert pacer.rate == pytest.approx(4.4)


def test_the_backoff_is_reproducible_from_the_monitors_random_source():
    def next_attempt(seed: int):
        world = World()
        job = world.launched()
        monitor = Monitor(
            world.store, world.backend, world.dispatcher, policy=POLICY, pacer=world.pacer(), clock=world.clock,
            rng=random.Random(seed),
        )
        monitor.observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.FAILED, failure_reason="AlgorithmError: x"))
        return world.store.get(job.job_id).next_attempt_at

    assert next_attempt(11) == next_attempt(11)
    assert next_attempt(11) != next_attempt(12)


def test_each_ignored_observation_adds_one_to_the_report_it_is_given(world: World):
    def ignored_by(job_id: str, number: int, status: TrainingStatus) -> int:
        report = MonitorReport(ignored=5)
        world.monitor().observe(job_id, number, status, report)
        return report.ignored

    assert ignored_by("nobody-abc123", 1, _status("nobody-abc123-a1", T.RUNNING)) == 6  # no such job
    done = world.launched("done")
    world.monitor().observe(done.job_id, 1, _status(f"{done.job_id}-a1", T.COMPLETED))
    assert ignored_by(done.job_id, 1, _status(f"{done.job_id}-a1", T.COMPLETED)) == 6  # already applied
    assert ignored_by(done.job_id, 9, _status(f"{done.job_id}-a9", T.COMPLETED)) == 6  # not its attempt
    running = world.launched("running", user="U2")
    world.monitor().observe(running.job_id, 1, _status(f"{running.job_id}-a1", T.RUNNING))
    assert ignored_by(running.job_id, 1, _status(f"{running.job_id}-a1", T.RUNNING)) == 6  # nothing new
    world.monitor().observe(running.job_id, 1, _status(f"{running.job_id}-a1", T.STOPPING))
    assert ignored_by(running.job_id, 1, _status(f"{running.job_id}-a1", T.STOPPING)) == 6  # stopping already
    early = world.submit("early")
    world.backend.refuse_next(F.THROTTLING, "ThrottlingException")
    world.launcher().run_tick()
    world.jobs.stop(early.job_id, OWNER)
    assert ignored_by(early.job_id, 1, _status(f"{early.job_id}-a1", T.STOPPED)) == 6  # the job has ended


def test_a_sweep_goes_on_past_a_job_sagemaker_does_not_know_yet(world: World):
    missing = world.launched("missing")
    del world.backend.jobs[f"{missing.job_id}-a1"]
    world.clock.advance(timedelta(seconds=1))
    other = world.launched("other", user="U2")
    again = world.launched("again", user="U3")
    del world.backend.jobs[f"{again.job_id}-a1"]
    report = world.monitor().sweep()
    assert world.store.get(other.job_id).status is S.IN_PROGRESS
    assert report.ignored == 2 and report.observed == 3


def test_the_first_event_of_an_unrecorded_attempt_may_be_a_stop(world: World):
    job = world.submit()

    _launcher_dies_after_its_create(world)
    world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.STOPPING))
    stored = world.store.get(job.job_id)
    assert stored.status is S.STOPPING and stored.current_attempt.outcome is AttemptOutcome.RUNNING


def test_an_adopted_retry_is_no_longer_due(world: World):
    job = world.launched(retry_budget=2)
    world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.FAILED, failure_reason="AlgorithmError: x"))
    world.clock.now = world.store.get(job.job_id).next_attempt_at

    _launcher_dies_after_its_create(world)
    world.monitor().observe(job.job_id, 2, _status(f"{job.job_id}-a2", T.RUNNING))
    stored = world.store.get(job.job_id)
    assert stored.status is S.IN_PROGRESS and stored.next_attempt_at is None and stored.lease is None


def test_a_sweep_counts_each_lost_race(world: World):
    jobs = [world.launched(f"j{i}", user=f"U{i}") for i in range(2)]

    def bump(job_id: str) -> None:
        world.store.update(world.store.get(job_id), at=world.clock(), priority=6)

    # Before each of the sweep's two writes, someone else changes that job.
    world.store.interleave(lambda: (bump(jobs[0].job_id), world.store.interleave(lambda: bump(jobs[1].job_id))))
    report = world.monitor().sweep()
    assert report.lost_races == 2 and report.applied == 0


def test_the_sweep_reports_the_notifications_it_delivered_late(world: World):
    job = world.launched()
    original = world.notifier.notify

    def down(_job, _seq):
        raise NotifierUnavailable("Slack is down")

    world.notifier.notify = down  # type: ignore[method-assign]
    world.backend.finish(f"{job.job_id}-a1", T.COMPLETED)
    world.monitor().observe(job.job_id, 1, world.backend.describe(f"{job.job_id}-a1"))
    world.notifier.notify = original  # type: ignore[method-assign]
    world.clock.advance(timedelta(minutes=10))  # past the writer's lease and the quiet time
    report = world.monitor().sweep()
    # Quiet changes wait for an urgent one (backend.domain.notice): New, Launched and the end go together.
    assert report.notifications_sent == 3 and report.notifications_pending == 0
    assert world.notifier.statuses(job.job_id)[-1] is S.COMPLETED


def test_a_job_being_stopped_that_sagemaker_no_longer_knows_ends_stopped(world: World):
    job = world.launched()
    name = f"{job.job_id}-a1"
    world.jobs.stop(job.job_id, OWNER)
    del world.backend.jobs[name]
    world.clock.advance(timedelta(hours=1))  # past the grace for a create SageMaker has not shown yet
    report = world.monitor().sweep()
    stored = world.store.get(job.job_id)
    assert stored.status is S.STOPPED and stored.history[-1].reason == f"stopped (SageMaker has no record of {name})"
    attempt = stored.current_attempt
    assert (attempt.outcome, attempt.failure_class) == (AttemptOutcome.STOPPED, F.STOPPED)
    assert attempt.ended_at == world.clock() and attempt.reason == "SageMaker has no record of it"
    assert report.moved == {"Stopped": 1} and report.applied == 1
    assert world.notifier.statuses(job.job_id)[-1] is S.STOPPED


def test_a_run_sagemaker_stopped_at_its_max_runtime_fails_naming_the_limit(world: World):
    job = world.launched(retry_budget=5)
    report = world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.STOPPED, max_runtime_exceeded=True))
    stored = world.store.get(job.job_id)
    assert stored.status is S.FAILED  # running it again would hit the same limit
    assert stored.history[-1].reason == "MaxRuntimeExceeded: the job ran longer than its max_runtime (3600 s); SageMaker stopped it"
    attempt = stored.current_attempt
    assert (attempt.outcome, attempt.failure_class) == (AttemptOutcome.FAILED, F.USER) and attempt.ended_at == world.clock()
    assert report.outcomes == {"user": 1} and report.moved == {"Failed": 1}


def test_a_job_being_stopped_that_sagemaker_ends_at_its_max_runtime_ends_stopped(world: World):
    job = world.launched(retry_budget=5)
    world.jobs.stop(job.job_id, OWNER)
    world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.STOPPED, max_runtime_exceeded=True))
    stored = world.store.get(job.job_id)
    assert stored.status is S.STOPPED and stored.history[-1].reason == "stopped"


def test_a_spot_run_past_its_max_wait_waited_too_long_for_capacity_and_is_retried_free(world: World):
    """AWS: Stopped with MaxWaitTimeExceeded while the runtime had not run out: the time spent
    waiting for spot capacity ate the max wait. Capacity, bounded by the capacity wait."""
    spot = job_args(StoppingCondition={"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}, EnableManagedSpotTraining=True)
    job = world.launched(retry_budget=0, job_args=spot)
    world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.STOPPED, max_wait_exceeded=True))
    stored = world.store.get(job.job_id)
    assert stored.status is S.RETRYING and stored.current_attempt.failure_class is F.CAPACITY
    assert stored.capacity_wait_since == world.clock() and stored.algorithm_failures == 0
    assert stored.history[-1].reason == (
        "MaxWaitTimeExceeded: no spot capacity let the job finish within its max_wait (7200 s); SageMaker stopped it"
    )


def _waiting_for_capacity(world: World):
    """A job whose first attempt lost its capacity, relaunched: attempt 2 is Launched and the
    capacity clock runs since the first failure."""
    job = world.launched(retry_budget=0)
    world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.FAILED, failure_reason="CapacityError: no ml.g5.xlarge"))
    since = world.store.get(job.job_id).capacity_wait_since
    assert since == world.clock()
    world.clock.now = world.store.get(job.job_id).next_attempt_at
    world.launcher().run_tick()
    world.clock.advance(timedelta(minutes=1))
    relaunched = world.store.get(job.job_id)
    assert relaunched.status is S.LAUNCHED and relaunched.current_attempt.number == 2 and relaunched.capacity_wait_since == since
    return relaunched, since


def test_a_job_running_without_a_start_time_from_sagemaker_keeps_its_capacity_clock(world: World):
    job, since = _waiting_for_capacity(world)
    name = f"{job.job_id}-a2"
    world.monitor().observe(job.job_id, 2, _status(name, T.RUNNING))  # not yet given instances
    stored = world.store.get(job.job_id)
    assert stored.status is S.IN_PROGRESS and stored.capacity_wait_since == since
    version = stored.version
    report = world.monitor().observe(job.job_id, 2, _status(name, T.RUNNING))
    assert report.ignored == 1 and world.store.get(job.job_id).version == version
    assert world.store.get(job.job_id).capacity_wait_since == since


def test_sagemakers_start_time_does_not_restart_the_capacity_clock_of_a_launched_job(world: World):
    """Spot instances can be taken back after every start: the capacity clock runs from the
    first capacity wait, or interruptions would be retried for free for ever."""
    job, since = _waiting_for_capacity(world)
    started = world.clock() - timedelta(seconds=20)
    world.monitor().observe(job.job_id, 2, _status(f"{job.job_id}-a2", T.RUNNING, started_at=started))
    stored = world.store.get(job.job_id)
    assert stored.status is S.IN_PROGRESS and stored.capacity_wait_since == since
    assert stored.current_attempt.started_at == started


def test_sagemakers_start_time_is_recorded_once_for_a_job_already_in_progress(world: World):
    job, since = _waiting_for_capacity(world)
    name = f"{job.job_id}-a2"
    world.monitor().observe(job.job_id, 2, _status(name, T.RUNNING))
    world.clock.advance(timedelta(minutes=5))
    started = world.clock() - timedelta(seconds=30)
    report = world.monitor().observe(job.job_id, 2, _status(name, T.RUNNING, started_at=started))
    stored = world.store.get(job.job_id)
    assert stored.status is S.IN_PROGRESS and stored.capacity_wait_since == since
    assert stored.current_attempt.started_at == started and stored.current_attempt.outcome is AttemptOutcome.RUNNING
    assert stored.updated_at == world.clock() and stored.history[-1].to_status is S.IN_PROGRESS  # no new move
    assert report.ignored == 0
    again = world.monitor().observe(job.job_id, 2, _status(name, T.RUNNING, started_at=started))
    assert again.ignored == 1 and world.store.get(job.job_id).version == stored.version


def test_a_sagemaker_internal_error_neither_starts_nor_ends_the_capacity_wait(world: World):
    job, since = _waiting_for_capacity(world)
    world.monitor().observe(job.job_id, 2, _status(f"{job.job_id}-a2", T.FAILED, failure_reason="InternalServerError: x"))
    stored = world.store.get(job.job_id)
    assert stored.status is S.RETRYING and stored.current_attempt.failure_class is F.THROTTLING
    assert stored.capacity_wait_since == since


def test_a_stopped_jobs_attempt_seen_running_is_stopped_again_and_counted_as_ignored(world: World):
    job = world.submit()

    _launcher_dies_after_its_create(world)
    world.jobs.stop(job.job_id, OWNER)  # stopped before launch, as far as Trainbot knows
    name = f"{job.job_id}-a1"
    world.backend.stops.clear()
    report = MonitorReport(ignored=5)
    world.monitor().observe(job.job_id, 1, _status(name, T.RUNNING), report)
    assert world.backend.stops == [name] and report.stops_resent == 1
    assert report.ignored == 6 and report.applied == 0 and world.store.get(job.job_id).status is S.STOPPED


def test_a_sweep_counts_each_job_whose_write_failed_and_goes_on_with_the_others(world: World):
    jobs = [world.launched(f"j{i}", user=f"U{i}") for i in range(3)]
    for job in jobs:
        world.backend.finish(f"{job.job_id}-a1", T.COMPLETED)
    refused = {jobs[0].job_id, jobs[2].job_id}
    transition = world.store.transition

    def refusing(job, to_status, **kwargs):
        if job.job_id in refused:
            raise StoreUnavailable("the item was refused")
        return transition(job, to_status, **kwargs)

    world.store.transition = refusing  # type: ignore[method-assign]
    report = world.monitor().sweep()
    assert report.errors == 2 and report.applied == 1 and report.moved == {"Completed": 1}
    assert [world.store.get(job.job_id).status for job in jobs] == [S.LAUNCHED, S.COMPLETED, S.LAUNCHED]


def _spot(world: World, **kwargs):
    spot = job_args(StoppingCondition={"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}, EnableManagedSpotTraining=True)
    return world.launched(retry_budget=0, job_args=spot, **kwargs)


def test_an_interrupted_spot_job_stopped_at_its_max_runtime_fails_naming_the_limit(world: World):
    """AWS's sequence: InProgress (Interrupted on the way), Stopping, then Stopped with
    MaxRuntimeExceeded and no FailureReason. The job ran out of its own time: not capacity."""
    description = samples.load("sagemaker_describe_spot_max_runtime.json")
    job = _spot(world)
    name = f"{job.job_id}-a1"
    description["TrainingJobName"] = name
    monitor = world.monitor()
    monitor.observe(job.job_id, 1, _status(name, T.RUNNING, started_at=world.clock()))
    stopping = training_status({**description, "TrainingJobStatus": "Stopping", "SecondaryStatus": "Stopping"})
    monitor.observe(job.job_id, 1, stopping)
    assert world.store.get(job.job_id).status is S.STOPPING
    report = monitor.observe(job.job_id, 1, training_status(description))
    stored = world.store.get(job.job_id)
    assert stored.status is S.FAILED and stored.current_attempt.failure_class is F.USER
    assert stored.history[-1].reason == "MaxRuntimeExceeded: the job ran longer than its max_runtime (3600 s); SageMaker stopped it"
    assert report.retried == {} and world.store.due_for_launch(world.clock() + timedelta(days=1), 10) == []


def test_spot_interruptions_are_retried_free_until_the_capacity_wait_from_the_first_one_runs_out(world: World):
    """Each attempt starts, is interrupted and ends MaxWaitTimeExceeded: free retries, but the
    capacity clock (POLICY: 1 h) runs from the first one, through the starts in between."""
    job = _spot(world)
    first_wait = None
    for number in range(1, 10):
        name = f"{job.job_id}-a{number}"
        world.monitor().observe(job.job_id, number, _status(name, T.RUNNING, started_at=world.clock()))
        world.clock.advance(timedelta(minutes=20))
        interrupted = _status(name, T.STOPPED, max_wait_exceeded=True, spot_interrupted=True)
        world.monitor().observe(job.job_id, number, interrupted)
        stored = world.store.get(job.job_id)
        first_wait = first_wait or stored.capacity_wait_since
        if stored.status is not S.RETRYING:
            break
        assert stored.capacity_wait_since == first_wait
        world.clock.now = stored.next_attempt_at
        world.launcher().run_tick()
    assert stored.status is S.FAILED and stored.algorithm_failures == 0
    assert stored.history[-1].reason.startswith("no capacity on ml.") and " for 1 h: " in stored.history[-1].reason
    assert number <= 4


def test_a_users_stop_of_an_interrupted_spot_job_still_ends_stopped(world: World):
    job = _spot(world)
    world.jobs.stop(job.job_id, OWNER)
    world.monitor().observe(job.job_id, 1, _status(f"{job.job_id}-a1", T.STOPPED, max_wait_exceeded=True, spot_interrupted=True))
    stored = world.store.get(job.job_id)
    assert stored.status is S.STOPPED and stored.history[-1].reason == "stopped"


def test_a_late_running_event_of_an_older_attempt_of_a_stopped_job_sends_no_stop(world: World):
    """Attempt 1 lost its capacity, attempt 2 was stopped by its owner. A late "running" event
    for attempt 1 is old news: no StopTrainingJob goes out again."""
    job = world.launched(retry_budget=0)
    first = f"{job.job_id}-a1"
    world.monitor().observe(job.job_id, 1, _status(first, T.FAILED, failure_reason="CapacityError: no ml.g5.xlarge"))
    world.clock.now = world.store.get(job.job_id).next_attempt_at
    world.launcher().run_tick()
    world.jobs.stop(job.job_id, OWNER)
    world.monitor().observe(job.job_id, 2, _status(f"{job.job_id}-a2", T.STOPPED))
    assert world.store.get(job.job_id).status is S.STOPPED
    stops = list(world.backend.stops)
    report = world.monitor().observe(job.job_id, 1, _status(first, T.RUNNING))
    assert world.backend.stops == stops and report.stops_resent == 0 and report.ignored == 1


def _live_monitor(world: World, every: timedelta = timedelta(minutes=5)) -> Monitor:
    return Monitor(
        world.store, world.backend, world.dispatcher, policy=POLICY, pacer=world.pacer(), clock=world.clock, rng=world.rng,
        live_metrics_every=every,
    )


def test_a_running_attempts_metrics_are_written_only_when_they_change_and_no_change_is_told_in_the_thread(world: World):
    job = world.launched()
    name = f"{job.job_id}-a1"
    world.backend.jobs[name] = _status(name, T.RUNNING, final_metrics={"loss": 0.5})
    world.monitor().sweep()  # Launched -> InProgress: the values ride on that write
    job = world.store.get(job.job_id)
    assert job.status is S.IN_PROGRESS and job.current_attempt.metrics is None  # the plain monitor: off

    monitor = _live_monitor(world)
    report = monitor.sweep()
    job = world.store.get(job.job_id)
    assert report.metrics_stored == 1 and job.current_attempt.metrics == {"loss": 0.5}
    world.clock.advance(timedelta(hours=1))
    version = job.version
    assert monitor.sweep().metrics_stored == 0 and world.store.get(job.job_id).version == version  # the same values: no write
    world.backend.jobs[name] = _status(name, T.RUNNING, final_metrics={"loss": 0.4})
    assert monitor.sweep().metrics_stored == 1
    stored = world.store.get(job.job_id)
    assert stored.current_attempt.metrics == {"loss": 0.4}
    # A value is no status change: no history entry, so nothing to tell but the statuses.
    assert stored.last_seq == job.last_seq and {seq for _, seq, _ in world.notifier.sent} <= {1, 2, 3}


def test_only_the_newest_attempt_keeps_live_metrics(world: World):
    job = world.launched()
    first = job.current_attempt.model_copy(update={"metrics": {"loss": 0.9}, "metrics_at": T0, "outcome": AttemptOutcome.FAILED})
    second = first.model_copy(update={"number": 2, "name": f"{job.job_id}-a2", "outcome": AttemptOutcome.RUNNING, "metrics": None, "metrics_at": None})
    job = world.store.update(job, at=world.clock(), attempts=[first, second]).job
    job = world.store.transition(job, S.IN_PROGRESS, at=world.clock()).job
    world.backend.jobs[second.name] = _status(second.name, T.RUNNING, final_metrics={"loss": 0.7})

    assert _live_monitor(world).sweep().metrics_stored == 1
    stored = world.store.get(job.job_id)
    assert [a.metrics for a in stored.attempts] == [None, {"loss": 0.7}]

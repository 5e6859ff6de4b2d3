"""The launcher's rules in detail, as an operator reads them in its tick report: a crashed
claim is taken over when its lease runs out (not before) and the attempt adopted, the queue's
blocked head stops the walk, holds lift when their time comes, the attempt cap fails a job,
and throttling slows the launcher down."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from backend.domain.model import MAX_ATTEMPTS, Attempt, AttemptOutcome, FailureClass
from backend.domain.records import RecordKind
from backend.domain.status import JobStatus
from backend.errors import StoreUnavailable
from backend.ports import TrainingState
from backend.services.launcher import HOLDS_KEY, LEASE, Launcher, LaunchReport
from backend.services.pacing import TokenBucket
from tests.conftest import job_args
from tests.unit.services.conftest import COLLEAGUE, OWNER, POLICY, World

S = JobStatus
F = FailureClass
BIG = "ml.p4d.24xlarge"


def _args(instance_type: str = "ml.g5.xlarge", count: int = 1):
    return job_args(ResourceConfig={"InstanceType": instance_type, "InstanceCount": count, "VolumeSizeInGB": 50})


class LauncherCrash(Exception):
    """The launcher's Lambda dies mid-tick."""


def test_a_claim_left_by_a_crashed_launcher_is_taken_over_when_its_lease_runs_out_and_the_attempt_adopted(world: World):
    job = world.submit()

    def crash(_name: str) -> None:
        raise LauncherCrash()

    world.backend.during_create = crash
    with pytest.raises(LauncherCrash):
        world.launcher().run_tick()  # created on SageMaker, then died before recording it
    claimed = world.store.get(job.job_id)
    assert claimed.status is S.NEW and claimed.lease is not None
    assert claimed.lease.expires_at == world.clock() + LEASE == world.clock() + timedelta(minutes=5)

    world.clock.advance(LEASE - timedelta(seconds=1))
    assert world.launcher().run_tick().due == 0  # still held by the (dead) launcher

    world.clock.advance(timedelta(seconds=1))
    report = world.launcher().run_tick()
    stored = world.store.get(job.job_id)
    assert report.adopted == 1 and report.launched == 0 and report.due == 1
    assert world.backend.created == [f"{job.job_id}-a1"]  # never created twice
    assert stored.status is S.LAUNCHED and stored.history[-1].reason == f"adopted existing {job.job_id}-a1"
    assert report.max_lag_seconds == LEASE.total_seconds()


def test_a_create_answered_already_exists_is_adopted(world: World):
    job = world.submit()
    world.backend.jobs[f"{job.job_id}-a1"] = world.backend.finish(f"{job.job_id}-a1", TrainingState.RUNNING)
    report = world.launcher().run_tick()
    assert report.adopted == 1 and report.launched == 0
    assert world.store.get(job.job_id).history[-1].reason == f"adopted existing {job.job_id}-a1"


def test_a_reconcile_that_cannot_look_keeps_the_pending_attempt_backs_off_and_slows_down(world: World):
    job = world.submit()
    world.backend.refuse_next(F.THROTTLING, "ThrottlingException")
    launcher = world.launcher()
    first = launcher.run_tick()
    assert first.kept_due == 1 and first.by_class == {"throttling": 1}
    world.backend.unavailable = True
    second = launcher.run_tick()  # the pending attempt must be looked up first: SageMaker is down
    world.backend.unavailable = False
    assert second.kept_due == 1 and second.by_class == {"unknown": 1}
    waiting = world.store.get(job.job_id)
    assert waiting.status is S.RETRYING and world.backend.created == []
    assert [a.outcome for a in waiting.attempts] == [AttemptOutcome.PENDING]
    assert launcher.run_tick().launched == 0  # backing off, not every tick
    world.clock.advance(timedelta(seconds=POLICY.max_seconds))
    assert launcher.run_tick().launched == 1 and world.backend.created == [f"{job.job_id}-a1"]


def test_throttling_halves_the_launchers_pace(world: World):
    pacer = TokenBucket(rate=8, burst=100, monotonic=world.clock.monotonic, sleep=world.clock.sleep)
    launcher = Launcher(
        world.store, world.backend, world.dispatcher, policy=POLICY, instance_limits={}, pacer=pacer, clock=world.clock
    )
    world.submit()
    world.backend.refuse_next(F.THROTTLING, "ThrottlingException")
    launcher.run_tick()
    assert pacer.rate == 4 and pacer.penalties == 1
    launcher.run_tick()  # success wins a twentieth of the rate back
    assert pacer.rate == pytest.approx(4.4)


def test_jobs_of_a_full_type_are_parked_and_a_job_behind_them_launches_in_the_same_tick(world: World):
    world.instance_limits[BIG] = 0
    for i in range(60):
        world.submit(f"big-{i}", job_args=_args(BIG), user=f"U{i}")
    small = world.submit("small", user="USMALL", priority=0)  # last in launch order
    report = world.launcher().run_tick()
    assert report.launched == 1 and world.store.get(small.job_id).status is S.LAUNCHED
    assert report.at_limit == 60 and report.parked == 60
    # Parked jobs are not read again while their type has no room.
    again = world.launcher().run_tick()
    assert again.due == 0 and again.launched == 0


def test_an_interrupted_tick_says_so_and_launches_nothing_more(world: World):
    world.submit("a")
    world.submit("b", user="U2")
    calls = iter([True, False])
    report = world.launcher().run_tick(should_continue=lambda: next(calls))
    assert report.launched == 1 and report.stopped_early and report.due == 2


def test_instances_in_use_are_counted_per_instance_not_per_job(world: World):
    world.instance_limits[BIG] = 4
    world.launched("three", job_args=_args(BIG, count=3))
    second = world.submit("two", job_args=_args(BIG, count=2), user="U2")
    one = world.submit("one", job_args=_args(BIG, count=1), user="U3")
    report = world.launcher().run_tick()
    assert report.at_limit == 1 and report.launched == 1
    assert world.store.get(second.job_id).status is S.NEW and world.store.get(one.job_id).status is S.LAUNCHED


def test_a_hold_lifts_exactly_when_its_backoff_ends_and_the_record_says_so(world: World):
    refused = world.submit("refused", job_args=_args(BIG))
    world.backend.refuse_next(F.QUOTA, "ResourceLimitExceeded: busy")
    world.launcher().run_tick()
    until = world.store.get(refused.job_id).next_attempt_at
    record = world.store.get_record(RecordKind.HOLDS, HOLDS_KEY)
    assert record == {"Holds": {BIG: {"Until": until.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "Active": 0}}}
    waiting = world.submit("waiting", job_args=_args(BIG), user="U2")

    world.clock.now = until - timedelta(microseconds=1)
    assert world.launcher().run_tick().held == 1
    world.clock.now = until
    report = world.launcher().run_tick()
    assert report.held == 0 and report.launched == 2
    assert world.store.get(waiting.job_id).status is S.LAUNCHED
    assert world.store.get_record(RecordKind.HOLDS, HOLDS_KEY) == {"Holds": {}}


def test_no_holds_are_applied_when_the_holds_record_cannot_be_read(world: World):
    world.submit()
    world.store.put_record(RecordKind.HOLDS, HOLDS_KEY, {"Holds": {"ml.g5.xlarge": {"Until": "2999-01-01T00:00:00.000000Z", "Active": 0}}})

    def unreadable(kind, key):
        raise StoreUnavailable("throttled")

    world.store.get_record = unreadable  # type: ignore[method-assign]
    assert world.launcher().run_tick().launched == 1


def test_a_retrying_job_refused_again_stays_retrying_without_a_new_history_entry(world: World):
    job = world.submit()
    world.backend.refuse_next(F.QUOTA, "ResourceLimitExceeded: busy")
    world.launcher().run_tick()
    retrying = world.store.get(job.job_id)
    world.clock.now = retrying.next_attempt_at
    world.backend.refuse_next(F.QUOTA, "ResourceLimitExceeded: still busy")
    report = world.launcher().run_tick()
    stored = world.store.get(job.job_id)
    assert report.retrying == 1 and stored.status is S.RETRYING
    assert len(stored.history) == len(retrying.history)  # the user is told once, not every minute
    assert [a.outcome for a in stored.attempts] == [AttemptOutcome.NOT_STARTED] * 2
    assert stored.capacity_wait_since == retrying.capacity_wait_since  # the wait began at the first refusal
    assert stored.attempts[-1].reason == "ResourceLimitExceeded: still busy" and stored.attempts[-1].failure_class is F.QUOTA


def test_an_algorithm_refusal_at_create_is_retried_without_holding_its_type(world: World):
    job = world.submit()
    other = world.submit("other", user="U2")
    world.backend.refuse_next(F.ALGORITHM, "AlgorithmError: odd")
    report = world.launcher().run_tick()
    assert world.store.get(job.job_id).status is S.RETRYING and report.held == 0
    assert world.store.get(other.job_id).status is S.LAUNCHED


def test_a_job_at_the_attempt_cap_is_failed_instead_of_launched(world: World):
    job = world.submit()
    stored = world.store.get(job.job_id)
    attempts = [
        Attempt(number=n, name=f"{job.job_id}-a{n}", claimed_at=world.clock(), outcome=AttemptOutcome.NOT_STARTED)
        for n in range(1, MAX_ATTEMPTS + 1)
    ]
    world.store.update(stored, at=world.clock(), attempts=attempts)
    report = world.launcher().run_tick()
    failed = world.store.get(job.job_id)
    assert report.failed == 1 and report.launched == 0 and world.backend.created == []
    assert failed.status is S.FAILED and failed.history[-1].reason == f"gave up: {MAX_ATTEMPTS} attempts"
    assert world.notifier.statuses(job.job_id)[-1] is S.FAILED


def test_a_failure_at_create_that_loses_a_race_to_a_stop_is_counted_as_a_lost_race(world: World):
    job = world.submit()
    world.backend.refuse_next(F.USER, "ValidationException: bad role")
    # After the claim, and before the launcher records the failure, the user stops the job.
    world.store.interleave(lambda: world.store.interleave(lambda: world.jobs.stop(job.job_id, OWNER)))
    report = world.launcher().run_tick()
    assert report.failed == 0 and report.lost_races == 1
    assert world.store.get(job.job_id).status is S.STOPPED
    assert world.notifier.statuses(job.job_id) == [S.NEW, S.STOPPED]


def test_the_tick_report_reads_as_a_flat_dict(world: World):
    report = LaunchReport(launched=2)
    report.by_class["quota"] += 1
    data = report.as_dict()
    assert data["launched"] == 2 and data["by_class"] == {"quota": 1} and type(data["by_class"]) is dict


def test_the_lag_is_measured_from_when_the_job_became_due(world: World):
    job = world.submit()
    world.clock.advance(timedelta(seconds=90))
    assert world.launcher().run_tick().max_lag_seconds == 90
    world.backend.finish(f"{job.job_id}-a1", TrainingState.FAILED, "AlgorithmError: x")
    world.monitor().sweep()
    due = world.store.get(job.job_id).next_attempt_at
    world.clock.now = due + timedelta(seconds=30)
    assert world.launcher().run_tick().max_lag_seconds == 30


def test_jobs_of_another_type_launch_while_one_type_is_held(world: World):
    world.submit("big", job_args=_args(BIG))
    world.backend.refuse_next(F.QUOTA, "ResourceLimitExceeded: busy")
    world.launcher().run_tick()
    small = world.submit("small", user="U2")
    more_big = world.submit("big2", job_args=_args(BIG), user="U3")
    report = world.launcher().run_tick()
    assert report.held == 1 and report.launched == 1
    assert world.store.get(small.job_id).status is S.LAUNCHED and world.store.get(more_big.job_id).status is S.NEW


def test_a_user_error_at_create_records_the_refused_attempt_and_releases_the_claim(world: World):
    job = world.submit()
    world.clock.advance(timedelta(seconds=5))
    world.backend.refuse_next(F.USER, "ValidationException: bad role")
    world.launcher().run_tick()
    failed = world.store.get(job.job_id)
    assert failed.status is S.FAILED and failed.lease is None
    [attempt] = failed.attempts
    assert (attempt.name, attempt.outcome, attempt.failure_class) == (f"{job.job_id}-a1", AttemptOutcome.NOT_STARTED, F.USER)
    assert attempt.reason == "ValidationException: bad role" and attempt.ended_at == world.clock()


def test_a_job_failed_at_the_attempt_cap_keeps_its_attempts(world: World):
    job = world.submit()
    attempts = [
        Attempt(number=n, name=f"{job.job_id}-a{n}", claimed_at=world.clock(), outcome=AttemptOutcome.NOT_STARTED)
        for n in range(1, MAX_ATTEMPTS + 1)
    ]
    world.store.update(world.store.get(job.job_id), at=world.clock(), attempts=attempts)
    world.launcher().run_tick()
    assert len(world.store.get(job.job_id).attempts) == MAX_ATTEMPTS


def test_a_quota_refusal_tells_the_user_sagemakers_words_and_stamps_the_write(world: World):
    job = world.submit()
    world.clock.advance(timedelta(seconds=5))
    world.backend.refuse_next(F.QUOTA, "ResourceLimitExceeded: quota in use")
    world.launcher().run_tick()
    retrying = world.store.get(job.job_id)
    assert retrying.history[-1].reason == "ResourceLimitExceeded: quota in use"
    assert retrying.updated_at == world.clock() and retrying.current_attempt.ended_at == world.clock()
    world.clock.now = retrying.next_attempt_at
    world.backend.refuse_next(F.QUOTA, "ResourceLimitExceeded: still")
    world.launcher().run_tick()
    assert world.store.get(job.job_id).updated_at == world.clock()


def test_a_throttled_create_stamps_the_release_of_the_claim(world: World):
    job = world.submit()
    world.clock.advance(timedelta(seconds=5))
    world.backend.refuse_next(F.THROTTLING, "ThrottlingException")
    world.launcher().run_tick()
    stored = world.store.get(job.job_id)
    assert stored.updated_at == world.clock() and stored.lease is None


def test_the_tick_report_counts_every_job_of_the_tick(world: World):
    for i in range(2):
        world.submit(f"user-error-{i}", user=f"UA{i}")
    for _ in range(2):
        world.backend.refuse_next(F.USER, "ValidationException: bad role")
    report = world.launcher().run_tick()
    assert report.failed == 2 and report.by_class == {"user": 2}

    for i in range(2):
        world.submit(f"throttled-{i}", user=f"UB{i}")
    for _ in range(2):
        world.backend.refuse_next(F.THROTTLING, "ThrottlingException")
    report = world.launcher().run_tick()
    assert report.kept_due == 2 and report.by_class == {"throttling": 2}
    world.launcher().run_tick()  # clear them

    for i in range(2):
        world.submit(f"quota-{i}", job_args=_args(f"ml.g5.{['2xlarge', '4xlarge'][i]}"), user=f"UC{i}")
    for _ in range(2):
        world.backend.refuse_next(F.QUOTA, "ResourceLimitExceeded: busy")
    assert world.launcher().run_tick().retrying == 2


def test_two_jobs_stopped_during_their_failing_creates_are_two_lost_races(world: World):
    first, second = world.submit("j0"), world.submit("j1", user="U2")  # launched in this order
    for _ in range(2):
        world.backend.refuse_next(F.USER, "ValidationException: bad role")
    # The tick's writes: claim j0, fail j0, claim j1, fail j1. Each owner stops their job
    # between its claim and the launcher's recording of its failure.
    def before_failing_first() -> None:
        world.jobs.stop(first.job_id, OWNER)
        world.store.interleave(lambda: world.store.interleave(lambda: world.jobs.stop(second.job_id, COLLEAGUE)))

    world.store.interleave(lambda: world.store.interleave(before_failing_first))
    report = world.launcher().run_tick()
    assert report.lost_races == 2 and report.failed == 0
    assert world.store.get(first.job_id).status is S.STOPPED and world.store.get(second.job_id).status is S.STOPPED


def test_the_backoff_is_reproducible_from_the_launchers_random_source():
    def next_attempt(seed: int):
        world = World()
        job = world.submit()
        world.backend.refuse_next(F.QUOTA, "ResourceLimitExceeded: busy")
        Launcher(
            world.store, world.backend, world.dispatcher, policy=POLICY, instance_limits={}, pacer=world.pacer(),
            clock=world.clock, rng=random.Random(seed),
        ).run_tick()
        return world.store.get(job.job_id).next_attempt_at

    assert next_attempt(11) == next_attempt(11)
    assert next_attempt(11) != next_attempt(12)


# --- creates whose outcome SageMaker keeps leaving unknown --------------------------------------


def _service_error(world: World, times: int = 1) -> None:
    from backend.domain.policy import Classification
    from backend.errors import CreateRefused

    for _ in range(times):
        world.backend.refusals.append(CreateRefused(Classification(F.THROTTLING, "500: InternalFailure", service_error=True)))


def test_a_create_answered_500_every_time_backs_off_says_why_and_fails_after_a_bounded_run(world: World):
    from backend.domain.policy import CREATE_SERVICE_ERRORS_MAX

    job = world.submit()
    _service_error(world, times=100)
    launcher = world.launcher()
    launcher.run_tick()
    waiting = world.store.get(job.job_id)
    assert waiting.status is S.RETRYING and waiting.next_attempt_at > world.clock()
    assert waiting.waiting.startswith(f"waiting: SageMaker could not say whether {job.job_id}-a1 was created (1 service error")
    assert [a.outcome for a in waiting.attempts] == [AttemptOutcome.PENDING]  # no attempt spent
    launcher.run_tick()
    assert len(world.backend.refusals) == 99  # backing off: not tried again every tick

    ticks = 0
    while world.store.get(job.job_id).status is S.RETRYING and ticks < 100:
        world.clock.advance(timedelta(seconds=POLICY.max_seconds))
        launcher.run_tick()
        ticks += 1
    failed = world.store.get(job.job_id)
    assert failed.status is S.FAILED and 100 - len(world.backend.refusals) == CREATE_SERVICE_ERRORS_MAX
    assert failed.history[-1].reason == (
        f"SageMaker answered {CREATE_SERVICE_ERRORS_MAX} creates of {job.job_id}-a1 in a row with a service error "
        "and it does not exist; last: 500: InternalFailure"
    )
    assert world.backend.created == []


def test_an_attempt_that_exists_after_a_run_of_500s_is_adopted_not_failed(world: World):
    from backend.domain.policy import CREATE_SERVICE_ERRORS_MAX

    job = world.submit()
    _service_error(world, times=CREATE_SERVICE_ERRORS_MAX)
    launcher = world.launcher()
    for _ in range(CREATE_SERVICE_ERRORS_MAX):
        launcher.run_tick()
        world.clock.advance(timedelta(seconds=POLICY.max_seconds))
    # The last create's answer was lost, but SageMaker did create it.
    world.backend.jobs[f"{job.job_id}-a1"] = _running(f"{job.job_id}-a1")
    report = launcher.run_tick()
    assert report.adopted == 1 and world.store.get(job.job_id).status is S.LAUNCHED


def test_creates_failing_for_several_jobs_slow_the_shared_pace_once_per_tick(world: World):
    pacer = TokenBucket(rate=8, burst=100, monotonic=world.clock.monotonic, sleep=world.clock.sleep)
    launcher = Launcher(world.store, world.backend, world.dispatcher, policy=POLICY, instance_limits={}, pacer=pacer, clock=world.clock)
    world.submit("a")
    world.submit("b", user="U2")
    fine = world.submit("c", user="U3")
    _service_error(world, times=2)
    report = launcher.run_tick()
    assert report.kept_due == 2 and pacer.penalties == 1  # halved once, then the launch won a little back
    assert pacer.rate == pytest.approx(4.4)
    assert world.store.get(fine.job_id).status is S.LAUNCHED


def _running(name: str):
    from backend.ports import TrainingStatus

    return TrainingStatus(name=name, state=TrainingState.RUNNING)

"""A Describe that SageMaker refuses for good (AccessDenied) is not a throttle: once it has
persisted for a few sweeps and a quarter of an hour the job is Failed with the reason, its
owner told once, its instance slot freed and StopTrainingJob sent; a throttle never fails it."""

from __future__ import annotations

from datetime import timedelta

from backend.domain.model import AttemptOutcome
from backend.domain.status import JobStatus
from backend.services.monitor import REFUSAL_GRACE, REFUSALS_MAX
from tests.unit.services.conftest import World

S = JobStatus
SWEEP = timedelta(minutes=10)


def _sweeps(world: World, count: int) -> None:
    for _ in range(count):
        world.monitor().sweep()
        world.clock.advance(SWEEP)


def test_a_describe_refused_for_good_fails_the_job_once_it_persists(world: World):
    job = world.launched()
    world.monitor().sweep()
    assert world.store.get(job.job_id).status is S.IN_PROGRESS
    world.backend.describe_refused = True

    _sweeps(world, REFUSALS_MAX - 1)
    assert world.store.get(job.job_id).status is S.IN_PROGRESS  # not yet: it may be fixed soon
    _sweeps(world, 1)

    stored = world.store.get(job.job_id)
    name = f"{job.job_id}-a1"
    assert stored.status is S.FAILED
    assert stored.history[-1].reason.startswith(f"Trainbot may not describe {name}: AccessDeniedException")
    assert "sagemaker:DescribeTrainingJob permission" in stored.history[-1].reason
    assert stored.current_attempt.outcome is AttemptOutcome.FAILED
    assert world.backend.stops == [name]
    _sweeps(world, 3)  # no longer active: looked at, stopped and told only once
    assert world.notifier.statuses(job.job_id).count(S.FAILED) == 1
    assert world.backend.stops == [name]


def test_three_refusals_within_the_grace_period_do_not_fail_the_job(world: World):
    job = world.launched()
    world.backend.describe_refused = True
    for _ in range(REFUSALS_MAX + 2):
        world.monitor().sweep()
        world.clock.advance(timedelta(minutes=1))
    assert world.clock() - job.updated_at < REFUSAL_GRACE
    stored = world.store.get(job.job_id)
    assert stored.status is S.LAUNCHED and stored.current_attempt.describe_refusals == REFUSALS_MAX + 2


def test_a_describe_answered_again_starts_the_count_afresh(world: World):
    job = world.launched()
    world.backend.describe_refused = True
    _sweeps(world, REFUSALS_MAX - 1)
    world.backend.describe_refused = False
    _sweeps(world, 1)
    world.backend.describe_refused = True
    _sweeps(world, REFUSALS_MAX - 1)
    stored = world.store.get(job.job_id)
    assert stored.status is S.IN_PROGRESS and stored.current_attempt.describe_refusals == REFUSALS_MAX - 1


def test_a_describe_that_is_only_unavailable_never_fails_the_job(world: World):
    job = world.launched()
    world.backend.unavailable = True
    _sweeps(world, 20)
    stored = world.store.get(job.job_id)
    assert stored.status is S.LAUNCHED and stored.current_attempt.describe_refusals is None


def test_failing_a_job_nobody_may_describe_frees_its_instance_slot(world: World):
    world.instance_limits = {"ml.g5.xlarge": 1}
    first = world.launched("first")
    second = world.submit("second")
    world.launcher().run_tick()
    assert world.store.get(second.job_id).status is S.NEW  # the slot is taken
    world.backend.describe_refused = True
    _sweeps(world, REFUSALS_MAX + 1)
    assert world.store.get(first.job_id).status is S.FAILED
    world.backend.describe_refused = False
    world.launcher().run_tick()
    assert world.store.get(second.job_id).status is S.LAUNCHED

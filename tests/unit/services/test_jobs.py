"""The job service's rules on the in-memory store: who may stop or retry a job, what stop and
retry do in each status, and how a lost race is decided again rather than overwritten."""

from __future__ import annotations

import pytest

from backend.domain.status import JobStatus
from backend.errors import IllegalTransition, NotAuthorized, StoreUnavailable
from backend.ports import TrainingState
from backend.services.jobs import Actor
from tests.conftest import job_args
from tests.unit.services.conftest import ADMIN, COLLEAGUE, OWNER, World

S = JobStatus
ADMIN_ACTOR = Actor(team_id="T1", user_id=ADMIN)
OTHER_TEAM = Actor(team_id="T2", user_id="U1")  # same user id, another workspace


def _failed(world: World):
    job = world.launched(retry_budget=0)
    status = world.backend.finish(f"{job.job_id}-a1", TrainingState.FAILED, "AlgorithmError: boom")
    world.monitor().observe(job.job_id, 1, status)
    return world.store.get(job.job_id)


def test_submit_is_idempotent_on_the_client_token_and_announces_once(world: World):
    first = world.jobs.submit(name="bert", job_args=job_args(), actor=OWNER, client_token="slack-trigger-1")
    again = world.jobs.submit(name="bert", job_args=job_args(), actor=OWNER, client_token="slack-trigger-1")
    assert first.created and not again.created and again.job.job_id == first.job.job_id
    world.jobs.stop(first.job.job_id, OWNER)  # an end: the round that tells "New" too
    assert world.notifier.sent == [(first.job.job_id, 1, S.NEW), (first.job.job_id, 2, S.STOPPED)]


@pytest.mark.parametrize("intruder", [COLLEAGUE, OTHER_TEAM], ids=["colleague", "same-user-other-team"])
def test_only_the_owner_or_an_admin_may_stop_a_job(world: World, intruder: Actor):
    job = world.submit()
    with pytest.raises(NotAuthorized):
        world.jobs.stop(job.job_id, intruder)
    assert world.store.get(job.job_id).status is S.NEW
    assert world.jobs.stop(job.job_id, ADMIN_ACTOR).status is S.STOPPED


def test_only_the_owner_or_an_admin_may_retry_a_job(world: World):
    job = _failed(world)
    with pytest.raises(NotAuthorized):
        world.jobs.retry(job.job_id, COLLEAGUE)
    assert world.store.get(job.job_id).status is S.FAILED
    assert world.jobs.retry(job.job_id, ADMIN_ACTOR).status is S.RETRYING


def test_stopping_a_queued_job_stops_it_at_once(world: World):
    job = world.submit()
    stopped = world.jobs.stop(job.job_id, OWNER)
    assert stopped.status is S.STOPPED and world.backend.stops == []
    assert world.store.due_for_launch(world.clock(), 10) == []


def test_stopping_a_running_job_asks_the_backend_and_waits_in_stopping(world: World):
    job = world.launched()
    assert world.jobs.stop(job.job_id, OWNER).status is S.STOPPING
    assert world.backend.stops == [f"{job.job_id}-a1"]
    assert world.jobs.stop(job.job_id, OWNER).status is S.STOPPING  # asking again sends it again
    assert world.backend.stops == [f"{job.job_id}-a1"] * 2


def test_a_finished_job_cannot_be_stopped(world: World):
    job = _failed(world)
    with pytest.raises(IllegalTransition):
        world.jobs.stop(job.job_id, OWNER)


def test_retry_gives_a_failed_job_a_fresh_budget_and_makes_it_due_now(world: World):
    job = _failed(world)
    assert job.algorithm_failures == 1
    retried = world.jobs.retry(job.job_id, OWNER)
    assert retried.status is S.RETRYING and retried.algorithm_failures == 0
    assert [j.job_id for j in world.store.due_for_launch(world.clock(), 10)] == [job.job_id]


def test_only_a_failed_or_stopped_job_can_be_retried(world: World):
    job = world.launched()
    with pytest.raises(IllegalTransition):
        world.jobs.retry(job.job_id, OWNER)


def test_a_stop_that_loses_the_race_to_a_launch_stops_the_launched_job(world: World):
    job = world.submit()
    world.store.interleave(lambda: world.launcher().run_tick())
    stopped = world.jobs.stop(job.job_id, OWNER)
    assert stopped.status is S.STOPPING
    assert world.backend.stops == [f"{job.job_id}-a1"]


def test_a_retry_that_loses_the_race_decides_again_on_what_is_stored(world: World):
    job = _failed(world)
    world.store.interleave(lambda: world.jobs.retry(job.job_id, ADMIN_ACTOR))
    with pytest.raises(IllegalTransition):  # the admin retried it first: now Retrying
        world.jobs.retry(job.job_id, OWNER)
    assert world.store.get(job.job_id).status is S.RETRYING
    assert world.notifier.statuses(job.job_id).count(S.RETRYING) == 1


def test_a_job_that_keeps_changing_gives_up_with_store_unavailable(world: World):
    job = world.submit()

    def bump() -> None:
        world.store.update(world.store.get(job.job_id), at=world.clock(), priority=6)
        world.store.interleave(bump)

    world.store.interleave(bump)
    with pytest.raises(StoreUnavailable):
        world.jobs.stop(job.job_id, OWNER)

"""The job service's use cases end to end on the in-memory store: what a submit records, a
sweep, the Slack thread, listings, and what a refused stop or retry says about the job."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backend.domain.model import FailureClass, SlackThread
from backend.domain.records import RecordKind
from backend.domain.status import JobStatus
from backend.errors import IllegalTransition, StoreUnavailable
from backend.ports import TrainingState
from backend.services.jobs import Actor, JobService
from tests.conftest import job_args, make_job
from tests.unit.services.conftest import OWNER, World

S = JobStatus


def test_a_submit_records_everything_the_user_asked_for(world: World):
    service = JobService(world.store, world.backend, world.dispatcher, clock=world.clock, job_id_prefix="tb-")
    assert service.job_id_prefix == "tb-" and service.store is world.store and service.dispatcher is world.dispatcher
    registered = service.submit(
        name="bert",
        job_args=job_args(),
        actor=Actor(team_id="T7", user_id="U7"),
        slack=SlackThread(channel_id="C1"),
        priority=8,
        retry_budget=4,
        client_token="trigger-1",
        preset="nlp",
    )
    job = world.store.get(registered.job.job_id)
    assert registered.created and job.job_id.startswith("tb-bert-")
    assert (job.owner.team_id, job.owner.user_id) == ("T7", "U7")
    assert job.slack == SlackThread(channel_id="C1")
    assert (job.priority, job.retry_budget, job.client_token, job.preset) == (8, 4, "trigger-1", "nlp")
    assert job.created_at == world.clock() and job.status is S.NEW and job.job_args == job_args()
    assert world.notifier.sent == [(job.job_id, 1, S.NEW)]


def test_a_submit_takes_the_defaults_of_the_grammar(world: World):
    job = world.jobs.submit(name="bert", job_args=job_args(), actor=OWNER).job
    assert (job.priority, job.retry_budget, job.slack, job.preset) == (5, 2, None, None)
    assert not job.job_id.startswith("tb-")


def test_a_sweep_registers_its_jobs_once_and_reports_progress(world: World):
    jobs = [make_job(f"grid-{i}", now=world.clock(), client_token=f"sw/{i}") for i in range(3)]
    progress: list[tuple[int, int]] = []
    ids = world.jobs.submit_sweep(jobs, "sw", on_progress=lambda done, total: progress.append((done, total)))
    assert ids == [j.job_id for j in jobs] and progress == [(1, 3), (2, 3), (3, 3)]
    assert world.jobs.submit_sweep(jobs, "sw") == ids  # a repeated delivery registers nothing new
    assert [world.jobs.get(i).status for i in ids] == [S.NEW] * 3


def test_the_thread_root_is_attached_once(world: World):
    job = world.jobs.submit(name="bert", job_args=job_args(), actor=OWNER, slack=SlackThread(channel_id="C1")).job
    world.jobs.attach_thread(job.job_id, "C1", "111.1")
    world.jobs.attach_thread(job.job_id, "C1", "222.2")
    assert world.jobs.get(job.job_id).slack == SlackThread(channel_id="C1", thread_ts="111.1")


def test_listings_show_an_owners_jobs_and_everyones_newest_first_in_pages(world: World):
    mine = [world.jobs.submit(name=f"m{i}", job_args=job_args(), actor=OWNER).job for i in range(3)]
    world.clock.advance(timedelta(minutes=1))
    theirs = world.jobs.submit(name="t", job_args=job_args(), actor=Actor(team_id="T1", user_id="U2")).job
    page = world.jobs.list_owner(OWNER.owner, limit=2)
    assert len(page.jobs) == 2 and page.cursor is not None
    rest = world.jobs.list_owner(OWNER.owner, limit=2, cursor=page.cursor)
    assert {j.job_id for j in page.jobs + rest.jobs} == {j.job_id for j in mine} and rest.cursor is None
    everyone = world.jobs.list_all(limit=10)
    assert everyone.jobs[0].job_id == theirs.job_id and len(everyone.jobs) == 4 and everyone.cursor is None
    assert len(world.jobs.list_all().jobs) == 4  # the default page holds them all
    assert len(world.jobs.list_owner(OWNER.owner).jobs) == 3


@pytest.mark.parametrize("status", [S.LAUNCHED, S.IN_PROGRESS, S.NEW, S.RETRYING, S.STOPPING, S.COMPLETED])
def test_a_retry_refused_for_the_jobs_status_says_which_job_and_which_move(world: World, status: JobStatus):
    job = world.store.register(make_job(now=world.clock())).job
    if status is not S.NEW:
        path = {
            S.LAUNCHED: [S.LAUNCHED],
            S.IN_PROGRESS: [S.LAUNCHED, S.IN_PROGRESS],
            S.RETRYING: [S.RETRYING],
            S.STOPPING: [S.LAUNCHED, S.STOPPING],
            S.COMPLETED: [S.LAUNCHED, S.COMPLETED],
        }[status]
        for step in path:
            job = world.store.transition(job, step, at=world.clock()).job
    with pytest.raises(IllegalTransition) as refused:
        world.jobs.retry(job.job_id, OWNER)
    assert (refused.value.job_id, refused.value.from_status, refused.value.to_status) == (job.job_id, status.value, "Retrying")
    assert world.store.get(job.job_id).version == job.version


def test_a_stop_refused_for_a_finished_job_says_which_job_and_which_move(world: World):
    job = world.store.register(make_job(now=world.clock())).job
    job = world.store.transition(job, S.LAUNCHED, at=world.clock()).job
    job = world.store.transition(job, S.COMPLETED, at=world.clock()).job
    with pytest.raises(IllegalTransition) as refused:
        world.jobs.stop(job.job_id, OWNER)
    assert (refused.value.job_id, refused.value.from_status, refused.value.to_status) == (job.job_id, "Completed", "Stopped")


def test_a_stop_before_launch_says_who_stopped_it_and_clears_its_place_in_the_queue(world: World):
    job = world.submit()
    stopped = world.jobs.stop(job.job_id, OWNER)
    assert stopped.history[-1].reason == "stopped by <@U1> before launch"
    stored = world.store.get(job.job_id)
    assert stored.lease is None and stored.next_attempt_at is None
    assert world.notifier.statuses(job.job_id) == [S.NEW, S.STOPPED]


def test_a_retry_clears_the_capacity_wait_and_any_claim(world: World):
    job = world.launched()
    status = world.backend.finish(f"{job.job_id}-a1", TrainingState.FAILED, "ClientError: bad image")
    world.monitor().observe(job.job_id, 1, status)
    failed = world.store.get(job.job_id)
    failed = world.store.update(failed, at=world.clock(), capacity_wait_since=world.clock() - timedelta(hours=2)).job
    retried = world.jobs.retry(job.job_id, OWNER)
    assert retried.capacity_wait_since is None and retried.lease is None
    assert retried.next_attempt_at == world.clock() and retried.history[-1].reason == "retry requested by <@U1>"
    assert world.notifier.statuses(job.job_id)[-1] is S.RETRYING


def test_a_retry_that_keeps_losing_races_gives_up_with_store_unavailable(world: World):
    job = world.launched()
    status = world.backend.finish(f"{job.job_id}-a1", TrainingState.FAILED, "ClientError: bad image")
    world.monitor().observe(job.job_id, 1, status)

    def bump() -> None:
        world.store.update(world.store.get(job.job_id), at=world.clock(), priority=6)
        world.store.interleave(bump)

    world.store.interleave(bump)
    with pytest.raises(StoreUnavailable, match="kept changing while retrying it"):
        world.jobs.retry(job.job_id, OWNER)


def test_stopping_a_retrying_job_stops_it_at_once_without_a_stop_for_its_ended_attempt(world: World):
    job = world.launched(retry_budget=2)
    world.monitor().observe(job.job_id, 1, world.backend.finish(f"{job.job_id}-a1", TrainingState.FAILED, "AlgorithmError: x"))
    assert world.store.get(job.job_id).status is S.RETRYING
    stopped = world.jobs.stop(job.job_id, OWNER)
    assert stopped.status is S.STOPPED and world.backend.stops == []
    assert world.store.due_for_launch(world.clock() + timedelta(days=1), 10) == []


def test_stopping_a_job_whose_create_may_be_in_flight_stops_that_attempt_too(world: World):
    job = world.submit()
    world.backend.refuse_next(FailureClass.THROTTLING, "ThrottlingException")
    world.launcher().run_tick()  # attempt 1 is named; SageMaker may or may not have it
    stopped = world.jobs.stop(job.job_id, OWNER)
    assert stopped.status is S.STOPPED and world.backend.stops == [f"{job.job_id}-a1"]


def test_stopping_a_job_in_progress_asks_sagemaker_to_stop_it(world: World):
    job = world.launched()
    world.monitor().sweep()
    assert world.store.get(job.job_id).status is S.IN_PROGRESS
    stopping = world.jobs.stop(job.job_id, OWNER)
    assert stopping.status is S.STOPPING and stopping.history[-1].reason == "stopped by <@U1>"
    assert world.backend.stops == [f"{job.job_id}-a1"]


def test_listings_come_in_pages_of_ten_by_default_and_page_on(world: World):
    for i in range(12):
        world.jobs.submit(name=f"m{i}", job_args=job_args(), actor=OWNER)
    first = world.jobs.list_all()
    assert len(first.jobs) == 10 and first.cursor is not None
    rest = world.jobs.list_all(cursor=first.cursor)
    assert len(rest.jobs) == 2 and not {j.job_id for j in rest.jobs} & {j.job_id for j in first.jobs}
    assert len(world.jobs.list_owner(OWNER.owner).jobs) == 10


def test_two_sweeps_are_registered_under_their_own_ids(world: World):
    first = [make_job(f"a-{i}", now=world.clock(), client_token=f"a/{i}") for i in range(2)]
    second = [make_job(f"b-{i}", now=world.clock(), client_token=f"b/{i}") for i in range(2)]
    assert world.jobs.submit_sweep(first, "sw-a") == [j.job_id for j in first]
    assert world.jobs.submit_sweep(second, "sw-b") == [j.job_id for j in second]
    assert world.store.get_record(RecordKind.SWEEP, "sw-b")["JobIds"] == [j.job_id for j in second]


def test_a_stop_that_keeps_losing_races_says_so(world: World):
    job = world.submit()

    def bump() -> None:
        world.store.update(world.store.get(job.job_id), at=world.clock(), priority=6)
        world.store.interleave(bump)

    world.store.interleave(bump)
    with pytest.raises(StoreUnavailable, match=f"{job.job_id} kept changing while stopping it; try again"):
        world.jobs.stop(job.job_id, OWNER)


def test_a_job_stopped_while_claimed_keeps_no_claim_and_no_due_time(world: World):
    job = world.launched(retry_budget=2)
    world.monitor().observe(job.job_id, 1, world.backend.finish(f"{job.job_id}-a1", TrainingState.FAILED, "AlgorithmError: x"))
    world.clock.now = world.store.get(job.job_id).next_attempt_at
    world.backend.during_create = lambda _name: world.jobs.stop(job.job_id, OWNER)  # mid-launch
    world.launcher().run_tick()
    stopped = world.store.get(job.job_id)
    assert stopped.status is S.STOPPED and stopped.lease is None and stopped.next_attempt_at is None

"""Budgets that hold and approvals without holes (issue 22), on the in-memory store: a job's
estimate is reserved while it may still run and given back when it ends; held means held until
an admin decides, whatever the owner does; an interrupted approval finishes on the next press,
and an approval kicks the launcher."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from backend.domain.approval import ApprovalRules, ApprovalState
from backend.domain.cost import iso_week, repo_prices
from backend.domain.model import Approval, Attempt, AttemptOutcome, FailureClass
from backend.domain.records import RecordKind
from backend.domain.status import JobStatus
from backend.errors import StoreUnavailable
from backend.ports import TrainingState
from backend.services.budget import Approvals, Budgets, CostGuard, OverBudget, committed_hours
from backend.services.jobs import RejectedByAdmin
from backend.services.monitor import Monitor
from tests.conftest import job_args, make_job
from tests.unit.services.conftest import ADMIN, OWNER, POLICY, World

HOURS_40 = job_args(StoppingCondition={"MaxRuntimeInSeconds": 40 * 3600})


def _pending() -> Approval:
    return Approval(state=ApprovalState.PENDING, reasons=["ml.p5.48xlarge needs approval"])


def _budgets(world: World, budget: float = 50) -> Budgets:
    return Budgets(world.store, budgets={"*": budget}, user_teams={}, clock=world.clock)


def _approvals(world: World, budgets: Budgets | None = None, kicks: list | None = None) -> Approvals:
    return Approvals(
        world.store, world.dispatcher, is_admin=lambda u: u == ADMIN, clock=world.clock, records=world.store,
        budgets=budgets, on_approved=kicks.append if kicks is not None else None,
    )


def _week(world: World) -> str:
    return iso_week(world.clock())


def _wire(world: World, budgets: Budgets, mode: str = "refuse") -> CostGuard:
    guard = CostGuard(repo_prices(), ApprovalRules(), budgets, budget_mode=mode)
    world.jobs.use_budget(guard.admit, budgets.release)
    return guard


# --- retry and holds ---------------------------------------------------------------------------


def test_a_rejected_job_is_not_retried_and_its_owner_is_told_who_rejected_it(world: World):
    held = world.submit("big", user=OWNER.user_id, team=OWNER.team_id, approval=_pending())
    _approvals(world).reject(held.job_id, ADMIN, "too big for this week")

    with pytest.raises(RejectedByAdmin) as refused:
        world.jobs.retry(held.job_id, OWNER)

    assert f"rejected by <@{ADMIN}>: too big for this week" in refused.value.problems[0]
    job = world.store.get(held.job_id)
    assert job.status is JobStatus.STOPPED and job.approval.state is ApprovalState.REJECTED
    assert world.store.due_for_launch(world.clock() + timedelta(hours=1), 10) == []


def test_a_job_stopped_while_held_goes_back_to_held_on_retry_and_is_never_launched(world: World):
    held = world.submit("big", user=OWNER.user_id, team=OWNER.team_id, approval=_pending())
    world.jobs.stop(held.job_id, OWNER)

    retried = world.jobs.retry(held.job_id, OWNER)

    assert retried.status is JobStatus.RETRYING and retried.is_held
    assert "waiting for an admin's approval again" in retried.history[-1].reason
    world.clock.advance(timedelta(minutes=5))
    assert world.store.retrying_due(world.clock(), None) == []
    world.launcher().run_tick()
    assert world.backend.created == []

    _approvals(world).approve(held.job_id, ADMIN)
    world.launcher().run_tick()
    assert world.backend.created == [f"{held.job_id}-a1"]


def _held_sweep(world: World, size: int = 3):
    jobs = [
        make_job(f"sw{i}", user=OWNER.user_id, team=OWNER.team_id, now=world.clock(), sweep_id="sw-1", client_token=f"sw-1/{i}", approval=_pending())
        for i in range(size)
    ]
    ids = world.store.register_many(jobs, "sw-1")
    return ids


def test_approving_a_sweep_whose_card_job_was_stopped_releases_the_rest(world: World):
    card, *rest = _held_sweep(world)
    world.jobs.stop(card, OWNER)

    decision = _approvals(world).approve(card, ADMIN)

    assert decision.changed
    assert all(not world.store.get(i).is_held for i in rest)
    assert world.store.get(card).status is JobStatus.STOPPED


def test_a_second_press_finishes_an_approval_that_crashed_midway(world: World, monkeypatch):
    card, second, third = _held_sweep(world)
    approvals = _approvals(world)
    real_update = world.store.update

    def crash_on_third(job, **kwargs):
        if job.job_id == third:
            raise StoreUnavailable("the Lambda died here")
        return real_update(job, **kwargs)

    monkeypatch.setattr(world.store, "update", crash_on_third)
    with pytest.raises(StoreUnavailable):
        approvals.approve(card, ADMIN)
    assert world.store.get(third).is_held
    monkeypatch.setattr(world.store, "update", real_update)

    decision = approvals.approve(card, ADMIN)

    assert decision.changed
    assert all(world.store.get(i).approval.state is ApprovalState.APPROVED for i in (card, second, third))


def test_an_approval_kicks_the_launcher_once_for_a_sweep(world: World):
    card, *_ = _held_sweep(world)
    kicks: list = []

    _approvals(world, kicks=kicks).approve(card, ADMIN)
    _approvals(world, kicks=kicks).approve(card, ADMIN)  # nothing left to release: no kick

    assert len(kicks) == 1


# --- reservations ------------------------------------------------------------------------------


def test_accepted_jobs_reserve_their_estimate_and_the_one_that_does_not_fit_is_refused(world: World):
    guard = _wire(world, _budgets(world))
    first = guard.admit([make_job("a", job_args=HOURS_40, now=world.clock())])
    assert first[0].reservation
    with pytest.raises(OverBudget) as refused:
        guard.admit([make_job("b", job_args=HOURS_40, now=world.clock())])
    assert "40.0 of 50.0 instance-hours committed" in refused.value.problems[0] and "10.0 left" in refused.value.problems[0]
    assert committed_hours(world.store, "U1", _week(world)) == 40


def test_in_approve_mode_the_job_that_does_not_fit_is_held_without_a_reservation(world: World):
    guard = _wire(world, _budgets(world), mode="approve")
    guard.admit([make_job("a", job_args=HOURS_40, now=world.clock())])
    [second] = guard.admit([make_job("b", job_args=HOURS_40, now=world.clock())])
    assert second.is_held and second.reservation is None and "over the weekly budget" in second.approval.reasons[0]


def test_an_ended_job_gives_back_what_it_did_not_use(world: World):
    budgets = _budgets(world)
    [job] = budgets.reserve([make_job("a", job_args=HOURS_40, now=world.clock())])
    world.store.register(job)
    ended = world.clock() + timedelta(hours=3)
    attempt = Attempt(
        number=1, name=f"{job.job_id}-a1", claimed_at=world.clock(), outcome=AttemptOutcome.COMPLETED, ended_at=ended, billable_seconds=3 * 3600
    )
    done = job.model_copy(update={"status": JobStatus.COMPLETED, "attempts": [attempt]})

    budgets.record_attempt(done, attempt)
    budgets.record_attempt(done, attempt)  # a duplicated event gives back nothing more

    record = world.store.get_record(RecordKind.USAGE, f"U1#{_week(world)}")
    assert record["Reserved"] == 0 and record["Seconds"] == 3 * 3600
    assert committed_hours(world.store, "U1", _week(world)) == 3


def test_a_job_stopped_before_launch_gives_its_reservation_back_and_a_retry_reserves_again(world: World):
    budgets = _budgets(world)
    guard = _wire(world, budgets)
    [job] = guard.admit([make_job("a", job_args=HOURS_40, user=OWNER.user_id, team=OWNER.team_id, now=world.clock())])
    world.store.register(job)

    world.jobs.stop(job.job_id, OWNER)
    assert committed_hours(world.store, OWNER.user_id, _week(world)) == 0

    retried = world.jobs.retry(job.job_id, OWNER)
    assert retried.reservation and retried.reservation != job.reservation
    assert committed_hours(world.store, OWNER.user_id, _week(world)) == 40
    world.jobs.stop(job.job_id, OWNER)
    guard.admit([make_job("b", job_args=job_args(StoppingCondition={"MaxRuntimeInSeconds": 11 * 3600}), now=world.clock())])
    with pytest.raises(OverBudget):  # 11 h taken since: the retry's 40 h no longer fit
        world.jobs.retry(job.job_id, OWNER)
    assert world.store.get(job.job_id).status is JobStatus.STOPPED


def test_an_approval_reserves_the_jobs_estimate_once_however_often_it_is_pressed(world: World):
    budgets = _budgets(world, budget=10)
    held = world.submit("big", job_args=HOURS_40, approval=_pending())

    _approvals(world, budgets).approve(held.job_id, ADMIN)
    _approvals(world, budgets).approve(held.job_id, ADMIN)

    assert world.store.get(held.job_id).reservation
    # An admin's decision commits even past the budget (40 of 10): say so, never hide it.
    assert committed_hours(world.store, "U1", _week(world)) == 40


# --- reservations given back wherever a job ends (issue 22 leftovers) ---------------------------


def test_a_job_the_launcher_fails_without_a_billed_attempt_gives_its_reservation_back(world: World):
    budgets = _budgets(world)
    world.dispatcher.on_end(budgets.release)  # as bootstrap wires it
    [job] = _wire(world, budgets).admit([make_job("a", job_args=HOURS_40, now=world.clock())])
    world.store.register(job)
    assert committed_hours(world.store, "U1", _week(world)) == 40
    world.backend.refuse_next(FailureClass.USER, "ValidationException: bad role")

    world.launcher().run_tick()

    assert world.store.get(job.job_id).status is JobStatus.FAILED
    assert committed_hours(world.store, "U1", _week(world)) == 0


def test_a_job_the_monitor_ends_without_billed_time_gives_its_reservation_back(world: World):
    budgets = _budgets(world)
    world.dispatcher.on_end(budgets.release)
    [job] = _wire(world, budgets).admit([make_job("a", job_args=HOURS_40, now=world.clock())])
    world.store.register(job)
    world.launcher().run_tick()
    world.backend.finish(f"{job.job_id}-a1", TrainingState.FAILED, "ClientError: Cannot pull the image")

    world.monitor().sweep()

    assert world.store.get(job.job_id).status is JobStatus.FAILED
    assert committed_hours(world.store, "U1", _week(world)) == 0


def _retrying_world(world: World, budget: float) -> tuple[Budgets, Monitor, str]:
    """A 40 h job launched under ``budget``, and a monitor counting usage and renewing retries
    as bootstrap wires it."""
    budgets = _budgets(world, budget=budget)
    guard = _wire(world, budgets)
    world.dispatcher.on_end(budgets.release)
    [job] = guard.admit([make_job("a", job_args=HOURS_40, now=world.clock())])
    world.store.register(job)
    world.launcher().run_tick()
    monitor = Monitor(
        world.store, world.backend, world.dispatcher, policy=POLICY, pacer=world.pacer(), clock=world.clock,
        on_attempt_end=budgets.record_attempt, readmit=guard.readmit, release=budgets.release,
    )
    return budgets, monitor, job.job_id


def _algorithm_error(world: World, name: str, billed_hours: int) -> None:
    world.clock.advance(timedelta(hours=billed_hours))
    status = world.backend.finish(name, TrainingState.FAILED, "AlgorithmError: ExitCode 1", ended_at=world.clock())
    world.backend.jobs[name] = replace(status, billable_seconds=billed_hours * 3600)


def test_an_automatic_retry_that_would_pass_the_budget_is_held_for_an_admin(world: World):
    _, monitor, job_id = _retrying_world(world, budget=50)

    _algorithm_error(world, f"{job_id}-a1", billed_hours=30)
    monitor.sweep()

    job = world.store.get(job_id)
    assert job.status is JobStatus.RETRYING and job.is_held and "over the weekly budget" in job.approval.reasons[0]
    # 30 h billed, the 40 h reservation given back: another 40 h attempt does not fit in 50.
    assert committed_hours(world.store, "U1", _week(world)) == 30
    world.clock.advance(timedelta(hours=1))
    world.launcher().run_tick()
    assert world.backend.created == [f"{job_id}-a1"]


def test_an_automatic_retry_that_fits_reserves_its_next_attempt_and_never_passes_the_budget(world: World):
    _, monitor, job_id = _retrying_world(world, budget=100)

    _algorithm_error(world, f"{job_id}-a1", billed_hours=30)
    monitor.sweep()
    assert committed_hours(world.store, "U1", _week(world)) == 70  # 30 billed + 40 for attempt 2
    world.clock.advance(timedelta(hours=1))
    world.launcher().run_tick()
    _algorithm_error(world, f"{job_id}-a2", billed_hours=40)
    monitor.sweep()

    job = world.store.get(job_id)
    # 70 billed: a third 40 h attempt would pass 100, so it waits for an admin.
    assert job.status is JobStatus.RETRYING and job.is_held
    assert committed_hours(world.store, "U1", _week(world)) == 70

"""backend/services/budget.py's rules one by one, on the in-memory store: how a week's committed
hours are read, where a budget's limit lies to the second, the reservation's token, what an
assessment holds or refuses and with which words, and what an admin's reject records. The
end-to-end flows are in test_budget_holds.py."""

from __future__ import annotations

import pytest

from backend.domain.approval import ApprovalRules, ApprovalState
from backend.domain.cost import PriceTable, iso_week
from backend.domain.model import Approval, Attempt
from backend.domain.records import RecordKind
from backend.domain.status import JobStatus
from backend.errors import NotAuthorized
from backend.services.budget import (
    Approvals,
    BudgetCheck,
    Budgets,
    CostGuard,
    OverBudget,
    attempt_ended,
    committed_hours,
    reservation_seconds,
)
from tests.conftest import T0, job_args, make_job
from tests.fakes.memory_store import MemoryJobStore
from tests.unit.services.conftest import ADMIN, World

WEEK = iso_week(T0)
HOUR = job_args()  # ml.g5.xlarge x 1 for at most an hour: reserves 3,600 instance-seconds
PRICES = PriceTable(prices={"ml.g5.xlarge": 2.0}, source="test")


def _budgets(store, budgets: dict[str, float], teams: dict[str, str] | None = None) -> Budgets:
    return Budgets(store, budgets=budgets, user_teams=teams or {}, clock=lambda: T0)


# --- reading a week ----------------------------------------------------------------------------


def test_committed_hours_are_the_records_committed_seconds_or_for_an_old_record_its_billed_seconds():
    store = MemoryJobStore()
    assert committed_hours(store, "ml", WEEK) == 0.0
    store.put_record(RecordKind.USAGE, f"ml#{WEEK}", {"Seconds": 7200})  # from before reservations
    assert committed_hours(store, "ml", WEEK) == 2.0
    store.put_record(RecordKind.USAGE, f"ml#{WEEK}", {"Seconds": 7200, "Committed": 10800})
    assert committed_hours(store, "ml", WEEK) == 3.0


def test_a_weeks_check_reads_billed_and_reserved_hours_and_the_teams_budget():
    store = MemoryJobStore()
    store.put_record(RecordKind.USAGE, f"ml#{WEEK}", {"Seconds": 3600, "Reserved": 5400})
    budgets = _budgets(store, {"ml": 10, "*": 99}, {"U1": "ml"})
    check = budgets.check("U1")
    assert check == BudgetCheck("ml", WEEK, 1.0, 10, 0.0, 1.5)
    assert budgets.used_hours("ml", WEEK) == 1.0
    assert budgets.budget_of("other") == 99 and _budgets(store, {}).budget_of("ml") is None
    assert budgets.team_of("U2") == "U2"  # a user in no team is a team of one


def test_a_check_is_over_only_past_the_budget_and_says_so_in_numbers():
    at = BudgetCheck("ml", "2026-W45", used_hours=6, budget_hours=10, asked_hours=1, reserved_hours=3)
    assert not at.over and at.left_hours == 1.0  # exactly the budget: fits
    assert BudgetCheck("ml", "2026-W45", 6, 10, 1.01, 3).over
    assert BudgetCheck("ml", "2026-W45", 12, 10).left_hours == 0.0
    assert at.text() == "team `ml` has 9.00 of 10.0 instance-hours committed in 2026-W45 (6.00 used, 3.00 reserved)"
    free = BudgetCheck("ml", "2026-W45", 6, None, 1000, 3)
    assert not free.over and free.left_hours is None
    assert free.text() == "team `ml` has 9.00 instance-hours committed in 2026-W45 (6.00 used, 3.00 reserved; no budget)"


# --- reservations ------------------------------------------------------------------------------


def test_a_reservation_that_fills_the_budget_to_the_second_fits_one_second_more_does_not():
    store = MemoryJobStore()
    budgets = _budgets(store, {"*": 2})
    first = make_job("a", job_args=HOUR)
    assert reservation_seconds(first) == 3600
    assert budgets.reserve([first]) is not None
    assert budgets.reserve([make_job("b", job_args=HOUR)]) is not None  # 7,200 of 7,200
    assert budgets.reserve([make_job("c", job_args=job_args(StoppingCondition={"MaxRuntimeInSeconds": 1}))]) is None
    assert budgets.reserve([make_job("d", job_args=HOUR)], force=True) is not None  # an admin's approval


def test_the_reservation_names_the_week_and_the_jobs_next_history_entry_or_the_seq_given():
    budgets = _budgets(MemoryJobStore(), {"ml|nlp": 10}, {"U1": "ml|nlp"})
    job = make_job("a", job_args=HOUR)
    [reserved] = budgets.reserve([job])
    assert reserved.reservation == f"ml|nlp#{WEEK}|{job.job_id}.{job.last_seq + 1}"
    [again] = budgets.reserve([make_job("b", job_args=HOUR)], seq=7)
    assert again.reservation.endswith(".7")
    # a team name may hold '|': the token is what follows the last one
    assert budgets.release(reserved) is True
    assert budgets.release(reserved) is False  # once
    assert budgets.release(job) is False  # it reserved nothing


def test_the_reservation_uses_the_owners_teams_budget():
    store = MemoryJobStore()
    budgets = _budgets(store, {"ml": 1, "*": 100}, {"U1": "ml"})
    assert budgets.reserve([make_job("a", job_args=HOUR)]) is not None
    assert budgets.reserve([make_job("b", job_args=HOUR)]) is None  # ml's one hour is taken


def test_an_attempt_is_counted_once_by_its_name_and_only_once_it_ended_with_billed_time():
    store = MemoryJobStore()
    budgets = _budgets(store, {"*": 10})
    job = make_job("a", job_args=HOUR)
    running = Attempt(number=1, name="a-1", claimed_at=T0)
    assert budgets.record_attempt(job, running) is False
    assert budgets.record_attempt(job, running.model_copy(update={"billable_seconds": 60})) is False  # not ended
    assert budgets.record_attempt(job, running.model_copy(update={"ended_at": T0})) is False  # nothing billed
    ended = running.model_copy(update={"billable_seconds": 60, "ended_at": T0})
    assert budgets.record_attempt(job, ended) is True
    assert budgets.record_attempt(job, ended.model_copy(update={"name": "a-1"})) is False
    assert budgets.record_attempt(job, ended.model_copy(update={"name": "a-2"})) is True
    assert budgets.used_hours("U1", WEEK) == 120 / 3600


def test_attempt_ended_is_the_attempt_that_this_write_ended_with_billed_time():
    job = make_job("a")
    running = Attempt(number=1, name="a-1", claimed_at=T0)
    ended = running.model_copy(update={"billable_seconds": 60, "ended_at": T0})
    before = job.model_copy(update={"attempts": [running]})
    assert attempt_ended(before, before.model_copy(update={"attempts": [ended]})) == ended
    assert attempt_ended(job, job.model_copy(update={"attempts": [ended]})) == ended  # first seen ended
    after = before.model_copy(update={"attempts": [ended]})
    assert attempt_ended(after, after) is None  # ended before this write
    for half in ({"billable_seconds": 60}, {"ended_at": T0}):
        unfinished = running.model_copy(update=half)
        assert attempt_ended(before, before.model_copy(update={"attempts": [unfinished]})) is None
        # an earlier read that had only half of it: the end is this write's
        assert attempt_ended(before.model_copy(update={"attempts": [unfinished]}), after) == ended
    assert attempt_ended(job, job) is None


# --- assessing a submission --------------------------------------------------------------------


def test_an_assessment_prices_the_jobs_and_counts_a_sweeps_jobs_only_for_a_sweep():
    guard = CostGuard(PRICES, ApprovalRules(sweep_size=1), None)
    one = guard.assess([HOUR, HOUR], "U1")
    assert one.approval is None and one.budget is None
    assert (one.estimate.jobs, one.estimate.instance_hours, one.estimate.money) == (2, 2.0, 4.0)
    sweep = guard.assess([HOUR, HOUR], "U1", sweep=True)
    assert sweep.approval == Approval(state=ApprovalState.PENDING, reasons=["a sweep of 2 jobs is more than 1"])
    assert CostGuard(PRICES, ApprovalRules(instance_hours=1.5), None).assess([HOUR, HOUR], "U1").approval.reasons == [
        "2.0 instance-hours is more than 1.5"
    ]
    assert CostGuard(lambda: PRICES, ApprovalRules(), None).estimate([HOUR]).money == 2.0  # a price book is asked


def test_over_the_budget_is_refused_by_default_with_the_numbers():
    store = MemoryJobStore()
    guard = CostGuard(PRICES, ApprovalRules(), _budgets(store, {"*": 1.5}))
    assert guard.budget_mode == "refuse"
    fits = guard.assess([HOUR], "U1")
    assert fits.approval is None and fits.budget == BudgetCheck("U1", WEEK, 0.0, 1.5, 1.0, 0.0)
    with pytest.raises(OverBudget) as refused:
        guard.assess([HOUR, HOUR], "U1")
    assert refused.value.problems == [
        "over the weekly budget: this asks for up to 2.00 instance-hours; team `U1` has 0.00 of 1.50 instance-hours "
        "committed in " + WEEK + " (0.00 used, 0.00 reserved) (1.50 left). Ask an admin, or try a smaller run."
    ]


def test_in_approve_mode_a_submission_that_no_longer_fits_is_held_pending_with_the_numbers():
    store = MemoryJobStore()
    budgets = _budgets(store, {"*": 1.5})
    guard = CostGuard(PRICES, ApprovalRules(), budgets, budget_mode="approve")
    assert budgets.reserve([make_job("first", job_args=HOUR)]) is not None  # took the room since assess
    held = guard.admit([make_job("late", job_args=HOUR)])
    assert [job.approval for job in held] == [
        Approval(
            state=ApprovalState.PENDING,
            reasons=[
                "over the weekly budget: this asks for up to 1.00 instance-hours; team `U1` has 1.00 of 1.50 "
                "instance-hours committed in " + WEEK + " (0.00 used, 1.00 reserved) (0.50 left)"
            ],
        )
    ]
    assert held[0].reservation is None


def test_admit_leaves_jobs_alone_without_budgets_or_when_they_are_held():
    job = make_job("a", job_args=HOUR)
    assert CostGuard(PRICES, ApprovalRules(), None).admit([job]) == [job]
    budgets = _budgets(MemoryJobStore(), {"*": 0})
    held = job.model_copy(update={"approval": Approval(state=ApprovalState.PENDING, reasons=["big"])})
    guard = CostGuard(PRICES, ApprovalRules(), budgets)
    assert guard.admit([held]) == [held]
    assert guard.admit([]) == []
    with pytest.raises(OverBudget):
        guard.admit([job])  # not held, budget 0: refused


# --- an admin's reject -------------------------------------------------------------------------


def _held(world: World, name: str = "a", **kwargs):
    pending = Approval(state=ApprovalState.PENDING, reasons=["big"])
    return world.store.register(make_job(name, now=world.clock(), approval=pending, **kwargs)).job


def _approvals(world: World, budgets: Budgets | None = None, kicks: list | None = None) -> Approvals:
    return Approvals(
        world.store, world.dispatcher, is_admin=lambda u: u == ADMIN, clock=world.clock, records=world.store,
        budgets=budgets, on_approved=kicks.append if kicks is not None else None,
    )


def test_only_an_admin_may_decide(world: World):
    job = _held(world)
    with pytest.raises(NotAuthorized, match="^only an admin may approve or reject held jobs$"):
        _approvals(world).reject(job.job_id, "U1", "no")
    with pytest.raises(NotAuthorized, match="^only an admin may approve or reject held jobs$"):
        _approvals(world).approve(job.job_id, "U1")


def test_a_reject_records_who_when_and_the_reason_on_one_line_of_at_most_300_characters(world: World):
    job = _held(world)
    decision = _approvals(world).reject(job.job_id, ADMIN, "  too\n big " + "x" * 400)
    why = ("too big " + "x" * 400)[:300]
    assert decision.changed is True and decision.job.job_id == job.job_id
    assert decision.job.approval.decided_by == ADMIN and decision.job.approval.decided_at == world.clock()
    assert decision.job.approval.note == why and len(why) == 300
    assert decision.job.history[-1].reason == f"rejected by <@{ADMIN}>: {why}"
    again = _approvals(world).reject(job.job_id, ADMIN, "twice")
    assert again.changed is False and again.job == world.store.get(job.job_id)
    assert again.job.approval.note == why


def test_a_reject_without_words_says_no_reason_given(world: World):
    job = _held(world)
    assert _approvals(world).reject(job.job_id, ADMIN, " \n ").job.approval.note == "no reason given"


def test_an_approval_records_who_and_when(world: World):
    job = _held(world)
    decision = _approvals(world).approve(job.job_id, ADMIN)
    assert decision.changed is True and decision.job.job_id == job.job_id
    assert (decision.job.approval.state, decision.job.approval.decided_by) == (ApprovalState.APPROVED, ADMIN)
    assert decision.job.approval.decided_at == world.clock()
    again = _approvals(world).approve(job.job_id, ADMIN)
    assert again.changed is False and again.job == world.store.get(job.job_id)


def test_a_reject_gives_back_the_held_jobs_reservation(world: World):
    budgets = _budgets(world.store, {"*": 10})
    job = _held(world)
    [reserved] = budgets.reserve([job])
    world.store.update(job, at=world.clock(), reservation=reserved.reservation)
    assert budgets.check(job.owner.user_id).reserved_hours == 1.0
    _approvals(world, budgets).reject(job.job_id, ADMIN, "no")
    assert budgets.check(job.owner.user_id).reserved_hours == 0.0


def _held_sweep(world: World, size: int = 3):
    pending = Approval(state=ApprovalState.PENDING, reasons=["a sweep of 3 jobs is more than 1"])
    jobs = [make_job(f"s-{i}", now=world.clock(), approval=pending, sweep_id="sw1", client_token=f"sw1/{i}") for i in range(size)]
    world.store.register_many(jobs, "sw1")
    return [job.job_id for job in jobs]


def test_rejecting_a_sweeps_card_rejects_every_held_job_of_the_sweep_with_the_same_words(world: World):
    ids = _held_sweep(world)
    decision = _approvals(world).reject(ids[0], ADMIN, "too big")
    assert decision.changed is True and decision.job.job_id == ids[0]
    for job_id in ids:
        job = world.store.get(job_id)
        assert job.approval.state is ApprovalState.REJECTED and job.approval.decided_by == ADMIN, job_id
        assert job.history[-1].reason == f"rejected by <@{ADMIN}>: too big"


def test_a_second_reject_press_finishes_a_reject_that_stopped_after_the_cards_job(world: World):
    ids = _held_sweep(world)
    approvals = _approvals(world)
    approvals._reject_one(ids[0], ADMIN, "first press")  # the card's job only, then a crash
    decision = approvals.reject(ids[0], ADMIN, "again")
    assert decision.changed is True  # the card's job was decided already; its siblings were not
    assert [world.store.get(i).approval.state for i in ids] == [ApprovalState.REJECTED] * 3


def test_a_reject_press_on_an_approved_card_leaves_the_sweep_alone(world: World):
    ids = _held_sweep(world)
    approvals = _approvals(world)
    approvals._approve_one(ids[0], ADMIN)  # the card's job approved, then a crash
    decision = approvals.reject(ids[0], ADMIN, "changed my mind")
    assert decision.changed is False
    assert [world.store.get(i).approval.state for i in ids] == [ApprovalState.APPROVED] + [ApprovalState.PENDING] * 2


def test_approving_a_sweep_kicks_the_launcher_once_with_the_last_job_released(world: World):
    ids = _held_sweep(world)
    kicks: list[str] = []
    decision = _approvals(world, kicks=kicks).approve(ids[0], ADMIN)
    assert decision.changed is True and decision.job.job_id == ids[0]
    assert kicks == [ids[-1]]
    assert [world.store.get(i).approval.decided_by for i in ids] == [ADMIN] * 3


def test_an_approve_press_on_a_rejected_card_leaves_the_sweep_alone(world: World):
    ids = _held_sweep(world)
    approvals = _approvals(world)
    approvals._reject_one(ids[0], ADMIN, "no")  # the card's job rejected, then a crash
    assert approvals.approve(ids[0], ADMIN).changed is False
    assert [world.store.get(i).approval.state for i in ids] == [ApprovalState.REJECTED] + [ApprovalState.PENDING] * 2


def test_a_job_that_ended_gives_back_its_reservation_one_still_going_keeps_it():
    store = MemoryJobStore()
    budgets = _budgets(store, {"*": 10})
    [job] = budgets.reserve([make_job("a", job_args=HOUR)])
    budgets.job_changed(job)  # New: still going
    assert budgets.check("U1").reserved_hours == 1.0
    budgets.job_changed(job.model_copy(update={"status": JobStatus.COMPLETED}))
    assert budgets.check("U1").reserved_hours == 0.0


def test_a_full_week_says_none_left_and_the_ask_is_shown_to_the_hundredth():
    store = MemoryJobStore()
    budgets = _budgets(store, {"*": 1})
    guard = CostGuard(PRICES, ApprovalRules(), budgets, budget_mode="approve")
    assert budgets.reserve([make_job("first", job_args=HOUR)]) is not None  # the week is full
    big = job_args(
        ResourceConfig={"InstanceType": "ml.g5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 50},
        StoppingCondition={"MaxRuntimeInSeconds": 500 * 3600},
    )
    [held] = guard.admit([make_job("big", job_args=big)])
    assert held.approval.reasons == [
        "over the weekly budget: this asks for up to 1,000.0 instance-hours; team `U1` has 1.00 of 1.00 "
        "instance-hours committed in " + WEEK + " (0.00 used, 1.00 reserved) (0.00 left)"
    ]

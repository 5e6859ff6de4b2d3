"""The cost guard: estimates, weekly team budgets and admin approvals (issue 14).

- :class:`Budgets` bounds what is *committed* (issue 22): a job accepted (or approved, or
  retried by hand) reserves its estimate (max runtime x instances) on its team's week with one
  conditional UpdateItem (``Committed <= budget - asked``: of two submissions racing for the
  last hours exactly one wins); when the job ends its reservation is released and the billed
  time of its attempts stays as usage. So billed + reserved (``Committed``) never exceeds the
  budget, save what an admin approved past it. :func:`committed_hours` reads it.
- :class:`Budgets` also counts what actually ran: when the monitor sees an attempt end, its
  ``BillableTimeInSeconds x InstanceCount`` is added to the small record
  ``usage#<team>#<iso week>`` in one transaction that also marks the attempt counted
  (``counted#<attempt>``, conditional on no mark): a duplicated or reordered SageMaker event
  never counts twice, and the record stays small. Reading a team's week is one GetItem.
- :class:`CostGuard` assesses a submission before anything is written: its estimate
  (:mod:`backend.domain.cost`), whether it needs an admin (:mod:`backend.domain.approval`) and
  whether it fits the team's week; over budget it is refused with the numbers
  (:class:`OverBudget`) or held for approval (``TRAINBOT_BUDGET_MODE=approve``).
- :class:`Approvals` is the admins' decision on a held job: one conditional write on the job's
  status and version, audited in its history. A second decision, a decision on a job that has
  moved on, or a non-admin's press changes nothing.

Teams: ``TRAINBOT_USER_TEAMS`` maps Slack user ids to team names; a user in no team has a
budget of their own (keyed by their user id). ``TRAINBOT_TEAM_BUDGETS`` gives instance-hours
per week by team (or user id), ``*`` for everyone else; no entry: no budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from backend.domain import notice, sweeps
from backend.domain.approval import ApprovalRules, ApprovalState, approval_reasons
from backend.domain.cost import Estimate, PriceTable, estimate, hours_text, iso_week, job_instance_hours
from backend.domain.people import person, team_words
from backend.domain.records import RecordKind
from backend.domain.status import JobStatus
from backend.errors import InvalidRequest, NotAuthorized, StoreUnavailable
from backend.ports import Applied, JobRepository, RecordStore, UsageStore
from backend.services.notify import Dispatcher

if TYPE_CHECKING:
    from backend.domain.model import Approval, Attempt, Job, JobArgs

logger = Logger(service="trainbot", child=True)

USAGE = RecordKind.USAGE
_RACE_ROUNDS = 8


def _pending(reasons: list[str], *, alone: bool = False) -> Approval:
    """A pending approval hold (its model is imported with the first hold: an idle run of the
    launcher or the monitor imports no model at all)."""
    from backend.domain.model import Approval

    return Approval(state=ApprovalState.PENDING, reasons=reasons, alone=alone)


class OverBudget(InvalidRequest):
    """A submission that would take its team past its weekly budget (refuse mode)."""


# --- budgets -----------------------------------------------------------------------------------


def committed_hours(store: UsageStore, team: str, week: str) -> float:
    """Instance-hours ``team`` has committed in ``week``: billed by attempts that ended plus
    reserved by accepted jobs that have not ended (the record's ``Committed``). The invariant
    the cost guard keeps: this never exceeds the team's budget, save what admins approved."""
    record = store.get_record(USAGE, f"{team}#{week}") or {}
    committed = record.get("Committed")
    if committed is None:  # a record from before reservations: only billed time
        committed = record.get("Seconds", 0)
    return float(committed) / 3600


def reservation_seconds(job: Job) -> int:
    """What one job reserves: its estimate (max runtime x instances), in instance-seconds."""
    return round(job_instance_hours(job.job_args) * 3600)


@dataclass(frozen=True)
class BudgetCheck:
    """A team's week: what it used (billed), what accepted jobs hold reserved, its budget, and
    what is asked for now."""

    team: str
    week: str
    used_hours: float
    budget_hours: float | None  # None: the team has no budget
    asked_hours: float = 0.0
    reserved_hours: float = 0.0

    @property
    def committed_hours(self) -> float:
        return self.used_hours + self.reserved_hours

    @property
    def left_hours(self) -> float | None:
        return None if self.budget_hours is None else max(0.0, self.budget_hours - self.committed_hours)

    @property
    def over(self) -> bool:
        return self.budget_hours is not None and self.committed_hours + self.asked_hours > self.budget_hours

    def text(self) -> str:
        split = f"{hours_text(self.used_hours)} used, {hours_text(self.reserved_hours)} reserved"
        if self.budget_hours is None:
            return f"{team_words(self.team)} has {hours_text(self.committed_hours)} instance-hours committed in {self.week} ({split}; no budget)"
        return (
            f"{team_words(self.team)} has {hours_text(self.committed_hours)} of {hours_text(self.budget_hours)} "
            f"instance-hours committed in {self.week} ({split})"
        )


class Budgets:
    """Weekly instance-hour budgets: reservations of accepted jobs plus billed time."""

    def __init__(
        self,
        store: UsageStore,
        *,
        budgets: Mapping[str, float],
        user_teams: Mapping[str, str],
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._budgets = dict(budgets)
        self._teams = dict(user_teams)
        self._clock = clock

    def team_of(self, user_id: str) -> str:
        """The user's team; a user in no team is a team of one (their user id)."""
        return self._teams.get(user_id, user_id)

    def budget_of(self, team: str) -> float | None:
        return self._budgets.get(team, self._budgets.get("*"))

    def used_hours(self, team: str, week: str) -> float:
        """Instance-hours the team's attempts billed in ``week`` (one GetItem)."""
        return self.week_of(team, week).used_hours

    def week_of(self, team: str, week: str, asked_hours: float = 0.0) -> BudgetCheck:
        """The team's week: billed and reserved hours against its budget (one GetItem)."""
        record = self._store.get_record(USAGE, f"{team}#{week}") or {}
        used = float(record.get("Seconds", 0)) / 3600
        reserved = float(record.get("Reserved", 0)) / 3600
        return BudgetCheck(team, week, used, self.budget_of(team), asked_hours, reserved)

    def check(self, user_id: str, asked_hours: float = 0.0) -> BudgetCheck:
        return self.week_of(self.team_of(user_id), iso_week(self._clock()), asked_hours)

    def reserve(
        self, jobs: Sequence[Job], *, seq: int | None = None, force: bool = False, spent_seconds: int = 0
    ) -> list[Job] | None:
        """Reserve ``jobs``' estimates (one owner's) on this week's record in one conditional
        write; the jobs carrying their reservation, or None when they do not fit the budget.
        ``seq``: the history entry the reservation is made with (default each job's next), so
        a repeat of the same decision reserves nothing more. ``force``: an admin's approval,
        which commits past the budget. ``spent_seconds``: billed time about to be counted on the
        same week (an automatic retry's failed attempt), which must fit with the reservation."""
        if not jobs:
            return []
        team = self.team_of(jobs[0].owner.user_id)
        key = f"{team}#{iso_week(self._clock())}"
        tokens = [f"{job.job_id}.{seq if seq is not None else job.last_seq + 1}" for job in jobs]
        seconds = sum(reservation_seconds(job) for job in jobs)
        budget = None if force else self.budget_of(team)
        limit = None if budget is None else int(budget * 3600) - spent_seconds
        if not self._store.reserve(key, tokens, seconds, limit):
            return None
        logger.info("budget reserved", extra={"team": team, "jobs": len(jobs), "instance_seconds": seconds})
        return [job.model_copy(update={"reservation": f"{key}|{token}"}) for job, token in zip(jobs, tokens, strict=True)]

    def release(self, job: Job) -> bool:
        """Give back what ``job`` reserved (once: a repeat releases nothing)."""
        if not job.reservation:
            return False
        key, _, token = job.reservation.rpartition("|")
        released = self._store.release(key, token, reservation_seconds(job))
        if released:
            logger.info("budget released", extra={"job_id": job.job_id, "key": key})
        return released

    def record_attempt(self, job: Job, attempt: Attempt) -> bool:
        """Count an ended attempt's billable instance-seconds once; whether it was counted now.
        A job that ended with it gives back its reservation (billed time replaces it)."""
        if attempt.billable_seconds is None or attempt.ended_at is None:
            return False
        seconds = attempt.billable_seconds * job.job_args.instance_count
        team = self.team_of(job.owner.user_id)
        # A job that ended with it gives its reservation back in the same write: a run killed
        # between a count and a release of its own would leave the week's budget holding both.
        release = None
        if job.is_terminal and job.reservation:
            key, _, token = job.reservation.rpartition("|")
            release = (key, token, reservation_seconds(job))
        counted = self._store.add_usage(f"{team}#{iso_week(attempt.ended_at)}", attempt.name, seconds, release=release)
        if counted:
            logger.info("usage counted", extra={"job_id": job.job_id, "team": team, "instance_seconds": seconds})
        return counted

    def job_changed(self, job: Job) -> None:
        """After any applied write: a job that ended gives back its reservation."""
        if job.is_terminal:
            self.release(job)


def attempt_ended(before: Job, after: Job) -> Attempt | None:
    """The attempt a write from ``before`` to ``after`` ended with billable time, if any."""
    current = after.current_attempt
    if current is None or current.billable_seconds is None or current.ended_at is None:
        return None
    earlier = next((a for a in before.attempts if a.number == current.number), None)
    if earlier is not None and earlier.billable_seconds is not None and earlier.ended_at is not None:
        return None
    return current


# --- assessing a submission -------------------------------------------------------------------


@dataclass(frozen=True)
class Assessment:
    """What the cost guard says about a submission before it is registered."""

    estimate: Estimate
    approval: Approval | None  # pending: register it held
    budget: BudgetCheck | None  # None: budgets are off


class CostGuard:
    """Estimate, approval rules and budgets, applied the same way by every entry point."""

    def __init__(
        self,
        prices: PriceTable | Callable[[], PriceTable],
        rules: ApprovalRules,
        budgets: Budgets | None,
        *,
        budget_mode: str = "refuse",
    ) -> None:
        # A callable is asked each time (the price book: list prices refreshed daily).
        self._prices = prices
        self.rules = rules
        self.budgets = budgets
        self.budget_mode = budget_mode

    @property
    def prices(self) -> PriceTable:
        return self._prices if isinstance(self._prices, PriceTable) else self._prices()

    def estimate(self, jobs: Iterable[JobArgs]) -> Estimate:
        return estimate(jobs, self.prices)

    def assess(self, jobs: Sequence[JobArgs], user_id: str, *, sweep: bool = False) -> Assessment:
        """The estimate of ``jobs``, and the approval hold they need (None: none); raises
        :class:`OverBudget` when they would take the team past its week in refuse mode."""
        est = self.estimate(jobs)
        reasons = approval_reasons(
            self.rules,
            instance_hours=est.instance_hours,
            instance_types=list(est.by_type),
            jobs=est.jobs if sweep else 1,
        )
        check = None
        if self.budgets is not None:
            check = self.budgets.check(user_id, est.instance_hours)
            if check.over:
                reasons.append(self.over_budget(check))
        approval = _pending(reasons) if reasons else None
        return Assessment(est, approval, check)

    def over_budget(self, check: BudgetCheck) -> str:
        """The reason a submission past its team's week is held; raises :class:`OverBudget`
        with the numbers in refuse mode."""
        numbers = f"this asks for up to {hours_text(check.asked_hours)} instance-hours; {check.text()} ({hours_text(check.left_hours or 0.0)} left)"
        if self.budget_mode != "approve":
            raise OverBudget([f"over the weekly budget: {numbers}. Ask an admin, or try a smaller run."])
        return f"over the weekly budget: {numbers}"

    def admit(self, jobs: Sequence[Job]) -> list[Job]:
        """Reserve the budget of ``jobs`` about to be registered (one owner's, not held): the
        jobs carrying their reservation; when they do not fit (another submission took the
        room since :meth:`assess`), OverBudget in refuse mode, else the jobs held for an admin."""
        if self.budgets is None or not jobs or any(job.is_held for job in jobs):
            return list(jobs)
        reserved = self.budgets.reserve(jobs)
        if reserved is not None:
            return reserved
        asked = sum(reservation_seconds(job) for job in jobs) / 3600
        reason = self.over_budget(self.budgets.check(jobs[0].owner.user_id, asked))
        approval = _pending([reason])
        return [job.model_copy(update={"approval": approval}) for job in jobs]


    def readmit(self, job: Job, billed_seconds: int) -> Job:
        """An automatic retry of a job whose failed attempt billed ``billed_seconds``
        (instance-seconds, counted right after the retry's write): the job's reservation is
        renewed for the next attempt (the old one given back, a new one taken with the billed
        time counted against the budget), so committed never passes the budget however often
        a job retries. When the next attempt does not fit, the retry is held for an admin
        (whatever ``TRAINBOT_BUDGET_MODE``: failing a running job's retry is not the owner's
        call to have avoided)."""
        if self.budgets is None or not job.reservation:
            return job
        self.budgets.release(job)
        renewed = self.budgets.reserve([job], spent_seconds=billed_seconds)
        if renewed is not None:
            return renewed[0]
        check = self.budgets.check(job.owner.user_id, (reservation_seconds(job) + billed_seconds) / 3600)
        reason = f"over the weekly budget for another attempt: {check.text()} ({hours_text(check.left_hours or 0.0)} left)"
        # A sweep's job is held on its own: it carries its own card (its sweep's may be decided).
        held = _pending([reason], alone=bool(job.sweep_id) and notice.sweep_index(job) != 0)
        return job.model_copy(update={"reservation": None, "approval": held})


# --- approvals --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """An admin's press: ``changed`` False means the job was not waiting (decided already, or
    moved on) and nothing was written; ``job`` is the job as it now is."""

    job: Job
    changed: bool


class Approvals:
    """Approve or reject held jobs: admins only, one conditional write each.

    Idempotent and resumable (issue 22): one card stands for a sweep, so a press goes over every
    job of the sweep that is still held, whatever happened to the card's own job (stopped by its
    owner, decided by an earlier press that crashed midway). An approval reserves the job's
    estimate on its team's week (an admin's decision: even past the budget) and kicks the
    launcher, so the job does not wait for the schedule."""

    def __init__(
        self,
        store: JobRepository,
        dispatcher: Dispatcher,
        *,
        is_admin: Callable[[str], bool],
        clock: Callable[[], datetime],
        records: RecordStore,
        budgets: Budgets | None = None,
        on_approved: Callable[[str], object] | None = None,
    ) -> None:
        self._store = store
        self._records = records
        self._dispatcher = dispatcher
        self._is_admin = is_admin
        self._clock = clock
        self._budgets = budgets
        # Start on approval: the launcher is kicked (backend.services.kick), like on submit.
        self._on_approved = on_approved

    def _authorize(self, user_id: str) -> None:
        if not self._is_admin(user_id):
            raise NotAuthorized("only an admin may approve or reject held jobs")

    def approve(self, job_id: str, user_id: str) -> Decision:
        """Release a held job to the launch queue (audited: ``approved by <@admin>``); for a
        sweep's job, every held job of the sweep (one card stands for the sweep)."""
        self._authorize(user_id)
        decision = self._approve_one(job_id, user_id)
        released = [decision.job.job_id] if decision.changed else []
        if self._stands_for_sweep(decision.job, unless=ApprovalState.REJECTED):
            for sibling in self._siblings(decision.job):
                if self._approve_one(sibling, user_id).changed:
                    released.append(sibling)
        if released and self._on_approved is not None:
            self._on_approved(released[-1])  # one kick for the whole sweep
        return Decision(decision.job, changed=bool(released))

    def reject(self, job_id: str, user_id: str, reason: str) -> Decision:
        """Stop a held job with the admin's reason (its thread says who and why); for a
        sweep's job, every held job of the sweep."""
        self._authorize(user_id)
        why = " ".join(reason.split())[:300] or "no reason given"
        decision = self._reject_one(job_id, user_id, why)
        changed = decision.changed
        if self._stands_for_sweep(decision.job, unless=ApprovalState.APPROVED):
            for sibling in self._siblings(decision.job):
                changed = self._reject_one(sibling, user_id, why).changed or changed
        return Decision(decision.job, changed=changed)

    @staticmethod
    def _stands_for_sweep(job: Job, *, unless: ApprovalState) -> bool:
        """Whether a press on ``job``'s card goes on to its sweep: whenever the job was held at
        some point and no admin made the other decision on it (``unless``: an approve press does
        not go on from a rejected card, a reject press not from an approved one), so a stopped
        card job or an interrupted press never leaves the rest of the sweep held for ever (each
        sibling's own state decides). The card's own job, just decided by this press, counts as
        this decision."""
        return bool(job.sweep_id) and job.approval is not None and not job.approval.alone and job.approval.state is not unless

    def _siblings(self, job: Job) -> list[str]:
        """The other jobs of ``job``'s sweep (from the sweep's batch record), if any."""
        if not job.sweep_id:
            return []
        record = self._records.get_record(RecordKind.SWEEP, job.sweep_id) or {}
        return [i for i in sweeps.batch_job_ids(record) if i != job.job_id]

    def _approve_one(self, job_id: str, user_id: str) -> Decision:
        from backend.domain.model import note

        for _ in range(_RACE_ROUNDS):
            job = self._store.get(job_id)
            if not job.is_held or job.approval is None:
                return Decision(job, changed=False)
            now = self._clock()
            decided = job.approval.model_copy(update={"state": ApprovalState.APPROVED, "decided_by": user_id, "decided_at": now})
            reserved = job
            if self._budgets is not None:
                # Same token for the same read: two admins pressing at once reserve once.
                reserved = (self._budgets.reserve([job], force=True) or [job])[0]
            outcome = self._store.update(
                job, at=now, approval=decided, history=note(job, at=now, reason=f"approved by {person(user_id)}"), reservation=reserved.reservation
            )
            if isinstance(outcome, Applied):
                logger.info("job approved", extra={"job_id": job_id, "admin": user_id})
                self._dispatcher.deliver(outcome.job)
                return Decision(outcome.job, changed=True)
            if self._budgets is not None and reserved.reservation and self._store.get(job_id).reservation != reserved.reservation:
                self._budgets.release(reserved)  # the job moved on without this reservation
        raise StoreUnavailable(f"{job_id} kept changing while approving it; try again")

    def _reject_one(self, job_id: str, user_id: str, why: str) -> Decision:
        for _ in range(_RACE_ROUNDS):
            job = self._store.get(job_id)
            if not job.is_held or job.approval is None:
                return Decision(job, changed=False)
            now = self._clock()
            decided = job.approval.model_copy(
                update={"state": ApprovalState.REJECTED, "decided_by": user_id, "decided_at": now, "note": why}
            )
            outcome = self._store.transition(job, JobStatus.STOPPED, at=now, reason=f"rejected by {person(user_id)}: {why}", approval=decided)
            if isinstance(outcome, Applied):
                logger.info("job rejected", extra={"job_id": job_id, "admin": user_id})
                if self._budgets is not None:
                    self._budgets.release(outcome.job)
                self._dispatcher.deliver(outcome.job)
                return Decision(outcome.job, changed=True)
        raise StoreUnavailable(f"{job_id} kept changing while rejecting it; try again")

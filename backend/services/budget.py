"""The cost guard: estimates, weekly team budgets and admin approvals (issue 14).

- :class:`Budgets` counts what actually ran: when the monitor sees an attempt end, its
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

from aws_lambda_powertools import Logger

from backend.domain.approval import Approval, ApprovalRules, ApprovalState, approval_reasons
from backend.domain.cost import Estimate, PriceTable, estimate, hours_text, iso_week
from backend.domain.model import Attempt, Job, JobArgs
from backend.domain.records import RecordKind
from backend.domain.status import HistoryEntry, JobStatus, compact_history
from backend.errors import InvalidRequest, NotAuthorized, StoreUnavailable
from backend.ports import Applied, JobRepository, RecordStore, UsageStore
from backend.services.notify import Dispatcher

logger = Logger(service="trainbot", child=True)

USAGE = RecordKind.USAGE
_RACE_ROUNDS = 8


class OverBudget(InvalidRequest):
    """A submission that would take its team past its weekly budget (refuse mode)."""


# --- budgets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BudgetCheck:
    """A team's week: what it used (from what ran), its budget, and what is asked for now."""

    team: str
    week: str
    used_hours: float
    budget_hours: float | None  # None: the team has no budget
    asked_hours: float = 0.0

    @property
    def over(self) -> bool:
        return self.budget_hours is not None and self.used_hours + self.asked_hours > self.budget_hours

    def text(self) -> str:
        if self.budget_hours is None:
            return f"team `{self.team}` used {hours_text(self.used_hours)} instance-hours in {self.week} (no budget)"
        return (
            f"team `{self.team}` used {hours_text(self.used_hours)} of {hours_text(self.budget_hours)} "
            f"instance-hours in {self.week}"
        )


class Budgets:
    """Weekly instance-hour budgets, counted from billable time."""

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
        record = self._store.get_record(USAGE, f"{team}#{week}")
        return float((record or {}).get("Seconds", 0)) / 3600

    def check(self, user_id: str, asked_hours: float = 0.0) -> BudgetCheck:
        team = self.team_of(user_id)
        week = iso_week(self._clock())
        return BudgetCheck(team, week, self.used_hours(team, week), self.budget_of(team), asked_hours)

    def record_attempt(self, job: Job, attempt: Attempt) -> bool:
        """Count an ended attempt's billable instance-seconds once; whether it was counted now."""
        if attempt.billable_seconds is None or attempt.ended_at is None:
            return False
        seconds = attempt.billable_seconds * job.job_args.instance_count
        team = self.team_of(job.owner.user_id)
        counted = self._store.add_usage(f"{team}#{iso_week(attempt.ended_at)}", attempt.name, seconds)
        if counted:
            logger.info("usage counted", extra={"job_id": job.job_id, "team": team, "instance_seconds": seconds})
        return counted


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
                assert check.budget_hours is not None
                numbers = (
                    f"this asks for up to {hours_text(est.instance_hours)} instance-hours; {check.text()} "
                    f"({hours_text(max(0.0, check.budget_hours - check.used_hours))} left)"
                )
                if self.budget_mode != "approve":
                    raise OverBudget([f"over the weekly budget: {numbers}. Ask an admin, or try a smaller run."])
                reasons.append(f"over the weekly budget: {numbers}")
        approval = Approval(state=ApprovalState.PENDING, reasons=reasons) if reasons else None
        return Assessment(est, approval, check)


# --- approvals --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """An admin's press: ``changed`` False means the job was not waiting (decided already, or
    moved on) and nothing was written; ``job`` is the job as it now is."""

    job: Job
    changed: bool


class Approvals:
    """Approve or reject held jobs: admins only, one conditional write each."""

    def __init__(
        self,
        store: JobRepository,
        dispatcher: Dispatcher,
        *,
        is_admin: Callable[[str], bool],
        clock: Callable[[], datetime],
        records: RecordStore,
    ) -> None:
        self._store = store
        self._records = records
        self._dispatcher = dispatcher
        self._is_admin = is_admin
        self._clock = clock

    def _authorize(self, user_id: str) -> None:
        if not self._is_admin(user_id):
            raise NotAuthorized("only an admin may approve or reject held jobs")

    def approve(self, job_id: str, user_id: str) -> Decision:
        """Release a held job to the launch queue (audited: ``approved by <@admin>``); for a
        sweep's job, every held job of the sweep (one card stands for the sweep)."""
        self._authorize(user_id)
        decision = self._approve_one(job_id, user_id)
        if decision.changed:
            for sibling in self._siblings(decision.job):
                self._approve_one(sibling, user_id)
        return decision

    def reject(self, job_id: str, user_id: str, reason: str) -> Decision:
        """Stop a held job with the admin's reason (its thread says who and why); for a
        sweep's job, every held job of the sweep."""
        self._authorize(user_id)
        why = " ".join(reason.split())[:300] or "no reason given"
        decision = self._reject_one(job_id, user_id, why)
        if decision.changed:
            for sibling in self._siblings(decision.job):
                self._reject_one(sibling, user_id, why)
        return decision

    def _siblings(self, job: Job) -> list[str]:
        """The other jobs of ``job``'s sweep (from the sweep's batch record), if any."""
        if not job.sweep_id:
            return []
        record = self._records.get_record(RecordKind.SWEEP, job.sweep_id) or {}
        return [str(i) for i in record.get("JobIds") or [] if i != job.job_id]

    def _approve_one(self, job_id: str, user_id: str) -> Decision:
        for _ in range(_RACE_ROUNDS):
            job = self._store.get(job_id)
            if not job.is_held or job.approval is None:
                return Decision(job, changed=False)
            now = self._clock()
            decided = job.approval.model_copy(update={"state": ApprovalState.APPROVED, "decided_by": user_id, "decided_at": now})
            entry = HistoryEntry(seq=job.last_seq + 1, at=now, from_status=job.status, to_status=job.status, reason=f"approved by <@{user_id}>")
            outcome = self._store.update(job, at=now, approval=decided, history=compact_history([*job.history, entry]))
            if isinstance(outcome, Applied):
                logger.info("job approved", extra={"job_id": job_id, "admin": user_id})
                self._dispatcher.deliver(outcome.job)
                return Decision(outcome.job, changed=True)
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
            outcome = self._store.transition(job, JobStatus.STOPPED, at=now, reason=f"rejected by <@{user_id}>: {why}", approval=decided)
            if isinstance(outcome, Applied):
                logger.info("job rejected", extra={"job_id": job_id, "admin": user_id})
                self._dispatcher.deliver(outcome.job)
                return Decision(outcome.job, changed=True)
        raise StoreUnavailable(f"{job_id} kept changing while rejecting it; try again")

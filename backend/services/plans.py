"""Training plans as Trainbot uses them: which plan a job runs on, whether it fits, and the
launcher's per-tick gate.

SageMaker is asked at a bounded rate: a launcher tick that meets a job of a plan (queued, or
running: the monitor judges plan ends from the board) reads the ``plans#board`` record and
calls ListTrainingPlans only when the record is older than
:data:`backend.domain.plans.REFRESH` (a minute), then writes the board back with Trainbot's
own view (instances its running jobs use and jobs waiting, per plan). The bot never calls
SageMaker for plans: ``/train plans`` and the submit checks read that record (so a plan bought
a minute ago may be unknown to a submit; the launcher then judges it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from backend.domain.plans import NO_PLAN, REFRESH, PlanBoard, PlanVerdict, TrainingPlan, fit_problems, launch_verdict
from backend.domain.records import RecordKind
from backend.errors import BackendUnavailable, StoreUnavailable
from backend.ports import RecordStore, TrainingPlans

if TYPE_CHECKING:
    from backend.domain.model import Job

logger = Logger(service="trainbot", child=True)

BOARD_KEY = "board"


class PlanBook:
    """The team default plans (TRAINBOT_TEAM_PLANS), the cached board, and the launcher's gate."""

    def __init__(
        self,
        store: RecordStore,
        source: TrainingPlans | None,
        *,
        clock: Callable[[], datetime],
        team_plans: Mapping[str, str],
        team_of: Callable[[str], str],
    ) -> None:
        self._store = store
        self._source = source
        self._clock = clock
        self._team_plans = dict(team_plans)
        self._team_of = team_of

    def plan_for(self, asked: str | None, user_id: str) -> str | None:
        """The plan a job runs on: ``plan=`` (``none``: none), else the user's team's default."""
        if asked is not None:
            return None if asked.lower() == NO_PLAN else asked
        return self._team_plans.get(self._team_of(user_id))

    def team_plan_names(self, user_id: str) -> list[str]:
        """The plans ``/train plans`` shows a user first: their team's default."""
        default = self._team_plans.get(self._team_of(user_id))
        return [default] if default else []

    def board(self) -> PlanBoard | None:
        """The plans as a launcher last read them (None: no launcher has yet)."""
        try:
            record = self._store.get_record(RecordKind.PLANS, BOARD_KEY)
        except StoreUnavailable:
            return None
        return PlanBoard.from_record(record) if record else None

    def submit_problems(self, plan: str, instance_type: str, count: int, max_runtime_seconds: int) -> list[str]:
        """Why a job cannot run on ``plan`` at all, as far as the board knows (a plan the board
        does not know is left to the launcher: it may be new)."""
        board = self.board()
        known = board.plans.get(plan) if board is not None else None
        if known is None:
            return []
        return fit_problems(known, instance_type, count, max_runtime_seconds, self._clock())

    def gate(self, now: datetime, active: Iterable[Job]) -> PlanGate:
        """The launcher's gate for one tick (``active``: the jobs running now)."""
        own: Counter[str] = Counter()
        for job in active:
            attempt = job.current_attempt
            if attempt is not None and attempt.plan:
                own[attempt.plan] += job.job_args.instance_count
        return PlanGate(self, now, own)

    def gate_from_use(self, now: datetime, in_use: dict[str, int]) -> PlanGate:
        """The same gate from the instances in use per plan (the Active index's projection)."""
        return PlanGate(self, now, Counter(in_use))

    def _fresh(self, now: datetime) -> tuple[dict[str, TrainingPlan] | None, bool]:
        """The plans, from the record when it is recent, else from SageMaker (True: read now)."""
        board = self.board()
        if board is not None and now - board.fetched_at < REFRESH:
            return board.plans, False
        if self._source is None:
            return (board.plans if board is not None else None), False
        try:
            return {p.name: p for p in self._source.plans()}, True
        except BackendUnavailable as exc:
            logger.warning("training plans could not be read; using the last known", extra={"error": str(exc)})
            return (board.plans if board is not None else None), False

    def _describe(self, name: str) -> TrainingPlan | None:
        if self._source is None:
            return None
        try:
            return self._source.plan(name)
        except BackendUnavailable as exc:
            logger.warning("training plan could not be described", extra={"plan": name, "error": str(exc)})
            return None

    def _publish(self, board: PlanBoard) -> None:
        try:
            self._store.put_record(RecordKind.PLANS, BOARD_KEY, board.to_record())
        except StoreUnavailable as exc:
            logger.warning("plan board not written", extra={"error": str(exc)})


class PlanGate:
    """One launcher tick's view of the plans: read once (lazily, on the first job of a plan),
    counting what the tick launches on each plan and the jobs it leaves waiting."""

    def __init__(self, book: PlanBook, now: datetime, own_in_use: Counter[str]) -> None:
        self._book = book
        self._now = now
        self._own = own_in_use
        self._waiting: Counter[str] = Counter()
        self._plans: dict[str, TrainingPlan] | None = None
        self._read = False
        self._fetched_now = False
        self._described: set[str] = set()

    def _load(self) -> dict[str, TrainingPlan] | None:
        if not self._read:
            self._read = True
            self._plans, self._fetched_now = self._book._fresh(self._now)
        return self._plans

    def decide(self, job: Job) -> PlanVerdict:
        """What to do now with ``job`` (whose ``plan`` is set)."""
        name = job.plan or ""
        plans = self._load()
        if plans is None:
            self._waiting[name] += 1
            return PlanVerdict("wait", "waiting: Trainbot could not read the training plans from SageMaker yet")
        if name not in plans and name not in self._described:
            # Not in the list (bought since it was read, or beyond its pages): ask for it by
            # name once this tick before refusing the job.
            self._described.add(name)
            found = self._book._describe(name)
            if found is not None:
                plans[name] = found
        args = job.job_args
        verdict = launch_verdict(
            plans.get(name),
            name,
            instance_type=args.instance_type,
            count=args.instance_count,
            max_runtime_seconds=args.StoppingCondition.MaxRuntimeInSeconds,
            own_in_use=self._own[name],
            now=self._now,
        )
        if verdict.action == "wait":
            self._waiting[name] += 1
        return verdict

    def watch(self) -> None:
        """Read the plans this tick even when no job of a plan is due (at most once a minute
        from SageMaker, as for a decision) while jobs run on plans: the monitor judges their
        plan's end from the board, and a plan extended meanwhile must show its new end there."""
        if any(self._own.values()):
            self._load()

    def arn_of(self, name: str) -> str | None:
        plans = self._load() or {}
        return plans[name].arn if name in plans else None

    def launched(self, name: str, count: int) -> None:
        self._own[name] += count

    def finish(self) -> None:
        """Write the board back when this tick read the plans (once a minute at most when
        SageMaker was asked; otherwise only Trainbot's own counts changed)."""
        if not self._read or self._plans is None:
            return
        previous = self._book.board()
        fetched_at = self._now if self._fetched_now or previous is None else previous.fetched_at
        board = PlanBoard(fetched_at, self._plans, dict(self._own), dict(self._waiting))
        if previous is None or board != previous:
            self._book._publish(board)

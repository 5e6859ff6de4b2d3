"""The simulated world: Trainbot's real services (job service, approvals, launcher, monitor,
dispatcher) over the in-memory store, the simulated SageMaker and a recording notifier, on one
clock. A schedule is a list of steps; :meth:`SimWorld.run` plays it and checks the invariants
after every step and, after letting the world settle, at the end. The users call the services
directly or, in a world ``through_bot``, send Slack's requests to the real bolt app wired to
this world's services (:mod:`tests.sim.bot`, with its own checks).

Faults are decided per port call: each function run (a launcher tick, a monitor sweep) carries
a fault plan consumed call by call — a throttle before the effect, a 500 after the effect took
place, a crash before or after it (the Lambda run killed between two calls), a call slower
than any lease, or another actor's move (a user's stop, retry, approval) landing in the middle
of the call. Nothing here sleeps or reads the real clock; a schedule replays exactly.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from backend.adapters.sagemaker import SageMakerBackend
from backend.domain.approval import ApprovalRules, ApprovalState
from backend.domain.cost import iso_week, repo_prices
from backend.domain.model import Approval, AttemptOutcome, FailureClass, Job
from backend.domain.policy import Classification, RetryPolicy
from backend.domain.records import RecordKind
from backend.domain.status import JobStatus
from backend.errors import (
    AlreadyExists,
    BackendRefused,
    BackendUnavailable,
    CreateRefused,
    NotifierRejected,
    NotifierUnavailable,
    NotifierUncertain,
    StoreUnavailable,
    TrainbotError,
)
from backend.ports import LIST_PAGE_MAX, TrainingJobPage, TrainingState, TrainingStatus
from backend.services.budget import Approvals, Budgets, CostGuard, committed_hours, reservation_seconds
from backend.services.jobs import Actor, JobService
from backend.services.launcher import Launcher
from backend.services.monitor import Monitor
from backend.services.notify import Dispatcher
from backend.services.pacing import TokenBucket
from backend.services.rollup import StatsRoller
from backend.services.stats import Window, collect, compute_stats, jobs_in_window
from infra.template import load_template
from tests.conftest import job_args, make_job
from tests.fakes.memory_store import MemoryJobStore
from tests.sim.bot import HELD_TYPE, SimBot
from tests.sim.sagemaker import SimSageMaker
from tests.unit.services.conftest import Clock  # the unit tests' clock: a datetime and a monotonic count, moved by hand

S = JobStatus
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ADMIN = "UADMIN"
OWNER = Actor(team_id="T1", user_id="U1")
OTHER = Actor(team_id="T1", user_id="U2")  # a user of the workspace, neither the owner nor an admin
USER_MOVES = ("stop", "retry", "approve", "reject", "stop-sweep")
BUDGET_HOURS = 4.0  # the team's weekly instance-hours (invariant 6): a few of the sim's 1 h jobs
POLICY = RetryPolicy(base_seconds=60, max_seconds=600, capacity_max_wait_seconds=3600)
LIMITS = {"ml.p4d.24xlarge": 2}
SLOW = timedelta(minutes=6)  # longer than the launcher's claim lease (5 min) and a delivery lease (60 s)


def _timeouts() -> dict[str, timedelta]:
    """Each function's Lambda timeout, from template.yaml (Globals' where it sets none)."""
    template = load_template()
    default = template.get("Globals", {}).get("Function", {}).get("Timeout", 3)
    resources = template["Resources"]
    return {
        name: timedelta(seconds=resources[name].get("Properties", {}).get("Timeout", default))
        for name in ("LauncherFunction", "MonitorFunction")
    }


# A run is killed at its function's timeout: a call slower than what is left of it takes effect
# (the request reached the service) and the run dies waiting for the answer; a run past it makes
# no further call. So no launcher run outlives its claim, as on Lambda (a slow monitor call still
# outlasts a delivery lease: 290 s against 60 s).
TIMEOUTS = _timeouts()
# A send to Slack or SNS is bounded by its client's timeouts and retries (under
# backend.domain.notice.SEND_BOUND): slower than a delivery lease, never slower than that.
SLOW_SEND = timedelta(seconds=100)
_SENDS = ("slack.", "sns.")  # their calls (a send, a look in the thread) are bounded by SLOW_SEND
SETTLE_ROUND = timedelta(minutes=5)
SETTLE_ROUNDS = 60  # five simulated hours: past the capacity max wait (1 h) and every backoff


class SimCrash(BaseException):
    """The Lambda run was killed here (BaseException: no ``except Exception`` in our code sees it)."""


class InvariantViolated(AssertionError):
    pass


# --- faults -----------------------------------------------------------------------------------

# "ok" | "throttle" | "lost" | "crash" | "crash_after" | "slow" | ("user" or "slow", action, job)
Fault = str | tuple[str, str, int]


class FaultPlan:
    def __init__(self, plan: Sequence[Fault] = ()) -> None:
        self._plan = list(plan)

    def next(self) -> Fault:
        return self._plan.pop(0) if self._plan else "ok"


@dataclass
class Call:
    """One port call: what to run, and how to fail it transiently (``lost``: how a failure
    after the effect looks to the caller, when it differs: a Slack post timed out)."""

    port: str
    effect: Callable[[], Any]
    transient: Callable[[], BaseException]
    lost: Callable[[], BaseException] | None = None


# --- the world ----------------------------------------------------------------------------------


class RecordingSink:
    """A notifier (backend.ports.Notifier) that records every (job, seq) it was asked to send.
    A send whose answer is lost (the fault ``lost``) says so, as Slack's client does
    (NotifierUncertain: a timeout); SNS's says only "unavailable"."""

    def __init__(self, world: SimWorld, name: str) -> None:
        self.world = world
        self.name = name
        self.sent: Counter[tuple[str, int]] = Counter()

    def notify(self, job: Job, seq: int) -> None:
        def effect() -> None:
            self.sent[(job.job_id, seq)] += 1

        self.world.call(
            Call(f"{self.name}.notify", effect, lambda: NotifierUnavailable("429 Too Many Requests"), self._lost), job_id=job.job_id
        )

    def _lost(self) -> BaseException:
        return NotifierUnavailable("500 Internal Server Error")


class LookingSink(RecordingSink):
    """The Slack replies: a lost answer is NotifierUncertain, and the sink can look whether a
    change reached it (backend.ports.CheckingNotifier: conversations.replies), a port call of
    its own that the faults reach like any other."""

    def _lost(self) -> BaseException:
        return NotifierUncertain("The read operation timed out")

    def already_told(self, job: Job, seq: int) -> bool:
        return bool(
            self.world.call(
                Call(f"{self.name}.already_told", lambda: self.sent[(job.job_id, seq)] > 0, lambda: NotifierUnavailable("429 Too Many Requests")),
                job_id=job.job_id,
            )
        )


class FaultyBackend:
    """backend.ports.TrainingBackend over the simulated SageMaker, each call through the faults."""

    def __init__(self, world: SimWorld) -> None:
        self.world = world
        self.sm = world.sagemaker

    def create(self, name: str, request: dict[str, Any]) -> None:
        def effect() -> None:
            if not self.sm.create(name, request, self.world.clock()):
                raise AlreadyExists(name)

        self.world.call(
            Call("sagemaker.create", effect, lambda: CreateRefused(Classification(FailureClass.THROTTLING, "ThrottlingException: Rate exceeded")))
        )

    def describe(self, name: str) -> TrainingStatus | None:
        return self.world.call(Call("sagemaker.describe", lambda: self.sm.describe(name), lambda: BackendUnavailable("ThrottlingException")))

    def stop(self, name: str) -> None:
        self.world.call(Call("sagemaker.stop", lambda: self.sm.stop(name), lambda: BackendUnavailable("ThrottlingException")))

    def list_created(self, after: datetime | None, *, next_token: str | None = None, limit: int = LIST_PAGE_MAX) -> TrainingJobPage:
        # Through the real adapter's request and translation, against the simulated
        # ListTrainingJobs (which refuses what SageMaker refuses).
        adapter = SageMakerBackend(self.sm)
        return self.world.call(
            Call("sagemaker.list", lambda: adapter.list_created(after, next_token=next_token, limit=limit), lambda: BackendUnavailable("ThrottlingException"))
        )


_STORE_WRITES = frozenset(
    {"register", "register_many", "update", "transition", "set_thread", "acquire_delivery", "finish_delivery", "put_record",
     "set_record_entry", "add_usage", "count_sweep_end", "claim_sweep_mark",
     "claim_record_mark"}
)


class FaultyStore:
    """The in-memory store, each write through the faults (reads pass: a read that fails is a
    run that fails, which the crash faults already cover)."""

    def __init__(self, world: SimWorld, store: MemoryJobStore) -> None:
        self._world = world
        self._store = store

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name not in _STORE_WRITES:
            return attr

        def write(*args: Any, **kwargs: Any) -> Any:
            job = args[0] if args and isinstance(args[0], Job) else None
            return self._world.call(
                Call(f"store.{name}", lambda: attr(*args, **kwargs), lambda: StoreUnavailable("ProvisionedThroughputExceeded")),
                job_id=job.job_id if job is not None else (args[0] if args and isinstance(args[0], str) else None),
            )

        return write


OUTAGES: dict[str, Callable[[], BaseException]] = {
    "sagemaker.create": lambda: CreateRefused(Classification(FailureClass.UNKNOWN, "InternalFailure: An internal error occurred (500)")),
    "sagemaker.describe": lambda: BackendRefused("AccessDeniedException: not authorized to perform sagemaker:DescribeTrainingJob"),
    "slack.notify": lambda: NotifierUnavailable("500 Internal Server Error"),
    "sns.notify": lambda: NotifierRejected("AuthorizationError: not authorized to perform SNS:Publish"),
    # The state-change rule delivers nothing (disabled, or its target refused): only the
    # monitor's sweep (DescribeTrainingJob) learns what happened.
    "eventbridge": lambda: RuntimeError("no events"),
}


@dataclass
class Violation:
    step: int
    what: str


@dataclass
class SimWorld:
    seed: int = 0
    clock: Clock = field(default_factory=Clock)
    sagemaker: SimSageMaker = field(default_factory=SimSageMaker)
    log: list[str] = field(default_factory=list)

    store_factory: Callable[[], Any] | None = None  # default: the in-memory store
    # Users' steps delivered as Slack delivers them to the real bolt app (tests/sim/bot.py),
    # rather than calls on the services.
    through_bot: bool = False

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.raw_store = self.store_factory() if self.store_factory is not None else MemoryJobStore()
        self.store = FaultyStore(self, self.raw_store)
        self.backend = FaultyBackend(self)
        self.slack = LookingSink(self, "slack")
        self.sns = RecordingSink(self, "sns")
        self.raw_store.set_notify_targets([self.slack.name, self.sns.name])
        self.dispatcher = Dispatcher(self.store, [self.slack, self.sns], self.clock)  # type: ignore[arg-type]
        self.jobs = JobService(self.store, self.backend, self.dispatcher, clock=self.clock, is_admin=lambda u: u == ADMIN)  # type: ignore[arg-type]
        # A weekly budget, wired as backend.bootstrap wires it (invariant 6).
        self.budgets = Budgets(self.store, budgets={"*": BUDGET_HOURS}, user_teams={}, clock=self.clock)  # type: ignore[arg-type]
        # Through the bot, a held job is one its instance type holds (the approval rule the
        # bot's settings name); the direct users' held jobs carry their pending approval.
        rules = ApprovalRules(instance_types=(HELD_TYPE,)) if self.through_bot else ApprovalRules()
        self.guard = CostGuard(repo_prices(), rules, self.budgets, budget_mode="approve")
        self.jobs.use_budget(self.guard.admit, self.budgets.release)
        self.dispatcher.on_end(self.budgets.release)
        self.budget_hooks: dict[str, Any] = {
            "on_attempt_end": self.budgets.record_attempt, "readmit": self.guard.readmit, "release": self.budgets.release,
        }
        self.approvals = Approvals(self.store, self.dispatcher, is_admin=lambda u: u == ADMIN, clock=self.clock, records=self.store, budgets=self.budgets)  # type: ignore[arg-type]
        self.job_ids: list[str] = []
        self.stats_checked = 0  # schedules whose stats were compared at rest (all jobs ended)
        self._plans: list[FaultPlan] = []
        self._deadlines: list[datetime] = []  # when each function run in progress is killed (innermost last)
        self.delivery_doubts: set[str] = set()  # jobs whose delivery record may be lost (a send may repeat, with its key)
        self.stopped_by_user: set[str] = set()
        self.delivered_events: list[int] = []
        self.outages: dict[str, Callable[[], BaseException]] = {}
        self.never_fits: set[str] = set()  # jobs asking for more instances than any limit allows
        self.sweeps: dict[str, list[str]] = {}  # sweep id -> its jobs' ids
        self.budget_hours = BUDGET_HOURS  # the team's budget now (a redeploy may change it)
        # Per week at the last check: committed hours, approved seconds, billed seconds owed
        # under reservations given back (_billed_after_release).
        self._committed: dict[str, tuple[float, int, int]] = {}
        self.bot = SimBot(self) if self.through_bot else None

    # --- ports ------------------------------------------------------------------------------

    def call(self, call: Call, job_id: str | None = None) -> Any:
        if call.port in self.outages:
            # A lasting outage (every call answers 500) or a permanent refusal (AccessDenied):
            # it outlives faults and users, and the settling that ends a schedule.
            raise self.outages[call.port]()
        if self._deadlines and self.clock() >= self._deadlines[-1]:
            self.log.append(f"  {call.port}: the run timed out before it")
            self._doubt(call, job_id, after=False)
            raise SimCrash(call.port)
        fault = self._plans[-1].next() if self._plans else "ok"
        if fault != "ok":
            self.log.append(f"  {call.port}: {fault}")
        if isinstance(fault, tuple):
            # Another actor moves while this call is in flight; ("slow", …): the call also
            # outlasts every lease, so the other actor may take over what this run holds.
            how, action, index = fault
            timed_out = False
            if how == "slow":
                timed_out = self._slow(call)
                if call.port == "store.finish_delivery" and job_id is not None:
                    # A record write slower than the delivery lease: whoever takes the lease
                    # over meanwhile cannot know it will land, and resends (SNS, with its key).
                    self.delivery_doubts.add(job_id)
            with self.plan(()), self.outside_the_run():
                self.user(action, index)
            result = call.effect()
            if timed_out:
                self._doubt(call, job_id, after=True)
                raise SimCrash(call.port)
            return result
        # A delivery round's sends so far go unrecorded (its record write refused, or the run
        # killed before it): whoever takes its lease over resends what it cannot look for (SNS,
        # with its dedup key).
        if fault == "crash":
            self._doubt(call, job_id, after=False)
        elif fault == "throttle" and job_id is not None and call.port == "store.finish_delivery":
            self.delivery_doubts.add(job_id)
        if fault == "throttle":
            raise call.transient()
        if fault == "crash":
            raise SimCrash(call.port)
        if fault == "slow":
            timed_out = self._slow(call)
            result = call.effect()
            if timed_out:
                self._doubt(call, job_id, after=True)
                raise SimCrash(call.port)
            return result
        result = call.effect()
        if fault in ("lost", "crash_after"):
            if job_id is not None and (call.port.startswith("store.") or call.port.endswith(".notify")):
                self.delivery_doubts.add(job_id)
            if fault == "crash_after":
                raise SimCrash(call.port)
            raise (call.lost or call.transient)()
        return result

    def _doubt(self, call: Call, job_id: str | None, *, after: bool) -> None:
        """A run timed out before or during ``call``: a delivery round's sends so far go
        unrecorded, as when it is killed there (see the faults "crash" and "crash_after")."""
        if job_id is None:
            return
        if call.port == "store.finish_delivery" or call.port.startswith(_SENDS) or (
            after and (call.port.startswith("store.") or call.port.endswith(".notify"))
        ):
            self.delivery_doubts.add(job_id)

    def _slow(self, call: Call) -> bool:
        """Let a slow call's time pass: True when the run's timeout came first (the call takes
        effect, and the run is killed waiting for its answer)."""
        slow = SLOW_SEND if call.port.startswith(_SENDS) else SLOW
        if self._deadlines and self.clock() + slow > self._deadlines[-1]:
            self.clock.advance(self._deadlines[-1] - self.clock())
            self.log.append(f"  {call.port}: the run timed out during it")
            return True
        self.clock.advance(slow)
        return False

    @contextmanager
    def outside_the_run(self) -> Iterator[None]:
        """Another actor's move in the middle of a call: not part of the run, nor of its timeout."""
        self._deadlines.append(datetime.max.replace(tzinfo=UTC))
        try:
            yield
        finally:
            self._deadlines.pop()

    @contextmanager
    def plan(self, faults: Sequence[Fault]) -> Iterator[None]:
        self._plans.append(FaultPlan(faults))
        try:
            yield
        finally:
            self._plans.pop()

    def peek(self, job_id: str) -> Job:
        """The job as stored, for the checks, which only read it: the in-memory store's own
        object (its reads copy each job, which would cost the checks most of their time)."""
        jobs = getattr(self.raw_store, "_jobs", None)
        return jobs[job_id] if jobs is not None else self.raw_store.get(job_id)

    def pacer(self) -> TokenBucket:
        return TokenBucket(rate=1000, burst=1000, monotonic=self.clock.monotonic, sleep=self.clock.sleep)

    # --- actors -----------------------------------------------------------------------------

    def job(self, index: int) -> str | None:
        return self.job_ids[index % len(self.job_ids)] if self.job_ids else None

    def submit(self, kind: str, via: str = "command") -> None:
        if self.bot is not None:
            self.bot.submit(kind, via)
            return
        if via == "outsider":
            return  # a user the workspace does not allow: the bot's gate refuses them
        n = len(self.job_ids)
        kwargs: dict[str, Any] = {}
        args: dict[str, Any] = {}
        if kind == "fallback":
            kwargs["fallback_types"] = ["ml.g5.2xlarge", "ml.g5.4xlarge"]
        elif kind == "spot":
            args = {"EnableManagedSpotTraining": True, "StoppingCondition": {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}}
        elif kind == "held":
            kwargs["approval"] = Approval(state=ApprovalState.PENDING, reasons=["ml.p4d.24xlarge needs approval"])
            args = {"ResourceConfig": {"InstanceType": "ml.p4d.24xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50}}
        elif kind == "too_big":  # more instances than its type's limit allows: can never run
            args = {"ResourceConfig": {"InstanceType": "ml.p4d.24xlarge", "InstanceCount": 4, "VolumeSizeInGB": 50}}
        job = make_job(f"j{n}", now=self.clock(), job_args=job_args(**args), client_token=f"tok-{self.seed}-{n}", **kwargs)
        try:
            [job] = self.guard.admit([job])
            registered = self.store.register(job)
        except TrainbotError:
            return  # the user is told to try again; nothing was registered, or the retry finds it
        if registered.job.job_id not in self.job_ids:
            self.job_ids.append(registered.job.job_id)
        if kind == "too_big":
            self.never_fits.add(registered.job.job_id)
        self.dispatcher.deliver(registered.job)

    def sweep(self, size: int, kind: str = "single", via: str = "command") -> None:
        """A sweep of ``size`` jobs registered in one batch, as Submissions.register_sweep does:
        its budget reserved in one write for the whole batch (or the whole sweep held), each job
        ``<sweep>/<index>`` by client token; a repeat of the batch writes nothing."""
        if self.bot is not None:
            self.bot.sweep(size, kind, via)
            return
        if via == "outsider":
            return
        n = len(self.job_ids)
        sweep_id = f"sw{self.seed}-{n}"
        args: dict[str, Any] = {}
        kwargs: dict[str, Any] = {}
        if kind == "held":
            kwargs["approval"] = Approval(state=ApprovalState.PENDING, reasons=["ml.p4d.24xlarge needs approval"])
            args = {"ResourceConfig": {"InstanceType": "ml.p4d.24xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50}}
        jobs = [
            make_job(f"s{n}x{i}", now=self.clock(), job_args=job_args(**args), client_token=f"{sweep_id}/{i}", sweep_id=sweep_id, **kwargs)
            for i in range(size)
        ]
        try:
            jobs = self.guard.admit(jobs)
            ids = self.jobs.submit_sweep(jobs, sweep_id)
        except TrainbotError:
            return  # the user is told to try again; the batch is idempotent on its sweep id
        for job_id in ids:
            if job_id not in self.job_ids:
                self.job_ids.append(job_id)
        self.sweeps[sweep_id] = list(ids)

    def user(self, action: str, index: int, via: str = "command") -> None:
        """A user's move on the ``index``-th job. ``via``: how it reaches Trainbot through the
        bot (a command by id or by ``name``, a card's ``button``, Slack delivering it ``again``,
        Lambda running its lazy part ``twice``); ``other``: another user's move, refused."""
        job_id = self.job(index)
        if job_id is None:
            return
        if "+" in action:  # several moves of one user, back to back (a stop, then a retry)
            for one in action.split("+"):
                self.user(one, index, via)
            return
        if self.bot is not None and action in USER_MOVES:
            self.bot.user(action, job_id, via)
            return
        owner, admin = (OTHER, OTHER.user_id) if via == "other" else (OWNER, ADMIN)
        try:
            if action == "stop":
                self.jobs.stop(job_id, owner)
                self.stopped_by_user.add(job_id)
            elif action == "retry":
                self.jobs.retry(job_id, owner)
                self.stopped_by_user.discard(job_id)
            elif action == "stop-sweep":  # `/train stop sw-…`: every job of the job's sweep
                sweep_id = self.peek(job_id).sweep_id
                if sweep_id is not None:
                    self.jobs.stop_many(self.sweeps.get(sweep_id, [job_id]), owner)
            elif action == "approve":
                self.approvals.approve(job_id, admin)
            elif action == "reject":
                self.approvals.reject(job_id, admin, "too expensive")
            elif action == "launcher":  # a second launcher run, inside the first one's call
                self.launcher()
            elif action == "drain":  # the monitor's outbox drain, inside another run's call
                self.dispatcher.drain()
        except TrainbotError:
            pass  # the user reads a polite answer (not allowed now, busy, try again)

    # --- functions --------------------------------------------------------------------------

    def run_function(self, name: str, faults: Sequence[Fault], body: Callable[[], Any], timeout: timedelta) -> None:
        self._deadlines.append(self.clock() + timeout)
        with self.plan(faults):
            try:
                body()
            except SimCrash:
                self.log.append(f"  {name}: killed")
            except TrainbotError as exc:
                self.log.append(f"  {name}: failed ({type(exc).__name__}); Lambda retries it later")
            except Exception as exc:  # an unexpected exception is what the simulator is looking for
                raise InvariantViolated(f"{name} raised {type(exc).__name__}: {exc}") from exc
            finally:
                self._deadlines.pop()

    def launcher(self, faults: Sequence[Fault] = ()) -> None:
        launcher = Launcher(
            self.store, self.backend, self.dispatcher, policy=POLICY, instance_limits=LIMITS,  # type: ignore[arg-type]
            pacer=self.pacer(), clock=self.clock, rng=self.rng,
        )
        self.run_function("launcher", faults, launcher.run_tick, TIMEOUTS["LauncherFunction"])

    def monitor(self, faults: Sequence[Fault] = ()) -> None:
        """The monitor's scheduled run: its sweep, then the stats rollup (as its handler)."""
        monitor = Monitor(self.store, self.backend, self.dispatcher, policy=POLICY, pacer=self.pacer(), clock=self.clock, rng=self.rng, **self.budget_hooks)  # type: ignore[arg-type]
        roller = StatsRoller(self.store, self.clock)  # type: ignore[arg-type]
        self.run_function("monitor", faults, lambda: (monitor.sweep(), roller.roll()), TIMEOUTS["MonitorFunction"])

    def event(self, index: int, faults: Sequence[Fault] = (), *, replay: bool = False) -> None:
        """Deliver one SageMaker event: the ``index``-th still pending (0: in order), or, with
        ``replay``, one already delivered again (a duplicate, or a late one)."""
        if replay:
            if not self.delivered_events:
                return
            number = self.delivered_events[index % len(self.delivered_events)]
        else:
            pending = [i for i in range(len(self.sagemaker.bus)) if i not in set(self.delivered_events)]
            if not pending:
                return
            number = pending[index % len(pending)]
            self.delivered_events.append(number)
        event = self.sagemaker.bus[number]
        monitor = Monitor(self.store, self.backend, self.dispatcher, policy=POLICY, pacer=self.pacer(), clock=self.clock, rng=self.rng, **self.budget_hooks)  # type: ignore[arg-type]
        self.run_function(
            "monitor(event)", faults, lambda: monitor.observe(event.job_id, event.attempt, event.status), TIMEOUTS["MonitorFunction"]
        )

    def progress(self, index: int, outcome: str) -> None:
        job_id = self.job(index)
        if job_id is None:
            return
        names = [n for n, s in self.sagemaker.jobs.items() if n.startswith(job_id + "-a") and s.ended_at is None]
        for name in names[-1:]:
            self.sagemaker.progress(name, outcome, self.clock())

    # --- the schedule -----------------------------------------------------------------------

    def step(self, step: tuple[Any, ...]) -> None:
        kind = step[0]
        if kind == "submit":
            self.submit(*step[1:])
        elif kind == "sweep":
            self.sweep(*step[1:])
        elif kind == "look":  # a command that only reads: through the bot (a direct world has no commands)
            job_id = self.job(step[2])
            if self.bot is not None:
                self.bot.look(step[1], job_id, step[3])
        elif kind in USER_MOVES:
            self.user(kind, *step[1:])
        elif kind == "launcher":
            self.launcher(step[1])
        elif kind == "launchers2":  # two launcher runs at once: the second runs inside the first's calls
            self.launcher((*step[1], ("user", "launcher", 0)))
        elif kind == "monitor":
            self.monitor(step[1])
        elif kind == "event":
            self.event(step[1], step[2])
        elif kind == "replay":
            self.event(step[1], (), replay=True)
        elif kind == "sagemaker":
            self.progress(step[1], step[2])
        elif kind == "budget":  # an operator redeploys with another weekly budget (TeamBudgets)
            self.budget_hours = float(step[1])
            self.budgets._budgets["*"] = self.budget_hours  # what a cold start with the new setting reads
        elif kind == "outage":
            self.outages[step[1]] = OUTAGES[step[1]]
        elif kind == "wait":
            self.clock.advance(timedelta(seconds=step[1]))
        else:
            raise ValueError(f"unknown step {step!r}")

    def run(self, schedule: Sequence[tuple[Any, ...]]) -> None:
        for number, step in enumerate(schedule):
            self.log.append(f"{number}: {step!r}")
            self.step(step)
            self.check_always(number)
        self.settle()
        self.check_at_rest()
        if self.answer_every_card():
            # Held means held until an admin decides: once they do, the job moves on as any other.
            self.settle()
            self.check_at_rest()
            self.check_nothing_held()
        self.check_stats()

    def answer_every_card(self) -> bool:
        """The admins press Approve on every approval card still waiting: a held single job's
        own, a held sweep's on its first job (which stands for the sweep, even if that job was
        stopped meanwhile). Whether anyone pressed."""
        pressed: set[str] = set()
        for job_id in self.job_ids:
            job = self.peek(job_id)
            if not job.is_held:
                continue
            alone = job.approval is not None and job.approval.alone  # its own card, not its sweep's
            card = self.sweeps[job.sweep_id][0] if job.sweep_id in self.sweeps and not alone else job_id
            if card in pressed:
                continue
            pressed.add(card)
            self.log.append(f"admin approves {card}")
            try:
                self.approvals.approve(card, ADMIN)
            except TrainbotError as exc:
                self._violated(-1, f"3: approving {card} (the card of held {job_id}) failed: {type(exc).__name__}: {exc}")
        return bool(pressed)

    def check_nothing_held(self) -> None:
        for job_id in self.job_ids:
            job = self.peek(job_id)
            if job.is_held:
                self._violated(-1, f"3: {job_id} is still held after an admin approved its card")

    def settle(self) -> None:
        """No more faults and no more users: SageMaker finishes what runs, every event arrives
        in order, the launcher and the monitor run on their schedules. An orphan (a training
        job no job runs: :meth:`orphan`) runs on until it is stopped, as on SageMaker, where
        it would run to its max runtime: a job that finished by itself here would hide that
        nobody stopped it."""
        for _ in range(SETTLE_ROUNDS):
            self.clock.advance(SETTLE_ROUND)
            for name, status in list(self.sagemaker.jobs.items()):
                if status.ended_at is None and (status.state is not TrainingState.RUNNING or not self.orphan(name)):
                    self.sagemaker.progress(name, "complete", self.clock())
            while len(self.delivered_events) < len(self.sagemaker.bus) and "eventbridge" not in self.outages:
                self.event(0)
            self.launcher()
            self.monitor()
            self.check_always(-1)
            if self._at_rest():
                break

    def _at_rest(self) -> bool:
        """Nothing left to move: every job ended or held, nothing runs on SageMaker, every event
        arrived and every change reached every sink (the rest of the five hours would be idle)."""
        if any(status.ended_at is None for status in self.sagemaker.jobs.values()):
            return False
        if len(self.delivered_events) < len(self.sagemaker.bus) and "eventbridge" not in self.outages:
            return False
        for job_id in self.job_ids:
            job = self.peek(job_id)
            if not job.is_terminal and not job.is_held:
                return False
            if not job.is_held and any(job.delivered.get(s.name, 0) < job.last_seq for s in (self.slack, self.sns)):
                return False
        return True

    # --- invariants -------------------------------------------------------------------------

    def check_always(self, step: int) -> None:
        for job_id in self.job_ids:
            live = self.sagemaker.live(job_id)
            if len(live) > 1:
                self._violated(step, f"1: {job_id} has {len(live)} live training jobs: {live}")
            job = self.peek(job_id)
            if live and job.approval is not None and job.approval.state is not ApprovalState.APPROVED:
                self._violated(step, f"1: {job_id} was never approved ({job.approval.state.value}) but {live} runs")
        self._check_budget(step)
        for sink in (self.slack, self.sns):
            for (job_id, seq), count in sink.sent.items():
                # Only SNS may repeat a send whose record was lost (its subscribers dedupe on
                # the key it carries); the Slack replies look before sending again.
                if count > 1 and (sink is self.slack or job_id not in self.delivery_doubts):
                    self._violated(step, f"4: {sink.name} told {job_id} change {seq} {count} times")

    def _check_budget(self, step: int) -> None:
        """6: committed (billed + reserved) never exceeds the week's budget, save what admins
        approved past it (each approval may commit one more estimate)."""
        week = iso_week(self.clock())
        approved = owed = 0
        for job_id in self.job_ids:
            job = self.peek(job_id)
            decisions = sum(1 for entry in job.history if entry.reason.startswith("approved by"))
            if job.approval is not None and job.approval.state is ApprovalState.APPROVED:
                decisions = max(decisions, 1)
            approved += decisions * reservation_seconds(job)
            owed += self._billed_after_release(job)
        committed = committed_hours(self.raw_store, OWNER.user_id, week)
        # A budget lowered by a redeploy may leave what was committed before above it; from
        # then on nothing more may be committed until it fits again.
        # (An admin's approval may commit past it: by at most what it approved.)
        before, approved_before, owed_before = self._committed.get(week, (0.0, 0, 0))
        grew = committed - before > (approved - approved_before + owed_before) / 3600 + 1e-9
        self._committed[week] = (committed, approved, owed)
        if grew and committed > self.budget_hours + approved / 3600 + 1e-9:
            self._violated(step, f"6: {committed:.2f} instance-hours committed in {week}, budget {self.budget_hours} (+{approved / 3600:.2f} approved)")

    def _billed_after_release(self, job: Job) -> int:
        """Instance-seconds SageMaker billed ``job`` under a reservation it has given back already
        while that billed time is not counted yet: a retry's renewal gives the old reservation
        back before its write, which counts the time (a run killed between the two leaves them
        to two steps). Counting it later replaces what was reserved: no new commitment."""
        if not job.reservation or job.is_terminal:
            return 0
        key, _, token = job.reservation.rpartition("|")
        if token in ((self.raw_store.get_record(RecordKind.USAGE, key) or {}).get("Holding") or ()):
            return 0
        return sum(
            (status.billable_seconds or 0) * job.job_args.instance_count
            for name, status in self.sagemaker.jobs.items()
            if name.startswith(job.job_id + "-a") and status.ended_at is not None
            and self.raw_store.get_record(RecordKind.COUNTED, name) is None
        )

    def orphan(self, name: str) -> bool:
        """Whether training job ``name`` is one no job runs: its job ended, is held (or was
        rejected), or runs another attempt, or marked this one ended. A claimed attempt (its
        create in flight, or landed and not yet recorded) is its job's: the launcher adopts it."""
        job_id, _, number = name.rpartition("-a")
        job = self.peek(job_id)
        current = job.current_attempt
        if job.is_terminal or job.is_held or current is None or current.name != name:
            return True
        return current.outcome not in (AttemptOutcome.PENDING, AttemptOutcome.RUNNING)

    def check_at_rest(self) -> None:
        for job_id in self.job_ids:
            job = self.peek(job_id)
            live = self.sagemaker.live(job_id)
            if job.status is S.STOPPED and live:
                self._violated(-1, f"2: {job_id} is Stopped but {live} still runs")
            orphans = [name for name in live if self.orphan(name)]
            if orphans:
                # Whether or not any event of it was ever delivered: the sweep's reaper lists them.
                self._violated(-1, f"2: {job_id} is {job.status.value} but {orphans} still runs, an attempt it does not run")
            if not job.is_terminal and not job.is_held:
                self._violated(-1, f"3: {job_id} is still {job.status.value} after {SETTLE_ROUNDS * SETTLE_ROUND} of quiet")
            if job_id in self.never_fits and job.status is not S.STOPPED and not job.is_held:
                # A job that can never run fails, saying why (not "gave up" after a long wait).
                reason = job.history[-1].reason if job.history else ""
                if job.status is not S.FAILED or "can never run" not in reason:
                    self._violated(-1, f"3: {job_id} can never fit its limit but is {job.status.value}: {reason!r}")
            for sink in (self.slack, self.sns):
                # A job still queued (held) tells of its New with its next change, or after a
                # day (backend.domain.notice.QUEUED_HOLD): not a lost notification.
                down = f"{sink.name}.notify" in self.outages and isinstance(self.outages[f"{sink.name}.notify"](), NotifierUnavailable)
                if job.delivered.get(sink.name, 0) < job.last_seq and not job.is_held and not down:
                    self._violated(-1, f"4: {job_id}'s change {job.last_seq} never reached {sink.name}")

    def check_stats(self) -> None:
        """Once every job has ended: the stats the monitor's rollup kept, through crashed and
        refused runs, say what reading every job says (counts, retries, hours exactly)."""
        window = Window.last_days(14, self.clock() + timedelta(hours=1))
        jobs = list(jobs_in_window(self.raw_store, window))  # every job, as the stats read them
        if not jobs or any(not job.is_terminal for job in jobs):
            return
        self.stats_checked += 1
        # Now (the newest ends read one by one), then once the rollup has rolled them too.
        for later in (timedelta(0), timedelta(hours=1)):
            self.clock.advance(later)
            if later:
                StatsRoller(self.raw_store, self.clock).roll()
            rolled = collect(self.raw_store, None, 14, None, self.clock())
            exact = compute_stats(jobs, rolled.window, self.clock())
            for what in ("total", "finished", "completed", "by_status", "retries_by_cause", "jobs_per_day"):
                if getattr(rolled, what) != getattr(exact, what):
                    self._violated(-1, f"7: the stats' {what} from the rollup is {getattr(rolled, what)}, reading every job {getattr(exact, what)}")
            hours = {k: round(v, 6) for k, v in rolled.instance_hours.items()}
            if hours != {k: round(v, 6) for k, v in exact.instance_hours.items()}:
                self._violated(-1, f"7: the stats' instance-hours from the rollup are {hours}, reading every job {exact.instance_hours}")

    def _violated(self, step: int, what: str) -> None:
        trail = "\n".join(self.log[-60:])
        raise InvariantViolated(f"invariant {what} (step {step})\n--- schedule log (last lines) ---\n{trail}")

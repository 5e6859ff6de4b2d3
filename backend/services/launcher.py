"""The launcher: claims due jobs and creates their SageMaker training jobs.

One tick (an EventBridge schedule, every minute):

1. count instances in use per type (the Active index's projection, not its items) and load the instance-type holds;
2. read due jobs in launch order (the Queue index: expired claims first, then priority,
   owner-fair tag, age);
3. for each, unless its type is held or at its limit: **claim** it with a conditional write
   that records the attempt's name (``<JobId>-a<n>``) and a lease, then CreateTrainingJob
   under that name, paced by a token bucket, then move the job to Launched.

Crash safety follows from the order: the name is recorded before the create, so a launcher
that dies after the claim, or after the create, leaves a claimed job whose lease expires; the
next tick claims it again and creates under the *same* name, and SageMaker's ``ResourceInUse``
means "it exists: adopt it". Two launchers racing lose or win the claim's conditional write,
so an attempt is never created twice.
"""

from __future__ import annotations

import functools
import itertools
import random
import secrets
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools import Logger

from backend.domain.fairness import launch_order
from backend.domain.instance_types import choose_instance_type, over_instance_limits
from backend.domain.policy import (
    CREATE_SERVICE_ERRORS_MAX,
    Action,
    Classification,
    RetryPolicy,
    full_jitter_delay,
    next_attempt_time,
)
from backend.domain.records import RecordKind
from backend.domain.status import JobStatus
from backend.domain.terms import LAUNCH_LEASE, MAX_ATTEMPTS, PLAN_USE_PREFIX, AttemptOutcome, FailureClass, attempt_name
from backend.domain.times import format_utc, parse_utc
from backend.domain.waiting import same_kind, waiting_text
from backend.errors import (
    AlreadyExists,
    BackendRefused,
    BackendUnavailable,
    CreateRefused,
    JobNotFound,
    StoreUnavailable,
    TrainbotError,
    UnreadableItem,
)
from backend.ports import Applied, JobRepository, LostRace, RecordStore, TrainingBackend, notify_without_waiting
from backend.services.notify import Dispatcher
from backend.services.pacing import TokenBucket
from backend.services.plans import PlanBook, PlanGate

if TYPE_CHECKING:
    from backend.domain.model import Attempt, Job

logger = Logger(service="trainbot", child=True)

S = JobStatus
F = FailureClass

LEASE = LAUNCH_LEASE  # a live launcher never loses its claim (backend.domain.terms)
HOLDS_KEY = "instance-types"  # the one record of held instance types
DUE_BATCH = 200
# Most jobs one tick parks (one conditional write each, once per job until its type has room):
# a long queue of one blocked type is moved aside within a tick or two.
PARK_BATCH = 1000


@dataclass
class LaunchReport:
    due: int = 0
    launched: int = 0
    adopted: int = 0
    retrying: int = 0
    failed: int = 0
    kept_due: int = 0  # throttled or unknown: still due, no attempt spent
    held: int = 0  # skipped: the instance type is held after ResourceLimitExceeded
    at_limit: int = 0  # skipped: TRAINBOT_INSTANCE_LIMITS reached
    lost_races: int = 0
    parked: int = 0  # moved aside: due, but its instance type has no room (see Job.parked_at)
    plan_waits: int = 0  # skipped: its training plan has not started or is full
    errors: int = 0  # one job's step failed (logged); the tick went on with the others
    stopped_early: bool = False
    by_class: Counter[str] = field(default_factory=Counter)
    # How long the longest-waiting job launched this tick had been due (launcher lag).
    max_lag_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["by_class"] = dict(self.by_class)
        return data


@dataclass(frozen=True)
class _Result:
    launched: bool = False
    hold_until: datetime | None = None  # ResourceLimitExceeded: hold the type until then


@dataclass(frozen=True)
class Hold:
    """No launches of an instance type until ``until``, or until fewer of its instances run
    than when the hold began (one of its jobs ended and freed quota)."""

    until: datetime
    active_at_hold: int


class LaunchStore(JobRepository, RecordStore, Protocol):
    """What the launcher needs from the store: the queue, conditional writes, and the
    instance-type holds record."""


class Launcher:
    def __init__(
        self,
        store: LaunchStore,
        backend: TrainingBackend,
        dispatcher: Dispatcher,
        *,
        policy: RetryPolicy,
        instance_limits: dict[str, int],
        pacer: TokenBucket,
        clock: Callable[[], datetime],
        rng: random.Random | None = None,
        batch: int = DUE_BATCH,
        plans: PlanBook | None = None,
    ) -> None:
        self._plans = plans
        self._store = store
        self._backend = backend
        self._dispatcher = dispatcher
        self._policy = policy
        self._limits = dict(instance_limits)
        self._pacer = pacer
        self._clock = clock
        self._rng = rng or random.Random()
        self._batch = batch
        self._token = secrets.token_hex(6)
        self._launched_to_tell: list[Job] = []
        self._slowed_this_tick = False

    def run_tick(self, should_continue: Callable[[], bool] = lambda: True) -> LaunchReport:
        report = LaunchReport()
        self._slowed_this_tick = False
        now = self._clock()
        # The queue first. Most ticks find nothing due and nothing parked: such an idle tick
        # reads the instances in use (the plan watch below needs them) and stops, without the
        # holds record or anything else. With no parked jobs the due jobs are read before the
        # usage and holds, as nothing this tick does can come before them; with parked jobs,
        # which go first, the order is as it always was (those may move into the due queue).
        parked_types = self._store.parked_types()
        queue: Iterator[Job] = iter(())
        first: Job | None = None
        if not parked_types:
            queue = self._store.iter_due(now, self._batch + PARK_BATCH)
            first = next(queue, None)
            if first is not None:
                queue = itertools.chain([first], queue)
        usage, on_plans = self._usage()
        gate = self._plans.gate_from_use(now, on_plans) if self._plans is not None else None
        if not parked_types and first is None:
            self._end_tick(report, gate)
            return report
        holds, holds_changed = self._load_holds(now, usage)
        if parked_types:
            queue = itertools.chain(
                self._unparked(parked_types, holds, usage, report), self._store.iter_due(now, self._batch + PARK_BATCH)
            )

        def blocked(instance_type: str, count: int) -> str | None:
            if instance_type in holds:
                return "held"
            limit = self._limits.get(instance_type)
            if limit is not None and usage[instance_type] + count > limit:
                return "at_limit"
            return None

        def has_room(blocks: Callable[[str], str | None], instance_type: str) -> bool:
            return blocks(instance_type) is None

        considered = parked = 0
        for job in queue:
            if job.is_held:
                continue  # waiting for an admin's approval (its index keeps it out; never launch it)
            report.due += 1
            if not should_continue():
                report.stopped_early = True
                break
            count = job.job_args.instance_count
            choices = _choices(job)
            plan_arn, plan_note = None, ""
            if gate is not None:
                step = self._plan_step(job, gate, report)
                if step is None:
                    continue  # waits for its plan, or was refused
                plan_arn, plan_note = step
            too_big = None if _pending(job) or plan_arn else over_instance_limits(job.instance_choices, count, self._limits)
            if too_big is not None:
                # Parking it would wait for ever, and take the slot a job that fits would get.
                self._isolated(job, report, functools.partial(self._too_big, job, report, too_big))
                continue
            # On a plan, the plan's reserved capacity is the room (the gate checked it).
            blocks = functools.partial(blocked, count=count) if not plan_arn else (lambda _type: None)
            instance_type = choose_instance_type(choices, functools.partial(has_room, blocks), avoid=_refused_type(job))
            if instance_type is None:
                # No type of its list has room: park the job, so that the jobs behind it (of
                # types that have room) are reached now and it is not read again until one of
                # its types has room. Why it waits goes on the item (and its card) with the
                # park write, or with a write of its own only when the reason changed.
                why = blocked(choices[0], count) or "held"
                setattr(report, why, getattr(report, why) + 1)
                waits = waiting_text([(t, holds[t].until if t in holds else None, self._limits.get(t)) for t in choices])
                if job.parked_at is None and parked < PARK_BATCH:
                    parked += 1
                    self._isolated(job, report, functools.partial(self._park, job, report, waits))
                elif job.parked_at is not None and not same_kind(job.waiting, waits):
                    self._isolated(job, report, functools.partial(self._record_wait, job, waits))
                continue
            if considered >= self._batch:
                report.stopped_early = True
                break
            considered += 1
            switch = _switch_note(job, instance_type, blocks, holds)
            result = self._isolated(
                job, report, functools.partial(self._launch, job, report, instance_type, switch, plan_arn, plan_note)
            )
            if result.launched and plan_arn and gate is not None and job.plan:
                gate.launched(job.plan, count)
            elif result.launched:
                usage[instance_type] += count
            elif result.hold_until is not None:
                holds[instance_type] = Hold(result.hold_until, usage[instance_type])
                holds_changed = True
        if holds_changed:
            self._save_holds(holds)
        self._end_tick(report, gate)
        return report

    def _usage(self) -> tuple[Counter[str], dict[str, int]]:
        """Instances in use per type, and per training plan, from the Active index's projection:
        never every active item, read whole, every tick. Counted against the type each attempt
        runs on (a fallback type, maybe); attempts on a plan count against their plan, not the
        on-demand limits."""
        usage: Counter[str] = Counter()
        on_plans: dict[str, int] = {}
        for key, count in self._store.active_usage().items():
            if key.startswith(PLAN_USE_PREFIX):
                on_plans[key.removeprefix(PLAN_USE_PREFIX)] = count
            else:
                usage[key] = count
        return usage, on_plans

    def _end_tick(self, report: LaunchReport, gate: PlanGate | None) -> None:
        if gate is not None:
            gate.watch()
            gate.finish()
        self._tell_launched()
        logger.info("launcher tick", extra={"report": report.as_dict()})

    def may_be_unseen(self, job_id: str | None) -> bool:
        """Whether ``job_id`` (the job a kicked run was asked for, None: not said) may still be
        waiting to show in the Queue index: registered, never claimed, not parked. A run whose
        queue read came back empty looks once more only then: if an earlier run launched it,
        there is nothing to wait for. Could not find out: assume it may be."""
        if job_id is None:
            return True
        try:
            job = self._store.get(job_id)
        except (JobNotFound, StoreUnavailable):
            return True
        except UnreadableItem:
            return False  # this version could never launch it: nothing to look again for
        return job.status is S.NEW and not job.attempts and job.lease is None and job.parked_at is None and not job.is_held

    def _unparked(self, parked_types: list[str], holds: dict[str, Hold], usage: Counter[str], report: LaunchReport) -> Iterator[Job]:
        """Parked jobs whose instance type may have room again, oldest in launch order first
        (``parked_types``: the park keys that have parked jobs)."""
        candidates: list[Job] = []
        for park_key in parked_types:
            # A park key lists the jobs' types (first choice first): read them again as soon
            # as any of those types has room.
            rooms = []
            for instance_type in park_key.split(","):
                limit = self._limits.get(instance_type)
                if instance_type in holds or (limit is not None and usage[instance_type] >= limit):
                    continue
                rooms.append(self._batch if limit is None else max(1, limit - usage[instance_type]))
            if rooms:
                candidates.extend(self._store.parked_jobs(park_key, min(sum(rooms), self._batch)))
        yield from sorted(candidates, key=launch_order)

    def _plan_step(self, job: Job, gate: PlanGate, report: LaunchReport) -> tuple[str | None, str] | None:
        """A job's training plan before its instance type is chosen: (the plan's ARN to create
        on, or None: on-demand; a note for the thread), or None when it does not launch now
        (it waits for its plan, reason on its card, or it was refused and failed)."""
        attempt = job.current_attempt
        if _pending(job) and attempt is not None:
            # Claimed before (it may exist): create or adopt it on what it was claimed on.
            if not attempt.plan:
                return None, ""
            arn = gate.arn_of(attempt.plan)
            if arn is None:  # its plan is unknown right now: never re-create it on-demand
                report.plan_waits += 1
                return None
            return arn, ""
        if not job.plan:
            return None, ""
        verdict = gate.decide(job)
        if verdict.on_demand(bool(job.plan_fallback)):
            return None, f"on-demand (plan_fallback): {verdict.reason.removeprefix('waiting: ')}"
        if verdict.action == "wait":
            report.plan_waits += 1
            if job.waiting != verdict.reason:
                self._isolated(job, report, functools.partial(self._record_wait, job, verdict.reason))
            return None
        if verdict.action == "refuse":
            self._isolated(job, report, functools.partial(self._too_big, job, report, verdict.reason))
            return None
        return verdict.arn, ""

    def _park(self, job: Job, report: LaunchReport, waits: str) -> _Result:
        outcome = self._store.update(job, at=self._clock(), parked_at=self._clock(), waiting=waits)
        if isinstance(outcome, Applied):
            report.parked += 1
            self._dispatcher.refresh(outcome.job)
        return _Result()

    def _too_big(self, job: Job, report: LaunchReport, reason: str) -> _Result:
        """A job no type of its list could ever run under the instance limits: failed now."""
        self._finish(job, S.FAILED, reason, report, lease=None, parked_at=None, waiting=None, next_attempt_at=None)
        return _Result()

    def _record_wait(self, job: Job, waits: str) -> _Result:
        """A parked job read again whose reason to wait changed (another type now blocks it,
        a hold moved): one write and one card refresh per change, never one per tick."""
        outcome = self._store.update(job, at=self._clock(), waiting=waits)
        if isinstance(outcome, Applied):
            self._dispatcher.refresh(outcome.job)
        return _Result()

    def _isolated(self, job: Job, report: LaunchReport, work: Callable[[], _Result]) -> _Result:
        """Run one job's step; a failure of that job (its item refused, a store outage on its
        write) is logged and counted, and the tick goes on with the next job."""
        try:
            return work()
        except TrainbotError as exc:
            report.errors += 1
            logger.error("launching one job failed; the tick goes on", extra={"job_id": job.job_id, "error": str(exc)})
            return _Result()

    def _tell_launched(self) -> None:
        """Deliver the tick's "Launched" changes after its creates, not between them: a burst's
        last job reaches SageMaker without waiting for the Slack replies of the ones before it,
        and without waiting for Slack's pace at all. A launcher that dies first, or a post that
        would have to wait, leaves them in the outbox; the monitor's sweep delivers them."""
        launched, self._launched_to_tell = self._launched_to_tell, []
        # Never waiting for Slack's pace: the launcher's one slot is held meanwhile (a kicked
        # run waits for it). What would wait stays in the outbox for the next delivery.
        with notify_without_waiting():
            for job in launched:
                self._dispatcher.deliver(job)

    # --- one job --------------------------------------------------------------------------

    def _launch(
        self, job: Job, report: LaunchReport, instance_type: str, switch: str, plan_arn: str | None = None, plan_note: str = ""
    ) -> _Result:
        from backend.domain.model import Attempt, Lease

        now = self._clock()
        attempt = job.current_attempt
        if attempt is None or attempt.outcome is not AttemptOutcome.PENDING:
            if job.attempt_count >= MAX_ATTEMPTS:
                self._finish(job, S.FAILED, f"gave up: {MAX_ATTEMPTS} attempts", report, attempts=job.attempts)
                return _Result()
            number = job.attempt_count + 1
            # The type is part of the claim: a launcher that takes this attempt over after a
            # crash creates (or adopts) it on the very same type, under the same name.
            attempt = Attempt(
                number=number,
                name=attempt_name(job.job_id, number),
                claimed_at=now,
                instance_type=instance_type if job.fallback_types else None,
                plan=job.plan if plan_arn else None,
            )
            attempts = job.with_attempt(attempt)
            reconcile = False
        else:
            # A pending attempt: an earlier launcher claimed it and may have created it before
            # it died (or before an answer was lost). Look before creating: a refusal of the
            # create (a quota that this very attempt now fills, say) would not prove the name
            # unused, and taking it for "not started" would start a second attempt beside it.
            attempts = job.attempts
            reconcile = True
        claim = self._store.update(
            job, at=now, attempts=attempts, lease=Lease(token=self._token, expires_at=now + LEASE), parked_at=None, waiting=None
        )
        if isinstance(claim, LostRace):
            report.lost_races += 1
            return _Result()
        job = claim.job

        adopted = False
        if reconcile:
            self._pacer.acquire()
            try:
                adopted = self._backend.describe(attempt.name) is not None
            except BackendRefused as refusal:
                # We may not look (AccessDenied), for good: the create under the very same name
                # tells instead (a name exists once: ResourceInUse means adopt it). Backing off
                # for ever here left the job Retrying with nothing to change it (the simulator).
                adopted = False
                if (attempt.create_errors or 0) >= CREATE_SERVICE_ERRORS_MAX:
                    return self._cannot_find_out(job, attempt, refusal, report)
            except BackendUnavailable:  # could not find out whether it exists: look again later
                return self._refused(job, attempt, Classification(F.UNKNOWN, f"could not look up {attempt.name}"), report)
        if not adopted and (attempt.create_errors or 0) >= CREATE_SERVICE_ERRORS_MAX:
            # SageMaker failed this attempt's creates too many times in a row, and the Describe
            # just now says the name does not exist: give up, with the last reason.
            not_started = attempt.model_copy(
                update={"outcome": AttemptOutcome.NOT_STARTED, "failure_class": F.THROTTLING, "ended_at": self._clock()}
            )
            reason = (
                f"SageMaker answered {attempt.create_errors} creates of {attempt.name} in a row with a service error "
                f"and it does not exist; last: {attempt.reason}"
            )
            self._finish(job, S.FAILED, reason, report, attempts=job.replace_attempt(not_started), lease=None, next_attempt_at=None)
            return _Result()
        if not adopted and not self._earlier_attempt_stopped(job, attempt, report):
            return _Result()
        if not adopted:
            self._pacer.acquire()
            try:
                request = job.job_args.to_request(attempt.name, job.instance_type_of(attempt), training_plan_arn=plan_arn)
                self._backend.create(attempt.name, request)
            except AlreadyExists:
                adopted = True
            except CreateRefused as refused:
                return self._refused(job, attempt, refused.classification, report)
        self._pacer.reward()

        launched = attempt.model_copy(update={"outcome": AttemptOutcome.RUNNING, "launched_at": self._clock()})
        reason = f"adopted existing {attempt.name}" if adopted else f"created {attempt.name}"
        if job.fallback_types:
            reason += f" on {job.instance_type_of(attempt)}" + (f" ({switch})" if switch else "")
        if attempt.plan:
            reason += f" on plan `{attempt.plan}`"
        elif plan_note:
            reason += f" {plan_note}"
        try:
            outcome = self._store.transition(
                job,
                S.LAUNCHED,
                at=self._clock(),
                reason=reason,
                attempts=job.replace_attempt(launched),
                lease=None,
                next_attempt_at=None,
            )
        except StoreUnavailable:
            # Whether the record landed is not known: read the job back. A user's stop (and
            # retry, maybe held for approval) that landed inside the create leaves this attempt
            # nobody's: stop it now, not when the next tick or the monitor's reaper finds it.
            self._stop_unless_watched(job.job_id, attempt.name)
            raise
        if isinstance(outcome, LostRace):
            report.lost_races += 1
            if not _watches(outcome.current, attempt.name):
                # Whoever won left this attempt nobody's live one: a user's stop (maybe followed
                # by a retry, whose next claim starts a new attempt) whose StopTrainingJob ran
                # before our create. Nothing would ever watch or stop it: stop it now. Left
                # alone only when the job still runs (or will adopt) this very attempt.
                self._stop_orphan(attempt.name)
            return _Result()
        if adopted:
            report.adopted += 1
        else:
            report.launched += 1
        due_since = job.next_attempt_at or job.created_at
        report.max_lag_seconds = max(report.max_lag_seconds, (now - due_since).total_seconds())
        logger.info("launched", extra={"job_id": job.job_id, "attempt": attempt.name, "adopted": adopted})
        self._launched_to_tell.append(outcome.job)
        return _Result(launched=True)

    def _refused(self, job: Job, attempt: Attempt, classification: Classification, report: LaunchReport) -> _Result:
        now = self._clock()
        cls = classification.failure_class
        report.by_class[cls.value] += 1
        if cls is F.THROTTLING and not classification.service_error:
            # SageMaker is busy (a rate limit: nothing was created): keep the pending attempt,
            # release the claim, spend nothing, and slow down.
            self._slow_down()
            self._store.update(job, at=now, lease=None)
            report.kept_due += 1
            logger.warning("create throttled; job stays due", extra={"job_id": job.job_id, "reason": classification.reason})
            return _Result()
        if cls in (F.THROTTLING, F.UNKNOWN):
            return self._outcome_unknown(job, attempt, classification, report)
        if classification.zero_quota and len(job.instance_choices) > 1:
            # No quota at all for this type, but the job lists others: a quota refusal like
            # any other (the type is held, the next attempt passes over it), not a failure.
            classification = Classification(F.QUOTA, classification.reason)
            cls = F.QUOTA
        not_started = attempt.model_copy(
            update={"outcome": AttemptOutcome.NOT_STARTED, "failure_class": cls, "reason": classification.reason, "ended_at": now}
        )
        attempts = job.replace_attempt(not_started)
        decision = self._policy.decide(job, classification, now=now, rng=self._rng)
        if decision.action is Action.RETRY:
            next_at = next_attempt_time(now, decision)
            refused_type = job.instance_type_of(attempt)
            reason = classification.reason
            if cls in (F.QUOTA, F.CAPACITY) and len(job.instance_choices) > 1:
                # Another type of its list may have room: try it at once (the refused type is
                # held, and the next attempt passes over it); no hammering, it is another type.
                next_at = now
                others = ", ".join(t for t in job.instance_choices if t != refused_type)
                reason = f"{refused_type} refused, the next attempt may use {others}: {reason}"
            changes = {
                "attempts": attempts,
                "lease": None,
                "next_attempt_at": next_at,
                "capacity_wait_since": job.capacity_wait_since or now,
            }
            if job.status is S.RETRYING:
                outcome = self._store.update(job, at=now, **changes)
            else:
                outcome = self._store.transition(job, S.RETRYING, at=now, reason=reason, **changes)
            report.retrying += 1
            if isinstance(outcome, Applied):
                self._dispatcher.deliver(outcome.job)
            # No hammering: when the quota is full, hold further launches of this type until
            # the backoff passes or one of its jobs ends. A refusal that leaves the type room
            # (a capacity refusal, or a quota message showing room) is this job's alone: its
            # own backoff, while the rest of its type launches.
            hold = next_attempt_time(now, decision) if cls is F.QUOTA and not classification.quota_has_room else None
            return _Result(hold_until=hold if isinstance(hold, datetime) else None)
        self._finish(job, S.FAILED, decision.reason, report, attempts=attempts, lease=None)
        return _Result()

    def _outcome_unknown(self, job: Job, attempt: Attempt, classification: Classification, report: LaunchReport) -> _Result:
        """A create (or the Describe before it) that SageMaker answered with a service error or
        an error we do not know: could not find out, which is not a failure. The pending attempt
        is kept (its name may exist: the next try Describes it first and adopts it), the job
        backs off (Retrying, no attempt spent, its waiting reason on the card), and the errors
        in a row are counted on the attempt: past CREATE_SERVICE_ERRORS_MAX, the next try fails
        the job if the Describe says the name does not exist (see :meth:`_launch`)."""
        now = self._clock()
        self._slow_down()
        streak = (attempt.create_errors or 0) + 1
        counted = attempt.model_copy(update={"create_errors": streak, "reason": classification.reason})
        delay = full_jitter_delay(streak - 1, base=self._policy.base_seconds, cap=self._policy.max_seconds, rng=self._rng)
        next_at = now + timedelta(seconds=max(delay, self._policy.base_seconds / 2))
        waits = (
            f"waiting: SageMaker could not say whether {attempt.name} was created "
            f"({streak} service error{'s' if streak > 1 else ''} in a row; last: {classification.reason}); trying again after a backoff"
        )
        changes = {"attempts": job.replace_attempt(counted), "lease": None, "next_attempt_at": next_at, "waiting": waits}
        if job.status is S.RETRYING:
            outcome = self._store.update(job, at=now, **changes)
        else:
            outcome = self._store.transition(job, S.RETRYING, at=now, reason=waits.removeprefix("waiting: "), **changes)
        report.kept_due += 1
        if isinstance(outcome, Applied):
            self._dispatcher.deliver(outcome.job)
        logger.warning(
            "create outcome unknown; job backs off",
            extra={"job_id": job.job_id, "attempt": attempt.name, "in_a_row": streak, "reason": classification.reason},
        )
        return _Result()

    def _cannot_find_out(self, job: Job, attempt: Attempt, refusal: BackendRefused, report: LaunchReport) -> _Result:
        """SageMaker answered every create of this attempt with a service error, and we may not
        Describe it (a permanent refusal): nothing Trainbot can do will ever tell whether the
        name exists. Waiting would keep the job Retrying for ever (the simulator found it), so
        the job fails, saying both causes and what to fix; a stop is sent for the name first,
        so an attempt that did start does not run unseen (a name that does not exist makes the
        stop a no-op)."""
        self._stop_orphan(attempt.name)
        ended = attempt.model_copy(update={"outcome": AttemptOutcome.FAILED, "failure_class": F.UNKNOWN, "ended_at": self._clock()})
        reason = (
            f"SageMaker answered {attempt.create_errors} creates of {attempt.name} in a row with a service error "
            f"(last: {attempt.reason}), and Trainbot may not look it up ({refusal}); it cannot tell whether "
            f"{attempt.name} exists, so a stop was sent for it in case. Give the launcher's role "
            "sagemaker:DescribeTrainingJob, then retry"
        )
        self._finish(job, S.FAILED, reason, report, attempts=job.replace_attempt(ended), lease=None, next_attempt_at=None)
        return _Result()

    def _slow_down(self) -> None:
        """Halve the shared SageMaker call rate, once per tick: one job whose creates keep
        failing must not starve the others (and a burst of errors is one signal, not many)."""
        if not self._slowed_this_tick:
            self._slowed_this_tick = True
            self._pacer.penalize()

    def _finish(self, job: Job, status: JobStatus, reason: str, report: LaunchReport, **changes: Any) -> None:
        outcome = self._store.transition(job, status, at=self._clock(), reason=reason, **changes)
        if isinstance(outcome, Applied):
            report.failed += 1
            logger.info("job failed at launch", extra={"job_id": job.job_id, "reason": reason})
            self._dispatcher.deliver(outcome.job)
        else:
            report.lost_races += 1

    def _earlier_attempt_stopped(self, job: Job, attempt: Attempt, report: LaunchReport) -> bool:
        """Before creating ``attempt``, make sure the attempt before it is not running: one
        stopped before launch (a user's stop while a launcher held its claim) may have been
        created after that stop's StopTrainingJob ran, by a launcher that then could not record
        it (a throttled or killed write). Nothing else would ever stop it. One call, only after
        such a stop; False (the job stays due, its claim given back) when SageMaker could not
        be asked: creating now could leave two training jobs running."""
        earlier = next((a for a in job.attempts if a.number == attempt.number - 1), None)
        if earlier is None or earlier.outcome is not AttemptOutcome.STOPPED or earlier.launched_at is not None:
            return True
        self._pacer.acquire()
        try:
            self._backend.stop(earlier.name)
        except BackendUnavailable as exc:
            self._store.update(job, at=self._clock(), lease=None)
            report.kept_due += 1
            logger.warning("could not make sure the attempt before is stopped; job stays due", extra={"job_id": job.job_id, "attempt": earlier.name, "error": str(exc)})
            return False
        except BackendRefused as exc:  # may not stop (AccessDenied), for good: nothing to wait for
            logger.error("could not stop the attempt before", extra={"job_id": job.job_id, "attempt": earlier.name, "error": str(exc)})
        return True

    def _stop_unless_watched(self, job_id: str, name: str) -> None:
        try:
            current = self._store.get(job_id)
        except (JobNotFound, StoreUnavailable):
            return  # could not find out: the next tick (or the reaper) will
        if not _watches(current, name):
            self._stop_orphan(name)

    def _stop_orphan(self, name: str) -> None:
        try:
            self._backend.stop(name)
        except Exception as exc:
            logger.warning("could not stop orphan", extra={"attempt": name, "error": str(exc)})

    # --- holds ---------------------------------------------------------------------------------

    def _load_holds(self, now: datetime, usage: Counter[str]) -> tuple[dict[str, Hold], bool]:
        try:
            record = self._store.get_record(RecordKind.HOLDS, HOLDS_KEY) or {}
        except StoreUnavailable:
            return {}, False
        holds: dict[str, Hold] = {}
        changed = False
        for instance_type, raw in (record.get("Holds") or {}).items():
            try:
                hold = Hold(parse_utc(raw["Until"]), int(raw["Active"]))
            except (KeyError, TypeError, ValueError):
                # A hold this version cannot read (a newer one's shape): costs only itself.
                logger.error("unreadable instance-type hold dropped", extra={"instance_type": instance_type, "hold": str(raw)})
                changed = True
                continue
            if now >= hold.until or usage[instance_type] < hold.active_at_hold:
                changed = True  # the backoff passed, or one of its jobs ended: launch again
                continue
            holds[instance_type] = hold
        return holds, changed

    def _save_holds(self, holds: dict[str, Hold]) -> None:
        self._store.put_record(
            RecordKind.HOLDS,
            HOLDS_KEY,
            {"Holds": {t: {"Until": format_utc(h.until), "Active": h.active_at_hold} for t, h in holds.items()}},
        )


def _watches(current: Job | None, name: str) -> bool:
    """Whether the stored job (None: gone or unreadable) has attempt ``name`` as its current,
    live one: another launcher adopted it, or will reconcile it."""
    attempt = current.current_attempt if current is not None else None
    return attempt is not None and attempt.name == name and attempt.outcome in (AttemptOutcome.PENDING, AttemptOutcome.RUNNING)


# --- instance-type fallback ------------------------------------------------------------------------


def _pending(job: Job) -> bool:
    """Whether the job's current attempt was claimed and may exist already (to reconcile)."""
    attempt = job.current_attempt
    return attempt is not None and attempt.outcome is AttemptOutcome.PENDING


def _choices(job: Job) -> list[str]:
    """The types the job's next claim may use: a pending attempt keeps the type it was claimed
    on (it may exist already: never create it again on another type); else its whole list."""
    if _pending(job):
        return [job.instance_type_of(job.current_attempt)]
    return job.instance_choices


def _refused_type(job: Job) -> str | None:
    """The type a capacity or quota error ended the last attempt on (the next one passes over
    it while another type of the list has room)."""
    attempt = job.current_attempt
    if attempt is None or attempt.failure_class not in (F.CAPACITY, F.QUOTA):
        return None
    return job.instance_type_of(attempt)


def _switch_note(job: Job, instance_type: str, blocked: Callable[[str], str | None], holds: dict[str, Hold]) -> str:
    """Why the attempt runs on ``instance_type`` when that is not its previous attempt's type
    (or, for a first attempt, not its first choice): what the thread says about the change."""
    if not job.fallback_types:
        return ""
    previous = job.current_attempt
    before = job.instance_type_of(previous)
    if instance_type == before:
        return ""
    first = job.instance_choices[0]
    if instance_type == first:
        return f"back to its first choice: {first} has room again"
    passed = job.instance_choices[: job.instance_choices.index(instance_type)]
    why = []
    for other in passed:
        cause = blocked(other)
        if cause == "held":
            why.append(f"{other} is held until {format_utc(holds[other].until)} after a capacity or quota refusal")
        elif cause == "at_limit":
            why.append(f"{other} is at its instance limit")
        elif other == _refused_type(job):
            why.append(f"{other} ran out of capacity or quota on attempt {previous.number if previous else 0}")
    return "fallback: " + ("; ".join(why) if why else f"{before} was refused")

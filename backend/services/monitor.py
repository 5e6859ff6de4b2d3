"""The monitor: applies what SageMaker says about attempts to their jobs.

Two inputs: SageMaker's state-change events (EventBridge; they may repeat or arrive out of
order) and a slower scheduled sweep that describes the active jobs, paced, and drains the
notification outbox. Either way the same rule applies an observation: only a forward move of
the attempt the observation is about, through the store's conditional write, so a duplicate or
stale event changes nothing. A Describe that is throttled or times out means "unknown": the job
is left as it is and looked at again on the next sweep, never failed for it. A Describe refused
for good (AccessDenied) is counted on the attempt and fails the job only once it persists.
Each sweep first stops the training jobs no job runs (orphans: :mod:`backend.services.reaper`),
events or none.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from aws_lambda_powertools import Logger

from backend.domain.plans import PlanBoard, TrainingPlan, end_warning_due, ended_by_plan, stops_jobs_at, when
from backend.domain.policy import Action, Classification, RetryPolicy, classify_failure_reason, next_attempt_time
from backend.domain.records import RecordKind
from backend.domain.status import JobStatus
from backend.domain.terms import AttemptOutcome, FailureClass
from backend.errors import BackendRefused, BackendUnavailable, JobNotFound, StoreUnavailable, TrainbotError
from backend.ports import Applied, JobRepository, LostRace, RecordStore, TrainingBackend, TrainingState, TrainingStatus, WriteOutcome
from backend.services.budget import attempt_ended
from backend.services.forensics import Forensics
from backend.services.notify import Dispatcher
from backend.services.pacing import TokenBucket
from backend.services.reaper import Reaper

if TYPE_CHECKING:
    from backend.domain.model import Attempt, Job

logger = Logger(service="trainbot", child=True)

S = JobStatus
F = FailureClass
T = TrainingState

# How long a Launched attempt may be unknown to SageMaker (eventual consistency right after
# the create) before the job is requeued.
MISSING_GRACE = timedelta(minutes=10)
# A Describe refused for good (AccessDenied) fails the job only once it persists this many
# sweeps in a row AND this long: a permission fixed within minutes costs nothing, and a job
# nobody may look at does not hold its instance slot for ever.
REFUSALS_MAX = 3
REFUSAL_GRACE = timedelta(minutes=15)
_RACE_ROUNDS = 5
# Where the last sweep stopped describing (a small record): the next one starts after it.
SWEEP_CURSOR = (RecordKind.CURSOR, "monitor-sweep")
# Active jobs a sweep reads by id at once (one BatchGetItem), as it goes.
SWEEP_PAGE = 100


_ENDED = (T.COMPLETED, T.FAILED, T.STOPPED)


def _ends_now(job: Job, number: int) -> bool:
    """Whether an end observation of attempt ``number`` would end it now (it is the job's
    current attempt, not ended yet): a duplicate or stale event costs no Describe."""
    current = job.current_attempt
    return (
        not job.is_terminal
        and current is not None
        and current.number == number
        and current.outcome not in (AttemptOutcome.COMPLETED, AttemptOutcome.FAILED, AttemptOutcome.STOPPED, AttemptOutcome.NOT_STARTED)
    )


def _lacks_end_facts(job: Job, status: TrainingStatus) -> bool:
    """Whether an end observation lacks what the attempt's end records: billable time, and for
    a completed one its model artifact and (when the job defines metrics) their values."""
    if status.billable_seconds is None:
        return True
    if status.state is not T.COMPLETED:
        return False
    return status.model_artifact is None or (bool(job.job_args.AlgorithmSpecification.MetricDefinitions) and not status.final_metrics)


def _plan_end_classification(plan: TrainingPlan, status: TrainingStatus, now: datetime) -> Classification:
    """An attempt ended by its training plan's end, in words: the plan, its end, and what
    SageMaker said (a failure reason, when it gave one) so nothing it said is lost."""
    ends = f"it ends {when(plan.end, now)}; " if plan.end is not None else ""
    stops = stops_jobs_at(plan)
    reason = f"stopped by the end of plan `{plan.name}` ({ends}SageMaker stops the jobs on it from {stops:%H:%M} UTC)" if stops else f"stopped by the end of plan `{plan.name}`"
    if status.failure_reason:
        reason += f" (SageMaker said: {status.failure_reason})"
    return Classification(F.PLAN_ENDED, reason)


def _stop_asked(job: Job, attempt: Attempt) -> bool:
    """Whether Trainbot asked to stop this attempt (a user's stop), not SageMaker on its own."""
    return job.status is S.STOPPING and not attempt.stopping_outside


class MonitorStore(JobRepository, RecordStore, Protocol):
    """What the monitor needs from the store: jobs, conditional writes, and its sweep cursor."""


@dataclass
class MonitorReport:
    observed: int = 0
    applied: int = 0
    ignored: int = 0  # not ours, stale, duplicate, or nothing to change
    unknown: int = 0  # Describe throttled / timed out: looked at again later
    refused: int = 0  # Describe refused for good (AccessDenied): counted, failed once it persists
    lost_races: int = 0
    errors: int = 0  # one job's step failed (logged); the sweep went on with the others
    stops_resent: int = 0
    stopped_early: bool = False
    outcomes: Counter[str] = field(default_factory=Counter)
    moved: Counter[str] = field(default_factory=Counter)  # by the status jobs moved to
    retried: Counter[str] = field(default_factory=Counter)  # resubmissions, by failure class
    notifications_sent: int = 0
    notifications_pending: int = 0
    stall_warnings: int = 0
    plan_end_warnings: int = 0
    metrics_stored: int = 0  # running attempts whose latest metric values were written
    # The reaper's (backend.services.reaper): training jobs listed, orphans stopped, names
    # judged again next sweep, and whether the listing could not be read.
    orphans_listed: int = 0
    orphans_stopped: int = 0
    orphans_waiting: int = 0
    orphans_unknown: bool = False

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcomes"] = dict(self.outcomes)
        data["moved"] = dict(self.moved)
        data["retried"] = dict(self.retried)
        return data


class Monitor:
    def __init__(
        self,
        store: MonitorStore,
        backend: TrainingBackend,
        dispatcher: Dispatcher,
        *,
        policy: RetryPolicy,
        pacer: TokenBucket,
        clock: Callable[[], datetime],
        rng: random.Random | None = None,
        on_attempt_end: Callable[[Job, Attempt], object] | None = None,
        forensics: Forensics | None = None,
        readmit: Callable[[Job, int], Job] | None = None,
        release: Callable[[Job], object] | None = None,
        plan_board: Callable[[], PlanBoard | None] | None = None,
        plan_end_warning: timedelta = timedelta(0),
        live_metrics_every: timedelta | None = None,
    ) -> None:
        self._forensics = forensics
        # The training plans as the launcher last read them (backend.services.plans.PlanBook.board):
        # their ends, for the plan-end warning. ``plan_end_warning``: how long before a plan's end
        # (TRAINBOT_PLAN_END_WARNING_SECONDS; zero: no warnings).
        self._plan_board = plan_board
        self._plan_end_warning = plan_end_warning
        # A running attempt's latest metric values are stored (when they changed) at most this
        # often; None or 0: not while it runs (the end still records the final ones).
        self._live_metrics_every = live_metrics_every if live_metrics_every else None
        # Renews a retrying job's reservation for its next attempt, or holds the retry
        # (backend.services.budget.CostGuard.readmit).
        self._readmit = readmit
        self._release = release
        self._store = store
        # Counts an ended attempt's billable time against its team's week (backend.services.budget).
        self._on_attempt_end = on_attempt_end
        self._backend = backend
        self._dispatcher = dispatcher
        self._policy = policy
        self._pacer = pacer
        self._clock = clock
        self._rng = rng or random.Random()
        self._reaper = Reaper(store, backend, pacer=pacer, clock=clock, cursor=SWEEP_CURSOR)

    # --- events -----------------------------------------------------------------------------

    def observe(self, job_id: str, attempt_number: int, status: TrainingStatus, report: MonitorReport | None = None) -> MonitorReport:
        """Apply one observation (from an event) to its job, re-reading after a lost race."""
        report = report or MonitorReport()
        report.observed += 1
        described = False
        for _ in range(_RACE_ROUNDS):
            try:
                job = self._store.get(job_id)
            except JobNotFound:
                report.ignored += 1
                return report
            if not described and status.state in _ENDED and _lacks_end_facts(job, status) and _ends_now(job, attempt_number):
                described = True
                try:
                    status = self._with_end_facts(status)
                except (BackendUnavailable, BackendRefused) as exc:
                    # Leave it as it is: the sweep describes active jobs, billable time and all.
                    report.unknown += 1
                    logger.info("billable time unknown; left to the sweep", extra={"job_id": job_id, "error": str(exc)})
                    return report
            if not isinstance(self._apply(job, attempt_number, status, report), LostRace):
                return report
            report.lost_races += 1
        return report

    def _with_end_facts(self, status: TrainingStatus) -> TrainingStatus:
        """An end event as AWS documents it has no ``BillableTimeInSeconds``, final metrics or
        model artifacts: the attempt's Describe has them all (one call per attempt, made only
        when the event ends the attempt)."""
        self._pacer.acquire()
        described = self._backend.describe(status.name)
        if described is None:
            return status
        return replace(
            status,
            billable_seconds=status.billable_seconds if status.billable_seconds is not None else described.billable_seconds,
            final_metrics=status.final_metrics or described.final_metrics,
            model_artifact=status.model_artifact or described.model_artifact,
        )

    # --- sweep ------------------------------------------------------------------------------

    def sweep(
        self, should_continue: Callable[[], bool] = lambda: True, *, describe_while: Callable[[], bool] | None = None
    ) -> MonitorReport:
        """Describe active jobs (paced) while ``describe_while`` holds and apply what SageMaker
        says; then deliver what the notification outbox still holds while ``should_continue``
        holds. Give ``describe_while`` a larger reserve than ``should_continue``: the drain then
        has time of its own however many jobs are active.

        Each sweep starts after the job the previous one stopped at (a cursor record), so with
        more active jobs than one sweep can describe, successive sweeps walk all of them; one
        job's failure (its item refused, an illegal move) is logged and the sweep goes on.

        First, the orphans: training jobs created since the reaper's cursor that no job runs
        are stopped (a few list pages at most, before the describing takes its time)."""
        describe_while = describe_while or should_continue
        report = MonitorReport()
        if self._forensics is not None:
            self._forensics.new_sweep()
        places = self._store.active_places()
        position = self._cursor_position()  # one read for both cursors
        cursor = str((position or {}).get("After", ""))
        reaped = self._reaper.reap(position)
        report.orphans_listed, report.orphans_stopped = reaped.listed, reaped.stopped
        report.orphans_waiting, report.orphans_unknown = reaped.waiting, reaped.unknown
        ordered = [p for p in places if p[0] > cursor] + [p for p in places if p[0] <= cursor]
        last: str | None = None
        silent: list[tuple[Job, Attempt]] = []  # running jobs whose log silence may be checked
        started: dict[str, datetime] = {}  # their training start as SageMaker's Describe says it
        for place, job in self._paged(ordered, describe_while, report):
            if job is not None and job.is_active:  # None, or ended: it left since the index read
                try:
                    self._sweep_one(job, report, silent, started)
                except TrainbotError as exc:
                    report.errors += 1
                    logger.error("sweeping one job failed; the sweep goes on", extra={"job_id": job.job_id, "error": str(exc)})
            last = place
        after = last if report.stopped_early and last is not None else ""
        if after != cursor:  # an unchanged cursor (every sweep that walks them all) costs no write
            self._save_cursor(after)
        self._warn_plan_ends(silent, started, report)
        self._check_stalls(silent, report)
        delivery = self._dispatcher.drain(should_continue=should_continue)
        report.notifications_sent = delivery.sent
        report.notifications_pending = delivery.pending
        logger.info("monitor sweep", extra={"report": report.as_dict()})
        return report

    def _paged(
        self, ordered: list[tuple[str, str]], describe_while: Callable[[], bool], report: MonitorReport
    ) -> Iterator[tuple[str, Job | None]]:
        """The jobs at ``ordered`` places, read by id a page at a time while there is time to
        describe them: a run that describes 1,200 of 10,000 active jobs reads 1,200 items."""
        jobs: dict[str, Job] = {}
        for index, (place, job_id) in enumerate(ordered):
            if not describe_while():
                report.stopped_early = True
                return
            if index % SWEEP_PAGE == 0:
                page = ordered[index : index + SWEEP_PAGE]
                jobs = {job.job_id: job for job in self._store.get_many(i for _place, i in page)}
            yield place, jobs.get(job_id)

    def _sweep_one(self, job: Job, report: MonitorReport, silent: list[tuple[Job, Attempt]], started: dict[str, datetime]) -> None:
        attempt = job.current_attempt
        if attempt is None:
            return
        self._pacer.acquire()
        try:
            status = self._backend.describe(attempt.name)
        except BackendUnavailable as exc:
            self._pacer.penalize()
            report.unknown += 1
            logger.info("status unknown; looking again later", extra={"job_id": job.job_id, "error": str(exc)})
            return
        except BackendRefused as exc:
            self._refused(job, attempt, exc, report)
            return
        self._pacer.reward()
        report.observed += 1
        if attempt.describe_refusals:
            # SageMaker answers again: the refusals did not persist; start counting afresh.
            counted_afresh = attempt.model_copy(update={"describe_refusals": None, "describe_refused_at": None})
            cleared = self._store.update(job, at=self._clock(), attempts=job.replace_attempt(counted_afresh))
            if isinstance(cleared, LostRace):
                report.lost_races += 1
                return
            job = cleared.job
            attempt = job.current_attempt or attempt
        if status is None:
            self._missing(job, report)
            return
        if job.status is S.STOPPING and status.state is T.RUNNING:
            self._resend_stop(attempt.name, report)
            return
        outcome = self._apply(job, attempt.number, status, report)
        if isinstance(outcome, LostRace):
            report.lost_races += 1  # changed under us: the event path or the next sweep sees it
        elif outcome is None and status.state is T.RUNNING and job.status is S.IN_PROGRESS:
            job, attempt = self._note_metrics(job, attempt, status, report)
            silent.append((job, attempt))
            if status.started_at is not None:
                started[job.job_id] = status.started_at

    def _warn_plan_ends(self, running: list[tuple[Job, Attempt]], started: dict[str, datetime], report: MonitorReport) -> None:
        """Warn each running attempt on a training plan whose max runtime reaches past the point
        where SageMaker stops the plan's jobs, once, ``plan_end_warning`` before the plan's end
        (backend.domain.plans.end_warning_due). The board is read only when some running attempt
        is on a plan; each warning is one conditional write (the attempt's mark and a history
        note, which the outbox delivers: backend.domain.notice.tells_plan_end), so a warning is
        told once however many sweeps see it. ``running`` gets the written jobs back, so later
        checks of this sweep write on top of them. A job's run is counted from SageMaker's own
        training start (``started``, from this sweep's Describe) when it gave one: instances can
        take many minutes to come up after the create, and the max runtime counts from then."""
        if self._plan_board is None or self._plan_end_warning <= timedelta(0):
            return
        candidates = [i for i, (_, a) in enumerate(running) if a.plan and a.plan_end_warned_at is None and not a.off_plan]
        if not candidates:
            return
        board = self._plan_board()
        if board is None:
            return
        now = self._clock()
        for i in candidates:
            job, attempt = running[i]
            plan = board.plans.get(attempt.plan or "")
            began = started.get(job.job_id) or attempt.started_at or attempt.launched_at or attempt.claimed_at
            runtime = job.job_args.StoppingCondition.MaxRuntimeInSeconds
            if plan is None or plan.end is None:
                continue
            if not end_warning_due(plan, started_at=began, max_runtime_seconds=runtime, now=now, ahead=self._plan_end_warning):
                continue
            stops = stops_jobs_at(plan) or plan.end
            warned = attempt.model_copy(update={"plan_ends_at": plan.end, "plan_end_warned_at": now})
            reason = f"plan `{plan.name}` ends {when(plan.end, now)}, before this job's max_runtime: SageMaker stops it from {stops:%H:%M} UTC"
            try:
                from backend.domain.model import note  # a warning to write: the models' first use, maybe

                outcome = self._store.update(job, at=now, attempts=job.replace_attempt(warned), history=note(job, at=now, reason=reason))
            except TrainbotError as exc:
                report.errors += 1
                logger.error("plan-end warning not written; looking again next sweep", extra={"job_id": job.job_id, "error": str(exc)})
                continue
            if isinstance(outcome, LostRace):
                report.lost_races += 1  # moved meanwhile: the next sweep looks again
                continue
            report.plan_end_warnings += 1
            running[i] = (outcome.job, warned)
            self._dispatcher.deliver(outcome.job)

    def _note_metrics(self, job: Job, attempt: Attempt, status: TrainingStatus, report: MonitorReport) -> tuple[Job, Attempt]:
        """A running attempt's metric values, from the sweep's own Describe (SageMaker fills
        FinalMetricDataList as the job emits them): stored when they changed, at most once per
        ``live_metrics_every`` (a write each), then shown on the job's card through its usual
        pacing; no thread reply. Only the newest attempt keeps them."""
        every = self._live_metrics_every
        if every is None or not status.final_metrics or status.final_metrics == attempt.metrics:
            return job, attempt
        now = self._clock()
        if attempt.metrics_at is not None and now - attempt.metrics_at < every:
            return job, attempt
        latest = attempt.model_copy(update={"metrics": dict(status.final_metrics), "metrics_at": now})
        # Earlier attempts' values are history nobody shows: dropped, so the item stays small.
        attempts = [
            a.model_copy(update={"metrics": None, "metrics_at": None}) if a.metrics and a.number != latest.number else a
            for a in job.replace_attempt(latest)
        ]
        outcome = self._store.update(job, at=now, attempts=attempts)
        if isinstance(outcome, LostRace):
            report.lost_races += 1
            return job, attempt
        report.metrics_stored += 1
        if outcome.job.sweep_id is None:  # a sweep's one card shows no job's metrics
            self._dispatcher.refresh(outcome.job)
        return outcome.job, outcome.job.current_attempt or latest

    def _check_stalls(self, silent: list[tuple[Job, Attempt]], report: MonitorReport) -> None:
        """Stall checks are bounded per sweep: they start after the job the last sweep's checks
        stopped at (its own cursor entry), so every running job is checked in turn."""
        if self._forensics is None or not silent:
            return
        cursor = self._load_cursor("StallAfter")
        silent.sort(key=lambda pair: pair[0].job_id)
        ordered = [p for p in silent if p[0].job_id > cursor] + [p for p in silent if p[0].job_id <= cursor]
        after = ""
        for job, attempt in ordered:
            if not self._forensics.can_check_stall():
                break
            try:
                if self._forensics.check_stall(job, attempt):
                    report.stall_warnings += 1
            except TrainbotError as exc:
                report.errors += 1
                logger.error("stall check failed; the sweep goes on", extra={"job_id": job.job_id, "error": str(exc)})
            after = job.job_id
        else:
            after = ""  # all checked: the next sweep starts at the head
        if after != cursor:
            self._save_cursor(after, "StallAfter")

    def _cursor_position(self) -> dict[str, Any] | None:
        """The cursor record's entries (empty: none yet); None when it could not be read."""
        try:
            record = self._store.get_record(*SWEEP_CURSOR) or {}
        except StoreUnavailable:
            return None
        return dict(record.get("Position") or {})

    def _load_cursor(self, entry: str = "After") -> str:
        return str((self._cursor_position() or {}).get(entry, ""))

    def _save_cursor(self, after: str, entry: str = "After") -> None:
        try:
            # Updates, not a put: the monitor's role may update records, not put them.
            self._store.set_record_entry(*SWEEP_CURSOR, "Position", entry, after)
        except StoreUnavailable:
            pass  # the next sweep starts at the head again: late, not wrong

    def _missing(self, job: Job, report: MonitorReport) -> None:
        attempt = job.current_attempt
        if attempt is None:  # an active job always has one; nothing to reconcile without it
            report.ignored += 1
            return
        launched = attempt.launched_at or attempt.claimed_at
        if self._clock() - launched < MISSING_GRACE:
            report.ignored += 1
            return
        if job.status is S.STOPPING:
            # The user asked to stop it and SageMaker no longer knows it: it is stopped.
            gone = attempt.model_copy(
                update={"outcome": AttemptOutcome.STOPPED, "failure_class": F.STOPPED, "ended_at": self._clock(), "reason": "SageMaker has no record of it"}
            )
            self._write(job, S.STOPPED, f"stopped (SageMaker has no record of {attempt.name})", report, attempts=job.replace_attempt(gone))
            return
        gone = attempt.model_copy(update={"outcome": AttemptOutcome.FAILED, "failure_class": F.UNKNOWN, "reason": "SageMaker has no record of it"})
        self._write(
            job,
            S.RETRYING,
            f"SageMaker has no record of {attempt.name}; trying again",
            report,
            attempts=job.replace_attempt(gone),
            next_attempt_at=self._clock(),
        )

    def _refused(self, job: Job, attempt: Attempt, exc: BackendRefused, report: MonitorReport) -> None:
        """SageMaker refused to describe the attempt for good: still unknown, not failed, until it
        persists (REFUSALS_MAX sweeps and REFUSAL_GRACE); then the job is Failed with the reason,
        freeing its slot, and StopTrainingJob is sent for it (best-effort: it may run on)."""
        report.refused += 1
        now = self._clock()
        refusals = (attempt.describe_refusals or 0) + 1
        since = attempt.describe_refused_at or now
        logger.warning("describe refused", extra={"job_id": job.job_id, "refusals": refusals, "error": str(exc)})
        if refusals < REFUSALS_MAX or now - since < REFUSAL_GRACE:
            counted = attempt.model_copy(update={"describe_refusals": refusals, "describe_refused_at": since})
            if isinstance(self._store.update(job, at=now, attempts=job.replace_attempt(counted)), LostRace):
                report.lost_races += 1
            return
        reason = f"Trainbot may not describe {attempt.name}: {exc}; check the monitor role's sagemaker:DescribeTrainingJob permission"
        failed = attempt.model_copy(
            update={
                "outcome": AttemptOutcome.FAILED,
                "failure_class": F.UNKNOWN,
                "ended_at": now,
                "reason": reason,
                "describe_refusals": refusals,
                "describe_refused_at": since,
            }
        )
        outcome = self._write(job, S.FAILED, reason, report, attempts=job.replace_attempt(failed))
        if isinstance(outcome, LostRace):
            report.lost_races += 1
            return
        self._resend_stop(attempt.name, report)

    def _resend_stop(self, name: str, report: MonitorReport) -> None:
        self._pacer.acquire()
        try:
            self._backend.stop(name)
            report.stops_resent += 1
        except (BackendUnavailable, BackendRefused):
            report.unknown += 1

    # --- applying one observation -----------------------------------------------------------

    def _apply(self, job: Job, number: int, status: TrainingStatus, report: MonitorReport) -> WriteOutcome | None:
        attempt = next((a for a in job.attempts if a.number == number), None)
        current = job.current_attempt
        if attempt is None or current is None or attempt.number != current.number:
            report.ignored += 1  # an older attempt's (late) news, or a name we never recorded
            return None
        if job.status is S.STOPPED and status.state is T.RUNNING:
            # Created after the user stopped the job (its attempt may be marked stopped already).
            self._resend_stop(attempt.name, report)
            report.ignored += 1
            return None
        if attempt.outcome in (AttemptOutcome.COMPLETED, AttemptOutcome.FAILED, AttemptOutcome.STOPPED, AttemptOutcome.NOT_STARTED):
            report.ignored += 1  # already applied: a duplicate or out-of-order event
            return None
        if job.is_terminal:
            report.ignored += 1
            return None
        now = self._clock()

        if job.is_queued:
            # The launcher created this attempt but died (or lost the answer) before recording
            # it: adopt it now, then apply the observation to the adopted job.
            running = attempt.model_copy(update={"outcome": AttemptOutcome.RUNNING, "launched_at": now})
            outcome = self._write(job, S.LAUNCHED, f"adopted {attempt.name}", report, attempts=job.replace_attempt(running), lease=None, next_attempt_at=None)
            if not isinstance(outcome, Applied):
                return outcome
            job = outcome.job
            attempt = running

        if status.state is T.RUNNING:
            # A start does not end a capacity wait: spot instances can be taken back again and
            # again, so the capacity clock runs from the first capacity wait until an attempt
            # ends some other way (see _failed). SageMaker's start time replaces our guess.
            if job.status is S.LAUNCHED:
                started = attempt.model_copy(update={"started_at": status.started_at or now})
                if self._live_metrics_every is not None and status.final_metrics:
                    # Values it emitted already ride on the start's own write.
                    started = started.model_copy(update={"metrics": dict(status.final_metrics), "metrics_at": now})
                reason = "training"
                if attempt.plan and status.training_plan is not None and status.training_plan != attempt.plan:
                    # Created on a plan, yet SageMaker runs it elsewhere: the thread hears it
                    # at once (backend.domain.notice.tells_off_plan), whatever notify= says.
                    started = started.model_copy(update={"off_plan": True})
                    where = f"on plan `{status.training_plan}`" if status.training_plan else "on on-demand capacity"
                    reason = f"training, but not on plan `{attempt.plan}`: SageMaker runs it {where}"
                return self._write(job, S.IN_PROGRESS, reason, report, attempts=job.replace_attempt(started))
            if status.started_at is not None and job.capacity_wait_since is not None and attempt.started_at != status.started_at:
                started = attempt.model_copy(update={"started_at": status.started_at})
                return self._store.update(job, at=now, attempts=job.replace_attempt(started))
            report.ignored += 1
            return None
        if status.state is T.STOPPING:
            if job.status in (S.LAUNCHED, S.IN_PROGRESS):
                # SageMaker stops a job at its own stopping condition through Stopping too: mark
                # the attempt, so its end (MaxRuntimeExceeded, MaxWaitTimeExceeded) decides.
                outside = attempt.model_copy(update={"stopping_outside": True})
                plan = self._ending_plan(attempt, now)
                why = "stopping (requested outside Trainbot)"
                if plan is not None and plan.end is not None:
                    why = f"stopping: plan `{plan.name}` ends {when(plan.end, now)} and SageMaker is stopping the jobs on it"
                return self._write(job, S.STOPPING, why, report, attempts=job.replace_attempt(outside))
            report.ignored += 1
            return None

        ended = attempt.model_copy(
            update={
                # SageMaker's own start time wins over ours: ours may be when a late "Starting"
                # event was read (events come out of order), even after the attempt ended.
                "started_at": status.started_at or attempt.started_at,
                "ended_at": status.ended_at or now,
                "billable_seconds": status.billable_seconds,
            }
        )
        if status.state is T.COMPLETED:
            done = ended.model_copy(update={"outcome": AttemptOutcome.COMPLETED, "reason": "completed"})
            results: dict[str, Any] = {}
            if status.final_metrics:
                results["final_metrics"] = dict(status.final_metrics)
            if status.model_artifact:
                results["model_artifact"] = status.model_artifact
            return self._write(job, S.COMPLETED, "completed", report, attempts=job.replace_attempt(done), **results)
        if status.state is T.STOPPED and not _stop_asked(job, attempt) and (status.max_runtime_exceeded or status.max_wait_exceeded):
            # SageMaker ended it at its stopping condition: the run did not finish, a failure.
            return self._failed(job, ended, status, report, now)
        if not _stop_asked(job, attempt):
            # Stopped (or failed: its instances were taken from under it) once SageMaker was
            # stopping the jobs on its training plan: the plan's end, not the job's code.
            plan = self._ending_plan(attempt, ended.ended_at or now)
            if plan is not None:
                return self._failed(job, ended, status, report, now, plan_ended=plan)
        if status.state is T.STOPPED:
            stopped = ended.model_copy(update={"outcome": AttemptOutcome.STOPPED, "failure_class": F.STOPPED})
            why = "stopped" if _stop_asked(job, attempt) else "stopped outside Trainbot"
            return self._write(job, S.STOPPED, why, report, attempts=job.replace_attempt(stopped))
        return self._failed(job, ended, status, report, now)

    def _ending_plan(self, attempt: Attempt, at: datetime) -> TrainingPlan | None:
        """The training plan ``attempt`` ran on, when SageMaker was stopping that plan's jobs at
        ``at`` (backend.domain.plans.ended_by_plan); None otherwise, or when the plans cannot be
        read (the end is then judged as any other: nothing is labelled on a guess)."""
        if not attempt.plan or attempt.off_plan or self._plan_board is None:
            return None
        board = self._plan_board()
        plan = board.plans.get(attempt.plan) if board is not None else None
        return plan if plan is not None and ended_by_plan(plan, at) else None

    def _failed(
        self, job: Job, ended: Attempt, status: TrainingStatus, report: MonitorReport, now: datetime, *, plan_ended: TrainingPlan | None = None
    ) -> WriteOutcome:
        if plan_ended is not None:
            classification = _plan_end_classification(plan_ended, status, now)
        else:
            stopping = job.job_args.StoppingCondition
            secondary = "MaxRuntimeExceeded" if status.max_runtime_exceeded else "MaxWaitTimeExceeded" if status.max_wait_exceeded else ""
            classification = classify_failure_reason(
                status.failure_reason,
                secondary_status=secondary,
                max_runtime_seconds=stopping.MaxRuntimeInSeconds,
                max_wait_seconds=stopping.MaxWaitTimeInSeconds,
                spot_interrupted=status.spot_interrupted,
            )
        # A plan's end stopped it: stopped, whatever way SageMaker ended it.
        ended_as = AttemptOutcome.STOPPED if plan_ended is not None else AttemptOutcome.FAILED
        failed = ended.model_copy(
            update={"outcome": ended_as, "failure_class": classification.failure_class, "reason": classification.reason}
        )
        attempts = job.replace_attempt(failed)
        if self._forensics is not None:
            attempts = self._forensics.with_tail(job, failed, attempts, status.failure_reason)
        report.outcomes[classification.failure_class.value] += 1
        if _stop_asked(job, ended):
            # The user asked to stop; it failed first. Do not resubmit what they stopped.
            return self._write(job, S.FAILED, classification.reason, report, attempts=attempts)
        decision = self._policy.decide(job, classification, now=now, rng=self._rng)
        if decision.action in (Action.RETRY, Action.KEEP):
            cls = classification.failure_class
            # The capacity clock runs through a streak of capacity/quota failures; a SageMaker
            # internal error neither starts nor ends it; anything else ended it.
            wait: datetime | None
            if cls in (F.CAPACITY, F.QUOTA):
                wait = job.capacity_wait_since or now
            elif cls in (F.THROTTLING, F.UNKNOWN):
                wait = job.capacity_wait_since
            else:
                wait = None
            report.retried[cls.value] += 1
            budget: dict[str, Any] = {}
            renewed = job
            if self._readmit is not None and ended.billable_seconds:
                # The failed attempt's billed time is counted on top of the reservation: the
                # next attempt reserves again, or waits for an admin.
                renewed = self._readmit(job, ended.billable_seconds * job.job_args.instance_count)
                budget = {"reservation": renewed.reservation, "approval": renewed.approval}
            outcome = self._write(
                job,
                S.RETRYING,
                decision.reason,
                report,
                attempts=attempts,
                next_attempt_at=next_attempt_time(now, decision),
                algorithm_failures=job.algorithm_failures + (1 if decision.spends_budget else 0),
                capacity_wait_since=wait,
                **budget,
            )
            if renewed.reservation != job.reservation and renewed.reservation and not isinstance(outcome, Applied):
                self._give_back(renewed)
            return outcome
        if decision.action is Action.STOP:
            return self._write(job, S.STOPPED, decision.reason, report, attempts=attempts)
        return self._write(
            job,
            S.FAILED,
            decision.reason,
            report,
            attempts=attempts,
            algorithm_failures=job.algorithm_failures + (1 if decision.spends_budget else 0),
        )

    def _give_back(self, renewed: Job) -> None:
        """A retry's write lost its race after renewing: give the new reservation back unless
        the job as it now is holds it."""
        if self._release is None:
            return
        try:
            if self._store.get(renewed.job_id).reservation != renewed.reservation:
                self._release(renewed)
        except (JobNotFound, StoreUnavailable) as exc:
            logger.warning("renewed reservation kept", extra={"job_id": renewed.job_id, "error": str(exc)})

    def _count_usage(self, before: Job, after: Job) -> None:
        if self._on_attempt_end is None:
            return
        ended = attempt_ended(before, after)
        if ended is not None:
            try:
                self._on_attempt_end(after, ended)
            except StoreUnavailable as exc:  # the job moved; its usage is lost, not the move
                logger.warning("usage not counted", extra={"job_id": after.job_id, "error": str(exc)})

    def _write(self, job: Job, to_status: JobStatus, reason: str, report: MonitorReport, **changes: Any) -> WriteOutcome:
        outcome = self._store.transition(job, to_status, at=self._clock(), reason=reason, **changes)
        if isinstance(outcome, Applied):
            report.applied += 1
            report.moved[to_status.value] += 1
            logger.info("job moved", extra={"job_id": job.job_id, "from": job.status.value, "to": to_status.value, "reason": reason})
            self._count_usage(job, outcome.job)
            self._dispatcher.deliver(outcome.job)
        return outcome

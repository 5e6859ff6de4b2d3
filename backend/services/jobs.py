"""Job use cases the bot and the CLI call: submit, sweep, look up, list, stop, retry.

Authorization of changes lives here (only a job's owner or an admin may stop or retry it), so
every entry point enforces the same rule. Each status change goes through the store's
conditional write; a lost race re-reads and decides again, never overwrites.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from backend.domain import notice
from backend.domain.approval import ApprovalState
from backend.domain.notice import NotifyMode
from backend.domain.people import person
from backend.domain.status import JobStatus
from backend.domain.terms import LAUNCH_LEASE, AttemptOutcome, FailureClass
from backend.errors import (
    AmbiguousName,
    BackendUnavailable,
    IllegalTransition,
    InvalidRequest,
    JobNotFound,
    NotAuthorized,
    StoreUnavailable,
)
from backend.ports import Applied, JobRepository, Page, Registered, TrainingBackend
from backend.services.notify import Dispatcher

if TYPE_CHECKING:
    from backend.domain.model import Approval, Job, JobArgs, Owner, SlackThread

logger = Logger(service="trainbot", child=True)

S = JobStatus
NAMED_WITHIN = 50  # a name is looked up among its owner's newest jobs
_MAX_RACE_ROUNDS = 8


class RejectedByAdmin(InvalidRequest):
    """A retry of a job an admin rejected: held means held until an admin decides, and they did."""

    def __init__(self, job_id: str, admin: str, note: str) -> None:
        self.job_id, self.admin, self.note = job_id, admin, note
        why = f": {note}" if note else ""
        super().__init__(
            [f"{job_id} was rejected by {person(admin)}{why}. A retry cannot undo an admin's decision: "
             "submit a changed job, or ask an admin."]
        )


class LaunchInFlight(InvalidRequest):
    """A retry of a job stopped while a launcher run was creating its attempt: that run may yet
    create it, so the job moves only once its claim has expired (and the attempt is stopped)."""

    def __init__(self, job_id: str, wait: timedelta) -> None:
        seconds = max(1, math.ceil(wait.total_seconds()))
        self.job_id = job_id
        self.when = f"{seconds} seconds" if seconds < 90 else f"{math.ceil(seconds / 60)} minutes"
        super().__init__(
            [f"{job_id} was stopped while SageMaker was being asked to start it, and that request may still land: "
             f"try the retry again in {self.when}."]
        )


@dataclass(frozen=True)
class Actor:
    """Who asks: a Slack user of a team (or a CLI user, named the same way)."""

    team_id: str
    user_id: str

    @property
    def owner(self) -> Owner:
        from backend.domain.model import Owner

        return Owner(team_id=self.team_id, user_id=self.user_id)


class JobService:
    def __init__(
        self,
        store: JobRepository,
        backend: TrainingBackend,
        dispatcher: Dispatcher,
        *,
        clock: Callable[[], datetime],
        is_admin: Callable[[str], bool] = lambda _user: False,
        job_id_prefix: str = "",
    ) -> None:
        self._store = store
        self._job_id_prefix = job_id_prefix
        self._backend = backend
        self._dispatcher = dispatcher
        self._clock = clock
        self._is_admin = is_admin
        self._admit: Callable[[Sequence[Job]], list[Job]] | None = None
        self._release: Callable[[Job], object] | None = None

    @property
    def store(self) -> JobRepository:
        return self._store

    @property
    def dispatcher(self) -> Dispatcher:
        return self._dispatcher

    @property
    def job_id_prefix(self) -> str:
        """Prepended to every new JobId (IAM scopes SageMaker to ``training-job/<prefix>*``)."""
        return self._job_id_prefix

    # --- submit -------------------------------------------------------------------------------

    def submit(
        self,
        *,
        name: str,
        job_args: JobArgs,
        actor: Actor,
        slack: SlackThread | None = None,
        priority: int = 5,
        retry_budget: int = 2,
        client_token: str | None = None,
        preset: str | None = None,
        notify: NotifyMode | None = None,
        approval: Approval | None = None,
        stall_alert_seconds: int | None = None,
        fallback_types: tuple[str, ...] = (),
        plan: str | None = None,
        plan_fallback: bool = False,
        on_registered: Callable[[Registered], object] | None = None,
        admit: Callable[[Sequence[Job]], list[Job]] | None = None,
    ) -> Registered:
        """Register one job (idempotent on ``client_token``) and announce it; a pending
        ``approval`` registers it held (backend.domain.approval). ``on_registered`` runs right
        after the registration, before the notifiers (start on submit does not wait for Slack)."""
        from backend.domain.model import new_job

        job = new_job(
            name=name,
            job_args=job_args,
            owner=actor.owner,
            now=self._clock(),
            slack=slack,
            priority=priority,
            retry_budget=retry_budget,
            client_token=client_token,
            preset=preset,
            prefix=self._job_id_prefix,
            notify=notify,
            approval=approval,
            stall_alert_seconds=stall_alert_seconds,
            fallback_types=fallback_types,
            plan=plan,
            plan_fallback=plan_fallback,
        )
        announced = None
        if not self._store.existing_ids([job.job_id]):
            if admit is not None:
                # The cost guard reserves its budget (or holds it, or refuses: OverBudget);
                # a redelivered request finds the job registered and reserves nothing more.
                [job] = admit([job])
            # The Slack root card is posted first, so the registration records its thread.
            job = announced = self._dispatcher.announce(job)
        try:
            registered = self._store.register(job)
        except StoreUnavailable:
            if announced is not None:
                self._withdraw_if_unregistered(announced)
            raise
        if registered.created:
            logger.info("job submitted", extra={"job_id": job.job_id, "owner": actor.owner.key})
        if on_registered is not None:
            on_registered(registered)
        self._dispatcher.deliver(registered.job)
        return registered

    def _withdraw_if_unregistered(self, job: Job) -> None:
        """The registration failed (outcome unknown): take the announced card back if the job
        is surely not stored, so no card names a job that does not exist and the user's retry
        (same token, same id) posts the only one. If even that cannot be read, the card stays:
        the write may have gone through, and then the card is the job's thread."""
        try:
            stored = bool(self._store.existing_ids([job.job_id]))
        except StoreUnavailable:
            return
        if not stored:
            self._dispatcher.withdraw(job)

    def submit_sweep(
        self, jobs: Sequence[Job], sweep_id: str, on_progress: Callable[[int, int], None] | None = None
    ) -> list[str]:
        """Register a sweep's jobs in one batch (idempotent on ``sweep_id``)."""
        ids = self._store.register_many(jobs, sweep_id, on_progress=on_progress)
        logger.info("sweep submitted", extra={"sweep_id": sweep_id, "jobs": len(ids)})
        card = next((job for job in jobs if notice.carries_approval_card(job)), None)
        if card is not None:
            # A held sweep: its one approval card (its first job's change) goes to the admins
            # now; the other jobs' changes wait, as any queued job's do.
            self._dispatcher.deliver(self._store.get(card.job_id))
        return ids

    def attach_thread(self, job_id: str, channel_id: str, thread_ts: str) -> None:
        self._store.set_thread(job_id, channel_id, thread_ts)

    # --- read ---------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        return self._store.get(job_id)

    def named(self, name: str, owner: Owner, *, live: bool = False) -> str:
        """The id of ``owner``'s job called ``name``, for a command given the name its owner
        typed at submit rather than the id (one page of their index, newest first: only the
        last :data:`NAMED_WITHIN` jobs are searched). Among jobs of that name the newest, or with
        ``live`` the one that has not ended (a stop): two of those are :class:`AmbiguousName`.
        None is :class:`JobNotFound`."""
        matches = [job for job in self._store.jobs_of_owner(owner, limit=NAMED_WITHIN).jobs if job.name == name]
        if not matches:
            raise JobNotFound(name)
        if live:
            running = [job for job in matches if not job.is_terminal]
            if len(running) > 1:
                raise AmbiguousName(name, [job.job_id for job in running])
            if running:
                return running[0].job_id
        return matches[0].job_id

    def list_owner(self, owner: Owner, *, limit: int = 10, cursor: str | None = None) -> Page:
        return self._store.jobs_of_owner(owner, limit=limit, cursor=cursor)

    def list_all(self, *, limit: int = 10, cursor: str | None = None) -> Page:
        return self._store.recent_jobs(limit=limit, cursor=cursor, today=self._clock())

    # --- change -------------------------------------------------------------------------------

    def authorize_change(self, actor: Actor, job: Job) -> None:
        """Only the job's owner (same team and user) or an admin may change it."""
        if job.owner == actor.owner or self._is_admin(actor.user_id):
            return
        raise NotAuthorized(f"only {person(job.owner.user_id)} (the owner) or an admin may change {job.job_id}")

    def stop_many(self, job_ids: Sequence[str], actor: Actor) -> tuple[int, int]:
        """Stop each of ``job_ids`` that has not ended (a sweep's), each as :meth:`stop` does:
        (how many were stopped or are stopping, how many had ended already). Authorized on
        every job before any is stopped, so a refusal stops none."""
        jobs = self._store.get_many(job_ids)
        for job in jobs:
            self.authorize_change(actor, job)
        stopped = ended = 0
        for job in jobs:
            if job.is_terminal:
                ended += 1
                continue
            try:
                self.stop(job.job_id, actor)
                stopped += 1
            except IllegalTransition:
                ended += 1  # it ended meanwhile
        return stopped, ended

    def stop(self, job_id: str, actor: Actor) -> Job:
        """Stop a job: not yet launched -> Stopped at once; running -> Stopping, and
        StopTrainingJob is sent (if SageMaker cannot be reached now, the monitor's sweep sends
        it again). Any other status -> IllegalTransition."""
        for _ in range(_MAX_RACE_ROUNDS):
            job = self._store.get(job_id)
            self.authorize_change(actor, job)
            now = self._clock()
            who = f"stopped by {person(actor.user_id)}"
            if job.status in (S.NEW, S.RETRYING):
                pending = job.current_attempt
                if pending is not None and pending.outcome is not AttemptOutcome.PENDING:
                    pending = None
                changes = {}
                if pending is not None:
                    # A create may be in flight: its training job is stopped below, so the
                    # attempt is over. A later retry must start a new attempt, not adopt it.
                    stopped = pending.model_copy(
                        update={"outcome": AttemptOutcome.STOPPED, "failure_class": FailureClass.STOPPED, "ended_at": now, "reason": who}
                    )
                    changes["attempts"] = job.replace_attempt(stopped)
                outcome = self._store.transition(
                    job, S.STOPPED, at=now, reason=f"{who} before launch", lease=None, next_attempt_at=None, **changes
                )
                if isinstance(outcome, Applied):
                    if self._release is not None:
                        self._release(outcome.job)  # never launched again: its reservation goes back
                    if pending is not None:
                        # A create may have reached SageMaker before a crash: make sure it stops.
                        self._stop_quietly(pending.name)
                    self._dispatcher.deliver(outcome.job)
                    return outcome.job
            elif job.status in (S.LAUNCHED, S.IN_PROGRESS):
                outcome = self._store.transition(job, S.STOPPING, at=now, reason=who)
                if isinstance(outcome, Applied) and job.current_attempt is not None:
                    self._stop_quietly(job.current_attempt.name)
                    self._dispatcher.deliver(outcome.job)
                    return outcome.job
            elif job.status is S.STOPPING:
                if job.current_attempt is not None:
                    self._stop_quietly(job.current_attempt.name)  # idempotent: ask again
                return job
            else:
                raise IllegalTransition(job.job_id, job.status.value, S.STOPPED.value)
        raise StoreUnavailable(f"{job_id} kept changing while stopping it; try again")

    def _stop_quietly(self, name: str) -> None:
        try:
            self._backend.stop(name)
        except BackendUnavailable as exc:
            logger.warning("stop not sent; the monitor retries", extra={"attempt": name, "error": str(exc)})

    def use_budget(self, admit: Callable[[Sequence[Job]], list[Job]], release: Callable[[Job], object]) -> None:
        """Wire the cost guard in (backend.services.budget): a retry reserves its budget again
        (``admit``: reserved, held, or OverBudget), and a job stopped here gives it back."""
        self._admit = admit
        self._release = release

    def retry(self, job_id: str, actor: Actor) -> Job:
        """Start a Failed or Stopped job again, with a fresh algorithm-error budget.

        Held means held until an admin decides (issue 22): a job an admin rejected is not
        retried (:class:`RejectedByAdmin`, with who and why); a job stopped while it waited for
        approval goes back to waiting (held, ``Retrying``) and the admins are asked again.
        Otherwise the retry reserves the job's estimate on its team's week like a submission:
        over the budget it is refused (OverBudget) or held, per ``TRAINBOT_BUDGET_MODE``."""
        for _ in range(_MAX_RACE_ROUNDS):
            job = self._store.get(job_id)
            self.authorize_change(actor, job)
            if job.status not in (S.FAILED, S.STOPPED):
                raise IllegalTransition(job.job_id, job.status.value, S.RETRYING.value)
            approval = job.approval
            if approval is not None and approval.state is ApprovalState.REJECTED:
                raise RejectedByAdmin(job.job_id, approval.decided_by or "an admin", approval.note)
            before = job.current_attempt
            now = self._clock()
            if before is not None and before.outcome is AttemptOutcome.STOPPED and before.launched_at is None:
                # Stopped before launch: the launcher run that claimed the attempt may still be
                # creating it, and a run killed after its create tells nobody (the simulator: the
                # retry was then held for approval beside a running -a1). Until the claim has
                # expired (no launcher run outlives it) the retry waits; after it, whatever was
                # created is stopped before the job moves; if SageMaker cannot be reached,
                # nothing changes (BackendUnavailable).
                window_ends = before.claimed_at + LAUNCH_LEASE
                if now < window_ends:
                    raise LaunchInFlight(job.job_id, window_ends - now)
                self._backend.stop(before.name)
            reason = f"retry requested by {person(actor.user_id)}"
            admitted = job
            if approval is not None and approval.state is ApprovalState.PENDING:
                reason += "; waiting for an admin's approval again"
            elif self._admit is not None:
                [admitted] = self._admit([job])
                if admitted.approval is not None and admitted.approval.state is ApprovalState.PENDING:
                    reason += "; over the weekly budget, waiting for an admin's approval"
            held = admitted.approval
            if job.sweep_id and notice.sweep_index(job) != 0 and held is not None and held.state is ApprovalState.PENDING and not held.alone:
                # One job's retry asks for itself: its sweep's card may be decided already, and
                # then nobody would be asked (the simulator found such a job held for ever). The
                # sweep's first job keeps its card standing for the sweep (others may wait on it).
                held = held.model_copy(update={"alone": True})
            outcome = self._store.transition(
                job,
                S.RETRYING,
                at=now,
                reason=reason,
                next_attempt_at=now,
                algorithm_failures=0,
                capacity_wait_since=None,
                lease=None,
                approval=held,
                reservation=admitted.reservation,
            )
            if isinstance(outcome, Applied):
                self._dispatcher.deliver(outcome.job)
                return outcome.job
            self._give_back(admitted, job_id)
        raise StoreUnavailable(f"{job_id} kept changing while retrying it; try again")

    def _give_back(self, admitted: Job, job_id: str) -> None:
        """A lost race after reserving: release the reservation unless the winner holds it."""
        if self._release is not None and admitted.reservation and self._store.get(job_id).reservation != admitted.reservation:
            self._release(admitted)

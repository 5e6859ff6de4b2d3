"""Submit and sweep: the one use case every entry point calls (the bot, the CLI, local mode).

Fields in the `/train` grammar's words come in, however they were typed (a slash command, the
submit modal, a CLI spec file); jobs registered through the job service come out. Here, and
nowhere else:

- the preset the fields name is merged under them (:mod:`backend.services.presets`);
- the fields become validated specs (:mod:`backend.domain.spec`), a sweep one per combination,
  refused above ``sweep_max_size`` before anything is expanded;
- every JobId carries the deployment's prefix (``TRAINBOT_JOB_ID_PREFIX``: IAM and the event
  rule only cover ``training-job/<prefix>*``);
- idempotency comes from the caller's token (Slack's ``trigger_id``, a view id, the CLI's
  ``--idempotency-key``): a redelivered request registers nothing new, and a sweep's id is
  derived from its token, so its jobs' client tokens are ``<sweep id>/<index>``;
- a sweep above ``sweep_confirm_size`` is parked until its owner confirms (the bot's button;
  the CLI asks on its terminal or takes ``--yes`` and registers at once);
- a sweep in a channel gets one thread root, posted once (``post_root``), under which every
  one of its jobs is announced.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from backend.domain import sweeps
from backend.domain.cost import Estimate, estimate
from backend.domain.instance_types import over_instance_limits
from backend.domain.model import Job, JobArgs, SlackThread, new_job
from backend.domain.records import RecordKind
from backend.domain.spec import SWEEP_USAGE, JobSpec, job_spec, sweep_specs
from backend.errors import InvalidRequest, NotAuthorized
from backend.ports import BATCH_LEASE, BatchBusy, RecordStore, Registered
from backend.services.budget import Assessment, CostGuard
from backend.services.jobs import Actor, JobService
from backend.services.plans import PlanBook
from backend.services.presets import PresetBook

PENDING_SWEEP = RecordKind.PENDING_SWEEP
SWEEP_ROOT = RecordKind.SWEEP_ROOT
PENDING_TTL_SECONDS = 3600
# How long a confirmation holds its parked sweep: as long as the store holds a batch being
# registered, so a press after a crashed confirmation finds both free and finishes it.
CONFIRM_LEASE_SECONDS = int(BATCH_LEASE.total_seconds())

Progress = Callable[[int, int], None]


class SweepExpired(InvalidRequest):
    """A sweep confirmation whose parked request is gone (used, cancelled or expired)."""

    def __init__(self) -> None:
        super().__init__(["that sweep confirmation expired or was already used"])


class SweepAlreadyConfirmed(InvalidRequest):
    """A second confirmation (a double click, Slack's retry) of a sweep that is registered or
    being registered: it changes nothing."""

    def __init__(self) -> None:
        super().__init__(["that sweep is already registered or being registered"])


@dataclass(frozen=True)
class SweepRoot:
    """The message a sweep's jobs are announced under (``ts`` empty until it is posted)."""

    sweep_id: str
    channel: str
    ts: str
    name: str
    owner: str
    total: int


@dataclass(frozen=True)
class SweepPlan:
    """A validated sweep, before anything is written: its (preset-merged) fields and specs."""

    sweep_id: str
    fields: dict[str, str]
    specs: list[JobSpec]
    needs_confirmation: bool

    @property
    def name(self) -> str:
        return self.fields.get("name", "")

    @property
    def size(self) -> int:
        return len(self.specs)


@dataclass(frozen=True)
class SweepOutcome:
    """What :meth:`SubmitService.sweep` did: registered ``job_ids``, or parked the sweep
    (``parked``) until its owner confirms it."""

    sweep_id: str
    name: str
    size: int
    job_ids: list[str]
    parked: bool = False
    held: bool = False  # registered, waiting for an admin's approval (backend.services.budget)
    estimate: Estimate | None = None  # what its jobs may bill (backend.domain.cost)


def sweep_id_for(token: str) -> str:
    """A sweep's id, derived from the request's token (the same on every redelivery)."""
    return "sw-" + hashlib.sha256(token.encode()).hexdigest()[:16]


class SubmitService:
    """Submit and sweep over the job service, the presets and the store's small records."""

    def __init__(
        self,
        jobs: JobService,
        store: RecordStore,
        presets: PresetBook,
        *,
        clock: Callable[[], datetime],
        sweep_confirm_size: int,
        sweep_max_size: int,
        on_queued: Callable[[str], object] | None = None,
        guard: CostGuard | None = None,
        instance_limits: dict[str, int] | None = None,
        plans: PlanBook | None = None,
    ) -> None:
        self._jobs = jobs
        # Training plans (backend.services.plans): the team default, and a job that can never
        # run on its plan refused here rather than failed by the launcher.
        self._plans = plans
        # TRAINBOT_INSTANCE_LIMITS: a job that no type of its list could ever fit is refused
        # here, not parked by the launcher for ever.
        self._limits = dict(instance_limits or {})
        # Estimates, approval holds and budgets (issue 14); None: no guard (plain estimates).
        self.guard = guard
        # Called once jobs are registered (start on submit: backend.services.kick).
        self._on_queued = on_queued
        self._store = store
        self.presets = presets
        self._clock = clock
        self.sweep_confirm_size = sweep_confirm_size
        self.sweep_max_size = sweep_max_size

    # --- one job --------------------------------------------------------------------------------

    def spec(self, fields: dict[str, str]) -> JobSpec:
        """The validated spec of ``fields`` with their preset merged in; BadCommand (or
        PresetNotFound) names what is wrong. Reads only the preset."""
        spec = job_spec(self.presets.merged(fields))
        self._check_limits([spec])
        return spec

    def _check_limits(self, specs: Sequence[JobSpec]) -> None:
        """InvalidRequest for specs whose instance count no type of their list could ever run."""
        problems = []
        for spec in specs:
            choices = [spec.job_args.instance_type, *spec.fallback_types]
            problem = over_instance_limits(choices, spec.job_args.instance_count, self._limits)
            if problem is not None and problem not in problems:
                problems.append(problem)
        if problems:
            raise InvalidRequest(problems)

    def estimate(self, jobs: Iterable[JobArgs]) -> Estimate:
        """The cost estimate of running ``jobs`` (backend.domain.cost), with the configured prices."""
        return self.guard.estimate(jobs) if self.guard is not None else estimate(jobs)

    def assess(self, jobs: Sequence[JobArgs], actor: Actor, *, sweep: bool = False) -> Assessment | None:
        """The cost guard's view of a submission (OverBudget if refused); None without a guard."""
        return self.guard.assess(jobs, actor.user_id, sweep=sweep) if self.guard is not None else None

    def submit(self, fields: dict[str, str], actor: Actor, *, token: str, channel_id: str | None = None) -> Registered:
        """Register one job (idempotent on ``token``); the notifiers announce it (in
        ``channel_id``'s thread when given). Over an approval threshold it is registered held;
        over its team's budget it is refused (OverBudget) or held, as configured."""
        spec = self.on_plan(self.spec(fields), actor)
        assessment = self.assess([spec.job_args], actor)
        registered = self._jobs.submit(
            name=spec.name,
            job_args=spec.job_args,
            actor=actor,
            slack=SlackThread(channel_id=channel_id) if channel_id else None,
            priority=spec.priority,
            retry_budget=spec.retry_budget,
            client_token=token,
            preset=spec.preset,
            notify=spec.notify,
            approval=assessment.approval if assessment is not None else None,
            stall_alert_seconds=spec.stall_alert_seconds,
            fallback_types=spec.fallback_types,
            plan=spec.plan,
            plan_fallback=spec.plan_fallback,
            on_registered=self._queued_if_new,
            admit=self.guard.admit if self.guard is not None else None,
        )
        return registered

    # --- sweeps ---------------------------------------------------------------------------------

    def on_plan(self, spec: JobSpec, actor: Actor) -> JobSpec:
        """``spec`` with the plan it runs on (``plan=``, or its team's default; ``plan=none``:
        none); InvalidRequest when it can never run on that plan (another instance type, a max
        runtime past the plan's end…), as far as the launcher's last read of the plans says."""
        if self._plans is None:
            return spec
        plan = self._plans.plan_for(spec.plan, actor.user_id)
        if plan is not None:
            args = spec.job_args
            if spec.fallback_types:
                raise InvalidRequest([f"plan `{plan}` runs on one instance type; give one instance=, not a list"])
            problems = self._plans.submit_problems(plan, args.instance_type, args.instance_count, args.StoppingCondition.MaxRuntimeInSeconds)
            if problems and not spec.plan_fallback:
                raise InvalidRequest(problems)
        return dataclasses.replace(spec, plan=plan)

    def plan_sweep(self, fields: dict[str, str], *, token: str) -> SweepPlan:
        """Validate a sweep (its preset merged in) without writing anything; its id comes
        from ``token``. Reads only the preset."""
        merged = self.presets.merged(fields)
        specs = sweep_specs(merged, self.sweep_max_size, SWEEP_USAGE)
        self._check_limits(specs)
        return SweepPlan(sweep_id_for(token), merged, specs, len(specs) > self.sweep_confirm_size)

    def sweep(
        self,
        fields: dict[str, str],
        actor: Actor,
        *,
        token: str,
        channel_id: str | None = None,
        post_root: Callable[[SweepRoot], str] | None = None,
    ) -> SweepOutcome:
        """Plan the sweep, then register it, or park it when it needs confirmation (only in a
        channel, where its owner can confirm it: :meth:`confirm_sweep`)."""
        plan = self.plan_sweep(fields, token=token)
        if plan.needs_confirmation and channel_id:
            self.park_sweep(plan, actor, channel_id)
            return SweepOutcome(plan.sweep_id, plan.name, plan.size, [], parked=True)
        if plan.needs_confirmation:
            raise InvalidRequest([f"this sweep has {plan.size:,} jobs (more than {self.sweep_confirm_size:,}): confirm it first"])
        return self.register_sweep(plan, actor, channel_id=channel_id, post_root=post_root)

    def register_sweep(
        self,
        plan: SweepPlan,
        actor: Actor,
        *,
        channel_id: str | None = None,
        post_root: Callable[[SweepRoot], str] | None = None,
        on_progress: Progress | None = None,
    ) -> SweepOutcome:
        """Register a planned sweep's jobs in one batch (idempotent on its sweep id), under one
        thread root when in a channel (``post_root`` posts it and returns its ts; a redelivery
        finds the root and the batch already there)."""
        plan = dataclasses.replace(plan, specs=[self.on_plan(spec, actor) for spec in plan.specs])
        assessment = self.assess([spec.job_args for spec in plan.specs], actor, sweep=True)
        approval = assessment.approval if assessment is not None else None
        slack = None
        if channel_id and post_root is not None:
            root = self._root(plan, actor, channel_id, post_root)
            slack = SlackThread(channel_id=root.channel, thread_ts=root.ts)
        now = self._clock()
        # Ids derived from the sweep's id and each job's place: its record keeps only their stem.
        stem = sweeps.sweep_stem(plan.sweep_id, plan.name, self._jobs.job_id_prefix)
        jobs: list[Job] = [
            new_job(
                job_id=sweeps.sweep_job_id(stem, index),
                name=spec.name,
                job_args=spec.job_args,
                owner=actor.owner,
                now=now,
                slack=slack,
                priority=spec.priority,
                retry_budget=spec.retry_budget,
                client_token=f"{plan.sweep_id}/{index}",
                sweep_id=plan.sweep_id,
                preset=spec.preset,
                prefix=self._jobs.job_id_prefix,
                notify=spec.notify,
                approval=approval,
                stall_alert_seconds=spec.stall_alert_seconds,
                fallback_types=spec.fallback_types,
                plan=spec.plan,
                plan_fallback=spec.plan_fallback,
            )
            for index, spec in enumerate(plan.specs)
        ]
        if self.guard is not None and not self._jobs.store.existing_ids([jobs[0].job_id]):
            jobs = self.guard.admit(jobs)  # reserve the sweep's budget in one write (or hold it)
            approval = jobs[0].approval if jobs and jobs[0].is_held else approval
        try:
            ids = self._jobs.submit_sweep(jobs, plan.sweep_id, on_progress=on_progress)
        except BatchBusy:
            raise SweepAlreadyConfirmed() from None
        if approval is None and ids:
            self._queued(ids[-1])  # one kick for the whole batch
        self._store.delete_record(PENDING_SWEEP, plan.sweep_id)
        est = assessment.estimate if assessment is not None else self.estimate(spec.job_args for spec in plan.specs)
        return SweepOutcome(plan.sweep_id, plan.name, plan.size, ids, held=approval is not None, estimate=est)

    def _queued(self, job_id: str) -> None:
        if self._on_queued is not None:
            self._on_queued(job_id)

    def _queued_if_new(self, registered: Registered) -> None:
        if registered.created and not registered.job.is_held:
            self._queued(registered.job.job_id)

    def park_sweep(self, plan: SweepPlan, actor: Actor, channel_id: str) -> None:
        """Keep a large sweep's (merged) fields until its owner confirms; expires in an hour."""
        self._store.put_record(
            PENDING_SWEEP,
            plan.sweep_id,
            {
                "Fields": plan.fields,
                "Team": actor.team_id,
                "User": actor.user_id,
                "Channel": channel_id,
                # Wall-clock seconds, not the injected clock: DynamoDB's TTL reads this attribute.
                "ExpiresAt": int(time.time()) + PENDING_TTL_SECONDS,
            },
        )

    def confirm_sweep(self, sweep_id: str, actor: Actor, post_root: Callable[[SweepRoot], str] | None = None) -> SweepOutcome:
        """Register a parked sweep, for its owner only. The confirmation first claims the parked
        record (a conditional write holding it for CONFIRM_LEASE_SECONDS), so a second one
        meanwhile posts and writes nothing (SweepAlreadyConfirmed), while a press after a
        crashed one finishes it; SweepExpired when it is gone."""
        fields, channel = self._claim(sweep_id, actor)
        specs = sweep_specs(fields, self.sweep_max_size, SWEEP_USAGE)
        plan = SweepPlan(sweep_id, fields, specs, needs_confirmation=False)
        return self.register_sweep(plan, actor, channel_id=channel, post_root=post_root)

    def cancel_sweep(self, sweep_id: str, actor: Actor) -> None:
        """Forget a parked sweep, for its owner only; SweepExpired when it is gone,
        SweepAlreadyConfirmed while a confirmation registers it."""
        record = self._parked_record(sweep_id, actor)
        if self._claimed(record):
            raise SweepAlreadyConfirmed()
        self._store.delete_record(PENDING_SWEEP, sweep_id)

    def sweep_root(self, sweep_id: str) -> SweepRoot | None:
        record = self._store.get_record(SWEEP_ROOT, sweep_id)
        if record is None:
            return None
        return SweepRoot(
            sweep_id, str(record["Channel"]), str(record["Ts"]), str(record["Name"]), str(record["Owner"]), int(record["Total"])
        )

    def _parked_record(self, sweep_id: str, actor: Actor) -> dict[str, object]:
        """The parked sweep's record, for its owner only; SweepExpired if gone (or
        SweepAlreadyConfirmed when it is gone because it was registered)."""
        record = self._store.get_record(PENDING_SWEEP, sweep_id)
        if record is None or int(record.get("ExpiresAt", 0)) < time.time():
            if self._store.get_record(RecordKind.SWEEP, sweep_id) is not None:
                raise SweepAlreadyConfirmed()
            raise SweepExpired()
        if (record.get("Team"), record.get("User")) != (actor.team_id, actor.user_id):
            raise NotAuthorized("only the sweep's author may confirm it")
        return record

    def _claimed(self, record: dict[str, object]) -> bool:
        until = record.get("ClaimedUntil")
        return until is not None and float(str(until)) > self._clock().timestamp()

    def _claim(self, sweep_id: str, actor: Actor) -> tuple[dict[str, str], str]:
        """Claim the parked sweep for this confirmation; its fields and channel."""
        record = self._parked_record(sweep_id, actor)
        if self._claimed(record):
            raise SweepAlreadyConfirmed()
        until = int(self._clock().timestamp()) + CONFIRM_LEASE_SECONDS
        # Conditional on the claim as read (None: never claimed): of two presses, one wins.
        if not self._store.put_record(
            PENDING_SWEEP, sweep_id, {**record, "ClaimedUntil": until}, only_if={"ClaimedUntil": record.get("ClaimedUntil")}
        ):
            raise SweepAlreadyConfirmed()
        fields = record["Fields"]
        assert isinstance(fields, dict)
        return {str(k): str(v) for k, v in fields.items()}, str(record["Channel"])

    def _root(self, plan: SweepPlan, actor: Actor, channel_id: str, post_root: Callable[[SweepRoot], str]) -> SweepRoot:
        root = self.sweep_root(plan.sweep_id)
        if root is not None:
            return root
        ts = post_root(SweepRoot(plan.sweep_id, channel_id, "", plan.name, actor.user_id, plan.size))
        root = SweepRoot(plan.sweep_id, channel_id, ts, plan.name, actor.user_id, plan.size)
        recorded = self._store.put_record(
            SWEEP_ROOT,
            plan.sweep_id,
            {
                "Channel": root.channel,
                "Ts": root.ts,
                "Name": root.name,
                "Owner": actor.user_id,
                "Total": root.total,
                # What the final summary ranks the jobs by (objective=max:<metric>), if anything.
                **({"Objective": plan.fields["objective"]} if plan.fields.get("objective") else {}),
            },
            only_if_absent=True,
        )
        if not recorded:
            # A duplicate delivery posted its root first: every job goes under that one.
            root = self.sweep_root(plan.sweep_id) or root
        return root

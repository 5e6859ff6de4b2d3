"""The ports: what the services need from the outside world, as protocols.

Services take these as arguments; adapters (``backend.adapters``) implement them over boto3
and slack_sdk, and tests may implement them with fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from backend.domain.plans import TrainingPlan
from backend.domain.queue_order import QueuedJob
from backend.domain.status import JobStatus
from backend.errors import TrainbotError

if TYPE_CHECKING:
    from backend.domain.charts import ChartRequest
    from backend.domain.model import Job, LogTail, Owner


@dataclass(frozen=True)
class Applied:
    """A conditional write went through; ``job`` is the item as now stored."""

    job: Job


@dataclass(frozen=True)
class LostRace:
    """A conditional write was refused: someone else moved the job first (``current`` is what
    they left, when the store could tell; None if the job is gone)."""

    job_id: str
    expected_status: JobStatus
    expected_version: int
    current: Job | None


WriteOutcome = Applied | LostRace


@dataclass(frozen=True)
class Registered:
    """A registration: the job as stored."""

    job: Job
    created: bool  # False: the client token was seen before; ``job`` is the one registered then


@dataclass(frozen=True)
class Page:
    """One page of a listing."""

    jobs: list[Job]
    cursor: str | None  # pass back to get the next page; None: no more


class DuplicateBatch(TrainbotError):
    """A batch id was registered before with other jobs."""


class BatchBusy(TrainbotError):
    """Another registration of this batch holds its lease (it is being registered now)."""

    def __init__(self, batch_id: str) -> None:
        super().__init__(f"batch {batch_id} is being registered")
        self.batch_id = batch_id


# How long a batch's registration holds it: longer than any Trainbot function may run
# (template.yaml: at most 120 s), so a later repeat takes it over only from a dead writer.
BATCH_LEASE = timedelta(minutes=5)


class JobHistory(Protocol):
    """Jobs by creation day (the stats and the export read only this)."""

    def jobs_created_on(self, day: str, *, since: str | None = None, until: str | None = None) -> Iterator[Job]:
        """Jobs created on ``day`` (YYYY-MM-DD), optionally within [since, until] timestamps."""
        ...

    def count_created(self, since: str, until: str) -> int:
        """How many jobs were created within [since, until] (timestamps; reads index keys only)."""
        ...

    def count_owned(self, owner: Owner, since: str, until: str) -> int:
        """How many of ``owner``'s jobs were created within [since, until] (the Owner index's keys)."""
        ...

    def jobs_ended_in(self, slice_name: str) -> list[Job]:
        """The finished jobs whose end is in the ten-minute slice ``slice_name`` (the Ended
        index; items read consistently)."""
        ...


class JobRepository(JobHistory, Protocol):
    """Jobs: idempotent registration, reads, conditional writes and the queue's queries.

    Every write of an existing job is conditional on the status *and* version the caller read:
    a refused write is a :class:`LostRace`, never an overwrite.
    """

    def register(self, job: Job) -> Registered:
        """Register a New job, idempotent on its id (hence on its client token); the store
        gives it its owner's fair-share tag (:mod:`backend.domain.fairness`)."""
        ...

    def register_many(
        self, jobs: Sequence[Job], batch_id: str, on_progress: Callable[[int, int], None] | None = None
    ) -> list[str]:
        """Register a sweep's jobs, idempotent on ``batch_id`` (:class:`DuplicateBatch` if the
        id was used for other jobs). The registration holds the batch for :data:`BATCH_LEASE`
        (from the jobs' ``created_at``): a repeat meanwhile writes nothing (:class:`BatchBusy`);
        a repeat after a writer died takes the batch over and writes only the missing jobs,
        never an existing one, and moves the owner's fair-share clock only for those."""
        ...

    def get(self, job_id: str) -> Job:
        """The job; :class:`backend.errors.JobNotFound` if there is none."""
        ...

    def get_many(self, job_ids: Iterable[str]) -> list[Job]:
        """The jobs that exist among ``job_ids``, in the order asked."""
        ...

    def existing_ids(self, job_ids: Iterable[str]) -> set[str]:
        """Which of ``job_ids`` exist."""
        ...

    def transition(
        self, job: Job, to_status: JobStatus, *, at: datetime, reason: str = "", **changes: Any
    ) -> WriteOutcome:
        """Move ``job`` (as read) to ``to_status`` (IllegalTransition if not allowed)."""
        ...

    def update(self, job: Job, *, at: datetime, **changes: Any) -> WriteOutcome:
        """Change bookkeeping fields of ``job`` (not its status)."""
        ...

    def set_thread(self, job_id: str, channel_id: str, thread_ts: str) -> None:
        """Record the job's Slack thread root, once (a second root never replaces the first)."""
        ...

    def ready_jobs(self, limit: int | None) -> list[Job]:
        """New jobs no launcher holds, in launch order."""
        ...

    def held_jobs(self, limit: int | None) -> list[Job]:
        """Jobs waiting for an admin's approval (the Queue index's ``held`` partition), oldest first."""
        ...

    def held_count(self) -> int:
        """How many jobs wait for an admin's approval (counted, not read)."""
        ...

    def queued_jobs(self) -> list[QueuedJob]:
        """Every queued job that a launcher may take (ready, waiting, claimed, parked; not held),
        as ranking needs it, read from the Queue index's entries alone (never the items)."""
        ...

    def retrying_due(self, now: datetime, limit: int | None) -> list[Job]:
        """Retrying jobs (no launcher holds) whose next attempt time has come, soonest first."""
        ...

    def expired_claims(self, now: datetime, limit: int | None) -> list[Job]:
        """Queued jobs whose launcher's lease ran out, oldest expiry first."""
        ...

    def due_for_launch(self, now: datetime, limit: int) -> list[Job]:
        """:meth:`iter_due` as a list."""
        ...

    def iter_due(self, now: datetime, limit: int, page: int = 50) -> Iterator[Job]:
        """Expired claims first, then ready and due Retrying jobs merged in launch order."""
        ...

    def parked_types(self) -> list[str]:
        """The park keys (``Job.park_key``: a job's instance types, comma-joined) that have
        jobs parked by the launcher (no room for any of their types)."""
        ...

    def parked_jobs(self, instance_type: str, limit: int) -> list[Job]:
        """Parked jobs of park key ``instance_type`` (one of :meth:`parked_types`), in launch order."""
        ...

    def active_jobs(self, limit: int | None = None) -> list[Job]:
        """Launched / InProgress / Stopping jobs, in the order they became active (Job.active_since)."""
        ...

    def active_places(self) -> list[tuple[str, str]]:
        """(place, job id) of every active job, in the order they became active, read without
        reading the jobs (the place is its Active index sort key, ``<active since>#<job id>``)."""
        ...

    def active_usage(self) -> dict[str, int]:
        """Instances the active jobs hold, per instance type (the type their current attempt
        runs on), read without reading the jobs themselves."""
        ...

    def jobs_of_owner(self, owner: Owner, *, limit: int = 20, cursor: str | None = None) -> Page:
        """A user's jobs, newest first (ValueError for a cursor this store did not give out)."""
        ...

    def recent_jobs(self, *, limit: int = 20, cursor: str | None = None, today: datetime, max_days: int = 90) -> Page:
        """Everyone's jobs, newest first, back to ``max_days`` before ``today``."""
        ...


class OutboxStore(Protocol):
    """The notification outbox and the per-job delivery lease."""

    def get(self, job_id: str) -> Job: ...

    def outbox_job_ids(self, limit: int | None = None, *, due_by: datetime | None = None) -> list[str]:
        """Ids of jobs with a change some notifier target has not had, soonest due first
        (:func:`backend.domain.notice.delivery_due`); with ``due_by``, only those due by then."""
        ...

    def holds_delivery(self, job: Job) -> bool:
        """Whether this process's transition that wrote ``job`` (as it is) also took the job's
        delivery lease (token ``v<version>``): its writer delivers without a write to take it."""
        ...

    def acquire_delivery(self, job_id: str, token: str, now: datetime, until: datetime) -> Job | None:
        """Take the job's delivery lease until ``until``; the job as stored, or None if another
        dispatcher holds a lease that ran out at or after ``now`` (or the job is gone). The
        dispatcher passes ``now`` minus :data:`backend.domain.notice.SEND_BOUND`. A lease taken
        over from a holder that never gave it back (a round killed before recording its sends)
        comes back as :func:`backend.domain.notice.taken_over` says: its changes in doubt, told
        by the same write (a transition that folds the lease in answers the same way)."""
        ...

    def extend_delivery(self, job: Job, token: str, delivered: dict[str, int], until: datetime) -> bool:
        """Mid-round: record ``delivered`` and extend the lease to ``until``, in one write
        conditional on the lease still being ``token``'s; False if it is not (stop sending)."""
        ...

    def finish_delivery(
        self,
        job: Job,
        token: str,
        delivered: dict[str, int],
        *,
        all_done: bool,
        retry_at: datetime | None = None,
        doubts: dict[str, int] | None = None,
    ) -> bool:
        """Record ``delivered`` and release the lease (if still ours); with ``all_done`` and the
        job unchanged since ``job`` was read, the job leaves the outbox. With ``retry_at`` (a
        round that left changes pending after a failure) the job's outbox entry is due then.
        ``doubts`` (given: replaces ``Job.doubts``, empty removes them) in the same write.
        True when this was recorded but the job had changed since ``job`` (with ``all_done``
        or ``retry_at``): a newer change, written while this round held the lease, is waiting."""
        ...


@dataclass(frozen=True)
class SweepEnd:
    """A sweep's record right after one of its jobs was counted as ended."""

    tally: dict[str, int]  # outcome -> jobs
    # "name: reason" of the newest failed jobs, in the order they were counted (the record keeps
    # SWEEP_FAILURES_KEPT to twice that many); ``failures_before`` older ones are counted only.
    failures: list[str]
    digested: int  # how many failures (counted from the sweep's first) a digest reply has told
    final: bool  # the final summary was claimed already
    failures_before: int = 0

    @property
    def failed(self) -> int:
        """Failures counted so far, the ones no longer listed included."""
        return self.failures_before + len(self.failures)

    def failures_from(self, number: int) -> list[str]:
        """The listed failures from the ``number``-th (from 0) on."""
        return self.failures[max(0, number - self.failures_before) :]


class RecordStore(Protocol):
    """Small ``<kind>#<key>`` records (:class:`backend.domain.records.RecordKind`)."""

    def put_record(
        self,
        kind: str,
        key: str,
        attributes: dict[str, Any],
        *,
        only_if: dict[str, Any] | None = None,
        only_if_absent: bool = False,
    ) -> bool:
        """Write the record (conditionally); whether it was written."""
        ...

    def set_record_entry(self, kind: str, key: str, map_attribute: str, entry: str, value: Any | None) -> None:
        """Set (None: remove) one entry of a map attribute, leaving the others alone."""
        ...

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None:
        """The record's attributes; None if there is none."""
        ...

    def delete_record(self, kind: str, key: str) -> None: ...

    def count_sweep_end(self, sweep_id: str, member: int, outcome: str, failure: str | None = None) -> SweepEnd | None:
        """Count the end of the sweep's job number ``member`` once (one conditional write on a
        small per-sweep record: a repeat counts nothing and returns None); a failure's line
        joins the sweep's failure list."""
        ...

    def claim_sweep_mark(self, sweep_id: str, attribute: str, expected: int, new: int) -> bool:
        """Move a counter of the sweep record (``Digested``, ``Final``) from ``expected`` to
        ``new``; False if another writer moved it first (so a digest is posted once)."""
        ...

    def claim_record_mark(self, kind: str, key: str, attribute: str, expected: int, new: int, *, expires_at: int | None = None) -> bool:
        """Move a numeric mark of record ``<kind>#<key>`` from ``expected`` to ``new`` (0: the
        mark is absent too, and the record is created if need be, expiring at ``expires_at``,
        epoch seconds); False if another writer moved it first. One UpdateItem: a function whose
        role may not PutItem (the monitor) can call it."""
        ...


class UsageStore(Protocol):
    """Weekly usage records (``usage#<team>#<week>``, :mod:`backend.services.budget`)."""

    def get_record(self, kind: str, key: str) -> dict[str, Any] | None: ...

    def add_usage(self, key: str, attempt: str, seconds: int, *, release: tuple[str, str, int] | None = None) -> bool:
        """Add ``seconds`` to usage record ``key`` once per ``attempt`` name (a mark of the
        attempt's own, written with the addition); False if that attempt was counted before (a
        duplicated event). The record does not grow with the attempts it counts. With
        ``release`` (key, token, seconds): in the same atomic write, give back that reservation
        if it is still held (the billed time replaces it: a run killed between the two would
        leave both counted, and the reservation held for good)."""
        ...

    def reserve(self, key: str, tokens: Sequence[str], seconds: int, limit: int | None) -> bool:
        """Reserve ``seconds`` on usage record ``key`` under ``tokens`` in one conditional write:
        only if the record's committed seconds (billed + reserved) plus ``seconds`` stay within
        ``limit`` (None: no limit). True when reserved (now, or before: a repeat of
        ``tokens[0]``), False when it does not fit; of two racing for the last room, one wins."""
        ...

    def release(self, key: str, token: str, seconds: int) -> bool:
        """Give back ``token``'s ``seconds`` on usage record ``key`` once; False if not held."""
        ...


class JobStore(JobRepository, OutboxStore, RecordStore, UsageStore, Protocol):
    """Everything the table holds: what the composition root wires and the bot uses."""

    @property
    def notify_targets(self) -> tuple[str, ...]: ...

    def set_notify_targets(self, targets: Sequence[str]) -> None:
        """The notifier names whose deliveries the outbox tracks (set once, when wiring)."""
        ...


class TrainingState(StrEnum):
    """A training job's state as the domain sees it (SageMaker's words stay in the adapter)."""

    RUNNING = "running"
    STOPPING = "stopping"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class TrainingStatus:
    """What the training backend says about one attempt."""

    name: str
    state: TrainingState
    failure_reason: str = ""
    max_runtime_exceeded: bool = False  # ended at StoppingCondition.MaxRuntimeInSeconds
    max_wait_exceeded: bool = False  # spot: ended at StoppingCondition.MaxWaitTimeInSeconds
    spot_interrupted: bool = False  # spot: SageMaker reported the instances interrupted (reclaimed)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    billable_seconds: int | None = None
    # The training plan the job runs on (its ResourceConfig's plan, by name): "" when SageMaker
    # showed its resources and they name no plan (on-demand); None when it did not say.
    training_plan: str | None = None
    # The job's defined metrics as the backend last read them from its log (name -> value) and
    # where the trained model was written (an S3 URI; a completed attempt's only).
    final_metrics: dict[str, float] = field(default_factory=dict)
    model_artifact: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingJobSummary:
    """One training job as a listing shows it: its name, when SageMaker created it, its state."""

    name: str
    created_at: datetime
    state: TrainingState


@dataclass(frozen=True)
class TrainingJobPage:
    """One page of training jobs, oldest first; ``next_token`` None: the listing is complete."""

    jobs: list[TrainingJobSummary]
    next_token: str | None


# Training jobs one listing page holds at most (SageMaker's ListTrainingJobs: MaxResults 1-100).
LIST_PAGE_MAX = 100


class TrainingBackend(Protocol):
    def create(self, name: str, request: dict[str, Any]) -> None: ...

    def describe(self, name: str) -> TrainingStatus | None: ...

    def stop(self, name: str) -> None: ...

    def list_created(self, after: datetime | None, *, next_token: str | None = None, limit: int = LIST_PAGE_MAX) -> TrainingJobPage:
        """One page of the account's training jobs created after ``after`` (None: since the
        first), whatever their state, oldest first, at most ``limit`` (1 to LIST_PAGE_MAX).
        BackendUnavailable when the backend could not say (throttled, 5xx, timeout): unknown,
        not empty; BackendRefused when it will not (AccessDenied, a request it calls invalid)."""
        ...


class TrainingPlans(Protocol):
    """The account's training plans (reserved capacity; backend.domain.plans), read through
    SageMaker's ListTrainingPlans / DescribeTrainingPlan; BackendUnavailable when it cannot say."""

    def plans(self) -> list[TrainingPlan]:
        """Every plan training jobs can use, in the account and region."""
        ...

    def plan(self, name: str) -> TrainingPlan | None:
        """One plan by name; None if there is no such plan."""
        ...


class PriceSource(Protocol):
    """List prices (AWS's Price List API): on-demand price per instance-hour by training
    instance type in a region; BackendUnavailable when it cannot answer."""

    def training_prices(self, region: str) -> dict[str, float]: ...


class TrainingLogs(Protocol):
    """A training job's log (CloudWatch Logs): paced, bounded reads."""

    def tail(self, training_job_name: str) -> LogTail:
        """The end of each host's log, cut to the stored budget; never raises (a read that
        failed is a tail in state ``unreadable``)."""
        ...

    def last_line_at(self, training_job_name: str) -> datetime | None:
        """When the job last wrote a line (None: none yet); BackendUnavailable if unknown."""
        ...


class StallNotifier(Protocol):
    """Tells a job's thread, once per silence, that it has written no log line for a while."""

    def stalled(self, job: Job, last_line_at: datetime, silent_seconds: float) -> None: ...


class Notifier(Protocol):
    """Tells the world about a job's status change. ``name`` keys the outbox. A send that may
    or may not have landed raises :class:`backend.errors.NotifierUncertain`."""

    name: str

    def notify(self, job: Job, seq: int) -> None: ...


class CheckingNotifier(Notifier, Protocol):
    """A notifier that can look whether a change reached it already (the Slack thread's
    replies carry metadata naming it): the dispatcher asks before sending a change in doubt
    (:attr:`backend.domain.model.Job.doubts`), and only then."""

    def already_told(self, job: Job, seq: int) -> bool:
        """True: :meth:`notify` has nothing left to do for change ``seq``. False: it should
        run. NotifierUnavailable if it could not look; NotifierRejected if it never can."""
        ...


# Whether notifiers may wait for a rate limit (Slack's posting pace) in this call. A caller that
# holds something scarce while it notifies (the launcher, its one slot) says no: what would
# have to wait stays in the outbox, and a later delivery or the sweep sends it.
_may_wait: ContextVar[bool] = ContextVar("trainbot_notify_may_wait", default=True)


def notify_may_wait() -> bool:
    return _may_wait.get()


@contextmanager
def notify_without_waiting() -> Iterator[None]:
    """Within this block (this thread), notifiers never wait for a rate limit."""
    token = _may_wait.set(False)
    try:
        yield
    finally:
        _may_wait.reset(token)


class LaunchTrigger(Protocol):
    """Starts one launcher run now, without waiting for it (on AWS: an asynchronous Invoke)."""

    def start_launcher(self, job_id: str | None = None) -> None:
        """Ask for one launcher run (for ``job_id``, the job whose registration asked);
        raises :class:`backend.errors.BackendUnavailable` when the request could not be made
        (the schedule then launches the job)."""
        ...


class ChartTrigger(Protocol):
    """Asks for a stats chart without waiting for it (on AWS: an asynchronous Invoke of the
    chart function, which carries the chart library the bot does not)."""

    def request_chart(self, request: ChartRequest) -> None:
        """Raises :class:`backend.errors.BackendUnavailable` when the request could not be made."""
        ...


class StatsFigures(Protocol):
    """The headline numbers of a stats window a chart's caption names
    (:class:`backend.services.stats.Stats` has them)."""

    @property
    def total(self) -> int: ...
    @property
    def success_rate(self) -> float | None: ...
    @property
    def by_status(self) -> dict[str, int]: ...


class ChartSharer(Protocol):
    """Posts a drawn stats chart where its request says (Slack: a file in the summary's thread)."""

    def share_chart(self, request: ChartRequest, stats: StatsFigures, png: bytes) -> str:
        """Upload ``png`` with a one-line caption of ``stats``; the file's id. Raises
        :class:`backend.errors.NotifierUnavailable` (try again later) or
        :class:`backend.errors.NotifierRejected` (never: the bot may not post there)."""
        ...

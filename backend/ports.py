"""The ports: what the services need from the outside world, as protocols.

Services take these as arguments; adapters (``backend.adapters``) implement them over boto3
and slack_sdk, and tests may implement them with fakes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from backend.domain.model import Job, Owner
from backend.domain.status import JobStatus


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
    job: Job
    created: bool  # False: the client token was seen before; ``job`` is the one registered then


@dataclass(frozen=True)
class Page:
    jobs: list[Job]
    cursor: str | None  # pass back to get the next page; None: no more


class JobRepository(Protocol):
    def register(self, job: Job) -> Registered: ...

    def register_many(self, jobs: Sequence[Job], batch_id: str, on_progress: Any = None) -> list[str]: ...

    def get(self, job_id: str) -> Job: ...

    def transition(self, job: Job, to_status: JobStatus, *, at: datetime, reason: str = "", **changes: Any) -> WriteOutcome: ...

    def update(self, job: Job, *, at: datetime, **changes: Any) -> WriteOutcome: ...

    def due_for_launch(self, now: datetime, limit: int) -> list[Job]: ...

    def iter_due(self, now: datetime, limit: int) -> Iterator[Job]: ...

    def active_jobs(self, limit: int | None = None) -> list[Job]: ...

    def jobs_of_owner(self, owner: Owner, *, limit: int = 20, cursor: str | None = None) -> Page: ...


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
    started_at: datetime | None = None
    ended_at: datetime | None = None
    billable_seconds: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class TrainingBackend(Protocol):
    def create(self, name: str, request: dict[str, Any]) -> None: ...

    def describe(self, name: str) -> TrainingStatus | None: ...

    def stop(self, name: str) -> None: ...


class Notifier(Protocol):
    """Tells the world about a job's status change. ``name`` keys the outbox."""

    name: str

    def notify(self, job: Job, seq: int) -> None: ...

"""A training backend in memory (backend.ports.TrainingBackend), scriptable: refuse the next
creates, be unreachable, call back in the middle of a create (to stage a race). Its listing
pages as SageMaker's ListTrainingJobs does (oldest first, NextToken, at most 100 a page)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from backend.domain.model import FailureClass
from backend.domain.policy import Classification
from backend.errors import AlreadyExists, BackendRefused, BackendUnavailable, CreateRefused
from backend.ports import LIST_PAGE_MAX, TrainingJobPage, TrainingJobSummary, TrainingState, TrainingStatus

# Creation times when no clock is given: one millisecond apart, in create order.
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class FakeTrainingBackend:
    """Training jobs by name. ``refusals`` are raised by the next creates, in order."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.jobs: dict[str, TrainingStatus] = {}
        self.clock = clock  # SageMaker's CreationTime of each create (None: _EPOCH on, 1 ms apart)
        self.created_at: dict[str, datetime] = {}
        self.listings: list[tuple[datetime | None, str | None]] = []  # (after, next token) of each list call
        self.list_unavailable = False  # every listing raises BackendUnavailable
        self.stop_unavailable: set[str] = set()  # names whose StopTrainingJob is throttled
        self.requests: dict[str, dict[str, Any]] = {}
        self.created: list[str] = []  # names, in the order they were created
        self.stops: list[str] = []  # names StopTrainingJob was sent for
        self.refusals: list[Exception] = []
        self.unavailable = False  # every call raises BackendUnavailable
        self.describe_refused = False  # every Describe raises BackendRefused (AccessDenied)
        self.during_create: Callable[[str], None] | None = None  # runs after a create succeeded

    def refuse_next(self, failure_class: FailureClass, reason: str = "refused") -> None:
        self.refusals.append(CreateRefused(Classification(failure_class, reason)))

    def create(self, name: str, request: dict[str, Any]) -> None:
        if self.unavailable:
            raise BackendUnavailable("SageMaker cannot be reached")
        if self.refusals:
            raise self.refusals.pop(0)
        if name in self.jobs:
            raise AlreadyExists(name)
        self.jobs[name] = TrainingStatus(name=name, state=TrainingState.RUNNING)
        self.created_at[name] = self.clock() if self.clock is not None else _EPOCH + timedelta(milliseconds=len(self.created_at))
        self.requests[name] = request
        self.created.append(name)
        if self.during_create is not None:
            hook, self.during_create = self.during_create, None
            hook(name)

    def describe(self, name: str) -> TrainingStatus | None:
        if self.unavailable:
            raise BackendUnavailable("SageMaker cannot be reached")
        if self.describe_refused:
            raise BackendRefused("AccessDeniedException: not authorized to perform sagemaker:DescribeTrainingJob")
        return self.jobs.get(name)

    def stop(self, name: str) -> None:
        if self.unavailable or name in self.stop_unavailable:
            raise BackendUnavailable("SageMaker cannot be reached")
        self.stops.append(name)
        if name in self.jobs and self.jobs[name].state is TrainingState.RUNNING:
            self.finish(name, TrainingState.STOPPING)

    def finish(
        self,
        name: str,
        state: TrainingState,
        failure_reason: str = "",
        *,
        max_runtime_exceeded: bool = False,
        ended_at: datetime | None = None,
    ) -> TrainingStatus:
        """Move a training job to ``state`` (as SageMaker would report it); the new status."""
        status = TrainingStatus(
            name=name, state=state, failure_reason=failure_reason, max_runtime_exceeded=max_runtime_exceeded, ended_at=ended_at
        )
        self.jobs[name] = status
        return status

    def list_created(self, after: datetime | None, *, next_token: str | None = None, limit: int = LIST_PAGE_MAX) -> TrainingJobPage:
        """Jobs created after ``after`` (every state), oldest first, ``limit`` a page; refuses
        what SageMaker refuses (a MaxResults outside 1-100, a token it did not give out)."""
        self.listings.append((after, next_token))
        if self.unavailable or self.list_unavailable:
            raise BackendUnavailable("ThrottlingException: Rate exceeded")
        if not 1 <= limit <= LIST_PAGE_MAX:
            raise BackendRefused(f"ValidationException: Value '{limit}' at 'maxResults' failed to satisfy constraint")
        if next_token is not None and not next_token.isdigit():
            raise BackendRefused("ValidationException: Invalid pagination token")
        # A name a test took out of ``jobs`` is one SageMaker does not know (yet): not listed either.
        names = sorted((n for n, at in self.created_at.items() if n in self.jobs and (after is None or at > after)), key=lambda n: self.created_at[n])
        start = int(next_token or 0)
        page = names[start : start + limit]
        jobs = [TrainingJobSummary(name=n, created_at=self.created_at[n], state=self.jobs[n].state) for n in page]
        return TrainingJobPage(jobs=jobs, next_token=str(start + limit) if start + limit < len(names) else None)

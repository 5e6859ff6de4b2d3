"""A training backend in memory (backend.ports.TrainingBackend), scriptable: refuse the next
creates, be unreachable, call back in the middle of a create (to stage a race)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from backend.domain.model import FailureClass
from backend.domain.policy import Classification
from backend.errors import AlreadyExists, BackendRefused, BackendUnavailable, CreateRefused
from backend.ports import TrainingState, TrainingStatus


class FakeTrainingBackend:
    """Training jobs by name. ``refusals`` are raised by the next creates, in order."""

    def __init__(self) -> None:
        self.jobs: dict[str, TrainingStatus] = {}
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
        if self.unavailable:
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

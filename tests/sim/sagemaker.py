"""SageMaker as the simulator sees it: training jobs by name, moving the way AWS documents
(DescribeTrainingJob, "SageMaker Training Job State Change" events), every change an event on
a bus the scheduler delivers in order, out of order, twice, or late.

- A job SageMaker stops by its own stopping condition passes through ``Stopping`` first, then
  ``Stopped`` with ``MaxRuntimeExceeded`` (or ``MaxWaitTimeExceeded`` for spot) in its
  secondary status; a spot job whose instances are reclaimed is ``Interrupted``
  (https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_DescribeTrainingJob.html,
  ``SecondaryStatus``).
- StopTrainingJob moves a running job to ``Stopping``; the next progress ends it ``Stopped``.
- Creating a name that exists is refused (``ResourceInUse``: names are consumed for ever).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from backend.ports import TrainingState, TrainingStatus

T = TrainingState

# How an attempt may end, as the scheduler chooses it.
OUTCOMES = ("complete", "algorithm_error", "capacity_error", "max_runtime", "interrupted", "max_wait", "internal_error")


@dataclass
class Event:
    """One state-change event as EventBridge would deliver it (a snapshot; may be stale)."""

    job_id: str
    attempt: int
    status: TrainingStatus


class SimSageMaker:
    def __init__(self) -> None:
        self.jobs: dict[str, TrainingStatus] = {}
        self.requests: dict[str, dict[str, Any]] = {}
        self.created: list[str] = []
        self.stops: list[str] = []
        self.bus: list[Event] = []

    # --- the port's effects (the faulty port wrapper decides whether they happen) --------------

    def create(self, name: str, request: dict[str, Any], now: datetime) -> bool:
        """False when the name exists (the caller raises AlreadyExists)."""
        if name in self.jobs:
            return False
        self.requests[name] = request
        self.created.append(name)
        self._set(name, TrainingStatus(name=name, state=T.RUNNING, started_at=now))
        return True

    def describe(self, name: str) -> TrainingStatus | None:
        return self.jobs.get(name)

    def stop(self, name: str) -> None:
        self.stops.append(name)
        status = self.jobs.get(name)
        if status is not None and status.state is T.RUNNING:
            self._set(name, replace(status, state=T.STOPPING))

    # --- what SageMaker does on its own -----------------------------------------------------

    def progress(self, name: str, outcome: str, now: datetime) -> None:
        """Move one training job on: a Stopping job ends Stopped; a running one ends as
        ``outcome`` says (max runtime and spot max wait pass through Stopping first)."""
        status = self.jobs.get(name)
        if status is None or status.state not in (T.RUNNING, T.STOPPING):
            return
        started = status.started_at or now
        # SageMaker ends a job at its MaxRuntimeInSeconds: it never bills past it, however late
        # the simulator gets round to moving the job on (a long wait, Describe refused).
        limit = int((self.requests.get(name, {}).get("StoppingCondition") or {}).get("MaxRuntimeInSeconds") or 0)
        billable = max(1, int((now - started).total_seconds()))
        billable = min(billable, limit) if limit else billable
        end = {"ended_at": now, "billable_seconds": billable}
        if status.state is T.STOPPING:
            self._set(name, replace(status, state=T.STOPPED, **end))
            return
        spot = bool(self.requests.get(name, {}).get("EnableManagedSpotTraining"))
        if outcome == "complete":
            self._set(name, replace(status, state=T.COMPLETED, **end))
        elif outcome == "algorithm_error":
            self._set(name, replace(status, state=T.FAILED, failure_reason="AlgorithmError: loss is NaN", **end))
        elif outcome == "capacity_error":
            reason = "CapacityError: Unable to provision requested ML compute capacity. Please retry using a different ML instance type."
            self._set(name, replace(status, state=T.FAILED, failure_reason=reason, **end))
        elif outcome == "internal_error":
            self._set(name, replace(status, state=T.FAILED, failure_reason="InternalServerError: We encountered an internal error.", **end))
        elif outcome == "max_runtime":
            self._set(name, replace(status, state=T.STOPPING))
            self._set(name, replace(status, state=T.STOPPED, max_runtime_exceeded=True, **end))
        elif outcome == "interrupted" and spot:
            self._set(name, replace(status, state=T.STOPPED, spot_interrupted=True, **end))
        elif outcome == "max_wait" and spot:
            self._set(name, replace(status, state=T.STOPPING))
            self._set(name, replace(status, state=T.STOPPED, max_wait_exceeded=True, **end))
        else:  # an outcome that needs spot, on an on-demand job: it simply completes
            self._set(name, replace(status, state=T.COMPLETED, **end))

    def live(self, job_id: str) -> list[str]:
        """The job's training jobs that are running (Stopping is on its way out)."""
        return [n for n, s in self.jobs.items() if n.startswith(job_id + "-a") and s.state is T.RUNNING]

    def _set(self, name: str, status: TrainingStatus) -> None:
        self.jobs[name] = status
        job_id, _, number = name.rpartition("-a")
        self.bus.append(Event(job_id, int(number), status))


def later(now: datetime, seconds: float) -> datetime:
    return now + timedelta(seconds=seconds)

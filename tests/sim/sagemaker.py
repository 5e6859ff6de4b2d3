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
- ListTrainingJobs answers in the documented shape (tests/fixtures/sagemaker_list_training_jobs.json)
  and refuses what SageMaker refuses (a MaxResults outside 1-100, an unknown StatusEquals,
  SortBy or SortOrder, a token it did not give out); ``StatusEquals`` filters the page of
  ``MaxResults`` jobs after it was taken, as the API reference says it does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from backend.ports import TrainingState, TrainingStatus

T = TrainingState
STATUSES = ("InProgress", "Completed", "Failed", "Stopping", "Stopped", "Deleting")  # botocore's service model
_WIRE = {T.RUNNING: "InProgress", T.STOPPING: "Stopping", T.COMPLETED: "Completed", T.FAILED: "Failed", T.STOPPED: "Stopped"}

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
        self.created_at: dict[str, datetime] = {}  # CreationTime

    # --- the port's effects (the faulty port wrapper decides whether they happen) --------------

    def create(self, name: str, request: dict[str, Any], now: datetime) -> bool:
        """False when the name exists (the caller raises AlreadyExists)."""
        if name in self.jobs:
            return False
        self.requests[name] = request
        self.created.append(name)
        self.created_at[name] = now
        self._set(name, TrainingStatus(name=name, state=T.RUNNING, started_at=now))
        return True

    def list_training_jobs(self, **params: Any) -> dict[str, Any]:
        """ListTrainingJobs as the API reference documents it (the subset Trainbot may send:
        CreationTimeAfter/Before, MaxResults, NextToken, SortBy, SortOrder, StatusEquals). A
        request SageMaker would refuse raises ValueError: our code must never send one."""
        known = {"CreationTimeAfter", "CreationTimeBefore", "MaxResults", "NextToken", "SortBy", "SortOrder", "StatusEquals"}
        if set(params) - known:
            raise ValueError(f"ListTrainingJobs: parameters the simulator does not model: {sorted(set(params) - known)}")
        limit = params.get("MaxResults", 10)
        if not isinstance(limit, int) or not 1 <= limit <= 100:
            raise ValueError(f"ValidationException: Value '{limit}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 100")
        status = params.get("StatusEquals")
        if status is not None and status not in STATUSES:
            raise ValueError(f"ValidationException: Value '{status}' at 'statusEquals' failed to satisfy enum value set: {list(STATUSES)}")
        sort_by, order = params.get("SortBy", "CreationTime"), params.get("SortOrder", "Ascending")
        if sort_by not in ("Name", "CreationTime", "Status") or order not in ("Ascending", "Descending"):
            raise ValueError(f"ValidationException: SortBy {sort_by!r} / SortOrder {order!r}")
        token = params.get("NextToken")
        if token is not None and not (isinstance(token, str) and token.isdigit()):
            raise ValueError(f"ValidationException: Invalid pagination token {token!r}")
        after, before = params.get("CreationTimeAfter"), params.get("CreationTimeBefore")
        names = [n for n, at in self.created_at.items() if (after is None or at > after) and (before is None or at < before)]
        key = {"Name": lambda n: n, "Status": lambda n: _WIRE[self.jobs[n].state]}.get(sort_by, lambda n: self.created_at[n])
        names.sort(key=key, reverse=order == "Descending")  # stable: creation order breaks ties
        start = int(token or 0)
        page = names[start : start + limit]
        summaries = [
            {
                "TrainingJobName": n,
                "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{n}",
                "CreationTime": self.created_at[n],
                "TrainingJobStatus": _WIRE[self.jobs[n].state],
                **({"TrainingEndTime": self.jobs[n].ended_at} if self.jobs[n].ended_at is not None else {}),
            }
            for n in page
        ]
        if status is not None:  # filtered after the page was taken (the API reference's note)
            summaries = [summary for summary in summaries if summary["TrainingJobStatus"] == status]
        answer: dict[str, Any] = {"TrainingJobSummaries": summaries}
        if start + limit < len(names):
            answer["NextToken"] = str(start + limit)
        return answer

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

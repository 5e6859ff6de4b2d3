"""Training plans over SageMaker (boto3): ListTrainingPlans and DescribeTrainingPlan, in the
domain's terms (:class:`backend.domain.plans.TrainingPlan`). SageMaker's words (Scheduled,
TrainingPlanArn, ReservedCapacitySummaries…) end here.

Endpoint: boto3 reads ``AWS_ENDPOINT_URL_SAGEMAKER`` itself (the local stand-in in tests).
The launcher reads plans at most once a minute (backend.services.plans), so a few pages a
minute is all this costs.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from backend.adapters.sagemaker_events import UnparseableEvent, event_time
from backend.domain.plans import PlanState, TrainingPlan
from backend.errors import BackendUnavailable

STATES = {
    "Pending": PlanState.PENDING,
    "Scheduled": PlanState.SCHEDULED,
    "Active": PlanState.ACTIVE,
    "Expired": PlanState.EXPIRED,
    "Failed": PlanState.FAILED,
}
MAX_PAGES = 10  # 100 plans a page: far more plans than an account holds
TRAINING_JOBS = "training-job"  # a TargetResources value: the plan serves training jobs


def to_plan(answer: dict[str, Any]) -> TrainingPlan | None:
    """A DescribeTrainingPlan answer or a TrainingPlanSummary as a plan; None for a plan that
    training jobs cannot use (one for HyperPod clusters or endpoints only)."""
    targets = answer.get("TargetResources")
    if isinstance(targets, list) and targets and TRAINING_JOBS not in targets:
        return None
    capacities = [c for c in answer.get("ReservedCapacitySummaries") or [] if isinstance(c, dict)]
    types = {c.get("InstanceType") for c in capacities if c.get("InstanceType")}
    try:
        start, end = event_time(answer.get("StartTime")), event_time(answer.get("EndTime"))
    except UnparseableEvent:
        start = end = None
    return TrainingPlan(
        name=str(answer["TrainingPlanName"]),
        arn=str(answer["TrainingPlanArn"]),
        state=STATES.get(str(answer.get("Status", "")), PlanState.PENDING),
        start=start,
        end=end,
        # A plan of one type (what SearchTrainingPlanOfferings sells for training jobs); a mix
        # of types is left unchecked here and SageMaker judges the create.
        instance_type=next(iter(types)) if len(types) == 1 else None,
        total=int(answer.get("TotalInstanceCount") or 0),
        in_use=int(answer.get("InUseInstanceCount") or 0),
    )


class SageMakerTrainingPlans:
    """:class:`backend.ports.TrainingPlans` over a boto3 ``sagemaker`` client."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: Counter = Counter()

    def plans(self) -> list[TrainingPlan]:
        found: list[TrainingPlan] = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            self.calls["ListTrainingPlans"] += 1
            kwargs: dict[str, Any] = {"MaxResults": 100, **({"NextToken": token} if token else {})}
            try:
                page = self._client.list_training_plans(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise BackendUnavailable(f"ListTrainingPlans: {_why(exc)}") from exc
            found.extend(p for p in map(to_plan, page.get("TrainingPlanSummaries") or []) if p is not None)
            token = page.get("NextToken")
            if not token:
                break
        return found

    def plan(self, name: str) -> TrainingPlan | None:
        self.calls["DescribeTrainingPlan"] += 1
        try:
            answer = self._client.describe_training_plan(TrainingPlanName=name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"ResourceNotFound", "ValidationException"}:
                return None
            raise BackendUnavailable(f"DescribeTrainingPlan {name}: {_why(exc)}") from exc
        except BotoCoreError as exc:
            raise BackendUnavailable(f"DescribeTrainingPlan {name}: {exc}") from exc
        return to_plan(answer)


def _why(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code')}: {error.get('Message')}"
    return str(exc)

"""Training plans for the SageMaker stand-in (``infra.local.standins.sagemaker``).

As AWS documents them (DescribeTrainingPlan, ListTrainingPlans, CreateTrainingPlan): a plan
reserves ``count`` instances of one type for a window; its Status follows the clock: Scheduled
before its start, Active in its window, Expired after its end. A training job names a plan with
``ResourceConfig.TrainingPlanArn``; the stand-in refuses (ValidationException) a plan that does
not exist, has expired, reserves another instance type, or fewer instances than asked. A job on
a plan that has not started or is full is accepted and stays InProgress/Starting until the
plan's capacity frees (its timeline starts then: the stand-in fixes every job's timeline at
create, so the job starts when the jobs already on the plan are due to end; a stop that ends
one early does not move it). A job still waiting when SageMaker starts stopping the plan's jobs
fails with a capacity error at the plan's end. Plans serve training jobs only (TargetResources
``training-job``).

The plan's end: "You have full access to all reserved instances until 30 minutes before the
Reserved Capacity end time. When there are 30 minutes remaining in your Reserved Capacity,
SageMaker training plans begin the process of terminating any running instances within that
Reserved Capacity" (SageMaker Developer Guide, *Training plans utilization for SageMaker training
jobs*, https://docs.aws.amazon.com/sagemaker/latest/dg/training-plan-utilization-for-training-jobs.html).
A job still running then goes Stopping, then Stopped with SecondaryStatus ``Stopped`` and no
FailureReason: AWS documents no status, secondary status or reason of its own for this, so the
stand-in uses the documented ones of a job SageMaker stops (the DescribeTrainingJob answer is in
tests/fixtures/sagemaker_describe_plan_end_stop.json, with what each part rests on).

Shapes follow tests/fixtures/sagemaker_training_plans.json; times are epoch seconds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
# SageMaker begins terminating a reserved capacity's running instances this long before its end.
TERMINATION_LEAD_SECONDS = 30 * 60


@dataclasses.dataclass
class StandInPlan:
    name: str
    instance_type: str
    count: int
    start: float
    end: float

    @property
    def arn(self) -> str:
        return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-plan/{self.name}"

    def status(self, now: float) -> str:
        return "Scheduled" if now < self.start else "Active" if now < self.end else "Expired"

    @property
    def stops_jobs_at(self) -> float:
        """When SageMaker begins stopping the jobs running on the plan."""
        return self.end - TERMINATION_LEAD_SECONDS


@dataclasses.dataclass(frozen=True)
class PlanUse:
    """A job on a plan: ``count`` instances from ``ready_at`` until ``end``."""

    plan: str
    count: int
    ready_at: float
    end: float


class PlanRefused(Exception):
    """A create the plan refuses (the stand-in answers ValidationException with ``message``)."""


class PlanDesk:
    """The account's plans, and the arithmetic of who runs on them when."""

    def __init__(self) -> None:
        self.plans: dict[str, StandInPlan] = {}

    def add(self, name: str, instance_type: str, count: int, start: float, end: float) -> StandInPlan:
        """A plan bought (CreateTrainingPlan's effect, payment settled)."""
        plan = StandInPlan(name, instance_type, count, start, end)
        self.plans[name] = plan
        return plan

    def in_use(self, plan: StandInPlan, uses: Iterable[PlanUse], now: float) -> int:
        return sum(u.count for u in uses if u.plan == plan.name and u.ready_at <= now < u.end)

    def admit(self, arn: str, instance_type: str, count: int, now: float) -> StandInPlan:
        """The plan a create names, or PlanRefused as SageMaker refuses it."""
        plan = next((p for p in self.plans.values() if p.arn == arn), None)
        if plan is None:
            raise PlanRefused(f"Training plan {arn} does not exist.")
        if plan.status(now) == "Expired":
            raise PlanRefused(f"Training plan {plan.name} has expired.")
        if instance_type != plan.instance_type:
            raise PlanRefused(f"Instance type {instance_type} does not match the instance type {plan.instance_type} of training plan {plan.name}.")
        if count > plan.count:
            raise PlanRefused(f"Requested instance count {count} exceeds the {plan.count} instances of training plan {plan.name}.")
        return plan

    def ready_at(self, plan: StandInPlan, count: int, uses: Iterable[PlanUse], now: float) -> float:
        """When ``count`` of the plan's instances are first free (at or after its start)."""
        mine = [u for u in uses if u.plan == plan.name]
        # First come, first served: never ahead of a job already queued on the plan.
        earliest = max([now, plan.start, *(u.ready_at for u in mine)])
        for moment in sorted({earliest, *(u.end for u in mine if u.end > earliest)}):
            used = sum(u.count for u in mine if u.ready_at <= moment < u.end)
            if plan.count - used >= count:
                return moment
        return plan.end

    def describe(self, plan: StandInPlan, now: float, in_use: int) -> dict[str, Any]:
        status = plan.status(now)
        hours, minutes = divmod(int(plan.end - plan.start) // 60, 60)
        return {
            "TrainingPlanArn": plan.arn,
            "TrainingPlanName": plan.name,
            "Status": status,
            "DurationHours": hours,
            "DurationMinutes": minutes,
            "StartTime": plan.start,
            "EndTime": plan.end,
            "TotalInstanceCount": plan.count,
            "InUseInstanceCount": in_use if status == "Active" else 0,
            "AvailableInstanceCount": max(0, plan.count - in_use) if status == "Active" else 0,
            "TargetResources": ["training-job"],
            "ReservedCapacitySummaries": [
                {
                    "ReservedCapacityArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:reserved-capacity/rc-{plan.name}",
                    "InstanceType": plan.instance_type,
                    "TotalInstanceCount": plan.count,
                    "Status": status,
                    "StartTime": plan.start,
                    "EndTime": plan.end,
                }
            ],
        }

    def operations(self, clock: Callable[[], float], uses: Callable[[], list[PlanUse]], validation: Callable[[str], Exception],
                   not_found: Callable[[str], Exception]) -> dict[str, Callable[[dict], dict]]:
        """DescribeTrainingPlan and ListTrainingPlans, for the stand-in's dispatch table."""

        def describe(params: dict) -> dict:
            name = params.get("TrainingPlanName")
            if not isinstance(name, str) or not name:
                raise validation("1 validation error detected: Value null at 'trainingPlanName' failed to satisfy constraint: Member must not be null")
            plan = self.plans.get(name)
            if plan is None:
                raise not_found(f"Training plan {name} does not exist.")
            now = clock()
            return self.describe(plan, now, self.in_use(plan, uses(), now))

        def list_plans(params: dict) -> dict:
            now = clock()
            current = uses()
            return {"TrainingPlanSummaries": [self.describe(p, now, self.in_use(p, current, now)) for p in self.plans.values()]}

        return {"DescribeTrainingPlan": describe, "ListTrainingPlans": list_plans}

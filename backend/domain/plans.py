"""Training plans: reserved capacity (SageMaker training plans) as the domain sees them.

A team buys a plan (an instance type, a count, a window) from AWS; a job names it (``plan=``
on submit, or its team's default, TRAINBOT_TEAM_PLANS) and then runs on that reserved capacity
instead of on-demand. The rules here are pure: what a job may ask of a plan (checked at submit
and again at launch), and what the launcher does with a job of a plan at ``now``:

- the plan has not begun (scheduled, or its payment pending): the job **waits**, with the
  plan's start in its reason, and nothing is created;
- the plan is active with room for the job's instances: it **launches** on the plan (the
  create names the plan's ARN);
- the plan is active but full: the job **waits** until reserved instances free;
- the job cannot run on the plan at all (another instance type, more instances than the plan
  reserves, a max runtime past the plan's end, an ended or failed plan, no such plan): it is
  **refused**, or with ``plan_fallback=ondemand`` it runs on-demand instead (also when full).

SageMaker's own words (Scheduled, Active, TrainingPlanArn…) stay in the adapter; its states are
:class:`PlanState` here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from backend.domain.times import format_utc, parse_utc

# SageMaker's TrainingPlanName pattern (DescribeTrainingPlan's request).
PLAN_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,63}$")
# How long a launcher trusts the plans it read (one ListTrainingPlans a minute at most).
REFRESH = timedelta(minutes=1)
# SageMaker begins terminating the running instances of a plan's reserved capacity this long
# before its end ("You have full access to all reserved instances until 30 minutes before the
# Reserved Capacity end time": SageMaker Developer Guide, *Training plans utilization for
# SageMaker training jobs*): a job on the plan runs until then at most.
TERMINATION_LEAD = timedelta(minutes=30)
FALLBACK_ONDEMAND = "ondemand"
NO_PLAN = "none"  # ``plan=none``: on-demand, even when the team has a default plan


class PlanState(StrEnum):
    """A plan's state. SageMaker moves it, by time: pending (bought, payment not settled) →
    scheduled (paid, before its start) → active (in its window) → expired (after its end);
    failed: the purchase failed. Only an active plan launches jobs."""

    PENDING = "pending"
    SCHEDULED = "scheduled"
    ACTIVE = "active"
    EXPIRED = "expired"
    FAILED = "failed"


@dataclass(frozen=True)
class TrainingPlan:
    """One plan as the launcher last read it; ``in_use`` is SageMaker's count of its reserved
    instances running jobs (anyone's), ``total`` what it reserves."""

    name: str
    arn: str
    state: PlanState
    start: datetime | None
    end: datetime | None
    instance_type: str | None
    total: int
    in_use: int

    def free(self, own_in_use: int = 0) -> int:
        """Reserved instances free for a new job, given Trainbot's own running count (newer than
        SageMaker's, which the launcher may have read up to a minute ago)."""
        return max(0, self.total - max(self.in_use, own_in_use))


@dataclass(frozen=True)
class PlanVerdict:
    """What the launcher does with a job of a plan now: ``launch`` (on the plan's ``arn``),
    ``wait`` (``reason`` on its card), ``refuse`` (``reason``: fail it, or run on-demand)."""

    action: Literal["launch", "wait", "refuse"]
    reason: str = ""
    arn: str = ""
    full: bool = False  # waits because the plan's reserved instances are all in use

    def on_demand(self, fallback: bool) -> bool:
        """Whether a job with ``plan_fallback=ondemand`` (``fallback``) runs on-demand instead:
        when the plan refuses it (ended, or it never fits) or is full; never before its start."""
        return fallback and (self.action == "refuse" or self.full)


def parse_team_plans(text: str) -> dict[str, str]:
    """``TRAINBOT_TEAM_PLANS``: ``team=plan-name,...`` → {team: plan name}; ValueError naming
    the mistake."""
    plans: dict[str, str] = {}
    for part in text.replace(";", ",").split(","):
        if not part.strip():
            continue
        team, eq, plan = part.partition("=")
        team, plan = team.strip(), plan.strip()
        if not eq or not team or not plan:
            raise ValueError(f"{part.strip()!r} is not team=plan-name (e.g. nlp=p5-dec)")
        if not PLAN_NAME.match(plan):
            raise ValueError(f"{plan!r} is not a training plan name (letters, digits and single dashes, up to 64)")
        plans[team] = plan
    return plans


def plan_name_problem(value: str) -> str | None:
    """What is wrong with ``plan=<value>`` (None: nothing)."""
    if not PLAN_NAME.match(value):
        return f"{value[:60]!r} is not a training plan name (letters, digits and single dashes, up to 64)"
    return None


def when(moment: datetime, now: datetime) -> str:
    """``Tue 09:00 UTC`` within the coming week, ``Tue 02 Dec 09:00 UTC`` beyond it."""
    if timedelta(0) <= moment - now < timedelta(days=6):
        return moment.strftime("%a %H:%M UTC")
    return moment.strftime("%a %d %b %H:%M UTC")


def fit_problems(plan: TrainingPlan, instance_type: str, count: int, max_runtime_seconds: int, now: datetime) -> list[str]:
    """Why a job of ``count`` × ``instance_type`` that may run ``max_runtime_seconds`` can never
    run on ``plan`` (empty: it can, now or once the plan has room)."""
    name = plan.name
    if plan.state in (PlanState.EXPIRED, PlanState.FAILED) or (plan.end is not None and plan.end <= now):
        return [f"plan `{name}` has ended" if plan.state is not PlanState.FAILED else f"plan `{name}` failed (it reserves nothing)"]
    problems = []
    if plan.instance_type is not None and instance_type != plan.instance_type:
        problems.append(f"plan `{name}` reserves {plan.instance_type}, not {instance_type}: submit with instance={plan.instance_type}")
    if plan.total and count > plan.total:
        problems.append(f"plan `{name}` reserves {plan.total} instances; this job asks for {count}")
    stops = stops_jobs_at(plan)
    if plan.end is not None and stops is not None:
        # Not the end itself: SageMaker stops the plan's jobs TERMINATION_LEAD before it.
        earliest = max(now, plan.start) if plan.start is not None else now
        if earliest + timedelta(seconds=max_runtime_seconds) > stops:
            room = max(0, int((stops - earliest).total_seconds()))
            problems.append(
                f"plan `{name}` ends {when(plan.end, now)}: a max_runtime of {_hours(max_runtime_seconds)} would not finish "
                f"before it stops its jobs ({_minutes(TERMINATION_LEAD)} before its end: at most {_hours(room)} "
                f"from {'now' if earliest == now else 'its start'})"
            )
    return problems


def _minutes(span: timedelta) -> str:
    return f"{int(span.total_seconds()) // 60} minutes"


def launch_verdict(
    plan: TrainingPlan | None,
    name: str,
    *,
    instance_type: str,
    count: int,
    max_runtime_seconds: int,
    own_in_use: int,
    now: datetime,
) -> PlanVerdict:
    """What the launcher does now with a job of plan ``name`` (``plan``: as read; None: no
    such plan in the account and region)."""
    if plan is None:
        return PlanVerdict("refuse", f"no training plan named `{name}` in this account and region")
    problems = fit_problems(plan, instance_type, count, max_runtime_seconds, now)
    if problems:
        return PlanVerdict("refuse", "; ".join(problems))
    if plan.state in (PlanState.PENDING, PlanState.SCHEDULED) or (plan.start is not None and plan.start > now):
        start = f"starts {when(plan.start, now)}" if plan.start is not None else "has not started"
        return PlanVerdict("wait", f"waiting: plan `{name}` {start}")
    if plan.free(own_in_use) < count:
        used = max(plan.in_use, own_in_use)
        return PlanVerdict("wait", f"waiting: plan `{name}` is full ({used} of {plan.total} {plan.instance_type} in use)", full=True)
    return PlanVerdict("launch", arn=plan.arn)


def plan_of_arn(arn: str | None) -> str | None:
    """The plan name a training-plan ARN (``…:training-plan/<name>``) names."""
    if not arn or ":training-plan/" not in arn:
        return None
    return arn.rsplit("/", 1)[-1]


def stops_jobs_at(plan: TrainingPlan) -> datetime | None:
    """When SageMaker begins stopping the jobs running on ``plan``: TERMINATION_LEAD before its
    end (None: its end is unknown)."""
    return plan.end - TERMINATION_LEAD if plan.end is not None else None


def outlives(plan: TrainingPlan, started_at: datetime, max_runtime_seconds: int) -> bool:
    """Whether a job that started at ``started_at`` may still be running, within its max
    runtime, when SageMaker begins stopping the jobs on ``plan``."""
    stops = stops_jobs_at(plan)
    return stops is not None and started_at + timedelta(seconds=max_runtime_seconds) > stops


def end_warning_due(plan: TrainingPlan, *, started_at: datetime, max_runtime_seconds: int, now: datetime, ahead: timedelta) -> bool:
    """Whether a running job on ``plan`` is warned now: its max runtime reaches past the point
    where SageMaker stops the plan's jobs, that point is within ``ahead`` of the plan's end from
    now, and it has not come yet (after it the job's end tells the story)."""
    stops = stops_jobs_at(plan)
    if ahead <= timedelta(0) or stops is None or plan.end is None:
        return False
    return outlives(plan, started_at, max_runtime_seconds) and plan.end - ahead <= now < stops


def ended_by_plan(plan: TrainingPlan, ended_at: datetime) -> bool:
    """Whether a job on ``plan`` that ended (stopped or failed, not at Trainbot's request) at
    ``ended_at`` was ended by the plan's end: SageMaker was stopping the plan's jobs by then."""
    stops = stops_jobs_at(plan)
    return stops is not None and ended_at >= stops


def reserved_hours(plan: TrainingPlan, since: datetime, until: datetime) -> float:
    """Instance-hours ``plan`` reserves between ``since`` and ``until``: its instances times the
    part of its window inside that span (a failed purchase reserves nothing)."""
    if plan.state is PlanState.FAILED or plan.start is None or plan.end is None:
        return 0.0
    overlap = (min(plan.end, until) - max(plan.start, since)).total_seconds()
    return max(0.0, overlap) * plan.total / 3600


def _hours(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if rest >= 60 else f"{hours}h"


# --- the cached view (a small record, written by the launcher, read by /train plans) -------------


@dataclass(frozen=True)
class PlanBoard:
    """The plans as a launcher last read them (at ``fetched_at``), with Trainbot's own view:
    instances its running jobs use and jobs waiting, per plan name."""

    fetched_at: datetime
    plans: dict[str, TrainingPlan]
    own_in_use: dict[str, int]
    waiting: dict[str, int]

    def to_record(self) -> dict[str, Any]:
        return {
            "FetchedAt": format_utc(self.fetched_at),
            "Plans": {
                p.name: {
                    "Arn": p.arn,
                    "State": p.state.value,
                    "Start": format_utc(p.start) if p.start else None,
                    "End": format_utc(p.end) if p.end else None,
                    "InstanceType": p.instance_type,
                    "Total": p.total,
                    "InUse": p.in_use,
                }
                for p in self.plans.values()
            },
            "OwnInUse": dict(self.own_in_use),
            "Waiting": dict(self.waiting),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> PlanBoard | None:
        """The board a record holds; None when it holds none this version can read."""
        try:
            plans = {}
            for name, raw in (record.get("Plans") or {}).items():
                plans[name] = TrainingPlan(
                    name=name,
                    arn=str(raw["Arn"]),
                    state=PlanState(raw["State"]),
                    start=parse_utc(raw["Start"]) if raw.get("Start") else None,
                    end=parse_utc(raw["End"]) if raw.get("End") else None,
                    instance_type=raw.get("InstanceType") or None,
                    total=int(raw.get("Total") or 0),
                    in_use=int(raw.get("InUse") or 0),
                )
            return cls(
                fetched_at=parse_utc(record["FetchedAt"]),
                plans=plans,
                own_in_use={k: int(v) for k, v in (record.get("OwnInUse") or {}).items()},
                waiting={k: int(v) for k, v in (record.get("Waiting") or {}).items()},
            )
        except (KeyError, TypeError, ValueError):
            return None

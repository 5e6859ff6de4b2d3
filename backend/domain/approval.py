"""Approval holds: expensive work waits in status ``New`` until an admin approves it.

A held job carries an :class:`~backend.domain.model.Approval` in state ``pending``; the codec keeps it in the Queue
index's own ``held`` partition (never ``ready``), so no launcher ever sees it. An admin's
decision is one conditional write on the job's status and version: ``approved`` moves it to
``ready``, ``rejected`` moves it to ``Stopped`` with the reason. Either is audited in the job's
history; a second decision, or one on a job that has moved on, changes nothing.

Pure rules only: which submissions need approval (:func:`approval_reasons`), and the states of
a hold (the hold itself is part of the job: ``backend.domain.model.Approval``). No pydantic:
the launcher's and monitor's cold starts import this module without it.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum


class ApprovalState(StrEnum):
    PENDING = "pending"  # held: out of the launch queue until an admin decides
    APPROVED = "approved"  # released to the queue by ``decided_by``
    REJECTED = "rejected"  # stopped by ``decided_by``, with ``note`` as the reason


@dataclass(frozen=True)
class ApprovalRules:
    """When a submission needs an admin (0 / empty: that rule is off)."""

    instance_hours: float = 0.0  # above this many estimated instance-hours
    instance_types: Collection[str] = ()  # any job on one of these types
    sweep_size: int = 0  # sweeps of more jobs than this

    @property
    def enabled(self) -> bool:
        return bool(self.instance_hours or self.instance_types or self.sweep_size)


def approval_reasons(rules: ApprovalRules, *, instance_hours: float, instance_types: Collection[str], jobs: int) -> list[str]:
    """Why a submission of ``jobs`` jobs on ``instance_types``, estimated at ``instance_hours``,
    needs approval (empty: it does not)."""
    reasons = []
    if rules.instance_hours and instance_hours > rules.instance_hours:
        reasons.append(f"{instance_hours:,.1f} instance-hours is more than {rules.instance_hours:,g}")
    listed = sorted(set(instance_types) & set(rules.instance_types))
    if listed:
        reasons.append(f"{', '.join(listed)} needs approval")
    if rules.sweep_size and jobs > rules.sweep_size:
        reasons.append(f"a sweep of {jobs:,} jobs is more than {rules.sweep_size:,}")
    return reasons

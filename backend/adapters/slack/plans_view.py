"""``/train plans``: the team's training plans as Slack text (window, instance type, reserved vs
in use, jobs waiting), from the board the launcher last wrote (backend.services.plans)."""

from __future__ import annotations

from datetime import datetime

from backend.adapters.slack.render import esc
from backend.domain.plans import PlanBoard, PlanState, when

_STATE_WORDS = {
    PlanState.PENDING: "pending (payment not settled)",
    PlanState.SCHEDULED: "scheduled",
    PlanState.ACTIVE: "active",
    PlanState.EXPIRED: "ended",
    PlanState.FAILED: "failed",
}


def plans_text(board: PlanBoard | None, team_plans: list[str], now: datetime) -> str:
    """One line per plan, the user's team's default first; what to do when there is none."""
    if board is None or not board.plans:
        if team_plans:
            return f"Your team's plan is `{esc(team_plans[0])}`; Trainbot has not read it from SageMaker yet (the launcher does once a minute while a job needs it)."
        return "No training plans known. Buy one in SageMaker (training plans), then submit with `plan=<name>`."
    names = [*(n for n in team_plans if n in board.plans), *sorted(n for n in board.plans if n not in team_plans)]
    lines = [f"*Training plans* (read from SageMaker {when(board.fetched_at, now) if board.fetched_at <= now else 'just now'}):"]
    for name in names:
        plan = board.plans[name]
        used = max(plan.in_use, board.own_in_use.get(name, 0))
        window = (
            f"{when(plan.start, now)} – {when(plan.end, now)}" if plan.start is not None and plan.end is not None else "window unknown"
        )
        default = " (your team's default)" if name in team_plans else ""
        lines.append(
            f"• `{esc(name)}`{default}: {_STATE_WORDS[plan.state]}, {window}, {plan.instance_type or 'mixed types'}: "
            f"{used} of {plan.total} in use, {board.waiting.get(name, 0)} job(s) waiting"
        )
    return "\n".join(lines)

"""What every listener reads from Slack's payloads the same way: who is asking."""

from __future__ import annotations

from typing import Any

from backend.services.jobs import Actor


def actor_of(payload: dict[str, Any]) -> Actor:
    """Who sent ``payload``: a slash command names ``team_id``/``user_id`` at its top; an
    interaction (a button, a modal's submission) has ``user`` and ``team`` objects."""
    if "user_id" in payload:
        return Actor(team_id=str(payload.get("team_id") or ""), user_id=str(payload.get("user_id") or ""))
    user = payload.get("user") or {}
    team = (payload.get("team") or {}).get("id") or user.get("team_id", "")
    return Actor(team_id=str(team or ""), user_id=str(user.get("id") or ""))

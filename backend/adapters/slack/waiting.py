"""Block Kit for "why is it waiting": the reason on a status card, and `/train queue`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from backend.adapters.slack.render import esc, mention
from backend.domain.waiting import WaitReason, describe
from backend.services.queue import QueuePage

QUEUE_USAGE = "/train queue [instance=ml.p4d.24xlarge] [page=2]"


def with_wait_reason(message: dict[str, Any], reason: WaitReason | None, now: datetime) -> dict[str, Any]:
    """``message`` (a status card) with a "Waiting" section when the job is queued."""
    if reason is None:
        return message
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "*Waiting*\n" + "\n".join(f"• {line}" for line in describe(reason, now))}}
    blocks = list(message.get("blocks") or [])
    blocks.insert(min(1, len(blocks)), section)
    return {**message, "blocks": blocks}


def queue_page(page: QueuePage, now: datetime) -> dict[str, Any]:
    """The queue in launch order, one job a line with its reason, and how to see the next page."""
    where = f" for `{page.instance_type}`" if page.instance_type else ""
    held = _held_rows(page)
    if page.total == 0 and held:
        text = f"Nothing{where} is waiting to launch.\n" + held
        return {"text": text[:3000], "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}]}
    if page.total == 0:
        return {"text": f"The queue{where} is empty: nothing is waiting to launch."}
    rows = []
    for reason in page.reasons:
        lines = describe(reason, now)
        # The owner is whatever the entry point recorded (a CLI user too): shown through
        # render.mention, live only for a Slack user id, inert otherwise.
        owner = mention(reason.owner.split(":", 1)[-1])
        head = f"*{reason.order}.* `{esc(reason.job_id, 120)}` {reason.status.value} · {owner} · {esc(reason.instance_type, 40)}×{reason.instance_count}"
        rows.append(head + "\n      " + " · ".join(lines))
    header = f"*Queue{where}*: {page.total} job{'s' if page.total != 1 else ''} in launch order (page {page.page} of {page.pages})"
    footer = []
    if page.page < page.pages:
        more = f" instance={page.instance_type}" if page.instance_type else ""
        footer.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"next: `/train queue{more} page={page.page + 1}`"}]})
    text = header + "\n" + "\n".join(rows) + ("\n" + held if held else "")
    return {
        "text": text[:3000],
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": header}}]
        + [{"type": "section", "text": {"type": "mrkdwn", "text": row[:3000]}} for row in rows]
        + ([{"type": "section", "text": {"type": "mrkdwn", "text": held[:3000]}}] if held else [])
        + footer,
    }


def _held_rows(page: QueuePage) -> str:
    """The jobs waiting for an admin's approval (issue 22), oldest first; '' when none."""
    if not page.held_total:
        return ""
    lines = [f"*Waiting for an admin's approval*: {page.held_total} job{'s' if page.held_total != 1 else ''}"]
    for job in page.held:
        why = "; ".join(job.approval.reasons) if job.approval is not None else ""
        lines.append(f"• `{job.job_id}` · {mention(job.owner.user_id)} · {job.job_args.instance_type}×{job.job_args.instance_count} · {why[:200]}")
    if page.held_total > len(page.held):
        lines.append(f"… and {page.held_total - len(page.held)} more")
    return "\n".join(lines)

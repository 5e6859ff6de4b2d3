"""Approve / Reject on a held job's approval card, and the reject reason modal (issue 14).

Admins get the card by direct message (each of ``TRAINBOT_ADMIN_USERS``) from the Slack
notifier, when it delivers the change that held the job (:mod:`backend.adapters.slack.notifier`),
whichever way the job came in. A press is acked at once; the decision runs lazily and is one
conditional write (:class:`backend.services.budget.Approvals`): a non-admin's press, a forged
button value, a second press or a press on a job that moved on changes nothing and gets a polite
answer. Reject opens a modal first (in the ack: a trigger id lives 3 seconds) for the reason,
which the owner reads in the job's thread.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger
from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from backend.adapters.slack import render
from backend.adapters.slack.client import within_ack
from backend.errors import NotAuthorized
from bot.listeners.errors import answers_errors, message_for
from bot.listeners.payloads import actor_of
from bot.usecases import BotService

logger = Logger(service="trainbot", child=True)


def register(app: App) -> None:
    app.action(render.APPROVE_ACTION)(ack=acknowledge, lazy=[approve])
    app.action(render.REJECT_ACTION)(open_reject_modal)
    app.view(render.REJECT_VIEW)(ack=acknowledge, lazy=[reject])


def acknowledge(ack: Ack) -> None:
    ack()


def _job_id(action: dict[str, Any]) -> str:
    return str(action.get("value") or "")[:100]


@answers_errors
def approve(action: dict[str, Any], body: dict[str, Any], context: BoltContext, respond: Respond) -> None:
    """The owner's thread is told by the approval's delivery (the outbox), not here: a reply
    Slack refuses now is sent later, and the admin's answer never depends on it."""
    bot: BotService = context["bot"]
    decision = bot.approve(_job_id(action), actor_of(body))
    respond(response_type="ephemeral", replace_original=False, text=render.decided("approve", decision.job, decision.changed))


def open_reject_modal(ack: Ack, action: dict[str, Any], body: dict[str, Any], context: BoltContext, client: WebClient) -> None:
    """Admins get the reason modal; anyone else a polite no, and nothing opens."""
    bot: BotService = context["bot"]
    ack()
    actor = actor_of(body)
    if not bot.settings.is_admin(actor.user_id):
        _tell(client, body, message_for(NotAuthorized("only an admin may approve or reject held jobs")))
        return
    channel = str((body.get("channel") or {}).get("id") or "")
    within_ack(client).views_open(trigger_id=body["trigger_id"], view=render.reject_modal(_job_id(action), channel))


def _tell(client: WebClient, body: dict[str, Any], text: str) -> None:
    url = body.get("response_url")
    if url:
        from slack_sdk.webhook import WebhookClient

        WebhookClient(url, timeout=2).send(text=text, response_type="ephemeral", replace_original=False)
        return
    channel = (body.get("channel") or {}).get("id")
    user = (body.get("user") or {}).get("id")
    if channel and user:
        within_ack(client).chat_postEphemeral(channel=channel, user=user, text=text)


@answers_errors
def reject(view: dict[str, Any], body: dict[str, Any], context: BoltContext, client: WebClient) -> None:
    bot: BotService = context["bot"]
    actor = actor_of(body)
    try:
        job_id = str(json.loads(view.get("private_metadata") or "{}").get("job_id") or "")
    except ValueError:
        job_id = ""
    values = (view.get("state") or {}).get("values", {})
    reason = str(((values.get("reason") or {}).get("value") or {}).get("value") or "")
    decision = bot.reject(job_id, actor, reason)
    # A modal has no response_url: the admin reads the outcome where the card was.
    channel = str(json.loads(view.get("private_metadata") or "{}").get("channel") or "") or actor.user_id
    client.chat_postEphemeral(channel=channel, user=actor.user_id, text=render.decided("reject", decision.job, decision.changed))

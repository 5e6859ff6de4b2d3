"""Buttons: Stop / Retry / View logs on a job's card, Next page on a list, and the large-sweep
confirmation. Each is acked at once; the work runs lazily and is authorized exactly like the
matching command (the job service checks owner-or-admin for stop and retry)."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt import Ack, App, BoltContext, Respond
from slack_sdk import WebClient

from backend.adapters.slack import render
from backend.domain.status import JobStatus
from backend.errors import InvalidRequest
from bot.listeners.commands import root_poster, sweep_registered
from bot.listeners.errors import answers_errors
from bot.listeners.payloads import actor_of
from bot.usecases import BotService


def register(app: App) -> None:
    app.action(render.STOP_ACTION)(ack=acknowledge, lazy=[stop_job])
    app.action(render.RETRY_ACTION)(ack=acknowledge, lazy=[retry_job])
    app.action(render.STOP_SWEEP_ACTION)(ack=acknowledge, lazy=[stop_sweep])
    app.action(render.LOGS_ACTION)(acknowledge)  # a link button: Slack opens the URL itself
    app.action(render.LIST_MORE_ACTION)(ack=acknowledge, lazy=[next_page])
    app.action(render.SWEEP_CONFIRM_ACTION)(ack=acknowledge, lazy=[confirm_sweep])
    app.action(render.SWEEP_CANCEL_ACTION)(ack=acknowledge, lazy=[cancel_sweep])


def acknowledge(ack: Ack) -> None:
    ack()


def value_of(action: dict[str, Any]) -> str:
    return str(action.get("value") or "")


def _say(respond: Respond, **message: Any) -> None:
    respond(response_type="ephemeral", replace_original=False, **render.fit_answer(message))


@answers_errors
def stop_job(action: dict[str, Any], body: dict[str, Any], context: BoltContext, respond: Respond) -> None:
    bot: BotService = context["bot"]
    _say(respond, text=render.changed("stop", bot.stop(value_of(action), actor_of(body))))


@answers_errors
def stop_sweep(action: dict[str, Any], body: dict[str, Any], context: BoltContext, respond: Respond) -> None:
    bot: BotService = context["bot"]
    sweep_id = value_of(action)
    _say(respond, text=render.sweep_stopped(sweep_id, *bot.stop_sweep(sweep_id, actor_of(body))))


@answers_errors
def retry_job(action: dict[str, Any], body: dict[str, Any], context: BoltContext, respond: Respond) -> None:
    bot: BotService = context["bot"]
    _say(respond, text=render.changed("retry", bot.retry(value_of(action), actor_of(body))))


@answers_errors
def next_page(action: dict[str, Any], body: dict[str, Any], context: BoltContext, respond: Respond) -> None:
    bot: BotService = context["bot"]
    try:
        state = json.loads(value_of(action))
        scope = "all" if state.get("scope") == "all" else "mine"
        status = JobStatus(state["status"]) if state.get("status") else None
        jobs, cursor = bot.list_jobs(actor_of(body), scope, status, state.get("cursor"))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InvalidRequest(["that page is no longer available; run /train list again"]) from None
    respond(replace_original=True, **render.fit_answer(render.list_page(jobs, scope=scope, status=status, cursor=cursor)))


@answers_errors
def confirm_sweep(
    action: dict[str, Any], body: dict[str, Any], context: BoltContext, respond: Respond, client: WebClient
) -> None:
    bot: BotService = context["bot"]
    outcome = bot.submissions.confirm_sweep(value_of(action), actor_of(body), post_root=root_poster(client))
    sweep_registered(bot, client, outcome, lambda **message: respond(replace_original=True, **message))


@answers_errors
def cancel_sweep(action: dict[str, Any], body: dict[str, Any], context: BoltContext, respond: Respond) -> None:
    bot: BotService = context["bot"]
    bot.submissions.cancel_sweep(value_of(action), actor_of(body))
    respond(replace_original=True, text=render.sweep_cancelled())

"""The submit modal (`/train submit` with no arguments): the same fields as the command.

The ack validates and, on a mistake, answers ``response_action: errors`` so Slack shows the
message under the field at fault; the lazy listener registers the job. The view's id is the
idempotency key (one modal, one job, however often the submission is delivered).
"""

from __future__ import annotations

import json
import re
from typing import Any

from slack_bolt import Ack, App, BoltContext
from slack_sdk import WebClient

from backend.adapters.slack import render
from backend.domain.spec import BadCommand
from bot import grammar
from bot.listeners.errors import answers_errors
from bot.listeners.payloads import actor_of
from bot.usecases import BotService

_BLOCKS = {key for key, *_ in render.MODAL_FIELDS}


def register(app: App) -> None:
    app.view(render.SUBMIT_VIEW)(ack=acknowledge, lazy=[submit])


def fields_of(view: dict[str, Any]) -> dict[str, str]:
    """The modal's inputs as grammar fields (``hp`` lines become ``hp.<name>``)."""
    fields: dict[str, str] = {}
    problems = []
    for block_id, inputs in (view.get("state") or {}).get("values", {}).items():
        value = str((inputs.get("value") or {}).get("value") or "").strip()
        if not value or block_id not in _BLOCKS:
            continue
        if block_id == "hp":
            for line in value.splitlines():
                if not line.strip():
                    continue
                key, eq, item = line.strip().partition("=")
                if not eq or not key.strip():
                    problems.append(f"hp: {line.strip()[:60]!r} is not name=value")
                else:
                    fields[f"hp.{key.strip()}"] = item.strip()
        else:
            fields[block_id] = grammar.normalize(value)
    if problems:
        raise BadCommand(problems)
    return fields


_LABELS = {key: label for key, label, *_ in render.MODAL_FIELDS}
_MISSING = re.compile(r"^(\w+) is missing: ")
_LABELLED = re.compile(r"^(\w+)(?:\.[\w.-]+)?: (.*)$", re.S)
# Keys that are command syntax, not English words ("spot", "volume" read well as they are).
_KEY = re.compile(r"\b(" + "|".join(sorted((k for k in _LABELS if "_" in k), key=len, reverse=True)) + r")\b")


def _in_form_words(message: str) -> str:
    """A problem told in command syntax, in the form's words: ``max_wait`` is "Max wait
    (spot)", ``hp.<name>=<value>`` a line of Hyperparameters, no ``key=value`` examples."""
    message = re.sub(r"\be\.g\. hp\.\S+", "e.g. a line lr=1e-5", message)
    message = re.sub(r"\b(\w+)=(true|false)\b", lambda m: f"{_LABELS.get(m[1], m[1])} {m[2]}", message)
    message = _KEY.sub(lambda m: f"“{_LABELS[m[1]]}”", message)
    return message[:1].upper() + message[1:]


def _errors_by_block(problems: list[str]) -> dict[str, str]:
    """Each problem under the field it is about (``response_action: errors`` is keyed by
    block id), in the form's words. A problem naming no field goes under the first field it
    mentions, else under Name."""
    errors: dict[str, str] = {}
    for problem in problems:
        missing, labelled = _MISSING.match(problem), _LABELLED.match(problem)
        if missing and missing[1] in _LABELS:
            block, text = missing[1], f"{_LABELS[missing[1]]} is required."
        elif labelled and labelled[1] in _LABELS:
            block, text = labelled[1], _in_form_words(labelled[2])
        else:
            mentioned = _KEY.search(problem)
            block, text = (mentioned[1] if mentioned else "name"), _in_form_words(problem)
        errors[block] = (errors.get(block, "") + " " + text).strip()[:150]
    return errors


def channel_of(view: dict[str, Any]) -> str:
    try:
        return str(json.loads(view.get("private_metadata") or "{}").get("channel") or "")
    except ValueError:
        return ""


def acknowledge(ack: Ack, view: dict[str, Any], context: BoltContext) -> None:
    bot: BotService = context["bot"]
    try:
        bot.submissions.spec(fields_of(view))
    except BadCommand as exc:
        ack(response_action="errors", errors=_errors_by_block(exc.problems))
        return
    ack()


@answers_errors
def submit(view: dict[str, Any], body: dict[str, Any], context: BoltContext, client: WebClient) -> None:
    bot: BotService = context["bot"]
    actor, channel = actor_of(body), channel_of(view)
    try:
        fields = fields_of(view)
        registered = bot.submissions.submit(fields, actor, token=f"view:{view.get('id')}", channel_id=channel or None)
    except BadCommand:
        return  # the ack has shown the errors in the modal already
    if channel:
        text = render.submitted(bot.get(registered.job.job_id), registered.created, bot.estimate([registered.job]))
        _tell_submitter(client, channel, actor.user_id, text)


# Where Slack refuses an ephemeral answer: the bot is not in the channel (chat:write.public
# covers chat.postMessage, not chat.postEphemeral) or may not see it.
_NO_EPHEMERAL = frozenset({"not_in_channel", "channel_not_found"})


def _tell_submitter(client: WebClient, channel: str, user: str, text: str) -> None:
    """The outcome, as an ephemeral message where the modal was opened; where the bot may not
    post one there, in the app's DM with the user (a modal has no response_url). The job is
    registered and its admins asked by then (the outbox): only the answer's way changes."""
    from slack_sdk.errors import SlackApiError

    try:
        client.chat_postEphemeral(channel=channel, user=user, text=text)
    except SlackApiError as exc:
        if (exc.response.get("error") if exc.response is not None else None) not in _NO_EPHEMERAL:
            raise
        client.chat_postMessage(channel=user, text=text)

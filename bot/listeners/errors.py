"""Typed errors to polite Slack answers: the one place that decides what a user reads when
something did not work.

:func:`message_for` maps each :mod:`backend.errors` type (and a refused Slack call) to a
message. The ack phase's one ``@app.error`` handler uses it for the HTTP answer; lazy
listeners (whose exceptions bolt only logs) are wrapped in :func:`answers_errors`, which sends
the same message with ``respond`` (or as an ephemeral message when there is no response_url).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from slack_bolt import App, BoltContext, BoltResponse

from backend.adapters.slack import render
from backend.domain.spec import BadCommand
from backend.errors import (
    AmbiguousName,
    ConfigError,
    IllegalTransition,
    InvalidRequest,
    JobNotFound,
    NotAuthorized,
    NotifierUnavailable,
    StoreUnavailable,
    TrainbotError,
)

logger = Logger(service="trainbot", child=True)

def message_for(exc: Exception) -> str:
    """What the user reads for ``exc``."""
    from slack_sdk.errors import SlackApiError

    # The services' own errors: imported here, not with the listeners, so that an ack answered
    # from the grammar alone (help) does not load the services.
    from backend.services.jobs import LaunchInFlight, RejectedByAdmin
    from backend.services.presets import PresetNotYours
    from backend.services.submit import SweepAlreadyConfirmed, SweepExpired

    if isinstance(exc, BadCommand):
        return render.problems_text(exc.problems, exc.usage)
    if isinstance(exc, SweepExpired):
        return render.sweep_expired()
    if isinstance(exc, SweepAlreadyConfirmed):
        return render.sweep_already_confirmed()
    if isinstance(exc, RejectedByAdmin):
        return render.retry_rejected(exc.job_id, exc.admin, exc.note)
    if isinstance(exc, LaunchInFlight):
        return render.retry_too_soon(exc.job_id, exc.when)
    if isinstance(exc, InvalidRequest):
        return render.problems_text(exc.problems)
    if isinstance(exc, JobNotFound):
        return render.not_found(exc.job_id)
    if isinstance(exc, AmbiguousName):
        return render.ambiguous_name(exc.name, exc.job_ids)
    if isinstance(exc, PresetNotYours):
        return render.preset_not_yours(exc.name, exc.creator)
    if isinstance(exc, NotAuthorized):
        return render.not_authorized(str(exc))
    if isinstance(exc, IllegalTransition):
        action = "retry" if exc.to_status == "Retrying" else "stop"
        return render.illegal(action, exc.job_id, exc.from_status)
    if isinstance(exc, (StoreUnavailable, NotifierUnavailable, ConfigError)):
        return render.unavailable()
    if isinstance(exc, SlackApiError):
        error = exc.response.get("error") if exc.response is not None else ""
        if error in ("channel_not_found", "not_in_channel"):
            return ":speech_balloon: I can't post in this channel yet: invite me (`/invite @Trainbot`) and try again."
        return render.oops()
    return render.oops()


def answers_errors(func: Callable[..., None]) -> Callable[..., None]:
    """Wrap a lazy listener: typed errors become a polite ephemeral answer; anything else gets
    a generic apology and is re-raised, so bolt logs it with its traceback."""

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> None:
        try:
            func(**kwargs)
        except TrainbotError as exc:
            logger.info("request refused", extra={"error": type(exc).__name__, "detail": str(exc)})
            _tell(kwargs, message_for(exc))
        except Exception as exc:
            _tell(kwargs, message_for(exc))
            raise

    return wrapper


def _tell(kwargs: dict[str, Any], text: str) -> None:
    respond = kwargs.get("respond")
    body = kwargs.get("body") or {}
    if respond is not None and (body.get("response_url") or body.get("response_urls")):
        respond(text=text, response_type="ephemeral", replace_original=False)
        return
    client, view = kwargs.get("client"), body.get("view") or {}
    try:
        channel = json.loads(view.get("private_metadata") or "{}").get("channel")
    except ValueError:
        channel = None
    user = (body.get("user") or {}).get("id")
    if client is not None and channel and user:
        client.chat_postEphemeral(channel=channel, user=user, text=text)


# Set on a request's context when its ack failed: bolt starts a listener's lazy functions even
# then, and the lazy runner (bot.lazy.SignedLazyRunner) starts none for such a request.
ACK_FAILED = "trainbot_ack_failed"


def handle_error(
    error: Exception, body: dict[str, Any], logger: logging.Logger, context: BoltContext | None = None
) -> BoltResponse:
    """The app's one error handler (ack phase): a 200 with a polite answer, so Slack shows the
    user a message instead of "dispatch_failed". That answer is the request's last: the user
    reads that it did not work (a limit no instance type could meet, the store unavailable), so
    its lazy part must not do it anyway, nor answer a second time (:data:`ACK_FAILED`)."""
    if context is not None:
        context[ACK_FAILED] = True
    if isinstance(error, TrainbotError):
        logger.info(f"request refused: {type(error).__name__}: {error}")
    else:
        logger.exception(f"listener failed: {error}")
    return refusal(body, message_for(error))


def refusal(body: dict[str, Any], text: str) -> BoltResponse:
    """A polite "no" as the HTTP answer itself, in the form this kind of request shows: under
    the modal's first field, as an ephemeral message for a command, and for a button (whose
    HTTP body Slack ignores) through its response_url."""
    if body.get("type") == "view_submission":
        payload: dict[str, Any] = {"response_action": "errors", "errors": {"name": text[:150]}}
    elif body.get("type") == "block_actions":
        payload = {}
        _respond_quietly(body.get("response_url"), text)
    else:
        payload = {"response_type": "ephemeral", "text": text}
    return BoltResponse(status=200, body=json.dumps(payload) if payload else "", headers={"content-type": "application/json"})


def _respond_quietly(response_url: str | None, text: str) -> None:
    if not response_url:
        return
    from slack_sdk.webhook import WebhookClient

    WebhookClient(response_url, timeout=2).send(text=text, response_type="ephemeral", replace_original=False)


def register(app: App) -> None:
    app.error(handle_error)

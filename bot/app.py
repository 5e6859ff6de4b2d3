"""The bolt App, built once per cold start from the settings and the composition root.

- ``process_before_response=True``: on FaaS nothing may run after the HTTP answer, so acks
  answer and lazy listeners (fresh invocations of this same function) do the work.
- No ``auth.test`` at cold start or per request: ``authorize`` answers from configuration
  (the bot token is known; the workspace is ``SLACK_TEAM_ID``).
- Signature verification stays on, behind the handler's own check of the raw event
  (:mod:`bot.authenticity`: signature, timestamp, body shape), which runs before bolt parses
  anything, so what reaches this app is signed by Slack and readable. It is bolt's check, except
  that a lazy self-invocation is verified by our own HMAC (it may arrive after Slack's
  five-minute window, and bolt's check would drop it silently).
- A gate in front of every listener refuses other workspaces and users outside
  ``TRAINBOT_ALLOWED_USERS`` politely, before anything is read or written.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_bolt.middleware.request_verification import RequestVerification

from backend.adapters.slack import render
from backend.adapters.slack.client import web_client
from backend.adapters.slack.secrets import SlackCredentials, slack_credentials
from bot.authenticity import lazy_key, lazy_refusal
from bot.listeners import register_all
from bot.listeners.errors import refusal
from bot.listeners.payloads import actor_of
from bot.usecases import BotService


class _EnvironmentTokenNote(logging.Filter):
    """bolt reads ``SLACK_BOT_TOKEN`` from the environment by itself when no token is given (we
    give none: ``authorize`` hands each request its token) and, given a client too, warns at
    every cold start that it is unused. Where the token is in the environment (local mode, the
    tests) that note is about bolt's own default, never about our wiring: it is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


# bolt's loggers take their level, handlers and filters from this one (not from the root's
# level, which bolt copies otherwise, overriding a level set on ``slack_bolt``).
BOLT_LOGGER = logging.getLogger("trainbot.bolt")
if not any(isinstance(f, _EnvironmentTokenNote) for f in BOLT_LOGGER.filters):
    BOLT_LOGGER.addFilter(_EnvironmentTokenNote())


def create_app(container, credentials: SlackCredentials | None = None) -> App:
    settings = container.settings
    credentials = credentials or slack_credentials(settings)
    service = BotService(container)

    def authorize(enterprise_id: str | None, team_id: str | None, user_id: str | None) -> AuthorizeResult:
        # A single-workspace app: the token comes from configuration, never from auth.test.
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, user_id=user_id, bot_token=credentials.bot_token)

    app = App(
        # Named here: without a name bolt takes its caller's file name from inspect.stack(),
        # which reads the source file of every frame on the stack at each cold start.
        name="trainbot",
        signing_secret=credentials.signing_secret,
        # No token on the client: ``authorize`` gives each request its own (bolt builds each
        # request's client from this one's URL, timeout and retry handlers); a token here too
        # is ignored, with a warning at every cold start.
        client=web_client(settings, purpose="bot", tokenless=True),
        authorize=authorize,
        logger=BOLT_LOGGER,
        process_before_response=True,
        # url_verification is for the Events API, which Trainbot does not subscribe to.
        url_verification_enabled=False,
        request_verification_enabled=False,  # verify_request below: bolt's, or ours for lazy runs
    )
    slack_check = RequestVerification(credentials.signing_secret)
    own_key = lazy_key(credentials.signing_secret)

    @app.middleware
    def verify_request(req: BoltRequest, resp: BoltResponse, next) -> Any:
        if req.lazy_only:
            event = req.context.get("lambda_request") or {}
            if lazy_refusal(event, own_key) is None:
                return next()
            return BoltResponse(status=401, body="")
        return slack_check.process(req=req, resp=resp, next=next)

    @app.middleware
    def gate(context, body: dict[str, Any], next) -> Any:
        """Refuse other workspaces and users not allowed; hand listeners the bot service.

        The identity checked is the one listeners act as (:func:`actor_of`: the payload's team
        and user), never bolt's ``context.team_id``, which for a modal is the installing team:
        a job must never be registered for an owner the gate did not check."""
        actor = actor_of(body)
        if settings.slack_team_id and actor.team_id != settings.slack_team_id:
            return refusal(body, render.refused_team())
        if not actor.user_id or not settings.is_allowed(actor.user_id):
            return refusal(body, render.refused_user())
        context["bot"] = service
        return next()

    register_all(app)
    return app

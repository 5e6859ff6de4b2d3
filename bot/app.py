"""The bolt App, built once per cold start from the settings and the composition root.

- ``process_before_response=True``: on FaaS nothing may run after the HTTP answer, so acks
  answer and lazy listeners (fresh invocations of this same function) do the work.
- No ``auth.test`` at cold start or per request: ``authorize`` answers from configuration
  (the bot token is known; the workspace is ``SLACK_TEAM_ID``).
- Signature verification stays on (bolt's default), behind the handler's own check of the raw
  event (:mod:`bot.authenticity`: signature, timestamp, body shape), which runs before bolt
  parses anything, so what reaches this app is signed by Slack and readable.
- A gate in front of every listener refuses other workspaces and users outside
  ``TRAINBOT_ALLOWED_USERS`` politely, before anything is read or written.
"""

from __future__ import annotations

import json
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.authorization import AuthorizeResult

from backend.adapters.slack import render
from bot.listeners import register_all
from backend.adapters.slack.secrets import SlackCredentials, slack_credentials
from backend.adapters.slack.client import web_client
from bot.usecases import BotService


def create_app(container, credentials: SlackCredentials | None = None) -> App:  # noqa: ANN001 - Container
    settings = container.settings
    credentials = credentials or slack_credentials(settings)
    service = BotService(container)

    def authorize(enterprise_id: str | None, team_id: str | None, user_id: str | None) -> AuthorizeResult:
        # A single-workspace app: the token comes from configuration, never from auth.test.
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, user_id=user_id, bot_token=credentials.bot_token)

    app = App(
        signing_secret=credentials.signing_secret,
        client=web_client(settings, purpose="bot", token=credentials.bot_token),
        authorize=authorize,
        process_before_response=True,
        # url_verification is for the Events API, which Trainbot does not subscribe to.
        url_verification_enabled=False,
    )

    @app.middleware
    def gate(context, body: dict[str, Any], next) -> Any:  # noqa: A002, ANN001 - bolt's names
        """Refuse other workspaces and users not allowed; hand listeners the bot service."""
        if settings.slack_team_id and context.team_id != settings.slack_team_id:
            return refuse(body, render.refused_team())
        if not context.user_id or not settings.is_allowed(context.user_id):
            return refuse(body, render.refused_user())
        context["bot"] = service
        return next()

    register_all(app)
    return app


def refuse(body: dict[str, Any], text: str) -> BoltResponse:
    """A polite refusal as the HTTP answer itself: nothing is read, written or posted."""
    if body.get("type") == "view_submission":
        payload: dict[str, Any] = {"response_action": "errors", "errors": {"name": text[:150]}}
    elif body.get("type") == "block_actions":
        # Slack ignores a button's HTTP body; the response_url is the only way to say no.
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

"""The bot's Lambda entry (``bot.handler.handler`` in template.yaml): a Function URL event in,
bolt's answer out. Wiring happens once per cold start, on the first event.

Authenticity comes first: the raw event's Slack signature, timestamp and body shape are checked
(:mod:`bot.authenticity`) before bolt parses anything, so an unsigned, stale or malformed
request is a plain 401 that reads and writes nothing, and never an exception.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from bot.authenticity import refusal

UNAUTHORIZED = {"statusCode": 401, "body": "", "headers": {"content-type": "text/plain"}}


@dataclass(frozen=True)
class _Wired:
    slack_handler: Any  # slack_bolt.adapter.aws_lambda.SlackRequestHandler
    signing_secret: str


_wired: _Wired | None = None


def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    wired = _wiring()
    why = refusal(event, wired.signing_secret, time.time())
    if why is not None:
        _log_refusal(why)
        return dict(UNAUTHORIZED)
    return wired.slack_handler.handle(event, context)


def _wiring() -> _Wired:
    global _wired
    if _wired is None:
        from slack_bolt.adapter.aws_lambda import SlackRequestHandler

        from backend.adapters.slack.secrets import slack_credentials
        from backend.bootstrap import build
        from backend.config import Settings
        from bot.app import create_app

        container = build(Settings.from_env())
        credentials = slack_credentials(container.settings)
        _wired = _Wired(SlackRequestHandler(create_app(container, credentials)), credentials.signing_secret)
    return _wired


def _log_refusal(why: str) -> None:
    from aws_lambda_powertools import Logger

    # The reason only: never the body or headers an unauthenticated caller chose.
    Logger(service="trainbot", child=True).info("request refused (401)", extra={"reason": why})


def reset() -> None:
    """Forget the wiring, as a new cold start would (tests and local mode change the env)."""
    global _wired
    _wired = None

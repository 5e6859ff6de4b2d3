"""The bot's Lambda entry (``bot.handler.handler`` in template.yaml): a Function URL event in,
bolt's answer out. Wiring happens once per cold start, on the first event."""

from __future__ import annotations

from typing import Any

_handler: Any = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _slack_handler().handle(event, context)


def _slack_handler() -> Any:
    global _handler
    if _handler is None:
        from slack_bolt.adapter.aws_lambda import SlackRequestHandler

        from backend.bootstrap import build
        from backend.config import Settings
        from bot.app import create_app

        _handler = SlackRequestHandler(create_app(build(Settings.from_env())))
    return _handler


def reset() -> None:
    """Forget the wiring, as a new cold start would (tests and local mode change the env)."""
    global _handler
    _handler = None

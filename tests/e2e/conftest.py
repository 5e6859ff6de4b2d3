"""Fixtures for the end-to-end tests: the bot behind its template handler, the Slack stand-in
(defined once in tests/bot_fixtures.py, which the deploy recordings share)."""

from tests.bot_fixtures import bot_env, slack

__all__ = ["bot_env", "slack"]

"""What the bot's first request does not pay for (issue 26, "Cold start within the ack"). The
figures are bench/cold_start.py's; these tests only keep each saving from coming back."""

from __future__ import annotations

import inspect

import pytest

from backend.adapters.slack.secrets import SlackCredentials
from backend.bootstrap import build
from backend.config import Settings
from tests.fakes.memory_store import MemoryJobStore


def _container():
    settings = Settings(JOBS_TABLE_NAME="trainbot-jobs", SLACK_SIGNING_SECRET="s", SLACK_BOT_TOKEN="xoxb-t")
    return build(settings, store_override=MemoryJobStore(), notifiers=lambda store: [])


def test_the_bolt_app_is_named_so_bolt_never_reads_the_call_stack_to_name_it(monkeypatch):
    from bot.app import APP_NAME, create_app

    def refuse(*args, **kwargs):
        raise AssertionError("inspect.stack() reads the source of every frame on the stack")

    monkeypatch.setattr(inspect, "stack", refuse)
    app = create_app(_container(), SlackCredentials("s", "xoxb-t"))
    assert app.name == APP_NAME


@pytest.mark.parametrize("name", ["trainbot", "trainbot.bolt"])
def test_the_apps_logger_is_outside_powertools_and_bolts_own_so_nothing_is_logged_twice(name):
    from bot.app import APP_NAME

    assert name != APP_NAME and not APP_NAME.startswith(name + ".")

"""What the bot's first request does not pay for (issue 26, "Cold start within the ack"). The
figures are bench/cold_start.py's; these tests only keep each saving from coming back."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend.adapters.slack.secrets import SlackCredentials
from backend.bootstrap import build
from backend.config import Settings
from tests.fakes.memory_store import MemoryJobStore

ROOT = Path(__file__).resolve().parents[3]


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


_FIRST_REQUEST = """
import json, sys
from infra.local.standins.lambda_invoke import lambda_context
from infra.local.standins.slack_signing import signed_headers, slash_command_body
from tests.fixtures import samples
import bot.handler

body = slash_command_body(text=sys.argv[1], user_id="U1", team_id="T1", channel_id="C1")
event = samples.function_url_event(body, signed_headers("8f14e45fceea167a5a36dedd4bea2543", body))
answer = bot.handler.handler(event, lambda_context("trainbot-bot"))
print(json.dumps({"answer": answer, "modules": sorted(sys.modules)}))
"""

# What the container brings: the store, the services and the Slack notifier.
_WIRING = ("backend.bootstrap", "backend.adapters.dynamo", "backend.services.submit", "backend.services.budget",
           "backend.adapters.slack.notifier")


def _first_request(text: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLACK_", "TRAINBOT_", "JOBS_", "NOTIFY_"))}
    env.update(JOBS_TABLE_NAME="trainbot-jobs", SLACK_SIGNING_SECRET="8f14e45fceea167a5a36dedd4bea2543", SLACK_BOT_TOKEN="xoxb-t",
               SLACK_API_URL="http://127.0.0.1:9/api/", AWS_REGION="us-east-1", POWERTOOLS_METRICS_DISABLED="true")
    done = subprocess.run([sys.executable, "-c", _FIRST_REQUEST, text], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_first_train_help_is_answered_without_wiring_the_store_or_the_services():
    first = _first_request("help")
    assert first["answer"]["statusCode"] == 200 and "/train submit" in first["answer"]["body"]
    assert [m for m in _WIRING if m in first["modules"]] == []


def test_the_first_train_help_imports_neither_pydantic_nor_a_model():
    """Settings are plain Python and the listeners take the models where a job is read or a
    chart asked for: the help's ack (and its cold start) import no pydantic, nor boto3 of its
    own (bolt's Lambda adapter imports it, as the bare app's does)."""
    modules = _first_request("help")["modules"]
    assert [m for m in modules if m.split(".")[0] in ("pydantic", "pydantic_core")] == []
    assert [m for m in modules if m in ("backend.domain.model", "backend.domain.history", "backend.domain.charts")] == []
    assert "aws_lambda_powertools.utilities.parameters" not in modules


def test_the_bots_container_is_wired_on_the_first_use_of_anything_but_its_settings(monkeypatch):
    import backend.bootstrap
    from bot.handler import _Deferred

    built: list = []
    monkeypatch.setattr(backend.bootstrap, "build", lambda settings: built.append(settings) or _container())
    settings = Settings(JOBS_TABLE_NAME="trainbot-jobs")
    deferred = _Deferred(settings)
    assert deferred.settings is settings and built == []
    assert deferred.submissions is deferred.submissions and built == [settings]  # once

"""Fixtures for the bot's integration and e2e tests: the Slack stand-in, the Lambda Invoke
stand-in, and a driver that signs requests as Slack does and sends them, as Lambda Function
URL events, through the handler `template.yaml` declares for ``BotFunction``.

The fixtures (``bot_env``, ``slack``) reach the e2e tests through ``tests/e2e/conftest.py``;
constants and helpers are imported by name.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from infra.local.standins.lambda_invoke import LambdaStandIn, lambda_context
from infra.local.standins.slack import SlackStandIn
from infra.local.standins.slack_signing import lambda_url_event, signed_headers, slash_command_body

SECRET = "8f14e45fceea167a5a36dedd4bea2543"  # shaped like a real one: 32 hex characters
TOKEN = "xoxb-e2e-token"
TEAM = "T0LOCAL"
CHANNEL = "C0TRAIN"
USER = "U0ALICE"
OTHER = "U0BOB"
ADMIN = "U0ADMIN"
FUNCTION = "trainbot-bot"
CHART_FUNCTION = "trainbot-chart"

GOOD_SUBMIT = (
    "submit name=bert-lr3 image=123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest "
    "instance=ml.g5.xlarge input=s3://data-bucket/train output=s3://out-bucket/runs "
    "role=arn:aws:iam::123456789012:role/SageMakerRole max_runtime=1h hp.lr=3e-5 hp.epochs=3"
)


def template_handler(logical_id: str = "BotFunction"):
    """The callable named by ``Resources.<logical_id>.Properties.Handler`` in template.yaml."""
    from infra.template import load_template

    dotted = load_template()["Resources"][logical_id]["Properties"]["Handler"]
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.fixture
def slack() -> Iterator[SlackStandIn]:
    with SlackStandIn(team_id=TEAM, bot_user_id="U0BOT") as standin:
        standin.add_channel(CHANNEL, "ml-training")
        yield standin


@dataclass
class BotDriver:
    """Sends signed Slack requests through the template's bot handler."""

    slack: SlackStandIn
    lam: LambdaStandIn
    secret: str = SECRET
    responses: list[dict[str, Any]] = field(default_factory=list)

    def send(self, body: str, *, timestamp: int | None = None, secret: str | None = None, settle: bool = True) -> dict:
        headers = signed_headers(secret or self.secret, body, timestamp)
        response = template_handler()(lambda_url_event(body, headers), lambda_context(FUNCTION))
        self.responses.append(response)
        if settle:
            self.settle()
        return response

    def command(
        self, text: str, *, user: str = USER, team: str = TEAM, trigger_id: str | None = None, settle: bool = True, **kw: Any
    ) -> dict:
        # Slack shows the ack's answer first; the bot's later answers on the same URL follow it
        # (and a ``replace_original`` replaces it).
        url = self.slack.response_url(CHANNEL, user, awaits_ack=True)
        body = slash_command_body(text=text, user_id=user, team_id=team, channel_id=CHANNEL, response_url=url, trigger_id=trigger_id)
        response = self.send(body, settle=False, **kw)
        body_text = response.get("body") or ""
        answer = json.loads(body_text) if response.get("statusCode") == 200 and body_text.startswith("{") else None
        self.slack.show_ack(url, answer)
        if settle:
            self.settle()
        return response

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until every lazy invocation has finished; fail on any that crashed."""
        self.lam.wait_idle(timeout)
        errors = self.lam.errors()
        assert not errors, errors[0]

    def ephemerals(self, user: str = USER) -> list[str]:
        return [m.get("text") or "" for m in self.slack.ephemerals(user=user)]


def answer_text(response: dict) -> str:
    """The text of an ack's JSON answer ('' when the ack had no body)."""
    body = response.get("body") or ""
    if not body:
        return ""
    data = json.loads(body)
    blocks = " ".join(json.dumps(b) for b in data.get("blocks") or [])
    return (data.get("text") or "") + blocks


@pytest.fixture
def bot_env(monkeypatch, jobs_table, slack) -> Iterator[BotDriver]:
    """A wired bot over moto (the ``jobs_table`` fixture), the Slack stand-in and the Lambda
    stand-in, as a fresh cold start; the chart function (`/train stats`' chart) is invoked
    through the Lambda stand-in too, running the template's ChartFunction handler."""
    import bot.handler
    from backend.entrypoints import runtime

    with LambdaStandIn() as lam:
        for name, value in {
            "JOBS_TABLE_NAME": jobs_table,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_BOT_TOKEN": TOKEN,
            "SLACK_API_URL": slack.api_url,
            "SLACK_TEAM_ID": TEAM,
            "TRAINBOT_ALLOWED_USERS": f"{USER},{OTHER}",
            "TRAINBOT_ADMIN_USERS": ADMIN,
            "AWS_ENDPOINT_URL_LAMBDA": lam.url,
            "TRAINBOT_SWEEP_CONFIRM_SIZE": "4",
            "TRAINBOT_SWEEP_MAX_SIZE": "20",
            "TRAINBOT_CHART_FUNCTION": f"{CHART_FUNCTION}:live",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("NOTIFY_TOPIC_ARN", raising=False)
        lam.add(FUNCTION, lambda event, context: template_handler()(event, context))
        lam.add(CHART_FUNCTION, lambda event, context: template_handler("ChartFunction")(event, context))
        bot.handler.reset()
        runtime.install(None)
        yield BotDriver(slack, lam)
        bot.handler.reset()
        runtime.install(None)


def wait_until(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError("condition not met")

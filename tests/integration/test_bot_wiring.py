"""The bot's wiring: Slack credentials from Secrets Manager (moto) when not given directly, the
Lambda Invoke stand-in bolt's lazy runner calls through boto3, and no auth.test at cold start."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

from backend.adapters.slack.secrets import slack_credentials
from backend.config import Settings
from backend.errors import ConfigError
from infra.local.standins.lambda_invoke import LambdaStandIn


def test_credentials_come_from_the_json_secret_when_the_environment_lacks_them(moto_aws):
    secret_id = f"trainbot/slack-{uuid.uuid4().hex[:6]}"
    boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name=secret_id, SecretString=json.dumps({"signing_secret": "sig", "bot_token": "xoxb-secret"})
    )
    credentials = slack_credentials(Settings(JOBS_TABLE_NAME="jobs", SLACK_SECRET_ID=secret_id))
    assert (credentials.signing_secret, credentials.bot_token) == ("sig", "xoxb-secret")


def test_values_given_in_the_environment_win_and_need_no_secret():
    credentials = slack_credentials(Settings(JOBS_TABLE_NAME="jobs", SLACK_SIGNING_SECRET="a", SLACK_BOT_TOKEN="xoxb-b"))
    assert credentials.bot_token == "xoxb-b"


def test_missing_credentials_fail_loudly_naming_the_variables():
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN"):
        slack_credentials(Settings(JOBS_TABLE_NAME="jobs"))


def test_an_event_invocation_returns_202_at_once_and_runs_the_handler_in_the_background(monkeypatch):
    seen = []
    with LambdaStandIn() as lam:
        lam.add("trainbot-bot", lambda event, context: seen.append((event, context.function_name)))
        client = boto3.client("lambda", region_name="us-east-1", endpoint_url=lam.url)
        arn = "arn:aws:lambda:us-east-1:123456789012:function:trainbot-bot"
        answer = client.invoke(FunctionName=arn, InvocationType="Event", Payload=json.dumps({"x": 1}))
        assert answer["StatusCode"] == 202
        lam.wait_idle()
        sync = client.invoke(FunctionName="trainbot-bot", Payload=b"{}")
        assert sync["StatusCode"] == 200
    assert seen[0] == ({"x": 1}, "trainbot-bot")


def test_an_unknown_function_is_not_found():
    with LambdaStandIn() as lam:
        client = boto3.client("lambda", region_name="us-east-1", endpoint_url=lam.url)
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.invoke(FunctionName="nope", Payload=b"{}")


def test_the_bot_never_calls_auth_test(store, monkeypatch):
    from backend.bootstrap import build
    from bot.app import create_app
    from infra.local.standins.slack import SlackStandIn

    with SlackStandIn() as slack:
        settings = Settings(
            JOBS_TABLE_NAME=store.table_name, SLACK_SIGNING_SECRET="s", SLACK_BOT_TOKEN="xoxb-t", SLACK_API_URL=slack.api_url
        )
        create_app(build(settings))
        assert slack.calls_to("auth.test") == []

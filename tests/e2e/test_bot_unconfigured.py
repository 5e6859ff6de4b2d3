"""A fresh deploy cannot be driven by anyone before its Slack secret is set (issue 26, Security).

The stack creates ``<stack>/slack`` from template.yaml's ``GenerateSecretString``: a random
signing secret and a placeholder bot token. Until the operator puts the real values in, every
signed request gets a 503 that says what is missing, nothing is read, written or posted, and the
refusal is counted as ``BotNotConfigured`` (the metric ``BotNotConfiguredAlarm`` watches). A
published placeholder, an empty or a short secret is refused the same way, and an unsigned or
undecodable request is a 401 before anything is wired."""

from __future__ import annotations

import json
import secrets
import string

import boto3
import pytest

from backend.adapters.slack.secrets import clear_cached_secrets
from infra.local.standins.lambda_invoke import lambda_context
from infra.local.standins.slack_signing import signed_headers, slash_command_body
from infra.template import load_template
from tests.bot_fixtures import CHANNEL, FUNCTION, GOOD_SUBMIT, SECRET, TEAM, TOKEN, USER, answer_text, template_handler
from tests.fixtures import samples


def _generated_secret() -> dict[str, str]:
    """What Secrets Manager stores for the template's GenerateSecretString (random, no punctuation)."""
    spec = load_template()["Resources"]["SlackSecret"]["Properties"]["GenerateSecretString"]
    alphabet = string.ascii_letters + string.digits
    value = json.loads(spec["SecretStringTemplate"])
    value[spec["GenerateStringKey"]] = "".join(secrets.choice(alphabet) for _ in range(spec["PasswordLength"]))
    return value


@pytest.fixture
def secret_env(bot_env, monkeypatch):
    """The bot reading its credentials from a Secrets Manager secret (moto), as in AWS."""
    client = boto3.client("secretsmanager", region_name="us-east-1")
    arn = client.create_secret(Name=f"trainbot-{secrets.token_hex(3)}/slack", SecretString="{}")["ARN"]
    monkeypatch.delenv("SLACK_SIGNING_SECRET")
    monkeypatch.delenv("SLACK_BOT_TOKEN")
    monkeypatch.setenv("SLACK_SECRET_ID", arn)

    def put(value: dict[str, str]) -> None:
        client.put_secret_value(SecretId=arn, SecretString=json.dumps(value))
        clear_cached_secrets()  # as if the bot's 5-minute cache had expired

    yield put
    clear_cached_secrets()


def _signed_submit(secret: str, response_url: str | None = None) -> dict:
    body = slash_command_body(text=GOOD_SUBMIT, user_id=USER, team_id=TEAM, channel_id=CHANNEL, response_url=response_url)
    return samples.function_url_event(body, signed_headers(secret, body))


def _nothing_happened(bot_env, dynamodb, jobs_table) -> None:
    assert dynamodb.scan(TableName=jobs_table, Select="COUNT")["Count"] == 0
    assert bot_env.slack.calls == [] and bot_env.lam.invocations == []


def test_the_templates_secret_has_no_value_anyone_could_know():
    properties = load_template()["Resources"]["SlackSecret"]["Properties"]
    assert "SecretString" not in properties, "a literal secret in the template is public"
    spec = properties["GenerateSecretString"]
    assert spec["GenerateStringKey"] == "signing_secret" and spec["PasswordLength"] >= 32
    assert "signing_secret" not in json.loads(spec["SecretStringTemplate"])


def test_a_fresh_deploy_answers_503_to_a_request_signed_with_its_generated_secret(secret_env, bot_env, dynamodb, jobs_table, capsys, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")  # the suite turns EMF off; this test reads it
    # Powertools' metric set is shared by every Metrics(); with EMF off, flushes do not empty it,
    # so refusals counted by tests that ran before would show up in this one's line.
    from aws_lambda_powertools import Metrics

    Metrics(namespace="Trainbot", service="trainbot").clear_metrics()
    generated = _generated_secret()
    secret_env(generated)
    response = template_handler()(_signed_submit(generated["signing_secret"]), lambda_context(FUNCTION))
    assert response["statusCode"] == 503 and "not configured" in response["body"]
    _nothing_happened(bot_env, dynamodb, jobs_table)
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{") and "_aws" in line]
    assert any(m.get("BotNotConfigured") in ([1.0], 1.0) for m in emitted), emitted
    alarm = load_template()["Resources"]["BotNotConfiguredAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("Trainbot", "BotNotConfigured")


@pytest.mark.parametrize(
    "signing_secret",
    ["REPLACE_ME", "", "short-but-real-ish", "changeme-changeme-changeme-changeme", "a" * 40, "0123456789abcdef0123456789abcdeX".replace("X", "")],
)
def test_a_placeholder_empty_short_or_constant_secret_is_refused_with_503(secret_env, bot_env, dynamodb, jobs_table, signing_secret):
    secret_env({"signing_secret": signing_secret, "bot_token": TOKEN})
    response = template_handler()(_signed_submit(signing_secret or "x"), lambda_context(FUNCTION))
    assert response["statusCode"] == 503
    _nothing_happened(bot_env, dynamodb, jobs_table)


def test_the_bot_works_as_soon_as_the_operator_puts_the_real_secret_without_a_redeploy(secret_env, bot_env, dynamodb, jobs_table):
    secret_env(_generated_secret())
    assert template_handler()(_signed_submit(SECRET), lambda_context(FUNCTION))["statusCode"] == 503
    secret_env({"signing_secret": SECRET, "bot_token": TOKEN})
    response = template_handler()(_signed_submit(SECRET, bot_env.slack.response_url(CHANNEL, USER)), lambda_context(FUNCTION))
    assert response["statusCode"] == 200
    bot_env.settle()
    jobs = dynamodb.scan(TableName=jobs_table, FilterExpression="attribute_exists(JobStatus)")["Items"]
    assert len(jobs) == 1


def test_an_unsigned_request_is_refused_before_anything_is_wired(bot_env, monkeypatch, dynamodb, jobs_table):
    # Wiring would fail loudly without a table name: an unsigned request must not get that far.
    monkeypatch.delenv("JOBS_TABLE_NAME")
    body = slash_command_body(text=GOOD_SUBMIT, user_id=USER, team_id=TEAM)
    for headers in ({}, {"X-Slack-Signature": "v0=" + "0" * 64}, {"X-Slack-Request-Timestamp": "1", "X-Slack-Signature": "v0=0"}):
        response = template_handler()(samples.function_url_event(body, headers), lambda_context(FUNCTION))
        assert response["statusCode"] == 401
    _nothing_happened(bot_env, dynamodb, jobs_table)


@pytest.mark.parametrize("body", ["text=\ud800", "payload=%7B%7D\udfff", "\udc80"])
def test_an_undecodable_body_with_a_fresh_timestamp_is_a_401_not_a_crash(bot_env, dynamodb, jobs_table, body):
    headers = signed_headers(SECRET, "placeholder")  # a fresh timestamp; no signature can cover a lone surrogate
    response = template_handler()(samples.function_url_event(body, headers), lambda_context(FUNCTION))
    assert response["statusCode"] == 401
    _nothing_happened(bot_env, dynamodb, jobs_table)


def test_a_request_signed_with_the_real_secret_still_gets_its_answer(bot_env):
    response = bot_env.command("help")
    assert response["statusCode"] == 200 and "/train submit" in answer_text(response)

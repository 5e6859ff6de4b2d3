"""Issue 26, Security and Slack-correctness: one identity at the gate, Slack's retries and
replays change nothing twice, lazy failures reach Lambda, our own lazy invocations are
authenticated our way, nothing in an ack waits past Slack's window, and answers are safe to
render and short enough to read. Every request goes through the template's bot handler."""

from __future__ import annotations

import json

from infra.local.standins.slack_signing import view_submission_body
from tests.bot_fixtures import CHANNEL, GOOD_SUBMIT, TEAM, USER

OTHER_TEAM = "T0OTHER"
MODAL_VALUES = {
    "name": "bert-lr3",
    "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest",
    "instance": "ml.g5.xlarge",
    "input": "s3://data-bucket/train",
    "output": "s3://out-bucket/runs",
    "role": "arn:aws:iam::123456789012:role/SageMakerRole",
    "max_runtime": "1h",
}


def _jobs(dynamodb, table: str) -> list[dict]:
    items = dynamodb.scan(TableName=table)["Items"]
    return [item for item in items if "JobStatus" in item]


def _modal_body(*, team: str, installed_team: str = TEAM, view_id: str = "V0MODAL") -> str:
    state = {block: {"value": {"type": "plain_text_input", "value": text}} for block, text in MODAL_VALUES.items()}
    body = view_submission_body(
        "train_submit", state, user_id=USER, team_id=team, private_metadata=json.dumps({"channel": CHANNEL}), view_id=view_id
    )
    if installed_team != team:
        from urllib.parse import parse_qs, urlencode

        payload = json.loads(parse_qs(body)["payload"][0])
        payload["view"]["app_installed_team_id"] = installed_team
        payload["view"]["team_id"] = installed_team
        body = urlencode({"payload": json.dumps(payload)})
    return body


# --- 1. one identity -------------------------------------------------------------------------


def test_a_modal_submitted_from_another_team_is_refused_even_when_installed_in_ours(bot_env, dynamodb, jobs_table):
    response = bot_env.send(_modal_body(team=OTHER_TEAM, installed_team=TEAM))
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["response_action"] == "errors"
    assert _jobs(dynamodb, jobs_table) == []


def test_a_modal_from_our_team_registers_a_job_its_owner_can_stop(bot_env, dynamodb, jobs_table):
    assert bot_env.send(_modal_body(team=TEAM))["statusCode"] == 200
    (job,) = _jobs(dynamodb, jobs_table)
    bot_env.command(f"stop {job['JobId']['S']}")
    assert any("stop" in text.lower() for text in bot_env.ephemerals())
    assert _jobs(dynamodb, jobs_table)[0]["JobStatus"]["S"] in ("Stopping", "Stopped")

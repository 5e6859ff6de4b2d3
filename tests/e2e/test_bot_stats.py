"""`/train stats` signed as Slack signs it, through the template's bot handler: the ack
answers at once, the lazy listener reads the window from DynamoDB (moto), answers a Block Kit
summary and uploads the chart with the real WebClient through Slack's current file upload
flow, recorded by the Slack stand-in."""

from __future__ import annotations

import json

from backend.domain.times import utcnow
from backend.services.chart import PNG_SIGNATURE, png_size
from tests.bot_fixtures import CHANNEL, TEAM, USER, answer_text
from tests.conftest import make_job
from tests.stats_history import HOUR, known_history, seed


def _summary(bot_env) -> str:
    answers = [m for m in bot_env.slack.ephemerals(user=USER) if m.get("blocks")]
    assert answers, bot_env.slack.ephemerals(user=USER)
    return json.dumps(answers[-1]["blocks"], ensure_ascii=False)


def test_stats_answers_a_summary_and_uploads_the_chart_png_to_the_channel(bot_env, dynamodb, jobs_table):
    seed(dynamodb, jobs_table, known_history(utcnow()))

    response = bot_env.command("stats all days=7")

    assert response["statusCode"] == 200 and "last 7 days" in answer_text(response)
    summary = _summary(bot_env)
    assert "Everyone's jobs, last 7 days" in summary
    assert "6 (3 finished)" in summary and "67% of finished" in summary
    assert "capacity 1" in summary and "quota 1" in summary and "algorithm 1" in summary and "throttling 1" in summary
    assert "ml.g5.xlarge` 2.00" in summary and "Jobs created" in summary

    # files.getUploadURLExternal -> POST the bytes -> files.completeUploadExternal, by slack_sdk.
    assert [c.method for c in bot_env.slack.calls if "file" in c.method or c.method == "upload"] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]
    (uploaded,) = bot_env.slack.files
    assert uploaded["name"] == "trainbot-stats.png" and uploaded["title"].startswith("Trainbot stats: all jobs")
    assert uploaded["content"].startswith(PNG_SIGNATURE) and png_size(uploaded["content"]) == (1000, 650)
    assert [s["channel"] for s in uploaded["shares"]] == [CHANNEL]
    assert bot_env.slack.calls_to("files.getUploadURLExternal")[0].headers["authorization"] == "Bearer xoxb-e2e-token"


def test_stats_mine_counts_only_the_callers_jobs(bot_env, dynamodb, jobs_table):
    now = utcnow()
    seed(dynamodb, jobs_table, [*known_history(now), make_job("mine", team=TEAM, user=USER, now=now - HOUR)])

    bot_env.command("stats mine days=2")

    summary = _summary(bot_env)
    assert "Your jobs, last 2 days" in summary and "1 (0 finished)" in summary and "–" in summary


def test_stats_of_an_empty_window_still_answers_and_charts(bot_env):
    bot_env.command("stats days=1")

    assert "0 (0 finished)" in _summary(bot_env)
    assert len(bot_env.slack.files) == 1


def test_a_malformed_stats_command_answers_the_usage_and_reads_nothing(bot_env):
    response = bot_env.command("stats days=0 user=bob")

    text = answer_text(response)
    assert "days" in text and "user" in text and "/train stats" in text
    assert bot_env.slack.calls == []

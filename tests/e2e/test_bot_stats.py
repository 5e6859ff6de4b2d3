"""`/train stats` signed as Slack signs it, through the template's bot handler: the ack
answers at once; the lazy listener reads the window from DynamoDB (moto), posts a Block Kit
summary in the channel and asks the chart function (the template's ChartFunction handler,
invoked asynchronously through the Lambda Invoke stand-in) for the chart, which it draws and
uploads in the summary's thread with a one-line caption, by the real WebClient through Slack's
current file upload flow, recorded by the Slack stand-in."""

from __future__ import annotations

import json

from backend.domain.times import utcnow
from backend.services.chart import PNG_SIGNATURE, png_size
from tests.bot_fixtures import CHANNEL, CHART_FUNCTION, FUNCTION, TEAM, USER, answer_text
from tests.conftest import make_job
from tests.stats_history import HOUR, known_history, seed


def _summary(bot_env) -> dict:
    """The summary the bot posted in the channel (a root message with blocks)."""
    roots = [m for m in bot_env.slack.messages(CHANNEL) if m.get("blocks")]
    assert roots, bot_env.slack.messages(CHANNEL)
    return roots[-1]


def _text(message: dict) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


def test_stats_posts_the_summary_in_the_channel_and_the_chart_function_uploads_the_chart_in_its_thread(bot_env, dynamodb, jobs_table):
    seed(dynamodb, jobs_table, known_history(utcnow()))

    response = bot_env.command("stats all days=7")

    assert response["statusCode"] == 200 and "last 7 days" in answer_text(response)
    summary = _summary(bot_env)
    text = _text(summary)
    assert "Everyone's jobs, last 7 days" in text
    assert "6 (3 finished)" in text and "67% of finished" in text
    assert "capacity 1" in text and "quota 1" in text and "algorithm 1" in text and "throttling 1" in text
    assert "ml.g5.xlarge` 2.00" in text and "Jobs created" in text
    # The ack's "Working out…" becomes a pointer to what was posted.
    assert any("chart follows in its thread" in e for e in bot_env.ephemerals())

    # The bot asked the chart function asynchronously; the bot itself drew nothing.
    asked = [i for i in bot_env.lam.invocations if i["name"] == CHART_FUNCTION]
    assert [i["type"] for i in asked] == ["Event"] and not any(i["error"] for i in asked)
    # files.getUploadURLExternal -> POST the bytes -> files.completeUploadExternal, by slack_sdk.
    assert [c.method for c in bot_env.slack.calls if "file" in c.method or c.method == "upload"] == [
        "files.getUploadURLExternal",
        "upload",
        "files.completeUploadExternal",
    ]
    (uploaded,) = bot_env.slack.files
    assert uploaded["name"] == "trainbot-stats.png" and uploaded["title"].startswith("Trainbot stats: all jobs")
    assert uploaded["content"].startswith(PNG_SIGNATURE) and png_size(uploaded["content"])[0] >= 1000
    assert "jobs per day by outcome" in uploaded["alt_txt"].lower()
    # In the summary's thread, with the one-line caption.
    assert [(s["channel"], s["thread_ts"]) for s in uploaded["shares"]] == [(CHANNEL, summary["ts"])]
    (reply,) = [r for r in bot_env.slack.messages(CHANNEL)[-1]["replies"] if r.get("files")]
    assert reply["text"] == ":bar_chart: Jobs per day by outcome, everyone's jobs, last 7 days: 6 jobs, 67% of finished completed"
    assert "\n" not in reply["text"]
    complete = bot_env.slack.calls_to("files.completeUploadExternal")[0]
    assert complete.params["channel_id"] == CHANNEL and complete.params["thread_ts"] == summary["ts"]
    assert bot_env.slack.calls_to("files.getUploadURLExternal")[0].headers["authorization"] == "Bearer xoxb-e2e-token"


def test_stats_mine_counts_only_the_callers_jobs_and_names_them_in_the_channel(bot_env, dynamodb, jobs_table):
    now = utcnow()
    seed(dynamodb, jobs_table, [*known_history(now), make_job("mine", team=TEAM, user=USER, now=now - HOUR)])

    bot_env.command("stats mine days=2")

    text = _text(_summary(bot_env))
    # Seen by the whole channel: "mine" is the requester's, by name, not "Your jobs".
    assert f"Jobs of <@{USER}>, last 2 days" in text and "1 (0 finished)" in text and "–" in text
    (uploaded,) = bot_env.slack.files
    (share,) = uploaded["shares"]
    reply = next(r for r in bot_env.slack.messages(CHANNEL)[-1]["replies"] if r["ts"] == share["ts"])
    assert reply["text"] == f":bar_chart: Jobs per day by outcome, jobs of <@{USER}>, last 2 days: 1 job, none finished yet"


def test_stats_of_an_empty_window_still_answers_and_charts(bot_env):
    bot_env.command("stats days=1")

    assert "0 (0 finished)" in _text(_summary(bot_env))
    assert len(bot_env.slack.files) == 1


def test_where_the_bot_may_not_post_the_numbers_go_to_the_asker_alone_and_no_chart_is_asked_for(bot_env):
    bot_env.slack.fail_next("chat.postMessage", error="not_in_channel")

    bot_env.command("stats days=3")

    assert bot_env.slack.messages(CHANNEL) == [] and bot_env.slack.files == []
    answers = [m for m in bot_env.slack.ephemerals(user=USER) if m.get("blocks")]
    assert answers and "Everyone's jobs, last 3 days" in _text(answers[-1])
    assert any("invite me" in e for e in bot_env.ephemerals())
    assert [i for i in bot_env.lam.invocations if i["name"] == CHART_FUNCTION] == []
    assert [i["name"] for i in bot_env.lam.invocations] == [FUNCTION]


def test_a_malformed_stats_command_answers_the_usage_and_reads_nothing(bot_env):
    response = bot_env.command("stats days=0 user=bob")

    text = answer_text(response)
    assert "days" in text and "user" in text and "/train stats" in text
    assert bot_env.slack.calls == []

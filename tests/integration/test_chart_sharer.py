"""The Slack chart sharer through the real WebClient and the Slack stand-in: the three calls of
Slack's upload flow, the file in the summary's thread with its one-line caption, title and alt
text; and Slack's refusals told apart (retry later, or never)."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient

from backend.adapters.slack.files import FILENAME, SlackChartSharer
from backend.domain.charts import ChartRequest
from backend.domain.model import Owner
from backend.errors import NotifierRejected, NotifierUnavailable
from backend.services.stats import Window, compute_stats
from infra.local.standins.slack import SlackStandIn
from tests.stats_history import NOW, known_history

CHANNEL = "C0TRAIN"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)


@pytest.fixture
def slack():
    with SlackStandIn(team_id="T0LOCAL", bot_user_id="U0BOT") as standin:
        standin.add_channel(CHANNEL, "ml-training")
        yield standin


def _request(client: WebClient, **changes) -> ChartRequest:
    root = client.chat_postMessage(channel=CHANNEL, text="the stats summary")["ts"]
    base = ChartRequest(key="1.2.3", scope="user", user_id="U0BOB", days=7, preset="nlp",
                        requester=Owner(team_id="T0LOCAL", user_id="U0ALICE"), channel_id=CHANNEL, thread_ts=root)
    return base.model_copy(update=changes)


def test_the_chart_is_a_file_in_the_summarys_thread_with_a_one_line_caption(slack):
    client = WebClient(token="xoxb-t", base_url=slack.api_url)
    request = _request(client)
    stats = compute_stats(known_history(), Window.last_days(7, NOW), NOW)

    file_id = SlackChartSharer(client).share_chart(request, stats, PNG)

    assert [c.method for c in slack.calls if "file" in c.method or c.method == "upload"] == [
        "files.getUploadURLExternal", "upload", "files.completeUploadExternal"]
    stored = slack.file(file_id)
    assert stored["content"] == PNG and stored["name"] == FILENAME and stored["mimetype"] == "image/png"
    assert stored["title"] == "Trainbot stats: jobs of U0BOB, preset nlp, last 7 days"
    assert stored["alt_txt"].startswith("Stacked bar charts of the last 7 days: jobs per day by outcome (Completed 2, Failed 1")
    (reply,) = slack.messages(CHANNEL)[0]["replies"]
    assert reply["text"] == ":bar_chart: Jobs per day by outcome, jobs of <@U0BOB> with preset `nlp`, last 7 days: 6 jobs, 67% of finished completed"
    assert stored["shares"] == [{"channel": CHANNEL, "ts": reply["ts"], "thread_ts": request.thread_ts}]


@pytest.mark.parametrize(
    ("method", "error", "raised"),
    [
        ("files.completeUploadExternal", "not_in_channel", NotifierRejected),
        ("files.getUploadURLExternal", "file_uploads_disabled", NotifierRejected),
        ("files.completeUploadExternal", "internal_error", NotifierUnavailable),
    ],
)
def test_slacks_refusals_are_told_apart_retry_later_or_never(slack, method, error, raised):
    client = WebClient(token="xoxb-t", base_url=slack.api_url)
    request = _request(client)
    stats = compute_stats([], Window.last_days(7, NOW), NOW)
    slack.fail_next(method, error=error)
    with pytest.raises(raised, match=error):
        SlackChartSharer(client).share_chart(request, stats, PNG)


def test_an_app_installed_without_files_write_is_refused_for_good(slack):
    client = WebClient(token="xoxb-t", base_url=slack.api_url)
    request = _request(client)
    slack.scopes = frozenset({"commands", "chat:write"})
    with pytest.raises(NotifierRejected, match="missing_scope"):
        SlackChartSharer(client).share_chart(request, compute_stats([], Window.last_days(7, NOW), NOW), PNG)

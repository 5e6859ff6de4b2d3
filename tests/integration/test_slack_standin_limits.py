"""The Slack stand-in enforces the limits Slack documents (https://api.slack.com/docs/rate-limits):
about one message per second per channel with a short burst, chat.update at Tier 3 (50 a minute
for the app), each answered past its limit with HTTP 429 and Retry-After; and it reports what
Slack's users would have seen. Driven through the real slack_sdk WebClient."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from infra.local.standins.slack import RateLimits, SlackStandIn


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def slack(clock):
    with SlackStandIn(limit_clock=clock, limits=RateLimits(post_burst=3)) as standin:
        yield standin


@pytest.fixture
def client(slack):
    return WebClient(token="xoxb-t", base_url=slack.api_url)  # no retry handler: see the 429s


def _rate_limited(call) -> str:
    with pytest.raises(SlackApiError) as refused:
        call()
    assert refused.value.response.status_code == 429
    return refused.value.response.headers.get("Retry-After") or refused.value.response.headers.get("retry-after")


def test_posting_faster_than_one_a_second_per_channel_is_refused_after_a_short_burst(slack, client, clock):
    for i in range(3):
        client.chat_postMessage(channel="C1", text=f"burst {i}")
    assert _rate_limited(lambda: client.chat_postMessage(channel="C1", text="one too many")) == "1"
    client.chat_postMessage(channel="C2", text="another channel has its own pace")
    clock.now += 1.0
    client.chat_postMessage(channel="C1", text="a second later")
    traffic = slack.traffic()
    assert traffic["messages"] == 5 and traffic["messages_per_channel"] == {"C1": 4, "C2": 1}
    assert traffic["peak_posts_per_channel"] == 4 and traffic["rate_limited"] == {"chat.postMessage": 1}


def test_chat_update_is_tier_3_fifty_a_minute_for_the_app(slack, client, clock):
    ts = client.chat_postMessage(channel="C1", text="card")["ts"]
    for i in range(50):
        clock.now += 0.5
        client.chat_update(channel="C1", ts=ts, text=f"v{i}")
    wait = int(_rate_limited(lambda: client.chat_update(channel="C1", ts=ts, text="v50")))
    assert 30 <= wait <= 60
    clock.now += wait
    client.chat_update(channel="C1", ts=ts, text="after the wait")
    assert slack.traffic()["peak_updates_per_message_per_minute"] == 50


def test_mentions_count_posted_messages_not_edits(slack, client):
    ts = client.chat_postMessage(channel="C1", text="for <@U0ALICE> and <@U0BOB|bob>")["ts"]
    client.chat_update(channel="C1", ts=ts, text="edited, still <@U0ALICE>")
    client.chat_postMessage(channel="C1", thread_ts=ts, text="done <@U0ALICE>")
    assert slack.traffic()["mentions"] == {"U0ALICE": 2, "U0BOB": 1}

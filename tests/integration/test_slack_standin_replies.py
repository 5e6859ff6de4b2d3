"""The Slack stand-in's conversations.replies and message metadata, as Slack documents them
(tests/fixtures/slack_conversations_replies.json names the pages), and its lost-answer fault:
driven through the real slack_sdk WebClient."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from infra.local.standins.slack import RateLimits, SlackStandIn
from tests.fixtures.samples import slack_replies

CHANNEL = "C0TRAIN"
DOCUMENTED = slack_replies()
METADATA = DOCUMENTED["metadata_message"]["metadata"]


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
    with SlackStandIn(team_id="T1", limit_clock=clock, limits=RateLimits(enabled=False)) as standin:
        yield standin


@pytest.fixture
def client(slack):
    # No retry handler: a lost answer (or a 429) is seen as it is, never retried by the client.
    return WebClient(token="xoxb-t", base_url=slack.api_url, timeout=2, retry_handlers=[])


def _thread(client, replies=3, metadata=METADATA):
    root = client.chat_postMessage(channel=CHANNEL, text="island")["ts"]
    for n in range(replies):
        client.chat_postMessage(channel=CHANNEL, thread_ts=root, text=f"reply {n}", metadata=metadata)
    return root


def test_a_thread_is_answered_in_slacks_documented_shape_parent_first(slack, client, clock):
    root = _thread(client)
    answer = client.conversations_replies(channel=CHANNEL, ts=root).data
    documented = DOCUMENTED["response"]
    assert set(answer) <= set(documented) and {"ok", "messages", "has_more"} <= set(answer)
    parent, *replies = answer["messages"]
    # The documented parent's fields, but those about the caller's read state (a user token's).
    assert set(documented["messages"][0]) - {"subscribed", "last_read", "unread_count"} <= set(parent)
    assert parent["ts"] == parent["thread_ts"] == root and parent["reply_count"] == 3
    for reply in replies:
        assert set(documented["messages"][1]) <= set(reply)
        assert reply["thread_ts"] == root and reply["parent_user_id"] == parent["user"]
    assert [m["text"] for m in replies] == ["reply 0", "reply 1", "reply 2"]
    # Asked by a reply's ts, the whole thread comes back too.
    assert client.conversations_replies(channel=CHANNEL, ts=replies[1]["ts"])["messages"] == answer["messages"]


def test_metadata_posted_with_a_message_comes_back_only_with_include_all_metadata(slack, client):
    root = _thread(client, replies=1)
    plain = client.conversations_replies(channel=CHANNEL, ts=root)["messages"]
    assert all("metadata" not in m for m in plain)
    with_metadata = client.conversations_replies(channel=CHANNEL, ts=root, include_all_metadata=True)["messages"]
    assert "metadata" not in with_metadata[0]  # the parent was posted without any
    assert with_metadata[1]["metadata"] == METADATA and set(METADATA) == {"event_type", "event_payload"}


def test_a_long_thread_is_read_page_by_page_with_the_cursor_slack_gives(slack, client):
    root = _thread(client, replies=4)
    seen, cursor, pages = [], None, 0
    while True:
        answer = client.conversations_replies(channel=CHANNEL, ts=root, limit=2, **({"cursor": cursor} if cursor else {}))
        pages += 1
        seen += [m["ts"] for m in answer["messages"]]
        cursor = (answer.get("response_metadata") or {}).get("next_cursor")
        assert answer["has_more"] is bool(cursor)
        if not cursor:
            break
    assert pages == 3 and len(seen) == len(set(seen)) == 5 and seen[0] == root
    with pytest.raises(SlackApiError, match="invalid_cursor"):
        client.conversations_replies(channel=CHANNEL, ts=root, cursor="not-one-it-gave")


def test_a_thread_it_does_not_know_answers_thread_not_found(slack, client):
    client.chat_postMessage(channel=CHANNEL, text="somewhere")
    with pytest.raises(SlackApiError, match="thread_not_found"):
        client.conversations_replies(channel=CHANNEL, ts="1.000001")


def test_reading_a_thread_needs_a_history_scope_as_slack_documents(slack, client):
    root = _thread(client, replies=0)
    slack.scopes = frozenset({"commands", "chat:write"})
    with pytest.raises(SlackApiError) as refused:
        client.conversations_replies(channel=CHANNEL, ts=root)
    assert refused.value.response["error"] == "missing_scope"
    assert refused.value.response["needed"] == "channels:history,groups:history,im:history,mpim:history"
    slack.scopes = frozenset({"chat:write", "channels:history"})
    assert client.conversations_replies(channel=CHANNEL, ts=root)["ok"]


def test_conversations_replies_is_tier_3_with_its_own_minute(clock):
    with SlackStandIn(limit_clock=clock, limits=RateLimits()) as slack:
        client = WebClient(token="xoxb-t", base_url=slack.api_url, retry_handlers=[])
        root = client.chat_postMessage(channel=CHANNEL, text="card")["ts"]
        for _ in range(50):
            client.conversations_replies(channel=CHANNEL, ts=root)
        client.chat_update(channel=CHANNEL, ts=root, text="updates count on their own")
        with pytest.raises(SlackApiError) as refused:
            client.conversations_replies(channel=CHANNEL, ts=root)
        assert refused.value.response.status_code == 429
        clock.now += 60
        assert client.conversations_replies(channel=CHANNEL, ts=root)["ok"]


def test_a_lost_answer_leaves_the_message_posted_while_the_client_sees_a_failure(slack, client):
    from urllib.error import URLError

    root = _thread(client, replies=0)
    slack.lose_next_answer("chat.postMessage", match=lambda params: bool(params.get("thread_ts")))
    with pytest.raises(Exception) as lost:
        client.chat_postMessage(channel=CHANNEL, thread_ts=root, text="did it land?")
    assert isinstance(lost.value, OSError) and not isinstance(lost.value, URLError)  # sent, then no answer
    assert [m["text"] for m in slack.thread(CHANNEL, root)[1:]] == ["did it land?"]
    # Only the next matching call: the following one is answered.
    assert client.chat_postMessage(channel=CHANNEL, thread_ts=root, text="and this one")["ok"]


def test_an_answer_later_than_the_clients_timeout_is_a_timeout_after_the_post_landed(slack):
    client = WebClient(token="xoxb-t", base_url=slack.api_url, timeout=0.5, retry_handlers=[])
    slack.lose_next_answer("chat.postMessage", delay=1.5)
    with pytest.raises(TimeoutError):
        client.chat_postMessage(channel=CHANNEL, text="slow answer")
    assert [m["text"] for m in slack.messages(CHANNEL)] == ["slow answer"]

"""What a Slack error means for a notification: what no retry can fix (the channel is archived
or restricted, the message is gone) is given up; a rate limit or a Slack outage is retried."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.errors import SlackApiError

from backend.adapters.slack.notifier import SlackCalls, SlackPacer
from backend.errors import NotifierRejected, NotifierUnavailable


class Refusing:
    def __init__(self, error: str, status: int = 200) -> None:
        self._answer = {"ok": False, "error": error}
        self._status = status

    def chat_postMessage(self, **kwargs: Any) -> Any:
        raise SlackApiError(f"{self._status} {self._answer['error']}", self._answer)


def _post(error: str, status: int = 200) -> None:
    calls = SlackCalls(Refusing(error, status), SlackPacer(clock=lambda: 0.0, sleep=lambda _s: None))
    calls.post("C1", max_wait=0.0, text="hi")


@pytest.mark.parametrize(
    "error",
    ["message_not_found", "channel_not_found", "is_archived", "restricted_action", "restricted_action_read_only_channel", "cannot_reply_to_message"],
)
def test_an_error_no_retry_can_fix_is_given_up(error):
    with pytest.raises(NotifierRejected):
        _post(error)


@pytest.mark.parametrize(("error", "status"), [("ratelimited", 429), ("internal_error", 500), ("service_unavailable", 503), ("fatal_error", 200)])
def test_a_rate_limit_or_a_slack_outage_is_retried_later(error, status):
    with pytest.raises(NotifierUnavailable):
        _post(error, status)

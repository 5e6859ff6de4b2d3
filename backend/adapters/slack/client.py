"""The one place the bot builds its ``slack_sdk.WebClient``.

Base URL from ``SLACK_API_URL`` (Slack, or the local stand-in). 429s honour ``Retry-After``, but
only up to a bound: a notifier that slept through a long rate limit would hold up the monitor
that called it, so past the bound the call fails and the change waits in the outbox instead.
"""

from __future__ import annotations

from typing import Any

from backend.adapters.aws import Lazy
from backend.adapters.slack.secrets import slack_credentials
from backend.config import Settings
from backend.ports import notify_may_wait

# (retries on 429, longest Retry-After honoured, HTTP timeout) per use: a bot answer is
# worth a short wait; a notification can always wait for the next outbox drain.
_POLICY = {"bot": (2, 3.0, 5), "notify": (2, 5.0, 5)}


def web_client(settings: Settings, *, purpose: str = "bot", token: str | None = None, tokenless: bool = False) -> Any:
    """``tokenless``: a client whose token each use sets (bolt's, whose ``authorize`` gives it)."""
    from slack_sdk import WebClient

    retries, max_wait, timeout = _POLICY[purpose]
    return WebClient(
        token=None if tokenless else token if token is not None else slack_credentials(settings).bot_token,
        base_url=settings.slack_api_url,
        timeout=timeout,
        retry_handlers=[bounded_rate_limit_handler(retries, max_wait)],
    )


class LazyWebClient(Lazy):
    """:func:`web_client` made on its first use. The notifiers are wired at every cold start,
    but most launcher and monitor runs post nothing: until one does, neither slack_sdk is
    imported nor the bot token read (from Secrets Manager in AWS: a client and a call). A
    token that cannot be read fails the first post (ConfigError), as it failed the wiring."""

    def __init__(self, settings: Settings, *, purpose: str = "notify") -> None:
        super().__init__(lambda: web_client(settings, purpose=purpose))


ACK_TIMEOUT_SECONDS = 2


def within_ack(client: Any) -> Any:
    """A copy of ``client`` for calls made inside an ack (``views.open`` with a trigger id):
    Slack's 3-second window leaves no room to sleep for a Retry-After or to retry a connection,
    so it has no retry handlers and a short timeout; a refused call fails at once."""
    from slack_sdk import WebClient

    return WebClient(token=client.token, base_url=client.base_url, timeout=ACK_TIMEOUT_SECONDS, retry_handlers=[])


def bounded_rate_limit_handler(max_retry_count: int, max_wait_seconds: float) -> Any:
    """slack_sdk's RateLimitErrorRetryHandler (sleeps for Retry-After), declining to retry when
    Slack asks for a longer wait than ``max_wait_seconds``, or when the caller may not wait at
    all (backend.ports.notify_without_waiting: the launcher's deliveries)."""
    from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

    class BoundedRateLimitErrorRetryHandler(RateLimitErrorRetryHandler):
        def _can_retry(self, *, state, request, response=None, error=None) -> bool:
            if not notify_may_wait():
                return False
            if not super()._can_retry(state=state, request=request, response=response, error=error):
                return False
            return _retry_after(response) <= max_wait_seconds

    return BoundedRateLimitErrorRetryHandler(max_retry_count=max_retry_count)


def _retry_after(response: Any) -> float:
    for key, values in (response.headers or {}).items():
        if key.lower() == "retry-after":
            try:
                return float(values[0] if isinstance(values, list) else values)
            except (TypeError, ValueError):
                return 1.0
    return 1.0

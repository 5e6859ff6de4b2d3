"""A local HTTP stand-in for the Slack Web API.

Trainbot's code talks to Slack only through the real ``slack_sdk.WebClient``; pointing that
client at this server (``WebClient(token=..., base_url=standin.api_url)``) lets integration
tests, the local mode and benchmarks exercise the exact request/response path the bot uses in
production, without a Slack workspace and without any network beyond 127.0.0.1.

What it provides:

* the Web API methods Trainbot uses (``auth.test``, ``chat.postMessage``, ``chat.update``, ``chat.delete``,
  ``chat.postEphemeral``, ``views.open|push|update``, the files v2 upload trio,
  ``users.info``, ``conversations.info``, ``conversations.replies``), answering with Slack's envelope
  (HTTP 200 ``{"ok": true, ...}`` / ``{"ok": false, "error": ...}``);
* message metadata as Slack keeps it: ``chat.postMessage`` (and ``chat.update``) store a
  ``metadata`` object (``event_type``, ``event_payload``), and ``conversations.replies`` returns it
  only when asked (``include_all_metadata``), a thread a page at a time (``limit``, ``cursor``);
* direct messages as Slack documents them for ``chat.postMessage``: a user id (``U…``/``W…``)
  as ``channel`` posts to the app's DM with that user, a ``D…`` channel (``im_channel``) the
  answer names; the state API accepts either;
* ``response_url`` endpoints, so bolt's ``respond()`` has somewhere to POST;
* fault injection (scheduled or probabilistic 429 / 5xx / ``ok: false`` answers, latency, and
  answers lost after the call took effect: :meth:`SlackStandIn.lose_next_answer`);
* Slack's documented rate limits (:class:`RateLimits`, on by default): ``chat.postMessage``
  about one message per second per channel with short bursts, ``chat.update`` Tier 3 (50 a
  minute for the app), each answered past its limit with HTTP 429 and ``Retry-After``; and
  what a test wants to know of them: messages posted, mentions, peak posts per channel per
  window, updates per message per minute, 429s answered (:meth:`SlackStandIn.traffic`);
* a call log and a channel/thread/ephemeral/file/view state API with a monotonic change-event
  feed that a web page can long-poll (``events_since(seq, timeout=...)``);
* ``add_route`` so the local page can be served by the same server;
* scopes, enforced as Slack does: a method the installed app's bot scopes do not cover answers
  ``{"ok": false, "error": "missing_scope", "needed": …, "provided": …}``. The installed scopes
  are by default those of the app manifest deployed (infra/deploy/slack-app-manifest.yaml), so
  a method the bot calls without its scope in the manifest fails here as it would in Slack.

Only the standard library is used (and PyYAML, once, to read the manifest), so the stand-in can
run anywhere the bot's tests run.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import math
import random
import re
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from infra.local.standins.serving import LocalServer

__all__ = [
    "Call",
    "Faults",
    "RateLimits",
    "RequestInfo",
    "SlackStandIn",
    "Subscription",
]

logger = logging.getLogger(__name__)

# Headers worth keeping in the call log: enough to assert on auth and encoding without
# storing every transport detail.
_RECORDED_HEADERS = ("authorization", "content-type", "user-agent", "x-slack-retry-num")

# Parameters Slack accepts either as JSON values or as JSON-encoded strings inside a form body.
_JSON_PARAMS = ("blocks", "attachments", "metadata", "view", "files")

RouteHandler = Callable[["RequestInfo"], "tuple[int, dict[str, str], bytes | str]"]

# Bot-token scopes Slack documents for each method this stand-in answers ("Scopes" on
# https://docs.slack.dev/reference/methods/<method>, and "Compatible API methods" on
# https://docs.slack.dev/reference/scopes/<scope>); a method needs any one scope of its tuple,
# and an empty tuple means no scope (views.* need only a trigger_id; auth.test any token).
METHOD_SCOPES: dict[str, tuple[str, ...]] = {
    "auth.test": (),
    "chat.postMessage": ("chat:write",),
    "chat.update": ("chat:write",),
    "chat.delete": ("chat:write",),
    "chat.postEphemeral": ("chat:write",),
    "views.open": (),
    "views.push": (),
    "views.update": (),
    "files.getUploadURLExternal": ("files:write",),
    "files.completeUploadExternal": ("files:write",),
    "users.info": ("users:read",),
    "conversations.info": ("channels:read", "groups:read", "im:read", "mpim:read"),
    "conversations.replies": ("channels:history", "groups:history", "im:history", "mpim:history"),
}
MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "slack-app-manifest.yaml"


def manifest_scopes(path: Path = MANIFEST) -> frozenset[str]:
    """The bot scopes an app manifest asks for (what installing it grants)."""
    import yaml

    manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
    return frozenset(manifest["oauth_config"]["scopes"]["bot"])


@dataclass
class RateLimits:
    """Slack's documented limits, as this stand-in enforces them.

    From https://api.slack.com/docs/rate-limits: "Posting messages: 1 per second. Short bursts
    >1 allowed" and, for the special tier of ``chat.postMessage``, "generally allows posting one
    message per second per channel, while also maintaining a workspace-wide limit"; Tier 3
    methods (``chat.update``) "50+ per minute"; past a limit Slack answers "HTTP 429 Too Many
    Requests" with a ``Retry-After`` header of seconds to wait. Slack does not publish the
    burst size; ``post_burst`` is a token bucket's depth.
    """

    posts_per_second: float = 1.0  # per channel (chat.postMessage, chat.postEphemeral excluded)
    post_burst: int = 4
    tier3_per_minute: int = 50  # app-wide, per Tier 3 method (chat.update, conversations.replies)
    enabled: bool = True


# Tier 3 methods, each with its own per-minute window ("Rate Limits" on each method's page).
_TIER3 = ("chat.update", "conversations.replies")
# conversations.replies: "The maximum number of items to return" (``limit``), default and most.
REPLIES_LIMIT = 1000
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


class Call(NamedTuple):
    """One recorded request: API method (or ``"upload"`` / ``"response_url"``), params, headers."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str]


@dataclass
class RequestInfo:
    """What an ``add_route`` handler gets to see of a request."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8"), keep_blank_values=True).items()}


@dataclass
class _ScheduledFault:
    method: str
    status: int
    error: str
    retry_after: int
    remaining: int


@dataclass
class _LostAnswer:
    method: str
    delay: float  # 0: the connection is closed without an answer; else the answer comes this late
    match: Callable[[dict[str, Any]], bool] | None
    remaining: int


class _AnswerLost(Exception):
    """The call took effect; its answer is not sent (or sent after ``delay`` seconds)."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay)
        self.delay = delay


@dataclass
class Faults:
    """Probabilistic fault injection; attributes may be changed while the server runs.

    ``methods`` limits the faults to those API methods (``None`` = every Web API method;
    upload and response_url endpoints are never hit by probabilistic faults).
    """

    rate_limit_probability: float = 0.0
    server_error_probability: float = 0.0
    server_error_status: int = 500
    retry_after: int = 1
    latency_seconds: float = 0.0
    methods: frozenset[str] | None = None
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def reseed(self, seed: int | None) -> None:
        with self._lock:
            self.seed = seed
            self._rng = random.Random(seed)

    def roll(self, method: str) -> tuple[int, str, int] | None:
        """Decide whether this call fails: (status, error, retry_after) or None."""
        if self.methods is not None and method not in self.methods:
            return None
        # One lock around both draws keeps a seeded run reproducible under concurrency
        # (as far as request arrival order is).
        with self._lock:
            draw = self._rng.random()
        if draw < self.rate_limit_probability:
            return 429, "ratelimited", self.retry_after
        if draw < self.rate_limit_probability + self.server_error_probability:
            return self.server_error_status, _server_error_name(self.server_error_status), 0
        return None


def _peak(times: list[float], window: float) -> int:
    """The most of ``times`` (sorted or not) within any ``window`` seconds."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _server_error_name(status: int) -> str:
    return {503: "service_unavailable", 504: "request_timeout"}.get(status, "internal_error")


class _ApiError(Exception):
    def __init__(self, error: str, **details: str) -> None:
        super().__init__(error)
        self.error = error
        self.details = details


class Subscription:
    """A cursor over the stand-in's change events, for long-polling consumers."""

    def __init__(self, standin: SlackStandIn, since: int) -> None:
        self._standin = standin
        self.seq = since

    def next(self, timeout: float = 25.0) -> list[dict[str, Any]]:
        events = self._standin.events_since(self.seq, timeout=timeout)
        if events:
            self.seq = events[-1]["seq"]
        return events


class SlackStandIn:
    """A Slack Web API look-alike on 127.0.0.1. See the module docstring."""

    def __init__(
        self,
        team_id: str = "T0LOCAL",
        bot_user_id: str = "U0BOT",
        port: int = 0,
        *,
        bot_id: str = "B0BOT",
        app_id: str = "A0TRAINBOT",
        team_name: str = "Trainbot Local",
        first_ts: int = 1_700_000_000,
        max_events: int = 10_000,
        faults: Faults | None = None,
        clock: Callable[[], float] | None = None,
        scopes: frozenset[str] | set[str] | None = None,
        limits: RateLimits | None = None,
        limit_clock: Callable[[], float] | None = None,
    ) -> None:
        self.team_id = team_id
        # The bot token's scopes: the deployed manifest's unless a test installs others.
        self.scopes: frozenset[str] = frozenset(manifest_scopes() if scopes is None else scopes)
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.team_name = team_name
        self.faults = faults or Faults()
        self.limits = limits or RateLimits()
        # Rate limits and the traffic record are judged on this clock (seconds): a test's
        # simulated clock, or real time.
        self._limit_clock = limit_clock or clock or time.monotonic
        self._port = port
        self._first_us = first_ts * 1_000_000
        # With a clock (local mode), message ts are real times, as Slack's are; without one
        # (tests), a counter keeps them deterministic.
        self._clock = clock
        self._last_us = 0
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._server: LocalServer | None = None
        self._base_url: str | None = None
        self._routes: list[tuple[str, str, RouteHandler]] = []
        self._max_events = max_events
        self._reset_state()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> str:
        """Bind 127.0.0.1:<port>, serve in a daemon thread, return the base URL (no trailing /)."""
        if self._server is not None:
            return self.base_url
        self._server = LocalServer(_make_handler(self), port=self._port, name="slack-standin")
        self._base_url = f"http://127.0.0.1:{self._server.start()}"
        return self._base_url

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.stop()
        with self._changed:
            # Wake long-pollers so they answer (empty) instead of hanging until their timeout.
            self._changed.notify_all()

    def __enter__(self) -> SlackStandIn:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("SlackStandIn is not started")
        return self._base_url

    @property
    def api_url(self) -> str:
        # WebClient joins base_url and the method name by plain concatenation.
        return self.base_url + "/api/"

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def reset(self) -> None:
        """Forget all messages, calls, files, views, events and scheduled faults."""
        with self._changed:
            self._reset_state()
            self._changed.notify_all()

    def _reset_state(self) -> None:
        self._ts_counter = 0
        self._id_counter = 0
        self._calls: list[Call] = []
        self._errors: list[tuple[str, str]] = []
        self._channels: dict[str, dict[str, Any]] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self._index: dict[tuple[str, str], dict[str, Any]] = {}
        self._roots: dict[str, list[str]] = {}
        self._replies: dict[tuple[str, str], list[str]] = {}
        self._ephemerals: list[dict[str, Any]] = []
        self._views: dict[str, dict[str, Any]] = {}
        self._files: dict[str, dict[str, Any]] = {}
        self._respond_urls: dict[str, dict[str, Any]] = {}
        self._scheduled: list[_ScheduledFault] = []
        self._lost: list[_LostAnswer] = []
        self._events: deque[dict[str, Any]] = deque(maxlen=self._max_events)
        self._seq = 0
        self._buckets: dict[str, tuple[float, float]] = {}  # channel -> (tokens, at)
        self._tier3: dict[str, deque[float]] = {}
        self._traffic: list[tuple[float, str, str, str, str, frozenset[str]]] = []  # (t, method, channel, ts, thread, mentions)
        self._limited: dict[str, int] = {}

    # ------------------------------------------------------------------ fault injection

    def fail_next(
        self,
        method: str,
        status: int | None = None,
        retry_after: int = 1,
        count: int = 1,
        error: str | None = None,
    ) -> None:
        """Make the next ``count`` calls of ``method`` (``"*"`` = any) fail.

        * ``status=429`` (the default when no ``error`` is given): HTTP 429, ``Retry-After``
          header, body ``{"ok": false, "error": "ratelimited"}``.
        * ``status=500/503/...``: that HTTP status with an ``ok: false`` JSON body.
        * ``error="..."`` without ``status``: HTTP 200 ``{"ok": false, "error": "..."}``.
        """
        if status is None:
            status = 200 if error else 429
        if error is None:
            error = "ratelimited" if status == 429 else _server_error_name(status)
        with self._lock:
            self._scheduled.append(_ScheduledFault(method, status, error, retry_after, count))

    def lose_next_answer(
        self, method: str, *, count: int = 1, delay: float = 0.0, match: Callable[[dict[str, Any]], bool] | None = None
    ) -> None:
        """The next ``count`` calls of ``method`` (those whose params ``match``, if given) take
        effect as usual, then their answer is lost: with ``delay`` 0 the connection is closed
        without one (the client sees the remote end close), else it is sent ``delay`` seconds
        late (past a client's timeout, the client gives up first). What a client cannot tell
        apart from a call that never arrived, but Slack has the message."""
        with self._lock:
            self._lost.append(_LostAnswer(method, delay, match, count))

    def _take_lost(self, method: str, params: dict[str, Any]) -> _LostAnswer | None:
        with self._lock:
            for lost in self._lost:
                if lost.method in (method, "*") and (lost.match is None or lost.match(params)):
                    lost.remaining -= 1
                    if lost.remaining <= 0:
                        self._lost.remove(lost)
                    return lost
        return None

    @property
    def latency_seconds(self) -> float:
        return self.faults.latency_seconds

    @latency_seconds.setter
    def latency_seconds(self, value: float) -> None:
        self.faults.latency_seconds = value

    def _take_fault(self, method: str, probabilistic: bool) -> tuple[int, str, int] | None:
        with self._lock:
            for fault in self._scheduled:
                if fault.method in (method, "*"):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._scheduled.remove(fault)
                    return fault.status, fault.error, fault.retry_after
        return self.faults.roll(method) if probabilistic else None

    # ------------------------------------------------------------------ recording

    @property
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    @property
    def errors(self) -> list[tuple[str, str]]:
        """(method, error) of every Web API call answered ``ok: false`` (faults excluded)."""
        with self._lock:
            return list(self._errors)

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self._calls if c.method == method]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Block until ``predicate()`` is truthy and return its value; TimeoutError otherwise.

        Wakes on every recorded call or state change, and also re-checks every 50 ms because
        the predicate may look at state outside the stand-in.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout}s")
                self._changed.wait(min(remaining, 0.05))

    # ------------------------------------------------------------------ state API

    def add_channel(self, channel_id: str, name: str | None = None, **extra: Any) -> None:
        with self._lock:
            self._channel(channel_id)["name"] = name or self._channels[channel_id]["name"]
            self._channels[channel_id].update(extra)

    def add_user(self, user_id: str, name: str | None = None, real_name: str | None = None, tz: str = "UTC") -> None:
        with self._lock:
            self._users[user_id] = _user_object(user_id, self.team_id, name, real_name, tz, is_bot=False)

    @property
    def channels(self) -> list[str]:
        """Channel ids in order of first appearance."""
        with self._lock:
            return list(self._channels)

    def channel_info(self, channel: str) -> dict[str, Any] | None:
        with self._lock:
            info = self._channels.get(channel)
            return copy.deepcopy(info) if info else None

    def im_channel(self, user_id: str) -> str:
        """The id of the app's direct-message channel with ``user_id`` (created on first use)."""
        with self._lock:
            return self._dm(user_id)

    def _dm(self, channel: str) -> str:
        """``channel``, or the DM channel of a user id given as one (caller holds the lock).
        Slack: chat.postMessage with a user id as ``channel`` posts to the app's DM with that
        user, and the answer's ``channel`` is that DM's ``D…`` id."""
        if channel[:1] not in ("U", "W") or channel == self.bot_user_id:
            return channel
        im = "D" + channel[1:]
        if im not in self._channels:
            self._channels[im] = {**_channel_object(im, self.bot_user_id), "user": channel}
        return im

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Root messages of ``channel`` (or of the DM with a user id), oldest first, each with
        its ``replies`` list."""
        with self._lock:
            channel = self._dm(channel)
            roots = []
            for ts in self._roots.get(channel, []):
                root = copy.deepcopy(self._index[(channel, ts)])
                reply_ts = self._replies.get((channel, ts), [])
                root["replies"] = [copy.deepcopy(self._index[(channel, r)]) for r in reply_ts]
                root["reply_count"] = len(root["replies"])
                roots.append(root)
            return roots

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The thread rooted at ``ts`` as a flat list: root (if it exists) then replies."""
        with self._lock:
            channel = self._dm(channel)
            out = [copy.deepcopy(self._index[(channel, ts)])] if (channel, ts) in self._index else []
            out += [copy.deepcopy(self._index[(channel, r)]) for r in self._replies.get((channel, ts), [])]
            return out

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        with self._lock:
            msg = self._index.get((self._dm(channel), ts))
            return copy.deepcopy(msg) if msg else None

    def ephemerals(self, user: str | None = None, channel: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                copy.deepcopy(m)
                for m in self._ephemerals
                if (user is None or m["ephemeral_to"] == user) and (channel is None or m["channel"] == channel)
            ]

    @property
    def views(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._views.values()))

    @property
    def files(self) -> list[dict[str, Any]]:
        """Uploaded files, each with its ``content`` bytes and where it was ``shares``-d."""
        with self._lock:
            return copy.deepcopy(list(self._files.values()))

    def file(self, file_id: str) -> dict[str, Any] | None:
        with self._lock:
            f = self._files.get(file_id)
            return copy.deepcopy(f) if f else None

    # ------------------------------------------------------------------ keeping a workspace

    STATE_VERSION = 1

    def export_state(self) -> dict[str, Any]:
        """What a Slack workspace keeps while an app restarts: its conversations (channels and
        the app's DMs), their messages and threads in the order they were posted, and uploaded
        files. Not ephemeral answers, open views, the call log or traffic: Slack keeps none of
        those for the app either. JSON-serializable; :meth:`import_state` takes it back."""
        with self._lock:
            files = {}
            for file_id, record in self._files.items():
                kept = {k: v for k, v in record.items() if k != "content"}
                kept["content_b64"] = base64.b64encode(record.get("content") or b"").decode("ascii")
                files[file_id] = kept
            return {
                "version": self.STATE_VERSION,
                "team_id": self.team_id,
                "channels": copy.deepcopy(self._channels),
                "messages": [copy.deepcopy(msg) for msg in self._index.values()],
                "files": files,
                "last_us": self._last_us,
                "id_counter": self._id_counter,
                "ts_counter": self._ts_counter,
            }

    def import_state(self, state: dict[str, Any]) -> int:
        """Take back what :meth:`export_state` gave (before anyone posts): the conversations
        and messages are there again under their own ``ts``, so an app that kept a message's
        ``ts`` (a job's card, its thread) updates and replies to it as before. New messages
        get later ``ts`` and new files other ids. Returns how many messages were restored."""
        if state.get("version") != self.STATE_VERSION:
            raise ValueError(f"unknown Slack stand-in state version {state.get('version')!r}")
        with self._changed:
            for channel_id, info in (state.get("channels") or {}).items():
                self._channels[channel_id] = {**self._channels.get(channel_id, {}), **info}
            base = self._base_url or ""
            for file_id, kept in (state.get("files") or {}).items():
                record = {k: v for k, v in kept.items() if k != "content_b64"}
                record["content"] = base64.b64decode(kept.get("content_b64") or "")
                if base:
                    record["url_private"] = f"{base}/files/{file_id}"  # this run's address
                self._files[file_id] = record
            restored = 0
            for msg in state.get("messages") or []:
                msg = copy.deepcopy(msg)
                msg.pop("thread_missing", None)
                if msg.get("files"):
                    msg["files"] = [_file_object(self._files[f["id"]]) if f.get("id") in self._files else f for f in msg["files"]]
                thread_ts = msg.get("thread_ts")
                if thread_ts == msg["ts"]:
                    # A root with replies names itself as its thread: stored as a root, not a reply.
                    msg["thread_ts"] = None
                    self._store_message(msg["channel"], msg)
                    msg["thread_ts"] = thread_ts
                else:
                    self._store_message(msg["channel"], msg)
                restored += 1
            self._last_us = max(self._last_us, int(state.get("last_us") or 0))
            self._id_counter = max(self._id_counter, int(state.get("id_counter") or 0))
            self._ts_counter = max(self._ts_counter, int(state.get("ts_counter") or 0))
            self._changed.notify_all()
            return restored

    # ------------------------------------------------------------------ change events

    @property
    def seq(self) -> int:
        """Sequence number of the latest change event (0 before any change)."""
        with self._lock:
            return self._seq

    def events_since(self, seq: int, timeout: float = 0.0) -> list[dict[str, Any]]:
        """Change events with a sequence number greater than ``seq``.

        Each event is ``{"seq", "type", ...}`` with type ``message`` / ``update`` / ``delete`` /
        ``ephemeral`` / ``file`` (channel, ts, thread_ts, message; ``user`` for ephemerals,
        ``file_ids`` for files) or ``view`` (action, view_id, view).
        With ``timeout > 0`` blocks until at least one such event exists (long-poll). Events are
        kept in a bounded buffer; a consumer that fell behind sees a jump in ``seq``.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._seq <= seq and self._server is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            return [copy.deepcopy(e) for e in self._events if e["seq"] > seq]

    def subscribe(self, since: int | None = None) -> Subscription:
        """A cursor starting at ``since`` (default: now) whose ``next(timeout)`` long-polls."""
        return Subscription(self, self.seq if since is None else since)

    def _emit(self, type_: str, **data: Any) -> None:
        # Caller holds the lock.
        self._seq += 1
        self._events.append({"seq": self._seq, "type": type_, **copy.deepcopy(data)})
        self._changed.notify_all()

    # ------------------------------------------------------------------ response_url

    def response_url(
        self,
        channel: str,
        user: str,
        *,
        message_ts: str | None = None,
        thread_ts: str | None = None,
        awaits_ack: bool = False,
    ) -> str:
        """A URL that accepts ``respond()`` POSTs on behalf of ``user`` in ``channel``.

        ``message_ts`` names the original message (as for a button click) that
        ``replace_original`` / ``delete_original`` act on. ``awaits_ack``: a slash command's
        URL, whose original is the ack's answer: Slack shows that answer first, so what the
        app POSTs here waits until :meth:`show_ack` has shown it (a lazy listener may be faster
        than the HTTP answer), and ``replace_original`` then replaces it.
        """
        with self._lock:
            rid = self._new_id("R")
            self._respond_urls[rid] = {
                "channel": channel, "user": user, "original": message_ts, "thread_ts": thread_ts,
                "waiting": [] if awaits_ack else None,
            }
        return f"{self.base_url}/respond/{rid}"

    def show_ack(self, url: str, answer: dict[str, Any] | None) -> None:
        """Show a slash command's ack body (if it has text or blocks) as the message ``url``'s
        responses act on, then apply what the app POSTed there meanwhile, in order."""
        rid = url.rstrip("/").rsplit("/", 1)[-1]
        with self._lock:
            target = self._respond_urls.get(rid)
            if target is None:
                return
            waiting, target["waiting"] = target.get("waiting") or [], None
            if answer and (answer.get("text") or answer.get("blocks")):
                self._apply_response(target, {"response_type": "ephemeral", **answer})
            for payload in waiting:
                self._apply_response(target, payload)

    # ------------------------------------------------------------------ routes

    def add_route(self, method: str, path_prefix: str, handler: RouteHandler) -> None:
        """Serve ``method`` (``"GET"``, ``"POST"`` or ``"*"``) requests under ``path_prefix``.

        Built-in paths (``/api/``, ``/upload/``, ``/respond/``, ``/files/``) take precedence;
        among added routes the longest matching prefix wins. ``handler(RequestInfo)`` returns
        ``(status, headers, body)``.
        """
        with self._lock:
            self._routes.append((method.upper(), path_prefix, handler))
            self._routes.sort(key=lambda r: len(r[1]), reverse=True)

    # ------------------------------------------------------------------ internals: ids & storage

    def _next_ts(self) -> str:
        self._ts_counter += 1
        if self._clock is not None:
            micros = max(int(self._clock() * 1_000_000), self._last_us + 1)
        else:
            micros = self._first_us + self._ts_counter * 100
        self._last_us = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _new_id(self, prefix: str) -> str:
        self._id_counter += 1
        return f"{prefix}{self._id_counter:010d}"

    def _channel(self, channel_id: str) -> dict[str, Any]:
        if channel_id not in self._channels:
            self._channels[channel_id] = _channel_object(channel_id, self.bot_user_id)
        return self._channels[channel_id]

    def _store_message(self, channel: str, msg: dict[str, Any]) -> None:
        self._channel(channel)
        self._index[(channel, msg["ts"])] = msg
        root = msg.get("thread_ts")
        if root:
            # Slack accepts replies to a ts it does not know; keep them so tests can spot it.
            msg["thread_missing"] = (channel, root) not in self._index
            self._replies.setdefault((channel, root), []).append(msg["ts"])
            if (channel, root) in self._index:
                parent = self._index[(channel, root)]
                parent["thread_ts"] = root
                parent["latest_reply"] = msg["ts"]
        else:
            self._roots.setdefault(channel, []).append(msg["ts"])

    def _delete_message(self, channel: str, ts: str) -> None:
        msg = self._index.pop((channel, ts), None)
        if msg is None:
            return
        root = msg.get("thread_ts")
        if root and root != ts:
            self._replies.get((channel, root), []).remove(ts)
        else:
            self._roots.get(channel, []).remove(ts)

    def _bot_message(self, channel: str, params: dict[str, Any], ts: str) -> dict[str, Any]:
        return {
            "type": "message",
            "ts": ts,
            "channel": channel,
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "text": params.get("text") or "",
            "blocks": params.get("blocks") or [],
            "attachments": params.get("attachments") or [],
            "thread_ts": params.get("thread_ts") or None,
            "reply_broadcast": _truthy(params.get("reply_broadcast")),
            "metadata": params.get("metadata"),
            "ephemeral_to": None,
            "edited": 0,
            "files": [],
        }

    # ------------------------------------------------------------------ internals: request handling

    def _record(self, method: str, params: dict[str, Any], headers: dict[str, str]) -> None:
        subset = {k: headers[k] for k in _RECORDED_HEADERS if k in headers}
        with self._changed:
            self._calls.append(Call(method, params, subset))
            self._changed.notify_all()

    def _fault_response(self, method: str, probabilistic: bool) -> tuple[int, dict[str, str], bytes] | None:
        if self.faults.latency_seconds > 0:
            time.sleep(self.faults.latency_seconds)
        fault = self._take_fault(method, probabilistic)
        if fault is None:
            return None
        status, error, retry_after = fault
        headers = {"Retry-After": str(retry_after)} if status == 429 else {}
        return status, headers, _json_bytes({"ok": False, "error": error})

    # ------------------------------------------------------------------ rate limits

    def _rate_limited(self, method: str, params: dict[str, Any]) -> int | None:
        """Seconds to wait (the 429's Retry-After) if this call is over a limit; else None,
        and the call is counted against its limits."""
        if not self.limits.enabled:
            return None
        now = self._limit_clock()
        with self._lock:
            if method == "chat.postMessage" and params.get("channel"):
                channel = str(params["channel"])
                depth = float(self.limits.post_burst)
                tokens, at = self._buckets.get(channel, (depth, now))
                tokens = min(depth, tokens + (now - at) * self.limits.posts_per_second)
                if tokens < 1:
                    self._buckets[channel] = (tokens, now)
                    return self._limit(method, (1 - tokens) / self.limits.posts_per_second)
                self._buckets[channel] = (tokens - 1, now)
            elif method in _TIER3:
                window = self._tier3.setdefault(method, deque())
                while window and now - window[0] >= 60:
                    window.popleft()
                if len(window) >= self.limits.tier3_per_minute:
                    return self._limit(method, 60 - (now - window[0]))
                window.append(now)
        return None

    def _limit(self, method: str, wait: float) -> int:
        self._limited[method] = self._limited.get(method, 0) + 1
        return max(1, math.ceil(wait))

    def _note_traffic(self, method: str, params: dict[str, Any], result: dict[str, Any]) -> None:
        if method not in ("chat.postMessage", "chat.update"):
            return
        text = json.dumps([params.get("text"), params.get("blocks")]) if method == "chat.postMessage" else ""
        mentioned = frozenset(_MENTION.findall(text))
        thread = str(params.get("thread_ts") or "")
        self._traffic.append((self._limit_clock(), method, str(result.get("channel")), str(result.get("ts")), thread, mentioned))

    def traffic(self, window: float = 10.0) -> dict[str, Any]:
        """What Slack's users and limits saw: messages posted (and per channel), @-mentions
        per user (a posted message mentioning someone notifies them once; an edit does not),
        the most posts in one channel within ``window`` seconds, the most updates of one
        message and of the whole app within a minute, and the 429s answered per method."""
        with self._lock:
            traffic = list(self._traffic)
            limited = dict(self._limited)
        posts = [t for t in traffic if t[1] == "chat.postMessage"]
        updates = [t for t in traffic if t[1] == "chat.update"]
        per_channel: dict[str, list[float]] = {}
        for t in posts:
            per_channel.setdefault(t[2], []).append(t[0])
        per_message: dict[tuple[str, str], list[float]] = {}
        for t in updates:
            per_message.setdefault((t[2], t[3]), []).append(t[0])
        mentions: dict[str, int] = {}
        for t in posts:
            for user in t[5]:
                mentions[user] = mentions.get(user, 0) + 1
        return {
            "messages": len(posts),
            "messages_per_channel": {c: len(v) for c, v in per_channel.items()},
            "mentions": mentions,
            "peak_posts_per_channel": max((_peak(v, window) for v in per_channel.values()), default=0),
            "peak_updates_per_message_per_minute": max((_peak(v, 60.0) for v in per_message.values()), default=0),
            "peak_updates_per_minute": _peak([t[0] for t in updates], 60.0),
            "updates": len(updates),
            "rate_limited": limited,
            "first_at": traffic[0][0] if traffic else None,
            "last_at": traffic[-1][0] if traffic else None,
        }

    def _handle_api(self, method: str, params: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict, bytes]:
        self._record(method, params, headers)
        faulted = self._fault_response(method, probabilistic=True)
        if faulted is not None:
            return faulted
        wait = self._rate_limited(method, params)
        if wait is not None:
            return 429, {"Retry-After": str(wait)}, _json_bytes({"ok": False, "error": "ratelimited"})
        try:
            if not _token(params, headers):
                raise _ApiError("not_authed")
            handler = _API_METHODS.get(method)
            if handler is None:
                raise _ApiError("unknown_method")
            self._check_scope(method)
            with self._lock:
                result = handler(self, params)
                self._note_traffic(method, params, result)
            body = {"ok": True, **result}
        except _ApiError as exc:
            body = {"ok": False, "error": exc.error, **exc.details}
            with self._lock:
                self._errors.append((method, exc.error))
        lost = self._take_lost(method, params)
        if lost is not None:
            raise _AnswerLost(lost.delay)
        return 200, {}, _json_bytes(body)

    def _check_scope(self, method: str) -> None:
        """Slack's answer to a token without the method's scope (``needed``: the scope to add,
        ``provided``: the token's scopes, comma-separated)."""
        needed = METHOD_SCOPES[method]
        if needed and not self.scopes & set(needed):
            raise _ApiError("missing_scope", needed=",".join(needed), provided=",".join(sorted(self.scopes)))

    def _handle_upload(self, file_id: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict, bytes]:
        self._record("upload", {"file_id": file_id, "length": len(body)}, headers)
        faulted = self._fault_response("upload", probabilistic=False)
        if faulted is not None:
            return faulted
        content_type = headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            parts = _parse_multipart(body, content_type)
            file_parts = [p for p in parts if p["filename"] is not None] or parts
            data = file_parts[0]["content"] if file_parts else b""
        else:
            # slack_sdk posts the raw bytes; urllib labels them form-encoded, which they are not.
            data = body
        with self._lock:
            record = self._files.get(file_id)
            if record is None:
                return 404, {"Content-Type": "text/plain"}, b"file not found"
            record["content"] = data
            record["size"] = len(data)
            record["uploaded"] = True
        return 200, {"Content-Type": "text/plain"}, f"OK - {len(data)}".encode()

    def _handle_respond(self, rid: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict, bytes]:
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = {k: v[-1] for k, v in parse_qs(body.decode("utf-8")).items()}
        self._record("response_url", {"response_url_id": rid, **payload}, headers)
        faulted = self._fault_response("response_url", probabilistic=False)
        if faulted is not None:
            return faulted
        with self._lock:
            target = self._respond_urls.get(rid)
            if target is None:
                return 404, {"Content-Type": "application/json"}, _json_bytes({"ok": False, "error": "expired_url"})
            if target.get("waiting") is not None:
                target["waiting"].append(payload)
            else:
                self._apply_response(target, payload)
        return 200, {"Content-Type": "application/json"}, _json_bytes({"ok": True})

    def _apply_response(self, target: dict[str, Any], payload: dict[str, Any]) -> None:
        channel, user = target["channel"], target["user"]
        original = target["original"]
        if _truthy(payload.get("delete_original")):
            if original is not None:
                self._delete_original(channel, original)
                target["original"] = None
            return
        if _truthy(payload.get("replace_original")) and original is not None:
            msg = self._index.get((channel, original)) or next(
                (m for m in self._ephemerals if m["ts"] == original and m["channel"] == channel), None
            )
            if msg is not None:
                # The new message replaces the whole original: a text-only answer drops the
                # original's blocks (a confirmation's buttons go with its question).
                msg["text"] = payload.get("text") or ""
                msg["blocks"] = _maybe_json(payload.get("blocks")) or []
                msg["edited"] += 1
                self._emit("update", channel=channel, ts=original, thread_ts=msg["thread_ts"], message=msg)
                return
        params = {
            "text": payload.get("text"),
            "blocks": _maybe_json(payload.get("blocks")),
            "thread_ts": payload.get("thread_ts") or target["thread_ts"],
        }
        ts = self._next_ts()
        msg = self._bot_message(channel, params, ts)
        if payload.get("response_type") == "in_channel":
            self._store_message(channel, msg)
            self._emit("message", channel=channel, ts=ts, thread_ts=msg["thread_ts"], message=msg)
        else:
            msg["ephemeral_to"] = user
            self._ephemerals.append(msg)
            self._emit("ephemeral", channel=channel, ts=ts, thread_ts=msg["thread_ts"], user=user, message=msg)
        # Later replace_original/delete_original calls on this URL act on what it last posted.
        target["original"] = ts

    def _delete_original(self, channel: str, ts: str) -> None:
        if (channel, ts) in self._index:
            self._delete_message(channel, ts)
        else:
            self._ephemerals = [m for m in self._ephemerals if not (m["ts"] == ts and m["channel"] == channel)]
        self._emit("delete", channel=channel, ts=ts)

    def _handle_file_download(self, file_id: str) -> tuple[int, dict, bytes]:
        with self._lock:
            record = self._files.get(file_id)
            if record is None:
                return 404, {"Content-Type": "text/plain"}, b"file not found"
            return 200, {"Content-Type": record["mimetype"]}, record["content"]

    def _route(self, method: str, path: str) -> RouteHandler | None:
        with self._lock:
            for route_method, prefix, handler in self._routes:
                if route_method in (method, "*") and path.startswith(prefix):
                    return handler
        return None

    # ------------------------------------------------------------------ Web API methods

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": self.base_url + "/",
            "team": self.team_name,
            "user": "trainbot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel")
        if not channel:
            raise _ApiError("channel_not_found")
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            raise _ApiError("no_text")
        channel = self._dm(channel)
        ts = self._next_ts()
        msg = self._bot_message(channel, params, ts)
        self._store_message(channel, msg)
        self._emit("message", channel=channel, ts=ts, thread_ts=msg["thread_ts"], message=msg)
        return {"channel": channel, "ts": ts, "message": _api_message(msg)}

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params.get("channel"), params.get("ts")
        if not channel:
            raise _ApiError("channel_not_found")
        msg = self._index.get((channel, ts or ""))
        if msg is None:
            raise _ApiError("message_not_found")
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            raise _ApiError("no_text")
        for key in ("text", "blocks", "attachments", "metadata"):
            if params.get(key) is not None:
                msg[key] = params[key]
        msg["edited"] += 1
        self._emit("update", channel=channel, ts=ts, thread_ts=msg["thread_ts"], message=msg)
        return {"channel": channel, "ts": ts, "text": msg["text"], "message": _api_message(msg)}

    def _chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, ts = params.get("channel"), params.get("ts")
        if not channel:
            raise _ApiError("channel_not_found")
        msg = self._index.get((channel, ts or ""))
        if msg is None:
            raise _ApiError("message_not_found")
        if msg.get("bot_id") != self.bot_id:
            raise _ApiError("cant_delete_message")  # a bot token deletes only its own messages
        self._delete_message(channel, str(ts))
        self._emit("delete", channel=channel, ts=ts)
        return {"channel": channel, "ts": ts}

    def _chat_post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, user = params.get("channel"), params.get("user")
        if not channel:
            raise _ApiError("channel_not_found")
        if not user:
            raise _ApiError("user_not_in_channel")
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            raise _ApiError("no_text")
        ts = self._next_ts()
        msg = self._bot_message(channel, params, ts)
        msg["ephemeral_to"] = user
        self._channel(channel)
        self._ephemerals.append(msg)
        self._emit("ephemeral", channel=channel, ts=ts, thread_ts=msg["thread_ts"], user=user, message=msg)
        return {"message_ts": ts}

    def _views_open(self, params: dict[str, Any], push: bool = False) -> dict[str, Any]:
        if not params.get("trigger_id") or not isinstance(params.get("view"), dict):
            raise _ApiError("invalid_arguments")
        view_id = self._new_id("V")
        previous = next(reversed(self._views.values()), None) if push else None
        view = {
            "id": view_id,
            "team_id": self.team_id,
            "type": "modal",
            "blocks": [],
            "private_metadata": "",
            "callback_id": "",
            "external_id": "",
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{view_id}",
            "clear_on_close": False,
            "notify_on_close": False,
            "root_view_id": previous["root_view_id"] if previous else view_id,
            "previous_view_id": previous["id"] if previous else None,
            "app_id": self.app_id,
            "bot_id": self.bot_id,
            **params["view"],
        }
        view["id"] = view_id
        self._views[view_id] = view
        self._emit("view", action="push" if push else "open", view_id=view_id, view=view)
        return {"view": view}

    def _views_push(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._views_open(params, push=True)

    def _views_update(self, params: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(params.get("view"), dict) or not (params.get("view_id") or params.get("external_id")):
            raise _ApiError("invalid_arguments")
        if params.get("view_id"):
            view = self._views.get(params["view_id"])
        else:
            view = next((v for v in self._views.values() if v.get("external_id") == params["external_id"]), None)
        if view is None:
            raise _ApiError("not_found")
        view.update({k: v for k, v in params["view"].items() if k != "id"})
        view["hash"] = f"{int(time.time())}.{view['id']}.{self._ts_counter}"
        self._emit("view", action="update", view_id=view["id"], view=view)
        return {"view": view}

    def _files_get_upload_url(self, params: dict[str, Any]) -> dict[str, Any]:
        # As documented (tests/fixtures/slack_files_upload_v2.json): filename and length are
        # required, and a length of 0 is a missing argument.
        filename, length = params.get("filename"), params.get("length")
        if not filename or length in (None, ""):
            raise _ApiError("invalid_arguments")
        if not str(length).isdigit():
            raise _ApiError("invalid_arguments")
        if int(length) == 0:
            raise _ApiError("missing_argument")
        file_id = self._new_id("F")
        self._files[file_id] = {
            "id": file_id,
            "name": filename,
            "title": filename,
            "mimetype": _guess_mimetype(filename),
            "size": int(length),
            "declared_length": int(length),
            "alt_txt": params.get("alt_txt"),
            "user": self.bot_user_id,
            "created": int(time.time()),
            "url_private": f"{self.base_url}/files/{file_id}",
            "content": b"",
            "uploaded": False,
            "shares": [],
        }
        return {"upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload(self, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files")
        if not isinstance(files, list) or not files:
            raise _ApiError("invalid_arguments")
        records = []
        for item in files:
            record = self._files.get(item.get("id", "")) if isinstance(item, dict) else None
            if record is None or not record["uploaded"]:
                raise _ApiError("file_not_found")
            if item.get("title"):
                record["title"] = item["title"]
            records.append(record)
        channels = [c for c in str(params.get("channels") or "").split(",") if c]
        if params.get("channel_id"):
            channels.insert(0, params["channel_id"])
        thread_ts = params.get("thread_ts") or None
        if thread_ts and len(channels) != 1:  # a reply goes to exactly one channel's thread
            raise _ApiError("invalid_arguments")
        for channel in channels:
            ts = self._next_ts()
            msg = self._bot_message(channel, {"text": params.get("initial_comment"), "thread_ts": thread_ts}, ts)
            msg["files"] = [_file_object(r) for r in records]
            self._store_message(channel, msg)
            for r in records:
                r["shares"].append({"channel": channel, "ts": ts, "thread_ts": thread_ts})
            self._emit(
                "file", channel=channel, ts=ts, thread_ts=thread_ts, file_ids=[r["id"] for r in records], message=msg
            )
        return {"files": [_file_object(r) for r in records]}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = params.get("user")
        if not user:
            raise _ApiError("user_not_found")
        if user not in self._users:
            is_bot = user == self.bot_user_id
            self._users[user] = _user_object(
                user, self.team_id, "trainbot" if is_bot else None, None, "UTC", is_bot=is_bot
            )
        return {"user": copy.deepcopy(self._users[user])}

    def _conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = params.get("channel")
        if not channel:
            raise _ApiError("channel_not_found")
        return {"channel": copy.deepcopy(self._channel(channel))}

    def _conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        """A thread, parent first, a page at a time: ``ts`` is the parent's or any reply's;
        ``limit`` (at most REPLIES_LIMIT, the default) and ``cursor`` (a ``next_cursor`` this
        method gave out); message metadata only with ``include_all_metadata``. The answer's
        shape is Slack's documented example (tests/fixtures/slack_conversations_replies.json)."""
        channel, ts = params.get("channel"), str(params.get("ts") or "")
        if not channel:
            raise _ApiError("channel_not_found")
        channel = self._dm(channel)
        if channel not in self._channels:
            raise _ApiError("channel_not_found")
        found = self._index.get((channel, ts))
        if found is None:
            raise _ApiError("thread_not_found")
        root_ts = found.get("thread_ts") or ts
        root = self._index.get((channel, root_ts))
        thread = ([root] if root is not None else []) + [self._index[(channel, r)] for r in self._replies.get((channel, root_ts), [])]
        try:
            limit = int(params.get("limit") or REPLIES_LIMIT)
        except (TypeError, ValueError):
            raise _ApiError("invalid_limit") from None
        limit = max(1, min(limit, REPLIES_LIMIT))
        start = 0
        if params.get("cursor"):
            offset = _cursor_offset(str(params["cursor"]))
            if offset is None or offset > len(thread):
                raise _ApiError("invalid_cursor")
            start = offset
        page = thread[start : start + limit]
        with_metadata = _truthy(params.get("include_all_metadata"))
        messages = []
        for msg in page:
            out = _api_message(msg)
            if not with_metadata:
                out.pop("metadata", None)
            if msg is root:
                out["thread_ts"] = root_ts
                out["reply_count"] = len(thread) - 1
            else:
                out["parent_user_id"] = root["user"] if root is not None else self.bot_user_id
            messages.append(out)
        more = start + limit < len(thread)
        answer: dict[str, Any] = {"messages": messages, "has_more": more}
        if more:
            answer["response_metadata"] = {"next_cursor": _cursor_for(start + limit)}
        return answer


_API_METHODS: dict[str, Callable[[SlackStandIn, dict[str, Any]], dict[str, Any]]] = {
    "auth.test": SlackStandIn._auth_test,
    "chat.postMessage": SlackStandIn._chat_post_message,
    "chat.update": SlackStandIn._chat_update,
    "chat.delete": SlackStandIn._chat_delete,
    "chat.postEphemeral": SlackStandIn._chat_post_ephemeral,
    "views.open": SlackStandIn._views_open,
    "views.push": SlackStandIn._views_push,
    "views.update": SlackStandIn._views_update,
    "files.getUploadURLExternal": SlackStandIn._files_get_upload_url,
    "files.completeUploadExternal": SlackStandIn._files_complete_upload,
    "users.info": SlackStandIn._users_info,
    "conversations.info": SlackStandIn._conversations_info,
    "conversations.replies": SlackStandIn._conversations_replies,
}


# ---------------------------------------------------------------------- HTTP plumbing


def _make_handler(standin: SlackStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "SlackStandIn/1.0"

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def _dispatch(self, http_method: str) -> None:
            url = urlsplit(self.path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            length = int(headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                status, resp_headers, resp_body = self._route(http_method, url.path, url.query, headers, body)
            except _AnswerLost as lost:
                if not lost.delay:
                    self.close_connection = True  # the client sees the remote end close
                    return
                time.sleep(lost.delay)  # the client gave up meanwhile: what is sent goes nowhere
                status, resp_headers, resp_body = 200, {}, _json_bytes({"ok": True, "warning": "answer_came_too_late"})
            except Exception:  # a bug in the stand-in or a route must not kill the connection silently
                logger.exception("slack stand-in failed on %s %s", http_method, self.path)
                status, resp_headers, resp_body = 500, {"Content-Type": "text/plain"}, traceback.format_exc().encode()
            if isinstance(resp_body, str):
                resp_body = resp_body.encode("utf-8")
            self.send_response(status)
            resp_headers = dict(resp_headers)
            resp_headers.setdefault("Content-Type", "application/json; charset=utf-8")
            for name, value in resp_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(resp_body)))
            try:
                self.end_headers()
                self.wfile.write(resp_body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client left (it timed out): as a server sees it

        def _route(
            self, http_method: str, path: str, query: str, headers: dict[str, str], body: bytes
        ) -> tuple[int, dict[str, str], bytes | str]:
            if path.startswith("/api/"):
                params = _parse_params(query, headers.get("content-type", ""), body)
                return standin._handle_api(path[len("/api/") :], params, headers)
            if http_method == "POST" and path.startswith("/upload/"):
                return standin._handle_upload(path[len("/upload/") :], body, headers)
            if http_method == "POST" and path.startswith("/respond/"):
                return standin._handle_respond(path[len("/respond/") :], body, headers)
            if http_method == "GET" and path.startswith("/files/"):
                return standin._handle_file_download(path[len("/files/") :])
            handler = standin._route(http_method, path)
            if handler is None:
                return 404, {"Content-Type": "text/plain"}, b"not found"
            return handler(RequestInfo(http_method, path, parse_qs(query, keep_blank_values=True), headers, body))

        def log_message(self, format: str, *args: Any) -> None:
            logger.debug("slack stand-in: " + format, *args)

    return Handler


def _parse_params(query: str, content_type: str, body: bytes) -> dict[str, Any]:
    params: dict[str, Any] = _flatten(parse_qs(query, keep_blank_values=True))
    if body:
        if content_type.startswith("application/json"):
            decoded = json.loads(body)
            if isinstance(decoded, dict):
                params.update(decoded)
        elif content_type.startswith("multipart/form-data"):
            for part in _parse_multipart(body, content_type):
                if part["name"]:
                    params[part["name"]] = (
                        part["content"] if part["filename"] is not None else part["content"].decode("utf-8")
                    )
        else:
            params.update(_flatten(parse_qs(body.decode("utf-8"), keep_blank_values=True)))
    for key in _JSON_PARAMS:
        if key in params:
            params[key] = _maybe_json(params[key])
    return params


def _flatten(parsed: dict[str, list[str]]) -> dict[str, Any]:
    return {k: v[0] if len(v) == 1 else v for k, v in parsed.items()}


def _parse_multipart(body: bytes, content_type: str) -> list[dict[str, Any]]:
    boundary = ""
    for piece in content_type.split(";")[1:]:
        key, _, value = piece.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if not boundary:
        return []
    parts = []
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        raw_headers, _, content = chunk.partition(b"\r\n\r\n")
        # Each part's content is followed by the CRLF that precedes the next delimiter.
        if content.endswith(b"\r\n"):
            content = content[:-2]
        name = filename = None
        for line in raw_headers.decode("utf-8", "replace").split("\r\n"):
            if line.lower().startswith("content-disposition:"):
                for attr in line.split(";")[1:]:
                    key, _, value = attr.strip().partition("=")
                    if key == "name":
                        name = value.strip('"')
                    elif key == "filename":
                        filename = value.strip('"')
        parts.append({"name": name, "filename": filename, "content": content})
    return parts


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


def _token(params: dict[str, Any], headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return params.get("token") or None


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data).encode("utf-8")


def _api_message(msg: dict[str, Any]) -> dict[str, Any]:
    """The message as the Web API returns it (without the stand-in's bookkeeping fields)."""
    out = {k: v for k, v in msg.items() if k not in ("channel", "ephemeral_to", "edited", "thread_missing")}
    if not out.get("thread_ts"):
        out.pop("thread_ts", None)
    if out.get("metadata") is None:
        out.pop("metadata", None)
    return out


def _cursor_for(offset: int) -> str:
    """An opaque page cursor (Slack's are base64, ``next_ts:…``-like): here, the offset."""
    return base64.b64encode(f"next_offset:{offset}".encode()).decode()


def _cursor_offset(cursor: str) -> int | None:
    try:
        kind, _, value = base64.b64decode(cursor.encode(), validate=True).decode().partition(":")
        return int(value) if kind == "next_offset" else None
    except (ValueError, UnicodeDecodeError):
        return None


def _file_object(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("content", "uploaded", "declared_length")}


def _guess_mimetype(filename: str) -> str:
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return {
        "png": "image/png",
        "jpg": "image/jpeg",
        "jpeg": "image/jpeg",
        "gif": "image/gif",
        "svg": "image/svg+xml",
        "txt": "text/plain",
        "log": "text/plain",
        "csv": "text/csv",
        "json": "application/json",
        "yaml": "text/yaml",
        "yml": "text/yaml",
        "html": "text/html",
        "pdf": "application/pdf",
    }.get(ext, "application/octet-stream")


def _user_object(
    user_id: str, team_id: str, name: str | None, real_name: str | None, tz: str, *, is_bot: bool
) -> dict[str, Any]:
    name = name or f"user-{user_id.lower()}"
    real_name = real_name or name.replace(".", " ").replace("-", " ").title()
    return {
        "id": user_id,
        "team_id": team_id,
        "name": name,
        "real_name": real_name,
        "deleted": False,
        "is_bot": is_bot,
        "is_admin": False,
        "tz": tz,
        "tz_label": tz,
        "tz_offset": _tz_offset(tz),
        "profile": {
            "real_name": real_name,
            "display_name": name,
            "email": None if is_bot else f"{name}@trainbot.local",
            "image_48": "",
        },
    }


def _tz_offset(tz: str) -> int:
    try:
        offset = datetime.now(ZoneInfo(tz)).utcoffset()
    except (ZoneInfoNotFoundError, ValueError):
        return 0
    return int(offset.total_seconds()) if offset is not None else 0


def _channel_object(channel_id: str, creator: str) -> dict[str, Any]:
    is_im = channel_id.startswith("D")
    return {
        "id": channel_id,
        "name": channel_id.lower(),
        "is_channel": channel_id.startswith("C"),
        "is_group": channel_id.startswith("G"),
        "is_im": is_im,
        "is_private": not channel_id.startswith("C"),
        "is_member": True,
        "is_archived": False,
        "created": 1_700_000_000,
        "creator": creator,
        "topic": {"value": "", "creator": "", "last_set": 0},
        "purpose": {"value": "", "creator": "", "last_set": 0},
        "num_members": 2,
    }

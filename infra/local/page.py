"""The Slack-like page's server side, served by the Slack stand-in (``add_route``).

The page (``infra/local/static/``) shows one channel of the stand-in and each page user's
direct messages with the app (where the admins' approval cards go), live (it long-polls the
stand-in's change feed). What the user does there reaches the bot as Slack would send it: a typed
``/train …`` becomes a slash-command body, a button click a ``block_actions`` payload, a modal's
Submit a ``view_submission``; each is signed with the app's signing secret and POSTed to the
bot's Function URL. The ack's body (an ephemeral answer) is shown as Slack shows it.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import mimetypes
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.local.standins.slack import RequestInfo, SlackStandIn
from infra.local.standins.slack_signing import block_actions_body, signed_headers, slash_command_body, view_submission_body

logger = logging.getLogger("trainbot.local")

PAGE_DIR = Path(__file__).resolve().parent / "static"
LONG_POLL_SECONDS = 20.0

Response = tuple[int, dict[str, str], bytes | str]


@dataclass(frozen=True)
class PageUser:
    user_id: str
    name: str


def _json(status: int, data: Any) -> Response:
    return status, {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"}, json.dumps(data)


class SlackPage:
    """Routes for the page and the signed requests it makes on the user's behalf."""

    def __init__(
        self,
        slack: SlackStandIn,
        bot_url: str,
        signing_secret: str,
        *,
        channel_id: str,
        channel_name: str,
        users: list[PageUser],
        stats_png: Callable[[], bytes] | None = None,
    ) -> None:
        self.slack = slack
        self.bot_url = bot_url
        self._secret = signing_secret
        self.channel_id = channel_id
        self.channel_name = channel_name
        self.users = users
        self._stats_png = stats_png
        # Each page user's DM with the app: where the bot's posts to that user id land.
        self.ims = {user.user_id: slack.im_channel(user.user_id) for user in users}

    def install(self) -> None:
        self.slack.add_route("GET", "/", self._static)
        self.slack.add_route("GET", "/page/state", self._state)
        self.slack.add_route("GET", "/page/events", self._events)
        self.slack.add_route("POST", "/page/command", self._command_route)
        self.slack.add_route("POST", "/page/action", self._action_route)
        self.slack.add_route("POST", "/page/view", self._view_route)
        if self._stats_png is not None:
            self.slack.add_route("GET", "/stats.png", self._stats)

    @property
    def url(self) -> str:
        return self.slack.base_url + "/"

    # --- what the user does, as Slack sends it --------------------------------------------

    def command(self, text: str, user_id: str) -> dict[str, Any]:
        """Run ``/train …`` as ``user_id``: sign and send the slash command; show the ack's body
        as an ephemeral answer. Returns ``{"status", "answer"}``."""
        text = text.strip()
        command, _, rest = text.partition(" ")
        if command != "/train":
            self._ephemeral(user_id, f"`{command or text}` is not a command here; type `/train help`.")
            return {"status": 404, "answer": None}
        user = self._user(user_id)
        # One response_url for the ack's answer and the bot's later ones, as Slack gives it:
        # a later ``replace_original`` replaces the ack's "Registering…".
        response_url = self.slack.response_url(self.channel_id, user.user_id, awaits_ack=True)
        body = slash_command_body(
            command="/train",
            text=rest.strip(),
            user_id=user.user_id,
            team_id=self.slack.team_id,
            channel_id=self.channel_id,
            response_url=response_url,
            user_name=user.name,
            channel_name=self.channel_name,
            api_app_id=self.slack.app_id,
        )
        status, answer = self._send(body)
        # Slack shows a slash command's ack body to the user who typed it.
        self.slack.show_ack(response_url, answer if status == 200 else None)
        if status != 200:
            self._ephemeral(user.user_id, f":warning: the bot answered HTTP {status}")
        return {"status": status, "answer": answer}

    def click(
        self, action_id: str, value: str, message_ts: str, user_id: str, block_id: str = "actions", channel: str = ""
    ) -> dict[str, Any]:
        """Click a button on message ``message_ts`` in ``channel`` (the page's channel, or the
        clicking user's DM with the app) as ``user_id``."""
        user = self._user(user_id)
        # A DM is seen only by its user: a click elsewhere is a click in the channel.
        channel = channel if channel == self.ims.get(user.user_id) else self.channel_id
        message = self.slack.message(channel, message_ts) or next(
            (m for m in self.slack.ephemerals(channel=channel) if m["ts"] == message_ts), None
        )
        echoed = {k: message.get(k) for k in ("type", "ts", "text", "blocks", "thread_ts") if message and message.get(k) is not None}
        body = block_actions_body(
            action_id,
            value,
            user_id=user.user_id,
            team_id=self.slack.team_id,
            channel_id=channel,
            message_ts=message_ts,
            response_url=self.slack.response_url(channel, user.user_id, message_ts=message_ts),
            block_id=block_id,
            message=echoed,
            user_name=user.name,
            # Slack names a DM "directmessage" in an interaction's payload.
            channel_name=self.channel_name if channel == self.channel_id else "directmessage",
            api_app_id=self.slack.app_id,
        )
        status, answer = self._send(body)
        return {"status": status, "answer": answer}

    def submit_view(self, view_id: str, values: dict[str, dict[str, str]], user_id: str) -> dict[str, Any]:
        """Submit modal ``view_id`` with ``values`` ({block_id: {action_id: text}})."""
        user = self._user(user_id)
        view = next((v for v in self.slack.views if v["id"] == view_id), None)
        if view is None:
            return {"status": 404, "answer": {"error": "no such view"}}
        state = {
            block: {action: {"type": "plain_text_input", "value": text} for action, text in actions.items()}
            for block, actions in values.items()
        }
        body = view_submission_body(
            view.get("callback_id", ""),
            state,
            user_id=user.user_id,
            team_id=self.slack.team_id,
            private_metadata=view.get("private_metadata", ""),
            view_id=view_id,
            user_name=user.name,
            api_app_id=self.slack.app_id,
        )
        status, answer = self._send(body)
        return {"status": status, "answer": answer}

    # --- plumbing ----------------------------------------------------------------------------

    def _user(self, user_id: str) -> PageUser:
        return next((u for u in self.users if u.user_id == user_id), self.users[0])

    def _send(self, body: str) -> tuple[int, dict[str, Any] | None]:
        headers = signed_headers(self._secret, body)
        request = urllib.request.Request(self.bot_url, data=body.encode("utf-8"), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except OSError as exc:
            logger.warning("the bot could not be reached: %s", exc)
            return 503, None
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, {"text": raw.decode("utf-8", "replace")}

    @staticmethod
    def _respond(url: str, payload: dict[str, Any]) -> None:
        data = json.dumps({"response_type": "ephemeral", **payload}).encode()
        request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def _ephemeral(self, user_id: str, text: str) -> None:
        self._respond(self.slack.response_url(self.channel_id, user_id), {"text": text})

    # --- routes ------------------------------------------------------------------------------

    def _static(self, request: RequestInfo) -> Response:
        name = "index.html" if request.path in ("/", "/index.html") else request.path.removeprefix("/static/")
        if request.path not in ("/", "/index.html") and not request.path.startswith("/static/"):
            return 404, {"Content-Type": "text/plain"}, b"not found"
        path = (PAGE_DIR / name).resolve()
        if PAGE_DIR not in path.parents or not path.is_file():
            return 404, {"Content-Type": "text/plain"}, b"not found"
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return 200, {"Content-Type": f"{kind}; charset=utf-8" if kind.startswith("text") or kind.endswith("javascript") else kind, "Cache-Control": "no-store"}, path.read_bytes()

    def _state(self, request: RequestInfo) -> Response:
        seq = self.slack.seq
        return _json(
            200,
            {
                "seq": seq,
                "team": {"id": self.slack.team_id, "name": self.slack.team_name},
                "channel": {"id": self.channel_id, "name": self.channel_name},
                "ims": self.ims,
                "bot_user_id": self.slack.bot_user_id,
                "users": [{"id": u.user_id, "name": u.name} for u in self.users],
                "messages": self.slack.messages(self.channel_id),
                "dms": {im: self.slack.messages(im) for im in self.ims.values()},
                "ephemerals": [e for c in self._shown() for e in self.slack.ephemerals(channel=c)],
                "stats": self._stats_png is not None,
            },
        )

    def _events(self, request: RequestInfo) -> Response:
        try:
            since = int(request.query.get("since", ["0"])[-1])
            timeout = min(LONG_POLL_SECONDS, float(request.query.get("timeout", [str(LONG_POLL_SECONDS)])[-1]))
        except ValueError:
            return _json(400, {"error": "since and timeout are numbers"})
        events = self.slack.events_since(since, timeout=timeout)
        shown = {None, *self._shown()}
        relevant = [e for e in events if e.get("channel") in shown]
        return _json(200, {"seq": events[-1]["seq"] if events else since, "events": relevant, "first": events[0]["seq"] if events else None})

    def _shown(self) -> list[str]:
        """The conversations the page shows: its channel and its users' DMs."""
        return [self.channel_id, *self.ims.values()]

    def _body(self, request: RequestInfo) -> dict[str, Any]:
        data = request.json()
        if not isinstance(data, dict):
            raise ValueError("a JSON object is expected")
        return data

    def _command_route(self, request: RequestInfo) -> Response:
        data = self._body(request)
        return _json(200, self.command(str(data.get("text", "")), str(data.get("user", ""))))

    def _action_route(self, request: RequestInfo) -> Response:
        data = self._body(request)
        return _json(
            200,
            self.click(
                str(data.get("action_id", "")),
                str(data.get("value", "")),
                str(data.get("message_ts", "")),
                str(data.get("user", "")),
                str(data.get("block_id") or "actions"),
                str(data.get("channel") or ""),
            ),
        )

    def _view_route(self, request: RequestInfo) -> Response:
        data = self._body(request)
        values = data.get("values") or {}
        return _json(200, self.submit_view(str(data.get("view_id", "")), values, str(data.get("user", ""))))

    def _stats(self, request: RequestInfo) -> Response:
        try:
            if self._stats_png is None:
                return _json(404, {"error": "no stats renderer in this stack"})
            return 200, {"Content-Type": "image/png", "Cache-Control": "no-store"}, self._stats_png()
        except Exception as exc:
            logger.exception("stats chart failed")
            return 500, {"Content-Type": "text/plain"}, f"stats chart failed: {exc}".encode()


def stats_renderer(store_factory: Callable[[], Any]) -> Callable[[], bytes] | None:
    """A ``/stats.png`` renderer when ``backend.services.chart`` offers ``chart_png(store,
    now=…)``; else None and the route is not served."""
    if importlib.util.find_spec("backend.services.chart") is None:
        return None
    chart_png = getattr(importlib.import_module("backend.services.chart"), "chart_png", None)
    if not callable(chart_png):
        logger.warning("backend.services.chart has no chart_png; /stats.png is not served")
        return None

    def render() -> bytes:
        from datetime import UTC, datetime

        return bytes(chart_png(store_factory(), now=datetime.now(UTC)))

    return render

"""Build and sign the HTTP requests Slack sends to Trainbot.

Tests, the local mode and benchmarks drive the bot the way Slack does: a form-encoded body
(slash command, or ``payload=<json>`` for interactions) signed with the app's signing secret
(https://docs.slack.dev/authentication/verifying-requests-from-slack/), delivered to the bot's
Lambda Function URL. This module produces those bodies, the signature headers, and the
Lambda Function URL event (payload format 2.0) that ``slack_bolt.adapter.aws_lambda`` reads.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

__all__ = [
    "block_actions_body",
    "lambda_url_event",
    "sign",
    "signed_headers",
    "slash_command_body",
    "view_submission_body",
]

DEFAULT_TEAM_ID = "T0LOCAL"
DEFAULT_USER_ID = "U0USER"
DEFAULT_CHANNEL_ID = "C0LOCAL"
DEFAULT_APP_ID = "A0TRAINBOT"
TEAM_DOMAIN = "trainbot-local"
# Slack still sends the deprecated verification token in payloads; bolt ignores it.
LEGACY_TOKEN = "verification-token-unused"

_ids = itertools.count(1)


def sign(signing_secret: str, body: str, timestamp: int) -> str:
    """Slack's v0 signature: ``"v0=" + hex(HMAC-SHA256(secret, "v0:{ts}:{body}"))``."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(signing_secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


def signed_headers(signing_secret: str, body: str, timestamp: int | None = None) -> dict[str, str]:
    """Headers Slack sends with a signed request (timestamp defaults to now)."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sign(signing_secret, body, ts),
        "Content-Type": "application/x-www-form-urlencoded",
    }


def _trigger_id() -> str:
    # Shaped like Slack's "<number>.<number>.<hex>" trigger ids; unique per process.
    n = next(_ids)
    return f"{int(time.time())}{n:04d}.{n}.{uuid.uuid4().hex}"


def slash_command_body(
    command: str = "/train",
    text: str = "",
    user_id: str = DEFAULT_USER_ID,
    team_id: str = DEFAULT_TEAM_ID,
    channel_id: str = DEFAULT_CHANNEL_ID,
    response_url: str = "",
    trigger_id: str | None = None,
    *,
    user_name: str = "local.user",
    channel_name: str = "trainbot",
    api_app_id: str = DEFAULT_APP_ID,
) -> str:
    """A slash command request body, field for field as Slack form-encodes it."""
    return urlencode(
        {
            "token": LEGACY_TOKEN,
            "team_id": team_id,
            "team_domain": TEAM_DOMAIN,
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_name,
            "command": command,
            "text": text,
            "api_app_id": api_app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id or _trigger_id(),
        }
    )


def block_actions_body(
    action_id: str,
    value: str = "",
    user_id: str = DEFAULT_USER_ID,
    team_id: str = DEFAULT_TEAM_ID,
    channel_id: str = DEFAULT_CHANNEL_ID,
    message_ts: str = "1700000000.000100",
    response_url: str = "",
    trigger_id: str | None = None,
    block_id: str = "actions",
    *,
    message: dict[str, Any] | None = None,
    user_name: str = "local.user",
    channel_name: str = "trainbot",
    api_app_id: str = DEFAULT_APP_ID,
) -> str:
    """A button click (``block_actions``) request body: ``payload=<json>``, form-encoded.

    ``message`` is the message carrying the button as Slack echoes it back; by default a
    minimal one with ``message_ts``.
    """
    action_ts = f"{time.time():.6f}"
    msg = {"type": "message", "ts": message_ts, "text": "", "blocks": [], **(message or {})}
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": LEGACY_TOKEN,
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id, "is_ephemeral": False},
        "trigger_id": trigger_id or _trigger_id(),
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "message": msg,
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": block_id,
                "text": {"type": "plain_text", "text": action_id, "emoji": True},
                "value": value,
                "type": "button",
                "action_ts": action_ts,
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


def view_submission_body(
    callback_id: str,
    state_values: dict[str, Any],
    user_id: str = DEFAULT_USER_ID,
    team_id: str = DEFAULT_TEAM_ID,
    private_metadata: str = "",
    *,
    view_id: str = "V0000000001",
    user_name: str = "local.user",
    api_app_id: str = DEFAULT_APP_ID,
    trigger_id: str | None = None,
) -> str:
    """A modal submission (``view_submission``) request body: ``payload=<json>``, form-encoded.

    ``state_values`` is ``view.state.values``: ``{block_id: {action_id: {"type": ..., "value": ...}}}``.
    """
    payload = {
        "type": "view_submission",
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": LEGACY_TOKEN,
        "trigger_id": trigger_id or _trigger_id(),
        "view": {
            "id": view_id,
            "team_id": team_id,
            "type": "modal",
            "blocks": [],
            "private_metadata": private_metadata,
            "callback_id": callback_id,
            "state": {"values": state_values},
            "hash": f"{int(time.time())}.{view_id}",
            "title": {"type": "plain_text", "text": "Trainbot", "emoji": True},
            "clear_on_close": False,
            "notify_on_close": False,
            "close": None,
            "submit": {"type": "plain_text", "text": "Submit", "emoji": True},
            "previous_view_id": None,
            "root_view_id": view_id,
            "app_id": api_app_id,
            "external_id": "",
            "app_installed_team_id": team_id,
            "bot_id": "B0BOT",
        },
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return urlencode({"payload": json.dumps(payload)})


def lambda_url_event(body: str, headers: dict[str, str], path: str = "/slack/events") -> dict[str, Any]:
    """Wrap a request as a Lambda Function URL / HTTP API payload-format-2.0 event.

    Header names are lower-cased, as AWS delivers them and as bolt's ``to_bolt_request``
    expects; the body stays plain text (``isBase64Encoded: false``) so the signature still
    matches byte for byte.
    """
    now = datetime.now(UTC)
    lowered = {
        "host": "trainbot.lambda-url.local",
        "user-agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        "x-forwarded-proto": "https",
        "content-length": str(len(body.encode("utf-8"))),
    }
    lowered.update({k.lower(): v for k, v in headers.items()})
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": lowered,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "trainbot",
            "domainName": lowered["host"],
            "domainPrefix": lowered["host"].split(".", 1)[0],
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": lowered["user-agent"],
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": body,
        "isBase64Encoded": False,
    }

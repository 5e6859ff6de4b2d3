"""Is this Function URL event a request Slack signed, recently, with a body bolt can read?

Checked on the raw event before anything parses the body (bolt parses first and verifies later,
so an unsigned ``payload=%7Bnot-json`` used to raise inside it and become a 5xx). Pure: no
I/O, never raises; :func:`refusal` returns why a request is refused, or None.

- the signature is Slack's v0 HMAC-SHA256 of ``v0:{timestamp}:{body}`` with the signing secret
  (https://api.slack.com/authentication/verifying-requests-from-slack), compared in constant time;
- the timestamp is decimal digits, within five minutes of now (replays are refused);
- the body is what bolt expects: UTF-8 text (base64-decoded when the event says so); a JSON
  object, or a form whose ``payload`` field, when present, is a JSON object.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

MAX_AGE_SECONDS = 5 * 60
_MAX_TIMESTAMP_DIGITS = 12


def unsigned_refusal(event: Any, now: float) -> str | None:
    """Why ``event`` must be refused with a 401 before any secret is known: not shaped like a
    Function URL event, no signature, a timestamp that is not a fresh number. The handler asks
    this first, so a request nobody signed costs no wiring and no secret fetch."""
    return _unsigned(event, now)[0]


def refusal(event: Any, signing_secret: str, now: float) -> str | None:
    """Why ``event`` must be refused with a 401, or None when it is authentic and well-formed."""
    why, timestamp, signature, body, content_type = _unsigned(event, now)
    if why is not None:
        return why
    if not signing_secret or not signature.isascii():
        return "bad signature"
    expected = "v0=" + hmac.new(signing_secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "bad signature"
    return _malformed(body, content_type)


def _unsigned(event: Any, now: float) -> tuple[str | None, str, str, str, str]:
    """(why refused or None, timestamp, signature, body, content type)."""
    if not isinstance(event, Mapping):
        return "not an event", "", "", "", ""
    headers = _headers(event.get("headers"))
    if headers is None:
        return "no headers", "", "", "", ""
    timestamp = headers.get("x-slack-request-timestamp") or ""
    signature = headers.get("x-slack-signature") or ""
    if not timestamp or not signature:
        return "unsigned", "", "", "", ""
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= _MAX_TIMESTAMP_DIGITS):
        return "timestamp is not a number", "", "", "", ""
    if abs(now - int(timestamp)) > MAX_AGE_SECONDS:
        return "stale timestamp", "", "", "", ""
    body = _body(event)
    if body is None:
        return "not a Function URL event with a UTF-8 text body", "", "", "", ""
    return None, timestamp, signature, body, headers.get("content-type", "")


# Values a template, a guide or a test has shipped in place of the real secret: a request signed
# with one of these proves nothing, since anyone can read them.
_PLACEHOLDERS = ("replace", "changeme", "change-me", "change_me", "placeholder", "example", "todo", "xxxx", "secret")
MIN_SECRET_LENGTH = 32  # Slack's signing secrets are 32 hex characters


def unusable_secret(signing_secret: str, bot_token: str) -> str | None:
    """Why the bot must not act with these credentials (it answers 503 until they are real), or
    None. A placeholder, empty or short signing secret would let anyone sign requests; a bot token
    that is not a bot token means the operator has not finished the deploy guide's step 3."""
    lowered = signing_secret.strip().lower()
    if not lowered:
        return "the signing secret is empty"
    if any(word in lowered for word in _PLACEHOLDERS):
        return "the signing secret is a placeholder"
    if len(lowered) < MIN_SECRET_LENGTH:
        return f"the signing secret is shorter than {MIN_SECRET_LENGTH} characters"
    if len(set(lowered)) < 8:
        return "the signing secret is not random"
    if not bot_token.startswith("xoxb-") or any(word in bot_token.lower() for word in _PLACEHOLDERS[:5]):
        return "the bot token is not a Slack bot token (xoxb-…)"
    return None


def _headers(raw: Any) -> dict[str, str] | None:
    """Lower-cased headers, each its first value; None unless every name is a string and every
    value a string or a list of strings (bolt raises otherwise; its lazy re-invocations carry
    ``cookie`` as a list)."""
    if not isinstance(raw, Mapping):
        return None
    headers = {}
    for name, value in raw.items():
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = value[0] if value else ""
        if not isinstance(name, str) or not isinstance(value, str):
            return None
        headers[name.lower()] = value
    return headers


def _body(event: Mapping[str, Any]) -> str | None:
    body = event.get("body")
    if body is None:
        body = ""
    if not isinstance(body, str) or not isinstance(event.get("isBase64Encoded"), bool):
        return None
    if not isinstance(event.get("cookies") or [], list) or not isinstance(event.get("queryStringParameters") or {}, Mapping):
        return None
    if event["isBase64Encoded"]:
        try:
            return base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
    try:
        body.encode("utf-8")  # a lone surrogate cannot be signed, nor read by bolt
    except UnicodeEncodeError:
        return None
    return body


def _malformed(body: str, content_type: str) -> str | None:
    """Why bolt could not read ``body`` (``slack_bolt.request.internals.parse_body``), or None."""
    if not body:
        return None
    if content_type.split(";")[0] == "application/json" or body.startswith("{"):
        return None if isinstance(_json(body), dict) else "body is not a JSON object"
    if "payload" in body:
        payload = dict(parse_qsl(body, keep_blank_values=True)).get("payload")
        if payload is not None and not isinstance(_json(payload), dict):
            return "payload is not a JSON object"
    return None


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None

"""Is this Function URL event a request Slack signed, recently, with a body bolt can read?

Checked on the raw event before anything parses the body (bolt parses first and verifies later,
so an unsigned ``payload=%7Bnot-json`` used to raise inside it and become a 5xx). Pure: no
I/O, never raises; :func:`refusal` returns why a request is refused, or None.

- the signature is Slack's v0 HMAC-SHA256 of ``v0:{timestamp}:{body}`` with the signing secret
  (https://api.slack.com/authentication/verifying-requests-from-slack), compared in constant time;
- the timestamp is decimal digits, within five minutes of now (replays are refused);
- the body is what bolt expects: UTF-8 text (base64-decoded when the event says so); a JSON
  object, or a form whose ``payload`` field, when present, is a JSON object.

Our own lazy self-invocations (bolt re-sends the Slack request to this function with
``x-slack-bolt-lazy-only``) are authenticated our way, not by Slack's timestamp rule: Lambda may
deliver them late (the template allows an hour), after the user was told "Registering…". When
bolt self-invokes, :func:`sign_lazy` adds an HMAC over the request and the lazy function's name
with a key derived from the signing secret; :func:`lazy_refusal` accepts such an event whatever
its age and refuses any event that claims to be lazy without that HMAC.
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


LAZY_ONLY_HEADER = "x-slack-bolt-lazy-only"
LAZY_FUNCTION_HEADER = "x-slack-bolt-lazy-function-name"
LAZY_SIGNATURE_HEADER = "x-trainbot-lazy-signature"


def unsigned_refusal(event: Any, now: float) -> str | None:
    """Why ``event`` must be refused with a 401 before any secret is known: not shaped like a
    Function URL event, no signature, a timestamp that is not a fresh number (a lazy
    self-invocation's may be old: its own HMAC is checked once the secret is known). The handler
    asks this first, so a request nobody signed costs no wiring and no secret fetch."""
    return _unsigned(event, now, allow_stale=is_lazy(event))[0]


def is_lazy(event: Any) -> bool:
    """Whether ``event`` claims to be one of bolt's lazy self-invocations."""
    headers = _headers(event.get("headers")) if isinstance(event, Mapping) else None
    return bool(headers and (LAZY_ONLY_HEADER in headers or LAZY_SIGNATURE_HEADER in headers))


def lazy_key(signing_secret: str) -> bytes:
    """The key of our self-invocations' HMAC: derived from, never equal to, the signing secret."""
    return hmac.new(signing_secret.encode(), b"trainbot lazy self-invocation v1", hashlib.sha256).digest()


def sign_lazy(event: dict[str, Any], key: bytes) -> None:
    """Add our HMAC to a lazy self-invocation ``event`` (its headers already name the function)."""
    event["headers"][LAZY_SIGNATURE_HEADER] = _lazy_mac(event, key)


def lazy_refusal(event: Any, key: bytes) -> str | None:
    """Why a lazy self-invocation must be refused with a 401 (no or a wrong HMAC, a body bolt
    could not read), or None. Its age does not matter: we signed it."""
    why, _, _, body, content_type = _unsigned(event, 0, allow_stale=True)
    if why is not None:
        return why
    signature = (_headers(event.get("headers")) or {}).get(LAZY_SIGNATURE_HEADER, "")
    if not signature.isascii() or not hmac.compare_digest(_lazy_mac(event, key), signature):
        return "bad lazy signature"
    return _malformed(body, content_type)


def _lazy_mac(event: Mapping[str, Any], key: bytes) -> str:
    headers = _headers(event.get("headers")) or {}
    signed = [
        headers.get(LAZY_ONLY_HEADER, ""),
        headers.get(LAZY_FUNCTION_HEADER, ""),
        headers.get("x-slack-request-timestamp", ""),
        headers.get("x-slack-signature", ""),
        bool(event.get("isBase64Encoded")),
        str(event.get("body") or ""),
    ]
    return "v1=" + hmac.new(key, json.dumps(signed).encode(), hashlib.sha256).hexdigest()


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


# What a refused event leaves for the rest of the tuple: nothing (callers read only the reason).
_NOTHING: tuple[str, str, str, str] = ("", "", "", "")


def _unsigned(event: Any, now: float, *, allow_stale: bool = False) -> tuple[str | None, str, str, str, str]:
    """(why refused or None, timestamp, signature, body, content type)."""
    if not isinstance(event, Mapping):
        return ("not an event", *_NOTHING)
    headers = _headers(event.get("headers"))
    if headers is None:
        return ("no headers", *_NOTHING)
    timestamp = headers.get("x-slack-request-timestamp") or ""
    signature = headers.get("x-slack-signature") or ""
    if not timestamp or not signature:
        return ("unsigned", *_NOTHING)
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= _MAX_TIMESTAMP_DIGITS):
        return ("timestamp is not a number", *_NOTHING)
    if not allow_stale and abs(now - int(timestamp)) > MAX_AGE_SECONDS:
        return ("stale timestamp", *_NOTHING)
    body = _body(event)
    if body is None:
        return ("not a Function URL event with a UTF-8 text body", *_NOTHING)
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

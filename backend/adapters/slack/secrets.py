"""The Slack credentials: from the environment when given, else from Secrets Manager.

Locally and in tests ``SLACK_SIGNING_SECRET`` / ``SLACK_BOT_TOKEN`` are given directly. In AWS
they live in one JSON secret (``SLACK_SECRET_ID``: ``{"signing_secret": …, "bot_token": …}``),
read with GetSecretValue and kept for ``CACHE_SECONDS`` across warm invocations, so a busy bot
does not call Secrets Manager per request, and a secret the operator fills in after a deploy is
seen within that time.

This is what Powertools Parameters' ``get_secret(…, transform="json", max_age=…)`` did, without
its import: Parameters imports boto3 (its AppConfig provider), about 20 ms more of the bot's
first request than the botocore client the read needs (:mod:`backend.adapters.aws`).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from backend.config import Settings
from backend.errors import ConfigError

CACHE_SECONDS = 300

_cache: dict[str, tuple[float, Any]] = {}  # secret id -> (monotonic expiry, its JSON value)
_clients: dict[str, Any] = {}  # region -> its Secrets Manager client (made on the first read)
_lock = threading.Lock()


@dataclass(frozen=True)
class SlackCredentials:
    signing_secret: str
    bot_token: str


def slack_credentials(settings: Settings) -> SlackCredentials:
    """The signing secret and bot token; ConfigError naming what is missing."""
    signing_secret, bot_token = settings.slack_signing_secret, settings.slack_bot_token
    if (not signing_secret or not bot_token) and settings.slack_secret_id:
        secret = _secret(settings.slack_secret_id, settings.aws_region)
        signing_secret = signing_secret or str(secret.get("signing_secret", ""))
        bot_token = bot_token or str(secret.get("bot_token", ""))
    missing = [n for n, v in (("SLACK_SIGNING_SECRET", signing_secret), ("SLACK_BOT_TOKEN", bot_token)) if not v]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} not set, and no SLACK_SECRET_ID secret provides them")
    return SlackCredentials(signing_secret, bot_token)


def clear_cached_secrets() -> None:
    """Forget the secrets read so far (tests: as after a cold start, or the cache's expiry)."""
    with _lock:
        _cache.clear()


def _secret(secret_id: str, region: str) -> dict:
    """The secret's JSON value, read at most once per ``CACHE_SECONDS``; ConfigError when it
    cannot be read (any failure of the call, as Powertools Parameters turned every one into a
    GetParameterError) or is not a JSON object."""
    now = time.monotonic()
    cached = _cache.get(secret_id)
    if cached is not None and now < cached[0]:
        value = cached[1]
    else:
        try:
            answer = _client(region).get_secret_value(SecretId=secret_id)
            text = answer["SecretString"] if "SecretString" in answer else answer["SecretBinary"]
        except Exception as exc:
            raise ConfigError(f"SLACK_SECRET_ID {secret_id!r} could not be read as JSON: {exc}") from exc
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"SLACK_SECRET_ID {secret_id!r} could not be read as JSON: {exc}") from exc
        with _lock:
            _cache[secret_id] = (now + CACHE_SECONDS, value)
    if not isinstance(value, dict):
        raise ConfigError(f"SLACK_SECRET_ID {secret_id!r} must hold a JSON object with signing_secret and bot_token")
    return value


def _client(region: str) -> Any:
    """The region's Secrets Manager client, from the shared session (one of its own would load
    botocore's endpoint data again on the bot's first request)."""
    with _lock:
        if region not in _clients:
            from backend.adapters.aws import aws_client

            _clients[region] = aws_client("secretsmanager", region=region)
        return _clients[region]

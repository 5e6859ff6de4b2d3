"""The Slack credentials: from the environment when given, else from Secrets Manager.

Locally and in tests ``SLACK_SIGNING_SECRET`` / ``SLACK_BOT_TOKEN`` are given directly. In AWS
they live in one JSON secret (``SLACK_SECRET_ID``: ``{"signing_secret": …, "bot_token": …}``),
read with Powertools Parameters, which caches it (``max_age``) across warm invocations so a
busy bot does not call Secrets Manager per request.
"""

from __future__ import annotations

from dataclasses import dataclass

from backend.config import Settings
from backend.errors import ConfigError

CACHE_SECONDS = 300


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


def _secret(secret_id: str, region: str) -> dict:
    # Imported here: Powertools Parameters pulls in boto3, which the env-configured path never needs.
    from aws_lambda_powertools.utilities.parameters import SecretsProvider, get_secret
    from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError, TransformParameterError

    if "secrets" not in DEFAULT_PROVIDERS:
        from backend.adapters.aws import aws_client

        # get_secret's provider, with a client from the shared session: one of its own would
        # load botocore's endpoint data again on the bot's first request.
        DEFAULT_PROVIDERS["secrets"] = SecretsProvider(boto3_client=aws_client("secretsmanager", region=region))

    try:
        value = get_secret(secret_id, transform="json", max_age=CACHE_SECONDS)
    except (GetParameterError, TransformParameterError) as exc:
        raise ConfigError(f"SLACK_SECRET_ID {secret_id!r} could not be read as JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"SLACK_SECRET_ID {secret_id!r} must hold a JSON object with signing_secret and bot_token")
    return value

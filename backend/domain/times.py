"""Time helpers: every timestamp Trainbot stores is timezone-aware UTC, written in one fixed
format so that the strings sort like the instants they name (DynamoDB sort keys rely on it).
Pydantic's timestamp field type is :data:`backend.domain.base.UtcDatetime` (this module is on
every cold start's path, and needs no pydantic)."""

from __future__ import annotations

from datetime import UTC, datetime

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def to_utc(value: datetime) -> datetime:
    """``value`` as aware UTC; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_utc(value: datetime) -> str:
    """Fixed-width ISO-8601 (microseconds always present), so string order is time order."""
    return to_utc(value).strftime(_FORMAT)


def parse_utc(text: str) -> datetime:
    """Inverse of :func:`format_utc`; also accepts any ISO-8601 string."""
    return to_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))

"""A stats chart request: what the bot asks the chart function to draw, and where to post it.

The bot answers ``/train stats`` with its summary in the channel, then invokes the chart
function asynchronously with one of these as the event (:meth:`ChartRequest.event`); the chart
function reads the same window (:class:`backend.services.stats.StatsReader`), draws it and
uploads it in the summary's thread. ``key`` (the slash command's trigger id) makes a request
idempotent: Lambda may deliver an asynchronous event twice, and retries a failed one.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from backend.domain.base import DomainModel
from backend.domain.model import Owner
from backend.errors import InvalidRequest

CHART_EVENT = "chart"  # the event's "trainbot" value


class ChartRequest(DomainModel):
    """The stats query (scope, days, preset) and its Slack destination."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")

    key: str = Field(min_length=1, max_length=200)
    scope: Literal["mine", "all", "user"]
    user_id: str | None = None  # whose jobs, for scope "user"
    days: int = Field(ge=1, le=366)
    preset: str | None = None
    requester: Owner
    channel_id: str = Field(min_length=1)
    thread_ts: str | None = None  # the summary's ts: the chart is its reply

    def event(self) -> dict[str, Any]:
        """The Lambda event carrying this request."""
        return {"trainbot": CHART_EVENT, "request": self.model_dump(mode="json", by_alias=True)}

    @classmethod
    def from_event(cls, event: Any) -> ChartRequest:
        """The request an event carries; InvalidRequest naming what is wrong otherwise."""
        if not isinstance(event, dict) or event.get("trainbot") != CHART_EVENT:
            raise InvalidRequest(["not a chart request"])
        try:
            return cls.model_validate(event.get("request"))
        except ValidationError as exc:
            raise InvalidRequest([f"{'.'.join(map(str, e['loc'])) or 'request'}: {e['msg']}" for e in exc.errors()]) from exc

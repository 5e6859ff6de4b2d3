"""Ask the chart function for a stats chart: an asynchronous Lambda Invoke (``InvocationType=
Event``) carrying the request, as the launcher kick does (:mod:`backend.adapters.launch_trigger`).
The bot never draws: matplotlib lives only in the chart function's artifact."""

from __future__ import annotations

from typing import Any

from backend.adapters.launch_trigger import invoke_event
from backend.domain.charts import ChartRequest


class LambdaChartTrigger:
    """:class:`backend.ports.ChartTrigger` over Lambda's Invoke API."""

    def __init__(self, client: Any, function_name: str) -> None:
        self._client = client
        self._function = function_name

    def request_chart(self, request: ChartRequest) -> None:
        invoke_event(self._client, self._function, request.event())

"""Chart Lambda: draws the `/train stats` chart the bot asked for and posts it in the summary's
thread. Invoked asynchronously by the bot (``InvocationType=Event``) with a
:class:`backend.domain.charts.ChartRequest`; its own artifact carries matplotlib, so the bot's
and the scheduled functions' do not."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from backend.domain.charts import ChartRequest
from backend.entrypoints import coldstart, runtime
from backend.entrypoints.runtime import logger, metrics
from backend.errors import InvalidRequest


@coldstart.settles
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
    try:
        request = ChartRequest.from_event(event)
    except InvalidRequest as exc:  # never retried: the same event would fail the same way
        logger.error("not a chart request", extra={"problems": exc.problems})
        metrics.add_metric(name="ChartRequestsUnparseable", unit=MetricUnit.Count, value=1)
        return {"outcome": "unparseable"}
    logger.append_keys(chart=request.key, channel=request.channel_id)
    outcome = runtime.container().charts.post(request)
    metrics.add_metric(name=f"Charts_{outcome.kind}", unit=MetricUnit.Count, value=1)
    return outcome.as_dict()

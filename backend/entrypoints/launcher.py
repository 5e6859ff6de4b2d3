"""Launcher Lambda: one launcher tick, on its EventBridge schedule (every minute) or kicked by
a registration (start on submit, :mod:`backend.services.kick`)."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from backend.entrypoints import coldstart, runtime
from backend.entrypoints.runtime import logger, metrics, time_left
from backend.services.kick import is_kick, kicked_for

KICK_SETTLE_SECONDS = 1.0


@coldstart.settles
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
    wired = runtime.container()
    kicked = is_kick(event)
    if kicked:
        # Before reading the queue: a job registered from now on kicks a run of its own.
        wired.kicker.consume()
    report = wired.launcher.run_tick(should_continue=lambda: time_left(context))
    if kicked and report.due == 0 and time_left(context) and wired.launcher.may_be_unseen(kicked_for(event)):
        # The Queue index is eventually consistent: the job that kicked us may not show in it
        # yet. One more look a moment later, rather than leaving it to the schedule (not when
        # an earlier run launched it already: then there is nothing to wait for).
        time.sleep(KICK_SETTLE_SECONDS)
        report = wired.launcher.run_tick(should_continue=lambda: time_left(context))
    metrics.add_metric(name="JobsLaunched", unit=MetricUnit.Count, value=report.launched + report.adopted)
    metrics.add_metric(name="LauncherLagSeconds", unit=MetricUnit.Seconds, value=report.max_lag_seconds)
    runtime.add_notification_metrics(wired)
    metrics.add_metric(name="JobsDue", unit=MetricUnit.Count, value=report.due)
    for cause, count in report.by_class.items():
        metrics.add_metric(name=f"CreateRefused_{cause}", unit=MetricUnit.Count, value=count)
        if cause in ("quota", "capacity", "throttling"):
            metrics.add_metric(name=f"JobsRetried_{cause}", unit=MetricUnit.Count, value=count)
    return report.as_dict()

"""What every Lambda entry point shares: one logger, one metrics object, and the container
built once per cold start (lazily, so importing a handler has no side effects)."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from backend.bootstrap import Container, build
from backend.config import Settings
from backend.entrypoints.emf import trainbot_metrics

logger = Logger(service="trainbot")
metrics = trainbot_metrics()

# Leave this much of the Lambda's time unused: stop claiming/describing and report.
RESERVE_MS = 15_000
# The monitor's sweep stops describing this much earlier, so its outbox drain has time of its own.
DRAIN_MS = 30_000


_installed: Container | None = None


def container() -> Container:
    """The wired system for this execution environment (built from the environment on first
    use, once per cold start)."""
    global _installed
    if _installed is None:
        _installed = build(Settings.from_env())
    return _installed


def install(wired: Container | None) -> None:
    """Use ``wired`` from now on (tests and local mode wire their own: a clock, stand-ins);
    None forgets it, so the next call builds from the environment again."""
    global _installed
    _installed = wired


def add_notification_metrics(wired: Container) -> None:
    """Notifications sent and failed (left pending or rejected) during this invocation, and
    (only when there were any) changes in doubt found already told and not sent again."""
    from aws_lambda_powertools.metrics import MetricUnit

    totals = wired.dispatcher.take_totals()
    metrics.add_metric(name="NotificationsSent", unit=MetricUnit.Count, value=totals.sent)
    metrics.add_metric(name="NotificationFailures", unit=MetricUnit.Count, value=totals.pending + totals.rejected)
    if totals.confirmed:
        metrics.add_metric(name="NotificationsConfirmed", unit=MetricUnit.Count, value=totals.confirmed)


def time_left(context: LambdaContext | None, reserve_ms: int = RESERVE_MS) -> bool:
    """Whether the invocation has more than ``reserve_ms`` left (always, outside Lambda)."""
    return context is None or context.get_remaining_time_in_millis() > reserve_ms

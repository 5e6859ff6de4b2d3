"""Monitor Lambda: a SageMaker training job state change (EventBridge rule), or the scheduled
sweep (active jobs and the notification outbox)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from backend.adapters.sagemaker_events import UnparseableEvent, parse_state_change
from backend.domain.terms import parse_attempt_name
from backend.entrypoints import coldstart, runtime
from backend.entrypoints.runtime import logger, metrics, time_left
from backend.errors import StoreUnavailable

STATE_CHANGE = "SageMaker Training Job State Change"


@coldstart.settles
@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext | None) -> dict[str, Any]:
    monitor = runtime.container().monitor
    if event.get("detail-type") == STATE_CHANGE:
        try:
            status = parse_state_change(event)
        except UnparseableEvent as exc:
            # Retrying cannot make it readable: Lambda's retries would only carry it into the
            # dead-letter queue. The sweep still sees the job within five minutes.
            logger.warning("unparseable SageMaker event", extra={"reason": str(exc), "event_id": event.get("id")})
            metrics.add_metric(name="EventsUnparseable", unit=MetricUnit.Count, value=1)
            return {"unparseable": 1, "reason": str(exc)}
        parsed = parse_attempt_name(status.name)
        if parsed is None:
            return {"ignored": status.name}  # not a Trainbot training job
        logger.append_keys(job_id=parsed[0])
        report = monitor.observe(*parsed, status)
    else:
        report = monitor.sweep(
            should_continue=lambda: time_left(context),
            describe_while=lambda: time_left(context, runtime.RESERVE_MS + runtime.DRAIN_MS),
        )
        metrics.add_metric(name="NotificationsPending", unit=MetricUnit.Count, value=report.notifications_pending)
        if report.orphans_stopped:  # training jobs no job ran, stopped by the sweep's reaper
            metrics.add_metric(name="OrphansStopped", unit=MetricUnit.Count, value=report.orphans_stopped)
        runtime.container().price_book.refresh()  # at most once a day: list prices for estimates
        try:
            # The stats tallies: the slices of finished jobs now ten minutes old (most runs: none).
            rolled = runtime.container().rollup.roll(should_continue=lambda: time_left(context))
            if rolled.slices:
                logger.info("stats rollup", extra={"rollup": rolled.as_dict()})
        except StoreUnavailable as exc:
            logger.warning("stats rollup skipped: the store did not answer", extra={"reason": str(exc)})
        stuck = stuck_retrying(runtime.container())
        if stuck is not None:
            metrics.add_metric(name="JobsStuckRetrying", unit=MetricUnit.Count, value=stuck)
    metrics.add_metric(name="JobsMoved", unit=MetricUnit.Count, value=report.applied)
    for moved_to, name in (("Completed", "JobsCompleted"), ("Failed", "JobsFailed"), ("Stopped", "JobsStopped")):
        if report.moved.get(moved_to):
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=report.moved[moved_to])
    for cause, count in report.retried.items():
        metrics.add_metric(name=f"JobsRetried_{cause}", unit=MetricUnit.Count, value=count)
    runtime.add_notification_metrics(runtime.container())
    for cause, count in report.outcomes.items():
        metrics.add_metric(name=f"AttemptFailed_{cause}", unit=MetricUnit.Count, value=count)
    return report.as_dict()


def stuck_retrying(container) -> int | None:
    """Retrying jobs, due for launch, whose capacity wait ran past the max wait plus one backoff:
    the launcher should have launched or failed them (template.yaml alarms on this). None when
    the store cannot say."""
    settings, now = container.settings, container.clock()
    limit = timedelta(seconds=settings.capacity_max_wait_seconds + settings.retry_max_seconds)
    try:
        due = container.store.retrying_due(now, None)
    except StoreUnavailable:
        return None
    return sum(1 for job in due if job.capacity_wait_since is not None and now - job.capacity_wait_since > limit)

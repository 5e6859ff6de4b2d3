"""Monitor Lambda: a SageMaker training job state change (EventBridge rule), or the scheduled
sweep (active jobs and the notification outbox)."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from backend.adapters.sagemaker import to_training_status
from backend.domain.model import parse_attempt_name
from backend.handlers import runtime
from backend.handlers.runtime import logger, metrics, time_left

STATE_CHANGE = "SageMaker Training Job State Change"


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict, context) -> dict:  # noqa: ANN001 - a Lambda context
    monitor = runtime.container().monitor
    if event.get("detail-type") == STATE_CHANGE:
        status = to_training_status(event["detail"])
        parsed = parse_attempt_name(status.name)
        if parsed is None:
            return {"ignored": status.name}  # not a Trainbot training job
        logger.append_keys(job_id=parsed[0])
        report = monitor.observe(*parsed, status)
    else:
        report = monitor.sweep(should_continue=lambda: time_left(context))
        metrics.add_metric(name="NotificationsPending", unit=MetricUnit.Count, value=report.notifications_pending)
    metrics.add_metric(name="JobsMoved", unit=MetricUnit.Count, value=report.applied)
    for cause, count in report.outcomes.items():
        metrics.add_metric(name=f"AttemptFailed_{cause}", unit=MetricUnit.Count, value=count)
    return report.as_dict()

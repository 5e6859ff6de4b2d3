"""SageMaker's EventBridge events, parsed: the pure half of the SageMaker adapter.

``SageMaker Training Job State Change`` carries DescribeTrainingJob's fields in ``detail``, but
its times come in whatever form the event's producer wrote: AWS documents strings of epoch
milliseconds (``"TrainingStartTime": "1583831889050"``), other deliveries carry numbers, and
ISO-8601 strings are valid JSON times too. :func:`event_time` accepts all of them and
:func:`parse_state_change` turns an event into a :class:`TrainingStatus`; anything else is an
:class:`UnparseableEvent`, which the monitor logs and counts instead of raising (a raise would
be retried into the dead-letter queue).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from backend.domain.plans import plan_of_arn
from backend.domain.times import to_utc
from backend.ports import TrainingState, TrainingStatus

STATES = {
    "InProgress": TrainingState.RUNNING,
    "Stopping": TrainingState.STOPPING,
    "Completed": TrainingState.COMPLETED,
    "Failed": TrainingState.FAILED,
    "Stopped": TrainingState.STOPPED,
}
# Epoch values above this are milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
_MILLIS_ABOVE = 1e11
_LATEST = datetime(9999, 12, 31, tzinfo=UTC).timestamp()


class UnparseableEvent(ValueError):
    """An event (or a field of one) the monitor cannot read; logged and counted, never retried."""


def event_time(value: Any) -> datetime | None:
    """A SageMaker time as aware UTC: a datetime, epoch seconds or milliseconds (a number or a
    numeric string), or an ISO-8601 string. None/empty is None; anything else UnparseableEvent."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return to_utc(value)
    if isinstance(value, bool):
        raise UnparseableEvent(f"not a time: {value!r}")
    if isinstance(value, int | float):
        return _epoch(float(value), value)
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            pass
        else:
            return _epoch(number, value)
        try:
            return to_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
        except ValueError as exc:
            raise UnparseableEvent(f"not a time: {value!r}") from exc
    raise UnparseableEvent(f"not a time: {value!r}")


def _epoch(number: float, original: Any) -> datetime:
    if not math.isfinite(number) or number < 0:
        raise UnparseableEvent(f"not a time: {original!r}")
    seconds = number / 1000 if number > _MILLIS_ABOVE else number
    if seconds > _LATEST:
        raise UnparseableEvent(f"not a time: {original!r}")
    return datetime.fromtimestamp(seconds, tz=UTC)


def training_status(description: dict[str, Any]) -> TrainingStatus:
    """A DescribeTrainingJob answer or an event's ``detail`` in the domain's terms; raises
    UnparseableEvent when a field has a shape SageMaker never sends."""
    if not isinstance(description, dict):
        raise UnparseableEvent(f"detail is {type(description).__name__}, not an object")
    name = description.get("TrainingJobName")
    if not isinstance(name, str) or not name:
        raise UnparseableEvent("no TrainingJobName")
    secondary = description.get("SecondaryStatus") or ""
    reason = description.get("FailureReason") or ""
    billable = description.get("BillableTimeInSeconds")
    if not isinstance(secondary, str) or not isinstance(reason, str):
        raise UnparseableEvent("SecondaryStatus and FailureReason must be strings")
    if billable is not None and (isinstance(billable, bool) or not isinstance(billable, int | float | str)):
        raise UnparseableEvent(f"BillableTimeInSeconds is not a number: {billable!r}")
    try:
        billable_seconds = None if billable in (None, "") else int(float(billable))
    except (TypeError, ValueError) as exc:
        raise UnparseableEvent(f"BillableTimeInSeconds is not a number: {billable!r}") from exc
    return TrainingStatus(
        name=name,
        state=STATES.get(str(description.get("TrainingJobStatus", "")), TrainingState.RUNNING),
        failure_reason=reason,
        max_runtime_exceeded=secondary == "MaxRuntimeExceeded",
        max_wait_exceeded=secondary == "MaxWaitTimeExceeded",
        spot_interrupted=secondary == "Interrupted" or _was_interrupted(description.get("SecondaryStatusTransitions")),
        started_at=event_time(description.get("TrainingStartTime")),
        ended_at=event_time(description.get("TrainingEndTime")),
        billable_seconds=billable_seconds,
        training_plan=_training_plan(description.get("ResourceConfig")),
        final_metrics=_final_metrics(description.get("FinalMetricDataList")),
        model_artifact=_model_artifact(description.get("ModelArtifacts")),
        extra={"secondary_status": secondary},
    )


def _training_plan(resources: Any) -> str | None:
    """The plan ``ResourceConfig.TrainingPlanArn`` names ("" none; None: no ResourceConfig)."""
    if not isinstance(resources, dict):
        return None
    return plan_of_arn(resources.get("TrainingPlanArn")) or ""


_S3_URI = re.compile(r"^s3://[^/\s]+/\S*$")


def _final_metrics(data: Any) -> dict[str, float]:
    """``FinalMetricDataList`` (MetricData: MetricName, Value, Timestamp) as name -> value; an
    entry of another shape, or a value that is not a finite number, is left out (a metric
    nobody can rank by is no reason to drop the status it came with)."""
    if not isinstance(data, list):
        return {}
    metrics: dict[str, float] = {}
    for datum in data:
        if not isinstance(datum, dict):
            continue
        name, value = datum.get("MetricName"), datum.get("Value")
        if not isinstance(name, str) or not name or isinstance(value, bool) or not isinstance(value, int | float | str):
            continue
        try:
            number = float(value)
        except ValueError:
            continue
        if math.isfinite(number):
            metrics[name[:255]] = number
    return metrics


def _model_artifact(artifacts: Any) -> str | None:
    """``ModelArtifacts.S3ModelArtifacts``: where the trained model was written."""
    uri = artifacts.get("S3ModelArtifacts") if isinstance(artifacts, dict) else None
    return uri if isinstance(uri, str) and len(uri) <= 1024 and _S3_URI.match(uri) else None


def _was_interrupted(transitions: Any) -> bool:
    """Whether SageMaker's secondary status history shows a spot interruption."""
    if not isinstance(transitions, list):
        return False
    return any(isinstance(t, dict) and t.get("Status") == "Interrupted" for t in transitions)


def parse_state_change(event: Any) -> TrainingStatus:
    """The training status a ``SageMaker Training Job State Change`` event reports."""
    if not isinstance(event, dict):
        raise UnparseableEvent(f"event is {type(event).__name__}, not an object")
    detail: Any = event.get("detail")
    return training_status(detail)

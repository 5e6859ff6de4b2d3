"""Local mode delivers SageMaker's state changes to the monitor as EventBridge does: each
event its own asynchronous invocation, several at once, so one invocation that is slow (a
thread reply waiting for Slack's per-channel pace) never holds up the events behind it, and
every invocation has the time its function's Timeout gives it. (Delivered one after another,
a demo of ten jobs spent seconds per change waiting behind other jobs' replies.)"""

from __future__ import annotations

import threading
import time
from typing import Any

from infra.local.functions import FunctionDriver

RECEIVED: list[tuple[str, float]] = []
FINISHED: list[str] = []
RELEASE = threading.Event()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The function the template below declares: the first job's event is slow."""
    RECEIVED.append((event["detail"]["TrainingJobName"], context.get_remaining_time_in_millis()))
    if event["detail"]["TrainingJobName"] == "tb-slow-a1":
        RELEASE.wait(10)
    FINISHED.append(event["detail"]["TrainingJobName"])
    return {}


TEMPLATE = {
    "Resources": {
        "MonitorFunction": {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "Handler": f"{__name__}.handler",
                "Timeout": 120,
                "Events": {"State": {"Type": "EventBridgeRule", "Properties": {"Pattern": {"source": ["aws.sagemaker"]}}}},
            },
        }
    }
}


def _event(name: str) -> dict[str, Any]:
    return {"source": "aws.sagemaker", "detail-type": "SageMaker Training Job State Change", "detail": {"TrainingJobName": name}}


def test_a_slow_event_invocation_does_not_hold_up_the_events_behind_it():
    RECEIVED.clear()
    FINISHED.clear()
    RELEASE.clear()
    driver = FunctionDriver(TEMPLATE, schedule_seconds=lambda spec, rate: rate, table_names={}, event_concurrency=4)
    driver.start()
    try:
        handed = time.monotonic()
        assert driver.put_events([_event("tb-slow-a1"), _event("tb-quick-a1"), _event("tb-other-a1")]) == 3
        assert time.monotonic() - handed < 1  # handed over, not run in the bus's thread
        deadline = time.monotonic() + 5
        while len(RECEIVED) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert {name for name, _ in RECEIVED} == {"tb-slow-a1", "tb-quick-a1", "tb-other-a1"}  # while the first still runs
        assert "tb-slow-a1" not in FINISHED  # the others did not wait for it
        # Each invocation counts down from the function's own Timeout (120 s), not a fixed 30 s.
        assert all(110_000 < left <= 120_000 for _, left in RECEIVED)
    finally:
        RELEASE.set()
        driver.stop()

"""The SNS message of a change carries a deduplication key a subscriber can use: the one
duplicate no outbox can prevent (a publish that succeeded but whose answer was lost) is sent
with the same key, and a FIFO topic drops it itself."""

from __future__ import annotations

import json
from typing import Any

from backend.adapters.sns import SnsNotifier
from tests.conftest import make_job


class Client:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def publish(self, **kwargs: Any) -> dict[str, str]:
        self.calls.append(kwargs)
        return {"MessageId": str(len(self.calls))}


def test_every_publish_of_a_change_carries_the_same_dedup_key_and_a_fifo_topic_deduplicates_on_it():
    job = make_job("bert")
    standard, fifo = Client(), Client()
    SnsNotifier(standard, "arn:aws:sns:us-east-1:123456789012:trainbot").notify(job, 1)
    SnsNotifier(standard, "arn:aws:sns:us-east-1:123456789012:trainbot").notify(job, 1)
    SnsNotifier(fifo, "arn:aws:sns:us-east-1:123456789012:trainbot.fifo").notify(job, 1)

    keys = [call["MessageAttributes"]["dedupKey"]["StringValue"] for call in standard.calls]
    assert keys == [f"{job.job_id}#1"] * 2
    assert json.loads(standard.calls[0]["Message"])["dedupKey"] == f"{job.job_id}#1"
    assert "MessageDeduplicationId" not in standard.calls[0]
    assert fifo.calls[0]["MessageDeduplicationId"] == f"{job.job_id}#1"
    assert fifo.calls[0]["MessageGroupId"] == job.job_id

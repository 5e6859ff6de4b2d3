"""A whole Trainbot back end on one machine, for lifecycle, chaos and scale tests and the
benchmark: moto (in-process) for DynamoDB and SNS, the SageMaker stand-in over HTTP (reached by
boto3 through ``AWS_ENDPOINT_URL_SAGEMAKER``), and the Lambda handlers declared in
``template.yaml`` driven as AWS drives them. One simulated clock serves both Trainbot and the
stand-in, so a test moves time instead of sleeping."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3

from backend.bootstrap import build
from backend.config import Settings
from backend.domain.model import JobArgs
from backend.entrypoints import runtime
from backend.services.jobs import Actor
from infra.local.standins.sagemaker import FakeClock, Faults, SageMakerStandIn
from infra.template import create_jobs_table, create_topic, load_template

ALICE = Actor(team_id="T1", user_id="UALICE")
BOB = Actor(team_id="T1", user_id="UBOB")
ADMIN = Actor(team_id="T1", user_id="UADMIN")


@dataclass
class FakeContext:
    """The parts of a Lambda context our handlers and Powertools read."""

    function_name: str = "trainbot-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:trainbot-test"
    aws_request_id: str = "req-1"
    remaining_ms: int = 60_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def handler_for(logical_id: str) -> Callable[[dict, Any], Any]:
    """The handler function `template.yaml` declares for a function resource."""
    dotted = load_template()["Resources"][logical_id]["Properties"]["Handler"]
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


def job_request(**hyperparameters: str) -> JobArgs:
    return JobArgs.model_validate(
        {
            "AlgorithmSpecification": {"TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest"},
            "RoleArn": "arn:aws:iam::123456789012:role/SageMakerRole",
            "OutputDataConfig": {"S3OutputPath": "s3://out-bucket/runs"},
            "ResourceConfig": {"InstanceType": hyperparameters.pop("instance", "ml.g5.xlarge"), "InstanceCount": 1},
            "StoppingCondition": {"MaxRuntimeInSeconds": int(hyperparameters.pop("max_runtime", "3600"))},
            "HyperParameters": hyperparameters,
        }
    )


class Stack:
    """Build inside an active ``mock_aws()``. ``env`` overrides settings variables."""

    def __init__(self, *, faults: Faults | None = None, capacity: dict[str, int] | None = None, env: dict[str, str] | None = None,
                 duration: float = 120.0, startup: float = 20.0, seed: int = 0,
                 sagemaker_client: Callable[[Any], Any] | None = None, sagemaker_retries: int | None = None,
                 logs: bool = False) -> None:
        import random
        import time

        from backend.adapters.aws import aws_client

        # With ``logs`` the stand-in writes its jobs' CloudWatch logs (moto): the simulated clock
        # then starts at the real time, since CloudWatch refuses events older than 14 days.
        self.clock = FakeClock(start=float(int(time.time())) if logs else 1_790_000_000.0)
        self.logs = aws_client("logs", region="us-east-1") if logs else None
        self.sagemaker = SageMakerStandIn(
            clock=self.clock, capacity=capacity, default_duration_seconds=duration,
            startup_seconds=startup, stop_seconds=10.0, faults=faults or Faults(), seed=seed,
            logs_client=self.logs,
        )
        self.sagemaker.start()
        os.environ["AWS_ENDPOINT_URL_SAGEMAKER"] = self.sagemaker.url
        self.dynamodb = aws_client("dynamodb", region="us-east-1")
        self.sns = aws_client("sns", region="us-east-1")
        create_jobs_table(self.dynamodb, "trainbot-jobs")
        topic = create_topic(self.sns)
        self.topic = topic
        variables = {
            "JOBS_TABLE_NAME": "trainbot-jobs",
            "NOTIFY_TOPIC_ARN": topic,
            "TRAINBOT_ADMIN_USERS": ADMIN.user_id,
            "TRAINBOT_SAGEMAKER_CALLS_PER_SECOND": "100000",
            **(env or {}),
        }
        self.settings = Settings.from_env(variables)
        client = None
        if sagemaker_retries is not None:
            from botocore.config import Config

            client = boto3.client(
                "sagemaker", region_name="us-east-1",
                config=Config(retries={"mode": "standard", "total_max_attempts": sagemaker_retries}, max_pool_connections=32),
            )
        if sagemaker_client is not None:
            client = sagemaker_client(client or aws_client("sagemaker", region="us-east-1"))
        # Slack pacing waits on the simulated clock too: its waits move it (a real sleep would not).
        self.container = build(
            self.settings, clock=self.clock.now, sleep=self.clock.advance, rng=random.Random(seed), sagemaker=client
        )
        if logs:
            self._pace_logs_on_a_clock_of_their_own()
        runtime.install(self.container)
        self.launcher_handler = handler_for("LauncherFunction")
        self.monitor_handler = handler_for("MonitorFunction")
        self.context = FakeContext()

    def _pace_logs_on_a_clock_of_their_own(self) -> None:
        """The monitor's CloudWatch Logs reads, paced as bootstrap paces them (the same bucket,
        LOGS_CALLS_PER_SECOND), whose waits pass on a clock of their own: they slept in real
        time before, which the simulated clock never saw either (seconds of a forensics test
        asleep); now a wait is counted and takes no time."""
        from backend.adapters.aws import LazyClient
        from backend.adapters.logs import CloudWatchTrainingLogs
        from backend.bootstrap import LOGS_CALLS_PER_SECOND
        from backend.services.pacing import TokenBucket

        paced = FakeClock(start=0.0)
        bucket = TokenBucket(rate=LOGS_CALLS_PER_SECOND, burst=LOGS_CALLS_PER_SECOND, monotonic=paced, sleep=paced.advance)
        self.logs_pacer = bucket
        self.container.extras["logs"] = CloudWatchTrainingLogs(LazyClient("logs", region="us-east-1", max_attempts=3), bucket)

    def close(self) -> None:
        runtime.install(None)
        self.sagemaker.stop()
        os.environ.pop("AWS_ENDPOINT_URL_SAGEMAKER", None)

    # --- driving ------------------------------------------------------------------------------

    @property
    def jobs(self):
        return self.container.jobs

    @property
    def store(self):
        return self.container.store

    def submit(self, name: str = "bert", actor: Actor = ALICE, **kwargs: Any):
        args = kwargs.pop("job_args", None) or job_request(**kwargs.pop("hp", {}))
        return self.jobs.submit(name=name, job_args=args, actor=actor, **kwargs).job

    def launch(self) -> dict:
        return self.launcher_handler(SCHEDULED, self.context)

    def sweep(self) -> dict:
        return self.monitor_handler(SCHEDULED, self.context)

    def deliver_events(self) -> int:
        events = self.sagemaker.drain_events()
        for event in events:
            self.monitor_handler(event, self.context)
        return len(events)

    def tick(self, seconds: float = 30.0, *, sweep: bool = False) -> None:
        """One minute of the system's life, compressed: time passes, the launcher runs,
        SageMaker's events reach the monitor, and (optionally) the monitor sweeps."""
        self.clock.advance(seconds)
        self.launch()
        self.deliver_events()
        if sweep:
            self.sweep()

    def run_until_settled(self, job_ids: list[str], *, max_ticks: int = 200, seconds: float = 30.0) -> list:
        for tick in range(max_ticks):
            jobs = self.store.get_many(job_ids)
            if all(job.is_terminal for job in jobs):
                return jobs
            self.tick(seconds, sweep=tick % 4 == 3)
        raise AssertionError(f"jobs not settled after {max_ticks} ticks: {[(j.job_id, j.status.value) for j in self.store.get_many(job_ids) if not j.is_terminal]}")

    def unsettled(self) -> int:
        """How many jobs are not terminal: queued or active (index counts, no items read)."""
        total = 0
        for index, key, values in (
            ("Queue", "QueueKey", ("ready", "waiting", "claimed", "parked", "held")),
            ("Active", "ActiveKey", ("active",)),
        ):
            for value in values:
                answer = self.dynamodb.query(
                    TableName=self.settings.jobs_table_name, IndexName=index, Select="COUNT",
                    KeyConditionExpression=f"{key} = :k", ExpressionAttributeValues={":k": {"S": value}},
                )
                total += answer["Count"]
        return total

    def notifications(self) -> list[dict]:
        """Every SNS message published so far, as moto's SNS recorded it (reading it through
        an SQS subscription costs moto quadratic time at chaos-test volumes)."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.sns.models import sns_backends

        topic = sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].topics[self.topic]
        return [
            {"body": json.loads(message), "subject": subject, "attributes": attributes or {}}
            for _id, message, subject, attributes, _group in topic.sent_notifications
        ]


def seed_finished(store, count: int, *, days_ago: int = 30, batch: int = 25) -> None:
    """Write ``count`` finished jobs straight into the table with BatchWriteItem: history
    that hot paths must never read."""
    from datetime import timedelta

    from backend.adapters.dynamo import to_item
    from backend.domain.model import Owner, new_job
    from backend.domain.status import JobStatus

    created = datetime(2026, 1, 1, tzinfo=UTC) - timedelta(days=days_ago)
    args = job_request()
    owner = Owner(team_id="T1", user_id="UHIST")
    pending = []
    for i in range(count):
        job = new_job(name=f"old-{i}", job_args=args, owner=owner, now=created, job_id=f"old-{i:06d}")
        job = job.model_copy(update={"status": JobStatus.COMPLETED if i % 4 else JobStatus.FAILED})
        pending.append({"PutRequest": {"Item": to_item(job)}})
        if len(pending) == batch:
            store._client.batch_write_item(RequestItems={store.table_name: pending})
            pending = []
    if pending:
        store._client.batch_write_item(RequestItems={store.table_name: pending})

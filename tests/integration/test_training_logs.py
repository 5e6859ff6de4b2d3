"""The CloudWatch Logs side of failure forensics: the SageMaker stand-in writes logs the way
SageMaker documents them (tests/fixtures/cloudwatch_training_job_logs.json), and the log
adapter reads tails and last-line times from them (moto), saying so when a stream is missing
or empty and never reading past its budget."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import ClientError

from backend.adapters.logs import CloudWatchTrainingLogs
from backend.domain.forensics import LOG_GROUP
from backend.domain.logtail import LINE_CHARS, TAIL_BYTES, TailState
from backend.services.pacing import TokenBucket
from infra.local.standins.sagemaker import ALGORITHM_ERROR, HP_DURATION, HP_LOG, HP_OUTCOME, FakeClock, SageMakerStandIn
from tests.fixtures.samples import load

_STREAM = re.compile(r"^(?P<job>[a-zA-Z0-9-]+)/algo-(?P<host>\d+)-(?P<epoch>\d{10})$")


@pytest.fixture
def logs(moto_aws):
    return boto3.client("logs", region_name="us-east-1")


@pytest.fixture
def reader(logs):
    return CloudWatchTrainingLogs(logs, TokenBucket(rate=1000, burst=1000))


def _create(client, name: str, *, count: int = 1, **hyperparameters: str) -> None:
    client.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1", "TrainingInputMode": "File"},
        RoleArn="arn:aws:iam::123456789012:role/trainbot-training",
        OutputDataConfig={"S3OutputPath": "s3://trainbot-artifacts/models/"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": count, "VolumeSizeInGB": 50},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
        HyperParameters=hyperparameters,
    )


@pytest.fixture
def standin(logs):
    with SageMakerStandIn(
        clock=FakeClock(start=float(int(datetime.now(UTC).timestamp()))), logs_client=logs, startup_seconds=5.0
    ) as running:
        yield running


@pytest.fixture
def sagemaker(standin):
    return boto3.client("sagemaker", **standin.client_kwargs())


def test_the_standin_writes_one_stream_per_host_named_as_sagemaker_documents(standin, sagemaker, logs):
    sample = load("cloudwatch_training_job_logs.json")
    _create(
        sagemaker, "tb-ddp-a1", count=2, **{HP_OUTCOME: ALGORITHM_ERROR, HP_DURATION: "600", HP_LOG: "boom\nRuntimeError: NCCL timeout"}
    )
    standin.advance(5 + 300)

    assert sample["logGroupName"] == LOG_GROUP
    streams = logs.describe_log_streams(logGroupName=LOG_GROUP, logStreamNamePrefix="tb-ddp-a1/")["logStreams"]
    for documented in sample["DescribeLogStreams"]["logStreams"]:
        assert _STREAM.match(documented["logStreamName"])
    assert [(m["job"], m["host"]) for m in (_STREAM.match(s["logStreamName"]) for s in streams) if m] == [
        ("tb-ddp-a1", "1"),
        ("tb-ddp-a1", "2"),
    ]
    assert set(sample["DescribeLogStreams"]["logStreams"][0]) >= {"logStreamName", "lastEventTimestamp"}
    assert all("lastEventTimestamp" in s for s in streams)
    last = logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=streams[0]["logStreamName"], startFromHead=False, limit=2)["events"]
    assert [e["message"] for e in last] == ["boom", "RuntimeError: NCCL timeout"]
    assert set(sample["GetLogEvents"]["events"][0]) >= set(last[0]) - {"eventId"}


def test_a_training_job_without_a_stream_has_a_missing_tail(reader, logs):
    logs.create_log_group(logGroupName=LOG_GROUP)
    assert reader.tail("tb-never-started-a1").state is TailState.MISSING


def test_no_log_group_at_all_is_a_missing_tail_too(reader):
    assert reader.tail("tb-first-job-ever-a1").state is TailState.MISSING


def test_a_stream_without_lines_is_an_empty_tail(reader, logs):
    logs.create_log_group(logGroupName=LOG_GROUP)
    logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName="tb-quiet-a1/algo-1-1700000000")
    tail = reader.tail("tb-quiet-a1")
    assert tail.state is TailState.EMPTY and tail.hosts == []


def test_the_prefix_ends_at_the_slash_so_attempt_1_never_reads_attempt_10(reader, logs):
    now = int(datetime.now(UTC).timestamp() * 1000)
    logs.create_log_group(logGroupName=LOG_GROUP)
    for name in ("tb-job-a1/algo-1-1700000000", "tb-job-a10/algo-1-1700000000"):
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=name)
        logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=name, logEvents=[{"timestamp": now, "message": name}])
    tail = reader.tail("tb-job-a1")
    assert [h.stream for h in tail.hosts] == ["tb-job-a1/algo-1-1700000000"]
    assert reader.last_line_at("tb-job-a1") == datetime.fromtimestamp(now / 1000, tz=UTC)


def test_the_host_that_stopped_writing_first_comes_first_and_the_tail_keeps_its_byte_budget(reader, logs):
    now = int(datetime.now(UTC).timestamp() * 1000)
    logs.create_log_group(logGroupName=LOG_GROUP)
    for host, stopped in ((1, now), (2, now - 60_000), (3, now - 30_000)):
        stream = f"tb-big-a1/algo-{host}-1700000000"
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
        events = [{"timestamp": stopped - 1000 * (40 - n), "message": f"host {host} line {n} " + "y" * 400} for n in range(40)]
        logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream, logEvents=events)

    tail = reader.tail("tb-big-a1")

    assert tail.state is TailState.READ
    assert tail.hosts[0].stream.startswith("tb-big-a1/algo-2-")  # stopped first
    assert tail.hosts[0].lines[-1].startswith("host 2 line 39")  # the newest lines are kept
    assert all(len(line) <= LINE_CHARS for host in tail.hosts for line in host.lines)
    assert len(tail.text().encode()) <= TAIL_BYTES
    assert tail.more_hosts >= 1  # what did not fit is counted, not silently dropped


def test_a_throttled_read_is_an_unreadable_tail_never_an_exception(moto_aws):
    class Throttled:
        def describe_log_streams(self, **_):
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "DescribeLogStreams")

    pacer = TokenBucket(rate=1000, burst=1000)
    tail = CloudWatchTrainingLogs(Throttled(), pacer).tail("tb-x-a1")
    assert tail.state is TailState.UNREADABLE and "ThrottlingException" in tail.note
    assert pacer.penalties == 1  # the next reads slow down


def test_the_standin_refuses_a_spot_job_whose_max_wait_is_missing_or_shorter_than_its_max_runtime(standin, sagemaker):
    base = dict(
        AlgorithmSpecification={"TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1", "TrainingInputMode": "File"},
        RoleArn="arn:aws:iam::123456789012:role/trainbot-training",
        OutputDataConfig={"S3OutputPath": "s3://trainbot-artifacts/models/"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
        EnableManagedSpotTraining=True,
    )
    for n, stopping in enumerate(({"MaxRuntimeInSeconds": 3600}, {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 1800})):
        with pytest.raises(ClientError) as refused:
            sagemaker.create_training_job(TrainingJobName=f"spot-{n}", StoppingCondition=stopping, **base)
        assert refused.value.response["Error"]["Code"] == "ValidationException"
        assert "MaxWaitTimeInSeconds" in refused.value.response["Error"]["Message"]
    sagemaker.create_training_job(
        TrainingJobName="spot-ok", StoppingCondition={"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 3600}, **base
    )

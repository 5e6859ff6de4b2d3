"""The SageMaker stand-in, tested through boto3's real ``sagemaker`` client.

Every test talks HTTP to a stand-in on an ephemeral port. Time is a FakeClock, so a
30-second training job takes no real time.
"""

from __future__ import annotations

import collections
import re
import socket
import threading
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError

from infra.local.standins.sagemaker import (
    ALGORITHM_ERROR,
    CAPACITY_ERROR,
    HP_DURATION,
    HP_OUTCOME,
    HP_OUTCOME_ATTEMPTS,
    INTERNAL_FAILURE,
    LOST_RESPONSE,
    RESOURCE_LIMIT_EXCEEDED,
    SERVICE_UNAVAILABLE,
    THROTTLING,
    VALIDATION,
    FakeClock,
    Faults,
    SageMakerStandIn,
)

STARTUP = 5.0
DURATION = 30.0
STOP = 2.0
# In a client Config, botocore's ``max_attempts`` counts *retries* (it becomes
# total_max_attempts = max_attempts + 1), so ``max_attempts: 1`` would still retry once and
# hide the first fault. ``total_max_attempts: 1`` means exactly one attempt.
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def make_client(standin: SageMakerStandIn, config: Config = NO_RETRIES):
    return boto3.client("sagemaker", endpoint_url=standin.url, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x", config=config)


def create(client, name: str, *, instance_type: str = "ml.m5.xlarge", count: int = 1,
           hyperparameters: dict | None = None, max_runtime: int = 86400):
    return client.create_training_job(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1",
                                "TrainingInputMode": "File"},
        RoleArn="arn:aws:iam::123456789012:role/trainbot-training",
        OutputDataConfig={"S3OutputPath": "s3://trainbot-artifacts/models/"},
        ResourceConfig={"InstanceType": instance_type, "InstanceCount": count, "VolumeSizeInGB": 50},
        StoppingCondition={"MaxRuntimeInSeconds": max_runtime},
        HyperParameters=hyperparameters or {},
    )


def error_of(excinfo: pytest.ExceptionInfo) -> tuple[int, str, str]:
    response = excinfo.value.response
    return (response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"],
            response["Error"]["Message"])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def standin(clock):
    with SageMakerStandIn(clock=clock, default_duration_seconds=DURATION, startup_seconds=STARTUP,
                          stop_seconds=STOP, capacity={"ml.p4d.24xlarge": 4, "ml.trn1.32xlarge": 0},
                          seed=7) as server:
        yield server


@pytest.fixture
def client(standin):
    return make_client(standin)


def describe(client, name: str) -> dict:
    return client.describe_training_job(TrainingJobName=name)


# --------------------------------------------------------------------------- lifecycle


def test_a_created_job_runs_in_simulated_time_and_completes_with_billable_time(standin, client):
    arn = create(client, "job-1-a1", count=2)["TrainingJobArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:123456789012:training-job/job-1-a1"

    job = describe(client, "job-1-a1")
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("InProgress", "Starting")
    assert job["TrainingJobArn"] == arn
    assert job["ResourceConfig"]["InstanceCount"] == 2
    assert "BillableTimeInSeconds" not in job and "Tags" not in job
    assert job["CreationTime"].tzinfo is not None  # epoch seconds came back as a datetime

    standin.advance(STARTUP)
    job = describe(client, "job-1-a1")
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("InProgress", "Training")
    assert (job["TrainingStartTime"] - job["CreationTime"]).total_seconds() == STARTUP

    standin.advance(DURATION - 1)
    assert describe(client, "job-1-a1")["TrainingJobStatus"] == "InProgress"
    standin.advance(1)
    job = describe(client, "job-1-a1")
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Completed", "Completed")
    assert job["BillableTimeInSeconds"] == int(DURATION)  # wall-clock, not × InstanceCount (2)
    assert job["TrainingTimeInSeconds"] == int(DURATION)
    assert (job["TrainingEndTime"] - job["TrainingStartTime"]).total_seconds() == DURATION
    assert job["ModelArtifacts"]["S3ModelArtifacts"] == \
        "s3://trainbot-artifacts/models/job-1-a1/output/model.tar.gz"
    assert "FailureReason" not in job
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]] == \
        ["Starting", "Training", "Completed"]


def test_the_duration_hyperparameter_overrides_the_default_duration(standin, client):
    create(client, "quick", hyperparameters={HP_DURATION: "3.5"})
    standin.advance(STARTUP + 3.4)
    assert describe(client, "quick")["TrainingJobStatus"] == "InProgress"
    standin.advance(0.1)
    assert describe(client, "quick")["TrainingJobStatus"] == "Completed"


def test_a_duplicate_name_is_refused_with_resource_in_use(standin, client):
    create(client, "job-2-a1")
    with pytest.raises(ClientError) as excinfo:
        create(client, "job-2-a1")
    status, code, message = error_of(excinfo)
    assert (status, code) == (400, "ResourceInUse")
    assert message == (
        "Training job names must be unique within an AWS account and region, and a training job "
        "with this name already exists "
        "(arn:aws:sagemaker:us-east-1:123456789012:training-job/job-2-a1)")
    assert standin.created_names == ["job-2-a1"]


def test_a_create_beyond_the_instance_capacity_is_refused_with_the_account_limit_message(
        standin, client):
    create(client, "big-a1", instance_type="ml.p4d.24xlarge", count=4)
    with pytest.raises(ClientError) as excinfo:
        create(client, "big-a2", instance_type="ml.p4d.24xlarge", count=1)
    status, code, message = error_of(excinfo)
    assert (status, code) == (400, "ResourceLimitExceeded")
    assert message == (
        "The account-level service limit 'ml.p4d.24xlarge for training job usage' is 4 Instances, "
        "with current utilization of 4 Instances and a request delta of 1 Instances. Please use "
        "AWS Service Quotas to request an increase for this quota.")
    # Other instance types are unlimited, and finishing the big job frees its instances.
    create(client, "small-a1", instance_type="ml.m5.xlarge", count=64)
    standin.advance(STARTUP + DURATION)
    assert standin.running_instances("ml.p4d.24xlarge") == 0
    create(client, "big-a2", instance_type="ml.p4d.24xlarge", count=1)


def test_a_capacity_of_zero_says_zero_instances(client):
    with pytest.raises(ClientError) as excinfo:
        create(client, "trn-a1", instance_type="ml.trn1.32xlarge", count=1)
    status, code, message = error_of(excinfo)
    assert (status, code) == (400, "ResourceLimitExceeded")
    assert "'ml.trn1.32xlarge for training job usage' is 0 Instances" in message


def test_a_stopped_job_goes_through_stopping_to_stopped(standin, client):
    create(client, "stop-me", count=3)
    standin.advance(STARTUP + 10)
    client.stop_training_job(TrainingJobName="stop-me")
    job = describe(client, "stop-me")
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopping", "Stopping")
    standin.advance(STOP)
    job = describe(client, "stop-me")
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "Stopped")
    assert job["BillableTimeInSeconds"] == int(10 + STOP)  # wall-clock, not × InstanceCount (3)
    # The job's original plan (complete at STARTUP + DURATION) must not come back.
    standin.advance(DURATION)
    assert describe(client, "stop-me")["TrainingJobStatus"] == "Stopped"


def test_stopping_a_completed_job_is_refused_with_validation_exception(standin, client):
    create(client, "done")
    standin.advance(STARTUP + DURATION)
    with pytest.raises(ClientError) as excinfo:
        client.stop_training_job(TrainingJobName="done")
    assert error_of(excinfo) == (400, "ValidationException",
                                 "The request was rejected because the training job is in status "
                                 "Completed.")


def test_describing_an_unknown_job_gives_validation_exception_requested_resource_not_found(client):
    with pytest.raises(ClientError) as excinfo:
        describe(client, "never-created")
    assert error_of(excinfo) == (400, "ValidationException", "Requested resource not found.")


def test_invalid_create_requests_are_refused_by_the_server_with_validation_exception(standin, client):
    with pytest.raises(ClientError) as excinfo:
        create(client, "under_score")  # botocore does not check the name pattern, the server does
    status, code, message = error_of(excinfo)
    assert (status, code) == (400, "ValidationException")
    assert "regular expression pattern" in message
    with pytest.raises(ClientError) as excinfo:
        client.create_training_job(
            TrainingJobName="no-stopping-condition",
            AlgorithmSpecification={"TrainingImage": "img", "TrainingInputMode": "File"},
            RoleArn="arn:aws:iam::123456789012:role/r",
            OutputDataConfig={"S3OutputPath": "s3://b/p"},
            ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 1})
    assert error_of(excinfo)[1:] == ("ValidationException",
                                     "1 validation error detected: Value null at 'stoppingCondition' "
                                     "failed to satisfy constraint: Member must not be null")
    with pytest.raises(ClientError) as excinfo:
        create(client, "bad-outcome", hyperparameters={HP_OUTCOME: "Exploded"})
    assert error_of(excinfo)[1] == "ValidationException"
    assert standin.created_names == []


def test_list_training_jobs_filters_by_name_and_status_and_pages(standin, client):
    for i in range(5):
        create(client, f"list-{i}", hyperparameters={HP_DURATION: "1" if i < 2 else "1000"})
    create(client, "other")
    standin.advance(STARTUP + 1)

    summaries = client.list_training_jobs(NameContains="list-", MaxResults=100)["TrainingJobSummaries"]
    assert [s["TrainingJobName"] for s in summaries] == [f"list-{i}" for i in range(5)]
    completed = client.list_training_jobs(StatusEquals="Completed")["TrainingJobSummaries"]
    assert {s["TrainingJobName"] for s in completed} == {"list-0", "list-1"}
    assert all(set(s) >= {"TrainingJobName", "TrainingJobArn", "TrainingJobStatus", "CreationTime"}
               for s in summaries)

    first = client.list_training_jobs(NameContains="list-", MaxResults=2)
    assert len(first["TrainingJobSummaries"]) == 2 and "NextToken" in first
    pages = client.get_paginator("list_training_jobs").paginate(
        NameContains="list-", PaginationConfig={"PageSize": 2})
    assert [len(page["TrainingJobSummaries"]) for page in pages] == [2, 2, 1]


def test_list_training_jobs_filters_a_status_after_taking_the_page_as_sagemaker_documents(standin, client):
    """The API reference's note on ListTrainingJobs: the MaxResults jobs are taken first, then
    filtered by StatusEquals, so a page may hold fewer than MaxResults (even none) and still
    have a NextToken."""
    for i in range(4):
        create(client, f"st-{i}", hyperparameters={HP_DURATION: "1" if i < 2 else "1000"})
    standin.advance(STARTUP + 1)
    first = client.list_training_jobs(StatusEquals="InProgress", MaxResults=2, SortBy="CreationTime", SortOrder="Ascending")
    assert first["TrainingJobSummaries"] == [] and "NextToken" in first
    second = client.list_training_jobs(StatusEquals="InProgress", MaxResults=2, NextToken=first["NextToken"])
    assert [s["TrainingJobName"] for s in second["TrainingJobSummaries"]] == ["st-2", "st-3"]


@pytest.mark.parametrize("bad", [{"StatusEquals": "Running"}, {"SortBy": "Age"}, {"SortOrder": "Up"}, {"MaxResults": 101}])
def test_list_training_jobs_refuses_what_sagemaker_refuses(client, bad):
    with pytest.raises(ClientError) as excinfo:
        client.list_training_jobs(**bad)
    assert error_of(excinfo)[1] == "ValidationException"


def test_the_endpoint_environment_variable_routes_an_unchanged_client(standin, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", standin.url)
    plain = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x",
                         aws_secret_access_key="x", config=NO_RETRIES)
    create(plain, "via-env")
    assert standin.created_names == ["via-env"]


# --------------------------------------------------------------------------- API faults


@pytest.mark.parametrize("code, status, message", [
    (RESOURCE_LIMIT_EXCEEDED, 400, "The account-level service limit 'ml.m5.xlarge for training job"),
    (THROTTLING, 400, "Rate exceeded"),
    (INTERNAL_FAILURE, 500, "We encountered an internal error."),
    (SERVICE_UNAVAILABLE, 503, "Service Unavailable."),
    (VALIDATION, 400, "Injected ValidationException"),
])
def test_each_scripted_create_fault_reaches_a_client_with_retries_disabled(
        standin, client, code, status, message):
    standin.script_create(None, code)
    with pytest.raises(ClientError) as excinfo:
        create(client, "faulty")
    got_status, got_code, got_message = error_of(excinfo)
    assert (got_status, got_code) == (status, code)
    assert got_message.startswith(message)
    assert standin.created_names == []
    create(client, "faulty")  # the script is used up: the next create goes through
    assert standin.created_names == ["faulty"]


def test_a_create_fault_scripted_for_one_name_leaves_other_names_alone(standin, client):
    standin.script_create("target", THROTTLING)
    create(client, "bystander")
    with pytest.raises(ClientError) as excinfo:
        create(client, "target")
    assert error_of(excinfo)[1] == THROTTLING


def test_create_fault_probabilities_apply_and_can_be_switched_off_at_runtime(standin, client):
    standin.set_faults(create_internal_error_probability=1.0)
    with pytest.raises(ClientError) as excinfo:
        create(client, "unlucky")
    assert error_of(excinfo)[:2] == (500, INTERNAL_FAILURE)
    standin.faults.create_internal_error_probability = 0.0
    create(client, "unlucky")
    with pytest.raises(AttributeError):
        standin.set_faults(no_such_knob=1.0)


def test_a_lost_create_response_gives_a_500_but_the_job_exists(standin, client):
    standin.script_create("lost-a1", LOST_RESPONSE)
    with pytest.raises(ClientError) as excinfo:
        create(client, "lost-a1")
    assert error_of(excinfo)[:2] == (500, INTERNAL_FAILURE)

    assert describe(client, "lost-a1")["TrainingJobStatus"] == "InProgress"
    with pytest.raises(ClientError) as excinfo:
        create(client, "lost-a1")  # a client that retries the create must adopt the job instead
    assert error_of(excinfo)[1] == "ResourceInUse"
    assert standin.created_names == ["lost-a1"]

    standin.set_faults(lost_create_response_probability=1.0)
    with pytest.raises(ClientError):
        create(client, "lost-a2")
    assert standin.created_names == ["lost-a1", "lost-a2"]


def test_a_throttled_describe_reaches_a_client_without_retries_and_is_retried_by_default(standin):
    raw = make_client(standin)
    retrying = make_client(standin, Config(retries={"total_max_attempts": 3, "mode": "standard"}))
    create(raw, "watched")

    standin.script_describe("watched", THROTTLING)
    with pytest.raises(ClientError) as excinfo:
        describe(raw, "watched")
    assert error_of(excinfo) == (400, THROTTLING, "Rate exceeded")

    before = standin.calls["DescribeTrainingJob"]
    standin.script_describe(None, THROTTLING)
    # botocore must recognise our throttle as retryable: that proves the wire shape is right.
    assert describe(retrying, "watched")["TrainingJobStatus"] == "InProgress"
    assert standin.calls["DescribeTrainingJob"] - before == 2

    standin.set_faults(describe_throttle_probability=1.0)
    with pytest.raises(ClientError):
        describe(raw, "watched")


def test_latency_slows_every_response_down(standin, client):
    standin.faults.latency_seconds = 0.2
    started = time.monotonic()
    client.list_training_jobs()
    assert time.monotonic() - started >= 0.2


# --------------------------------------------------------------------------- run outcomes


def test_outcome_hyperparameters_fail_the_first_attempts_then_let_the_job_complete(standin, client):
    hyper = {HP_OUTCOME: CAPACITY_ERROR, HP_OUTCOME_ATTEMPTS: "2"}
    for attempt in (1, 2):
        create(client, f"demo-a{attempt}", hyperparameters=hyper)
        standin.advance(STARTUP)
        job = describe(client, f"demo-a{attempt}")
        assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Failed", "Failed")
        assert job["FailureReason"] == (
            "CapacityError: Unable to provision requested ML compute capacity. Please retry using "
            "a different ML instance type.")
        assert job["BillableTimeInSeconds"] == 0
    create(client, "demo-a3", hyperparameters=hyper)
    standin.advance(STARTUP + DURATION)
    assert describe(client, "demo-a3")["TrainingJobStatus"] == "Completed"
    assert standin.max_concurrent_attempts["demo"] == 1


def test_a_scripted_algorithm_error_fails_the_job_mid_run(standin, client):
    standin.script_outcome("algo", ALGORITHM_ERROR)
    create(client, "algo")
    standin.advance(STARTUP + DURATION / 2 - 1)
    assert describe(client, "algo")["SecondaryStatus"] == "Training"
    standin.advance(1)
    job = describe(client, "algo")
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Failed", "Failed")
    assert job["FailureReason"].startswith("AlgorithmError: ExecuteUserScriptError:")
    assert job["FailureReason"].endswith("exit code 1")
    assert job["BillableTimeInSeconds"] == int(DURATION / 2)


def test_outcome_probabilities_decide_how_runs_end(standin, client):
    standin.set_faults(capacity_error_probability=1.0)
    create(client, "doomed")
    standin.set_faults(capacity_error_probability=0.0, algorithm_error_probability=1.0)
    create(client, "broken")
    standin.advance(STARTUP + DURATION)
    assert describe(client, "doomed")["FailureReason"].startswith("CapacityError:")
    assert describe(client, "broken")["FailureReason"].startswith("AlgorithmError:")


def test_a_run_longer_than_its_max_runtime_is_stopped_with_max_runtime_exceeded_as_sagemaker_documents(standin, client):
    # SageMaker's API reference lists MaxRuntimeExceeded under the Stopped status: "The job
    # stopped because it exceeded the maximum allowed runtime".
    create(client, "slow", hyperparameters={HP_DURATION: "100"}, max_runtime=60)
    standin.advance(STARTUP + 59)
    assert describe(client, "slow")["TrainingJobStatus"] == "InProgress"
    standin.advance(1)
    job = describe(client, "slow")
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
    assert "FailureReason" not in job
    assert job["BillableTimeInSeconds"] == 60


def test_a_spot_job_that_outlives_its_max_wait_is_stopped_with_max_wait_time_exceeded(standin, client):
    client.create_training_job(
        TrainingJobName="spotty",
        AlgorithmSpecification={"TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1",
                                "TrainingInputMode": "File"},
        RoleArn="arn:aws:iam::123456789012:role/trainbot-training",
        OutputDataConfig={"S3OutputPath": "s3://trainbot-artifacts/models/"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
        StoppingCondition={"MaxRuntimeInSeconds": int(STARTUP) + 50, "MaxWaitTimeInSeconds": int(STARTUP) + 50},
        EnableManagedSpotTraining=True,
        HyperParameters={HP_DURATION: "80"},
    )
    standin.advance(STARTUP + 50)
    job = describe(client, "spotty")
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "MaxWaitTimeExceeded")
    assert job["BillableTimeInSeconds"] == 50


def test_an_internal_server_error_outcome_fails_the_job_with_that_reason(standin, client):
    create(client, "unlucky", hyperparameters={HP_OUTCOME: "InternalServerError"})
    standin.advance(STARTUP)
    job = describe(client, "unlucky")
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("InternalServerError:")


def test_max_concurrent_attempts_notices_two_attempts_of_one_job_running_at_once(standin, client):
    create(client, "seq-a1", hyperparameters={HP_DURATION: "1"})
    standin.advance(STARTUP + 1)
    create(client, "seq-a2")  # the first attempt is over: no overlap
    create(client, "par-a1")
    create(client, "par-a2")
    assert standin.max_concurrent_attempts == {"seq": 1, "par": 2}


def test_concurrent_creates_from_many_threads_never_exceed_capacity(standin):
    clients = [make_client(standin) for _ in range(4)]
    results: list[str] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        client = clients[index % len(clients)]
        try:
            create(client, f"burst-{index}", instance_type="ml.p4d.24xlarge")
            outcome = "ok"
        except ClientError as exc:
            outcome = exc.response["Error"]["Code"]
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert collections.Counter(results) == {"ok": 4, "ResourceLimitExceeded": 12}
    assert standin.running_instances("ml.p4d.24xlarge") == 4


# --------------------------------------------------------------------------- events


def test_every_status_change_emits_an_eventbridge_shaped_state_change_event(clock):
    received: list[dict] = []
    with SageMakerStandIn(clock=clock, startup_seconds=STARTUP, default_duration_seconds=DURATION,
                          on_event=received.append) as standin:
        client = make_client(standin)
        create(client, "evented", count=2)
        standin.advance(STARTUP + DURATION)
        events = standin.drain_events()

    assert standin.drain_events() == []  # the outbox was emptied
    assert received == events
    assert [(e["detail"]["TrainingJobStatus"], e["detail"]["SecondaryStatus"]) for e in events] == [
        ("InProgress", "Starting"), ("InProgress", "Training"), ("Completed", "Completed")]
    event = events[-1]
    assert set(event) == {"version", "id", "detail-type", "source", "account", "time", "region",
                          "resources", "detail"}
    assert event["version"] == "0"
    assert event["detail-type"] == "SageMaker Training Job State Change"
    assert event["source"] == "aws.sagemaker"
    assert event["account"] == "123456789012"
    assert event["region"] == "us-east-1"
    assert event["resources"] == ["arn:aws:sagemaker:us-east-1:123456789012:training-job/evented"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"])
    assert len({e["id"] for e in events}) == 3
    detail = event["detail"]
    assert detail["TrainingJobName"] == "evented"
    assert detail["BillableTimeInSeconds"] == int(DURATION)
    # AWS sends times in events as epoch milliseconds.
    assert detail["CreationTime"] == int(clock() * 1000 - (STARTUP + DURATION) * 1000)
    assert isinstance(detail["TrainingEndTime"], int)
    assert all(isinstance(t["StartTime"], int) for t in detail["SecondaryStatusTransitions"])


def test_duplicate_events_are_delivered_twice_with_the_same_id(clock):
    with SageMakerStandIn(clock=clock, startup_seconds=STARTUP,
                          faults=Faults(duplicate_event_probability=1.0)) as standin:
        create(make_client(standin), "twice")
        events = standin.drain_events()
    assert len(events) == 2
    assert events[0] == events[1] and events[0] is not events[1]


def test_reordered_events_are_the_same_events_in_another_order(clock):
    def run(reorder: bool) -> list[dict]:
        with SageMakerStandIn(clock=FakeClock(clock()), startup_seconds=STARTUP, seed=3,
                              faults=Faults(reorder_events=reorder)) as standin:
            client = make_client(standin)
            for i in range(10):
                create(client, f"mixed-{i}")
            standin.advance(STARTUP + 60)
            return standin.drain_events()

    in_order, shuffled = run(False), run(True)
    assert len(in_order) == 30
    assert [e["id"] for e in shuffled] != [e["id"] for e in in_order]
    assert sorted(shuffled, key=lambda e: e["id"]) == sorted(in_order, key=lambda e: e["id"])
    times = [(e["detail"]["LastModifiedTime"]) for e in in_order]
    assert times == sorted(times)  # without the fault, events come out in time order


def test_an_event_callback_may_call_back_into_the_standin(clock):
    seen: list[str] = []
    standin = SageMakerStandIn(clock=clock, startup_seconds=STARTUP)

    def on_event(event: dict) -> None:
        name = event["detail"]["TrainingJobName"]
        seen.append(standin.describe_job(name)["SecondaryStatus"])

    standin.on_event = on_event
    with standin:
        create(make_client(standin), "reentrant")
        standin.advance(STARTUP)
    assert seen == ["Starting", "Training"]


# --------------------------------------------------------------------------- server lifecycle


def test_a_clean_stop_frees_the_port_and_cuts_kept_alive_connections(clock):
    first = SageMakerStandIn(clock=clock)
    first.start()
    port = first.port
    client = make_client(first)
    create(client, "before-stop")  # leaves a kept-alive connection in botocore's pool
    first.stop()
    first.stop()  # stopping twice is harmless

    with pytest.raises(EndpointConnectionError):
        client.list_training_jobs()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()

    with SageMakerStandIn(clock=clock, port=port) as second:
        assert second.url == f"http://127.0.0.1:{port}"
        assert make_client(second).list_training_jobs()["TrainingJobSummaries"] == []

    # A restart binds the same port again and keeps the jobs (an outage, not a reset).
    with first:
        assert first.port == port
        assert describe(make_client(first), "before-stop")["TrainingJobStatus"] == "InProgress"


# --------------------------------------------------------------------------- metrics


def test_metric_definitions_give_final_metric_data_and_model_artifacts_shaped_as_documented(standin, client):
    from tests.fixtures.samples import load

    documented = load("sagemaker_describe_final_metrics.json")
    definitions = [{"Name": "accuracy", "Regex": r"accuracy=([0-9.]+)"}, {"Name": "never", "Regex": r"nowhere=(\d+)"}]
    client.create_training_job(
        TrainingJobName="metrics-a1",
        AlgorithmSpecification={"TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1",
                                "TrainingInputMode": "File", "MetricDefinitions": definitions},
        RoleArn="arn:aws:iam::123456789012:role/trainbot-training",
        OutputDataConfig={"S3OutputPath": "s3://trainbot-artifacts/models"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
        HyperParameters={"trainbot_standin_metric_accuracy": "0.9137"},
    )
    standin.advance(STARTUP + DURATION + 1)
    job = describe(client, "metrics-a1")

    assert job["AlgorithmSpecification"]["MetricDefinitions"] == definitions  # echoed
    [datum] = job["FinalMetricDataList"]  # "never" matched no line: SageMaker has no value for it
    assert set(datum) == set(documented["FinalMetricDataList"][0])
    assert datum["MetricName"] == "accuracy" and datum["Value"] == pytest.approx(0.9137)  # the last match
    assert datum["Timestamp"] == job["TrainingEndTime"]
    assert set(job["ModelArtifacts"]) == set(documented["ModelArtifacts"])
    assert job["ModelArtifacts"]["S3ModelArtifacts"] == "s3://trainbot-artifacts/models/metrics-a1/output/model.tar.gz"


def test_a_running_jobs_describe_has_its_metrics_latest_values_whether_or_not_its_log_is_written(clock):
    # SageMaker reads metrics from the job's output as it runs and Describe's FinalMetricDataList
    # holds the last match of each: the stand-in parses its progress lines with no CloudWatch.
    with SageMakerStandIn(clock=clock, default_duration_seconds=600, startup_seconds=STARTUP, log_interval_seconds=60, seed=7) as standin:
        client = make_client(standin)
        client.create_training_job(
            TrainingJobName="live-a1",
            AlgorithmSpecification={"TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1", "TrainingInputMode": "File",
                                    "MetricDefinitions": [{"Name": "loss", "Regex": r"loss=([0-9.]+)"}]},
            RoleArn="arn:aws:iam::123456789012:role/trainbot-training",
            OutputDataConfig={"S3OutputPath": "s3://trainbot-artifacts/models"},
            ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
            StoppingCondition={"MaxRuntimeInSeconds": 3600},
            HyperParameters={"trainbot_standin_metric_loss": "0.2"},
        )
        standin.advance(STARTUP + 30)
        assert "FinalMetricDataList" not in describe(client, "live-a1")  # no progress line yet
        standin.advance(100)  # two lines by now
        early = describe(client, "live-a1")
        [first] = early["FinalMetricDataList"]
        assert early["TrainingJobStatus"] == "InProgress" and first["MetricName"] == "loss"
        assert (first["Timestamp"] - early["TrainingStartTime"]).total_seconds() == 120  # the last line's time
        standin.advance(240)
        [later] = describe(client, "live-a1")["FinalMetricDataList"]
        assert 0.2 < later["Value"] < first["Value"] < 0.3  # moving towards its final value as it runs
        standin.advance(600)
        [final] = describe(client, "live-a1")["FinalMetricDataList"]
        assert final["Value"] == pytest.approx(0.2)


def test_metric_definitions_are_validated_as_sagemaker_documents_them(client):
    def attempt(definitions):
        with pytest.raises(ClientError) as excinfo:
            client.create_training_job(
                TrainingJobName="bad-metrics",
                AlgorithmSpecification={"TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1",
                                        "TrainingInputMode": "File", "MetricDefinitions": definitions},
                RoleArn="arn:aws:iam::123456789012:role/trainbot-training",
                OutputDataConfig={"S3OutputPath": "s3://trainbot-artifacts/models"},
                ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 50},
                StoppingCondition={"MaxRuntimeInSeconds": 3600},
            )
        return error_of(excinfo)

    assert attempt([{"Name": f"m{i}", "Regex": r"m=(\d)"} for i in range(41)])[1] == VALIDATION
    assert "between 1 and 500" in attempt([{"Name": "m", "Regex": "x" * 501}])[2]
    assert "between 1 and 255" in attempt([{"Name": "n" * 256, "Regex": r"m=(\d)"}])[2]

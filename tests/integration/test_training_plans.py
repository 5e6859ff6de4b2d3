"""Training plans end to end: the SageMaker stand-in models plans as AWS documents them, and
the launcher (its Lambda handler, moto's DynamoDB) waits for a plan's start, creates on the
plan, waits while it is full, and the jobs complete on it."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.fixtures import samples
from tests.harness import Stack, job_request

ARN = "arn:aws:sagemaker:us-east-1:123456789012:training-plan/p5-dec"


@pytest.fixture
def stack(moto_aws):
    built = Stack(duration=600.0, startup=20.0)
    try:
        yield built
    finally:
        built.close()


def p5_job(count: int = 1, runtime: int = 3600):
    args = job_request(instance="ml.p5.48xlarge", max_runtime=str(runtime))
    resources = args.ResourceConfig.model_copy(update={"InstanceCount": count})
    return args.model_copy(update={"ResourceConfig": resources})


def test_the_standin_answers_plans_in_the_documented_shape_with_statuses_by_time(stack: Stack) -> None:
    now = stack.clock()
    stack.sagemaker.plans.add("p5-dec", "ml.p5.48xlarge", 2, now + 3600, now + 3 * 86400)
    client = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=stack.sagemaker.url)

    described = client.describe_training_plan(TrainingPlanName="p5-dec")
    documented = samples.load("sagemaker_training_plans.json")["DescribeTrainingPlan"]
    assert described["Status"] == "Scheduled"
    assert set(described) - {"ResponseMetadata"} <= set(documented)
    assert described["ReservedCapacitySummaries"][0]["InstanceType"] == "ml.p5.48xlarge"
    stack.clock.advance(3601)
    assert client.list_training_plans()["TrainingPlanSummaries"][0]["Status"] == "Active"
    with pytest.raises(ClientError) as missing:
        client.describe_training_plan(TrainingPlanName="nope")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFound"


def test_the_standin_refuses_a_create_on_a_plan_of_another_type_or_none(stack: Stack) -> None:
    now = stack.clock()
    stack.sagemaker.plans.add("p5-dec", "ml.p5.48xlarge", 2, now, now + 86400)
    client = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=stack.sagemaker.url)
    for instance, arn in (("ml.g5.xlarge", ARN), ("ml.p5.48xlarge", ARN.replace("p5-dec", "gone"))):
        request = job_request(instance=instance).to_request("tb-x-a1", training_plan_arn=arn)
        with pytest.raises(ClientError) as refused:
            client.create_training_job(**request)
        assert refused.value.response["Error"]["Code"] == "ValidationException"


def test_jobs_wait_for_the_plans_start_run_on_it_and_the_second_waits_while_it_is_full(stack: Stack) -> None:
    now = stack.clock()
    stack.sagemaker.plans.add("p5-dec", "ml.p5.48xlarge", 2, now + 600, now + 86400)
    first = stack.submit("first", job_args=p5_job(count=2), plan="p5-dec")
    second = stack.submit("second", job_args=p5_job(count=1), plan="p5-dec")

    stack.tick(30.0)

    assert stack.sagemaker.created_names == []
    assert "plan `p5-dec` starts" in (stack.store.get(first.job_id).waiting or "")

    for _ in range(24):  # the plan starts 10 minutes in; the board is read once a minute
        stack.tick(30.0)
    assert stack.sagemaker.created_names == [f"{first.job_id}-a1"]
    on_plan = stack.sagemaker.describe_job(f"{first.job_id}-a1")
    assert on_plan is not None and on_plan["ResourceConfig"]["TrainingPlanArn"] == ARN
    assert "plan `p5-dec` is full" in (stack.store.get(second.job_id).waiting or "")

    settled = stack.run_until_settled([first.job_id, second.job_id], seconds=60.0)
    assert [job.status.value for job in settled] == ["Completed", "Completed"]
    assert settled[1].attempts[0].plan == "p5-dec"
    assert stack.container.plans.board() is not None

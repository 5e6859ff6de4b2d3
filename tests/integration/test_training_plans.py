"""Training plans end to end: the SageMaker stand-in models plans as AWS documents them, and
the launcher (its Lambda handler, moto's DynamoDB) waits for a plan's start, creates on the
plan, waits while it is full, and the jobs complete on it; the monitor's handler warns a job's
thread before its plan ends (the real Slack notifier through slack_sdk's WebClient to the Slack
stand-in)."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import ClientError

from backend.domain.model import Checkpoint, SlackThread
from infra.local.standins.sagemaker import HP_DURATION
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


CHANNEL = "C0TRAIN"
STARTUP = 600.0  # a p5 takes minutes to come up: SageMaker's start is well after the create


@pytest.fixture
def slack_stack(moto_aws, slack):
    env = {"SLACK_BOT_TOKEN": "xoxb-t", "SLACK_SIGNING_SECRET": "s", "SLACK_API_URL": slack.api_url}
    built = Stack(env=env, duration=600.0, startup=STARTUP)
    try:
        yield built
    finally:
        built.close()


def p5_job(count: int = 1, runtime: int = 3600, checkpoint: str | None = None, **hp: str):
    args = job_request(instance="ml.p5.48xlarge", max_runtime=str(runtime), **hp)
    resources = args.ResourceConfig.model_copy(update={"InstanceCount": count})
    update: dict = {"ResourceConfig": resources}
    if checkpoint:
        update["CheckpointConfig"] = Checkpoint(S3Uri=checkpoint)
    return args.model_copy(update=update)


def _replies(slack, job) -> list[str]:
    root = next(m for m in slack.messages(CHANNEL) if job.job_id in m["text"])
    return [m["text"] for m in slack.thread(CHANNEL, root["ts"])[1:]]


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


def test_a_job_whose_plan_ends_before_its_max_runtime_gets_one_warning_in_its_thread_ahead_of_the_end(slack_stack: Stack, slack) -> None:
    stack = slack_stack
    now = stack.clock()
    runtime = 4 * 3600
    # Launched at the next tick (30 s), it fits as the launcher sees it: now + max_runtime is
    # exactly when SageMaker starts stopping the plan's jobs. SageMaker's start, minutes after
    # the create, makes its max runtime reach past that point.
    end = now + 30 + runtime + 1800
    stack.sagemaker.plans.add("p5-dec", "ml.p5.48xlarge", 2, now - 3600, end)
    long = stack.submit(
        "long", job_args=p5_job(runtime=runtime, checkpoint="s3://out-bucket/ckpt/long", **{HP_DURATION: str(10 * 3600)}),
        plan="p5-dec", slack=SlackThread(channel_id=CHANNEL),
    )
    short = stack.submit("short", job_args=p5_job(runtime=3600), plan="p5-dec", slack=SlackThread(channel_id=CHANNEL))

    stack.tick(30.0, sweep=True)
    assert [a.plan for a in stack.store.get(long.job_id).attempts] == ["p5-dec"]
    while stack.clock() < end - 2 * 3600 - 600:  # sweeps every 10 minutes until just before the warning is due
        stack.tick(600.0, sweep=True)
    assert not [r for r in _replies(slack, long) if "ends" in r]

    for _ in range(4):  # past the warning point, and more sweeps after it
        stack.tick(600.0, sweep=True)

    warnings = [r for r in _replies(slack, long) if ":warning:" in r]
    end_text = datetime.fromtimestamp(end, UTC).strftime("%a %H:%M UTC")
    assert len(warnings) == 1
    assert "plan `p5-dec`" in warnings[0] and f"ends {end_text}" in warnings[0]
    assert "SageMaker begins stopping the jobs on the plan 30 min before then" in warnings[0]
    assert "s3://out-bucket/ckpt/long" in warnings[0]
    assert not [r for r in _replies(slack, short) if ":warning:" in r]  # it ends long before the plan does
    stored = stack.store.get(long.job_id)
    assert stored.current_attempt is not None and stored.current_attempt.plan_end_warned_at is not None
    assert f"plan `p5-dec` ends {end_text}" in stored.history[-1].reason  # the card shows it too
    assert [n["body"]["reason"] for n in stack.notifications() if n["body"]["jobId"] == long.job_id and "ends" in n["body"]["reason"]]

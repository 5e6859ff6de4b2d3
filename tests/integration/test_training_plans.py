"""Training plans end to end: the SageMaker stand-in models plans as AWS documents them, and
the launcher (its Lambda handler, moto's DynamoDB) waits for a plan's start, creates on the
plan, waits while it is full, and the jobs complete on it; the monitor's handler warns a job's
thread before its plan ends (the real Slack notifier through slack_sdk's WebClient to the Slack
stand-in)."""

from __future__ import annotations

import json
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


def test_the_standin_stops_a_job_still_running_when_its_plan_ends_in_the_documented_shape(stack: Stack) -> None:
    documented = samples.load("sagemaker_describe_plan_end_stop.json")
    job_sample, plan_sample = documented["DescribeTrainingJob"], documented["DescribeTrainingPlan"]
    lead = datetime.fromisoformat(plan_sample["EndTime"]) - datetime.fromisoformat(job_sample["SecondaryStatusTransitions"][2]["StartTime"])
    now = stack.clock()
    end = now + 6 * 3600
    stack.sagemaker.plans.add("p5-dec", "ml.p5.48xlarge", 2, now - 3600, end)
    client = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=stack.sagemaker.url)
    request = p5_job(runtime=24 * 3600, **{HP_DURATION: str(20 * 3600)}).to_request("tb-bert-big-a1", training_plan_arn=ARN)
    client.create_training_job(**request)

    stack.clock.advance(6 * 3600 + 60)
    answer = client.describe_training_job(TrainingJobName="tb-bert-big-a1")

    assert (answer["TrainingJobStatus"], answer["SecondaryStatus"]) == (job_sample["TrainingJobStatus"], job_sample["SecondaryStatus"])
    assert "FailureReason" not in answer and "FailureReason" not in job_sample
    assert set(job_sample) - {"CheckpointConfig"} <= set(answer)
    transitions = answer["SecondaryStatusTransitions"]
    assert [t["Status"] for t in transitions] == [t["Status"] for t in job_sample["SecondaryStatusTransitions"]]
    assert [t["StatusMessage"] for t in transitions[2:]] == [t["StatusMessage"] for t in job_sample["SecondaryStatusTransitions"][2:]]
    stopping = transitions[2]["StartTime"]
    assert stopping == datetime.fromtimestamp(end, UTC) - lead and lead.total_seconds() == 1800
    assert answer["ResourceConfig"]["TrainingPlanArn"] == ARN
    assert answer["BillableTimeInSeconds"] == round((answer["TrainingEndTime"] - answer["TrainingStartTime"]).total_seconds())


def _plan_outlived_by(stack: Stack, runtime: int) -> float:
    """A plan whose jobs SageMaker starts stopping exactly ``runtime`` after the next tick's
    launch: a job of that max runtime fits as the launcher sees it, and SageMaker's start,
    STARTUP after the create, makes it run into the stop. Returns the plan's end."""
    now = stack.clock()
    end = now + 30 + runtime + 1800
    stack.sagemaker.plans.add("p5-dec", "ml.p5.48xlarge", 2, now - 3600, end)
    return end


def test_a_job_stopped_by_its_plans_end_ends_stopped_and_labelled_so_not_as_a_failure_of_its_code(slack_stack: Stack, slack) -> None:
    stack = slack_stack
    runtime = 4 * 3600
    _plan_outlived_by(stack, runtime)
    job = stack.submit("long", job_args=p5_job(runtime=runtime, **{HP_DURATION: str(10 * 3600)}), plan="p5-dec", slack=SlackThread(channel_id=CHANNEL))

    stack.tick(30.0)  # launched on the plan
    [ended] = stack.run_until_settled([job.job_id], seconds=600.0)

    assert ended.status.value == "Stopped"
    attempt = ended.attempts[-1]
    assert len(ended.attempts) == 1 and attempt.failure_class is not None and attempt.failure_class.value == "plan_ended"
    assert ended.algorithm_failures == 0
    assert ended.history[-1].reason.startswith("stopped by the end of plan `p5-dec`")
    assert "not a failure of your code" in ended.history[-1].reason
    assert "SageMaker is stopping the jobs on it" in ended.history[-2].reason  # the Stopping before it
    replies = _replies(slack, job)
    assert any("was stopped by the end of plan `p5-dec`" in r for r in replies)
    card = json.dumps(next(m for m in slack.messages(CHANNEL) if job.job_id in m["text"])["blocks"])
    assert "Stopped by the end of its training plan, not by a failure of your code" in card
    published = [n["body"] for n in stack.notifications() if n["body"]["jobId"] == job.job_id and n["body"]["status"] == "Stopped"]
    assert published and published[-1]["failureClass"] == "plan_ended"


def test_with_plan_fallback_a_job_stopped_by_its_plans_end_runs_again_on_demand_from_its_checkpoints(slack_stack: Stack, slack) -> None:
    stack = slack_stack
    runtime = 4 * 3600
    _plan_outlived_by(stack, runtime)
    # 3 h 55 min of training: cut by the plan (it starts 10 minutes after the create), whole on-demand.
    job = stack.submit(
        "resumes",
        job_args=p5_job(runtime=runtime, checkpoint="s3://out-bucket/ckpt/resumes", **{HP_DURATION: str(runtime - 300)}),
        plan="p5-dec", plan_fallback=True, slack=SlackThread(channel_id=CHANNEL),
    )

    stack.tick(30.0)  # launched on the plan
    [ended] = stack.run_until_settled([job.job_id], seconds=600.0)

    assert ended.status.value == "Completed"
    first, second = ended.attempts
    assert first.plan == "p5-dec" and first.failure_class is not None and first.failure_class.value == "plan_ended"
    assert second.plan is None
    assert "TrainingPlanArn" not in (stack.sagemaker.describe_job(second.name) or {})["ResourceConfig"]
    assert ended.algorithm_failures == 0
    retry = next(r for r in _replies(slack, job) if "*Retrying*" in r)
    assert "stopped by the end of plan `p5-dec`" in retry and "running it again on on-demand capacity (plan_fallback=ondemand)" in retry
    assert "resumes from checkpoints at `s3://out-bucket/ckpt/resumes`" in retry


def test_train_stats_and_its_chart_show_plan_hours_used_against_plan_hours_bought(stack: Stack) -> None:
    from backend.adapters.slack import render
    from backend.services.chart import render as render_chart
    from bot.usecases import BotService
    from tests.harness import ALICE

    now = stack.clock()
    start = now + 600
    stack.sagemaker.plans.add("p5-dec", "ml.p5.48xlarge", 2, start, start + 3 * 86400)
    on_plan = [stack.submit("two", job_args=p5_job(count=2), plan="p5-dec"), stack.submit("one", job_args=p5_job(count=1), plan="p5-dec")]
    elsewhere = stack.submit("on-demand", job_args=p5_job(count=1))
    settled = stack.run_until_settled([j.job_id for j in [*on_plan, elsewhere]], seconds=60.0)
    assert [j.status.value for j in settled] == ["Completed"] * 3

    bot = BotService(stack.container)
    stats = bot.stats(ALICE, "all", None, 7, None)

    used = sum((a.billable_seconds or 0) * j.job_args.instance_count for j in settled[:2] for a in j.attempts) / 3600
    bought = 2 * (stack.clock() - start) / 3600  # two instances since the plan started
    [row] = stats.plan_hours
    assert row.plan == "p5-dec" and row.used == pytest.approx(used) and row.bought == pytest.approx(bought)
    assert used > 0 and settled[2].attempts[0].billable_seconds  # the on-demand job's hours are not the plan's
    summary = json.dumps(render.stats_summary(stats, scope="all", user_id=None, preset=None, days=7)["blocks"], ensure_ascii=False)
    assert f"*Training plans* (instance-hours used of bought): `p5-dec` {used:,.2f} of {bought:,.2f} ({used / bought:.0%})" in summary
    chart = render_chart(stats)
    assert chart.series["plans"] == {"names": ["p5-dec"], "used": [round(used, 3)], "unused": [round(bought - used, 3)]}

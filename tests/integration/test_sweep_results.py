"""Issue 24 ("Sweeps you can read") through the template's handlers: the launcher and monitor
Lambda handlers over moto and the SageMaker stand-in (tests/harness.py Stack), the real Slack
notifier through slack_sdk's WebClient to the Slack stand-in, and, for the sweep, the bot's
handler driven with signed requests (tests/bot_fixtures.py BotDriver)."""

from __future__ import annotations

import pytest

from backend.adapters.sagemaker_events import training_status
from backend.domain.model import JobArgs, SlackThread
from tests.fixtures import samples
from tests.harness import Stack, job_request

CHANNEL = "C0TRAIN"
ACCURACY = {"Name": "accuracy", "Regex": r"accuracy=([0-9.]+)"}


@pytest.fixture
def stack(moto_aws, slack):
    env = {"SLACK_BOT_TOKEN": "xoxb-t", "SLACK_SIGNING_SECRET": "s", "SLACK_API_URL": slack.api_url}
    built = Stack(env=env, duration=600.0, startup=20.0)
    yield built
    built.close()


def _with_metrics(*definitions: dict, **hyperparameters: str) -> JobArgs:
    plain = job_request(**hyperparameters).model_dump(exclude_none=True)
    plain["AlgorithmSpecification"]["MetricDefinitions"] = list(definitions)
    return JobArgs.model_validate(plain)


def _replies(slack, job) -> list[str]:
    root = slack.messages(CHANNEL)[0]["ts"]
    return [m["text"] for m in slack.thread(CHANNEL, root)[1:]]


def test_the_documented_describe_answer_reads_as_final_metrics_and_a_model_artifact():
    described = samples.load("sagemaker_describe_final_metrics.json")
    status = training_status(described)
    assert status.final_metrics == {"train:error": 0.041, "validation:error": 0.087}
    assert status.model_artifact == described["ModelArtifacts"]["S3ModelArtifacts"]


def test_a_completed_job_records_its_final_metrics_and_model_and_its_reply_names_the_model(stack, slack):
    args = _with_metrics(ACCURACY, trainbot_standin_metric_accuracy="0.9137")
    job = stack.submit("bert", slack=SlackThread(channel_id=CHANNEL), job_args=args)
    [done] = stack.run_until_settled([job.job_id])

    assert done.status.value == "Completed"
    assert done.final_metrics == {"accuracy": pytest.approx(0.9137)}
    model = f"s3://out-bucket/runs/{done.current_attempt.name}/output/model.tar.gz"
    assert done.model_artifact == model
    reply = _replies(slack, job)[-1]
    assert "finished" in reply and f"Model: `{model}`" in reply and "accuracy 0.9137" in reply


def test_a_documented_end_event_costs_one_describe_which_brings_billable_time_metrics_and_model(stack):
    job = stack.submit("documented", job_args=_with_metrics(ACCURACY, trainbot_standin_metric_accuracy="0.5"))
    stack.clock.advance(1.0)
    stack.launch()
    stack.clock.advance(700.0)  # the stand-in's job has completed; its own events are not delivered
    stack.sagemaker.drain_events()
    attempt = stack.store.get(job.job_id).current_attempt.name
    before = stack.sagemaker.calls["DescribeTrainingJob"]

    event = samples.sagemaker_state_change(TrainingJobName=attempt)  # no billable time, metrics or model
    stack.monitor_handler(event, stack.context)
    stack.monitor_handler(event, stack.context)  # a duplicate: already applied, no Describe

    assert stack.sagemaker.calls["DescribeTrainingJob"] - before == 1
    done = stack.store.get(job.job_id)
    assert done.status.value == "Completed" and done.current_attempt.billable_seconds == 600
    assert done.final_metrics == {"accuracy": 0.5}
    assert done.model_artifact == f"s3://out-bucket/runs/{attempt}/output/model.tar.gz"

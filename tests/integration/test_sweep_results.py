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


# --- a sweep, through the bot's handler and the monitor's ------------------------------------------

from infra.local.standins.slack_signing import block_actions_body  # noqa: E402
from tests.bot_fixtures import GOOD_SUBMIT, OTHER, TEAM, USER, bot_env  # noqa: E402

__all__ = ["bot_env"]

STEER = "trainbot_standin_metric_accuracy"
SWEEP = (
    GOOD_SUBMIT.replace("submit name=bert-lr3", "sweep name=grid")
    + f" hp.{STEER}=0.71,0.93,0.85 metric.accuracy='accuracy=([0-9.]+)' objective=max:accuracy"
)


@pytest.fixture
def world(bot_env, jobs_table, slack):
    env = {"JOBS_TABLE_NAME": jobs_table, "SLACK_BOT_TOKEN": "xoxb-t", "SLACK_SIGNING_SECRET": "s", "SLACK_API_URL": slack.api_url}
    built = Stack(env=env, duration=600.0, startup=20.0)
    yield bot_env, built
    built.close()


def _sweep_jobs(stack):
    from backend.domain.model import Owner

    jobs = stack.store.jobs_of_owner(Owner(team_id=TEAM, user_id=USER), limit=50).jobs
    assert len(jobs) == 3
    return jobs


def _root(slack):
    [root] = slack.messages(CHANNEL)
    return root


def test_the_sweeps_summary_ranks_its_jobs_by_the_objective_with_only_the_hyperparameters_that_vary(world, slack):
    bot, stack = world
    bot.command(SWEEP, trigger_id="7.7.sweep")
    jobs = _sweep_jobs(stack)
    stack.tick(60)
    assert "Stop sweep" in str(_root(slack)["blocks"])  # while it runs

    stack.run_until_settled([j.job_id for j in jobs])

    root = _root(slack)
    assert "Stop sweep" not in str(root["blocks"])  # it has ended
    [summary] = [m["text"] for m in root["replies"] if "has ended" in m["text"]]
    assert "best first by highest `accuracy`" in summary
    rows = summary.splitlines()[2:]
    assert [r.split(" · ")[1] for r in rows] == [f"{STEER}=0.93", f"{STEER}=0.85", f"{STEER}=0.71"]
    assert all(r.endswith(("accuracy 0.93", "accuracy 0.85", "accuracy 0.71")) and " · Completed · 10 min · " in r for r in rows)
    assert "lr=" not in summary and "epochs=" not in summary  # the same for every job: not a column


def test_a_long_sweeps_summary_keeps_to_slacks_4000_characters_and_says_how_many_it_left_out(world, slack, monkeypatch):
    bot, stack = world
    monkeypatch.setenv("TRAINBOT_SWEEP_MAX_SIZE", "40")  # read at the bot's cold start: the first command
    values = ",".join(f"0.{n:02d}{'0' * 36}" for n in range(10, 50))  # 40 long rows: not all fit
    long_hp = "v" * 150  # the same for every job: not a column
    bot.command(
        GOOD_SUBMIT.replace("submit name=bert-lr3", "sweep name=wide")
        + f" hp.{STEER}={values} hp.note={long_hp} metric.accuracy='accuracy=([0-9.]+)' objective=min:accuracy",
        trigger_id="7.7.wide",
    )
    # 40 jobs: over the confirmation size, so confirm it as its owner would.
    from backend.services.submit import sweep_id_for

    url = slack.response_url(CHANNEL, USER, message_ts="1700000000.000100")
    bot.send(block_actions_body("sweep_confirm", sweep_id_for("7.7.wide"), user_id=USER, team_id=TEAM, channel_id=CHANNEL, response_url=url))
    from backend.domain.model import Owner

    jobs = stack.store.jobs_of_owner(Owner(team_id=TEAM, user_id=USER), limit=50).jobs
    assert len(jobs) == 40
    stack.run_until_settled([j.job_id for j in jobs])

    [summary] = [m["text"] for m in _root(slack)["replies"] if "has ended" in m["text"]]
    assert len(summary) <= 4000
    rows = [r for r in summary.splitlines() if r[:1].isdigit()]
    assert 0 < len(rows) < 40 and summary.endswith(f"_…and {40 - len(rows)} more_")
    assert rows[0].startswith("1. ") and rows[0].endswith("accuracy 0.1")  # min: lowest first


def test_stop_sw_and_the_stop_sweep_button_stop_every_unfinished_job_of_the_sweep_for_its_owner_only(world, slack):
    from backend.services.submit import sweep_id_for

    bot, stack = world
    bot.command(SWEEP, trigger_id="7.7.stop")
    sweep_id = sweep_id_for("7.7.stop")
    jobs = _sweep_jobs(stack)
    stack.tick(60)

    bot.command(f"stop {sweep_id}", user=OTHER)
    assert "(the owner) or an admin may change" in bot.ephemerals(user=OTHER)[-1]
    assert all(not j.is_terminal and j.status.value != "Stopping" for j in stack.store.get_many([j.job_id for j in jobs]))

    bot.command(f"stop {sweep_id}")
    assert "3 jobs stopped" in bot.ephemerals()[-1]
    stack.tick(60)
    assert {j.status.value for j in stack.store.get_many([j.job_id for j in jobs])} == {"Stopped"}

    url = slack.response_url(CHANNEL, USER, message_ts=_root(slack)["ts"])
    bot.send(block_actions_body("sweep_stop", sweep_id, user_id=USER, team_id=TEAM, channel_id=CHANNEL, response_url=url))
    assert "0 jobs stopped; 3 had ended already" in bot.ephemerals()[-1]


def test_status_shows_a_jobs_hyperparameters_final_metrics_and_model(world, slack):
    import json

    bot, stack = world
    bot.command(SWEEP, trigger_id="7.7.status")
    jobs = _sweep_jobs(stack)
    stack.run_until_settled([j.job_id for j in jobs])
    best = next(j for j in jobs if j.job_args.HyperParameters[STEER] == "0.93")

    bot.command(f"status {best.job_id}")
    blob = json.dumps(slack.ephemerals(user=USER)[-1]["blocks"])
    assert "*Hyperparameters*: lr=3e-5, epochs=3, " in blob and f"{STEER}=0.93" in blob
    assert "*Final metrics*: accuracy 0.93" in blob and "/output/model.tar.gz" in blob

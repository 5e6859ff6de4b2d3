"""Issue 15, failure forensics and spot that resumes, through the template's handlers: the
launcher and monitor Lambda handlers (tests/harness.py Stack: moto for DynamoDB, SNS and
CloudWatch Logs, the SageMaker stand-in over HTTP writing its jobs' logs), the real Slack
notifier through slack_sdk's WebClient to the Slack stand-in."""

from __future__ import annotations

import json

import pytest

from backend.domain.logtail import SNS_TAIL_BYTES, TAIL_BYTES
from backend.domain.model import JobArgs, NotifyMode, SlackThread
from infra.local.standins.sagemaker import ALGORITHM_ERROR, HP_LOG, HP_LOG_STALL, HP_OUTCOME, HP_OUTCOME_ATTEMPTS, SPOT_INTERRUPTED
from tests.harness import Stack, job_request

CHANNEL = "C0TRAIN"

# A training script's last words, written by someone who wants to page the whole channel.
HOSTILE_TAIL = "\n".join(
    [
        "epoch 3 step 1200 loss=0.4211",
        *[f"Traceback line {n}" for n in range(40)],
        "<!channel> the data loader is broken, ping @here and <@U0BOSS>",
        "see <https://evil.example/steal|the fix> or http://evil.example/x",
        "``` breaking out of the code block",
        "x" * 1200,  # one enormous line, cut at LINE_CHARS
        'RuntimeError: CUDA error: out of memory & "<b>bad</b>"',
    ]
)


@pytest.fixture
def stack(moto_aws, slack):
    env = {"SLACK_BOT_TOKEN": "xoxb-t", "SLACK_SIGNING_SECRET": "s", "SLACK_API_URL": slack.api_url}
    built = Stack(env=env, logs=True, duration=600.0, startup=20.0)
    yield built
    built.close()


def _replies(slack, job) -> list[str]:
    root = slack.messages(CHANNEL)[0]["ts"]
    return [m["text"] for m in slack.thread(CHANNEL, root)[1:]]


def _spot_args(**hyperparameters: str) -> JobArgs:
    plain = job_request(**hyperparameters).model_dump(exclude_none=True)
    plain["EnableManagedSpotTraining"] = True
    plain["StoppingCondition"] = {"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200}
    return JobArgs.model_validate(plain)


def test_a_failing_job_shows_its_log_tail_escaped_and_bounded_in_the_thread_and_sns(stack, slack):
    job = stack.submit(
        "bert", slack=SlackThread(channel_id=CHANNEL), retry_budget=0, hp={HP_OUTCOME: ALGORITHM_ERROR, HP_LOG: HOSTILE_TAIL}
    )
    [failed] = stack.run_until_settled([job.job_id])
    assert failed.status.value == "Failed"

    reply = _replies(slack, job)[-1]
    assert "failed (algorithm)" in reply and "exit code 1" in reply
    # The tail: its last line is there, escaped; the budget cut the older ones.
    assert 'RuntimeError: CUDA error: out of memory &amp; "&lt;b&gt;bad&lt;/b&gt;"' in reply
    assert "Traceback line 39" in reply and "epoch 3 step 1200" not in reply and "x" * 300 not in reply
    block = reply.split("```", 1)[1].rsplit("```", 1)[0]
    assert len(block.encode()) <= TAIL_BYTES + 200 and len(block.splitlines()) <= 21
    # Never able to mention or link: no raw markup, no @here, no auto-linkable URL.
    assert "<!channel>" not in reply and "<@U0BOSS>" not in reply and "@here" not in reply
    assert "<https://evil" not in reply and "http://evil" not in reply
    assert reply.count("```") == 2  # the log could not close the code block
    # The console link points at the stream that failed.
    stream = failed.current_attempt.log_tail.hosts[0].stream
    assert stream.startswith(f"{failed.current_attempt.name}/algo-1-")
    assert "log-events/" + stream.replace("/", "$252F") in reply

    [message] = [m for m in stack.notifications() if m["body"]["status"] == "Failed"]
    body = message["body"]
    assert body["exitCode"] == "1" and body["logState"] == "read" and body["logStream"] == stream
    assert body["logTail"].endswith('RuntimeError: CUDA error: out of memory & "<b>bad</b>"')
    assert len(body["logTail"].encode()) <= SNS_TAIL_BYTES and "@here" not in body["logTail"]
    assert len(body["logTail"]) < len(block)  # SNS gets a shorter tail


def test_a_multi_host_job_shows_every_host_within_the_budget(stack, slack):
    args = job_request(**{HP_OUTCOME: ALGORITHM_ERROR, HP_LOG: "NCCL error: unhandled system error\nrank 0 exiting"})
    args = args.model_copy(update={"ResourceConfig": args.ResourceConfig.model_copy(update={"InstanceCount": 3})})
    job = stack.submit("ddp", slack=SlackThread(channel_id=CHANNEL), retry_budget=0, job_args=args)
    [failed] = stack.run_until_settled([job.job_id])

    tail = failed.current_attempt.log_tail
    assert [h.stream.split("/")[1].rsplit("-", 1)[0] for h in tail.hosts] == ["algo-1", "algo-2", "algo-3"]
    reply = _replies(slack, job)[-1]
    assert "[algo-1]" in reply and "[algo-3]" in reply and "NCCL error" in reply and "worker exiting" in reply


def test_a_throttled_log_read_never_holds_back_the_failure_it_belongs_to(stack, slack, monkeypatch):
    import botocore.client

    original = botocore.client.BaseClient._make_api_call

    def throttled(client, operation, params):
        if client.meta.service_model.service_name == "logs" and operation in ("DescribeLogStreams", "GetLogEvents"):
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, operation)
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", throttled)
    job = stack.submit("bert", slack=SlackThread(channel_id=CHANNEL), retry_budget=0, hp={HP_OUTCOME: ALGORITHM_ERROR})
    [failed] = stack.run_until_settled([job.job_id])

    assert failed.status.value == "Failed" and failed.current_attempt.log_tail.state.value == "unreadable"
    reply = _replies(slack, job)[-1]
    assert "failed (algorithm)" in reply and "the log could not be read just now" in reply and "cloudwatch/home" in reply


def test_a_capacity_failure_reads_no_log(stack, slack):
    job = stack.submit("bert", slack=SlackThread(channel_id=CHANNEL), hp={HP_OUTCOME: "CapacityError", HP_OUTCOME_ATTEMPTS: "1"})
    [done] = stack.run_until_settled([job.job_id])
    assert done.status.value == "Completed"
    assert all(a.log_tail is None for a in done.attempts)
    assert stack.container.forensics.tails_read == 0


def _thread(slack, job_id: str, store) -> list[str]:
    root = store.get(job_id).slack.thread_ts
    return [m["text"] for m in slack.thread(CHANNEL, root)[1:]]


def test_a_spot_job_gets_one_checkpoint_location_that_every_attempt_resumes_from(stack, slack):
    spot = _spot_args(**{HP_OUTCOME: SPOT_INTERRUPTED, HP_OUTCOME_ATTEMPTS: "2"})
    job = stack.submit("spotty", slack=SlackThread(channel_id=CHANNEL), job_args=spot)
    told = stack.submit("spotty-all", slack=SlackThread(channel_id=CHANNEL), job_args=spot, notify=NotifyMode.ALL)
    expected = f"s3://out-bucket/runs/{job.job_id}/checkpoints"
    assert job.job_args.CheckpointConfig is not None and job.job_args.CheckpointConfig.S3Uri == expected

    [done, done_told] = stack.run_until_settled([job.job_id, told.job_id], max_ticks=2000, seconds=120.0)

    assert done.status.value == "Completed" and done.attempt_count == 3
    created = [stack.sagemaker.describe_job(a.name) for a in done.attempts]
    assert [d["CheckpointConfig"]["S3Uri"] for d in created] == [expected] * 3
    # Interrupted twice: capacity both times, never the retry budget.
    assert [a.failure_class.value for a in done.attempts[:2]] == ["capacity", "capacity"]
    assert done.algorithm_failures == 0
    # A spot interruption is a capacity retry: nobody's to act on, so (issue 24, notice.replies_to)
    # it is told on the card, not in the thread, unless the owner asked for every change.
    replies = _thread(slack, job.job_id, stack.store)
    assert [r for r in replies if "Retrying" in r or "resumes from checkpoints" in r] == []
    assert len(replies) == 1 and "Completed" in replies[0]
    told_at = f"s3://out-bucket/runs/{told.job_id}/checkpoints"
    assert done_told.status.value == "Completed" and done_told.attempt_count == 3
    resumes = [r for r in _thread(slack, told.job_id, stack.store) if "resumes from checkpoints" in r]
    assert [f"attempt {n} resumes from checkpoints at `{told_at}`" in r for n, r in zip((2, 3), resumes, strict=True)] == [True, True]


def test_a_spot_interruption_is_retried_for_free_even_with_no_retry_budget(stack, slack):
    job = stack.submit(
        "spotty",
        slack=SlackThread(channel_id=CHANNEL),
        retry_budget=0,
        job_args=_spot_args(**{HP_OUTCOME: SPOT_INTERRUPTED, HP_OUTCOME_ATTEMPTS: "1"}),
    )
    # Interrupted, then out of max_wait: Retrying for capacity, which the card tells (issue 24:
    # capacity retries are on the card, not in the thread).
    for _ in range(2000):
        stack.tick(120.0)
        if stack.store.get(job.job_id).status.value == "Retrying":
            break
    card = json.dumps(slack.messages(CHANNEL)[0]["blocks"])
    assert "spot interruption" in card and "retries for capacity are free" in card
    [done] = stack.run_until_settled([job.job_id], max_ticks=2000, seconds=120.0)
    assert done.status.value == "Completed" and done.attempts[0].failure_class.value == "capacity"
    assert done.algorithm_failures == 0
    assert not [r for r in _replies(slack, job) if "Retrying" in r]


def test_the_card_says_in_plain_words_why_a_job_failed(stack, slack):
    job = stack.submit("bert", slack=SlackThread(channel_id=CHANNEL), retry_budget=0, hp={HP_OUTCOME: ALGORITHM_ERROR})
    stack.run_until_settled([job.job_id])
    card = slack.messages(CHANNEL)[0]
    last = card["blocks"][-1]
    assert last["type"] == "context" and "Your training code failed" in json.dumps(last)


def test_a_silent_running_job_gets_exactly_one_stall_warning_and_a_later_line_clears_it(stack, slack):
    job = stack.submit(
        "hung",
        slack=SlackThread(channel_id=CHANNEL),
        stall_alert_seconds=45 * 60,
        hp={"trainbot_standin_duration": "20000", "max_runtime": "86400", HP_LOG_STALL: "300"},
    )
    for _ in range(40):  # 40 ticks of 2 minutes, a sweep each time: silent from minute ~5 on
        stack.tick(120.0, sweep=True)
    warnings = [r for r in _replies(slack, job) if "no log line" in r]
    assert len(warnings) == 1 and "hung" in warnings[0]

    # It writes again: the warning is cleared; silent for another 45 minutes, a second one.
    attempt = stack.store.get(job.job_id).current_attempt
    stack.sagemaker.log_line(attempt.name, "step 5 after a very long eval")
    for _ in range(10):
        stack.tick(120.0, sweep=True)
    assert len([r for r in _replies(slack, job) if "no log line" in r]) == 1
    for _ in range(20):
        stack.tick(120.0, sweep=True)
    assert len([r for r in _replies(slack, job) if "no log line" in r]) == 2


def test_no_stall_warning_without_stall_alert(stack, slack):
    job = stack.submit(
        "hung",
        slack=SlackThread(channel_id=CHANNEL),
        hp={"trainbot_standin_duration": "20000", "max_runtime": "86400", HP_LOG_STALL: "300"},
    )
    for _ in range(40):
        stack.tick(120.0, sweep=True)
    assert not [r for r in _replies(slack, job) if "no log line" in r]
    assert stack.container.forensics.stall_checks == 0


def test_a_log_line_of_four_backticks_cannot_close_the_code_block(stack, slack):
    tail = "\n".join(["step 1", "````", "`" * 7, "RuntimeError: boom `"])
    job = stack.submit("fence", slack=SlackThread(channel_id=CHANNEL), retry_budget=0, hp={HP_OUTCOME: ALGORITHM_ERROR, HP_LOG: tail})
    stack.run_until_settled([job.job_id])
    reply = _replies(slack, job)[-1]
    assert reply.count("```") == 2 and reply.endswith("```")
    assert "RuntimeError: boom" in reply.split("```", 1)[1]

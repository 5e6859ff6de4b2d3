"""Issue 13, part 3 and the live card, through the template's handlers: signed ``/train``
requests to the bot, the launcher's and the monitor's handlers driven as AWS drives them, moto,
the SageMaker stand-in (refusing the first type: its per-type ``capacity``) and the Slack
stand-in, on one simulated clock (tests/slack_world.py)."""

from __future__ import annotations

import json

import boto3
import pytest

from backend.domain.model import AttemptOutcome
from infra.local.standins.sagemaker import ALGORITHM_ERROR, HP_DURATION, HP_OUTCOME, HP_OUTCOME_ATTEMPTS
from tests.bot_fixtures import CHANNEL, GOOD_SUBMIT
from tests.slack_world import SlackWorld

P5, P4D = "ml.p5.48xlarge", "ml.p4d.24xlarge"


def _submit(world: SlackWorld, name: str, instance: str, extra: str = "") -> str:
    """Submit through the bot; the new job's id."""
    before = set(world.job_ids())
    text = GOOD_SUBMIT.replace("name=bert-lr3", f"name={name}").replace("instance=ml.g5.xlarge", f"instance={instance}")
    world.command(f"{text} {extra}".strip())
    [job_id] = set(world.job_ids()) - before
    return job_id


def _created_type(name: str) -> str:
    sagemaker = boto3.client("sagemaker", region_name="us-east-1")
    return sagemaker.describe_training_job(TrainingJobName=name)["ResourceConfig"]["InstanceType"]


def _replies(world: SlackWorld, job) -> list[str]:
    return [m["text"] for m in world.slack.thread(CHANNEL, job.slack.thread_ts)[1:]]


@pytest.fixture
def world(moto_aws):
    with SlackWorld() as built:
        # The account may run one p5 instance at a time: a second is refused (ResourceLimitExceeded).
        built.stack.sagemaker.capacity[P5] = 1
        yield built


def test_a_job_refused_on_its_first_type_runs_on_the_next_and_its_thread_says_which_and_why(world):
    _submit(world, "blocker", P5, f"hp.{HP_DURATION}=600")
    world.stack.tick()
    fallback = _submit(world, "fb", f"{P5},{P4D}")
    world.stack.tick()  # its create on p5 is refused: Retrying, due at once, p5 held
    world.stack.tick()  # the next attempt, on p4d
    [job] = world.settle([fallback])

    assert job.status.value == "Completed"
    first, second = job.attempts
    assert (first.instance_type, first.outcome, first.failure_class.value) == (P5, AttemptOutcome.NOT_STARTED, "quota")
    assert (second.instance_type, second.outcome) == (P4D, AttemptOutcome.COMPLETED)
    assert _created_type(f"{fallback}-a2") == P4D
    with pytest.raises(Exception, match="ValidationException|ResourceNotFound|not found"):
        _created_type(f"{fallback}-a1")  # the refused attempt was never created

    # The quota refusal and the switch of type are nobody's to act on: the thread has the end only.
    [completed] = _replies(world, job)
    # Its first line says where it ran; the second, where the model is (issue 24: the Completed
    # reply names the model artifact).
    first, model = completed.split("\n")
    assert first.startswith(":white_check_mark: *Completed* <@U0ALICE>: *fb* finished (") and first.endswith(
        f" (attempt 2 ran on `{P4D}`)"
    )
    assert model.startswith("Model: `s3://out-bucket/runs/") and model.endswith("-a2/output/model.tar.gz`")
    # The card shows the type it runs on and its list.
    card = world.slack.message(CHANNEL, job.slack.thread_ts)
    assert f"`{P4D}` × 1 (of `{P5}`, `{P4D}`)" in card["blocks"][0]["text"]["text"]


def test_the_next_attempt_goes_back_to_the_first_choice_once_it_frees(world):
    _submit(world, "blocker", P5, f"hp.{HP_DURATION}=60")
    world.stack.tick()
    fallback = _submit(world, "fb", f"{P5},{P4D}", f"retries=1 hp.{HP_OUTCOME}={ALGORITHM_ERROR} hp.{HP_OUTCOME_ATTEMPTS}=1")
    [job] = world.settle([fallback])

    assert job.status.value == "Completed"
    assert [(a.instance_type, a.outcome.value) for a in job.attempts] == [
        (P5, "not_started"),  # refused: the blocker holds the only p5 instance
        (P4D, "failed"),  # the fallback, whose training failed
        (P5, "completed"),  # the blocker has ended: back to the first choice
    ]
    assert _created_type(f"{fallback}-a3") == P5
    # The algorithm error is told (it spends the budget); the changes of type are on the card only.
    retrying, completed = _replies(world, job)
    assert retrying.startswith(":repeat: *Retrying*: attempt 3 (algorithm retry 1 of 1) in ")
    first = completed.split("\n")[0]  # then the model's location
    assert first.startswith(":white_check_mark: *Completed*") and first.endswith(f" (attempt 3 ran on `{P5}`)")


def test_a_queued_jobs_card_says_why_it_waits_and_is_updated_once_per_change_not_per_tick():
    from moto import mock_aws

    with mock_aws(), SlackWorld(env={"TRAINBOT_INSTANCE_LIMITS": json.dumps({P5: 1})}) as world:
        _submit(world, "blocker", P5, f"hp.{HP_DURATION}=900")
        world.stack.tick()
        world.stack.tick()
        waiting = _submit(world, "waits", P5)
        [job] = world.stack.store.get_many([waiting])
        card_key = (CHANNEL, job.slack.thread_ts)

        def card_updates() -> list[str]:
            return [
                json.dumps(c.params.get("blocks"), ensure_ascii=False)
                for c in world.slack.calls_to("chat.update")
                if (c.params.get("channel"), c.params.get("ts")) == card_key
            ]

        updates_before, writes_before = len(card_updates()), world.counter.total_writes
        world.stack.tick()  # parked: why it waits goes on the item with the park write
        card = json.dumps(world.slack.message(*card_key)["blocks"], ensure_ascii=False)
        assert f"waiting: {P5} is at its limit of 1 instances in use" in card
        assert len(card_updates()) - updates_before == 1
        assert world.counter.total_writes - writes_before == 1  # the park write, nothing more

        updates_before, writes_before = len(card_updates()), world.counter.total_writes
        for _ in range(10):
            world.stack.tick()  # the blocker keeps running: nothing changed, nothing written or sent
        assert len(card_updates()) == updates_before
        assert world.counter.total_writes == writes_before

        [done] = world.settle([waiting])
        assert done.status.value == "Completed" and done.waiting is None
        final = json.dumps(world.slack.message(*card_key)["blocks"], ensure_ascii=False)
        assert "waiting:" not in final


def test_a_type_the_account_has_no_quota_for_is_passed_over_not_fatal(world):
    world.stack.sagemaker.capacity[P5] = 0  # ResourceLimitExceeded: "... is 0 Instances"
    fallback = _submit(world, "fb", f"{P5},{P4D}")
    [job] = world.settle([fallback])

    assert job.status.value == "Completed"
    assert [(a.instance_type, a.outcome.value) for a in job.attempts] == [(P5, "not_started"), (P4D, "completed")]
    assert "quota for ml.p5.48xlarge training is 0 instances" in job.attempts[0].reason


# --- issue 24: capacity retries on the card, not in the thread ------------------------------------


def test_a_fallback_job_with_no_capacity_anywhere_keeps_its_retries_on_the_card_and_its_thread_to_the_end():
    from moto import mock_aws

    from infra.local.standins.sagemaker import CAPACITY_ERROR

    with mock_aws(), SlackWorld(env={"TRAINBOT_CAPACITY_MAX_WAIT_SECONDS": "900"}) as world:
        job_id = _submit(world, "nocap", f"{P5},{P4D}", f"hp.{HP_OUTCOME}={CAPACITY_ERROR}")
        card_key = None
        retrying_cards = []
        for _ in range(200):
            world.stack.tick(30.0, sweep=False)
            [job] = world.stack.store.get_many([job_id])
            card_key = (CHANNEL, job.slack.thread_ts)
            if job.status.value == "Retrying":
                retrying_cards.append(json.dumps(world.slack.message(*card_key)["blocks"], ensure_ascii=False))
            if job.status.value == "Failed":
                break
        [job] = world.settle([job_id])

        # Six attempts, switching type each time, and a reply only when it ended.
        assert [a.instance_type for a in job.attempts] == [P5, P4D, P5, P4D, P5, P4D]
        assert _replies(world, job) == [
            f":x: *Failed* <@U0ALICE>: *nocap* failed (capacity): no capacity on {P5} or {P4D} for 15 min: Trainbot stopped "
            "waiting; last: CapacityError: Unable to provision requested ML compute capacity. Please retry using a different "
            f"ML instance type. (attempt 6 ran on `{P4D}`)"
        ]
        # While it waited, one card line said how it went (updated with each attempt).
        assert f"No capacity yet on `{P5}`, `{P4D}`: 5 attempts since " in retrying_cards[-1]
        assert " · next attempt at " in retrying_cards[-1] and " · retries for capacity are free" in retrying_cards[-1]
        assert "No capacity yet on `ml.p5.48xlarge`: 1 attempt since " in retrying_cards[0]
        # Once it failed, the card says what happened, in the owner's words, every type tried.
        final = json.dumps(world.slack.message(*card_key)["blocks"], ensure_ascii=False)
        assert (
            f"No capacity on `{P5}`, `{P4D}`: Trainbot stopped waiting. Retry later, or list more instance types (instance=a,b)."
        ) in final
        assert "the retry is free" not in final and "TRAINBOT_" not in final and "No capacity yet" not in final

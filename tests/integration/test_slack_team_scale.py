"""Issue 12, "Done when", through the template's handlers: the bot's (signed /train requests),
the launcher's and the monitor's, with moto, the SageMaker stand-in and the Slack stand-in
enforcing Slack's rate limits, on one simulated clock (tests/slack_world.py)."""

from __future__ import annotations

import pytest

from tests.bot_fixtures import CHANNEL, GOOD_SUBMIT, USER
from tests.slack_world import SlackWorld

SWEEP = (
    "sweep name=grid image=123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest instance=ml.g5.xlarge "
    "input=s3://data-bucket/train output=s3://out-bucket/runs role=arn:aws:iam::123456789012:role/SageMakerRole "
    "max_runtime=1h hp.lr={lr} hp.batch={batch}"
)

# Each /train request's lazy work runs once (issue 26): its `lazy#…` claim, a lease Lambda's
# retry of a killed run takes over, and its done mark are two writes per request, whatever
# the request registers.
REQUEST_WRITES = 2
# The cursors' writes (slack_world.DynamoCounter.run_writes): a reaper or sweep cursor's move is
# two UpdateItems, and these short stories run the monitor's sweep a handful of times.
MONITOR_RUNS_AT_MOST = 8


@pytest.fixture
def world(moto_aws):
    with SlackWorld() as built:
        yield built


def _sweep(world: SlackWorld, lrs: int, batches: int, extra: str = "") -> list[str]:
    text = SWEEP.format(lr=",".join(f"{i}e-5" for i in range(1, lrs + 1)), batch=",".join(str(b) for b in range(1, batches + 1)))
    world.command(f"{text} {extra}".strip())
    ids = world.job_ids()
    assert len(ids) == lrs * batches
    return ids


def test_a_happy_path_job_posts_at_most_3_messages_mentions_its_owner_on_its_card_and_its_end_and_costs_at_most_7_writes(world):
    world.command(GOOD_SUBMIT)
    [job_id] = world.job_ids()
    jobs = world.settle([job_id])
    assert jobs[0].status.value == "Completed"

    traffic = world.slack.traffic()
    assert traffic["messages"] <= 3, world.slack.messages(CHANNEL)
    assert traffic["mentions"] == {USER: 2}  # the card's post and the Completed reply; no update notifies
    card = world.slack.message(CHANNEL, jobs[0].slack.thread_ts)
    assert "Completed" in card["text"]
    replies = [m["text"] for m in world.slack.thread(CHANNEL, jobs[0].slack.thread_ts)[1:]]
    assert len(replies) == 1 and "Completed" in replies[0] and f"<@{USER}>" in replies[0]
    # Every DynamoDB write of the bot, the launcher and the monitor for this one job (7:
    # docs/architecture.md "The write floor"), plus the /train request's own run-once claim and its done mark.
    assert world.counter.total_writes <= 7 + REQUEST_WRITES, dict(world.counter.writes)
    assert world.counter.run_writes <= 2 * MONITOR_RUNS_AT_MOST, world.counter.run_writes
    # SNS subscribers still heard every change, in order.
    statuses = [n["body"]["status"] for n in world.stack.notifications()]
    assert statuses == ["New", "Launched", "InProgress", "Completed"]


# A sweep's own writes, whatever its size: its pending root (written, then deleted), its batch
# record (written, then marked done), the owner's clock, its end record's creation (a failed
# first count, then the put), the final summary's claim and its posted mark, and the request's.
SWEEP_OVERHEAD_WRITES = 9 + REQUEST_WRITES


def test_a_120_job_sweep_that_succeeds_posts_at_most_6_messages_and_stays_inside_slacks_limits(world):
    ids = _sweep(world, 12, 10)
    jobs = world.settle(ids)
    assert {job.status.value for job in jobs} == {"Completed"}

    traffic = world.slack.traffic()
    assert traffic["messages"] <= 6, [m["text"] for m in world.slack.messages(CHANNEL)]
    assert traffic["mentions"] == {USER: 2}  # 120 jobs: the sweep card's post and its summary, nothing per job
    assert traffic["peak_posts_per_channel"] <= 10
    assert traffic["peak_updates_per_message_per_minute"] <= 20
    root = world.slack.messages(CHANNEL)[0]
    assert "120 of 120 ended" in str(root["blocks"])
    summary = world.slack.thread(CHANNEL, root["ts"])[-1]["text"]
    assert f"<@{USER}>" in summary and "Completed 120" in summary
    # Seven writes per job (registration, claim, launch, two status changes, the delivery marks:
    # docs/architecture.md explains the floor) plus a few for the sweep itself, whatever its
    # size (SWEEP_OVERHEAD_WRITES): 7.005 per job at 2,000.
    assert world.counter.total_writes <= 7 * len(ids) + SWEEP_OVERHEAD_WRITES, dict(world.counter.writes)


def test_a_sweeps_failures_are_grouped_into_digests_and_named_in_its_summary(world):
    from infra.local.standins.sagemaker import ALGORITHM_ERROR, HP_OUTCOME

    text = SWEEP.format(lr="1e-5,2e-5,3e-5,4e-5,5e-5,6e-5", batch="1,2,3,4") + f" retries=0 hp.{HP_OUTCOME}={ALGORITHM_ERROR}"
    world.command(text)
    ids = world.job_ids()
    jobs = world.settle(ids)
    assert {job.status.value for job in jobs} == {"Failed"}

    root = world.slack.messages(CHANNEL)[0]
    replies = [m["text"] for m in world.slack.thread(CHANNEL, root["ts"])[1:]]
    digests = [r for r in replies if r.startswith(":warning: Failures")]
    assert [d.split(" of this sweep")[0] for d in digests] == [":warning: Failures 1–10", ":warning: Failures 11–20"]
    assert replies[-1].count("• ") == 4 and f"<@{USER}>" in replies[-1]  # the last 4, in the summary
    assert world.slack.traffic()["mentions"] == {USER: 2}  # the sweep card's post and its summary


def test_a_sweep_with_more_failures_than_its_record_keeps_still_digests_every_ten_in_order(world):
    from backend.domain import notice
    from backend.domain.records import RecordKind
    from infra.local.standins.sagemaker import ALGORITHM_ERROR, HP_OUTCOME

    lrs = ",".join(f"{i}e-5" for i in range(1, 11))
    world.command(SWEEP.format(lr=lrs, batch="1,2,3,4,5,6") + f" retries=0 hp.{HP_OUTCOME}={ALGORITHM_ERROR}")
    ids = world.job_ids()
    assert len(ids) == 60 > 2 * notice.SWEEP_FAILURES_KEPT
    world.settle(ids)

    root = world.slack.messages(CHANNEL)[0]
    replies = [m["text"] for m in world.slack.thread(CHANNEL, root["ts"])[1:]]
    digests = [r for r in replies if r.startswith(":warning: Failures")]
    # Numbered from the sweep's first failure, though the record dropped the older lines.
    assert [d.split(" of this sweep")[0] for d in digests] == [f":warning: Failures {i}–{i + 9}" for i in range(1, 50, 10)]
    assert all(d.count("• ") == 10 for d in digests)
    assert "Failed 60" in replies[-1] and replies[-1].count("• ") == 10  # the last ten, in the summary
    ends = world.stack.store.get_record(RecordKind.SWEEP_ENDS, world.stack.store.get(ids[0]).sweep_id)
    assert len(ends["Failures"]) <= 2 * notice.SWEEP_FAILURES_KEPT and ends["FailuresBefore"] + len(ends["Failures"]) == 60


def test_a_rate_limited_card_update_never_posts_a_reply_twice(world):
    world.command(GOOD_SUBMIT)
    [job_id] = world.job_ids()
    # Slack refuses every card update for a while, asking for a long wait.
    world.slack.fail_next("chat.update", status=429, retry_after=120, count=6)
    world.command(f"stop {job_id}")
    jobs = world.settle([job_id])
    assert jobs[0].status.value == "Stopped"

    replies = [m["text"] for m in world.slack.thread(CHANNEL, jobs[0].slack.thread_ts)[1:]]
    assert len(replies) == 1 and "Stopped" in replies[0], replies
    assert f"stopped by <@{USER}>" in replies[0]  # a live mention of who stopped it
    assert "Stopped" in world.slack.message(CHANNEL, jobs[0].slack.thread_ts)["text"]  # the card caught up

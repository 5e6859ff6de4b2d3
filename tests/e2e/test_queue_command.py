"""`/train queue` and the waiting reason of `/train status`, signed as Slack signs them, through
the template's bot handler (lazy listeners via the Lambda Invoke stand-in, Slack via the real
WebClient against the Slack stand-in)."""

from __future__ import annotations

import json

from tests.bot_fixtures import (
    GOOD_SUBMIT,
    OTHER,
    TEAM,
    USER,
    answer_text,
)


def _ids(store, user: str) -> list[str]:
    from backend.domain.model import Owner

    return [j.job_id for j in reversed(store.jobs_of_owner(Owner(team_id=TEAM, user_id=user), limit=50).jobs)]


def test_queue_lists_waiting_jobs_in_launch_order_with_their_position_and_fair_share(bot_env, store):
    bot_env.command(GOOD_SUBMIT)
    bot_env.command(GOOD_SUBMIT.replace("bert-lr3", "bert-lr4"))
    bot_env.command(GOOD_SUBMIT.replace("bert-lr3", "colleague-1"), user=OTHER)
    mine, mine_later = _ids(store, USER)
    (theirs,) = _ids(store, OTHER)

    bot_env.command("queue")
    answer = bot_env.slack.ephemerals(user=USER)[-1]
    blob = json.dumps(answer["blocks"])

    # Fair share: the colleague's first job sorts before my second one.
    assert blob.index(mine) < blob.index(theirs) < blob.index(mine_later)
    assert "3 jobs in launch order" in blob and "#3 of 3 queued at priority 5" in blob
    assert "1 of other people's jobs and 1 of its owner's own are ahead" in blob


def test_status_of_a_queued_job_says_why_it_waits(bot_env, store):
    bot_env.command(GOOD_SUBMIT)
    bot_env.command(GOOD_SUBMIT.replace("bert-lr3", "bert-lr4"))
    _, second = _ids(store, USER)

    bot_env.command(f"status {second}")
    blob = json.dumps(bot_env.slack.ephemerals(user=USER)[-1]["blocks"])

    assert "*Waiting*" in blob and "#2 of 2 queued at priority 5" in blob


def test_queue_for_an_unknown_instance_type_answers_the_usage(bot_env):
    response = bot_env.command("queue instance=ml.nope.huge")
    assert "not a SageMaker training instance type" in answer_text(response) + " ".join(bot_env.ephemerals())


def test_an_empty_queue_says_so(bot_env):
    bot_env.command("queue instance=ml.p5.48xlarge")
    assert "is empty" in bot_env.ephemerals()[-1]

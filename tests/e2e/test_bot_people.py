"""People, one way, in everything the bot says (issue 24): signed `/train` commands through the
template's handler, every message and answer as the Slack stand-in holds it. The owner is a
mention on the job card, the sweep card, status, list, queue, stats, budget and the admins'
approval card; never a raw id. A team is named as text; a user in no team (whose budget is
keyed by their id) is that user."""

from __future__ import annotations

import json
import re

from backend.domain.times import utcnow
from tests.bot_fixtures import ADMIN, CHANNEL, GOOD_SUBMIT, OTHER, TEAM, USER, answer_text
from tests.stats_history import HOUR, job_with, seed

PEOPLE = (USER, OTHER, ADMIN)


def _shown(message: dict) -> str:
    """What Slack shows of a message: its text and blocks (not who posted it, to whom)."""
    return json.dumps([message.get("text"), message.get("blocks")], ensure_ascii=False)


def _everything(bot_env) -> list[str]:
    """Every message, reply, DM, ephemeral answer and ack body the bot produced."""
    slack = bot_env.slack
    messages = [*slack.messages(CHANNEL), *(m for user in PEOPLE for m in slack.messages(user))]  # the channel, DMs
    shown = [_shown(m) for m in messages] + [_shown(r) for m in messages for r in m["replies"]]
    shown += [_shown(m) for m in slack.ephemerals()]
    shown += [answer_text(r) for r in bot_env.responses]
    return shown


def _raw(text: str) -> list[str]:
    outside = re.sub(r"<@[UW][A-Z0-9]{2,20}>", "", text)
    return [p for p in PEOPLE if p in outside]


def test_every_answer_and_card_names_people_as_mentions_and_teams_as_text(bot_env, monkeypatch, dynamodb, jobs_table):
    import bot.handler

    monkeypatch.setenv("TRAINBOT_TEAM_BUDGETS", "nlp=500,*=100")
    monkeypatch.setenv("TRAINBOT_USER_TEAMS", f"{OTHER}=nlp")  # USER is in no team: a team of one
    monkeypatch.setenv("TRAINBOT_APPROVAL_SWEEP_SIZE", "1")  # sweeps wait for an admin: an approval card
    bot.handler.reset()
    now = utcnow()
    attempt = dict(claimed=now - 2 * HOUR, launched=now - 2 * HOUR, started=now - 2 * HOUR, ended=now - HOUR, billable=3600)
    from backend.domain.status import JobStatus

    seed(dynamodb, jobs_table, [
        job_with("billed-mine", now - 3 * HOUR, JobStatus.COMPLETED, [attempt], user=USER, team=TEAM),
        job_with("billed-other", now - 3 * HOUR, JobStatus.COMPLETED, [attempt], user=OTHER, team=TEAM),
    ])

    bot_env.command(GOOD_SUBMIT)
    sweep = GOOD_SUBMIT.replace("submit name=bert-lr3", "sweep name=grid").replace("hp.lr=3e-5", "hp.lr=1,2")
    bot_env.command(sweep)
    job_id = next(j for j in _jobs(bot_env, dynamodb, jobs_table) if j.name == "bert-lr3").job_id
    for command in (f"status {job_id}", "list all", "queue", "stats all days=7", "budget", f"stop {job_id}"):
        bot_env.command(command)
    bot_env.command("list all", user=OTHER)

    shown = _everything(bot_env)
    for seen in ("*Attempts*", "Everyone's jobs", "*Queue*", "*Spend*", "week ", "Approval needed", "Sweep *grid*"):
        assert any(seen in text for text in shown), seen  # status, list, queue, stats, budget, approval, sweep card
    assert [(text[:200], _raw(text)) for text in shown if _raw(text)] == []
    everything = "\n".join(shown)
    job = next(j for j in _jobs(bot_env, dynamodb, jobs_table) if j.name == "bert-lr3")
    assert f"Owner <@{USER}>" in json.dumps(bot_env.slack.message(CHANNEL, job.slack.thread_ts), ensure_ascii=False)
    assert f"Sweep *grid* by <@{USER}>" in everything  # the sweep card
    assert "Approval needed" in everything and f"by <@{USER}>" in json.dumps(bot_env.slack.messages(ADMIN), ensure_ascii=False)
    by_team = everything.split("*By team*:")[1].split("\\n")[0]
    assert f"<@{USER}>" in by_team and "`nlp`" in by_team  # a user in no team; a team by its name
    assert f"<@{USER}> *(in no team)*" in everything  # /train budget of a team of one
    assert f"stopped by <@{USER}>" in everything


def _jobs(bot_env, dynamodb, jobs_table):
    from backend.adapters.dynamo import DynamoJobStore
    from backend.domain.model import Owner

    return DynamoJobStore(dynamodb, jobs_table).jobs_of_owner(Owner(team_id=TEAM, user_id=USER), limit=50).jobs

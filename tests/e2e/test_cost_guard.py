"""The cost guard (issue 14) through the template's bot handler: signed `/train` commands and
button presses, the Slack stand-in reached by the real WebClient, the job table on moto.

Estimates in the answer and the card; held submissions, the admins' approval card and what
each press does (and does not do); `/train budget`; refusals over a team's weekly budget.
"""

from __future__ import annotations

import json

import pytest

from backend.domain.approval import ApprovalState
from backend.domain.cost import iso_week
from backend.domain.model import Owner
from backend.domain.records import RecordKind
from backend.domain.status import JobStatus
from backend.domain.times import utcnow
from infra.local.standins.slack_signing import block_actions_body, view_submission_body
from tests.bot_fixtures import ADMIN, CHANNEL, GOOD_SUBMIT, OTHER, TEAM, USER

# GOOD_SUBMIT: one ml.g5.xlarge for at most 1 h, at the repo's $1.408 an hour.
P5_SUBMIT = GOOD_SUBMIT.replace("ml.g5.xlarge", "ml.p5.48xlarge").replace("max_runtime=1h", "max_runtime=10h")


def _only_job(store, user: str = USER):
    jobs = store.jobs_of_owner(Owner(team_id=TEAM, user_id=user), limit=50).jobs
    assert len(jobs) == 1, jobs
    return jobs[0]


def _press(bot_env, action_id: str, value: str, user: str, channel: str = ADMIN) -> dict:
    url = bot_env.slack.response_url(channel, user, message_ts="1700000000.000100")
    body = block_actions_body(action_id, value, user_id=user, team_id=TEAM, channel_id=channel, response_url=url)
    return bot_env.send(body)


def _texts(bot_env, user: str) -> list[str]:
    return [m.get("text") or "" for m in bot_env.slack.ephemerals(user=user)]


@pytest.fixture
def guarded(monkeypatch, bot_env):
    """The bot with p5 instances needing approval."""
    monkeypatch.setenv("TRAINBOT_APPROVAL_INSTANCE_TYPES", "ml.p5.48xlarge")
    return bot_env


def test_a_submission_is_answered_with_its_estimate_and_its_card_shows_the_instance_hours(bot_env, store):
    bot_env.command(GOOD_SUBMIT.replace("max_runtime=1h", "max_runtime=2h") + " count=3")

    job = _only_job(store)
    answer = next(t for t in bot_env.ephemerals() if "Registered" in t)
    # 3 instances x 2 h = 6 instance-hours, x $1.408 = $8.45
    assert "≤ 6.00 instance-hours" in answer and "$8.45" in answer and "2025-01" in answer
    card = bot_env.slack.messages(CHANNEL)[0]
    assert job.job_id in card["text"] and "≤ 6.00 instance-hours" in json.dumps(card["blocks"], ensure_ascii=False)
    assert job.approval is None


def test_a_configured_price_overrides_the_repos_table(monkeypatch, bot_env, store):
    monkeypatch.setenv("TRAINBOT_INSTANCE_PRICES", "ml.g5.xlarge=2")
    bot_env.command(GOOD_SUBMIT)
    assert any("≤ $2.00" in t for t in bot_env.ephemerals())


def test_a_job_over_the_threshold_is_held_and_the_admins_get_an_approval_card(guarded, store):
    guarded.command(P5_SUBMIT)

    job = _only_job(store)
    assert job.status is JobStatus.NEW and job.is_held
    assert any("Waiting for an admin's approval" in t for t in guarded.ephemerals())
    [card] = guarded.slack.messages(ADMIN)
    blob = json.dumps(card["blocks"], ensure_ascii=False)
    assert "Approval needed" in blob and job.job_id in blob and "ml.p5.48xlarge needs approval" in blob
    actions = [b for b in card["blocks"] if b["type"] == "actions"][0]["elements"]
    assert [(a["action_id"], a["value"]) for a in actions] == [("job_approve", job.job_id), ("job_reject", job.job_id)]
    # The job's own card says it waits.
    assert "Waiting for an admin" in json.dumps(guarded.slack.messages(CHANNEL)[0]["blocks"])


def test_a_non_admin_pressing_approve_changes_nothing_and_is_told_why(guarded, store):
    guarded.command(P5_SUBMIT)
    held = _only_job(store)

    _press(guarded, "job_approve", held.job_id, user=OTHER)
    _press(guarded, "job_approve", held.job_id, user=USER)  # the owner is no admin either

    after = store.get(held.job_id)
    assert after.is_held and after.version == held.version
    assert any("only an admin" in t.lower() for t in _texts(guarded, OTHER))
    assert any("only an admin" in t.lower() for t in _texts(guarded, USER))


def test_a_forged_button_value_changes_nothing(guarded, store):
    guarded.command(GOOD_SUBMIT)  # not held
    plain = _only_job(store)

    _press(guarded, "job_approve", plain.job_id, user=ADMIN)
    _press(guarded, "job_approve", "tb-nope-000000", user=ADMIN)

    assert store.get(plain.job_id).version == plain.version and store.get(plain.job_id).approval is None
    texts = _texts(guarded, ADMIN)
    assert any("not waiting for approval" in t for t in texts)
    assert any("no job `tb-nope-000000`" in t for t in texts)


def test_an_admin_approves_once_the_thread_says_who_and_a_second_press_changes_nothing(guarded, store):
    guarded.command(P5_SUBMIT)
    held = _only_job(store)

    _press(guarded, "job_approve", held.job_id, user=ADMIN)
    approved = store.get(held.job_id)
    assert not approved.is_held and approved.approval.state is ApprovalState.APPROVED
    assert approved.approval.decided_by == ADMIN
    assert approved.history[-1].reason == f"approved by <@{ADMIN}>"  # the audit
    [root] = guarded.slack.messages(CHANNEL)
    assert any(f"Approved by <@{ADMIN}>" in r["text"] for r in root["replies"])

    _press(guarded, "job_approve", held.job_id, user=ADMIN)
    assert store.get(held.job_id).version == approved.version
    assert any("already approved" in t for t in _texts(guarded, ADMIN))


def test_reject_asks_the_admin_why_and_the_owners_thread_reads_it(guarded, store):
    guarded.command(P5_SUBMIT)
    held = _only_job(store)

    _press(guarded, "job_reject", held.job_id, user=OTHER)  # not an admin: no modal
    assert guarded.slack.calls_to("views.open") == []
    _press(guarded, "job_reject", held.job_id, user=ADMIN)
    [opened] = guarded.slack.calls_to("views.open")
    view = opened.params["view"]
    state = {"reason": {"value": {"type": "plain_text_input", "value": "use ml.p4d until the quota review"}}}
    body = view_submission_body(view["callback_id"], state, user_id=ADMIN, team_id=TEAM, private_metadata=view["private_metadata"])
    guarded.send(body)

    job = store.get(held.job_id)
    assert job.status is JobStatus.STOPPED and job.approval.state is ApprovalState.REJECTED
    assert job.history[-1].reason == f"rejected by <@{ADMIN}>: use ml.p4d until the quota review"
    [root] = guarded.slack.messages(CHANNEL)
    assert any("use ml.p4d until the quota review" in r["text"] and f"<@{ADMIN}>" in r["text"] for r in root["replies"])

    # Approving a rejected (stopped) job changes nothing.
    _press(guarded, "job_approve", held.job_id, user=ADMIN)
    assert store.get(held.job_id).version == job.version
    assert any("already rejected" in t for t in _texts(guarded, ADMIN))


def test_budget_shows_the_teams_week_against_its_budget(monkeypatch, bot_env, store):
    monkeypatch.setenv("TRAINBOT_TEAM_BUDGETS", "nlp=40")
    monkeypatch.setenv("TRAINBOT_USER_TEAMS", f"{USER}=nlp")
    store.add_usage(f"nlp#{iso_week(utcnow())}", "tb-x-a1", 10 * 3600)

    bot_env.command("budget")
    assert "Team `nlp`" in bot_env.ephemerals()[-1] and "10.0 instance-hours used of 40.0 (25%)" in bot_env.ephemerals()[-1]
    bot_env.command("budget team=vision")
    assert "Team `vision`" in bot_env.ephemerals()[-1] and "no budget set" in bot_env.ephemerals()[-1]


def test_a_submission_past_the_teams_weekly_budget_is_refused_with_the_numbers(monkeypatch, bot_env, store):
    monkeypatch.setenv("TRAINBOT_TEAM_BUDGETS", "nlp=10")
    monkeypatch.setenv("TRAINBOT_USER_TEAMS", f"{USER}=nlp")
    store.add_usage(f"nlp#{iso_week(utcnow())}", "tb-x-a1", int(9.5 * 3600))

    bot_env.command(GOOD_SUBMIT)  # asks for 1 instance-hour; 0.5 left

    assert store.jobs_of_owner(Owner(team_id=TEAM, user_id=USER)).jobs == []
    refusal = bot_env.ephemerals()[-1]
    assert "over the weekly budget" in refusal and "9.50 of 10.0 instance-hours" in refusal and "0.50 left" in refusal


def test_in_approve_mode_a_submission_past_the_budget_is_held_for_an_admin(monkeypatch, bot_env, store):
    monkeypatch.setenv("TRAINBOT_TEAM_BUDGETS", "*=0.5")
    monkeypatch.setenv("TRAINBOT_BUDGET_MODE", "approve")

    bot_env.command(GOOD_SUBMIT)

    job = _only_job(store)
    assert job.is_held and "over the weekly budget" in job.approval.reasons[0]
    assert len(bot_env.slack.messages(ADMIN)) == 1
    assert store.get_record(RecordKind.USAGE, f"{USER}#{iso_week(utcnow())}") is None  # estimates are not usage


def test_stats_show_spend_by_user_team_and_type_and_the_weeks_budget(monkeypatch, bot_env, dynamodb, jobs_table, store):
    from tests.stats_history import DAY, MIN, job_with, seed

    monkeypatch.setenv("TRAINBOT_USER_TEAMS", f"{USER}=nlp,{OTHER}=vision")
    monkeypatch.setenv("TRAINBOT_TEAM_BUDGETS", "nlp=40")
    now = utcnow()
    base = now - 2 * DAY
    run = dict(claimed=base + MIN, launched=base + 2 * MIN, started=base + 3 * MIN, ended=base + 63 * MIN)
    seed(dynamodb, jobs_table, [
        job_with("a", base, JobStatus.COMPLETED, [{**run, "billable": 3600}], count=2, user=USER, team=TEAM),
        job_with("b", base, JobStatus.COMPLETED, [{**run, "billable": 1800}], instance="ml.p4d.24xlarge", user=OTHER, team=TEAM),
    ])
    store.add_usage(f"nlp#{iso_week(now)}", "tb-a-a1", 10 * 3600)

    bot_env.command("stats all days=7")

    answers = [m for m in bot_env.slack.messages(CHANNEL) if m.get("blocks")]  # posted in the channel
    summary = json.dumps(answers[-1]["blocks"], ensure_ascii=False)
    # 2 x 1 h of ml.g5.xlarge at $1.408, 0.5 h of ml.p4d.24xlarge at $37.688 (the repo's table)
    assert "*Spend* (billed): 2.50 instance-hours ≈ $21.66" in summary
    assert f"<@{USER}> 2.00 h ($2.82) · <@{OTHER}> 0.50 h ($18.84)" in summary
    assert "`nlp` 2.00 h ($2.82) · `vision` 0.50 h ($18.84)" in summary
    assert "`ml.g5.xlarge` 2.00 h ($2.82) · `ml.p4d.24xlarge` 0.50 h ($18.84)" in summary
    assert "Team `nlp`" in summary and "10.0 instance-hours used of 40.0" in summary
    assert len(bot_env.slack.files) == 1


def test_a_held_sweep_gets_one_card_and_approving_it_releases_every_job(monkeypatch, bot_env, store):
    monkeypatch.setenv("TRAINBOT_APPROVAL_SWEEP_SIZE", "2")
    bot_env.command(GOOD_SUBMIT.replace("submit", "sweep").replace("hp.lr=3e-5", "hp.lr=1e-5,3e-5,1e-4"))

    jobs = store.jobs_of_owner(Owner(team_id=TEAM, user_id=USER), limit=50).jobs
    assert len(jobs) == 3 and all(job.is_held for job in jobs)
    answer = next(t for t in bot_env.ephemerals() if "Registered sweep" in t)
    assert "≤ 3.00 instance-hours over 3 jobs" in answer and "wait for an admin" in answer
    [card] = bot_env.slack.messages(ADMIN)
    assert "a sweep of 3 jobs is more than 2" in json.dumps(card["blocks"]) and "every job of sweep" in json.dumps(card["blocks"])
    value = [b for b in card["blocks"] if b["type"] == "actions"][0]["elements"][0]["value"]

    _press(bot_env, "job_approve", value, user=ADMIN)

    after = store.get_many([job.job_id for job in jobs])
    assert all(job.approval.state is ApprovalState.APPROVED and not job.is_held for job in after)


SUBMIT_40H = GOOD_SUBMIT.replace("max_runtime=1h", "max_runtime=40h")


def test_five_40h_jobs_under_a_50h_week_only_the_first_is_accepted_and_budget_says_used_reserved_left(monkeypatch, bot_env, store):
    monkeypatch.setenv("TRAINBOT_TEAM_BUDGETS", "nlp=50")
    monkeypatch.setenv("TRAINBOT_USER_TEAMS", f"{USER}=nlp")

    for i in range(5):
        bot_env.command(SUBMIT_40H.replace("name=bert-lr3", f"name=bert-{i}"))

    [job] = store.jobs_of_owner(Owner(team_id=TEAM, user_id=USER), limit=50).jobs
    assert job.name == "bert-0" and job.reservation
    refusals = [t for t in bot_env.ephemerals() if "over the weekly budget" in t]
    assert len(refusals) == 4
    assert "40.0 of 50.0 instance-hours committed" in refusals[0] and "0.00 used, 40.0 reserved" in refusals[0]
    assert "10.0 left" in refusals[0]
    record = store.get_record(RecordKind.USAGE, f"nlp#{iso_week(utcnow())}")
    assert record["Committed"] == 40 * 3600 <= 50 * 3600

    bot_env.command("budget")
    answer = bot_env.ephemerals()[-1]
    assert "0.00 instance-hours used of 50.0" in answer and "40.0 reserved" in answer and "10.0 left" in answer


def test_in_approve_mode_the_second_40h_job_is_held_for_an_admin_and_reserves_once_approved(monkeypatch, bot_env, store):
    monkeypatch.setenv("TRAINBOT_TEAM_BUDGETS", "nlp=50")
    monkeypatch.setenv("TRAINBOT_USER_TEAMS", f"{USER}=nlp")
    monkeypatch.setenv("TRAINBOT_BUDGET_MODE", "approve")

    bot_env.command(SUBMIT_40H.replace("name=bert-lr3", "name=bert-0"))
    bot_env.command(SUBMIT_40H.replace("name=bert-lr3", "name=bert-1"))

    jobs = {j.name: j for j in store.jobs_of_owner(Owner(team_id=TEAM, user_id=USER), limit=50).jobs}
    assert not jobs["bert-0"].is_held and jobs["bert-0"].reservation
    second = jobs["bert-1"]
    assert second.is_held and second.reservation is None and "over the weekly budget" in second.approval.reasons[0]
    assert any("Waiting for an admin's approval" in t for t in bot_env.ephemerals())
    [card] = bot_env.slack.messages(ADMIN)
    assert second.job_id in json.dumps(card["blocks"])
    assert store.get_record(RecordKind.USAGE, f"nlp#{iso_week(utcnow())}")["Committed"] == 40 * 3600

    _press(bot_env, "job_approve", second.job_id, user=ADMIN)
    assert store.get(second.job_id).reservation
    # The admin decided past the budget: it is committed, and /train budget says so.
    assert store.get_record(RecordKind.USAGE, f"nlp#{iso_week(utcnow())}")["Committed"] == 80 * 3600


def test_retrying_a_rejected_job_is_refused_with_who_rejected_it(guarded, store):
    guarded.command(P5_SUBMIT)
    held = _only_job(store)
    _press(guarded, "job_reject", held.job_id, user=ADMIN)
    [opened] = guarded.slack.calls_to("views.open")
    view = opened.params["view"]
    state = {"reason": {"value": {"type": "plain_text_input", "value": "not this week"}}}
    guarded.send(view_submission_body(view["callback_id"], state, user_id=ADMIN, team_id=TEAM, private_metadata=view["private_metadata"]))

    guarded.command(f"retry {held.job_id}")

    assert store.get(held.job_id).status is JobStatus.STOPPED
    assert any(f"rejected by <@{ADMIN}>: _not this week_" in t and "cannot undo" in t for t in guarded.ephemerals())


def test_retrying_a_job_stopped_while_held_holds_it_again_and_asks_the_admins_again(guarded, store):
    guarded.command(P5_SUBMIT)
    held = _only_job(store)
    guarded.command(f"stop {held.job_id}")
    assert len(guarded.slack.messages(ADMIN)) == 1

    guarded.command(f"retry {held.job_id}")

    job = store.get(held.job_id)
    assert job.status is JobStatus.RETRYING and job.is_held
    assert len(guarded.slack.messages(ADMIN)) == 2  # a new approval card


def test_the_retry_button_on_a_job_stopped_while_held_asks_the_admins_again(guarded, store):
    guarded.command(P5_SUBMIT)
    held = _only_job(store)
    guarded.command(f"stop {held.job_id}")

    _press(guarded, "job_retry", held.job_id, user=USER, channel=CHANNEL)

    job = store.get(held.job_id)
    assert job.status is JobStatus.RETRYING and job.is_held
    first, again = guarded.slack.messages(ADMIN)
    assert held.job_id in again["text"] and "Approval needed" in again["text"]


def test_the_queue_lists_what_waits_for_an_admins_approval(guarded, store):
    guarded.command(P5_SUBMIT)
    held = _only_job(store)

    guarded.command("queue")

    answer = guarded.ephemerals()[-1]
    assert "Waiting for an admin's approval*: 1 job" in answer and held.job_id in answer
    assert "ml.p5.48xlarge needs approval" in answer

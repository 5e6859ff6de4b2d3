"""Issue 26, Security and Slack-correctness: one identity at the gate, Slack's retries and
replays change nothing twice, lazy failures reach Lambda, our own lazy invocations are
authenticated our way, nothing in an ack waits past Slack's window, and answers are safe to
render and short enough to read. Every request goes through the template's bot handler."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import timedelta
from types import SimpleNamespace

import pytest

from backend.domain.model import Owner
from backend.domain.times import utcnow
from infra.local.standins.lambda_invoke import lambda_context
from infra.local.standins.slack_signing import (
    block_actions_body,
    lambda_url_event,
    signed_headers,
    slash_command_body,
    view_submission_body,
)
from tests.bot_fixtures import ADMIN, CHANNEL, FUNCTION, GOOD_SUBMIT, SECRET, TEAM, USER, answer_text, template_handler

OTHER_TEAM = "T0OTHER"
MODAL_VALUES = {
    "name": "bert-lr3",
    "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest",
    "instance": "ml.g5.xlarge",
    "input": "s3://data-bucket/train",
    "output": "s3://out-bucket/runs",
    "role": "arn:aws:iam::123456789012:role/SageMakerRole",
    "max_runtime": "1h",
}


def _jobs(dynamodb, table: str) -> list[dict]:
    items = dynamodb.scan(TableName=table)["Items"]
    return [item for item in items if "JobStatus" in item]


def _modal_body(*, team: str, installed_team: str = TEAM, view_id: str = "V0MODAL") -> str:
    state = {block: {"value": {"type": "plain_text_input", "value": text}} for block, text in MODAL_VALUES.items()}
    body = view_submission_body(
        "train_submit", state, user_id=USER, team_id=team, private_metadata=json.dumps({"channel": CHANNEL}), view_id=view_id
    )
    if installed_team != team:
        from urllib.parse import parse_qs, urlencode

        payload = json.loads(parse_qs(body)["payload"][0])
        payload["view"]["app_installed_team_id"] = installed_team
        payload["view"]["team_id"] = installed_team
        body = urlencode({"payload": json.dumps(payload)})
    return body


# --- 1. one identity -------------------------------------------------------------------------


def test_a_modal_submitted_from_another_team_is_refused_even_when_installed_in_ours(bot_env, dynamodb, jobs_table):
    response = bot_env.send(_modal_body(team=OTHER_TEAM, installed_team=TEAM))
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["response_action"] == "errors"
    assert _jobs(dynamodb, jobs_table) == []


def test_a_modal_from_our_team_registers_a_job_its_owner_can_stop(bot_env, dynamodb, jobs_table):
    assert bot_env.send(_modal_body(team=TEAM))["statusCode"] == 200
    (job,) = _jobs(dynamodb, jobs_table)
    bot_env.command(f"stop {job['JobId']['S']}")
    assert any("stop" in text.lower() for text in bot_env.ephemerals())
    assert _jobs(dynamodb, jobs_table)[0]["JobStatus"]["S"] in ("Stopping", "Stopped")


# --- 2. Slack's retries and replays ------------------------------------------------------------


def _command_event(bot_env, text: str, **extra_headers: str) -> dict:
    url = bot_env.slack.response_url(CHANNEL, USER)
    body = slash_command_body(text=text, user_id=USER, team_id=TEAM, channel_id=CHANNEL, response_url=url)
    return lambda_url_event(body, {**signed_headers(SECRET, body), **extra_headers})


def _deliver(bot_env, event: dict) -> dict:
    response = template_handler()(json.loads(json.dumps(event)), lambda_context(FUNCTION))
    bot_env.settle()
    return response


def _uploads(bot_env) -> int:
    return len(bot_env.slack.calls_to("files.completeUploadExternal"))


def test_a_replayed_stats_request_within_the_window_uploads_one_chart_and_answers_once(bot_env):
    event = _command_event(bot_env, "stats")
    assert _deliver(bot_env, event)["statusCode"] == 200
    answers = len(bot_env.ephemerals())
    assert _uploads(bot_env) == 1
    assert _deliver(bot_env, event)["statusCode"] == 200
    assert _uploads(bot_env) == 1
    assert len(bot_env.ephemerals()) == answers


def test_a_delivery_slack_retries_is_acknowledged_without_running_anything_again(bot_env):
    event = _command_event(bot_env, "stats")
    _deliver(bot_env, event)
    invocations = len(bot_env.lam.invocations)
    retried = json.loads(json.dumps(event))
    retried["headers"].update(signed_headers(SECRET, retried["body"]), **{"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
    response = _deliver(bot_env, retried)
    assert response["statusCode"] == 200 and not response["body"]
    assert len(bot_env.lam.invocations) == invocations
    assert _uploads(bot_env) == 1


# --- 3. a failed lazy run fails the invocation -------------------------------------------------


def test_a_lazy_listener_that_fails_fails_its_invocation_and_the_user_is_told(bot_env):
    bot_env.slack.fail_next("chat.postMessage", error="internal_error", count=5)  # the summary's post
    bot_env.command("stats", settle=False)
    bot_env.lam.wait_idle()
    errors = bot_env.lam.errors()
    assert len(errors) == 1 and "LazyListenerFailed" in errors[0]
    assert any("went wrong" in text.lower() or "sorry" in text.lower() for text in bot_env.ephemerals())


def test_after_a_failed_lazy_run_lambdas_retry_of_it_does_the_work(bot_env):
    captured: list[dict] = []
    bot_env.lam.add(FUNCTION, lambda event, context: captured.append(event))
    bot_env.slack.fail_next("chat.postMessage", error="internal_error")  # the summary's post
    bot_env.command("stats")
    (lazy,) = captured
    with pytest.raises(Exception) as raised:
        template_handler()(json.loads(json.dumps(lazy)), lambda_context(FUNCTION))
    assert type(raised.value).__name__ == "LazyListenerFailed"
    tried = _uploads(bot_env)
    template_handler()(json.loads(json.dumps(lazy)), lambda_context(FUNCTION))  # Lambda's retry
    bot_env.settle()  # the chart function it asked, asynchronously
    assert _uploads(bot_env) == tried + 1


# --- 4. our own lazy invocations, authenticated our way ---------------------------------------


def _captured_lazy_submit(bot_env) -> dict:
    captured: list[dict] = []
    bot_env.lam.add(FUNCTION, lambda event, context: captured.append(event))
    assert bot_env.command(GOOD_SUBMIT)["statusCode"] == 200
    (lazy,) = captured
    return lazy


def test_a_lazy_invocation_lambda_delivers_ten_minutes_late_still_registers_the_job(bot_env, dynamodb, jobs_table, monkeypatch):
    lazy = _captured_lazy_submit(bot_env)
    later = time.time() + 10 * 60
    monkeypatch.setattr("bot.handler.time", SimpleNamespace(time=lambda: later))
    response = template_handler()(lazy, lambda_context(FUNCTION))
    assert response["statusCode"] == 200
    assert len(_jobs(dynamodb, jobs_table)) == 1


def test_a_forged_or_altered_lazy_invocation_is_refused_and_runs_nothing(bot_env, dynamodb, jobs_table):
    lazy = _captured_lazy_submit(bot_env)
    altered = json.loads(json.dumps(lazy))
    altered["body"] = altered["body"].replace("bert-lr3", "evil-job")
    altered["headers"].update(signed_headers(SECRET, altered["body"]))  # even re-signed as Slack
    unsigned = json.loads(json.dumps(lazy))
    unsigned["headers"] = {k: v for k, v in unsigned["headers"].items() if k != "x-trainbot-lazy-signature"}
    for event in (altered, unsigned):
        assert template_handler()(event, lambda_context(FUNCTION))["statusCode"] == 401
    assert _jobs(dynamodb, jobs_table) == []


def test_a_slack_signed_request_claiming_to_be_lazy_cannot_skip_the_ack(bot_env, dynamodb, jobs_table):
    event = _command_event(bot_env, GOOD_SUBMIT, **{"x-slack-bolt-lazy-only": "1", "x-slack-bolt-lazy-function-name": "work"})
    assert template_handler()(event, lambda_context(FUNCTION))["statusCode"] == 401
    bot_env.settle()
    assert _jobs(dynamodb, jobs_table) == []


# --- 5. nothing inside the ack waits past Slack's window ---------------------------------------


def test_a_rate_limited_views_open_in_the_ack_is_not_retried(bot_env):
    bot_env.slack.fail_next("views.open", status=429, retry_after=3, count=2)
    response = bot_env.command("submit")
    assert response["statusCode"] == 200
    assert len(bot_env.slack.calls_to("views.open")) == 1
    assert answer_text(response)  # the user reads why no modal opened


# --- 7. owners: validated at every entry, escaped at every render -------------------------------


def test_queue_shows_a_slack_owner_as_a_mention_and_a_hostile_owner_inert(bot_env, store):
    from backend.bootstrap import build
    from backend.config import Settings
    from backend.services.jobs import Actor
    from bot import grammar

    bot_env.command(GOOD_SUBMIT)
    fields = grammar.parse(GOOD_SUBMIT).fields  # type: ignore[union-attr]
    container = build(Settings.from_env())
    # An owner no entry point accepts any more, as older CLI versions recorded it.
    container.submissions.submit(fields, Actor(team_id="cli", user_id="<!here>|<https://evil.example|x>"), token="old-cli")

    bot_env.command("queue")
    answer = bot_env.slack.ephemerals(user=USER)[-1]
    shown = answer["text"] + json.dumps(answer["blocks"])
    assert f"<@{USER}>" in shown
    assert "<!here>" not in shown and "<https://evil" not in shown and "&lt;!here&gt;" in shown


def test_the_cli_refuses_a_user_that_is_not_a_member_id_or_a_login_name(bot_env, dynamodb, jobs_table, tmp_path):
    import io

    from backend.entrypoints.cli import main

    spec = tmp_path / "job.yaml"
    spec.write_text("\n".join(f"{k}: {v}" for k, v in MODAL_VALUES.items()) + "\n")
    for user in ("<!here>", "x|<https://evil.example|y>", "a b", "&amp;"):
        err = io.StringIO()
        assert main(["--user", user, "submit", "--spec", str(spec)], out=io.StringIO(), err=err) == 2, user
        assert "member id" in err.getvalue()
    assert _jobs(dynamodb, jobs_table) == []
    assert main(["--user", "alice.smith", "submit", "--spec", str(spec)], out=io.StringIO(), err=io.StringIO()) == 0
    assert len(_jobs(dynamodb, jobs_table)) == 1


# --- 9. code blocks that stay closed, cuts that never break an escape, answers that fit ---------


def _live_code_fences(text: str) -> int:
    return text.count("```")


def test_preset_show_keeps_a_value_with_backticks_inside_its_code_block(bot_env):
    bot_env.command("preset save fence image=123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest hp.note=a````b")
    bot_env.command("preset show fence")
    shown = bot_env.ephemerals()[-1]
    assert _live_code_fences(shown) == 2 and shown.endswith("```")


def _rewrite_job(dynamodb, jobs_table, change) -> str:
    from backend.adapters.dynamo.codec import from_item, to_item

    (item,) = _jobs(dynamodb, jobs_table)
    job = change(from_item(item))
    dynamodb.put_item(TableName=jobs_table, Item=to_item(job))
    return job.job_id


def _long_story(job):
    from datetime import timedelta

    from backend.domain.history import HistoryEntry
    from backend.domain.model import Attempt, AttemptOutcome
    from backend.domain.status import JobStatus

    at = job.created_at
    hostile = "AlgorithmError: " + "&<>" * 30
    attempts = [
        Attempt(number=n, name=f"{job.job_id}-a{n}", claimed_at=at, outcome=AttemptOutcome.FAILED, reason=hostile) for n in range(1, 11)
    ]
    moves = [JobStatus.LAUNCHED, JobStatus.RETRYING] * 10
    history = [job.history[0]] + [
        HistoryEntry(seq=i + 2, at=at + timedelta(minutes=i), to_status=to, reason=f"{hostile} #{i + 2}") for i, to in enumerate(moves)
    ]
    return job.model_copy(update={"attempts": attempts, "history": history, "version": job.version + 1})


def test_a_long_status_card_keeps_the_newest_history_whole_and_fits_slacks_guidance(bot_env, dynamodb, jobs_table):
    bot_env.command(GOOD_SUBMIT)
    job_id = _rewrite_job(dynamodb, jobs_table, _long_story)
    bot_env.command(f"status {job_id}")
    answer = bot_env.slack.ephemerals(user=USER)[-1]
    texts = [answer.get("text") or ""] + [
        (b.get("text") or {}).get("text") or " ".join(e["text"] for e in b.get("elements") or [] if isinstance(e.get("text"), str))
        for b in answer["blocks"]
        if b["type"] != "actions"
    ]
    assert sum(len(t) for t in texts) <= 4000
    history = next(t for t in texts if "Retrying" in t and "#21" in t)
    for text in texts:
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), text  # no escape cut in two
        assert text.count("<") == text.count(">")  # no link cut in two
    assert history


# --- 10. no promise of a thread the bot cannot post -------------------------------------------


def test_a_submit_from_a_dm_the_bot_cannot_post_to_promises_no_thread(bot_env, dynamodb, jobs_table):
    dm = "D0PRIVATE"
    url = bot_env.slack.response_url(dm, USER)
    # What Slack answers a bot posting into a DM it is not part of.
    bot_env.slack.fail_next("chat.postMessage", error="channel_not_found", count=10)
    bot_env.send(slash_command_body(text=GOOD_SUBMIT, user_id=USER, team_id=TEAM, channel_id=dm, response_url=url))
    (job,) = _jobs(dynamodb, jobs_table)
    answer = bot_env.ephemerals()[-1]
    assert "Registered" in answer and "follows every change" not in answer and "thread gets" not in answer
    assert f"/train status {job['JobId']['S']}" in answer


def test_a_submit_in_a_channel_still_points_at_its_thread(bot_env):
    bot_env.command(GOOD_SUBMIT)
    assert "its card follows every change and its thread gets what you'd act on" in bot_env.ephemerals()[-1]


# --- 11. what the outbox owes Slack: one path, told truthfully, told once ---------------------

P5_SUBMIT = GOOD_SUBMIT.replace("ml.g5.xlarge", "ml.p5.48xlarge").replace("max_runtime=1h", "max_runtime=10h")


def _monitor(later: timedelta = timedelta(0)):
    """The deployment's monitor (same table, same Slack), its clock ``later``: its sweep drains
    the outbox."""
    from backend.bootstrap import build
    from backend.config import Settings

    return build(Settings.from_env(dict(os.environ)), clock=lambda: utcnow() + later).monitor


def _press_approve(bot_env, job_id: str) -> None:
    url = bot_env.slack.response_url(ADMIN, ADMIN, message_ts="1700000000.000100")
    bot_env.send(block_actions_body("job_approve", job_id, user_id=ADMIN, team_id=TEAM, channel_id=ADMIN, response_url=url))


def _approved_replies(bot_env) -> list[str]:
    [root] = bot_env.slack.messages(CHANNEL)
    return [r["text"] for r in root["replies"] if f"Approved by <@{ADMIN}>" in r["text"]]


def test_an_approval_whose_thread_reply_is_rate_limited_is_answered_as_approved_and_the_reply_follows_once(
    monkeypatch, bot_env, store
):
    monkeypatch.setenv("TRAINBOT_APPROVAL_INSTANCE_TYPES", "ml.p5.48xlarge")
    bot_env.command(P5_SUBMIT)
    [held] = store.jobs_of_owner(Owner(team_id=TEAM, user_id=USER), limit=5).jobs
    # Longer than any client waits for a Retry-After: the reply's post fails at once.
    bot_env.slack.fail_next("chat.postMessage", status=429, retry_after=30)

    _press_approve(bot_env, held.job_id)

    answers = bot_env.ephemerals(ADMIN)
    assert any(f"Approved `{held.job_id}`" in t and "owner will be told" in t for t in answers), answers
    assert not any("nothing was changed" in t.lower() for t in answers), answers
    assert _approved_replies(bot_env) == []  # Slack refused it: it waits in the outbox
    _monitor(later=timedelta(hours=2)).sweep()
    _monitor(later=timedelta(hours=4)).sweep()  # nothing left: no second reply
    assert len(_approved_replies(bot_env)) == 1
    assert store.get(held.job_id).delivered.get("slack") == store.get(held.job_id).last_seq


def test_a_sweep_jobs_reply_is_posted_once_when_the_sweep_card_update_is_rate_limited(bot_env, store):
    bot_env.command(GOOD_SUBMIT.replace("submit", "sweep").replace("hp.lr=3e-5", "hp.lr=1e-5,3e-5") + " notify=all")
    first, last = sorted(store.jobs_of_owner(Owner(team_id=TEAM, user_id=USER), limit=5).jobs, key=lambda j: j.client_token or "")
    bot_env.command(f"stop {first.job_id}")
    updates = len(bot_env.slack.calls_to("chat.update"))
    # The job that ends the sweep: its reply goes out, then the sweep card's update is refused.
    bot_env.slack.fail_next("chat.update", status=429, retry_after=30)
    bot_env.command(f"stop {last.job_id}")
    assert len(bot_env.slack.calls_to("chat.update")) > updates  # the refused update was tried

    _monitor(later=timedelta(hours=2)).sweep()
    _monitor(later=timedelta(hours=4)).sweep()

    [root] = bot_env.slack.messages(CHANNEL)
    for job in (first, last):
        told = [r["text"] for r in root["replies"] if f"*{job.name}* was stopped" in r["text"]]
        assert len(told) == 1, [r["text"] for r in root["replies"]]
    assert "2 of 2 ended" in root["text"]  # the refused card caught up on its own target


def test_a_held_modal_submission_whose_ephemeral_answer_is_refused_reaches_every_admin_and_dms_its_owner(
    monkeypatch, bot_env, store
):
    admins = (ADMIN, "U0ADMIN2")
    monkeypatch.setenv("TRAINBOT_ADMIN_USERS", ",".join(admins))
    monkeypatch.setenv("TRAINBOT_APPROVAL_INSTANCE_TYPES", "ml.g5.xlarge")
    # What Slack answers chat.postEphemeral in a channel the bot was never invited to
    # (chat:write.public covers chat.postMessage only).
    bot_env.slack.fail_next("chat.postEphemeral", error="not_in_channel", count=5)

    bot_env.send(_modal_body(team=TEAM), settle=False)
    bot_env.lam.wait_idle()
    _monitor(later=timedelta(hours=2)).sweep()  # whatever the outbox still owes

    [held] = store.jobs_of_owner(Owner(team_id=TEAM, user_id=USER), limit=5).jobs
    assert held.is_held
    for admin in admins:
        assert sum(held.job_id in json.dumps(m.get("blocks")) for m in bot_env.slack.messages(admin)) == 1, admin
    told = [m["text"] for m in bot_env.slack.messages(USER)]
    assert any(held.job_id in t and "Waiting for an admin's approval" in t for t in told), told
    assert bot_env.lam.errors() == []

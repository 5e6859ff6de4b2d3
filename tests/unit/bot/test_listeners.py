"""Listeners are plain functions: called here with a fake ack/respond and a fake service."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from backend.domain.cost import estimate
from backend.domain.spec import job_spec
from backend.errors import IllegalTransition, JobNotFound, NotAuthorized, StoreUnavailable
from bot.listeners import actions, commands, views
from bot.listeners.errors import handle_error, message_for
from tests.bot_fixtures import GOOD_SUBMIT
from tests.conftest import make_job


class Recorder:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, *args, **kwargs) -> None:
        if args:
            kwargs["text"] = args[0]
        self.calls.append(kwargs)


class FakeSubmissions:
    """The submit use case without a store: validates, and records what it would register."""

    sweep_confirm_size = 100

    def __init__(self) -> None:
        self.submitted: list = []

    def spec(self, fields):
        return job_spec(fields)

    def submit(self, fields, actor, *, token, channel_id=None):
        spec = job_spec(fields)
        self.submitted.append((spec.name, actor, channel_id, token))
        return SimpleNamespace(job=make_job(spec.name), created=True)


class FakeBot:
    settings = SimpleNamespace(aws_region="us-east-1")

    def __init__(self, *, stop_error: Exception | None = None) -> None:
        self.submissions = FakeSubmissions()
        self.stop_error = stop_error

    @property
    def submitted(self) -> list:
        return self.submissions.submitted

    def estimate(self, jobs):
        return estimate(job.job_args for job in jobs)

    def get(self, job_id):
        """The job as stored after its registration (the listener re-reads it for its thread)."""
        return make_job(self.submitted[-1][0])

    def stop(self, job_id, actor):
        if self.stop_error:
            raise self.stop_error
        return make_job()


def _command(text: str) -> dict:
    return {"text": text, "team_id": "T1", "user_id": "U1", "channel_id": "C1", "trigger_id": "1.2.3", "response_url": "x"}


def test_the_ack_of_a_valid_submit_says_registering_and_registers_nothing():
    ack, bot = Recorder(), FakeBot()
    commands.acknowledge(ack=ack, command=_command(GOOD_SUBMIT), context={"bot": bot}, client=None)
    assert "Registering" in ack.calls[0]["text"] and ack.calls[0]["response_type"] == "ephemeral"
    assert bot.submitted == []


def test_the_ack_of_a_bad_submit_names_the_problem_and_shows_the_usage():
    ack = Recorder()
    commands.acknowledge(ack=ack, command=_command("submit name=x"), context={"bot": FakeBot()}, client=None)
    assert "image is missing" in ack.calls[0]["text"] and "/train submit name=bert-lr3" in ack.calls[0]["text"]


def test_the_lazy_submit_registers_with_the_trigger_id_as_its_idempotency_key():
    respond, bot = Recorder(), FakeBot()
    commands.work(command=_command(GOOD_SUBMIT), context={"bot": bot}, respond=respond, client=None, body={"response_url": "x"})
    assert bot.submitted[0][0] == "bert-lr3" and bot.submitted[0][2:] == ("C1", "1.2.3")
    assert "Registered" in respond.calls[0]["text"]


def test_the_lazy_listener_stays_silent_about_input_the_ack_refused():
    respond, bot = Recorder(), FakeBot()
    commands.work(command=_command("submit name=x"), context={"bot": bot}, respond=respond, client=None, body={"response_url": "x"})
    assert respond.calls == [] and bot.submitted == []


def test_a_stop_button_refused_by_the_service_answers_politely():
    respond = Recorder()
    bot = FakeBot(stop_error=NotAuthorized("only <@U0ALICE> (the owner) or an admin may change bert-abc123"))
    body = {"user": {"id": "U2", "team_id": "T1"}, "team": {"id": "T1"}, "response_url": "x"}
    actions.stop_job(action={"value": "bert-abc123"}, body=body, context={"bot": bot}, respond=respond)
    assert respond.calls[0]["text"] == ":lock: Only <@U0ALICE> (the owner) or an admin may change bert-abc123."
    assert respond.calls[0]["response_type"] == "ephemeral"


def test_every_typed_error_has_its_own_polite_message():
    assert "no job" in message_for(JobNotFound("j"))
    assert "only Failed or Stopped" in message_for(IllegalTransition("j", "New", "Retrying"))
    assert "only queued or running" in message_for(IllegalTransition("j", "Completed", "Stopped"))
    assert "try again" in message_for(StoreUnavailable("x"))


def test_a_retry_inside_the_launch_window_says_when_to_try_again():
    from datetime import timedelta

    from backend.services.jobs import LaunchInFlight

    assert message_for(LaunchInFlight("bert-abc123", timedelta(seconds=200))) == (
        ":hourglass_flowing_sand: `bert-abc123` was stopped while SageMaker was being asked to start it, and that "
        "request may still land. Try `/train retry` again in 4 minutes: I'll stop whatever it started first."
    )
    assert message_for(LaunchInFlight("bert-abc123", timedelta(seconds=44.2))).endswith("again in 45 seconds: I'll stop whatever it started first.")


def test_the_app_error_handler_answers_200_with_an_ephemeral_message():
    response = handle_error(StoreUnavailable("down"), {"type": "slash_command"}, SimpleNamespace(info=print, exception=print))
    assert response.status == 200 and "ephemeral" in response.body


def test_modal_inputs_become_grammar_fields_and_errors_land_under_their_field():
    view = {"state": {"values": {"name": {"value": {"value": "x"}}, "hp": {"value": {"value": "lr=1\n\nepochs=2"}}}}}
    assert views.fields_of(view) == {"name": "x", "hp.lr": "1", "hp.epochs": "2"}
    ack = Recorder()
    views.acknowledge(ack=ack, view=view, context={"bot": FakeBot()})
    assert ack.calls[0]["response_action"] == "errors" and "image" in ack.calls[0]["errors"]


def test_who_asks_is_read_alike_from_a_slash_command_a_button_and_a_modal():
    from backend.services.jobs import Actor
    from bot.listeners.payloads import actor_of

    expected = Actor(team_id="T1", user_id="U1")
    assert actor_of(_command("help")) == expected
    assert actor_of({"type": "block_actions", "user": {"id": "U1", "team_id": "T1"}, "team": {"id": "T1"}}) == expected
    assert actor_of({"type": "view_submission", "user": {"id": "U1", "team_id": "T1"}}) == expected  # no team object


def test_a_refusal_takes_the_form_each_kind_of_request_shows():
    from bot.listeners.errors import refusal

    modal = json.loads(refusal({"type": "view_submission"}, "no").body)
    assert modal == {"response_action": "errors", "errors": {"name": "no"}}
    command = json.loads(refusal({"type": "slash_command"}, "no").body)
    assert command == {"response_type": "ephemeral", "text": "no"}
    assert refusal({"type": "block_actions"}, "no").body == ""  # said through the response_url instead


def test_a_request_whose_ack_failed_starts_no_lazy_work():
    """bolt starts a listener's lazy functions even after its ack raised; the error handler has
    told the user it did not work, so the lazy runner starts nothing (found by the simulator:
    a too-big submit refused by the ack was refused again by the lazy listener)."""
    from urllib.parse import urlencode

    from slack_bolt import App, BoltRequest
    from slack_bolt.authorization import AuthorizeResult

    from backend.errors import InvalidRequest
    from bot.lazy import SignedLazyRunner

    invoked: list[str] = []
    lambda_client = SimpleNamespace(invoke=lambda **kwargs: invoked.append(kwargs["Payload"]))
    app = App(name="t", signing_secret="s", token_verification_enabled=False, request_verification_enabled=False,
              url_verification_enabled=False, process_before_response=True,
              authorize=lambda enterprise_id, team_id, user_id: AuthorizeResult(
                  enterprise_id=enterprise_id, team_id=team_id, user_id=user_id, bot_token="xoxb-t"))
    app.listener_runner.lazy_listener_runner = SignedLazyRunner(app.logger, b"k", records=None, lambda_client=lambda_client, region="us-east-1")
    app.error(handle_error)

    def refuse(ack, command):
        if command["text"] == "refuse":
            raise InvalidRequest(["no instance type could ever run it"])
        ack()

    app.command("/train")(ack=refuse, lazy=[lambda: None])

    def send(text: str):
        body = urlencode({"command": "/train", "text": text, "team_id": "T", "user_id": "U", "trigger_id": "1.2.3"})
        request = BoltRequest(body=body, headers={"content-type": "application/x-www-form-urlencoded"})
        request.context["lambda_request"] = {"headers": {}, "body": body}
        request.context["aws_lambda_invoked_function_arn"] = "arn:aws:lambda:us-east-1:123456789012:function:trainbot-bot"
        return app.dispatch(request)

    refused = send("refuse")
    assert refused.status == 200 and "no instance type" in refused.body
    assert invoked == []
    assert send("accept").status == 200 and len(invoked) == 1


def _lazy_request(body: str = "command=%2Ftrain&text=submit&trigger_id=1.2.3"):
    from slack_bolt import BoltRequest

    request = BoltRequest(body=body, headers={"content-type": "application/x-www-form-urlencoded"})
    request.lazy_only, request.lazy_function_name = True, "work"
    return request


def test_a_lazy_claim_is_a_lease_that_lambdas_retry_takes_over_from_a_killed_run():
    """A run Lambda kills (its timeout) cannot release its claim: the claim is a lease past the
    function's timeout, taken over by Lambda's retry a minute later; a claim done, or held by a
    live run, is skipped (found by the simulator: a killed submit was never answered)."""
    from datetime import timedelta

    from bot.lazy import CLAIM_LEASE, SignedLazyRunner
    from infra.template import load_template
    from tests.conftest import T0
    from tests.fakes.memory_store import MemoryJobStore

    timeout = load_template()["Resources"]["BotFunction"]["Properties"]["Timeout"]
    # Lambda's first retry: a minute after the killed run failed, its timeout after it started.
    assert timedelta(seconds=timeout) < CLAIM_LEASE < timedelta(seconds=timeout) + timedelta(minutes=1)

    now = [T0]
    runs: list[str] = []
    runner = SignedLazyRunner(None, b"k", MemoryJobStore(), region="us-east-1", clock=lambda: now[0])

    class Killed(BaseException):  # the Lambda run killed: no `except Exception` sees it
        pass

    def killed() -> None:
        runs.append("killed")
        raise Killed()

    with pytest.raises(Killed):
        runner.run(killed, _lazy_request())
    runner.run(lambda: runs.append("duplicate"), _lazy_request())  # a duplicate while the lease runs
    now[0] += CLAIM_LEASE + timedelta(seconds=1)
    runner.run(lambda: runs.append("retry"), _lazy_request())  # Lambda's retry takes over
    now[0] += timedelta(hours=1)
    runner.run(lambda: runs.append("late"), _lazy_request())  # done: never again
    assert runs == ["killed", "retry"]
    runner.run(lambda: runs.append("another"), _lazy_request("command=%2Ftrain&text=submit&trigger_id=4.5.6"))
    assert runs[-1] == "another"

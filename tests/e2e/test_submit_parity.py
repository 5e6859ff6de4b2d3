"""One submit and one small sweep through every way in: the signed slash command, the submit
modal's view_submission, the `trainbot` CLI, and the local page (its server side signs and
POSTs what the page's user typed to the bot's Function URL, as `trainbot local` serves it).

Every way goes through one use case (backend.services.submit), so the same spec must give the
same JobId shape (the deployment's prefix included: IAM and the event rule only cover
``training-job/<prefix>*``) and identical JobArgs. The modal has no sweep form, so sweeps come
through the other three."""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator

import pytest

from backend.domain.model import Job, Owner
from backend.entrypoints.cli import main
from infra.local.bot_endpoint import BotEndpoint
from infra.local.page import PageUser, SlackPage
from infra.local.standins.slack_signing import view_submission_body
from tests.bot_fixtures import (
    CHANNEL,
    FUNCTION,
    SECRET,
    TEAM,
    USER,
    template_handler,
)

PREFIX = "tb-"
PRESET = (
    "preset save nlp image=123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest "
    "role=arn:aws:iam::123456789012:role/SageMakerRole output=s3://out-bucket/runs instance=ml.g5.xlarge"
)
# One spec, as each entry point takes it.
WORDS = "preset=nlp name=bert-lr3 input=s3://data-bucket/train max_runtime=1h priority=7 retries=3 hp.lr=3e-5 hp.epochs=3"
SWEEP_WORDS = WORDS.replace("hp.lr=3e-5", "hp.lr=1e-5,3e-5")
YAML_SPEC = """\
preset: nlp
name: bert-lr3
input: s3://data-bucket/train
max_runtime: 1h
priority: 7
retries: 3
hp: {lr: "3e-5", epochs: 3}
"""
MODAL_VALUES = {
    "name": "bert-lr3",
    "preset": "nlp",
    "input": "s3://data-bucket/train",
    "max_runtime": "1h",
    "priority": "7",
    "retries": "3",
    "hp": "lr=3e-5\nepochs=3",
}
JOB_ID = re.compile(rf"^{PREFIX}bert-lr3-[0-9a-z]{{6}}$")
# Derived from the sweep id and each job's place (backend.domain.sweeps): <prefix><slug>-<tag>-<number>.
SWEEP_JOB_ID = re.compile(rf"^{PREFIX}bert-lr3-[0-9a-z]{{10}}-[12]$")


@pytest.fixture
def wired(bot_env, store, monkeypatch) -> Iterator[tuple]:
    """The bot (a fresh cold start with the deployment's prefix) and the local page's server
    side in front of it, over the bot's Function URL on 127.0.0.1."""
    import bot.handler

    monkeypatch.setenv("TRAINBOT_JOB_ID_PREFIX", PREFIX)
    bot.handler.reset()
    endpoint = BotEndpoint(lambda event, context: template_handler()(event, context), FUNCTION)
    endpoint.start()
    page = SlackPage(
        bot_env.slack, endpoint.url, SECRET, channel_id=CHANNEL, channel_name="ml-training", users=[PageUser(USER, "alice")]
    )
    try:
        bot_env.command(PRESET)
        assert store.get_record("preset", "nlp") is not None
        yield bot_env, page
    finally:
        endpoint.stop()


def _all_jobs(store) -> dict[str, Job]:
    owners = (Owner(team_id=TEAM, user_id=USER), Owner(team_id="cli", user_id=USER))
    return {j.job_id: j for owner in owners for j in store.jobs_of_owner(owner, limit=50).jobs}


def _new_jobs(store, action: Callable[[], object]) -> list[Job]:
    before = set(_all_jobs(store))
    action()
    return sorted((j for i, j in _all_jobs(store).items() if i not in before), key=lambda j: j.name)


def _cli(*argv: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["--user", USER, *argv], out=out, err=err) == 0, err.getvalue()


def _page_command(bot_env, page: SlackPage, text: str) -> None:
    assert page.command(text, USER)["status"] == 200
    bot_env.settle()


def _modal(bot_env) -> None:
    bot_env.command("submit")
    view = bot_env.slack.calls_to("views.open")[-1].params["view"]
    state = {block: {"value": {"type": "plain_text_input", "value": text}} for block, text in MODAL_VALUES.items()}
    body = view_submission_body(
        "train_submit", state, user_id=USER, team_id=TEAM, private_metadata=view["private_metadata"], view_id="V0PARITY"
    )
    assert bot_env.send(body)["statusCode"] == 200


def _page_modal(bot_env, page: SlackPage) -> None:
    _page_command(bot_env, page, "/train submit")
    view_id = bot_env.slack.views[-1]["id"]
    values = {block: {"value": text} for block, text in MODAL_VALUES.items()}
    assert page.submit_view(view_id, values, USER)["status"] == 200
    bot_env.settle()


def _shape(job: Job) -> tuple:
    """What must not depend on the way in: the request and Trainbot's knobs."""
    return (job.name, job.job_args, job.priority, job.retry_budget, job.preset)


def test_one_submit_through_every_entry_point_gives_the_same_id_shape_and_job_args(wired, store, tmp_path):
    bot_env, page = wired
    spec_file = tmp_path / "job.yaml"
    spec_file.write_text(YAML_SPEC)

    ways = {
        "slash command": lambda: bot_env.command("submit " + WORDS),
        "modal": lambda: _modal(bot_env),
        "cli": lambda: _cli("submit", "--spec", str(spec_file)),
        "local page": lambda: _page_command(bot_env, page, "/train submit " + WORDS),
        "local page modal": lambda: _page_modal(bot_env, page),
    }
    made = {way: _new_jobs(store, action) for way, action in ways.items()}

    for way, jobs in made.items():
        assert len(jobs) == 1, (way, jobs)
        assert JOB_ID.match(jobs[0].job_id), (way, jobs[0].job_id)
    reference = _shape(made["slash command"][0])
    assert reference[1].HyperParameters == {"lr": "3e-5", "epochs": "3"}
    assert reference[1].instance_type == "ml.g5.xlarge" and reference[2:] == (7, 3, "nlp")  # the preset merged
    assert {way: _shape(jobs[0]) for way, jobs in made.items()} == dict.fromkeys(ways, reference)


def test_one_small_sweep_through_every_entry_point_gives_the_same_ids_and_job_args(wired, store):
    bot_env, page = wired

    ways = {
        "slash command": lambda: bot_env.command("sweep " + SWEEP_WORDS),
        "cli": lambda: _cli("sweep", *SWEEP_WORDS.split()),
        "local page": lambda: _page_command(bot_env, page, "/train sweep " + SWEEP_WORDS),
    }
    made = {way: _new_jobs(store, action) for way, action in ways.items()}

    for way, jobs in made.items():
        assert [j.name for j in jobs] == ["bert-lr3-1", "bert-lr3-2"], (way, jobs)
        assert all(SWEEP_JOB_ID.match(j.job_id) for j in jobs), (way, [j.job_id for j in jobs])
        assert len({j.sweep_id for j in jobs}) == 1 and jobs[0].sweep_id
    reference = [_shape(j) for j in made["slash command"]]
    assert [s[1].HyperParameters["lr"] for s in reference] == ["1e-5", "3e-5"]
    assert {way: [_shape(j) for j in jobs] for way, jobs in made.items()} == dict.fromkeys(ways, reference)

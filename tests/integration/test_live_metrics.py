"""A running job's card shows its metrics' latest values (issue 24), through the template's
handlers on one simulated clock (tests/slack_world.py): the SageMaker stand-in reports them in
Describe's FinalMetricDataList as the job emits them, the monitor's sweep reads them from the
Describe it makes anyway, stores them on the attempt when they changed and at most once per
TRAINBOT_LIVE_METRICS_SECONDS, and the card shows them; no thread reply is posted for them."""

from __future__ import annotations

import json

import pytest

from tests.bot_fixtures import CHANNEL, GOOD_SUBMIT
from tests.slack_world import SlackWorld

EVERY = 600
SUBMIT = GOOD_SUBMIT + " metric.loss='loss=([0-9.]+)' metric.acc='acc=([0-9.]+)' hp.trainbot_standin_metric_loss=0.2 hp.trainbot_standin_metric_acc=0.9"


@pytest.fixture
def world(moto_aws):
    with SlackWorld(duration=2400.0, startup=20.0, env={"TRAINBOT_LIVE_METRICS_SECONDS": str(EVERY)}) as built:
        yield built


def _card(world: SlackWorld, job) -> str:
    return json.dumps(world.slack.message(CHANNEL, job.slack.thread_ts)["blocks"], ensure_ascii=False)


def _replies(world: SlackWorld, job) -> list[str]:
    return [m["text"] for m in world.slack.thread(CHANNEL, job.slack.thread_ts)[1:]]


def test_a_running_jobs_card_shows_its_latest_metrics_stored_only_when_changed_and_at_a_bounded_rate(world):
    world.command(SUBMIT)
    [job_id] = world.job_ids()
    stack = world.stack
    stack.tick(30)
    stack.tick(30)
    job = stack.store.get(job_id)
    assert job.status.value == "InProgress" and job.current_attempt.metrics is None  # no line yet
    posts = len(world.slack.calls_to("chat.postMessage"))

    stack.clock.advance(150)  # progress lines (one a minute) with the metrics' values
    stack.sweep()
    job = stack.store.get(job_id)
    first = job.current_attempt.metrics
    assert set(first) == {"loss", "acc"} and 0.2 < first["loss"] < 0.3
    assert job.current_attempt.metrics_at == stack.clock.now()
    assert f"Latest metrics: acc {first['acc']:.4g} · loss {first['loss']:.4g} (at {stack.clock.now():%H:%M} UTC)" in _card(world, job)

    # Sooner than EVERY: the values moved, yet nothing is written and the card stays.
    stack.clock.advance(EVERY / 2)
    stack.sweep()
    same = stack.store.get(job_id)
    assert same.version == job.version and same.current_attempt.metrics == first

    stack.clock.advance(EVERY / 2)
    stack.sweep()
    later = stack.store.get(job_id)
    assert later.version == job.version + 1 and 0.2 < later.current_attempt.metrics["loss"] < first["loss"]
    assert f"loss {later.current_attempt.metrics['loss']:.4g} (at" in _card(world, later)

    # Not a word in the thread for any of it: only the card was updated.
    assert len(world.slack.calls_to("chat.postMessage")) == posts
    assert _replies(world, later) == []
    assert later.history[-1].to_status.value == "InProgress"

    # At the end the card shows what it ended as, and the reply has the final values.
    done = stack.run_until_settled([job_id])[0]
    assert done.status.value == "Completed" and done.final_metrics["loss"] == pytest.approx(0.2)
    assert "Latest metrics" not in _card(world, done)
    assert "Final metrics: acc " in _replies(world, done)[-1] and "loss 0.2" in _replies(world, done)[-1]


def test_with_live_metrics_off_nothing_is_stored_while_the_job_runs(moto_aws):
    with SlackWorld(duration=2400.0, startup=20.0, env={"TRAINBOT_LIVE_METRICS_SECONDS": "0"}) as world:
        world.command(SUBMIT)
        [job_id] = world.job_ids()
        world.stack.tick(30)
        world.stack.tick(30)
        version = world.stack.store.get(job_id).version
        world.stack.clock.advance(600)
        world.stack.sweep()
        job = world.stack.store.get(job_id)
        assert job.version == version and job.current_attempt.metrics is None


def test_live_metrics_written_every_sweep_do_not_put_off_the_changes_the_outbox_coalesces(world):
    """Launched and InProgress are told with the next drain once the job has been quiet for
    COALESCE since that change; a metrics write every sweep is no change and must not restart
    that wait (it did: nothing was told on SNS until the job ended)."""
    world.command(SUBMIT)
    [job_id] = world.job_ids()
    stack = world.stack
    stack.tick(30)
    stack.tick(30)
    assert stack.store.get(job_id).status.value == "InProgress"
    start = stack.store.get(job_id).version

    for _ in range(3):  # each sweep stores new values, then drains the outbox
        stack.clock.advance(EVERY)
        stack.sweep()
    job = stack.store.get(job_id)
    assert job.status.value == "InProgress" and job.version >= start + 2  # metrics were written
    told = [n["body"] for n in stack.notifications() if job_id in json.dumps(n["body"])]
    assert any("InProgress" in json.dumps(body) for body in told), told

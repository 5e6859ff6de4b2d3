"""Confirming a parked sweep claims it first: a second confirmation (a double click, Slack's
retry) while the first registers posts no second root and writes nothing; a press after a
confirmation that crashed finishes the sweep. The scenarios run on any job store; the
DynamoDB run is tests/integration/test_sweep_confirmation.py."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backend.ports import BATCH_LEASE
from backend.services.presets import PresetBook
from backend.services.submit import SubmitService, SweepAlreadyConfirmed, SweepRoot
from tests.store_spies import clock_moves, job_writes
from tests.unit.services.conftest import OWNER, World

FIELDS = {
    "name": "grid",
    "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest",
    "instance": "ml.g5.xlarge",
    "output": "s3://out-bucket/runs",
    "role": "arn:aws:iam::123456789012:role/SageMakerRole",
    "hp.lr": "1e-5,2e-5,3e-5",
    "hp.batch": "16,32",
}


def _submissions(world: World) -> SubmitService:
    return SubmitService(
        world.jobs,
        world.store,
        PresetBook(world.store, is_admin=lambda user: False),
        clock=world.clock,
        sweep_confirm_size=4,
        sweep_max_size=100,
    )


def _parked(submissions: SubmitService) -> str:
    outcome = submissions.sweep(FIELDS, OWNER, token="trigger-1", channel_id="C1")
    assert outcome.parked and outcome.size == 6
    return outcome.sweep_id


def second_confirmation_inside_the_first_changes_nothing(world: World) -> None:
    submissions = _submissions(world)
    sweep_id = _parked(submissions)
    writes, moves = job_writes(world.store), clock_moves(world.store)
    roots: list[SweepRoot] = []

    def post_root(root: SweepRoot) -> str:
        roots.append(root)
        if len(roots) == 1:  # the user presses Confirm again while the first posts its root
            with pytest.raises(SweepAlreadyConfirmed):
                submissions.confirm_sweep(sweep_id, OWNER, post_root=post_root)
        return f"1700000000.{len(roots):06d}"

    outcome = submissions.confirm_sweep(sweep_id, OWNER, post_root=post_root)

    assert len(roots) == 1
    assert len(outcome.job_ids) == 6
    assert set(writes) == set(outcome.job_ids) and set(writes.values()) == {1}
    assert len(moves) == 1
    with pytest.raises(SweepAlreadyConfirmed):  # a press after it is done: still polite, still nothing
        submissions.confirm_sweep(sweep_id, OWNER, post_root=post_root)
    assert len(roots) == 1 and set(writes.values()) == {1} and len(moves) == 1


def a_press_after_a_crashed_confirmation_finishes_the_sweep(world: World) -> None:
    submissions = _submissions(world)
    sweep_id = _parked(submissions)

    def crash(root: SweepRoot) -> str:
        raise RuntimeError("the lazy listener's function timed out")

    with pytest.raises(RuntimeError):
        submissions.confirm_sweep(sweep_id, OWNER, post_root=crash)
    with pytest.raises(SweepAlreadyConfirmed):  # within the claim, the first may still run
        submissions.confirm_sweep(sweep_id, OWNER, post_root=crash)

    world.clock.advance(BATCH_LEASE + timedelta(seconds=1))
    outcome = submissions.confirm_sweep(sweep_id, OWNER, post_root=lambda root: "1700000000.000009")
    assert len(outcome.job_ids) == 6
    assert {j.slack.thread_ts for j in world.store.get_many(outcome.job_ids) if j.slack} == {"1700000000.000009"}


def test_a_second_confirmation_inside_the_first_posts_no_root_and_writes_no_job(world: World):
    second_confirmation_inside_the_first_changes_nothing(world)


def test_a_press_after_a_crashed_confirmation_finishes_the_sweep(world: World):
    a_press_after_a_crashed_confirmation_finishes_the_sweep(world)

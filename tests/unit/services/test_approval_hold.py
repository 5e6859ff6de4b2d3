"""Held jobs and the launcher, on the in-memory store (issue 14): a job waiting for approval is
never launched, whether the queue's index leaves it out (as the store does) or a stale read
hands it over anyway; approved, it launches like any other."""

from __future__ import annotations

from backend.domain.approval import Approval, ApprovalState
from backend.domain.status import JobStatus
from backend.services.budget import Approvals
from tests.unit.services.conftest import ADMIN, World


def _held(world: World):
    return world.submit("big", approval=Approval(state=ApprovalState.PENDING, reasons=["ml.p5.48xlarge needs approval"]))


def test_a_held_job_is_not_due_and_the_launcher_leaves_it(world: World):
    held = _held(world)
    plain = world.submit("small")

    assert [job.job_id for job in world.store.due_for_launch(world.clock(), 10)] == [plain.job_id]
    report = world.launcher().run_tick()
    assert report.launched == 1 and world.backend.created == [f"{plain.job_id}-a1"]
    assert world.store.get(held.job_id).status is JobStatus.NEW


def test_the_launcher_skips_a_held_job_even_when_a_stale_read_hands_it_over(world: World, monkeypatch):
    held = _held(world)
    monkeypatch.setattr(world.store, "iter_due", lambda now, limit, page=50: iter([world.store.get(held.job_id)]))

    report = world.launcher().run_tick()

    assert world.backend.created == [] and report.launched == 0
    assert world.store.get(held.job_id).version == held.version


def test_once_approved_it_launches(world: World):
    held = _held(world)
    Approvals(world.store, world.dispatcher, is_admin=lambda u: u == ADMIN, clock=world.clock, records=world.store).approve(held.job_id, ADMIN)

    world.launcher().run_tick()

    assert world.backend.created == [f"{held.job_id}-a1"]

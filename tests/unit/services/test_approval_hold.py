"""Held jobs and the launcher, on the in-memory store (issue 14): a job waiting for approval is
never launched, whether the queue's index leaves it out (as the store does) or a stale read
hands it over anyway; approved, it launches like any other."""

from __future__ import annotations

from backend.domain import notice
from backend.domain.approval import ApprovalState
from backend.domain.model import Approval
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


def test_approving_notes_it_in_the_history_without_a_same_status_move(world: World):
    held = _held(world)
    approvals = Approvals(world.store, world.dispatcher, is_admin=lambda u: u == ADMIN, clock=world.clock, records=world.store)
    approvals.approve(held.job_id, ADMIN)
    approvals.approve(held.job_id, ADMIN)  # a second press changes nothing

    history = world.store.get(held.job_id).history
    assert [e for e in history if e.from_status is e.to_status and not e.is_note] == []
    assert [(e.reason, e.to_status) for e in history if e.is_note] == [(f"approved by <@{ADMIN}>", JobStatus.NEW)]


class _Posts:
    """SlackCalls' post, recorded (the thread replies a notifier sends)."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def post(self, channel: str, **kwargs) -> dict:
        self.texts.append(kwargs.get("text", ""))
        return {"ts": "1.0"}


def test_the_approval_note_is_urgent_and_its_delivery_is_the_one_approved_by_reply(world: World):
    from backend.adapters.slack.notifier import SlackNotifier
    from backend.domain.model import SlackThread
    from tests.unit.services.conftest import OWNER

    held = world.submit("big", slack=SlackThread(channel_id="C1", thread_ts="1.0"),
                        approval=Approval(state=ApprovalState.PENDING, reasons=["ml.p5.48xlarge needs approval"]))
    world.jobs.stop(held.job_id, OWNER)
    world.jobs.retry(held.job_id, OWNER)  # Retrying, and held again
    assert world.store.get(held.job_id).is_held
    Approvals(world.store, world.dispatcher, is_admin=lambda u: u == ADMIN, clock=world.clock, records=world.store).approve(held.job_id, ADMIN)

    approved = world.store.get(held.job_id)
    posts = _Posts()
    SlackNotifier(posts, world.store, "us-east-1").notify(approved, approved.last_seq)  # type: ignore[arg-type]
    assert notice.tells_approval(approved, approved.last_seq)  # urgent: told by the approval's own delivery
    assert len(posts.texts) == 1 and f"Approved by <@{ADMIN}>" in posts.texts[0]  # no listener posts it any more

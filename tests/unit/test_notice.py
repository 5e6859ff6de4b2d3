"""The notification policy (backend.domain.notice): who hears what, and when a change must be
delivered rather than coalesced with a later one."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backend.domain import notice
from backend.domain.model import NotifyMode, SlackThread, transition
from backend.domain.status import JobStatus
from tests.conftest import T0, make_job

S = JobStatus
M = NotifyMode


@pytest.mark.parametrize(
    ("mode", "replied"),
    [
        (None, {S.RETRYING, S.FAILED, S.STOPPED, S.COMPLETED}),
        (M.ALL, {S.LAUNCHED, S.IN_PROGRESS, S.STOPPING, S.RETRYING, S.FAILED, S.STOPPED, S.COMPLETED}),
        (M.FAILURES, {S.RETRYING, S.FAILED, S.STOPPED}),
        (M.END, {S.FAILED, S.STOPPED, S.COMPLETED}),
    ],
)
def test_replies_are_for_what_people_act_on_and_the_owner_is_mentioned_only_at_the_end(mode, replied):
    assert {s for s in S if notice.wants_reply(mode, s)} == replied
    assert {s for s in S if notice.mentions_owner(mode, s)} == replied & {S.FAILED, S.STOPPED, S.COMPLETED}


def _launched(**kwargs):
    job = make_job(slack=SlackThread(channel_id="C1", thread_ts="1.1"), **kwargs)
    return transition(job, S.LAUNCHED, at=T0 + timedelta(minutes=1))


def test_quiet_changes_wait_and_an_ending_is_delivered_at_once():
    targets = ["sns", "slack"]
    queued = make_job(slack=SlackThread(channel_id="C1", thread_ts="1.1"))
    assert not notice.is_urgent(queued, targets)
    assert notice.delivery_due(queued, targets) == T0 + notice.QUEUED_HOLD

    launched = _launched()
    assert not notice.is_urgent(launched, targets)
    assert notice.delivery_due(launched, targets) == T0 + timedelta(minutes=1) + notice.COALESCE

    ended = transition(transition(launched, S.IN_PROGRESS, at=T0 + timedelta(minutes=2)), S.COMPLETED, at=T0 + timedelta(minutes=3))
    assert notice.is_urgent(ended, targets)
    assert notice.delivery_due(ended, targets) == T0 + timedelta(minutes=3) + notice.DELIVERY_LEASE + notice.SEND_BOUND
    done = ended.model_copy(update={"delivered": {"sns": ended.last_seq, "slack": ended.last_seq}})
    assert notice.delivery_due(done, targets) is None


def test_a_write_that_changes_nothing_told_does_not_put_off_a_quiet_change():
    """A running job's live metrics are written every few minutes: the coalesced changes
    before them are due COALESCE after the last change, not after the last write."""
    running = transition(_launched(), S.IN_PROGRESS, at=T0 + timedelta(minutes=2))
    later = running.model_copy(update={"updated_at": T0 + timedelta(minutes=6)})  # a metrics write
    assert notice.delivery_due(later, ["sns", "slack"]) == T0 + timedelta(minutes=2) + notice.COALESCE


def test_notify_all_makes_every_change_urgent_and_a_job_without_its_root_card_too():
    assert notice.is_urgent(_launched(notify=M.ALL), ["slack"])
    rootless = make_job(slack=SlackThread(channel_id="C1"))
    assert notice.is_urgent(rootless, ["slack"])
    assert not notice.is_urgent(make_job(), ["sns"])  # from the CLI: nothing to hurry


def test_a_held_jobs_change_asks_the_admins_at_once_but_a_held_sweep_asks_only_with_its_first_job():
    from backend.domain.model import Approval

    targets = ["sns", "slack"]
    pending = Approval(reasons=["ml.p5.48xlarge needs approval"])
    held = make_job(approval=pending)
    assert notice.asks_approval(held, 1) and notice.is_urgent(held, targets)
    assert notice.delivery_due(held, targets) < T0 + notice.QUEUED_HOLD

    card, member = (make_job(f"s-{i}", approval=pending, sweep_id="s", client_token=f"s/{i}") for i in (0, 1))
    assert notice.is_urgent(card, targets) and notice.asks_approval(card, 1)
    assert not notice.is_urgent(member, targets) and not notice.asks_approval(member, 1)

    stopped = transition(held, S.STOPPED, at=T0 + timedelta(minutes=1))
    retried = transition(stopped, S.RETRYING, at=T0 + timedelta(minutes=2))
    assert retried.is_held and notice.asks_approval(retried, 3) and not notice.asks_approval(retried, 1)
    assert not notice.asks_approval(stopped, 1)  # no longer held: nothing to ask

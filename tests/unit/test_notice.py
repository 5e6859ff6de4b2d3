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


def test_notify_all_makes_every_change_urgent_and_a_job_without_its_root_card_too():
    assert notice.is_urgent(_launched(notify=M.ALL), ["slack"])
    rootless = make_job(slack=SlackThread(channel_id="C1"))
    assert notice.is_urgent(rootless, ["slack"])
    assert not notice.is_urgent(make_job(), ["sns"])  # from the CLI: nothing to hurry

"""Slack pacing (backend.adapters.slack.notifier.SlackPacer) on a simulated clock: the waits it
asks for move that clock, so it keeps to Slack's per-channel post rate and app-wide update
budget in simulated time, as it does in real time."""

from __future__ import annotations

import pytest

from backend.adapters.slack.notifier import POST_BURST, READS_PER_MINUTE, UPDATES_PER_MINUTE, SlackPacer
from backend.errors import NotifierUnavailable
from infra.local.standins.sagemaker import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_000.0)


def test_posts_beyond_the_burst_wait_one_second_each_on_the_clock_they_are_paced_by(clock):
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    pacer = SlackPacer(clock=clock, sleep=sleep)
    posted_at = []
    for _ in range(POST_BURST + 4):
        pacer.before_post("C1")
        posted_at.append(clock())

    assert posted_at[:POST_BURST] == [1_000.0] * POST_BURST
    assert waits == pytest.approx([1.0] * 4)
    assert [b - a for a, b in zip(posted_at[POST_BURST - 1 :], posted_at[POST_BURST:], strict=False)] == pytest.approx([1.0] * 4)
    pacer.before_post("C2")  # another channel has its own bucket
    assert len(waits) == 4


def test_a_wait_longer_than_the_pacing_limit_is_refused_instead_of_slept(clock):
    slept: list[float] = []
    pacer = SlackPacer(clock=clock, sleep=slept.append)  # a sleep that does not move the clock
    for _ in range(POST_BURST):
        pacer.before_post("C1")
    pacer.before_post("C1")  # one second's wait: slept
    pacer.before_post("C1")  # two seconds: still within MAX_PACING_WAIT
    with pytest.raises(NotifierUnavailable, match="posting pace"):
        pacer.before_post("C1")
    assert slept == pytest.approx([1.0, 2.0])


def test_card_updates_keep_to_the_app_wide_minute_budget(clock):
    pacer = SlackPacer(clock=clock, sleep=clock.advance)
    for n in range(UPDATES_PER_MINUTE):
        pacer.before_update(f"C1/{n}")
    with pytest.raises(NotifierUnavailable, match="per-minute budget"):
        pacer.before_update("C1/next")
    assert not pacer.card_due(f"C1/{UPDATES_PER_MINUTE - 1}")
    clock.advance(60)
    pacer.before_update("C1/next")
    assert pacer.card_due("C1/0")


def test_thread_reads_keep_to_their_own_minute_budget_apart_from_the_updates(clock):
    pacer = SlackPacer(clock=clock, sleep=clock.advance)
    for _ in range(READS_PER_MINUTE):
        pacer.before_read()
    with pytest.raises(NotifierUnavailable, match="conversations.replies is at its per-minute budget"):
        pacer.before_read()
    pacer.before_update("C1/1")  # the updates' budget is untouched by the reads
    clock.advance(59.9)
    with pytest.raises(NotifierUnavailable, match="conversations.replies"):
        pacer.before_read()
    clock.advance(0.1)  # a minute after the first reads: the window has moved past them
    pacer.before_read()


def test_a_post_that_may_not_wait_is_refused_without_taking_a_turn(clock):
    pacer = SlackPacer(clock=clock, sleep=clock.advance)
    for _ in range(POST_BURST):
        pacer.before_post("C1", max_wait=0.0)
    with pytest.raises(NotifierUnavailable):
        pacer.before_post("C1", max_wait=0.0)
    assert clock() == 1_000.0  # nothing slept
    clock.advance(1.0)
    pacer.before_post("C1", max_wait=0.0)  # the refused call took no token: one is there a second later

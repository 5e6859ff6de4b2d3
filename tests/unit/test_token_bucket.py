"""The SageMaker call pacer (backend.services.pacing.TokenBucket) on a hand-moved clock."""

from __future__ import annotations

import pytest

from backend.services.pacing import TokenBucket


class CoarseClock:
    """A monotonic clock at a large value, where a tiny sleep does not move it (float precision),
    as the simulator's clock was after hours of simulated time. Counts the sleeps."""

    def __init__(self, start: float) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if len(self.sleeps) > 100:
            raise RuntimeError("acquire keeps sleeping: it never takes its token")
        self.now += seconds


def test_a_wait_too_small_for_the_clock_to_show_still_gets_its_token():
    # Found by the simulator: a launcher tick hung here, sleeping a fraction of a token's wait
    # that the clock (at 1e12 s, precision ~1e-4 s) could not show, and looking again for ever.
    clock = CoarseClock(1e12)
    bucket = TokenBucket(rate=1e6, burst=1, monotonic=clock.monotonic, sleep=clock.sleep)
    for _ in range(5):
        bucket.acquire()
    assert len(clock.sleeps) <= 5


def test_callers_beyond_the_burst_wait_their_turn_at_the_rate():
    clock = CoarseClock(0.0)
    bucket = TokenBucket(rate=2, burst=2, monotonic=clock.monotonic, sleep=clock.sleep)
    for _ in range(6):
        bucket.acquire()
    # Two from the burst, then one every half second.
    assert clock.sleeps == pytest.approx([0.5, 0.5, 0.5, 0.5])
    assert bucket.waited_seconds == pytest.approx(2.0)


def test_a_penalty_halves_the_rate_and_drops_the_saved_burst():
    clock = CoarseClock(0.0)
    bucket = TokenBucket(rate=4, burst=4, monotonic=clock.monotonic, sleep=clock.sleep)
    bucket.penalize()
    assert bucket.rate == 2
    bucket.acquire()
    assert clock.sleeps == pytest.approx([0.5])

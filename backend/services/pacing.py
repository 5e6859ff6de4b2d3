"""Pacing of our own calls to SageMaker, so throttling is never self-inflicted.

A token bucket: ``rate`` calls per second on average, bursts up to ``burst``. When SageMaker
throttles anyway, :meth:`TokenBucket.penalize` halves the rate (down to a floor); each
success wins a little of it back (additive increase, multiplicative decrease, as TCP does).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        min_rate: float | None = None,
    ) -> None:
        self._max_rate = float(rate)
        self._rate = float(rate)
        self._min_rate = min_rate if min_rate is not None else max(self._max_rate / 16, 0.05)
        self._burst = float(burst)
        self._tokens = float(burst)
        self._monotonic = monotonic
        self._sleep = sleep
        self._last = monotonic()
        self._lock = threading.Lock()
        self.waited_seconds = 0.0
        self.penalties = 0

    @property
    def rate(self) -> float:
        return self._rate

    def _refill(self) -> None:
        now = self._monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now

    def acquire(self) -> None:
        """Take one token, sleeping until it is there. The token is taken before the sleep (the
        bucket may go below zero, so the next caller waits behind this one): a wait too small
        for the clock to show once slept (a fraction of a token at a high monotonic value) can
        never make the caller look again, and again, for ever."""
        with self._lock:
            self._refill()
            self._tokens -= 1
            if self._tokens >= 0:
                return
            wait = -self._tokens / self._rate
        self.waited_seconds += wait
        self._sleep(wait)

    def penalize(self) -> None:
        """We were throttled: halve the rate and drop any burst we had saved up."""
        with self._lock:
            self.penalties += 1
            self._rate = max(self._min_rate, self._rate / 2)
            self._tokens = min(self._tokens, 0.0)

    def reward(self) -> None:
        """A call went through: recover a twentieth of the configured rate."""
        with self._lock:
            self._rate = min(self._max_rate, self._rate + self._max_rate / 20)

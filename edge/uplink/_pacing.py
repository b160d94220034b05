"""Pacing primitives of the uplink: a token bucket and a reconnect backoff with jitter."""

from __future__ import annotations

import random
import time
from collections.abc import Callable


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up. A request larger than the burst
    is granted once the bucket is full and leaves it in debt, so big batches still pass at
    the average rate. rate <= 0 means unlimited."""

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = float(rate)
        self.burst = max(float(burst), 1.0)
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def delay(self, n: float) -> float:
        """Seconds to wait before `n` tokens can be taken (0: now)."""
        if self.rate <= 0:
            return 0.0
        self._refill()
        need = min(float(n), self.burst)
        if self._tokens >= need:
            return 0.0
        return (need - self._tokens) / self.rate

    def take(self, n: float) -> bool:
        """Take `n` tokens if `delay(n)` is 0; return whether they were taken."""
        if self.rate <= 0:
            return True
        if self.delay(n) > 0:
            return False
        self._tokens -= n
        return True


class Backoff:
    """Exponential backoff with full jitter: each delay is uniform in [base/2, base] and the
    base doubles up to `maximum`; `reset()` after a connection that held."""

    def __init__(
        self,
        minimum: float,
        maximum: float,
        rng: random.Random | None = None,
    ) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self._base = minimum
        self._rng = rng or random.Random()

    def next(self) -> float:
        delay = self._rng.uniform(self._base / 2, self._base)
        self._base = min(self._base * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._base = self.minimum


__all__ = ["Backoff", "TokenBucket"]

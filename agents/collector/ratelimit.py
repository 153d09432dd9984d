"""Per-write-key rate limits: token buckets on an injected monotonic clock (seconds).

A request of ``n`` events is let through when the key's bucket holds ``min(n, burst)`` tokens,
and then takes all ``n``: a batch larger than the burst is not refused forever, it leaves the
bucket in debt, so the sustained rate still holds.

>>> now = [0.0]
>>> limiter = RateLimiter(rate_per_s=10.0, burst=20, clock=lambda: now[0])
>>> limiter.acquire("k", 20), limiter.acquire("k", 1)
(0.0, 0.1)
>>> now[0] = 0.1
>>> limiter.acquire("k", 1), limiter.acquire("other", 5)
(0.0, 0.0)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RateLimiter", "TokenBucket"]

_EPSILON = 1e-9


@dataclass(slots=True)
class TokenBucket:
    """``tokens`` refill at ``rate_per_s`` up to ``burst``; ``at_s`` is when they were counted."""

    rate_per_s: float
    burst: float
    tokens: float
    at_s: float

    def acquire(self, cost: int, now_s: float) -> float:
        """Take ``cost`` tokens and return 0.0, or return the seconds to wait before retrying."""
        self.tokens = min(self.burst, self.tokens + (now_s - self.at_s) * self.rate_per_s)
        self.at_s = now_s
        needed = min(float(cost), self.burst)
        if self.tokens + _EPSILON >= needed:  # refills are floats: 0.1 s x 100/s may be 9.99...
            self.tokens -= cost
            return 0.0
        return (needed - self.tokens) / self.rate_per_s


class RateLimiter:
    """One :class:`TokenBucket` per key, full when the key is first seen."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def acquire(self, key: str, cost: int) -> float:
        """0.0 when ``key`` may send ``cost`` events now, else the seconds until it may."""
        now_s = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(
                self.rate_per_s, float(self.burst), float(self.burst), now_s
            )
        return bucket.acquire(cost, now_s)

"""A partition's watermark: how far event time has progressed, robust to wild client clocks.

The watermark is the largest median seen over a sliding sample of the latest event times: it
only moves forward, and it cannot be dragged ahead by a minority of events with clocks far in
the future (fewer than half of the sample), nor held back by late ones. It drives decisions
that must never come from the wall clock, such as deleting idle profiles (stream.eviction).

>>> w = PartitionWatermark(sample=5)
>>> w.observe([1_000, 2_000, 3_000])
2000
>>> w.observe([9_999_999_999_999])  # one wild clock does not move it far
2500
>>> w.observe([4_000, 5_000, 6_000])
5000
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

__all__ = ["PartitionWatermark"]


class PartitionWatermark:
    """Event-time progress of one source partition (owned by the adapter, kept in memory).

    After a restart it starts unknown and is rebuilt from the next events: nothing that depends
    on it (deleting idle profiles) happens until then.
    """

    __slots__ = ("_recent", "value")

    def __init__(self, sample: int = 101) -> None:
        if sample < 1:
            raise ValueError("sample must be >= 1")
        self._recent: deque[int] = deque(maxlen=sample)
        self.value: int | None = None

    def observe(self, event_times_ms: Iterable[int]) -> int | None:
        """Take a batch of event times; return the watermark (``None`` while unknown)."""
        self._recent.extend(event_times_ms)
        if self._recent:
            ordered = sorted(self._recent)
            middle = len(ordered) // 2
            median = (
                ordered[middle]
                if len(ordered) % 2
                else (ordered[middle - 1] + ordered[middle]) // 2
            )
            self.value = median if self.value is None else max(self.value, median)
        return self.value

"""Event-time window math: integer epoch milliseconds and pure functions.

Sliding windows are kept as buckets. A window of length ``W`` uses buckets of
:func:`bucket_size_for` ``W`` (about 1/12 of it, on round sizes), and the window's value at time
``now`` is the merge of the buckets that start within ``(now - W, now]``: a sliding window with
bucket granularity. Buckets older than the longest window that uses them are expired by event
time (see :func:`expired_before`), never by wall clock.

>>> bucket_start(1_700_000_123_456, MINUTE_MS)
1700000100000
>>> window_label(HOUR_MS), window_label(10 * MINUTE_MS), window_label(7 * DAY_MS)
('1h', '10m', '7d')
>>> bucket_size_for(HOUR_MS) == 5 * MINUTE_MS
True
>>> in_window(bucket=1_000_000, now_ms=1_000_500, window_ms=1_000)
True
>>> in_window(bucket=999_000, now_ms=2_000_000, window_ms=1_000_000)
False
"""

from __future__ import annotations

__all__ = [
    "DAY_MS",
    "HOUR_MS",
    "MINUTE_MS",
    "SECOND_MS",
    "bucket_size_for",
    "bucket_start",
    "expired_before",
    "in_window",
    "window_label",
]

SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

# Round bucket sizes, smallest first: a window gets the largest one that still gives it about a
# dozen buckets, so every window costs at most ~13 buckets per feature whatever its length.
_BUCKET_SIZES = (
    SECOND_MS,
    5 * SECOND_MS,
    10 * SECOND_MS,
    30 * SECOND_MS,
    MINUTE_MS,
    5 * MINUTE_MS,
    10 * MINUTE_MS,
    30 * MINUTE_MS,
    HOUR_MS,
    2 * HOUR_MS,
    6 * HOUR_MS,
    12 * HOUR_MS,
    DAY_MS,
)
_BUCKETS_PER_WINDOW = 12


def bucket_start(timestamp_ms: int, size_ms: int) -> int:
    """Start of the bucket of ``size_ms`` that holds ``timestamp_ms`` (aligned to the epoch).

    >>> bucket_start(-1, 1000)
    -1000
    """
    return timestamp_ms - timestamp_ms % size_ms


def bucket_size_for(window_ms: int) -> int:
    """The bucket size used for a window: the largest round size giving >= 12 buckets.

    >>> [window_label(bucket_size_for(w)) for w in (MINUTE_MS, DAY_MS, 7 * DAY_MS)]
    ['5s', '2h', '12h']
    """
    if window_ms <= 0:
        raise ValueError(f"window must be positive, got {window_ms} ms")
    fitting = [s for s in _BUCKET_SIZES if s * _BUCKETS_PER_WINDOW <= window_ms]
    return fitting[-1] if fitting else _BUCKET_SIZES[0]


def in_window(bucket: int, now_ms: int, window_ms: int) -> bool:
    """Whether the bucket starting at ``bucket`` belongs to the window ``(now - W, now]``."""
    return now_ms - window_ms < bucket <= now_ms


def expired_before(now_ms: int, window_ms: int, size_ms: int) -> int:
    """The first bucket start still in the window at ``now``; earlier buckets can be dropped.

    >>> expired_before(10_000, 5_000, 1_000), expired_before(10_500, 5_000, 1_000)
    (6000, 6000)
    """
    return bucket_start(now_ms - window_ms, size_ms) + size_ms


def window_label(window_ms: int) -> str:
    """A short, stable label for a duration, used in feature names (``1m``, ``24h``, ``7d``).

    Days are written as hours below a week so that the common ``24h`` reads as such.

    >>> window_label(DAY_MS), window_label(90 * SECOND_MS), window_label(1500)
    ('24h', '90s', '1500ms')
    """
    for unit_ms, suffix in ((7 * DAY_MS, "w"), (HOUR_MS, "h"), (MINUTE_MS, "m"), (SECOND_MS, "s")):
        if window_ms % unit_ms == 0:
            if suffix == "w" and window_ms // unit_ms == 1:
                return "7d"
            if suffix == "w" or (suffix == "h" and window_ms % DAY_MS == 0 and window_ms > DAY_MS):
                return f"{window_ms // DAY_MS}d"
            return f"{window_ms // unit_ms}{suffix}"
    return f"{window_ms}ms"

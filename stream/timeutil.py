"""Event-time helpers: everything is integer epoch milliseconds.

>>> iso_to_ms("2019-10-01T00:00:00Z")
1569888000000
>>> iso_to_ms("2019-10-01T02:00:00.250+02:00")
1569888000250
>>> ms_to_iso(1569888000250)
'2019-10-01T00:00:00.250Z'
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["EPOCH", "datetime_to_ms", "iso_to_ms", "ms_to_iso"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def datetime_to_ms(value: datetime) -> int:
    """Epoch milliseconds of an aware datetime (naive values are taken as UTC, as Segment does)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def iso_to_ms(text: str) -> int:
    """Parse an ISO-8601 timestamp (``Z`` or an offset) to epoch milliseconds."""
    return datetime_to_ms(datetime.fromisoformat(text))


def ms_to_iso(ms: int) -> str:
    """Format epoch milliseconds as ISO-8601 UTC with millisecond precision."""
    value = EPOCH + timedelta(milliseconds=ms)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"

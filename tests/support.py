"""Shared test inputs: a valid event builder, and one hostile example per dead-letter reason the
decoder knows."""

from __future__ import annotations

import orjson

_OK = {
    "type": "track",
    "event": "Product Viewed",
    "messageId": "bad-0",
    "userId": "u-bad",
    "timestamp": "2024-01-01T00:00:00Z",
}


def viewed_event(i: int, user: str, timestamp: str = "2024-01-01T00:00:00Z") -> bytes:
    """A valid "Product Viewed" event with message id ``m{i}``, for unit tests."""
    doc = {
        "type": "track",
        "event": "Product Viewed",
        "messageId": f"m{i}",
        "userId": user,
        "timestamp": timestamp,
        "properties": {"category": "books"},
    }
    return orjson.dumps(doc)


def _with(**changes: object) -> bytes:
    doc = {**_OK, **changes}
    return orjson.dumps({k: v for k, v in doc.items() if v is not None})


#: (raw bytes, expected dead-letter reason)
INVALID_EVENTS: list[tuple[bytes, str]] = [
    (b'{"type": "track", "messageId": ', "malformed_json"),
    (b"\xff\xfe not utf-8", "invalid_encoding"),
    (b"[1, 2, 3]", "not_an_object"),
    (_with(properties={"blob": "x" * 40_000}), "too_large"),
    (_with(userId=None, messageId="bad-1"), "missing_identity"),
    (_with(type="launch", messageId="bad-2"), "unknown_type"),
    (_with(messageId=None), "missing_field"),
    (_with(properties=["not", "an", "object"], messageId="bad-3"), "invalid_field"),
    (_with(timestamp="yesterday", messageId="bad-4"), "invalid_field"),
    (
        _with(receivedAt="2023-12-31T23:50:00Z", messageId="bad-5"),  # 10 min before `timestamp`
        "future_timestamp",
    ),
    (_with(timestamp="1970-01-01T00:00:00Z", messageId="bad-6"), "implausible_timestamp"),
]

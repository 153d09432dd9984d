"""Bytes to :class:`~stream.events.Event`, or a typed :class:`~stream.deadletter.DeadLetter`.

The checks run cheapest first, and each failure has its own reason code::

    size > limit                  -> too_large
    not UTF-8                     -> invalid_encoding
    not JSON                      -> malformed_json
    JSON but not an object        -> not_an_object
    `type` absent or unknown      -> unknown_type
    neither userId nor anonymousId-> missing_identity
    a required field absent       -> missing_field
    a field of the wrong type     -> invalid_field

>>> decode_event(b'[1, 2]').reason.value
'not_an_object'
>>> decode_event(b'{"type": "track", "event": "Product Viewed", "messageId": "m1",'
...              b' "userId": "u1", "timestamp": "2019-10-01T00:00:00Z"}').timestamp_ms
1569888000000
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from pydantic import ValidationError

from stream.deadletter import DeadLetter, DeadLetterReason, SourcePosition
from stream.events import Event, EventType, SegmentEvent

__all__ = ["MAX_EVENT_BYTES", "decode_event"]

#: Segment's own per-event limit.
MAX_EVENT_BYTES = 32 * 1024

_TYPES = frozenset(t.value for t in EventType)


def decode_event(
    raw: bytes,
    source: SourcePosition | None = None,
    key: bytes | None = None,
    max_bytes: int = MAX_EVENT_BYTES,
) -> Event | DeadLetter:
    """Decode and validate one event; never raises on bad input."""

    def reject(reason: DeadLetterReason, message: str) -> DeadLetter:
        return DeadLetter.of(reason, message, raw, source, key)

    if len(raw) > max_bytes:
        return reject(DeadLetterReason.TOO_LARGE, f"{len(raw)} bytes > limit {max_bytes}")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        reason = _json_error_reason(raw)
        return reject(reason, str(exc))
    if not isinstance(doc, dict):
        return reject(DeadLetterReason.NOT_AN_OBJECT, f"JSON {type(doc).__name__}, not an object")
    return _validate(doc, reject, source)


def _json_error_reason(raw: bytes) -> DeadLetterReason:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return DeadLetterReason.INVALID_ENCODING
    return DeadLetterReason.MALFORMED_JSON


def _absent(value: object) -> bool:
    return value is None or value == ""


def _validate(
    doc: dict[str, Any],
    reject: Callable[[DeadLetterReason, str], DeadLetter],
    source: SourcePosition | None,
) -> Event | DeadLetter:
    kind = doc.get("type")
    if not isinstance(kind, str) or kind not in _TYPES:
        shown = str(kind)[:40]
        return reject(
            DeadLetterReason.UNKNOWN_TYPE, f"type {shown!r} is not one of {sorted(_TYPES)}"
        )
    if _absent(doc.get("userId")) and _absent(doc.get("anonymousId")):
        return reject(DeadLetterReason.MISSING_IDENTITY, "neither userId nor anonymousId is set")
    try:
        wire = SegmentEvent.model_validate(doc)
    except ValidationError as exc:
        return reject(*_validation_reason(exc))
    return Event.from_segment(wire, source)


def _validation_reason(exc: ValidationError) -> tuple[DeadLetterReason, str]:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "(event)"
    text = f"{where}: {first['msg']}"
    missing = first["type"] == "missing" or "missing:" in first["msg"]
    return (DeadLetterReason.MISSING_FIELD if missing else DeadLetterReason.INVALID_FIELD), text

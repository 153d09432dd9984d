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
    event time or receivedAt before 2000-01-01 or after 2100-01-01
                                  -> implausible_timestamp
    event time more than max_future_ms after receivedAt
                                  -> future_timestamp

The event time is ``timestamp``, else ``originalTimestamp``, else ``receivedAt``, corrected for
the device's clock when the event carries ``sentAt`` and ``receivedAt``; the two time checks
apply to the corrected time. :mod:`stream.eventtime` has the rules and why.

>>> decode_event(b'[1, 2]').reason.value
'not_an_object'
>>> decode_event(b'{"type": "track", "event": "Product Viewed", "messageId": "m1",'
...              b' "userId": "u1", "timestamp": "2019-10-01T00:00:00Z"}').timestamp_ms
1569888000000
>>> decode_event(b'{"type": "page", "messageId": "m2", "userId": "u1",'
...              b' "timestamp": "2019-10-01T00:00:00Z", "sentAt": "2019-10-01T00:00:02Z",'
...              b' "receivedAt": "2019-10-01T01:00:03Z"}').timestamp_ms  # device an hour slow
1569891601000
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from stream.deadletter import DeadLetter, DeadLetterReason, SourcePosition
from stream.events import Event, EventType, SegmentEvent
from stream.eventtime import MAX_FUTURE_MS, time_problem
from stream.fastpath import fast_event

__all__ = ["MAX_EVENT_BYTES", "MAX_FUTURE_MS", "decode_event", "decode_event_reference"]

#: Segment's own per-event limit.
MAX_EVENT_BYTES = 32 * 1024

_TYPES = frozenset(t.value for t in EventType)


def decode_event(
    raw: bytes,
    source: SourcePosition | None = None,
    key: bytes | None = None,
    max_bytes: int = MAX_EVENT_BYTES,
    max_future_ms: int = MAX_FUTURE_MS,
) -> Event | DeadLetter:
    """Decode and validate one event; never raises on bad input.

    ``max_future_ms`` (at least 0) is how far after ``receivedAt`` an event time may be.

    Well-formed events of the common shape are validated by hand (:mod:`stream.fastpath`), the
    rest by the pydantic model. The result is the same either way: the model-only decoder is
    :func:`decode_event_reference`, and a property test holds the two equal.
    """
    doc = _load(raw, max_bytes)
    if not isinstance(doc, dict):
        return DeadLetter.of(*doc, raw, source, key)
    event = fast_event(doc, len(raw), source, max_future_ms)
    return event if event is not None else _validate(doc, raw, source, key, max_future_ms)


def decode_event_reference(
    raw: bytes,
    source: SourcePosition | None = None,
    key: bytes | None = None,
    max_bytes: int = MAX_EVENT_BYTES,
    max_future_ms: int = MAX_FUTURE_MS,
) -> Event | DeadLetter:
    """:func:`decode_event` with every event validated by the model: the specification the
    fast path is tested against (two to three times slower)."""
    doc = _load(raw, max_bytes)
    if not isinstance(doc, dict):
        return DeadLetter.of(*doc, raw, source, key)
    return _validate(doc, raw, source, key, max_future_ms)


def _load(raw: bytes, max_bytes: int) -> dict[str, Any] | tuple[DeadLetterReason, str]:
    """The JSON object in ``raw``, or why there is none."""
    if len(raw) > max_bytes:
        return DeadLetterReason.TOO_LARGE, f"{len(raw)} bytes > limit {max_bytes}"
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return _json_error_reason(raw), str(exc)
    if not isinstance(doc, dict):
        return DeadLetterReason.NOT_AN_OBJECT, f"JSON {type(doc).__name__}, not an object"
    return doc


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
    raw: bytes,
    source: SourcePosition | None,
    key: bytes | None,
    max_future_ms: int,
) -> Event | DeadLetter:
    """The model path: the single source of truth for what is valid, and for error messages."""
    kind = doc.get("type")
    if not isinstance(kind, str) or kind not in _TYPES:
        shown = str(kind)[:40]
        message = f"type {shown!r} is not one of {sorted(_TYPES)}"
        return DeadLetter.of(DeadLetterReason.UNKNOWN_TYPE, message, raw, source, key)
    if _absent(doc.get("userId")) and _absent(doc.get("anonymousId")):
        message = "neither userId nor anonymousId is set"
        return DeadLetter.of(DeadLetterReason.MISSING_IDENTITY, message, raw, source, key)
    try:
        wire = SegmentEvent.model_validate(doc)
    except ValidationError as exc:
        return DeadLetter.of(*_validation_reason(exc), raw, source, key)
    event = Event.from_segment(wire, source)
    problem = time_problem(event.timestamp_ms, event.received_at_ms, max_future_ms)
    if problem is not None:
        return DeadLetter.of(*problem, raw, source, key)
    return event


def _validation_reason(exc: ValidationError) -> tuple[DeadLetterReason, str]:
    first = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "(event)"
    text = f"{where}: {first['msg']}"
    missing = first["type"] == "missing" or "missing:" in first["msg"]
    return (DeadLetterReason.MISSING_FIELD if missing else DeadLetterReason.INVALID_FIELD), text

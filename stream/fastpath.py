"""The common, well-formed event shape, validated by hand at a fraction of pydantic's cost.

:class:`~stream.events.SegmentEvent` stays the single source of truth. :func:`fast_event` only
*accepts*: it returns the :class:`~stream.events.Event` the model would produce, or ``None``
whenever the document is anything other than plainly valid, and then the model decides (and
words the error). So it may be stricter than the model, never looser; a property test compares
the two paths on adversarial documents.

What it leaves to the model (returns ``None``):

* ids that are not text (numeric ids are valid, but rare: the model turns them into text);
* any string over its limit, an empty ``messageId`` or ``event``, a wrong type anywhere, an
  explicit ``null`` for ``context``/``properties``/``traits``;
* a missing ``messageId``, ``event`` (track), ``previousId`` (alias) or event time;
* an event time the checks of :mod:`stream.eventtime` refuse;
* every time that is not strictly ``YYYY-MM-DDTHH:MM:SS[.f{1,6}][Z|±HH:MM]``. Pydantic and
  :meth:`datetime.fromisoformat` disagree around the edges (``fromisoformat`` reads ``+00:60``
  as ``+01:00`` and also takes ``+02``, week dates, the basic format and a space before ``Z``;
  pydantic also takes a lowercase ``t``/``z``, epoch numbers and numeric strings), and the
  rare forms both take (a date alone, no seconds, a comma before the fraction) are not worth
  the risk: only the shape both read identically is parsed here.

>>> event = fast_event({"type": "page", "messageId": "m1", "anonymousId": "a1",
...                     "timestamp": "2019-10-01T02:00:00.250+02:00"}, 120)
>>> event.name, event.user_key, event.timestamp_ms
('page', 'a1', 1569888000250)
>>> fast_event({"type": "page", "messageId": "m1", "anonymousId": 7,
...             "timestamp": "2019-10-01T00:00:00Z"}, 80) is None
True
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import fields
from datetime import datetime
from typing import Any, Final

from stream.deadletter import SourcePosition
from stream.events import (
    MAX_EVENT_NAME_LENGTH,
    MAX_ID_LENGTH,
    MAX_STR_LENGTH,
    Event,
    EventType,
)
from stream.eventtime import (
    MAX_FUTURE_MS,
    MAX_PLAUSIBLE_MS,
    MIN_PLAUSIBLE_MS,
    event_time_ms,
    time_problem,
)
from stream.timeutil import EPOCH

__all__ = ["fast_event"]

_TYPES: Final = {t.value: t for t in EventType}
# ASCII only: `\d` would also match other scripts' digits. `fullmatch`, because `$` also
# matches before a trailing newline. Hours, minutes, seconds and offsets are bounded by the
# pattern, not left to `fromisoformat` (which takes `+00:60`), so that what passes does not
# depend on what a given Python's `fromisoformat` tolerates.
_ISO: Final = re.compile(
    r"\d{4}-\d\d-\d\dT(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,6})?"
    r"(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)?",
    re.ASCII,
)
_EPOCH_NAIVE: Final = EPOCH.replace(tzinfo=None)  # naive times are UTC, as in `timeutil`


class _Unsure(Exception):
    """Raised inside the fast path to hand the document to the model (a ``try`` costs nothing
    until something is raised, and then the model's ~20 µs dwarf the raise)."""


def fast_event(
    doc: dict[str, Any],
    raw_size: int,
    source: SourcePosition | None = None,
    max_future_ms: int = MAX_FUTURE_MS,
) -> Event | None:
    """The event the model would build from ``doc``, or ``None`` to let the model decide.

    ``raw_size`` is the encoded size: a document of at most :data:`MAX_STR_LENGTH` bytes cannot
    hold a longer string, so the keys of its objects need no length check.
    """
    try:
        return _build(doc, raw_size, source, max_future_ms)
    except _Unsure:
        return None


def _build(
    doc: dict[str, Any], raw_size: int, source: SourcePosition | None, max_future_ms: int
) -> Event:
    # Every call and attribute lookup shows at this scale: hence `kind` compared as text (an
    # enum member lookup costs ~0.2 µs) and a few `_text` checks written out.
    get = doc.get
    kind, message_id = get("type"), get("messageId")
    if type(kind) is not str or (etype := _TYPES.get(kind)) is None:
        raise _Unsure
    if type(message_id) is not str or not 0 < len(message_id) <= MAX_ID_LENGTH:
        raise _Unsure
    user_id = _text(get("userId"), MAX_ID_LENGTH) or None  # "" is no id, as in the model
    anonymous_id = _text(get("anonymousId"), MAX_ID_LENGTH) or None
    user_key = user_id or anonymous_id
    event = _text(get("event"), MAX_EVENT_NAME_LENGTH)
    if user_key is None or event == "" or (event is None and kind == "track"):
        raise _Unsure
    previous_id, name = get("previousId"), get("name")
    if previous_id is not None or name is not None or kind == "alias":
        _check_rare_fields(kind, previous_id, name)
    context, properties = get("context"), get("properties")
    if type(context) is not dict or type(properties) is not dict or raw_size > MAX_STR_LENGTH:
        context, properties = _object(doc, "context"), _object(doc, "properties")
    if "traits" in doc:
        _object(doc, "traits")
    when, received = _times(get, max_future_ms)
    return _new_event(
        message_id,
        etype,
        event if event is not None and kind == "track" else kind,
        user_key,
        when,
        user_id,
        anonymous_id,
        properties,
        context,
        source,
        received,
        previous_id if type(previous_id) is str and previous_id else None,
    )


def _text(value: object, max_length: int) -> str | None:
    """``value`` if it is absent or text within ``max_length`` characters."""
    if value is None or (type(value) is str and len(value) <= max_length):
        return value
    raise _Unsure


def _check_rare_fields(kind: str, previous_id: object, name: object) -> None:
    """``previousId`` (needed by alias) and ``name``: unused by ``Event``, but validated."""
    previous_id = _text(previous_id, MAX_ID_LENGTH)
    _text(name, MAX_EVENT_NAME_LENGTH)
    if kind == "alias" and not previous_id:
        raise _Unsure


def _object(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """The object under ``name``, ``{}`` when absent (an explicit ``null`` is invalid), its
    keys within the model's limit (the common case skips this: see :func:`fast_event`)."""
    value = doc.get(name)
    if type(value) is dict:
        if any(len(key) > MAX_STR_LENGTH for key in value):
            raise _Unsure
        return value
    if name in doc:
        raise _Unsure
    return {}


def _times(get: Callable[[str], Any], max_future_ms: int) -> tuple[int, int | None]:
    """The corrected event time and ``receivedAt``, if all four times are valid and the event
    time is not refused (that dead letter is the model path's to write)."""
    timestamp, original, sent, received = (
        get("timestamp"),
        get("originalTimestamp"),
        get("sentAt"),
        get("receivedAt"),
    )
    if timestamp is not None:
        timestamp = _iso_ms(timestamp)
    if original is not None:
        original = _iso_ms(original)
    if sent is not None:
        sent = _iso_ms(sent)
    if received is not None:
        received = _iso_ms(received)
    if received is None:  # what `event_time_ms` and `time_problem` come to: the usual case
        when = timestamp if timestamp is not None else original
        if when is None or not MIN_PLAUSIBLE_MS <= when <= MAX_PLAUSIBLE_MS:
            raise _Unsure
        return when, None
    when = event_time_ms(timestamp, original, sent, received)
    if when is None or time_problem(when, received, max_future_ms) is not None:
        raise _Unsure
    return when, received


def _iso_ms(value: object) -> int:
    """Epoch ms of a time in the strict shape (naive means UTC)."""
    if type(value) is not str:
        raise _Unsure
    if len(value) == 24 and value[23] == "Z":  # what the SDKs send: 2019-10-01T00:00:00.250Z
        minute = _MINUTES.get(value[:16])
        if minute is None:
            minute = _minute_ms(value[:16])
        second, milli = _SECONDS.get(value[16:19]), _MILLIS.get(value[19:23])
        if minute is not None and second is not None and milli is not None:
            return minute + second + milli
    if _ISO.fullmatch(value) is None:
        raise _Unsure
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:  # day 31 of a 30-day month, year 0, ...
        raise _Unsure from None
    delta = parsed - (_EPOCH_NAIVE if parsed.tzinfo is None else EPOCH)
    # As `timeutil.datetime_to_ms`: whole milliseconds, floored.
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


# The SDKs' shape, `YYYY-MM-DDTHH:MM` + `:SS` + `.mmm` + `Z`, read by table lookups: the minute
# from a small memo (events come roughly in time order, so it mostly hits), seconds and
# milliseconds from fixed tables. Only exact, validated pieces are in the tables, so this reads
# exactly the strings `_ISO` and `fromisoformat` would, to the same value, for a third of the
# cost; anything else takes the general path.
_MINUTE: Final = re.compile(r"\d{4}-\d\d-\d\dT(?:[01]\d|2[0-3]):[0-5]\d", re.ASCII)
_MINUTES: dict[str, int] = {}
_MAX_MINUTES: Final = 4096
_SECONDS: Final = {f":{s:02d}": s * 1000 for s in range(60)}
_MILLIS: Final = {f".{ms:03d}": ms for ms in range(1000)}


def _minute_ms(text: str) -> int | None:
    """Epoch ms of ``YYYY-MM-DDTHH:MM`` (UTC), remembered; ``None`` if it is no such minute."""
    if _MINUTE.fullmatch(text) is None:
        return None
    try:
        delta = datetime.fromisoformat(text) - _EPOCH_NAIVE
    except ValueError:
        return None
    if len(_MINUTES) >= _MAX_MINUTES:  # bounded whatever the input; refills in a few events
        _MINUTES.clear()
    ms = _MINUTES[text] = (delta.days * 86_400 + delta.seconds) * 1000
    return ms


# A frozen dataclass's `__init__` assigns every field through `object.__setattr__`, which looks
# the name up each time: ~2 µs for `Event`, a third of this path. Setting the slots through
# their descriptors is what that call ends in, in under half the time. `Event` has no
# `__post_init__` to skip; a field added to `Event` breaks this unpacking at import, loudly.
_new = object.__new__
(
    _set_message_id,
    _set_type,
    _set_name,
    _set_user_key,
    _set_timestamp_ms,
    _set_user_id,
    _set_anonymous_id,
    _set_properties,
    _set_context,
    _set_source,
    _set_received_at_ms,
    _set_previous_id,
) = (getattr(Event, f.name).__set__ for f in fields(Event))


def _new_event(
    message_id: str,
    etype: EventType,
    name: str,
    user_key: str,
    timestamp_ms: int,
    user_id: str | None,
    anonymous_id: str | None,
    properties: dict[str, Any],
    context: dict[str, Any],
    source: SourcePosition | None,
    received_at_ms: int | None,
    previous_id: str | None = None,
) -> Event:
    """``Event(...)`` with these fields, built in under half the time (see above)."""
    event = _new(Event)
    _set_message_id(event, message_id)
    _set_type(event, etype)
    _set_name(event, name)
    _set_user_key(event, user_key)
    _set_timestamp_ms(event, timestamp_ms)
    _set_user_id(event, user_id)
    _set_anonymous_id(event, anonymous_id)
    _set_properties(event, properties)
    _set_context(event, context)
    _set_source(event, source)
    _set_received_at_ms(event, received_at_ms)
    _set_previous_id(event, previous_id)
    return event

"""Field-level hostile inputs of :mod:`tests.hostile`: wrong types for every field, injection
strings and 10,000-character strings as ids and names, missing ids, and event times far in the
future or out of the plausible range. Outcomes follow the documented rules (see there)."""

from __future__ import annotations

from typing import Any

from tests.hostile import (
    _DROP,
    _FUTURE_MS,
    _MAX_MS,
    _MIN_MS,
    _T0_MS,
    INJECTIONS,
    LONG,
    LONG_WIDE,
    VALID,
    _Corpus,
    iso,
)

__all__ = ["add_field_cases"]

ABSENT = _DROP
#: Stands for a numeric id, made unique per input (the model turns numeric ids into text).
NUMBER = object()
INVALID = "invalid_field"
_NOT_TEXT: tuple[Any, ...] = (True, False, 1.5, [], {}, [LONG[:10]])

# (call type, field, value, outcome). The first failing check decides; pydantic reports fields
# in the model's order, and the tests change one field at a time.
_CASES: list[tuple[str, str, Any, str]] = [
    *[("track", "type", v, "unknown_type") for v in (ABSENT, None, 1, 1.5, True, [], {})],
    *[("track", "type", v, "unknown_type") for v in ("Track", "", "launch", " track", "TRACK")],
    ("track", "messageId", ABSENT, "missing_field"),
    # Pinned: an explicit null, "" and a number are wrong values, not absences: the numeric-id
    # rule is for userId, anonymousId and previousId only (SegmentEvent._ids_as_text).
    *[("track", "messageId", v, INVALID) for v in (None, "", 7, *_NOT_TEXT)],
    ("track", "messageId", "m" * 257, INVALID),
    ("track", "messageId", "m" * 256, VALID),
    # A userId alone: a number is an id; "" and null are no id; anything else is invalid.
    ("track", "userId", NUMBER, VALID),
    *[("track", "userId", v, INVALID) for v in (*_NOT_TEXT, "u" * 257)],
    *[("track", "userId", v, "missing_identity") for v in (ABSENT, None, "")],
    ("anon", "anonymousId", NUMBER, VALID),
    *[("anon", "anonymousId", v, INVALID) for v in (*_NOT_TEXT, "a" * 257)],
    *[("anon", "anonymousId", v, "missing_identity") for v in (ABSENT, None, "")],
    # previousId of an alias call: required ("" counts as absent, as for the other ids).
    *[("alias", "previousId", v, "missing_field") for v in (ABSENT, None, "")],
    *[("alias", "previousId", v, INVALID) for v in (*_NOT_TEXT, "p" * 257)],
    ("alias", "previousId", NUMBER, VALID),
    # event of a track call: required; pinned: "" is too short (invalid), not absent.
    *[("track", "event", v, "missing_field") for v in (ABSENT, None)],
    *[("track", "event", v, INVALID) for v in ("", 5, *_NOT_TEXT, "e" * 201)],
    ("track", "event", "e" * 200, VALID),
    *[("page", "name", v, INVALID) for v in (5, *_NOT_TEXT, "n" * 201)],
    *[("page", "name", v, VALID) for v in (None, "", "n" * 200)],
    # Times: the only time absent means no event time at all (missing_field). Pinned: numbers
    # are read as epoch seconds (milliseconds above 2e10) by pydantic, as stream.fastpath says.
    *[("track", "timestamp", v, "missing_field") for v in (ABSENT, None)],
    *[
        ("track", "timestamp", v, INVALID)
        for v in (
            "yesterday",
            "",
            True,
            False,
            [],
            {},
            "2024-13-01T00:00:00Z",
            "2024-02-30T12:00:00Z",
        )
    ],
    *[("track", "timestamp", v, INVALID) for v in ("2024-03-01T25:00:00Z", 1e308, "10000-01-01")],
    ("track", "timestamp", "2024-03-01T12:00:00", VALID),  # naive: UTC
    ("track", "timestamp", 1_709_294_400, VALID),
    ("track", "timestamp", 1_709_294_400_000, VALID),
    *[("track", "timestamp", v, "implausible_timestamp") for v in (0, -1, 1.5, 946_684_799)],
    *[
        ("track", name, v, INVALID)
        for name in ("originalTimestamp", "sentAt", "receivedAt")
        for v in ("garbage", [], True, {})
    ],
    # context, properties and traits: objects; pinned: an explicit null is invalid.
    *[
        ("track", name, v, INVALID)
        for name in ("context", "properties", "traits")
        for v in (None, [], "x", 5, True, [{}])
    ],
    # Pinned: str_max_length (10,000) applies to the keys of these objects too.
    *[("track", name, {"k" * 10_001: 1}, INVALID) for name in ("context", "properties")],
    *[("track", name, {"k" * 10_000: 1}, VALID) for name in ("context", "properties")],
    # Hostile context values of a valid event: read as absent or unknown, never a crash (a
    # zone-database directory as timezone used to raise; see test_context).
    *[
        ("page", "context", {"timezone": tz}, VALID)
        for tz in ("Europe", "America/Argentina", "../etc/passwd", "\x00", 7, [], "Mars/Base")
    ],
    *[
        ("page", "context", ctx, VALID)
        for ctx in ({"device": "x"}, {"os": []}, {"locale": 5}, {"app": 1}, {"library": None})
    ],
]


def _call(c: _Corpus, kind: str) -> dict[str, Any]:
    doc = c.base()
    if kind == "anon":
        doc["anonymousId"] = doc.pop("userId").replace("hu-", "ha-")
    elif kind in ("page", "alias"):
        doc.pop("event")
        doc["type"] = kind
        doc["properties"] = {}
        if kind == "alias":
            doc["previousId"] = f"prev-{c.n}"
    return doc


def _wrong_types(c: _Corpus) -> None:
    for _ in range(2):  # every case twice: different ids, users and keys
        for kind, field, value, outcome in _CASES:
            doc = _call(c, kind)
            if value is ABSENT:
                doc.pop(field, None)
            else:
                doc[field] = 10_000_000 + c.n if value is NUMBER else value
            c.add("wrong_type", doc, outcome)


def _injections(c: _Corpus) -> None:
    """Injection payloads are opaque text: valid as ids and names (within their limits), never
    a type or a time."""
    for payload in INJECTIONS:
        unique = f"{payload} #{c.n}"
        c.valid("injection", c.base(userId=unique))
        anonymous = c.base(anonymousId=f"{payload} #a{c.n}")
        anonymous.pop("userId")
        c.valid("injection", anonymous)
        c.valid("injection", c.base(messageId=unique + "m"))
        c.valid("injection", c.base(event=payload), why="counts as track:other")
        page = _call(c, "page")
        page["name"] = payload
        c.valid("injection", page)
        c.valid("injection", c.base(properties={payload: payload}))
        c.add("injection", c.base(type=payload), "unknown_type")
        c.add("injection", c.base(timestamp=payload), INVALID)
    for long in (LONG, LONG_WIDE):
        for field in ("userId", "anonymousId", "messageId", "event"):
            c.add("long_string", c.base(**{field: long}), INVALID)
        page, alias = _call(c, "page"), _call(c, "alias")
        page["name"], alias["previousId"] = long, long
        c.add("long_string", page, INVALID)
        c.add("long_string", alias, INVALID)
        c.add("long_string", c.base(type=long), "unknown_type")
        c.add("long_string", c.base(timestamp=long), INVALID)
        for name in ("category", "brand", "product_id"):
            doc = c.base(kind="Product Added")
            doc["properties"][name] = long
            c.valid("long_string", doc, name, why="over max_text_length (100)")


def _missing_ids(c: _Corpus) -> None:
    for _ in range(6):
        for user, anonymous in ((ABSENT, ABSENT), ("", ""), (None, None), (None, ""), ("", None)):
            doc = c.base()
            doc.pop("userId")
            for name, value in (("userId", user), ("anonymousId", anonymous)):
                if value is not ABSENT:
                    doc[name] = value
            c.add("missing_id", doc, "missing_identity")
        # Identity is checked before the model, the type before identity.
        no_id = {k: v for k, v in c.base().items() if k not in ("userId", "messageId")}
        c.add("missing_id", no_id, "missing_identity")
        c.add("missing_id", {**no_id, "properties": []}, "missing_identity")
        c.add("missing_id", {**no_id, "type": "launch"}, "unknown_type")
        no_message = c.base()
        no_message.pop("messageId")
        c.add("missing_id", no_message, "missing_field")
        # Pinned: pydantic reports messageId (earlier in the model) before properties.
        c.add("missing_id", {**no_message, "properties": []}, "missing_field")
        both = c.base(anonymousId=f"ha-{c.n}", userId="")
        c.valid("missing_id", both, why="an empty userId is no id: the anonymousId keys")


def time_outcome(
    timestamp: int | None, original: int | None, sent: int | None, received: int | None
) -> str:
    """stream.eventtime's rules, restated: the corrected event time, then the refusals."""
    if timestamp is not None and original is not None:
        when = timestamp
    else:
        device = timestamp if timestamp is not None else original
        if device is None:
            when = received
        elif sent is None or received is None:
            when = device
        else:
            when = received - (sent - device)
    assert when is not None
    if received is not None and not _MIN_MS <= received <= _MAX_MS:
        return "implausible_timestamp"
    if not _MIN_MS <= when <= _MAX_MS:
        return "implausible_timestamp"
    if received is not None and when - received > _FUTURE_MS:
        return "future_timestamp"
    return VALID


_YEAR_MS = 365 * 86_400_000
#: From year 1 to year 9999 (what ISO 8601 and datetime can write).
_FIRST_MS, _LAST_MS = -62_135_596_800_000, 253_402_300_799_000


def _times(c: _Corpus) -> None:
    boundary = (_MIN_MS - 1, _MIN_MS, _MAX_MS, _MAX_MS + 1, 0, _FIRST_MS, _LAST_MS)
    for ms in boundary:
        c.add("timestamp", c.base(timestamp=iso(ms)), time_outcome(ms, None, None, None))
    # An offset moves a time across the boundary: 00:30 at +01:00 is 23:30 UTC the day before.
    c.add("timestamp", c.base(timestamp="2000-01-01T00:30:00+01:00"), "implausible_timestamp")
    c.add("timestamp", c.base(timestamp="2099-12-31T23:30:00-01:00"), "implausible_timestamp")
    for _ in range(170):
        received = _T0_MS + c.r.randint(-5, 5) * _YEAR_MS + c.r.randrange(86_400_000)
        shape = c.r.choice(["ahead", "edge", "any", "sent", "late_send", "both", "received"])
        timestamp: int | None = received + _ahead(c, shape)
        original = sent = None
        if shape in ("sent", "late_send"):  # a device clock anywhere, sent soon after or before
            timestamp = c.r.randint(_FIRST_MS + _YEAR_MS, _LAST_MS - _YEAR_MS)
            gap = c.r.randint(0, 60_000) if shape == "sent" else -c.r.randint(0, 30 * _YEAR_MS)
            sent = timestamp + gap
        elif shape == "both":  # been through Segment: taken as it is
            original, sent = timestamp - c.r.randint(0, 10 * _YEAR_MS), timestamp
        elif shape == "received":
            timestamp, received = None, c.r.choice([received, c.r.randint(0, _LAST_MS)])
        if c.r.random() < 0.1:
            received = c.r.choice([_MIN_MS - 1, _MAX_MS + 1])  # the collector's clock broken
        doc = c.base(timestamp=_DROP if timestamp is None else iso(timestamp))
        for name, ms in (("originalTimestamp", original), ("sentAt", sent)):
            if ms is not None:
                doc[name] = iso(ms)
        doc["receivedAt"] = iso(received)
        c.add("timestamp", doc, time_outcome(timestamp, original, sent, received))


def _ahead(c: _Corpus, shape: str) -> int:
    """How far after receivedAt the device says the event happened."""
    if shape == "edge":
        return _FUTURE_MS + c.r.choice([-1, 0, 1, 2])
    if shape == "ahead":
        return _FUTURE_MS + c.r.randint(1, 80 * _YEAR_MS)
    return c.r.randint(-30 * _YEAR_MS, 30 * _YEAR_MS)


def add_field_cases(c: _Corpus) -> None:
    _wrong_types(c)
    _injections(c)
    _missing_ids(c)
    _times(c)

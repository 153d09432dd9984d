"""The fast path decodes exactly like the model: same event, same dead letter, for every input."""

from __future__ import annotations

import itertools
from dataclasses import fields
from datetime import timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream import fastpath
from stream.decode import decode_event, decode_event_reference
from stream.events import MAX_EVENT_NAME_LENGTH, MAX_ID_LENGTH, MAX_STR_LENGTH, Event, SegmentEvent
from stream.eventtime import MAX_FUTURE_MS, MAX_PLAUSIBLE_MS, MIN_PLAUSIBLE_MS
from stream.fastpath import fast_event
from stream.synthetic import GeneratorConfig, generate_events
from stream.timeutil import EPOCH, ms_to_iso
from tests.support import INVALID_EVENTS
from tests.unit.test_decode import EXTRA_INVALID, SOURCE

KEY = b"k"
_ABSENT = object()


def assert_same_as_reference(raw: bytes) -> Event | Any:
    """Both decoders agree on ``raw``; returns the result."""
    fast = decode_event(raw, source=SOURCE, key=KEY)
    reference = decode_event_reference(raw, source=SOURCE, key=KEY)
    # Dead letters compare whole (message included): the fast path never words one itself.
    assert fast == reference
    assert type(fast) is type(reference)
    return fast


# --- documents: mostly valid, each field sometimes hostile ------------------------------------


def mostly(usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any], one_in: int = 20) -> Any:
    """``odd`` once in ``one_in`` draws, else ``usual`` (``one_of`` would weigh them evenly)."""
    return st.integers(1, one_in).flatmap(lambda k: odd if k == 1 else usual)


_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what orjson writes
_junk = st.one_of(
    st.booleans(),
    _ints,
    st.floats(allow_nan=False),
    st.lists(_ints, max_size=2),
    st.dictionaries(st.text(max_size=3), _ints, max_size=2),
)
_long_text = st.sampled_from(["x", "é", "😀"]).flatmap(
    lambda ch: st.sampled_from([MAX_ID_LENGTH, MAX_EVENT_NAME_LENGTH]).flatmap(
        lambda n: st.sampled_from([ch * (n - 1), ch * n, ch * (n + 1)])
    )
)
ids = mostly(
    st.sampled_from(["u-1", "anon-7", "0", "ユーザー"]) | st.text(min_size=1, max_size=12),
    st.sampled_from(["", " "]) | _long_text | st.integers(-(2**63), 2**64 - 1) | _junk,
    one_in=12,
)
names = mostly(
    st.sampled_from(["Product Viewed", "Home"]) | st.text(min_size=1, max_size=8),
    st.just("") | _long_text | _junk,
    one_in=12,
)

_OFFSETS = ["Z", "", "+00:00", "-00:00", "+05:30", "-08:00", "+23:59", "-23:59", "+14:00"]
_ODD_OFFSETS = ["z", "+24:00", "+00:60", "+0200", "+02", "+02:00:30", " Z", "UTC", "+2:00"]


@st.composite
def iso_times(draw: st.DrawFn) -> str:
    """ISO-8601-ish text: the common shape, its legal variants, and near misses."""
    when = draw(st.datetimes())
    date = f"{when.year:04d}-{when.month:02d}-{when.day:02d}"
    sep = draw(mostly(st.just("T"), st.sampled_from([" ", "t", "_"]), one_in=30))
    clock = f"{when.hour:02d}:{when.minute:02d}:{when.second:02d}"
    digits = draw(mostly(st.sampled_from([3, 0, 1, 6]), st.sampled_from([7, 9]), one_in=30))
    point = draw(mostly(st.just("."), st.just(","), one_in=30))
    clock += point + f"{when.microsecond:06d}000"[:digits] if digits else ""
    clock = draw(mostly(st.just(clock), st.sampled_from([clock[:5], clock[:2]]), one_in=30))
    offset = draw(mostly(st.sampled_from(_OFFSETS), st.sampled_from(_ODD_OFFSETS), one_in=15))
    text = f"{date}{sep}{clock}{offset}"
    text = draw(mostly(st.just(text), st.sampled_from([date, date + sep]), one_in=30))
    if draw(st.integers(0, 29)) == 0:  # one character changed: near misses
        at = draw(st.integers(0, len(text) - 1))
        glyph = draw(st.sampled_from(["0", "9", "2", "x", "٣", "-", ":"]))
        text = text[:at] + glyph + text[at + 1 :]
    return text


_ODD_TIMES = [
    "2024-01-01T24:00:00Z",
    "2023-12-31T23:59:60Z",
    "2023-02-29T00:00:00Z",
    "2024-02-29T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59",
    "2024-W01-1T00:00:00.000Z",
    "20240101T000000Z",
    "2024-01-01T00:00:00.Z",
    "2024-01-01T00:00:00Z\n",
    "1700000000",
    "1700000000000",
    "yesterday",
    "",
]
times = mostly(
    iso_times(),
    st.sampled_from(_ODD_TIMES)
    | st.integers(min_value=-(2**40), max_value=2**45)
    | st.floats(min_value=-1e12, max_value=1e15)
    | _junk,
    one_in=12,
)


@st.composite
def objects(draw: st.DrawFn) -> Any:
    """Mostly an object, sometimes with a key at or beyond the model's limit, or not one."""
    if draw(st.integers(0, 29)) == 0:
        return draw(st.one_of(st.text(max_size=3), _junk))
    value: dict[str, Any] = draw(st.dictionaries(st.text(max_size=5), _ints, max_size=3))
    if draw(st.integers(0, 14)) == 0:
        value["k" * draw(st.sampled_from([MAX_STR_LENGTH, MAX_STR_LENGTH + 1]))] = 1
    if draw(st.integers(0, 14)) == 0:
        value["pad"] = "p" * MAX_STR_LENGTH  # a big document whose keys are all short
    return value


def maybe(values: st.SearchStrategy[Any], absent: int = 3) -> st.SearchStrategy[Any]:
    """``values``; or, one draw in ``absent``, the field left out (or, rarely, ``null``)."""
    return st.integers(0, absent * 20 - 1).flatmap(
        lambda k: st.none() if k == 0 else st.just(_ABSENT) if k < 20 else values
    )


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    kinds = st.sampled_from(["track", "page", "screen", "identify", "alias"])
    fields_ = {
        "type": mostly(kinds, st.sampled_from(["Track", "launch", ""]) | _junk),
        "messageId": mostly(ids, st.just(_ABSENT)),
        "userId": maybe(ids),
        "anonymousId": maybe(ids),
        "previousId": maybe(ids),
        "event": maybe(names),
        "name": maybe(names),
        "timestamp": mostly(times, st.just(_ABSENT), one_in=4),
        "originalTimestamp": maybe(times, 4),
        "sentAt": maybe(times),
        "receivedAt": maybe(times, 4),
        "context": maybe(objects()),
        "properties": maybe(objects()),
        "traits": maybe(objects(), 4),
        "channel": maybe(st.just("client")),
    }
    doc = {name: draw(values) for name, values in fields_.items()}
    return {name: value for name, value in doc.items() if value is not _ABSENT}


_SETTINGS = settings(
    max_examples=1000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@_SETTINGS
@given(documents())
def test_fast_path_decodes_like_the_model(doc: dict[str, Any]) -> None:
    assert_same_as_reference(orjson.dumps(doc))


@settings(_SETTINGS, max_examples=200)
@given(documents(), st.integers(0, 100))
def test_fast_path_is_after_the_size_limit(doc: dict[str, Any], slack: int) -> None:
    raw = orjson.dumps(doc)
    for max_bytes in (len(raw), len(raw) - 1 - slack):
        fast = decode_event(raw, max_bytes=max_bytes)
        assert fast == decode_event_reference(raw, max_bytes=max_bytes)


_HOUR_MS = 3_600_000
_YEAR_MS = 365 * 24 * _HOUR_MS
_LIMITS = [MIN_PLAUSIBLE_MS, MAX_PLAUSIBLE_MS]


def _iso(ms: int, draw: st.DrawFn) -> str:
    """``ms`` as the SDKs write it, or with an offset, or naive."""
    text = ms_to_iso(ms)
    form = draw(st.sampled_from(["sdk", "sdk", "offset", "naive"]))
    if form == "offset":
        zone = timezone(timedelta(minutes=draw(st.sampled_from([-480, 330, 60]))))
        return (EPOCH + timedelta(milliseconds=ms)).astimezone(zone).isoformat()
    return text[:-1] if form == "naive" else text


@st.composite
def clocked(draw: st.DrawFn) -> tuple[dict[str, Any], int]:
    """A document whose times relate as clocks do (device skew, time queued on the device,
    network delay), around the plausibility and future limits; and a ``max_future_ms``."""
    doc = draw(documents())
    max_future_ms = draw(st.sampled_from([MAX_FUTURE_MS, 0, 1, _HOUR_MS]))
    received = draw(
        st.integers(MIN_PLAUSIBLE_MS - _YEAR_MS, MAX_PLAUSIBLE_MS + _YEAR_MS)
        | st.sampled_from(_LIMITS).flatmap(lambda ms: st.integers(ms - 1, ms + 1))
    )
    skew = draw(
        st.sampled_from([0, _HOUR_MS, -_HOUR_MS, -54 * _YEAR_MS])
        | st.integers(-100 * _YEAR_MS, 100 * _YEAR_MS)
    )
    queued = draw(
        st.sampled_from([-max_future_ms - 1, -max_future_ms, 0])
        | st.integers(-_HOUR_MS, 2 * _HOUR_MS)
    )
    sent = received - draw(st.integers(0, 10_000)) + skew
    device = sent - queued
    times = {"receivedAt": received, "sentAt": sent, draw(_DEVICE_FIELD): device}
    for name in ("timestamp", "originalTimestamp", "sentAt", "receivedAt"):
        doc.pop(name, None)
    for name, ms in times.items():
        if draw(st.integers(0, 4)) and EPOCH_MS_RANGE[0] <= ms <= EPOCH_MS_RANGE[1]:
            doc[name] = _iso(ms, draw)
    return doc, max_future_ms


_DEVICE_FIELD = st.sampled_from(["timestamp", "timestamp", "originalTimestamp"])
#: What `ms_to_iso` can write (years 1970 to 9999).
EPOCH_MS_RANGE = (0, 253_402_300_799_999)


@settings(_SETTINGS, max_examples=700)
@given(clocked())
def test_fast_path_corrects_and_refuses_times_like_the_model(
    case: tuple[dict[str, Any], int],
) -> None:
    doc, max_future_ms = case
    raw = orjson.dumps(doc)
    fast = decode_event(raw, max_future_ms=max_future_ms)
    assert fast == decode_event_reference(raw, max_future_ms=max_future_ms)


@pytest.mark.parametrize("raw", [raw for raw, _ in INVALID_EVENTS] + [c[1] for c in EXTRA_INVALID])
def test_invalid_examples_are_dead_lettered_alike(raw: bytes) -> None:
    assert_same_as_reference(raw)


# --- the fast path is taken where it matters ---------------------------------------------------

COMMON: list[dict[str, Any]] = [
    {"type": "track", "event": "Product Viewed", "properties": {"product_id": "p1"}},
    {"type": "page", "name": "Home", "properties": {"path": "/"}},
    {"type": "screen", "name": "Cart"},
    {"type": "identify", "traits": {"email": "a@b.c"}},
    {"type": "alias", "previousId": "anon-1"},
]


@pytest.mark.parametrize("call", COMMON, ids=[c["type"] for c in COMMON])
@pytest.mark.parametrize(
    "times_",
    [
        {"timestamp": "2024-01-01T00:00:00.123Z", "sentAt": "2024-01-01T00:00:01.000Z"},
        {"timestamp": "2024-01-01T02:00:00+02:00"},
        {"timestamp": "2024-01-01T00:00:00.123456"},
        {"originalTimestamp": "2024-01-01T00:00:00Z", "receivedAt": "2024-01-01T00:00:01Z"},
        {"receivedAt": "2024-01-01T00:00:01Z"},
        {
            "timestamp": "2024-01-01T00:00:00.000Z",
            "sentAt": "2024-01-01T00:00:01.000Z",
            "receivedAt": "2024-01-01T01:00:01.500Z",
        },
    ],
)
def test_common_shapes_take_the_fast_path(call: dict[str, Any], times_: dict[str, str]) -> None:
    doc = {"messageId": "m1", "userId": "u1", "anonymousId": "a1", "context": {}, **call, **times_}
    raw = orjson.dumps(doc)
    event = fast_event(doc, len(raw))
    assert event is not None
    assert event == decode_event_reference(raw)


def test_every_generated_event_takes_the_fast_path() -> None:
    generated = generate_events(GeneratorConfig(seed=5, users=30, days=2.0))
    for doc in itertools.islice(generated, 2000):
        raw = orjson.dumps(doc)
        assert fast_event(orjson.loads(raw), len(raw)) == decode_event_reference(raw)


@pytest.mark.parametrize(
    "changes",
    [
        {"userId": 42},  # numeric ids are valid, and the model's business
        {"messageId": "m" * (MAX_ID_LENGTH + 1)},
        {"event": ""},
        {"context": None},
        {"timestamp": 1_704_067_200},
        {"timestamp": "2024-01-01"},
        {"timestamp": "2024-01-01t00:00:00z"},
        {"timestamp": "2024-01-01T00:00:00+00:60"},  # fromisoformat reads +01:00; pydantic: error
        {"timestamp": "2024-01-01T00:00:00+02"},
        {"timestamp": "2024-01-01T00:00:00Z\n"},
        {"timestamp": "٢٠٢٤-01-01T00:00:00Z"},
        {"sentAt": "2024-02-30T00:00:00Z"},
        # the SDKs' 24-character shape, read by table lookups, with one piece out of range
        {"timestamp": "2023-02-29T00:00:00.000Z"},
        {"timestamp": "2024-01-01T24:00:00.000Z"},
        {"timestamp": "2024-01-01T00:60:00.000Z"},
        {"timestamp": "2024-01-01T00:00:60.000Z"},
        {"timestamp": "2024-01-01T00:00:00,000Z"},  # valid for pydantic; left to it
        {"timestamp": "٢٠٢٤-01-01T00:00:00.000Z"},
        {"timestamp": "2024-01-01T00:00:00.0a0Z"},
    ],
)
def test_the_fast_path_leaves_the_unusual_to_the_model(changes: dict[str, Any]) -> None:
    doc = {"type": "track", "event": "E", "messageId": "m", "userId": "u"}
    doc |= {"timestamp": "2024-01-01T00:00:00Z"} | changes
    raw = orjson.dumps(doc)
    assert fast_event(doc, len(raw)) is None
    assert_same_as_reference(raw)


def test_the_minute_memo_is_bounded_and_changes_no_result() -> None:
    start = 1_704_067_200_000
    for minute in range(fastpath._MAX_MINUTES + 10):
        ms = start + minute * 60_000 + 1_234
        doc = {"type": "page", "messageId": "m", "userId": "u", "timestamp": ms_to_iso(ms)}
        event = fast_event(doc, 100)
        assert event is not None
        assert event.timestamp_ms == ms
        assert len(fastpath._MINUTES) <= fastpath._MAX_MINUTES


# --- what the fast path copies from the model, pinned -----------------------------------------


def test_limits_are_the_models() -> None:
    model = SegmentEvent.model_fields
    assert SegmentEvent.model_config.get("str_max_length") == MAX_STR_LENGTH
    assert _max_length(model["event"].metadata) == MAX_EVENT_NAME_LENGTH
    assert _max_length(model["name"].metadata) == MAX_EVENT_NAME_LENGTH
    for name in ("messageId", "userId", "anonymousId", "previousId"):
        assert _max_length(model[name].metadata) == MAX_ID_LENGTH


def _max_length(metadata: list[Any]) -> int:
    (limit,) = [m.max_length for m in metadata if getattr(m, "max_length", None) is not None]
    return int(limit)


def test_events_are_built_field_by_field_as_the_dataclass_would() -> None:
    # `fast_event` sets `Event`'s slots directly: a new field, or a `__post_init__`, needs it
    # updated (the equality tests above would fail on an unset slot too).
    assert [f.name for f in fields(Event)] == [
        "message_id",
        "type",
        "name",
        "user_key",
        "timestamp_ms",
        "user_id",
        "anonymous_id",
        "properties",
        "context",
        "source",
        "received_at_ms",
        "previous_id",
    ]
    assert not hasattr(Event, "__post_init__")

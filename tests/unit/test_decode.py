"""The event contract: bytes in, an Event or one typed DeadLetter out, never an exception."""

from __future__ import annotations

import base64
import itertools
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream import (
    MAX_EVENT_BYTES,
    DeadLetter,
    DeadLetterReason,
    Event,
    EventType,
    SourcePosition,
    decode_event,
)
from stream.deadletter import DEADLETTER_SCHEMA, MAX_PAYLOAD_BYTES_KEPT
from stream.decode import MAX_FUTURE_MS
from stream.events import MAX_ID_LENGTH
from stream.synthetic import GeneratorConfig, generate_events
from stream.timeutil import iso_to_ms, ms_to_iso
from tests.support import INVALID_EVENTS

BASE: dict[str, Any] = {
    "type": "track",
    "event": "Product Viewed",
    "messageId": "m-1",
    "userId": "u-1",
    "timestamp": "2024-01-01T00:00:00Z",
}
BASE_MS = 1_704_067_200_000
SOURCE = SourcePosition("events", 3, 41)
KEY = b"u-1"


def encode(**changes: Any) -> bytes:
    """BASE with ``changes`` applied; a value of ``None`` removes the field."""
    doc = {**BASE, **changes}
    return orjson.dumps({k: v for k, v in doc.items() if v is not None})


def accepted(raw: bytes, **kwargs: Any) -> Event:
    result = decode_event(raw, **kwargs)
    assert isinstance(result, Event), result
    return result


def rejected(raw: bytes, **kwargs: Any) -> DeadLetter:
    result = decode_event(raw, **kwargs)
    assert isinstance(result, DeadLetter), result
    return result


def padded_to(size: int) -> bytes:
    """A valid event of exactly ``size`` bytes (padding in an opaque property)."""
    empty = encode(properties={"pad": ""})
    raw = encode(properties={"pad": "x" * (size - len(empty))})
    assert len(raw) == size
    return raw


# --- one case per dead-letter reason ---------------------------------------------------------

EXTRA_INVALID: list[tuple[str, bytes, str]] = [
    ("empty input", b"", "malformed_json"),
    ("trailing garbage", encode() + b"}", "malformed_json"),
    ("NaN literal", b'{"type": NaN}', "malformed_json"),
    ("bad utf-8 inside a string", b'{"type": "tr\xe9ck"}', "invalid_encoding"),
    ("utf-16", '{"type": "track"}'.encode("utf-16"), "invalid_encoding"),
    ("JSON null", b"null", "not_an_object"),
    ("JSON string", b'"track"', "not_an_object"),
    ("JSON number", b"42", "not_an_object"),
    ("32 KiB + 1", padded_to(MAX_EVENT_BYTES + 1), "too_large"),
    ("type absent", encode(type=None), "unknown_type"),
    ("type capitalised", encode(type="Track"), "unknown_type"),
    ("type not a string", encode(type=5), "unknown_type"),
    ("type a list", encode(type=["track"]), "unknown_type"),
    ("both ids empty", encode(userId="", anonymousId=""), "missing_identity"),
    ("no ids at all", encode(userId=None), "missing_identity"),
    (
        "both ids explicitly null",
        orjson.dumps({**BASE, "userId": None, "anonymousId": None}),
        "missing_identity",
    ),
    ("track without event", encode(event=None), "missing_field"),
    ("alias without previousId", encode(type="alias", event=None), "missing_field"),
    ("alias with empty previousId", encode(type="alias", previousId=""), "missing_field"),
    ("no time at all", encode(timestamp=None), "missing_field"),
    ("only sentAt", encode(timestamp=None, sentAt="2024-01-01T00:00:00Z"), "missing_field"),
    ("messageId absent", encode(messageId=None), "missing_field"),
    ("boolean userId", encode(userId=True), "invalid_field"),
    ("boolean false userId", encode(userId=False), "invalid_field"),
    ("boolean anonymousId", encode(userId=None, anonymousId=True), "invalid_field"),
    ("float userId", encode(userId=1.5), "invalid_field"),
    ("list userId", encode(userId=["u"]), "invalid_field"),
    ("object userId", encode(userId={"id": "u"}), "invalid_field"),
    ("numeric messageId", encode(messageId=5), "invalid_field"),
    ("messageId too long", encode(messageId="m" * (MAX_ID_LENGTH + 1)), "invalid_field"),
    ("userId too long", encode(userId="u" * (MAX_ID_LENGTH + 1)), "invalid_field"),
    (
        "anonymousId too long",
        encode(userId=None, anonymousId="a" * (MAX_ID_LENGTH + 1)),
        "invalid_field",
    ),
    (
        "previousId too long",
        encode(type="alias", previousId="p" * (MAX_ID_LENGTH + 1)),
        "invalid_field",
    ),
    ("10,000-char messageId", encode(messageId="m" * 10_000), "invalid_field"),
    ("event name too long", encode(event="e" * 201), "invalid_field"),
    ("10,000-char page name", encode(type="page", event=None, name="n" * 10_000), "invalid_field"),
    ("properties not an object", encode(properties="oops"), "invalid_field"),
    ("context not an object", encode(context=[1]), "invalid_field"),
    ("traits not an object", encode(type="identify", event=None, traits=3), "invalid_field"),
    ("unparseable timestamp", encode(timestamp="2024-13-45T99:00:00Z"), "invalid_field"),
    ("timestamp an object", encode(timestamp={"at": 1}), "invalid_field"),
    ("10,001-char property key", encode(properties={"k" * 10_001: 1}), "invalid_field"),
    ("timestamp 0 (1970)", encode(timestamp=0), "implausible_timestamp"),
    ("timestamp in 1999", encode(timestamp="1999-12-31T23:59:59.999Z"), "implausible_timestamp"),
    ("timestamp after 2100", encode(timestamp="2100-01-01T00:00:00.001Z"), "implausible_timestamp"),
    (
        "receivedAt in 1970",
        encode(receivedAt="1970-01-01T00:00:00Z", sentAt="1970-01-01T00:00:00Z"),
        "implausible_timestamp",
    ),
    (
        "a day ahead of receivedAt, no sentAt",
        encode(receivedAt="2023-12-31T00:00:00Z"),
        "future_timestamp",
    ),
    (
        "stamped 10 minutes after it was sent",
        encode(sentAt="2023-12-31T23:50:00Z", receivedAt="2023-12-31T23:50:01Z"),
        "future_timestamp",
    ),
]


@pytest.mark.parametrize(("raw", "reason"), INVALID_EVENTS, ids=[r for _, r in INVALID_EVENTS])
def test_shared_invalid_examples_are_dead_lettered_with_their_reason(
    raw: bytes, reason: str
) -> None:
    assert rejected(raw).reason == reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(raw, reason) for _, raw, reason in EXTRA_INVALID],
    ids=[c[0] for c in EXTRA_INVALID],
)
def test_more_invalid_events_are_dead_lettered_with_their_reason(raw: bytes, reason: str) -> None:
    letter = rejected(raw)
    assert letter.reason == reason
    assert letter.message


def test_every_input_reason_has_a_case() -> None:
    covered = {reason for _, reason in INVALID_EVENTS} | {reason for *_, reason in EXTRA_INVALID}
    # processing_error is produced by the adapter when the step itself fails, not by decoding.
    assert covered == {r.value for r in DeadLetterReason} - {
        "processing_error",
        "invalid_erasure_request",  # the erasures control topic (agents.erasure)
    }


def test_empty_message_id_is_rejected() -> None:
    assert rejected(encode(messageId="")).reason in {"missing_field", "invalid_field"}


# --- accepted inputs -------------------------------------------------------------------------


def test_a_valid_track_event_becomes_a_domain_event() -> None:
    event = accepted(encode(properties={"product_id": "p1"}, context={"ip": "1.2.3.4"}))
    assert event.message_id == "m-1"
    assert event.type is EventType.TRACK
    assert event.name == "Product Viewed"
    assert event.user_key == "u-1"
    assert event.user_id == "u-1"
    assert event.anonymous_id is None
    assert event.timestamp_ms == BASE_MS
    assert event.properties == {"product_id": "p1"}
    assert event.context == {"ip": "1.2.3.4"}
    assert event.source is None


@pytest.mark.parametrize("kind", ["page", "screen", "identify"])
def test_non_track_calls_count_under_their_type(kind: str) -> None:
    event = accepted(encode(type=kind, event=None, name="Home"))
    assert event.type == kind
    assert event.name == kind


def test_non_track_call_ignores_an_event_field() -> None:
    assert accepted(encode(type="page", event="Product Viewed")).name == "page"


def test_alias_with_previous_id_is_accepted() -> None:
    event = accepted(encode(type="alias", event=None, previousId="anon-9"))
    assert event.type is EventType.ALIAS
    assert event.name == "alias"


@pytest.mark.parametrize(
    ("value", "text"), [(12345, "12345"), (0, "0"), (2**63 - 1, str(2**63 - 1))]
)
def test_numeric_user_id_is_accepted_as_text(value: int, text: str) -> None:
    event = accepted(encode(userId=value))
    assert event.user_id == text
    assert event.user_key == text


def test_numeric_anonymous_id_is_accepted_as_text() -> None:
    event = accepted(encode(userId=None, anonymousId=987))
    assert event.anonymous_id == "987"
    assert event.user_key == "987"


def test_empty_user_id_with_anonymous_id_is_keyed_by_the_anonymous_id() -> None:
    event = accepted(encode(userId="", anonymousId="anon-1"))
    assert event.user_id is None
    assert event.anonymous_id == "anon-1"
    assert event.user_key == "anon-1"


def test_user_id_wins_the_key_over_anonymous_id() -> None:
    event = accepted(encode(anonymousId="anon-1"))
    assert event.user_key == "u-1"
    assert event.anonymous_id == "anon-1"


def test_ids_of_exactly_the_maximum_length_are_accepted() -> None:
    long_id = "x" * MAX_ID_LENGTH
    event = accepted(encode(messageId=long_id, userId=long_id, anonymousId=long_id))
    assert event.message_id == long_id
    assert event.user_key == long_id


@pytest.mark.parametrize(
    ("fields", "expected_ms"),
    [
        ({"originalTimestamp": "2024-01-02T00:00:00Z"}, BASE_MS + 86_400_000),
        ({"receivedAt": "2024-01-03T00:00:00Z"}, BASE_MS + 2 * 86_400_000),
        (
            {"originalTimestamp": "2024-01-02T00:00:00Z", "receivedAt": "2024-01-03T00:00:00Z"},
            BASE_MS + 86_400_000,
        ),
        (
            {"sentAt": "2024-01-05T00:00:00Z", "receivedAt": "2024-01-03T00:00:00Z"},
            BASE_MS + 2 * 86_400_000,
        ),
    ],
)
def test_time_falls_back_to_original_timestamp_then_received_at(
    fields: dict[str, str], expected_ms: int
) -> None:
    assert accepted(encode(timestamp=None, **fields)).timestamp_ms == expected_ms


def test_timestamp_wins_over_the_fallbacks() -> None:
    raw = encode(originalTimestamp="2024-01-02T00:00:00Z", receivedAt="2024-01-03T00:00:00Z")
    assert accepted(raw).timestamp_ms == BASE_MS


@pytest.mark.parametrize(
    ("text", "expected_ms"),
    [
        ("2024-01-01T02:00:00+02:00", BASE_MS),
        ("2024-01-01T00:00:00.123Z", BASE_MS + 123),
        ("2024-01-01T00:00:00.123999Z", BASE_MS + 123),
        ("2024-01-01T00:00:00", BASE_MS),  # naive means UTC, as Segment does
    ],
)
def test_timestamps_become_utc_epoch_milliseconds(text: str, expected_ms: int) -> None:
    assert accepted(encode(timestamp=text)).timestamp_ms == expected_ms


# --- event time: the device's clock corrected, absurd and future times refused ----------------

HOUR_MS = 3_600_000


@pytest.mark.parametrize(
    ("sent", "received", "expected_ms"),
    [
        # device an hour slow: sent 2 s after the event, received 1 s after sending
        ("2024-01-01T00:00:02Z", "2024-01-01T01:00:03Z", BASE_MS + HOUR_MS + 1_000),
        # device three days fast, a batch that waited 90 s on it
        ("2024-01-01T00:01:30Z", "2023-12-29T00:01:30.250Z", BASE_MS - 72 * HOUR_MS + 250),
        # device clock right: only the network delay is lost
        ("2024-01-01T00:00:00.500Z", "2024-01-01T00:00:00.700Z", BASE_MS + 200),
    ],
)
def test_a_skewed_device_clock_is_corrected(sent: str, received: str, expected_ms: int) -> None:
    event = accepted(encode(sentAt=sent, receivedAt=received))
    assert event.timestamp_ms == expected_ms
    assert event.received_at_ms is not None


def test_a_device_clock_reset_to_1970_is_rescued_by_the_correction() -> None:
    raw = encode(
        timestamp="1970-01-01T00:00:10Z",
        sentAt="1970-01-01T00:00:15Z",
        receivedAt="2024-01-01T00:00:06Z",
    )
    assert accepted(raw).timestamp_ms == BASE_MS + 1_000


def test_original_timestamp_is_corrected_like_timestamp() -> None:
    raw = encode(
        timestamp=None,
        originalTimestamp="2024-01-01T00:00:00Z",
        sentAt="2024-01-01T00:00:02Z",
        receivedAt="2024-01-01T01:00:03Z",
    )
    assert accepted(raw).timestamp_ms == BASE_MS + HOUR_MS + 1_000


def test_an_event_already_corrected_by_segment_is_not_corrected_again() -> None:
    # Segment's own output: `timestamp` = receivedAt - (sentAt - originalTimestamp).
    raw = encode(
        timestamp="2024-01-01T01:00:01Z",
        originalTimestamp="2024-01-01T00:00:00Z",
        sentAt="2024-01-01T00:00:02Z",
        receivedAt="2024-01-01T01:00:03Z",
    )
    assert accepted(raw).timestamp_ms == BASE_MS + HOUR_MS + 1_000


def test_a_server_side_event_without_sent_at_is_not_corrected() -> None:
    event = accepted(encode(receivedAt="2024-01-01T00:03:00Z"))
    assert event.timestamp_ms == BASE_MS
    assert event.received_at_ms == BASE_MS + 180_000


def test_sent_at_without_received_at_changes_nothing() -> None:
    # The generator's shape: client events as they leave the device.
    event = accepted(encode(sentAt="2024-01-01T05:00:00Z"))
    assert event.timestamp_ms == BASE_MS
    assert event.received_at_ms is None


def test_an_event_timed_by_received_at_is_not_corrected() -> None:
    raw = encode(timestamp=None, sentAt="2023-06-01T00:00:00Z", receivedAt="2024-01-01T00:00:00Z")
    assert accepted(raw).timestamp_ms == BASE_MS


def test_far_future_events_are_refused_relative_to_received_at() -> None:
    letter = rejected(encode(timestamp="2024-01-02T00:00:00Z", receivedAt="2024-01-01T00:00:00Z"))
    assert letter.reason is DeadLetterReason.FUTURE_TIMESTAMP
    assert "86400000 ms after receivedAt" in letter.message


def test_without_received_at_only_plausibility_bounds_the_future() -> None:
    assert accepted(encode(timestamp="2099-12-31T23:59:59Z")).received_at_ms is None


@pytest.mark.parametrize("max_future_ms", [MAX_FUTURE_MS, 0, 1, 86_400_000])
def test_max_future_ms_is_inclusive(max_future_ms: int) -> None:
    received = ms_to_iso(BASE_MS - max_future_ms)
    just_ahead = ms_to_iso(BASE_MS - max_future_ms - 1)
    assert accepted(encode(receivedAt=received), max_future_ms=max_future_ms)
    letter = rejected(encode(receivedAt=just_ahead), max_future_ms=max_future_ms)
    assert letter.reason is DeadLetterReason.FUTURE_TIMESTAMP


def test_max_future_ms_applies_to_the_corrected_time() -> None:
    # Device an hour slow: the raw timestamp is an hour behind receivedAt, the corrected one
    # 10 minutes ahead of it (stamped after it was sent).
    raw = encode(sentAt="2023-12-31T23:50:00Z", receivedAt="2024-01-01T00:50:00Z")
    assert rejected(raw).reason is DeadLetterReason.FUTURE_TIMESTAMP
    assert accepted(raw, max_future_ms=10 * 60_000).timestamp_ms == BASE_MS + HOUR_MS


def test_the_default_future_limit_is_five_minutes() -> None:
    assert MAX_FUTURE_MS == 5 * 60_000


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("1999-12-31T23:59:59.999Z", False),
        ("2000-01-01T00:00:00Z", True),
        ("2000-01-01T01:00:00+01:00", True),
        ("2000-01-01T00:59:59.999+01:00", False),
        ("2100-01-01T00:00:00Z", True),
        ("2100-01-01T00:00:00.001Z", False),
        ("9999-12-31T23:59:59-23:59", False),  # beyond `datetime`: still a dead letter
    ],
)
def test_plausible_times_are_2000_to_2100_inclusive(text: str, ok: bool) -> None:
    result = decode_event(encode(timestamp=text))
    if ok:
        assert isinstance(result, Event)
    else:
        assert isinstance(result, DeadLetter)
        assert result.reason is DeadLetterReason.IMPLAUSIBLE_TIMESTAMP


def test_an_implausible_received_at_is_refused_even_with_a_good_timestamp() -> None:
    letter = rejected(encode(receivedAt="2100-01-02T00:00:00Z"))
    assert letter.reason is DeadLetterReason.IMPLAUSIBLE_TIMESTAMP
    assert letter.message.startswith("receivedAt")


def test_generated_events_keep_their_timestamps() -> None:
    # The generator sends `sentAt` but no `receivedAt`: nothing to correct, nothing refused.
    for doc in itertools.islice(generate_events(GeneratorConfig(seed=2, users=20)), 500):
        event = accepted(orjson.dumps(doc))
        assert event.timestamp_ms == iso_to_ms(doc["timestamp"])


def test_unknown_top_level_fields_are_ignored() -> None:
    plain = accepted(encode())
    extra = accepted(
        encode(channel="server", version=2, integrations={"All": True}, writeKey=None, zzz=[1, {}])
    )
    assert extra == plain


def test_exactly_32_kib_is_accepted_and_one_more_byte_is_too_large() -> None:
    assert MAX_EVENT_BYTES == 32 * 1024
    accepted(padded_to(MAX_EVENT_BYTES))
    letter = rejected(padded_to(MAX_EVENT_BYTES + 1))
    assert letter.reason is DeadLetterReason.TOO_LARGE
    assert letter.payload_size == MAX_EVENT_BYTES + 1


def test_size_limit_is_configurable() -> None:
    raw = encode()
    accepted(raw, max_bytes=len(raw))
    assert rejected(raw, max_bytes=len(raw) - 1).reason is DeadLetterReason.TOO_LARGE


def test_size_is_checked_before_anything_else() -> None:
    assert rejected(b"\xff" * (MAX_EVENT_BYTES + 1)).reason is DeadLetterReason.TOO_LARGE


@pytest.mark.parametrize("length", [10_000, 10_001, 25_000])
def test_long_property_values_are_opaque_and_accepted(length: int) -> None:
    event = accepted(encode(properties={"description": "d" * length}))
    assert len(event.properties["description"]) == length


def test_a_10000_char_property_key_is_accepted() -> None:
    key = "k" * 10_000
    assert key in accepted(encode(properties={key: 1})).properties


def test_multibyte_text_is_accepted() -> None:
    event = accepted(encode(event="Produkt angesehen ✓", userId="ユーザー"))
    assert event.name == "Produkt angesehen ✓"
    assert event.user_key == "ユーザー"


def test_source_position_is_attached_to_the_event() -> None:
    assert accepted(encode(), source=SOURCE, key=KEY).source == SOURCE


# --- dead-letter records ---------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "reason"), INVALID_EVENTS, ids=[r for _, r in INVALID_EVENTS])
def test_dead_letters_keep_source_position_and_key(raw: bytes, reason: str) -> None:
    letter = rejected(raw, source=SOURCE, key=KEY)
    assert letter.source == SOURCE
    assert letter.key == KEY
    assert letter.payload_size == len(raw)
    assert letter.payload == raw[:MAX_PAYLOAD_BYTES_KEPT]


def test_large_payload_is_truncated_but_its_full_size_recorded() -> None:
    raw = padded_to(MAX_EVENT_BYTES + 500)
    letter = rejected(raw)
    assert MAX_PAYLOAD_BYTES_KEPT == 4096
    assert len(letter.payload) == MAX_PAYLOAD_BYTES_KEPT
    assert letter.payload == raw[:MAX_PAYLOAD_BYTES_KEPT]
    assert letter.payload_size == len(raw)
    assert letter.to_dict()["payload_truncated"] is True


def test_small_payload_is_kept_whole() -> None:
    raw = encode(type="launch")
    letter = rejected(raw)
    assert letter.payload == raw
    assert letter.to_dict()["payload_truncated"] is False


def test_message_is_bounded() -> None:
    letter = rejected(encode(properties={"k" * 10_001: 1}))
    assert 0 < len(letter.message) <= 500


def test_dead_letter_bytes_are_json_with_base64_payload() -> None:
    raw = b"\xff\xfe\x00 not utf-8 at all"
    letter = rejected(raw, source=SOURCE, key=b"\x00\xffkey")
    doc = orjson.loads(letter.to_bytes())
    assert doc == {
        "schema": DEADLETTER_SCHEMA,
        "reason": "invalid_encoding",
        "message": letter.message,
        "payload_b64": base64.b64encode(raw).decode("ascii"),
        "payload_size": len(raw),
        "payload_truncated": False,
        "source": {"topic": "events", "partition": 3, "offset": 41},
        "key_b64": base64.b64encode(b"\x00\xffkey").decode("ascii"),
    }
    assert base64.b64decode(doc["payload_b64"]) == raw


def test_dead_letter_bytes_without_source_or_key() -> None:
    doc = orjson.loads(rejected(b"[]").to_bytes())
    assert doc["source"] is None
    assert doc["key_b64"] is None
    assert base64.b64decode(doc["payload_b64"]) == b"[]"


def test_truncated_dead_letter_bytes_decode_to_the_kept_prefix() -> None:
    raw = b"\xff" * (MAX_EVENT_BYTES + 10)
    doc = orjson.loads(rejected(raw).to_bytes())
    assert base64.b64decode(doc["payload_b64"]) == raw[:MAX_PAYLOAD_BYTES_KEPT]
    assert doc["payload_size"] == len(raw)
    assert doc["payload_truncated"] is True


# --- never raises ----------------------------------------------------------------------------

_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=30)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats()  # orjson writes NaN and infinities as null
    | _text
)
json_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_text, children, max_size=5),
    max_leaves=25,
)
_FIELDS = (
    "type",
    "messageId",
    "userId",
    "anonymousId",
    "previousId",
    "timestamp",
    "originalTimestamp",
    "receivedAt",
    "sentAt",
    "event",
    "name",
    "properties",
    "context",
    "traits",
)
_plausible = st.one_of(
    json_values,
    st.sampled_from(["track", "page", "screen", "identify", "alias", "", "u1", "Product Viewed"]),
    st.sampled_from(
        ["2024-01-01T00:00:00Z", "2024-01-01", "not a time", "1970-01-01T00:00:00+14:00"]
    ),
    st.integers(min_value=-(2**40), max_value=2**40),
)
event_like = st.dictionaries(st.sampled_from(_FIELDS), _plausible, max_size=len(_FIELDS))
_SETTINGS = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def _decodes_without_raising(raw: bytes) -> None:
    result = decode_event(raw, source=SOURCE, key=KEY)
    assert isinstance(result, Event | DeadLetter)
    if isinstance(result, DeadLetter):
        assert result.source == SOURCE
        orjson.loads(result.to_bytes())
    else:
        assert result.user_key
        assert result.message_id


@_SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    _decodes_without_raising(raw)


@_SETTINGS
@given(json_values)
def test_arbitrary_json_values_never_raise(value: object) -> None:
    _decodes_without_raising(orjson.dumps(value))


@_SETTINGS
@given(event_like)
def test_arbitrary_event_shaped_objects_never_raise(doc: dict[str, object]) -> None:
    _decodes_without_raising(orjson.dumps(doc))

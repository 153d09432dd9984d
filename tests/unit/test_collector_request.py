"""The collector's pure parts: write keys, gzip, batches, limits, stamping, rate limits."""

from __future__ import annotations

import base64
import gzip

import orjson
import pytest

from agents.collector.errors import Refused
from agents.collector.ratelimit import RateLimiter
from agents.collector.request import (
    ROUTE_TYPES,
    basic_auth_key,
    inflate,
    parse_body,
    records_of,
    write_key_of,
)
from stream import Event, decode_event

RECEIVED = "2024-05-01T12:00:00.000Z"
LIMIT = 32 * 1024


def _basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _refused(call: object, *args: object) -> Refused:
    assert callable(call)
    with pytest.raises(Refused) as info:
        call(*args)
    return info.value


# -- write keys ---------------------------------------------------------------------------------


def test_basic_auth_key_is_the_user_name() -> None:
    assert basic_auth_key(_basic("wk")) == "wk"
    assert basic_auth_key(_basic("wk", "ignored")) == "wk"
    assert basic_auth_key("basic " + base64.b64encode(b"wk:").decode()) == "wk"


@pytest.mark.parametrize(
    "header", [None, "", "Basic", "Basic !!!", "Bearer abc", _basic(""), "Basic " + "//79"]
)
def test_malformed_or_other_authorization_gives_no_key(header: str | None) -> None:
    assert basic_auth_key(header) is None


def test_header_key_wins_over_the_body_key() -> None:
    assert write_key_of(_basic("from-header"), {"writeKey": "from-body"}) == "from-header"
    assert write_key_of(None, {"writeKey": "from-body"}) == "from-body"
    assert write_key_of(None, {"writeKey": 5}) is None
    assert write_key_of(None, None) is None


# -- bodies -------------------------------------------------------------------------------------


def test_gzip_is_detected_by_magic_bytes_whatever_the_labels() -> None:
    body = b'{"batch": []}'
    assert inflate(gzip.compress(body), None, 1000) == body
    assert inflate(gzip.compress(body), "gzip", 1000) == body
    assert inflate(body, None, 1000) == body


def test_content_encoding_gzip_on_a_plain_body_is_refused() -> None:
    assert _refused(inflate, b'{"a": 1}', "gzip", 1000).code == "invalid_gzip"


def test_truncated_or_corrupt_gzip_is_refused() -> None:
    packed = gzip.compress(b'{"batch": []}' * 10)
    assert _refused(inflate, packed[:-12], None, 1000).code == "invalid_gzip"
    assert _refused(inflate, packed[:10] + b"garbage" * 3, None, 1000).code == "invalid_gzip"


def test_a_gzip_bomb_is_refused_without_inflating_it() -> None:
    bomb = gzip.compress(b" " * 50_000_000)  # ~50 KB on the wire, 50 MB inflated
    refused = _refused(inflate, bomb, None, 500 * 1024)
    assert (refused.status, refused.code) == (400, "batch_too_large")


def test_plain_bodies_over_the_limit_are_refused() -> None:
    assert _refused(inflate, b"x" * 1001, None, 1000).code == "batch_too_large"
    assert inflate(b"x" * 1000, None, 1000) == b"x" * 1000


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"{nope", "malformed_json"), (b"[1]", "not_an_object"), (b"\xff", "malformed_json")],
)
def test_bodies_must_be_json_objects(body: bytes, code: str) -> None:
    assert _refused(parse_body, body).code == code


# -- routes, batches, stamping ------------------------------------------------------------------


def test_every_route_and_short_form() -> None:
    assert ROUTE_TYPES["batch"] is None and ROUTE_TYPES["b"] is None
    for long, short in [("track", "t"), ("page", "p"), ("screen", "s"), ("identify", "i")]:
        assert ROUTE_TYPES[long] == ROUTE_TYPES[short] == long
    assert ROUTE_TYPES["alias"] == ROUTE_TYPES["a"] == "alias"
    assert ROUTE_TYPES["group"] == ROUTE_TYPES["g"] == "group"


def _events(doc: dict[str, object], route: str | None) -> list[dict[str, object]]:
    return [orjson.loads(r.value) for r in records_of(doc, route, RECEIVED, LIMIT)]


def test_single_event_routes_set_the_type_and_stamp_received_at() -> None:
    doc = {"type": "page", "userId": "u1", "event": "E", "messageId": "m", "writeKey": "secret"}
    [event] = _events(doc, "track")
    assert event["type"] == "track"
    assert event["receivedAt"] == RECEIVED
    assert "writeKey" not in event  # a secret is never stored in the topic


def test_client_received_at_is_overwritten() -> None:
    [event] = _events({"userId": "u", "messageId": "m", "receivedAt": "1999-01-01T00:00:00Z"}, "p")
    assert event["receivedAt"] == RECEIVED


def test_a_batch_keeps_item_types_and_merges_shared_fields() -> None:
    doc = {
        "batch": [
            {"type": "page", "userId": "u1", "messageId": "m1", "context": {"ip": "own"}},
            {"type": "track", "anonymousId": "a1", "messageId": "m2", "event": "E",
             "sentAt": "2024-05-01T11:59:59Z"},
        ],
        "context": {"ip": "shared", "locale": "de-DE"},
        "sentAt": "2024-05-01T11:59:58Z",
        "writeKey": "secret",
    }  # fmt: skip
    first, second = _events(doc, None)
    assert (first["type"], second["type"]) == ("page", "track")
    assert first["context"] == {"ip": "own", "locale": "de-DE"}  # the item's own value wins
    assert second["context"] == {"ip": "shared", "locale": "de-DE"}
    assert first["sentAt"] == "2024-05-01T11:59:58Z"
    assert second["sentAt"] == "2024-05-01T11:59:59Z"
    assert all(e["receivedAt"] == RECEIVED and "writeKey" not in e for e in (first, second))


def test_records_are_keyed_by_user_key_as_the_worker_reads_it() -> None:
    doc = {
        "batch": [
            {"type": "page", "userId": "u1", "anonymousId": "a1", "messageId": "1"},
            {"type": "page", "userId": "", "anonymousId": "a2", "messageId": "2"},
            {"type": "page", "userId": 42, "messageId": "3"},
            {"type": "page", "messageId": "4"},
        ]
    }
    keys = [r.key for r in records_of(doc, None, RECEIVED, LIMIT)]
    assert keys == [b"u1", b"a2", b"42", None]  # None: the worker dead-letters it


def test_stamped_events_decode_with_the_device_clock_corrected() -> None:
    doc = {"userId": "u", "event": "E", "messageId": "m", "timestamp": "2024-05-01T10:59:58Z",
           "sentAt": "2024-05-01T11:00:00Z"}  # fmt: skip
    [record] = records_of(doc, "track", RECEIVED, LIMIT)  # device clock one hour slow
    event = decode_event(record.value, key=record.key)
    assert isinstance(event, Event)
    assert (
        event.timestamp_ms
        == decode_event(
            b'{"type":"track","event":"E","messageId":"m","userId":"u",'
            b'"timestamp":"2024-05-01T11:59:58Z"}'
        ).timestamp_ms
    )  # type: ignore[union-attr]


def test_a_missing_message_id_is_derived_from_the_content() -> None:
    doc = {"userId": "u", "event": "E", "properties": {"a": 1}}
    [first] = _events(dict(doc), "track")
    [retry] = records_of(dict(doc), "track", "2030-01-01T00:00:00.000Z", LIMIT)
    again = orjson.loads(retry.value)
    [other] = _events({**doc, "properties": {"a": 2}}, "track")
    assert str(first["messageId"]).startswith("lp-")
    assert first["messageId"] == again["messageId"]  # a retry is applied once by the worker
    assert other["messageId"] != first["messageId"]


def test_group_calls_are_forwarded() -> None:
    [event] = _events({"userId": "u", "groupId": "g1", "messageId": "m"}, "group")
    assert event["type"] == "group"


@pytest.mark.parametrize(
    "doc", [{}, {"batch": {"not": "a list"}}, {"batch": [{"type": "page"}, "text"]}]
)
def test_malformed_batches_are_refused(doc: dict[str, object]) -> None:
    assert _refused(records_of, doc, None, RECEIVED, LIMIT).code == "invalid_batch"


def test_an_empty_batch_is_nothing_to_send() -> None:
    assert records_of({"batch": []}, None, RECEIVED, LIMIT) == []


def test_an_event_over_the_limit_as_stored_is_refused() -> None:
    small = {"type": "track", "userId": "u", "event": "E", "messageId": "m"}
    padding = LIMIT - len(orjson.dumps({**small, "properties": {"p": ""}, "receivedAt": RECEIVED}))
    fits = {**small, "properties": {"p": "x" * padding}}
    assert len(records_of(fits, "track", RECEIVED, LIMIT)[0].value) == LIMIT
    over = {**small, "properties": {"p": "x" * (padding + 1)}}
    refused = _refused(records_of, {"batch": [small, over]}, None, RECEIVED, LIMIT)
    assert (refused.status, refused.code) == (400, "event_too_large")
    assert "event 1 " in refused.message


# -- rate limits --------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_a_key_gets_its_burst_then_its_rate() -> None:
    clock = _Clock()
    limiter = RateLimiter(rate_per_s=100.0, burst=50, clock=clock)
    assert limiter.acquire("k", 50) == 0.0
    assert limiter.acquire("k", 10) == pytest.approx(0.1)
    clock.now_s += 0.1
    assert limiter.acquire("k", 10) == 0.0
    assert limiter.acquire("k", 1) > 0


def test_keys_are_limited_separately() -> None:
    limiter = RateLimiter(rate_per_s=1.0, burst=1, clock=_Clock())
    assert limiter.acquire("a", 1) == 0.0
    assert limiter.acquire("a", 1) > 0
    assert limiter.acquire("b", 1) == 0.0


def test_a_batch_larger_than_the_burst_passes_and_leaves_debt() -> None:
    clock = _Clock()
    limiter = RateLimiter(rate_per_s=10.0, burst=5, clock=clock)
    assert limiter.acquire("k", 25) == 0.0  # allowed on a full bucket
    assert limiter.acquire("k", 1) == pytest.approx(2.1)  # 20 in debt, then 1 more
    clock.now_s += 2.1
    assert limiter.acquire("k", 1) == 0.0


def test_the_sustained_rate_holds_over_time() -> None:
    clock = _Clock()
    limiter = RateLimiter(rate_per_s=50.0, burst=10, clock=clock)
    passed = 0
    for _ in range(10_000):  # 10 s of a request of one event every millisecond
        passed += limiter.acquire("k", 1) == 0.0
        clock.now_s += 0.001
    assert 500 <= passed <= 511

"""The Segment tracking API's requests, as pure functions: no aiohttp, no Kafka, no clock.

A request becomes records for the events topic in four steps, each refusing with a typed
:class:`~agents.collector.errors.Refused` (HTTP 400/401) instead of passing bad input on:

1. :func:`inflate`: the body, gunzipped when it starts with gzip's magic bytes or says
   ``Content-Encoding: gzip`` (whatever its ``Content-Type``), never beyond the batch limit;
2. :func:`parse_body`: one JSON object (``text/plain``, form or JSON: the label is ignored);
3. :func:`write_key_of`: HTTP Basic auth (the key as user name), else ``writeKey`` in the body;
4. :func:`records_of`: the events of the request (``batch`` items, or the body itself), each
   with ``type`` set by a single-event route, the batch's ``context``/``integrations``/``sentAt``
   merged in, no ``writeKey``, a ``messageId`` (assigned when absent), ``receivedAt`` stamped,
   serialized and keyed by user key, and at most ``max_event_bytes`` as stored.

What is valid as an event (required fields, times, names) is the worker's business: it turns
invalid events into dead letters with typed reasons, so the collector forwards them.

>>> records = records_of({"userId": 7, "event": "Product Viewed", "messageId": "m1"},
...                      "track", "2024-01-01T00:00:00.000Z", 32 * 1024)
>>> records[0].key, orjson.loads(records[0].value)["type"]
(b'7', 'track')
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from dataclasses import dataclass
from typing import Any

import orjson

from agents.collector.errors import Refused

__all__ = [
    "GZIP_MAGIC",
    "ROUTE_TYPES",
    "Record",
    "basic_auth_key",
    "inflate",
    "parse_body",
    "records_of",
    "user_key",
    "write_key_of",
]

#: Path segment under ``/v1/`` -> the type its events get (None: a batch, items keep theirs).
#: The short forms are analytics.js's (Segment's browser library).
ROUTE_TYPES: dict[str, str | None] = {
    "batch": None,
    "b": None,
    **{name: name for name in ("track", "page", "screen", "identify", "alias", "group")},
    **{name[0]: name for name in ("track", "page", "screen", "identify", "alias", "group")},
}

GZIP_MAGIC = b"\x1f\x8b"

#: Batch-level fields that apply to every item that does not set its own.
_BATCH_DEFAULTS = ("sentAt",)
_BATCH_MERGED = ("context", "integrations")


@dataclass(frozen=True, slots=True)
class Record:
    """One event as it goes to the events topic: the user key and the event's JSON."""

    key: bytes | None
    value: bytes


def basic_auth_key(authorization: str | None) -> str | None:
    """The write key in an ``Authorization: Basic base64(key:)`` header, else None.

    >>> basic_auth_key("Basic " + base64.b64encode(b"wk-1:").decode())
    'wk-1'
    >>> basic_auth_key("Bearer abc") is None, basic_auth_key("Basic !!") is None
    (True, True)
    """
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


def inflate(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body, gunzipped if it is gzip, refused if larger than ``limit`` bytes.

    Decompression stops after ``limit + 1`` bytes, so a gzip bomb costs at most that much.
    """
    says_gzip = "gzip" in (content_encoding or "").lower()
    if not (says_gzip or body.startswith(GZIP_MAGIC)):
        if len(body) > limit:
            raise _too_large(len(body), limit)
        return body
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing only
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise Refused(400, "invalid_gzip", f"body is not valid gzip: {exc}") from None
    if len(out) > limit:
        raise _too_large(len(out), limit, "more than ")
    if not inflater.eof:
        raise Refused(400, "invalid_gzip", "gzip body is truncated")
    return out


def _too_large(size: int, limit: int, more: str = "") -> Refused:
    return Refused(
        400, "batch_too_large", f"request body is {more}{size} bytes; the limit is {limit}"
    )


def parse_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, whatever its ``Content-Type`` said."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Refused(400, "malformed_json", f"body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise Refused(400, "not_an_object", "body must be a JSON object")
    return doc


def write_key_of(authorization: str | None, doc: dict[str, Any] | None) -> str | None:
    """The request's write key: Basic auth first, else the body's ``writeKey``."""
    key = basic_auth_key(authorization)
    if key is None and doc is not None:
        body_key = doc.get("writeKey")
        key = body_key if isinstance(body_key, str) and body_key else None
    return key


def records_of(
    doc: dict[str, Any], route_type: str | None, received_at: str, max_event_bytes: int
) -> list[Record]:
    """The request's events, ready for the events topic (see the module's docstring)."""
    items = _items(doc, route_type)
    events = [_prepare(item, doc, route_type, received_at) for item in items]
    return [_record(index, event, max_event_bytes) for index, event in enumerate(events)]


def _items(doc: dict[str, Any], route_type: str | None) -> list[dict[str, Any]]:
    if route_type is not None:
        return [doc]
    batch = doc.get("batch")
    if not isinstance(batch, list):
        raise Refused(400, "invalid_batch", "`batch` must be an array of events")
    for index, item in enumerate(batch):
        if not isinstance(item, dict):
            raise Refused(400, "invalid_batch", f"batch item {index} is not a JSON object")
    return batch


def _prepare(
    item: dict[str, Any], doc: dict[str, Any], route_type: str | None, received_at: str
) -> dict[str, Any]:
    event = {k: v for k, v in item.items() if k != "writeKey"}  # a secret: never stored
    if route_type is not None:
        event["type"] = route_type
    if not event.get("messageId"):
        event["messageId"] = _content_id(event)
    if route_type is None:
        _merge_batch_fields(event, doc)
    event["receivedAt"] = received_at  # the collector's clock, whatever the client claimed
    return event


def _content_id(event: dict[str, Any]) -> str:
    """A ``messageId`` from the event's content, so a retried request gets the same id (and the
    worker applies it once). Computed before ``sentAt`` and ``receivedAt``, which a retry changes.
    """
    digest = hashlib.blake2b(orjson.dumps(event, option=orjson.OPT_SORT_KEYS), digest_size=16)
    return "lp-" + digest.hexdigest()


def _merge_batch_fields(event: dict[str, Any], doc: dict[str, Any]) -> None:
    for name in _BATCH_DEFAULTS:
        if name not in event and name in doc:
            event[name] = doc[name]
    for name in _BATCH_MERGED:
        shared = doc.get(name)
        if isinstance(shared, dict):
            own = event.get(name)
            event[name] = {**shared, **own} if isinstance(own, dict) else dict(shared)


def _record(index: int, event: dict[str, Any], max_event_bytes: int) -> Record:
    value = orjson.dumps(event)
    if len(value) > max_event_bytes:
        raise Refused(
            400,
            "event_too_large",
            f"event {index} is {len(value)} bytes as stored; the limit is {max_event_bytes}",
        )
    key = user_key(event)
    return Record(None if key is None else key.encode(), value)


def user_key(event: dict[str, Any]) -> str | None:
    """``userId``, else ``anonymousId``, as the worker reads them (numbers as text, ``""`` as
    absent); None when neither is usable (the worker dead-letters it as ``missing_identity``).

    >>> user_key({"userId": "", "anonymousId": 12}), user_key({"userId": True})
    ('12', None)
    """
    for name in ("userId", "anonymousId"):
        value = event.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and value:
            return value
    return None

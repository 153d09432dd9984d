"""Profile snapshots: byte-identical round trips, and corrupt state refused with SnapshotError."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from stream.profile import PROFILE_SCHEMA, CartLine

T0 = 1_700_000_000_000


def round_trip(profile: Profile) -> Profile:
    data = profile.to_bytes()
    restored = Profile.from_bytes(data)
    assert restored.to_dict() == profile.to_dict()
    assert restored.to_bytes() == data
    assert restored == profile
    return restored


def rich() -> Profile:
    return Profile(
        user_key="user-ü-1",
        user_id="user-ü-1",
        anonymous_id="anon-42",
        counts={"Product Viewed": 12, "page": 3, "track:other": 1, "Order Completed": 2},
        first_seen_ms=T0 - 86_400_000,
        last_seen_ms=T0,
        cart={"p1": CartLine(2, 19.99), "SKU-9": CartLine(1, 5.0), "p3": CartLine(1000, 0.1)},
        category_views={"shoes": 7, "bücher": 2, "électronique": 1},
        views_since_add=4,
        recent_messages=[2**63 - 1, 0, 123456789],
        applied={"events:0": 17, "events:11": 2**40},
    )


def test_empty_profile_round_trips() -> None:
    empty = Profile(user_key="u")
    restored = round_trip(empty)
    assert restored.first_seen_ms is None
    assert restored.cart == {}


def test_rich_profile_round_trips() -> None:
    restored = round_trip(rich())
    assert restored.cart["SKU-9"].price == 5.0
    assert isinstance(restored.cart["SKU-9"].price, float)
    assert restored.applied == {"events:0": 17, "events:11": 2**40}
    assert restored.cart_value() == rich().cart_value()


def test_profile_built_by_the_step_round_trips() -> None:
    events = [
        Event("m1", EventType.PAGE, "page", "a1", T0, anonymous_id="a1"),
        Event(
            "m2",
            EventType.TRACK,
            "Product Viewed",
            "a1",
            T0 + 1,
            anonymous_id="a1",
            properties={"category": "Shoes"},
            source=SourcePosition("events", 4, 9),
        ),
        Event(
            "m3",
            EventType.TRACK,
            "Product Added",
            "a1",
            T0 + 2,
            user_id="a1",
            properties={"product_id": "p1", "price": "12.345", "quantity": 3},
        ),
    ]
    profile: Profile | None = None
    for event in events:
        profile, _ = step(profile, event, StepConfig())
    assert profile is not None and profile.cart and profile.applied and profile.category_views
    round_trip(profile)


def test_equal_profiles_give_equal_bytes_whatever_the_insertion_order() -> None:
    one = rich()
    other = rich()
    other.counts = dict(reversed(list(other.counts.items())))
    other.category_views = dict(reversed(list(other.category_views.items())))
    other.applied = dict(reversed(list(other.applied.items())))
    assert other.to_bytes() == one.to_bytes()


def test_to_bytes_has_the_schema_tag() -> None:
    assert orjson.loads(Profile(user_key="u").to_bytes())["schema"] == PROFILE_SCHEMA


def test_copy_is_deep() -> None:
    original = rich()
    before = original.to_bytes()
    clone = original.copy()
    clone.counts["page"] += 1
    clone.cart["p1"].quantity += 1
    clone.category_views["new"] = 1
    clone.recent_messages.append(5)
    clone.applied["events:0"] = 99
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


GARBAGE: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("text", b"not a profile"),
    ("binary", b"\xff\xfe\x00\x01"),
    ("truncated", rich().to_bytes()[:-3]),
    ("JSON list", b"[]"),
    ("JSON null", b"null"),
    ("JSON number", b"42"),
    ("JSON string", b'"profile.v1"'),
    ("empty object", b"{}"),
    ("older schema", _with(schema="profile.v1")),
    ("newer schema", _with(schema="profile.v3")),
    ("schema absent", _without("schema")),
    *[(f"{key} absent", _without(key)) for key in _valid_doc() if key != "schema"],
    ("cart a list", _with(cart=[])),
    ("cart line a scalar", _with(cart={"p1": 3})),
    ("cart line too short", _with(cart={"p1": [3]})),
    ("cart quantity text", _with(cart={"p1": ["three", 1.0]})),
    ("applied a list", _with(applied=[])),
    ("applied null", _with(applied=None)),
    ("applied offset not a number", _with(applied={"events:0": "x"})),
    ("counts a number", _with(counts=5)),
    ("recent_messages null", _with(recent_messages=None)),
    ("recent_messages text", _with(recent_messages=["abc"])),
    ("views_since_add text", _with(views_since_add="many")),
]


@pytest.mark.parametrize("data", [d for _, d in GARBAGE], ids=[n for n, _ in GARBAGE])
def test_garbage_or_wrong_schema_raises_snapshot_error(data: bytes) -> None:
    with pytest.raises(SnapshotError):
        Profile.from_bytes(data)


def test_snapshot_error_is_a_stream_error_and_a_value_error() -> None:
    with pytest.raises(StreamError):
        Profile.from_bytes(b"[]")
    with pytest.raises(ValueError, match="schema"):
        Profile.from_bytes(_with(schema="profile.v0"))


# --- property: stepped profiles always round-trip --------------------------------------------

_NAMES = [
    "Product Viewed",
    "Product Added",
    "Product Removed",
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
        "price": _values,
        "quantity": _values,
    },
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
                timestamp_ms=draw(st.integers(min_value=0, max_value=2 * T0)),
                user_id=draw(st.sampled_from([None, "u"])),
                anonymous_id=draw(st.sampled_from([None, "a1", "a2"])),
                properties=draw(_properties),
                source=source,
            )
        )
    return out


_CONFIGS = st.sampled_from(
    [StepConfig(), StepConfig(dedupe_window=2, max_cart_lines=2, max_categories=2)]
)


@settings(max_examples=60, deadline=None, database=None)
@given(events(), _CONFIGS)
def test_stepped_profiles_always_round_trip_byte_identically(
    stream: list[Event], config: StepConfig
) -> None:
    profile = Profile(user_key="u")
    for event in stream:
        profile, _ = step(profile, event, config)
        restored = round_trip(profile)
        # the restored profile behaves exactly like the original on the next event
        probe = Event("probe", EventType.TRACK, "Product Viewed", "u", T0)
        after_original, out_original = step(profile, probe, config)
        after_restored, out_restored = step(restored, probe, config)
        assert after_restored.to_bytes() == after_original.to_bytes()
        assert out_restored == out_original

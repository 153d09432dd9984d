"""Hostile property and context values never crash the step nor poison a feature, and each
refused value is counted exactly once per event."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream import Event, EventType, Profile, StepConfig, step
from stream.features import feature_vector

T0 = 1_700_000_000_000
CFG = StepConfig()
LONG = "x" * 10_000

hostile = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, -1, -0.01, 10**30, 2**63, "NaN", "inf", "-5", "1e400"]),
    st.sampled_from([LONG, "", "   ", "\x00", "'; DROP TABLE users; --", "<script>"]),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
sane_price = st.integers(0, 50_000).map(lambda cents: cents / 100)
value = st.one_of(hostile, sane_price, st.sampled_from(["shoes", "Books", "p-1", 3]))
NAMES = ("Product Viewed", "Product Added", "Product Removed", "Order Completed", "page")
FIELDS = ("price", "quantity", "category", "brand", "product_id", "revenue", "total")


@st.composite
def events(draw: st.DrawFn) -> list[Event]:
    out = []
    t = T0
    for i in range(draw(st.integers(1, 25))):
        t += draw(st.integers(0, 3_600_000))
        name = draw(st.sampled_from(NAMES))
        props = {f: draw(value) for f in draw(st.sets(st.sampled_from(FIELDS), max_size=5))}
        context = {
            "device": {"type": draw(value)},
            "os": {"name": draw(value)},
            "locale": draw(value),
            "timezone": draw(st.sampled_from(["Europe/Paris", "Mars/Olympus", LONG, 7])),
        }
        kind = EventType.PAGE if name == "page" else EventType.TRACK
        out.append(Event(f"m{i}", kind, name, "u1", t, properties=props, context=context))
    return out


def _refusals(event: Event) -> set[str]:
    """The fields a feature reads from ``event`` whose value the sanitizer must refuse."""
    return {f for f, v in event.properties.items() if v is not None and not _acceptable(f, v)}


def _acceptable(field: str, value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if field in ("price", "revenue", "total"):
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            return False
        return math.isfinite(number) and 0 <= number <= CFG.max_price
    if field == "quantity":
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            return False
        return math.isfinite(number) and number == int(number) and 1 <= number <= 1000
    if field == "product_id":
        text = str(value).strip() if isinstance(value, int | str) else ""
        return 0 < len(text) <= CFG.max_text_length
    return isinstance(value, str) and 0 < len(value.strip()) <= CFG.max_text_length


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


@settings(max_examples=150, deadline=None)
@given(events())
def test_hostile_values_are_refused_counted_once_and_never_reach_a_feature(
    stream: list[Event],
) -> None:
    profile: Profile | None = None
    for event in stream:
        profile, outputs = step(profile, event, CFG)
        assert len(outputs.decisions) == 1
        refused = {n.removeprefix("sanitized:") for n in outputs.notes if n.startswith("san")}
        assert len(refused) == sum(1 for n in outputs.notes if n.startswith("sanitized:"))
        read = _fields_read(event)
        expected = {f for f in _refusals(event) if f in read}
        assert refused == expected, (event.name, event.properties)
    assert profile is not None
    features = dict(feature_vector(profile, CFG))
    for name, feature in features.items():
        assert _finite(feature), name
        if isinstance(feature, int | float) and not isinstance(feature, bool):
            assert feature >= -1, name  # -1 is "never" for recency
            assert feature < 1e15, name
        if isinstance(feature, str):
            assert len(feature) <= 100, name
    assert features["cart_value"] <= CFG.max_price * 1000 * CFG.max_cart_lines
    # the stored profile is bounded whatever the input
    assert len(profile.to_bytes()) < 20_000
    assert Profile.from_bytes(profile.to_bytes()).to_bytes() == profile.to_bytes()


def _fields_read(event: Event) -> set[str]:
    """Which properties the features read for this event (catalog, cart, affinities, revenue)."""
    props = event.properties
    if event.name == "page":
        return set()
    read = {"price", "category", "brand"}
    read.add("product_id" if "product_id" in props else "sku")
    if event.name in ("Product Added", "Product Removed"):
        read.add("quantity")
    if event.name == "Order Completed":
        read.add("revenue" if "revenue" in props else "total")
    return read


def test_an_unknown_event_name_is_not_stored_in_the_profile() -> None:
    name = "'; DROP TABLE users; -- <script>alert(1)</script>"
    event = Event("m1", EventType.TRACK, name, "u1", T0, properties={"price": 5.0})
    profile, outputs = step(None, event, CFG)
    assert outputs.decisions
    assert b"DROP TABLE" not in profile.to_bytes()
    assert Profile.from_bytes(profile.to_bytes()).pending[0].name == "track:other"

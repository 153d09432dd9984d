"""The allow-list of stored event properties (StepConfig.stored_properties, data minimization)."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream import ConfigError, Event, EventType, Profile, StepConfig, decode_event, step
from stream.catalog import DEFAULT_CATALOG, Catalog, WindowedSpec
from stream.config import DEFAULT_STORED_PROPERTIES, FeatureConfig, parse_properties
from stream.features import feature_vector
from stream.replay import replay
from stream.synthetic import GeneratorConfig, generate_events
from stream.windows import DAY_MS

T0 = 1_700_000_000_000
FULL = StepConfig()
NO_BRAND = StepConfig(stored_properties=DEFAULT_STORED_PROPERTIES - {"brand"})
#: The features a brand can move; every other one must not notice that brands are withheld.
BRAND_FEATURES = frozenset({"top_brand"})
#: Every brand value the events below carry contains this (in any case), and nothing else does.
MARK = "brandmark"


def _synthetic_lines(users: int = 40, days: float = 2.0) -> list[bytes]:
    return [
        orjson.dumps(e) for e in generate_events(GeneratorConfig(seed=5, users=users, days=days))
    ]


def _profile_of(events: list[Event], config: StepConfig) -> tuple[Profile, list[list[str]]]:
    profile, notes = None, []
    for event in events:
        profile, outputs = step(profile, event, config)
        notes.append(list(outputs.notes))
    assert profile is not None
    return profile, notes


def _ev(name: str, props: dict[str, Any], i: int = 0, ts: int = T0) -> Event:
    return Event(f"m{i}", EventType.TRACK, name, "u1", ts + i * 1000, "u1", properties=props)


# --- the default ---


class _Recording(dict[str, Any]):
    """An event's properties that remember every name looked up."""

    seen: set[str]

    def get(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.seen.add(str(key))
        return super().__contains__(key)

    def __getitem__(self, key: str) -> Any:
        self.seen.add(key)
        return super().__getitem__(key)


def _names_read(config: StepConfig, events: list[Event]) -> set[str]:
    seen: set[str] = set()
    profiles: dict[str, Profile] = {}
    for event in events:
        props = _Recording(event.properties)
        props.seen = seen
        event = dataclasses.replace(event, properties=props)
        profiles[event.user_key], _ = step(profiles.get(event.user_key), event, config)
    return seen


def _synthetic_events() -> list[Event]:
    events = [decode_event(line) for line in _synthetic_lines(users=30, days=1.0)]
    decoded = [e for e in events if isinstance(e, Event)]
    # Segment's alternatives (sku without product_id, total without revenue), which the
    # generator never sends alone.
    return [
        *decoded,
        _ev("Product Added", {"sku": "S-1", "price": 3.0}, 1, T0 + 2 * DAY_MS),
        _ev("Order Completed", {"total": 3.0}, 2, T0 + 2 * DAY_MS),
    ]


def test_the_default_allows_exactly_what_the_step_reads() -> None:
    # The step's own reads, traced: a property read but not in the default would be withheld by
    # default (features change), one in the default but never read would be a dead name.
    # decision_id only matches decisions the profile made itself (never stored from the event).
    assert _names_read(FULL, _synthetic_events()) - {"decision_id"} == DEFAULT_STORED_PROPERTIES


def test_a_withheld_property_is_never_looked_up() -> None:
    nothing = StepConfig(stored_properties=frozenset())
    assert _names_read(nothing, _synthetic_events()) <= {"decision_id"}
    only_price = StepConfig(stored_properties=frozenset({"price"}))
    assert _names_read(only_price, _synthetic_events()) <= {"decision_id", "price"}


def test_the_default_is_the_explicit_full_allow_list() -> None:
    lines = _synthetic_lines()
    written = parse_properties("product_id, sku, category, brand, price, quantity, revenue, total")
    default, explicit = (
        replay(lines, StepConfig()),
        replay(lines, StepConfig(stored_properties=written)),
    )
    assert len(default.decisions) == len(lines)
    assert [d.to_bytes() for d in default.decisions] == [d.to_bytes() for d in explicit.decisions]
    assert default.profiles.keys() == explicit.profiles.keys()
    for key, profile in default.profiles.items():
        assert profile.to_bytes() == explicit.profiles[key].to_bytes()
    # ...and the synthetic shop's brands do reach the profiles (the next tests are not vacuous).
    assert any(p.final.brands or p.pending for p in default.profiles.values())


# --- withholding brand, over random events ---

_brands = st.text("abcXYZ", min_size=0, max_size=4).map(lambda s: f"{MARK.title()}-{s}")
_categories = st.sampled_from(["shoes", "books", "toys"])
_names = st.sampled_from(
    [
        "Product Viewed",
        "Product Added",
        "Product Removed",
        "Product Added to Wishlist",
        "Order Completed",
        "Products Searched",
    ]
)


@st.composite
def _props(draw: st.DrawFn) -> dict[str, Any]:
    props: dict[str, Any] = {}
    if draw(st.booleans()):
        props["product_id" if draw(st.booleans()) else "sku"] = draw(st.sampled_from(["p1", "p2"]))
    if draw(st.booleans()):
        # A brand goes with a category: an event naming only a brand would start the affinity
        # clock, which moves the category scores' last-digit rounding (not their values).
        props["category"] = draw(_categories)
        if draw(st.booleans()):
            props["brand"] = draw(_brands)
    if draw(st.booleans()):
        props["price"] = draw(st.sampled_from([0.5, 10.0, 99.99]))
    if draw(st.booleans()):
        props["quantity"] = draw(st.integers(1, 3))
    if draw(st.booleans()):
        props["revenue" if draw(st.booleans()) else "total"] = draw(st.sampled_from([5.0, 20.0]))
    return props


@st.composite
def _user_events(draw: st.DrawFn) -> list[Event]:
    """One user's events, mostly in order, some out of order within or beyond grace."""
    count = draw(st.integers(1, 25))
    times = sorted(draw(st.lists(st.integers(0, 3 * DAY_MS), min_size=count, max_size=count)))
    if draw(st.booleans()):
        times = draw(st.permutations(times))
    return [_ev(draw(_names), draw(_props()), i, T0 + t) for i, t in enumerate(times)]


@settings(
    max_examples=80,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(_user_events())
def test_a_withheld_brand_is_not_stored_and_moves_no_other_feature(events: list[Event]) -> None:
    full, full_notes = _profile_of(events, FULL)
    kept, kept_notes = _profile_of(events, NO_BRAND)
    assert MARK.encode() not in kept.to_bytes().lower()
    assert kept.final.brands == {} and all(m.brand is None for m in kept.pending)
    full_features, kept_features = (
        dict(feature_vector(full, FULL)),
        dict(feature_vector(kept, NO_BRAND)),
    )
    assert kept_features["top_brand"] is None
    for name in BRAND_FEATURES:
        del full_features[name], kept_features[name]
    assert kept_features == full_features
    assert kept_notes == full_notes
    if dict(feature_vector(full, FULL))["top_brand"] is not None:
        assert MARK.encode() in full.to_bytes().lower()  # the check above can see a brand


def test_a_withheld_brand_is_absent_not_refused() -> None:
    # A hostile brand, withheld, is not read at all: no sanitized note, no brand.
    event = _ev("Product Viewed", {"category": "shoes", "brand": "x" * 1000})
    _, notes = _profile_of([event], FULL)
    assert "sanitized:brand" in notes[0]
    profile, notes = _profile_of([event], NO_BRAND)
    assert not any(note.startswith("sanitized") for note in notes[0])
    assert dict(feature_vector(profile, NO_BRAND))["top_category"] == "shoes"


# --- aliases and the other properties ---


def _features(events: list[Event], *withheld: str) -> dict[str, Any]:
    config = StepConfig(stored_properties=DEFAULT_STORED_PROPERTIES - set(withheld))
    profile, _ = _profile_of(events, config)
    return dict(feature_vector(profile, config))


def _cart(*props: dict[str, Any]) -> list[Event]:
    return [_ev("Product Added", p, i) for i, p in enumerate(props)]


def test_product_id_and_sku_are_separate_names() -> None:
    both = _cart({"product_id": "p1", "sku": "S1", "price": 2.0}, {"sku": "S2", "price": 3.0})
    assert _features(both)["cart_lines"] == 2
    # Without product_id, sku is the product id (as for an event that only has a sku).
    assert _features(both, "product_id")["cart_lines"] == 2
    # Without sku, an event that only has a sku has no product (and makes no cart line).
    assert _features(both, "sku")["cart_lines"] == 1
    assert _features(both, "product_id", "sku")["cart_lines"] == 0


def test_revenue_and_total_are_separate_names() -> None:
    orders = [
        _ev("Order Completed", {"revenue": 10.0, "total": 12.0}, 0),
        _ev("Order Completed", {"total": 5.0}, 1),
    ]
    assert _features(orders)["revenue_total"] == 15.0
    assert _features(orders, "revenue")["revenue_total"] == 17.0
    assert _features(orders, "total")["revenue_total"] == 10.0
    assert _features(orders, "revenue", "total")["revenue_total"] == 0.0
    assert _features(orders, "revenue", "total")["orders_total"] == 2  # counted, no amount


def test_withheld_quantity_reads_as_segments_default_and_price_as_absent() -> None:
    cart = _cart({"product_id": "p1", "price": 2.0, "quantity": 3})
    assert _features(cart)["cart_items"] == 3
    assert _features(cart, "quantity")["cart_items"] == 1  # absent quantity means 1
    # The catalog's price features read 0, and a line needs a price: no cart line.
    no_price = _features(cart, "price")
    assert no_price["cart_lines"] == 0 and no_price["product_added_sum_price_24h"] == 0.0


def test_a_withheld_category_is_not_kept_in_pending_labels() -> None:
    events = [_ev("Product Viewed", {"product_id": "p1", "category": "Shoes"}, i) for i in range(3)]
    events.append(_ev("Product Added", {"product_id": "p1", "category": "Shoes", "price": 1.0}, 3))
    full, _ = _profile_of(events, FULL)
    assert any(label.current == "shoes" for label in full.labels)
    config = StepConfig(stored_properties=DEFAULT_STORED_PROPERTIES - {"category"})
    kept, _ = _profile_of(events, config)
    assert kept.labels and all(label.current is None for label in kept.labels)
    assert b"shoes" not in kept.to_bytes().lower()


# --- validation ---


def test_names_no_feature_reads_are_rejected_by_name() -> None:
    with pytest.raises(ConfigError, match=r"no feature reads brnad, colour \(known: brand,"):
        StepConfig(stored_properties=frozenset({"brnad", "colour", "price"}))
    with pytest.raises(ConfigError, match="frozenset"):
        StepConfig(stored_properties={"price"})  # type: ignore[arg-type]


def test_a_catalog_field_is_a_known_name() -> None:
    spec = WindowedSpec("Product Viewed", "distinct", "colour", (DAY_MS,))
    catalog = Catalog((*DEFAULT_CATALOG.windowed, spec), DEFAULT_CATALOG.ratios)
    features = FeatureConfig(catalog=catalog)
    config = StepConfig(features=features, stored_properties=DEFAULT_STORED_PROPERTIES | {"colour"})
    event = _ev("Product Viewed", {"colour": "red"})
    profile, _ = _profile_of([event], config)
    assert dict(feature_vector(profile, config))["product_viewed_distinct_colour_24h"] == 1
    # Not allowed (the default list): the spec aggregates nothing, it is not an error.
    default = StepConfig(features=features)
    profile, _ = _profile_of([event], default)
    assert dict(feature_vector(profile, default))["product_viewed_distinct_colour_24h"] == 0

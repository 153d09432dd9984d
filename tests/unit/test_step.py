"""The step: one event folded into the profile it owns, one decision out, idempotently."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Iterable
from typing import Any

import pytest

from stream import (
    Event,
    EventType,
    PolicyConfig,
    Profile,
    SourcePosition,
    StepConfig,
    StepOutputs,
    decision_id,
    step,
)
from stream.config import FeatureConfig
from stream.events import message_fingerprint
from stream.features import OTHER_TRACK, feature_vector
from stream.ordered import OrderedConfig, OrderedState, rebuild_head
from stream.policyconfig import Variant
from stream.step import SKIP_ALREADY_APPLIED, SKIP_DUPLICATE
from stream.windows import DAY_MS, HOUR_MS, MINUTE_MS

T0 = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC
CFG = StepConfig()
#: The rules alone (no holdout, no bandit): decisions these tests can name in advance.
RULES = StepConfig(
    policy=PolicyConfig(variants=(Variant(name="rules", share=1.0, kind="priority"),))
)
GRACE = CFG.features.grace_ms
GAP = CFG.features.session_gap_ms
_ids = itertools.count()
#: Default event times: one millisecond apart, so a sequence of events is in event-time order
#: (events with equal times are ordered by message fingerprint, not by arrival).
_clock = itertools.count(T0)


def ev(
    name: str = "Product Viewed",
    props: dict[str, Any] | None = None,
    *,
    user: str = "u1",
    mid: str | None = None,
    ts: int | None = None,
    kind: EventType = EventType.TRACK,
    source: SourcePosition | None = None,
    anonymous_id: str | None = None,
    known: bool = True,
    context: dict[str, Any] | None = None,
) -> Event:
    """A domain event (built directly, so hostile Python values such as NaN can be used)."""
    return Event(
        message_id=mid if mid is not None else f"m-{next(_ids)}",
        type=kind,
        name=name if kind is EventType.TRACK else kind.value,
        user_key=user,
        timestamp_ms=ts if ts is not None else next(_clock),
        user_id=user if known else None,
        anonymous_id=anonymous_id,
        properties=props or {},
        context=context or {},
        source=source,
    )


def page(**kw: Any) -> Event:
    return ev(kind=EventType.PAGE, **kw)


def add(product: object, price: object = 10.0, quantity: object = 1, **kw: Any) -> Event:
    return ev("Product Added", {"product_id": product, "price": price, "quantity": quantity}, **kw)


def remove(product: str, quantity: object = None, **kw: Any) -> Event:
    props: dict[str, Any] = {"product_id": product}
    if quantity is not None:
        props["quantity"] = quantity
    return ev("Product Removed", props, **kw)


def view(category: object, brand: object = None, **kw: Any) -> Event:
    props = {"product_id": "p", "category": category}
    if brand is not None:
        props["brand"] = brand
    return ev("Product Viewed", props, **kw)


def run(
    events: Iterable[Event], profile: Profile | None = None, config: StepConfig = CFG
) -> tuple[Profile, list[StepOutputs]]:
    outputs: list[StepOutputs] = []
    for event in events:
        profile, out = step(profile, event, config)
        outputs.append(out)
    assert profile is not None
    return profile, outputs


def feats(profile: Profile, config: StepConfig = CFG) -> dict[str, Any]:
    return dict(feature_vector(profile, config))


def head_of(profile: Profile, config: StepConfig = CFG) -> OrderedState:
    """The order-dependent state features read: the final state with the pending events folded
    in, in event order. The profile's in-memory head (if any) must be exactly that."""
    f = config.features
    ordered = OrderedConfig(
        session_gap_ms=f.session_gap_ms,
        half_life_ms=f.affinity_half_life_ms,
        top_k=f.affinity_top_k,
        max_cart_lines=config.max_cart_lines,
        max_quantity=config.max_quantity,
    )
    head = rebuild_head(profile.final, profile.pending, ordered)
    if profile.head is not None:
        assert profile.head == head
    return head


def cart_of(profile: Profile, config: StepConfig = CFG) -> dict[str, tuple[int, float]]:
    return {k: (v.quantity, v.price) for k, v in head_of(profile, config).cart.items()}


def rich_profile() -> Profile:
    src = [SourcePosition("events", 0, offset) for offset in range(6)]
    profile, _ = run(
        [
            view("Shoes", source=src[0], anonymous_id="a1", ts=T0),
            view("books", source=src[1], ts=T0 + 1_000),
            add("p1", 20.0, 2, source=src[2], ts=T0 + 2_000),
            add("p2", 5.5, 1, source=src[3], ts=T0 + 3_000),
            page(source=src[4], ts=T0 + 4_000),
            ev("Cart Viewed", source=src[5], ts=T0 + 5_000),
        ]
    )
    return profile


# --- ownership: the step updates the profile it is given ------------------------------------

NEXT_EVENTS = [
    view("Toys", ts=T0 + 9_000),
    view("shoes", source=SourcePosition("events", 1, 0), ts=T0 + 9_000),
    add("p1", 30.0, 3, ts=T0 + 9_000),
    remove("p1", 1, ts=T0 + 9_000),
    remove("p2", ts=T0 + 9_000),
    ev("Order Completed", {"revenue": 12.5}, ts=T0 + 9_000),
    ev("Checkout Started", ts=T0 + 9_000),
    ev(kind=EventType.IDENTIFY, ts=T0 + 9_000),
    ev("Button Pressed", ts=T0 + 9_000),
    add("p1", float("nan"), 1, ts=T0 + 9_000),
    view("shoes", ts=T0 + 500),  # out of order, within grace
    view("shoes", ts=T0 - DAY_MS),  # late
    view("shoes", ts=T0 + 40 * MINUTE_MS),  # a new session
    view("shoes", source=SourcePosition("events", 0, 3)),  # redelivery
    view("shoes", mid="m-dup"),  # duplicate (applied once before the step)
]


@pytest.mark.parametrize("event", NEXT_EVENTS, ids=lambda e: f"{e.name}@{e.timestamp_ms - T0}")
def test_the_step_returns_the_profile_it_was_given(event: Event) -> None:
    profile = rich_profile()
    if event.message_id == "m-dup":
        profile, _ = step(profile, event, CFG)
    updated, _ = step(profile, event, CFG)
    assert updated is profile


@pytest.mark.parametrize("event", NEXT_EVENTS, ids=lambda e: f"{e.name}@{e.timestamp_ms - T0}")
def test_a_profile_restored_from_bytes_taken_before_a_step_steps_identically(
    event: Event,
) -> None:
    """What the adapter relies on to undo a failed step: the bytes are the whole state."""
    profile = rich_profile()
    if event.message_id == "m-dup":
        profile, _ = step(profile, event, CFG)
    before = profile.to_bytes()
    updated, out = step(profile, event, CFG)
    again, out_again = step(Profile.from_bytes(before), event, CFG)
    assert again.to_bytes() == updated.to_bytes()
    assert out_again == out
    assert [d.to_bytes() for d in out_again.decisions] == [d.to_bytes() for d in out.decisions]
    assert feats(again) == feats(updated)


def test_applying_an_event_updates_the_given_profile_in_place() -> None:
    profile = rich_profile()
    before = profile.to_bytes()
    updated, out = step(profile, view("toys", ts=T0 + 9_000), CFG)
    assert updated is profile
    assert profile.to_bytes() != before
    assert profile.counts["Product Viewed"] == 3
    assert len(out.decisions) == 1


# --- a new user ------------------------------------------------------------------------------


def test_a_new_user_gets_a_profile() -> None:
    event = ev("Product Viewed", user="new-user", ts=T0 + 5, anonymous_id="anon-7")
    profile, out = step(None, event, CFG)
    assert profile.user_key == "new-user"
    assert profile.user_id == "new-user"
    assert profile.anonymous_id == "anon-7"
    assert profile.counts == {"Product Viewed": 1}
    assert profile.first_seen_ms == profile.last_seen_ms == T0 + 5
    assert out.skipped is None
    assert len(out.decisions) == 1
    assert out.decisions[0].user_key == "new-user"


def test_an_anonymous_user_keeps_its_first_anonymous_id_and_learns_its_user_id() -> None:
    profile, _ = run(
        [
            ev(user="k", known=False, anonymous_id="a1"),
            ev(user="k", known=False, anonymous_id="a2"),
        ]
    )
    assert (profile.user_id, profile.anonymous_id) == (None, "a1")
    assert feats(profile)["known_user"] is False
    profile, _ = step(profile, ev(user="k", anonymous_id="a2"), CFG)
    assert (profile.user_id, profile.anonymous_id) == ("k", "a1")
    assert feats(profile)["known_user"] is True


# --- lifetime counts -------------------------------------------------------------------------


def test_counts_by_event_name() -> None:
    events = [
        page(),
        page(),
        ev(kind=EventType.SCREEN),
        ev(kind=EventType.IDENTIFY),
        ev(kind=EventType.ALIAS),
        ev("Product Viewed"),
        ev("Products Searched"),
        ev("Checkout Started"),
        ev("Order Completed"),
        ev("Signed In"),
    ]
    profile, _ = run(events)
    assert profile.counts == dict(Counter(e.name for e in events))
    f = feats(profile)
    assert (f["events_total"], f["views_total"], f["orders_total"]) == (10, 4, 1)


def test_unknown_track_names_are_counted_together_as_track_other() -> None:
    names = ["Button Pressed", "Video Played", "page", "Whatever " * 3, "Product Viewed"]
    profile, _ = run(ev(name) for name in names)
    assert profile.counts == {OTHER_TRACK: 4, "Product Viewed": 1}


def test_many_invented_event_names_do_not_grow_the_counts() -> None:
    profile, _ = run(ev(f"Invented {i}") for i in range(200))
    assert profile.counts == {OTHER_TRACK: 200}
    assert feats(profile)["events_total"] == 200


def test_revenue_uses_revenue_else_total_and_refuses_bad_values() -> None:
    profile, outs = run(
        [
            ev("Order Completed", {"revenue": 10.5}),
            ev("Order Completed", {"total": "4.25"}),
            ev("Order Completed", {"revenue": 1.0, "total": 99.0}),
            ev("Order Completed", {"revenue": "lots"}),
            ev("Order Completed"),
        ]
    )
    f = feats(profile)
    assert (f["orders_total"], f["revenue_total"]) == (5, 15.75)
    assert "sanitized:revenue" in outs[3].notes
    assert outs[4].notes == ()


# --- first and last seen, recency ------------------------------------------------------------


@pytest.mark.parametrize(
    "order", list(itertools.permutations([T0 + 30, T0 - 5, T0 + 1000, T0, T0 + 30]))[::7]
)
def test_first_and_last_seen_are_min_and_max_in_any_order(order: tuple[int, ...]) -> None:
    profile, _ = run(ev(ts=ts) for ts in order)
    assert profile.first_seen_ms == T0 - 5
    assert profile.last_seen_ms == T0 + 1000
    assert feats(profile)["tenure_ms"] == 1005


def test_recency_is_time_since_the_last_key_event_or_minus_one() -> None:
    profile, _ = run([view("a", ts=T0), add("p1", ts=T0 + 2_000), page(ts=T0 + 7_000)])
    f = feats(profile)
    assert f["ms_since_product_viewed"] == 7_000
    assert f["ms_since_product_added"] == 5_000
    assert f["ms_since_checkout_started"] == -1
    assert f["ms_since_order_completed"] == -1
    profile, _ = run([view("a", ts=T0 - 50_000)], profile)  # older: the last one stays
    assert feats(profile)["ms_since_product_viewed"] == 7_000


# --- cart ------------------------------------------------------------------------------------


def test_cart_add_add_same_remove_partially_remove_fully() -> None:
    profile, _ = run([add("p1", 10.0, 2)])
    assert cart_of(profile) == {"p1": (2, 10.0)}
    profile, _ = run([add("p2", 3.333, 1)], profile)
    assert cart_of(profile) == {"p1": (2, 10.0), "p2": (1, 3.33)}
    profile, _ = run([add("p1", 12.0, 3)], profile)
    assert cart_of(profile) == {"p1": (5, 12.0), "p2": (1, 3.33)}  # latest price wins
    f = feats(profile)
    assert (f["cart_lines"], f["cart_items"], f["cart_value"]) == (2, 6, 63.33)
    profile, _ = run([remove("p1", 2)], profile)
    assert cart_of(profile) == {"p1": (3, 12.0), "p2": (1, 3.33)}
    profile, _ = run([remove("p1")], profile)  # no quantity: one unit
    assert cart_of(profile) == {"p1": (2, 12.0), "p2": (1, 3.33)}
    profile, _ = run([remove("p1", 2)], profile)
    assert cart_of(profile) == {"p2": (1, 3.33)}
    profile, _ = run([remove("p2", 50)], profile)  # more than in the cart
    assert cart_of(profile) == {}
    f = feats(profile)
    assert (f["cart_lines"], f["cart_items"], f["cart_value"]) == (0, 0, 0.0)


def test_order_completed_clears_the_cart() -> None:
    profile, _ = run([add("p1", 10.0, 2), add("p2", 5.0), view("shoes")])
    assert cart_of(profile) and feats(profile)["views_since_add"] == 1
    profile, _ = run([ev("Order Completed", {"revenue": 25})], profile)
    assert cart_of(profile) == {}
    assert feats(profile)["views_since_add"] == 0


def test_removing_a_product_not_in_the_cart_changes_nothing() -> None:
    profile, _ = run([add("p1", 10.0, 2)])
    updated, out = step(profile, remove("p-unknown", 1), CFG)
    assert cart_of(updated) == {"p1": (2, 10.0)}
    assert out.notes == ()


def test_sku_is_used_when_product_id_is_absent() -> None:
    profile, _ = run([ev("Product Added", {"sku": "SKU-1", "price": 2.0, "quantity": 2})])
    profile, _ = run([ev("Product Removed", {"sku": "SKU-1"})], profile)
    assert cart_of(profile) == {"SKU-1": (1, 2.0)}


def test_numeric_product_ids_are_text() -> None:
    profile, _ = run([add(12, 1.0)])
    assert cart_of(profile) == {"12": (1, 1.0)}


def test_quantity_of_one_product_is_capped() -> None:
    config = StepConfig(max_quantity=10)
    profile, _ = run([add("p1", 1.0, 8), add("p1", 1.0, 8)], config=config)
    assert cart_of(profile, config) == {"p1": (10, 1.0)}


@pytest.mark.parametrize(
    "price",
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        -0.01,
        -100,
        "free",
        "",
        "NaN",
        "inf",
        1e308,
        1_000_000.01,
        10**400,
        True,
        [10.0],
        {"amount": 10},
    ],
    ids=repr,
)
def test_bad_prices_never_enter_the_cart(price: object) -> None:
    profile, outs = run([add("p1", price, 1)])
    assert cart_of(profile) == {}
    assert "sanitized:price" in outs[0].notes
    assert profile.counts == {"Product Added": 1}
    f = feats(profile)
    assert (f["cart_value"], f["product_added_sum_price_24h"]) == (0.0, 0.0)
    assert f["product_added_count_24h"] == 1  # the add itself still counts
    assert len(outs[0].decisions) == 1


@pytest.mark.parametrize(
    "quantity",
    [0, -1, 1.5, 10**9, 1001, 10**400, True, False, "abc", "", float("nan"), float("inf"), [1]],
    ids=repr,
)
def test_bad_quantities_never_enter_the_cart(quantity: object) -> None:
    profile, outs = run([add("p1", 10.0, quantity)])
    assert cart_of(profile) == {}
    assert "sanitized:quantity" in outs[0].notes
    assert len(outs[0].decisions) == 1


@pytest.mark.parametrize("quantity", [0, -1, 1.5, 10**9, True, "abc"], ids=repr)
def test_bad_quantities_do_not_remove_from_the_cart(quantity: object) -> None:
    profile, _ = run([add("p1", 10.0, 2)])
    profile, outs = run([remove("p1", quantity)], profile)
    assert cart_of(profile) == {"p1": (2, 10.0)}
    assert "sanitized:quantity" in outs[0].notes


@pytest.mark.parametrize(
    ("price", "quantity", "line"),
    [("19.99", "3", (3, 19.99)), (0, 2.0, (2, 0.0)), (1_000_000, 1000, (1000, 1_000_000.0))],
)
def test_valid_edge_values_are_accepted(price: object, quantity: object, line: object) -> None:
    profile, outs = run([add("p1", price, quantity)])
    assert cart_of(profile) == {"p1": line}
    assert outs[0].notes == ()


@pytest.mark.parametrize("product", ["", "   ", True, 1.5, "x" * 101, ["p1"]], ids=repr)
def test_bad_product_ids_never_enter_the_cart(product: object) -> None:
    profile, outs = run([ev("Product Added", {"product_id": product, "price": 1.0})])
    assert cart_of(profile) == {}
    assert "sanitized:product_id" in outs[0].notes


@pytest.mark.parametrize(
    "props",
    [
        {"price": 1.0},
        {"product_id": None, "price": 1.0},
        {"product_id": "p1"},
        {"product_id": "p1", "price": None},
    ],
    ids=repr,
)
def test_an_add_without_a_product_id_or_price_stays_out_of_the_cart_without_a_note(
    props: dict[str, Any],
) -> None:
    profile, outs = run([ev("Product Added", props)])
    assert cart_of(profile) == {}
    assert outs[0].notes == ()


def test_notes_name_every_refused_value() -> None:
    _, outs = run([ev("Product Added", {"product_id": " ", "price": "x", "quantity": 0})])
    assert set(outs[0].notes) == {
        "sanitized:product_id",
        "sanitized:price",
        "sanitized:quantity",
    }


@pytest.mark.parametrize(
    ("event", "note"),
    [
        (ev("Product Added", {"product_id": "p1", "price": "x"}), "sanitized:price"),
        (ev("Product Viewed", {"product_id": "p1", "category": 7}), "sanitized:category"),
        (ev("Product Viewed", {"product_id": "p1", "price": -1}), "sanitized:price"),
        (ev("Product Viewed", {"product_id": ["p1"]}), "sanitized:product_id"),
        (ev("Order Completed", {"revenue": "lots"}), "sanitized:revenue"),
        (ev("Order Completed", {"total": "lots"}), "sanitized:total"),
    ],
    ids=["add-price", "view-category", "view-price", "view-product", "revenue", "total"],
)
def test_each_refused_value_is_noted_once_however_many_features_read_it(
    event: Event, note: str
) -> None:
    """Windows and the order-dependent state both read a view's category and price: the
    adapter's ``note:sanitized:*`` counters must still count refused values, not reads."""
    _, out = step(None, event, CFG)
    assert out.notes == (note,)


def test_cart_is_bounded_by_max_cart_lines() -> None:
    config = StepConfig(max_cart_lines=3)
    profile, _ = run([add(f"p{i}", 1.0) for i in range(6)], config=config)
    assert list(cart_of(profile, config)) == ["p0", "p1", "p2"]
    # a product already in the full cart can still change
    profile, outs = run([add("p1", 2.0, 4)], profile, config)
    assert cart_of(profile, config)["p1"] == (5, 2.0)
    assert outs[0].notes == ()


def test_prices_in_profiles_are_always_finite() -> None:
    hostile: list[object] = [float("nan"), float("inf"), -1, "1e400", 1e308, 10**400]
    profile, _ = run(add(f"p{i}", price) for i, price in enumerate(hostile))
    profile, _ = run([add("ok", 2.5, 2)], profile)
    assert cart_of(profile) == {"ok": (2, 2.5)}
    assert all(math.isfinite(line.price) for line in head_of(profile).cart.values())
    f = feats(profile)
    assert all(math.isfinite(v) for v in f.values() if isinstance(v, float))


# --- affinities ------------------------------------------------------------------------------


def test_category_labels_are_normalized_and_weighted_by_event() -> None:
    profile, outs = run([view("Shoes"), view(" shoes "), view("SHOES"), view("Books")])
    assert feats(profile)["category_affinities"] == {"books": 1.0, "shoes": 3.0}
    assert all(o.notes == () for o in outs)
    profile, _ = run(
        [
            ev("Product Added", {"product_id": "b", "price": 1.0, "category": "Books"}),
            ev("Product Added to Wishlist", {"product_id": "t", "category": "toys"}),
        ],
        profile,
    )
    f = feats(profile)
    assert f["category_affinities"] == {"books": 4.0, "shoes": 3.0, "toys": 2.0}
    assert (f["top_category"], f["top_category_affinity"]) == ("books", 4.0)


def test_affinities_halve_every_half_life_of_event_time() -> None:
    profile, _ = run([view("shoes", ts=T0), view("shoes", ts=T0), page(ts=T0 + 7 * DAY_MS)])
    f = feats(profile)
    assert (f["top_category"], f["top_category_affinity"]) == ("shoes", 1.0)
    assert f["category_affinities"] == {"shoes": 1.0}


def test_top_brand_is_the_strongest_brand() -> None:
    profile, _ = run([view("a", "Acme"), view("b", "zeta"), view("c", "zeta")])
    assert feats(profile)["top_brand"] == "zeta"


@pytest.mark.parametrize("category", ["", "   ", 7, ["shoes"], "c" * 101], ids=repr)
def test_bad_categories_are_not_counted(category: object) -> None:
    profile, outs = run([view(category)])
    f = feats(profile)
    assert (f["category_affinities"], f["top_category"], f["top_category_affinity"]) == (
        {},
        None,
        0.0,
    )
    assert set(outs[0].notes) == {"sanitized:category"}
    assert f["views_since_add"] == 1
    assert f["product_viewed_distinct_category_24h"] == 0


@pytest.mark.parametrize("props", [{"product_id": "p"}, {"product_id": "p", "category": None}])
def test_view_without_category_is_not_a_note(props: dict[str, Any]) -> None:
    """An absent value, or an explicit null, is not a refused one."""
    profile, outs = run([ev("Product Viewed", props)])
    assert outs[0].notes == ()
    assert feats(profile)["category_affinities"] == {}


def test_affinities_are_bounded_by_top_k() -> None:
    config = StepConfig(features=FeatureConfig(affinity_top_k=3))
    profile, _ = run(
        [view("a"), view("a"), view("a"), view("b"), view("b"), view("c")], config=config
    )
    assert feats(profile, config)["category_affinities"] == {"a": 3.0, "b": 2.0, "c": 1.0}
    profile, _ = run([view("d")], profile, config)  # c and d tie at 1: c goes
    assert feats(profile, config)["category_affinities"] == {"a": 3.0, "b": 2.0, "d": 1.0}
    profile, _ = run([view(f"x{i}") for i in range(50)], profile, config)
    affinities = feats(profile, config)["category_affinities"]
    assert len(affinities) == 3
    assert (affinities["a"], affinities["b"]) == (3.0, 2.0)


def test_views_since_add_counts_product_views_after_the_last_add() -> None:
    profile, _ = run([view("a"), view("b")])
    assert feats(profile)["views_since_add"] == 2
    profile, _ = run([add("p1", 1.0)], profile)
    assert feats(profile)["views_since_add"] == 0
    profile, _ = run([view("a"), page(), add("p2", "bad")], profile)
    assert feats(profile)["views_since_add"] == 1  # a refused add does not reset it


# --- sessions --------------------------------------------------------------------------------


def test_sessions_split_on_the_inactivity_gap() -> None:
    profile, _ = run([page(ts=T0), view("a", ts=T0 + GAP), page(ts=T0 + 2 * GAP)])
    f = feats(profile)
    assert (f["sessions_total"], f["session_events"], f["session_pages"]) == (1, 3, 2)
    assert (f["session_length_ms"], f["ms_since_session_start"]) == (2 * GAP, 2 * GAP)
    assert f["returning_visitor"] is False
    later = T0 + 3 * GAP + 1  # one millisecond more than the gap
    profile, _ = run([view("a", ts=later)], profile)
    f = feats(profile)
    assert (f["sessions_total"], f["sessions_7d"], f["returning_visitor"]) == (2, 2, True)
    assert (f["session_events"], f["session_pages"], f["session_length_ms"]) == (1, 0, 0)
    assert f["session_open"] is True


def test_sessions_7d_counts_the_sessions_started_within_the_last_week() -> None:
    starts = [T0, T0 + 2 * DAY_MS, T0 + 7 * DAY_MS + 1]
    profile, _ = run(page(ts=t) for t in starts)
    f = feats(profile)
    assert (f["sessions_total"], f["sessions_7d"]) == (3, 2)


# --- windows and context ---------------------------------------------------------------------


def test_every_catalog_feature_is_in_the_vector_and_windows_slide_with_event_time() -> None:
    profile, _ = run(
        [
            view("a", ts=T0),
            view("b", ts=T0 + MINUTE_MS),
            view("a", ts=T0 + 2 * MINUTE_MS),
            add("p1", 4.0, ts=T0 + 3 * MINUTE_MS),
        ]
    )
    f = feats(profile)
    assert set(CFG.features.catalog.feature_names()) <= set(f)
    assert (f["product_viewed_count_1h"], f["product_added_count_1h"]) == (3, 1)
    assert f["product_viewed_distinct_category_1h"] == 2
    assert f["add_to_cart_per_view_1h"] == round(1 / 3, 6)
    profile, _ = run([page(ts=T0 + 25 * HOUR_MS)], profile)
    f = feats(profile)
    assert (f["product_viewed_count_1h"], f["product_viewed_count_24h"]) == (0, 0)
    assert (f["product_viewed_count_7d"], f["page_count_1h"]) == (3, 1)


def test_context_features_come_from_the_event_context() -> None:
    context = {
        "device": {"type": "mobile"},
        "os": {"name": "iOS"},
        "locale": "de-DE",
        "timezone": "Europe/Berlin",
        "app": {"name": "Shop"},
    }
    profile, _ = run([page(ts=T0, context=context)])
    f = feats(profile)
    assert (f["context_device_type"], f["context_os"], f["context_country"]) == (
        "mobile",
        "ios",
        "DE",
    )
    assert (f["context_channel"], f["context_local_hour"], f["context_weekday"]) == ("app", 23, 1)
    # the latest event's context (by event time) wins; an older one arriving later does not
    desktop = {"device": {"type": "desktop"}}
    profile, _ = run([page(ts=T0 + 1, context=desktop)], profile)
    assert feats(profile)["context_device_type"] == "desktop"
    profile, _ = run([page(ts=T0 - 1, context=context)], profile)
    assert feats(profile)["context_device_type"] == "desktop"
    assert feats(profile)["context_timezone"] == "UTC"  # the desktop context has none


# --- late events and arrival order -----------------------------------------------------------


def _cart_session() -> Profile:
    profile, _ = run([add("p1", 10.0, 1, ts=T0), view("shoes", ts=T0 + 10 * MINUTE_MS)])
    return profile


@pytest.mark.parametrize(
    "late",
    [
        add("p2", 5.0, 1, ts=T0 + 10 * MINUTE_MS - GRACE - 1),
        remove("p1", ts=T0 + 10 * MINUTE_MS - GRACE - 1),
        ev("Order Completed", {"revenue": 7.5}, ts=T0 - DAY_MS),
        view("books", ts=T0 - 3 * DAY_MS),
    ],
    ids=lambda e: e.name,
)
def test_an_event_beyond_grace_is_late_counted_but_not_placed_in_order(late: Event) -> None:
    profile = _cart_session()
    head, final, pending = head_of(profile), profile.final.copy(), list(profile.pending)
    before = feats(profile)
    profile, out = step(profile, late, CFG)
    assert "late_event" in out.notes
    assert len(out.decisions) == 1
    after = feats(profile)
    # lifetime counts and windows take it ...
    assert after["late_events"] == 1
    assert after["events_total"] == before["events_total"] + 1
    assert profile.counts[late.name] == 1 + (late.name in ("Product Viewed", "Product Added"))
    if late.name == "Order Completed":
        assert (after["orders_total"], after["revenue_total"]) == (1, 7.5)
        assert after["order_completed_count_7d"] == 1
    # ... sessions, cart, views since add and affinities do not
    assert (head_of(profile), profile.final, profile.pending) == (head, final, pending)
    ordered = [n for n in before if n.startswith(("session", "cart_", "top_", "category_"))]
    ordered.append("views_since_add")
    assert {n: after[n] for n in ordered} == {n: before[n] for n in ordered}
    assert cart_of(profile) == {"p1": (1, 10.0)}


def test_an_event_exactly_grace_behind_is_not_late() -> None:
    profile, out = step(_cart_session(), add("p2", 5.0, 1, ts=T0 + 10 * MINUTE_MS - GRACE), CFG)
    assert "late_event" not in out.notes
    assert cart_of(profile) == {"p1": (1, 10.0), "p2": (1, 5.0)}
    f = feats(profile)
    assert (f["late_events"], f["views_since_add"]) == (0, 1)  # the add goes before the view


def test_the_grace_period_comes_from_the_config() -> None:
    config = StepConfig(features=FeatureConfig(grace_ms=0))
    profile, outs = run([view("a", ts=T0), view("b", ts=T0), view("c", ts=T0 - 1)], config=config)
    assert [("late_event" in o.notes) for o in outs] == [False, False, True]
    assert feats(profile, config)["category_affinities"] == {"a": 1.0, "b": 1.0}


def _session_events() -> list[Event]:
    """Nine events over five minutes (well over the grace period), one with no time gap."""
    return [
        page(ts=T0, mid="o0"),
        view("Shoes", "acme", ts=T0 + 20_000, mid="o1"),
        add("p1", 30.0, 2, ts=T0 + 45_000, mid="o2"),
        view("books", ts=T0 + 45_000, mid="o3"),
        view("books", "zeta", ts=T0 + 100_000, mid="o4"),
        remove("p1", 1, ts=T0 + 150_000, mid="o5"),
        add("p2", 12.5, 1, ts=T0 + 200_000, mid="o6"),
        ev("Order Completed", {"revenue": 42.5}, ts=T0 + 260_000, mid="o7"),
        view("toys", ts=T0 + 300_000, mid="o8"),
    ]


def arrival_within_grace(events: list[Event], seed: int, grace: int = GRACE) -> list[Event]:
    """A shuffled arrival order in which no event is more than ``grace`` behind an earlier one.

    Sorting by time plus a delay in ``[0, grace]`` does that: an earlier arrival ``j`` has
    ``t_j + d_j <= t_i + d_i``, so ``t_i >= t_j - grace``.
    """
    r = random.Random(seed)
    delays = {e.message_id: r.randint(0, grace) for e in events}
    return sorted(events, key=lambda e: e.timestamp_ms + delays[e.message_id])


@pytest.mark.parametrize("seed", range(8))
def test_any_arrival_order_within_grace_gives_the_in_order_features(seed: int) -> None:
    events = _session_events()
    shuffled = arrival_within_grace(events, seed)
    assert shuffled != events
    in_order, _ = run(events)
    out_of_order, outs = run(shuffled)
    assert not any("late_event" in o.notes for o in outs)
    assert feats(out_of_order) == feats(in_order)
    # The policy decided at each event as it arrived; given the same record of those decisions,
    # the next one is the same.
    out_of_order.starts, out_of_order.choice = in_order.starts, in_order.choice
    out_of_order.decisions = in_order.decisions
    probe = view("shoes", ts=T0 + 301_000, mid="probe")
    (expected,) = step(in_order, probe, CFG)[1].decisions
    (actual,) = step(out_of_order, probe, CFG)[1].decisions
    assert actual.to_bytes() == expected.to_bytes()


def test_the_in_order_features_of_the_session() -> None:
    """What the arrival-order test compares against, pinned."""
    profile, _ = run(_session_events())
    f = feats(profile)
    assert cart_of(profile) == {}  # the order cleared it
    assert (f["views_since_add"], f["cart_value"], f["revenue_total"]) == (1, 0.0, 42.5)
    assert (f["sessions_total"], f["session_events"], f["session_pages"]) == (1, 9, 1)
    assert (f["top_category"], f["top_brand"]) == ("books", "zeta")
    # decayed to T0 + 300 s with a 7-day half-life
    assert f["category_affinities"] == {"books": 1.9995, "shoes": 0.9997, "toys": 1.0}


def test_context_features_do_not_depend_on_arrival_order_within_grace() -> None:
    """The kept context is the latest event's (by event time), and the local hour is that of
    the user's latest event, whichever arrives first."""
    hour = T0 - T0 % HOUR_MS + HOUR_MS  # 23:00:00 UTC
    before = page(ts=hour - 30_000, mid="c1")  # 22:59:30
    after = page(ts=hour + 10_000, mid="c2")  # 23:00:10
    in_order, _ = run([before, after])
    out_of_order, _ = run([after, before])
    # (the policy's record of its decisions follows arrival order: tests/unit/test_policy.py)
    assert feats(out_of_order)["context_local_hour"] == feats(in_order)["context_local_hour"]
    assert feats(in_order) == feats(out_of_order)
    # the same state, but for the dedupe window, which lists message ids in arrival order, and
    # the pending labels, made at the events that arrived in order (stream.labels)
    state_in, state_out = in_order.to_dict(), out_of_order.to_dict()
    for doc in (state_in, state_out):
        del doc["recent_messages"], doc["labels"], doc["last_label_ms"]
        del doc["decisions"], doc["starts"], doc["choice"], doc["last_decision"]
    assert state_in == state_out


# --- duplicates and redelivery ---------------------------------------------------------------


def test_duplicate_message_id_is_applied_once() -> None:
    first = add("p1", 10.0, 1, mid="m-same")
    profile, out1 = step(None, first, CFG)
    before = profile.to_bytes()
    again, out2 = step(profile, first, CFG)
    assert len(out1.decisions) == 1
    assert out2 == StepOutputs(skipped=SKIP_DUPLICATE)
    assert again.to_bytes() == before
    assert again.counts == {"Product Added": 1}
    assert cart_of(again) == {"p1": (1, 10.0)}


def test_duplicate_with_different_content_is_still_a_duplicate() -> None:
    profile, _ = run([add("p1", 10.0, 1, mid="m-x", ts=T0)])
    profile, outs = run([ev("Order Completed", mid="m-x", ts=T0 + 99)], profile)
    assert outs[0].skipped == SKIP_DUPLICATE
    assert profile.counts == {"Product Added": 1}
    assert cart_of(profile) and profile.last_seen_ms == T0


def test_duplicate_at_a_new_offset_records_the_offset_but_changes_nothing_else() -> None:
    src = SourcePosition("events", 2, 10)
    profile, _ = run([view("a", mid="m-r", source=src)])
    before = profile.to_dict()
    again, out = step(profile, view("a", mid="m-r", source=SourcePosition("events", 2, 11)), CFG)
    assert out == StepOutputs(skipped=SKIP_DUPLICATE)
    assert again.applied == {"events:2": 11}
    assert {**again.to_dict(), "applied": before["applied"]} == before


@pytest.mark.parametrize("offset", [10, 9, 0])
def test_redelivered_record_is_skipped_and_profile_returned_unchanged(offset: int) -> None:
    profile, _ = run([view("a", source=SourcePosition("events", 2, 10))])
    before = profile.to_bytes()
    # a different message id: the position alone says it was applied already
    again, out = step(profile, view("b", source=SourcePosition("events", 2, offset)), CFG)
    assert out == StepOutputs(skipped=SKIP_ALREADY_APPLIED)
    assert again is profile
    assert again.to_bytes() == before


def test_a_new_user_is_never_already_applied() -> None:
    profile, out = step(None, view("a", source=SourcePosition("events", 0, 0)), CFG)
    assert out.skipped is None
    assert profile.applied == {"events:0": 0}


def test_positions_are_tracked_per_partition() -> None:
    profile, _ = run([view("a", source=SourcePosition("events", 2, 10))])
    profile, out = step(profile, view("b", source=SourcePosition("events", 3, 5)), CFG)
    assert out.skipped is None
    profile, out = step(profile, view("c", source=SourcePosition("events", 2, 11)), CFG)
    assert out.skipped is None
    assert profile.applied == {"events:2": 11, "events:3": 5}
    assert profile.counts == {"Product Viewed": 3}


def test_events_without_position_are_never_already_applied() -> None:
    profile, outs = run([view("a"), view("b"), view("c")])
    assert [o.skipped for o in outs] == [None, None, None]
    assert profile.applied == {}


def test_dedupe_memory_is_bounded_by_the_window() -> None:
    config = StepConfig(dedupe_window=3)
    profile: Profile | None = None
    for i in range(10):
        profile, out = step(profile, view("a", mid=f"w{i}"), config)
        assert out.skipped is None
        assert len(profile.recent_messages) == min(i + 1, 3)
    assert profile is not None
    assert profile.recent_messages == [message_fingerprint(f"w{i}") for i in (7, 8, 9)]
    # the last three are remembered ...
    for i in (7, 8, 9):
        _, out = step(profile, view("a", mid=f"w{i}"), config)
        assert out.skipped == SKIP_DUPLICATE
    # ... an older one is not (bounded memory: it is applied again)
    again, out = step(profile, view("a", mid="w0"), config)
    assert out.skipped is None
    assert again.counts == {"Product Viewed": 11}
    assert len(again.recent_messages) == 3


def test_a_new_topic_version_is_not_mistaken_for_a_redelivery() -> None:
    """Offsets restart at 0 on a new (versioned) events topic: positions are per topic."""
    profile, _ = run([view("a", mid="m-old", source=SourcePosition("events.v1", 0, 500))])
    again, out = step(
        profile, view("a", mid="m-new", source=SourcePosition("events.v2", 0, 0)), CFG
    )
    assert out.skipped is None and len(out.decisions) == 1
    assert again.applied == {"events.v1:0": 500, "events.v2:0": 0}


# --- decisions -------------------------------------------------------------------------------


def test_exactly_one_decision_per_applied_event() -> None:
    events = [
        view("a"),
        add("p1", 60.0),
        view("a"),
        view("a"),
        view("a"),
        ev("Cart Viewed"),
        ev("Checkout Started"),
        ev("Order Completed"),
        page(),
        ev("Anything"),
    ]
    _, outs = run(events, config=RULES)
    assert [len(o.decisions) for o in outs] == [1] * len(events)
    decisions = [o.decisions[0] for o in outs]
    assert [d.event_message_id for d in decisions] == [e.message_id for e in events]
    assert [d.event_name for d in decisions] == [e.name for e in events]
    assert [d.event_time_ms for d in decisions] == [e.timestamp_ms for e in events]
    assert [d.action for d in decisions] == [
        "none",  # one view: affinity 1
        "none",  # a cart action; the add has no category (sticky: nothing else allowed)
        "remind_cart",  # a new choice: the cart is not empty
        "remind_cart",  # affinity 3 allows recommend_category too; the running action stays
        "offer_discount",  # 60.00 in the cart, three views since the add
        "offer_discount",  # "Cart Viewed" ends remind_cart's eligibility; the offer runs on
        "none",  # protected
        "none",  # protected; the order emptied the cart
        "recommend_category",  # four views of "a"
        "recommend_category",  # sticky
    ]
    assert [d.reasons[0].rule for d in decisions] == [
        "priority",
        "sticky",
        "priority",
        "priority",
        "priority",
        "priority",
        "protect_purchase",
        "protect_purchase",
        "priority",
        "sticky",
    ]
    for event, decision in zip(events, decisions, strict=True):
        assert decision.decision_id == decision_id("nba-v1", "u1", event.message_id)
        assert decision.versions == {"policy": "nba-v1", "features": "features-v2"}


def test_the_policy_sees_the_features_of_the_profile_after_the_event() -> None:
    events = [view("Shoes", ts=T0), view("shoes", ts=T0), page(ts=T0), view("SHOES", ts=T0)]
    _, outs = run(events, config=RULES)
    decision = outs[-1].decisions[0]
    assert (decision.action, decision.params) == ("recommend_category", {"category": "shoes"})
    assert decision.reasons[1].features == {"top_category_affinity": 3.0}


def test_decision_id_is_deterministic() -> None:
    before = rich_profile().to_bytes()
    event = view("a", mid="m-fixed")
    _, out1 = step(Profile.from_bytes(before), event, CFG)
    _, out2 = step(Profile.from_bytes(before), view("a", mid="m-fixed", ts=event.timestamp_ms), CFG)
    assert out1.decisions == out2.decisions
    assert out1.decisions[0].to_bytes() == out2.decisions[0].to_bytes()


def test_decision_id_changes_with_message_id_user_and_policy_version() -> None:
    ids = {
        step(None, view("a", mid="m-1"), CFG)[1].decisions[0].decision_id,
        step(None, view("a", mid="m-2"), CFG)[1].decisions[0].decision_id,
        step(None, view("a", mid="m-1", user="u2"), CFG)[1].decisions[0].decision_id,
        step(None, view("a", mid="m-1"), StepConfig(policy=PolicyConfig(version="rules-v3")))[1]
        .decisions[0]
        .decision_id,
    }
    assert len(ids) == 4


def test_decision_carries_the_versions_of_the_config() -> None:
    config = StepConfig(feature_version="features-x", policy=PolicyConfig(version="rules-y"))
    _, out = step(None, view("a"), config)
    assert out.decisions[0].versions == {"policy": "rules-y", "features": "features-x"}

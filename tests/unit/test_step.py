"""The step: one event folded into a copy of the profile, one decision out, idempotently."""

from __future__ import annotations

import itertools
import math
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
from stream.features import OTHER_TRACK
from stream.step import SKIP_ALREADY_APPLIED, SKIP_DUPLICATE

T0 = 1_700_000_000_000
CFG = StepConfig()
_ids = itertools.count()


def ev(
    name: str = "Product Viewed",
    props: dict[str, Any] | None = None,
    *,
    user: str = "u1",
    mid: str | None = None,
    ts: int = T0,
    kind: EventType = EventType.TRACK,
    source: SourcePosition | None = None,
    anonymous_id: str | None = None,
    known: bool = True,
) -> Event:
    """A domain event (built directly, so hostile Python values such as NaN can be used)."""
    return Event(
        message_id=mid if mid is not None else f"m-{next(_ids)}",
        type=kind,
        name=name if kind is EventType.TRACK else kind.value,
        user_key=user,
        timestamp_ms=ts,
        user_id=user if known else None,
        anonymous_id=anonymous_id,
        properties=props or {},
        source=source,
    )


def add(product: str, price: object = 10.0, quantity: object = 1, **kw: Any) -> Event:
    return ev("Product Added", {"product_id": product, "price": price, "quantity": quantity}, **kw)


def remove(product: str, quantity: object = None, **kw: Any) -> Event:
    props: dict[str, Any] = {"product_id": product}
    if quantity is not None:
        props["quantity"] = quantity
    return ev("Product Removed", props, **kw)


def view(category: object, **kw: Any) -> Event:
    return ev("Product Viewed", {"product_id": "p", "category": category}, **kw)


def run(
    events: Iterable[Event], profile: Profile | None = None, config: StepConfig = CFG
) -> tuple[Profile, list[StepOutputs]]:
    outputs: list[StepOutputs] = []
    for event in events:
        profile, out = step(profile, event, config)
        outputs.append(out)
    assert profile is not None
    return profile, outputs


def cart_of(profile: Profile) -> dict[str, tuple[int, float]]:
    return {k: (v.quantity, v.price) for k, v in profile.cart.items()}


def rich_profile() -> Profile:
    src = [SourcePosition("events", 0, offset) for offset in range(6)]
    profile, _ = run(
        [
            view("Shoes", source=src[0], anonymous_id="a1"),
            view("books", source=src[1]),
            add("p1", 20.0, 2, source=src[2]),
            add("p2", 5.5, 1, source=src[3]),
            ev(kind=EventType.PAGE, source=src[4]),
            ev("Cart Viewed", source=src[5]),
        ]
    )
    return profile


# --- purity ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        view("Toys"),
        view("shoes", source=SourcePosition("events", 1, 0)),
        add("p1", 30.0, 3),
        add("p9", 1.0, 1),
        remove("p1", 1),
        remove("p2"),
        ev("Order Completed"),
        ev("Checkout Started"),
        ev(kind=EventType.IDENTIFY),
        ev("Button Pressed"),
        add("p1", float("nan"), 1),
        view("shoes", source=SourcePosition("events", 0, 3)),  # redelivery
        view("shoes", mid="m-dup"),  # duplicate (applied once before the step)
    ],
    ids=lambda e: e.name,
)
def test_input_profile_is_never_mutated(event: Event) -> None:
    profile = rich_profile()
    if event.message_id == "m-dup":
        profile, _ = step(profile, event, CFG)
    before = profile.to_bytes()
    updated, _ = step(profile, event, CFG)
    assert profile.to_bytes() == before
    if updated is not profile:
        # the cart lines are not shared either
        for product, line in updated.cart.items():
            assert line is not profile.cart.get(product)


def test_applying_an_event_returns_a_new_profile() -> None:
    profile = rich_profile()
    updated, out = step(profile, view("toys"), CFG)
    assert updated is not profile
    assert updated.to_bytes() != profile.to_bytes()
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
    profile, _ = step(profile, ev(user="k", anonymous_id="a2"), CFG)
    assert (profile.user_id, profile.anonymous_id) == ("k", "a1")


# --- counts ----------------------------------------------------------------------------------


def test_counts_by_event_name() -> None:
    events = [
        ev(kind=EventType.PAGE),
        ev(kind=EventType.PAGE),
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
    assert profile.counts["page"] == 2


def test_unknown_track_names_are_counted_together_as_track_other() -> None:
    names = ["Button Pressed", "Video Played", "page", "Whatever " * 3, "Product Viewed"]
    profile, _ = run(ev(name) for name in names)
    assert profile.counts == {OTHER_TRACK: 4, "Product Viewed": 1}


def test_many_invented_event_names_do_not_grow_the_counts() -> None:
    profile, _ = run(ev(f"Invented {i}") for i in range(200))
    assert profile.counts == {OTHER_TRACK: 200}


# --- first and last seen ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "order", list(itertools.permutations([T0 + 30, T0 - 5, T0 + 1000, T0, T0 + 30]))[::7]
)
def test_first_and_last_seen_are_min_and_max_in_any_order(order: tuple[int, ...]) -> None:
    profile, _ = run(ev(ts=ts) for ts in order)
    assert profile.first_seen_ms == T0 - 5
    assert profile.last_seen_ms == T0 + 1000


# --- cart ------------------------------------------------------------------------------------


def test_cart_add_add_same_remove_partially_remove_fully() -> None:
    profile, _ = run([add("p1", 10.0, 2)])
    assert cart_of(profile) == {"p1": (2, 10.0)}
    profile, _ = run([add("p2", 3.333, 1)], profile)
    assert cart_of(profile) == {"p1": (2, 10.0), "p2": (1, 3.33)}
    profile, _ = run([add("p1", 12.0, 3)], profile)
    assert cart_of(profile) == {"p1": (5, 12.0), "p2": (1, 3.33)}  # latest price wins
    assert profile.cart_value() == 63.33
    profile, _ = run([remove("p1", 2)], profile)
    assert cart_of(profile) == {"p1": (3, 12.0), "p2": (1, 3.33)}
    profile, _ = run([remove("p1")], profile)  # no quantity: one unit
    assert cart_of(profile) == {"p1": (2, 12.0), "p2": (1, 3.33)}
    profile, _ = run([remove("p1", 2)], profile)
    assert cart_of(profile) == {"p2": (1, 3.33)}
    profile, _ = run([remove("p2", 50)], profile)  # more than in the cart
    assert profile.cart == {}


def test_order_completed_clears_the_cart() -> None:
    profile, _ = run([add("p1", 10.0, 2), add("p2", 5.0), view("shoes")])
    assert profile.cart and profile.views_since_add == 1
    profile, _ = run([ev("Order Completed", {"revenue": 25})], profile)
    assert profile.cart == {}
    assert profile.views_since_add == 0


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
    profile, _ = run([add(12, 1.0)])  # type: ignore[arg-type]
    assert cart_of(profile) == {"12": (1, 1.0)}


def test_quantity_of_one_product_is_capped() -> None:
    config = StepConfig(max_quantity=10)
    profile, _ = run([add("p1", 1.0, 8), add("p1", 1.0, 8)], config=config)
    assert cart_of(profile) == {"p1": (10, 1.0)}


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
        None,
        True,
        [10.0],
        {"amount": 10},
    ],
    ids=repr,
)
def test_bad_prices_never_enter_the_cart(price: object) -> None:
    profile, outs = run([add("p1", price, 1)])
    assert profile.cart == {}
    assert "sanitized:price" in outs[0].notes
    assert profile.counts == {"Product Added": 1}
    assert len(outs[0].decisions) == 1


@pytest.mark.parametrize(
    "quantity",
    [0, -1, 1.5, 10**9, 1001, 10**400, True, False, "abc", "", float("nan"), float("inf"), [1]],
    ids=repr,
)
def test_bad_quantities_never_enter_the_cart(quantity: object) -> None:
    profile, outs = run([add("p1", 10.0, quantity)])
    assert profile.cart == {}
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


@pytest.mark.parametrize("product", [None, "", "   ", True, 1.5, "x" * 101, ["p1"]], ids=repr)
def test_bad_product_ids_never_enter_the_cart(product: object) -> None:
    profile, outs = run([ev("Product Added", {"product_id": product, "price": 1.0})])
    assert profile.cart == {}
    assert "sanitized:product_id" in outs[0].notes


def test_notes_name_every_refused_value() -> None:
    _, outs = run([ev("Product Added", {"price": "x", "quantity": 0})])
    assert set(outs[0].notes) == {
        "sanitized:product_id",
        "sanitized:price",
        "sanitized:quantity",
    }


def test_cart_is_bounded_by_max_cart_lines() -> None:
    config = StepConfig(max_cart_lines=3)
    profile, outs = run([add(f"p{i}", 1.0) for i in range(6)], config=config)
    assert list(profile.cart) == ["p0", "p1", "p2"]
    assert [("cart_full" in o.notes) for o in outs] == [False] * 3 + [True] * 3
    # a product already in the full cart can still change
    profile, outs = run([add("p1", 2.0, 4)], profile, config)
    assert cart_of(profile)["p1"] == (5, 2.0)
    assert outs[0].notes == ()


# --- category views --------------------------------------------------------------------------


def test_category_views_are_normalized_and_counted() -> None:
    profile, outs = run([view("Shoes"), view(" shoes "), view("SHOES"), view("Books")])
    assert profile.category_views == {"shoes": 3, "books": 1}
    assert all(o.notes == () for o in outs)


@pytest.mark.parametrize("category", ["", "   ", 7, None, ["shoes"], "c" * 101], ids=repr)
def test_bad_categories_are_not_counted(category: object) -> None:
    profile, outs = run([view(category)])
    assert profile.category_views == {}
    assert outs[0].notes == ("sanitized:category",)
    assert profile.views_since_add == 1


def test_view_without_category_is_not_a_note() -> None:
    profile, outs = run([ev("Product Viewed", {"product_id": "p"})])
    assert outs[0].notes == ()
    assert profile.category_views == {}


def test_category_views_are_bounded_by_max_categories() -> None:
    config = StepConfig(max_categories=3)
    profile, _ = run(
        [view("a"), view("a"), view("a"), view("b"), view("b"), view("c")], config=config
    )
    assert profile.category_views == {"a": 3, "b": 2, "c": 1}
    profile, _ = run([view("d")], profile, config)  # c and d tie at 1: c goes
    assert profile.category_views == {"a": 3, "b": 2, "d": 1}
    profile, _ = run([view(f"x{i}") for i in range(50)], profile, config)
    assert len(profile.category_views) == 3
    assert profile.category_views["a"] == 3
    assert profile.category_views["b"] == 2


def test_views_since_add_counts_product_views_after_the_last_add() -> None:
    profile, _ = run([view("a"), view("b")])
    assert profile.views_since_add == 2
    profile, _ = run([add("p1", 1.0)], profile)
    assert profile.views_since_add == 0
    profile, _ = run([view("a"), ev(kind=EventType.PAGE), add("p2", "bad")], profile)
    assert profile.views_since_add == 1  # a refused add does not reset it


# --- duplicates and redelivery ---------------------------------------------------------------


def test_duplicate_message_id_is_applied_once() -> None:
    first = add("p1", 10.0, 1, mid="m-same")
    profile, out1 = step(None, first, CFG)
    again, out2 = step(profile, first, CFG)
    assert len(out1.decisions) == 1
    assert out2.decisions == ()
    assert out2.skipped == SKIP_DUPLICATE
    assert again.to_bytes() == profile.to_bytes()
    assert again.counts == {"Product Added": 1}
    assert cart_of(again) == {"p1": (1, 10.0)}


def test_duplicate_with_different_content_is_still_a_duplicate() -> None:
    profile, _ = run([add("p1", 10.0, 1, mid="m-x")])
    profile, outs = run([ev("Order Completed", mid="m-x", ts=T0 + 99)], profile)
    assert outs[0].skipped == SKIP_DUPLICATE
    assert profile.counts == {"Product Added": 1}
    assert profile.cart and profile.last_seen_ms == T0


def test_duplicate_at_a_new_offset_records_the_offset_but_changes_nothing_else() -> None:
    src = SourcePosition("events", 2, 10)
    profile, _ = run([view("a", mid="m-r", source=src)])
    again, out = step(profile, view("a", mid="m-r", source=SourcePosition("events", 2, 11)), CFG)
    assert out.skipped == SKIP_DUPLICATE
    assert out.decisions == ()
    assert again.applied == {"events:2": 11}
    assert again.counts == profile.counts
    assert again.category_views == profile.category_views


@pytest.mark.parametrize("offset", [10, 9, 0])
def test_redelivered_record_is_skipped_and_profile_returned_unchanged(offset: int) -> None:
    profile, _ = run([view("a", source=SourcePosition("events", 2, 10))])
    before = profile.to_bytes()
    # a different message id: the position alone says it was applied already
    again, out = step(profile, view("b", source=SourcePosition("events", 2, offset)), CFG)
    assert out.skipped == SKIP_ALREADY_APPLIED
    assert out.decisions == ()
    assert out.notes == ()
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
    # the last three are remembered ...
    for i in (7, 8, 9):
        _, out = step(profile, view("a", mid=f"w{i}"), config)
        assert out.skipped == SKIP_DUPLICATE
    # ... an older one is not (bounded memory: it is applied again)
    again, out = step(profile, view("a", mid="w0"), config)
    assert out.skipped is None
    assert again.counts == {"Product Viewed": 11}
    assert len(again.recent_messages) == 3


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
        ev(kind=EventType.PAGE),
        ev("Anything"),
    ]
    _, outs = run(events)
    assert [len(o.decisions) for o in outs] == [1] * len(events)
    decisions = [o.decisions[0] for o in outs]
    assert [d.event_message_id for d in decisions] == [e.message_id for e in events]
    assert [d.event_name for d in decisions] == [e.name for e in events]
    assert [d.event_time_ms for d in decisions] == [e.timestamp_ms for e in events]
    assert len({d.decision_id for d in decisions}) == len(events)
    for event, decision in zip(events, decisions, strict=True):
        assert decision.decision_id == decision_id("rules-v1", "u1", event.message_id)


def test_decision_id_is_deterministic() -> None:
    profile = rich_profile()
    event = view("a", mid="m-fixed")
    _, out1 = step(profile, event, CFG)
    _, out2 = step(profile, event, CFG)
    _, out3 = step(profile.copy(), view("a", mid="m-fixed"), CFG)
    assert out1.decisions == out2.decisions == out3.decisions
    assert out1.decisions[0].to_bytes() == out3.decisions[0].to_bytes()


def test_decision_id_changes_with_message_id_user_and_policy_version() -> None:
    ids = {
        step(None, view("a", mid="m-1"), CFG)[1].decisions[0].decision_id,
        step(None, view("a", mid="m-2"), CFG)[1].decisions[0].decision_id,
        step(None, view("a", mid="m-1", user="u2"), CFG)[1].decisions[0].decision_id,
        step(None, view("a", mid="m-1"), StepConfig(policy=PolicyConfig(version="rules-v2")))[1]
        .decisions[0]
        .decision_id,
    }
    assert len(ids) == 4


def test_decision_carries_the_versions_of_the_config() -> None:
    config = StepConfig(feature_version="features-x", policy=PolicyConfig(version="rules-y"))
    _, out = step(None, view("a"), config)
    assert out.decisions[0].versions == {"policy": "rules-y", "features": "features-x"}


def test_prices_in_profiles_are_always_finite() -> None:
    hostile: list[object] = [float("nan"), float("inf"), -1, "1e400", 1e308, 10**400]
    profile, _ = run(add(f"p{i}", price) for i, price in enumerate(hostile))
    profile, _ = run([add("ok", 2.5, 2)], profile)
    assert cart_of(profile) == {"ok": (2, 2.5)}
    assert all(math.isfinite(line.price) for line in profile.cart.values())


def test_a_new_topic_version_is_not_mistaken_for_a_redelivery() -> None:
    """Offsets restart at 0 on a new (versioned) events topic: positions are per topic."""
    profile, _ = run([view("a", mid="m-old", source=SourcePosition("events.v1", 0, 500))])
    again, out = step(
        profile, view("a", mid="m-new", source=SourcePosition("events.v2", 0, 0)), CFG
    )
    assert out.skipped is None and len(out.decisions) == 1
    assert again.applied == {"events.v1:0": 500, "events.v2:0": 0}

"""The rules-v1 policy: each rule fires exactly on its documented condition, in priority order."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from stream import (
    ConfigError,
    Decision,
    Event,
    EventType,
    PolicyConfig,
    Profile,
    StepConfig,
    canonical_bytes,
    decision_id,
    step,
)
from stream.policy import ACTIONS, decide
from stream.profile import CartLine

T0 = 1_700_000_000_000
CFG = StepConfig()
VERSIONS = {"policy": "rules-v1", "features": "features-v1"}
RULES = [name for _, name, _ in ACTIONS]
RULE_ACTION = {name: action for action, name, _ in ACTIONS}


def event(name: str = "Product Viewed", *, user: str = "u1", mid: str = "m1") -> Event:
    kinds = {k.value: k for k in EventType}
    kind = kinds.get(name, EventType.TRACK)
    return Event(mid, kind, name, user, T0)


def profile(
    *,
    known: bool = True,
    cart_value: float = 0.0,
    lines: int = 1,
    views_since_add: int = 0,
    counts: dict[str, int] | None = None,
    categories: dict[str, int] | None = None,
) -> Profile:
    """A profile with a cart of ``lines`` lines worth ``cart_value`` in total (if non-zero)."""
    cart: dict[str, CartLine] = {}
    if cart_value:
        price = round(cart_value / lines, 2)
        cart = {f"p{i}": CartLine(1, price) for i in range(lines)}
        assert round(price * lines, 2) == cart_value
    return Profile(
        user_key="u1",
        user_id="u1" if known else None,
        anonymous_id=None if known else "a1",
        counts=counts or {},
        cart=cart,
        category_views=categories or {},
        views_since_add=views_since_add,
    )


def choose(p: Profile, e: Event | None = None, config: StepConfig = CFG) -> Decision:
    return decide(p, e or event(), config, VERSIONS)


def rule_of(d: Decision) -> str:
    assert len(d.reasons) == 1
    return d.reasons[0].rule


def eligible_rules(d: Decision) -> set[str]:
    others = {a.rule for a in d.alternatives if a.eligible}
    return others | {rule_of(d)}


#: A profile on which every rule but protect_purchase is eligible for a product view.
def everything() -> Profile:
    return profile(
        known=False,
        cart_value=100.0,
        views_since_add=3,
        counts={"page": 5},
        categories={"shoes": 3},
    )


# --- each rule -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Checkout Started", "Order Completed"])
def test_purchase_steps_are_protected(name: str) -> None:
    d = choose(everything(), event(name))
    assert (d.action, rule_of(d), d.score) == ("none", "protect_purchase", 1.0)
    assert d.params == {}


@pytest.mark.parametrize(
    "name", ["Product Viewed", "Cart Viewed", "Product Added", "page", "Checkout Step Viewed"]
)
def test_other_events_are_not_protected(name: str) -> None:
    d = choose(everything(), event(name))
    assert "protect_purchase" not in eligible_rules(d)
    assert d.action != "none"


@pytest.mark.parametrize(
    ("cart_value", "views", "fires"),
    [
        (50.0, 3, True),
        (49.99, 3, False),
        (50.0, 2, False),
        (49.99, 2, False),
        (400.0, 20, True),
        (50.01, 3, True),
    ],
)
def test_offer_discount_needs_cart_value_and_hesitation(
    cart_value: float, views: int, fires: bool
) -> None:
    d = choose(profile(cart_value=cart_value, views_since_add=views))
    assert (d.action == "offer_discount") is fires
    assert ("hesitating_cart" in eligible_rules(d)) is fires
    if not fires:
        assert d.action == "remind_cart"


@pytest.mark.parametrize(("cart_value", "score"), [(50.0, 0.25), (100.0, 0.5), (1000.0, 1.0)])
def test_offer_discount_score_grows_with_cart_value(cart_value: float, score: float) -> None:
    d = choose(profile(cart_value=cart_value, views_since_add=3))
    assert d.action == "offer_discount"
    assert d.score == score
    assert d.reasons[0].features == {"cart_value": cart_value, "views_since_add": 3}


def test_offer_discount_thresholds_come_from_the_config() -> None:
    config = StepConfig(
        policy=PolicyConfig(discount_min_cart_value=10.0, discount_min_views_since_add=1)
    )
    p = profile(cart_value=10.0, views_since_add=1)
    assert choose(p, config=config).action == "offer_discount"
    assert choose(p).action == "remind_cart"


@pytest.mark.parametrize("lines", [1, 2, 5, 7])
def test_remind_cart_fires_for_an_open_cart(lines: int) -> None:
    d = choose(profile(cart_value=float(lines), lines=lines))
    assert (d.action, rule_of(d)) == ("remind_cart", "open_cart")
    assert d.score == round(0.5 + 0.1 * min(lines, 5), 4)
    assert d.reasons[0].features == {"cart_lines": lines}


@pytest.mark.parametrize("name", ["Product Added", "Product Removed", "Cart Viewed"])
def test_remind_cart_does_not_fire_on_a_cart_action(name: str) -> None:
    d = choose(profile(cart_value=20.0), event(name))
    assert "open_cart" not in eligible_rules(d)
    assert d.action == "none"


def test_remind_cart_does_not_fire_for_an_empty_cart() -> None:
    d = choose(profile())
    assert "open_cart" not in eligible_rules(d)
    assert (d.action, rule_of(d)) == ("none", "default")


@pytest.mark.parametrize(
    ("counts", "fires"),
    [
        ({"page": 5}, True),
        ({"page": 4}, False),
        ({"page": 2, "screen": 2, "Product Viewed": 1}, True),
        ({"screen": 4, "Product Viewed": 0}, False),
        ({"Product Viewed": 5}, True),
        ({"page": 4, "Product Clicked": 50, "track:other": 50, "identify": 9}, False),
    ],
)
def test_invite_signup_needs_an_engaged_anonymous_user(counts: dict[str, int], fires: bool) -> None:
    d = choose(profile(known=False, counts=counts))
    assert (d.action == "invite_signup") is fires
    if fires:
        assert rule_of(d) == "engaged_anonymous"
        assert d.reasons[0].features["known_user"] is False


def test_invite_signup_never_fires_for_a_known_user() -> None:
    d = choose(profile(known=True, counts={"page": 100, "Product Viewed": 100}))
    assert "engaged_anonymous" not in eligible_rules(d)


def test_invite_signup_score() -> None:
    assert choose(profile(known=False, counts={"page": 10})).score == 0.5
    assert choose(profile(known=False, counts={"page": 50})).score == 1.0


@pytest.mark.parametrize(
    ("categories", "expected"),
    [
        ({"shoes": 3}, "shoes"),
        ({"shoes": 2}, None),
        ({"shoes": 2, "books": 2, "toys": 2}, None),
        ({"shoes": 5, "books": 9}, "books"),
        ({}, None),
    ],
)
def test_recommend_category_needs_enough_views_of_the_top_category(
    categories: dict[str, int], expected: str | None
) -> None:
    d = choose(profile(categories=categories))
    if expected is None:
        assert "category_interest" not in eligible_rules(d)
        assert d.action == "none"
    else:
        assert (d.action, rule_of(d)) == ("recommend_category", "category_interest")
        assert d.params == {"category": expected}
        assert d.reasons[0].features["top_category"] == expected
        assert d.score == round(categories[expected] / sum(categories.values()), 4)


def test_recommend_category_tie_break_does_not_depend_on_insertion_order() -> None:
    forward = choose(profile(categories={"books": 4, "shoes": 4, "toys": 1}))
    backward = choose(profile(categories={"toys": 1, "shoes": 4, "books": 4}))
    assert forward.params == backward.params
    assert forward.params["category"] in {"books", "shoes"}


def test_recommend_category_threshold_comes_from_the_config() -> None:
    config = StepConfig(policy=PolicyConfig(recommend_min_category_views=1))
    assert choose(profile(categories={"shoes": 1}), config=config).action == "recommend_category"


def test_none_is_the_default() -> None:
    d = choose(Profile(user_key="u1"))
    assert (d.action, rule_of(d), d.score, d.params) == ("none", "default", 0.0, {})
    assert not any(a.eligible for a in d.alternatives)


# --- priorities ------------------------------------------------------------------------------


def test_priority_order_when_rules_drop_out_one_by_one() -> None:
    p = everything()
    assert eligible_rules(choose(p)) == set(RULES) - {"protect_purchase"}
    assert choose(p).action == "offer_discount"
    p.views_since_add = 0
    assert choose(p).action == "remind_cart"
    p.cart.clear()
    assert choose(p).action == "invite_signup"
    p.user_id = "u1"
    assert choose(p).action == "recommend_category"
    p.category_views.clear()
    assert choose(p).action == "none"


def test_checkout_protection_beats_an_open_cart_and_a_discount() -> None:
    p = everything()
    assert choose(p, event("Cart Viewed")).action == "offer_discount"
    assert choose(p, event("Checkout Started")).action == "none"


def test_discount_beats_reminder_even_on_a_cart_action() -> None:
    d = choose(profile(cart_value=80.0, views_since_add=3), event("Cart Viewed"))
    assert d.action == "offer_discount"


# --- the decision record ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "name"),
    [
        (everything(), "Checkout Started"),
        (everything(), "Product Viewed"),
        (profile(cart_value=5.0), "page"),
        (profile(known=False, counts={"page": 9}), "page"),
        (profile(categories={"x": 3}), "Product Viewed"),
        (Profile(user_key="u1"), "identify"),
    ],
)
def test_alternatives_list_every_other_rule_once(p: Profile, name: str) -> None:
    d = choose(p, event(name))
    rules = [a.rule for a in d.alternatives]
    assert len(rules) == len(set(rules)) == len(RULES) - 1
    assert set(rules) | {rule_of(d)} == set(RULES)
    assert {a.action for a in d.alternatives} | {d.action} == set(RULE_ACTION.values())
    for alternative in d.alternatives:
        assert alternative.action == RULE_ACTION[alternative.rule]
        assert 0.0 <= alternative.score <= 1.0
        if not alternative.eligible:
            assert alternative.score == 0.0
    # the chosen rule is the first eligible one in priority order
    first = next(r for r in RULES if r in eligible_rules(d))
    assert rule_of(d) == first


def test_reasons_name_the_rule_and_say_why() -> None:
    d = choose(profile(cart_value=62.5, views_since_add=4))
    (reason,) = d.reasons
    assert reason.rule == "hesitating_cart"
    assert "62.50" in reason.detail
    assert "4" in reason.detail


def test_decision_fields() -> None:
    p = profile(known=False, counts={"page": 6})
    d = choose(p, event("page", mid="m-77"))
    assert d.decision_id == decision_id("rules-v1", "u1", "m-77")
    assert (d.user_key, d.user_id, d.anonymous_id) == ("u1", None, "a1")
    assert (d.event_message_id, d.event_name, d.event_time_ms) == ("m-77", "page", T0)
    assert (d.propensity, d.variant) == (1.0, "champion")
    assert d.versions == VERSIONS


def test_decision_json_has_the_documented_fields() -> None:
    _, out = step(None, Event("m9", EventType.PAGE, "page", "u9", T0, user_id="u9"), CFG)
    (d,) = out.decisions
    doc = orjson.loads(d.to_bytes())
    assert list(doc) == [
        "schema",
        "decision_id",
        "user",
        "event",
        "action",
        "params",
        "score",
        "propensity",
        "variant",
        "alternatives",
        "reasons",
        "versions",
    ]
    assert doc["schema"] == "decision.v1"
    assert doc["decision_id"] == decision_id("rules-v1", "u9", "m9")
    assert doc["user"] == {"key": "u9", "user_id": "u9", "anonymous_id": None}
    assert doc["event"] == {"message_id": "m9", "name": "page", "time_ms": T0}
    assert doc["action"] == "none"
    assert doc["params"] == {}
    assert doc["propensity"] == 1.0
    assert doc["variant"] == "champion"
    assert doc["versions"] == {"policy": "rules-v1", "features": "features-v1"}
    assert len(doc["alternatives"]) == len(RULES) - 1
    assert [a["rule"] for a in doc["alternatives"]] == RULES[:-1]
    for alternative in doc["alternatives"]:
        assert {"action", "score", "eligible", "rule"} <= set(alternative)
        assert alternative["eligible"] is False
        assert alternative["score"] == 0.0
    assert doc["reasons"] == [{"rule": "default", "detail": d.reasons[0].detail, "features": {}}]


def test_recommend_category_json_carries_the_category_param() -> None:
    doc = orjson.loads(choose(profile(categories={"shoes": 4})).to_bytes())
    assert doc["action"] == "recommend_category"
    assert doc["params"] == {"category": "shoes"}


def test_processing_block_is_added_with_an_emit_time_and_removed_by_canonical_bytes() -> None:
    d = choose(everything())
    plain = d.to_bytes()
    stamped = d.to_bytes(emitted_at_ms=T0 + 250)
    assert "processing" not in orjson.loads(plain)
    doc: dict[str, Any] = orjson.loads(stamped)
    assert list(doc)[-1] == "processing"
    assert doc["processing"] == {"emitted_at_ms": T0 + 250, "event_to_emit_ms": 250}
    assert stamped != plain
    assert canonical_bytes(stamped) == plain
    assert canonical_bytes(plain) == plain
    assert canonical_bytes(d.to_bytes(emitted_at_ms=T0 - 10)) == plain


def test_emit_time_zero_still_adds_the_processing_block() -> None:
    d = choose(Profile(user_key="u1"))
    doc = orjson.loads(d.to_bytes(emitted_at_ms=0))
    assert doc["processing"] == {"emitted_at_ms": 0, "event_to_emit_ms": -T0}


def test_decisions_are_deterministic() -> None:
    assert choose(everything()).to_bytes() == choose(everything()).to_bytes()


@pytest.mark.parametrize(
    "changes",
    [
        {"discount_min_cart_value": -1.0},
        {"discount_min_views_since_add": 0},
        {"signup_min_page_views": 0},
        {"recommend_min_category_views": -3},
    ],
)
def test_invalid_policy_thresholds_are_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        PolicyConfig(**changes)

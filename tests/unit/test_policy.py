"""The rules-v2 policy: each rule fires exactly on its documented condition, in priority order.

Rules read a feature mapping (:func:`stream.features.feature_vector`); these tests build that
mapping directly, so each rule's boundary is one number away from the threshold.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
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
from stream.features import feature_vector
from stream.ordered import CartLine, OrderedState
from stream.policy import ACTIONS, decide

T0 = 1_700_000_000_000
CFG = StepConfig()
VERSIONS = {"policy": "rules-v2", "features": "features-v2"}
RULES = [rule.name for rule in ACTIONS]
RULE_ACTION = {rule.name: rule.action for rule in ACTIONS}

#: Every feature the rules read, at its value for a known user with no history.
NEUTRAL: dict[str, Any] = {
    "cart_value": 0.0,
    "cart_lines": 0,
    "views_since_add": 0,
    "views_total": 0,
    "known_user": True,
    "top_category": None,
    "top_category_affinity": 0.0,
}


def features(**changes: Any) -> dict[str, Any]:
    unknown = set(changes) - set(NEUTRAL)
    assert not unknown, f"the policy does not read {unknown}"
    return {**NEUTRAL, **changes}


def event(name: str = "Product Viewed", *, user: str = "u1", mid: str = "m1") -> Event:
    kinds = {k.value: k for k in EventType}
    return Event(mid, kinds.get(name, EventType.TRACK), name, user, T0)


def identity(known: bool) -> Profile:
    """The profile only gives the decision its user ids; the rules read the features."""
    return Profile("u1", user_id="u1" if known else None, anonymous_id=None if known else "a1")


def choose(f: Mapping[str, Any], e: Event | None = None, config: StepConfig = CFG) -> Decision:
    return decide(identity(bool(f["known_user"])), f, e or event(), config, VERSIONS)


def rule_of(d: Decision) -> str:
    assert len(d.reasons) == 1
    return d.reasons[0].rule


def eligible_rules(d: Decision) -> set[str]:
    return {a.rule for a in d.alternatives if a.eligible} | {rule_of(d)}


def everything() -> dict[str, Any]:
    """Features on which every rule but protect_purchase is eligible for a product view."""
    return features(
        known_user=False,
        cart_value=100.0,
        cart_lines=2,
        views_since_add=3,
        views_total=5,
        top_category="shoes",
        top_category_affinity=3.0,
    )


# --- what the policy reads -------------------------------------------------------------------


class Recording(Mapping[str, Any]):
    """A feature mapping that records which features were read."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values, self.read = dict(values), set[str]()

    def __getitem__(self, name: str) -> Any:
        self.read.add(name)
        return self.values[name]

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the policy must not read the whole feature vector")

    def __len__(self) -> int:
        return len(self.values)


def test_the_rules_read_only_the_documented_features() -> None:
    """Every feature when every rule has to look at all of its inputs; a subset otherwise (a
    rule stops reading once a condition fails)."""
    everything_read, neutral_read = Recording(everything()), Recording(features())
    choose(everything_read)
    choose(neutral_read)
    assert everything_read.read == set(NEUTRAL)
    assert neutral_read.read < set(NEUTRAL)


def test_the_feature_vector_provides_every_feature_the_rules_read_with_neutral_defaults() -> None:
    fresh = dict(feature_vector(Profile("u1", user_id="u1"), CFG))
    assert {name: fresh[name] for name in NEUTRAL} == NEUTRAL


def test_the_rules_read_the_features_not_the_profile_state() -> None:
    p = identity(known=True)
    p.head = OrderedState(cart={f"p{i}": CartLine(1, 100.0) for i in range(3)}, views_since_add=9)
    d = decide(p, features(), event(), CFG, VERSIONS)
    assert (d.action, rule_of(d)) == ("none", "default")


# --- each rule -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Checkout Started", "Order Completed"])
def test_purchase_steps_are_protected(name: str) -> None:
    d = choose(everything(), event(name))
    assert (d.action, rule_of(d), d.score, d.params) == ("none", "protect_purchase", 1.0, {})
    assert d.reasons[0].features == {}
    assert eligible_rules(d) == set(RULES)  # the others are eligible, and lose


@pytest.mark.parametrize(
    "name",
    ["Product Viewed", "Cart Viewed", "Product Added", "page", "Checkout Step Viewed", "order"],
)
def test_other_events_are_not_protected(name: str) -> None:
    d = choose(everything(), event(name))
    assert "protect_purchase" not in eligible_rules(d)
    assert (d.action, rule_of(d)) == ("offer_discount", "hesitating_cart")


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
    d = choose(features(cart_value=cart_value, cart_lines=1, views_since_add=views))
    assert (d.action == "offer_discount") is fires
    assert ("hesitating_cart" in eligible_rules(d)) is fires
    if not fires:
        assert (d.action, rule_of(d)) == ("remind_cart", "open_cart")
        (discount,) = [a for a in d.alternatives if a.rule == "hesitating_cart"]
        assert (discount.action, discount.score, discount.eligible) == (
            "offer_discount",
            0.0,
            False,
        )


@pytest.mark.parametrize(
    ("cart_value", "score"), [(50.0, 0.25), (75.0, 0.375), (100.0, 0.5), (200.0, 1.0), (1e4, 1.0)]
)
def test_offer_discount_score_grows_with_cart_value(cart_value: float, score: float) -> None:
    d = choose(features(cart_value=cart_value, cart_lines=1, views_since_add=3))
    assert (d.action, rule_of(d), d.score, d.params) == (
        "offer_discount",
        "hesitating_cart",
        score,
        {},
    )
    assert d.reasons[0].features == {"cart_value": cart_value, "views_since_add": 3}


def test_offer_discount_thresholds_come_from_the_config() -> None:
    config = StepConfig(
        policy=PolicyConfig(discount_min_cart_value=10.0, discount_min_views_since_add=1)
    )
    f = features(cart_value=10.0, cart_lines=1, views_since_add=1)
    d = choose(f, config=config)
    assert (d.action, d.score) == ("offer_discount", 0.25)  # 10 / (4 * 10)
    assert choose(f).action == "remind_cart"


@pytest.mark.parametrize(("lines", "score"), [(1, 0.6), (2, 0.7), (4, 0.9), (5, 1.0), (7, 1.0)])
def test_remind_cart_fires_for_an_open_cart(lines: int, score: float) -> None:
    d = choose(features(cart_value=float(lines), cart_lines=lines))
    assert (d.action, rule_of(d), d.score, d.params) == ("remind_cart", "open_cart", score, {})
    assert d.reasons[0].features == {"cart_lines": lines}


@pytest.mark.parametrize("name", ["Product Added", "Product Removed", "Cart Viewed"])
def test_remind_cart_does_not_fire_on_a_cart_action(name: str) -> None:
    d = choose(features(cart_value=20.0, cart_lines=1), event(name))
    assert "open_cart" not in eligible_rules(d)
    assert (d.action, rule_of(d)) == ("none", "default")


def test_remind_cart_does_not_fire_for_an_empty_cart() -> None:
    d = choose(features(cart_lines=0, views_since_add=50))
    assert "open_cart" not in eligible_rules(d)
    assert (d.action, rule_of(d)) == ("none", "default")


@pytest.mark.parametrize(("views", "fires"), [(5, True), (4, False), (0, False), (500, True)])
def test_invite_signup_needs_an_engaged_anonymous_user(views: int, fires: bool) -> None:
    d = choose(features(known_user=False, views_total=views))
    assert (d.action == "invite_signup") is fires
    assert ("engaged_anonymous" in eligible_rules(d)) is fires
    if fires:
        assert rule_of(d) == "engaged_anonymous"
        assert d.reasons[0].features == {"views_total": views, "known_user": False}
        assert d.params == {}


def test_invite_signup_never_fires_for_a_known_user() -> None:
    d = choose(features(known_user=True, views_total=1000))
    assert "engaged_anonymous" not in eligible_rules(d)
    assert d.action == "none"


@pytest.mark.parametrize(
    ("views", "score"), [(5, 0.25), (10, 0.5), (15, 0.75), (20, 1.0), (50, 1.0)]
)
def test_invite_signup_score(views: int, score: float) -> None:
    assert choose(features(known_user=False, views_total=views)).score == score


def test_invite_signup_threshold_comes_from_the_config() -> None:
    config = StepConfig(policy=PolicyConfig(signup_min_page_views=1))
    d = choose(features(known_user=False, views_total=1), config=config)
    assert (d.action, d.score) == ("invite_signup", 0.25)


@pytest.mark.parametrize(
    ("affinity", "score"),
    [(3.0, 0.25), (4.5, 0.375), (6.0, 0.5), (12.0, 1.0), (99.0, 1.0), (2.9999, None), (0.0, None)],
)
def test_recommend_category_needs_enough_decayed_affinity(
    affinity: float, score: float | None
) -> None:
    d = choose(features(top_category="shoes", top_category_affinity=affinity))
    if score is None:
        assert "category_interest" not in eligible_rules(d)
        assert (d.action, d.params) == ("none", {})
    else:
        assert (d.action, rule_of(d), d.score) == ("recommend_category", "category_interest", score)
        assert d.params == {"category": "shoes"}
        assert d.reasons[0].features == {"top_category": "shoes", "top_category_affinity": affinity}


def test_recommend_category_needs_a_top_category() -> None:
    # An affinity without a category cannot happen, but the rule must not recommend None.
    d = choose(features(top_category=None, top_category_affinity=10.0))
    assert "category_interest" not in eligible_rules(d)
    assert d.action == "none"


def test_recommend_category_threshold_comes_from_the_config() -> None:
    config = StepConfig(policy=PolicyConfig(recommend_min_affinity=0.5))
    d = choose(features(top_category="books", top_category_affinity=0.5), config=config)
    assert (d.action, d.params, d.score) == ("recommend_category", {"category": "books"}, 0.25)


def test_none_is_the_default() -> None:
    d = choose(features())
    assert (d.action, rule_of(d), d.score, d.params) == ("none", "default", 0.0, {})
    assert d.reasons[0].features == {}
    assert not any(a.eligible for a in d.alternatives)
    assert all(a.score == 0.0 for a in d.alternatives)


# --- priorities ------------------------------------------------------------------------------


def test_priority_order_when_rules_drop_out_one_by_one() -> None:
    f = everything()
    assert eligible_rules(choose(f)) == set(RULES) - {"protect_purchase"}
    assert choose(f).action == "offer_discount"
    f["views_since_add"] = 2
    assert choose(f).action == "remind_cart"
    f.update(cart_lines=0, cart_value=0.0)
    assert choose(f).action == "invite_signup"
    f["known_user"] = True
    assert choose(f).action == "recommend_category"
    f["top_category_affinity"] = 1.0
    assert choose(f).action == "none"


def test_checkout_protection_beats_an_open_cart_and_a_discount() -> None:
    f = everything()
    assert choose(f, event("Cart Viewed")).action == "offer_discount"
    assert choose(f, event("Checkout Started")).action == "none"


def test_discount_beats_reminder_even_on_a_cart_action() -> None:
    f = features(cart_value=80.0, cart_lines=1, views_since_add=3)
    assert choose(f, event("Cart Viewed")).action == "offer_discount"


def test_every_eligible_alternative_keeps_its_own_score() -> None:
    d = choose(everything())
    scores = {a.rule: (a.eligible, a.score) for a in d.alternatives}
    assert scores == {
        "protect_purchase": (False, 0.0),
        "open_cart": (True, 0.7),
        "engaged_anonymous": (True, 0.25),
        "category_interest": (True, 0.25),
        "default": (True, 0.0),
    }
    assert d.score == 0.5


# --- the decision record ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("f", "name"),
    [
        (everything(), "Checkout Started"),
        (everything(), "Product Viewed"),
        (features(cart_value=5.0, cart_lines=1), "page"),
        (features(known_user=False, views_total=9), "page"),
        (features(top_category="x", top_category_affinity=3.0), "Product Viewed"),
        (features(top_category="x", top_category_affinity=1.0), "Product Viewed"),
        (features(), "identify"),
    ],
)
def test_alternatives_list_every_other_rule_once(f: dict[str, Any], name: str) -> None:
    d = choose(f, event(name))
    rules = [a.rule for a in d.alternatives]
    assert rules == [r for r in RULES if r != rule_of(d)]  # in priority order
    assert {a.action for a in d.alternatives} | {d.action} == set(RULE_ACTION.values())
    for alternative in d.alternatives:
        assert alternative.action == RULE_ACTION[alternative.rule]
        assert 0.0 <= alternative.score <= 1.0
        if not alternative.eligible:
            assert alternative.score == 0.0
    # the chosen rule is the first eligible one in priority order
    first = next(r for r in RULES if r in eligible_rules(d))
    assert rule_of(d) == first


@pytest.mark.parametrize(
    ("f", "words"),
    [
        (features(cart_value=62.5, cart_lines=1, views_since_add=4), ["62.50", "50.00", "4"]),
        (features(cart_value=9.0, cart_lines=3), ["3 product(s)", "'Product Viewed'"]),
        (features(known_user=False, views_total=7), ["anonymous", "7 views"]),
        (features(top_category="shoes", top_category_affinity=3.5), ["'shoes'", "3.50", "3.00"]),
        (features(), ["default"]),
    ],
)
def test_reasons_name_the_rule_and_say_why(f: dict[str, Any], words: list[str]) -> None:
    (reason,) = choose(f).reasons
    for word in words:
        assert word in reason.detail


def test_decision_fields() -> None:
    d = choose(features(known_user=False, views_total=6), event("page", mid="m-77"))
    assert d.decision_id == decision_id("rules-v2", "u1", "m-77")
    assert (d.user_key, d.user_id, d.anonymous_id) == ("u1", None, "a1")
    assert (d.event_message_id, d.event_name, d.event_time_ms) == ("m-77", "page", T0)
    assert (d.propensity, d.variant) == (1.0, "champion")
    assert d.versions == VERSIONS


def test_the_decision_id_comes_from_the_policy_version_not_the_versions_argument() -> None:
    d = decide(identity(True), features(), event(mid="m-1"), CFG, {"policy": "other"})
    assert d.decision_id == decision_id("rules-v2", "u1", "m-1")
    assert d.versions == {"policy": "other"}


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
    assert doc["schema"] == "decision.v2"
    assert doc["decision_id"] == decision_id("rules-v2", "u9", "m9")
    assert doc["user"] == {"key": "u9", "user_id": "u9", "anonymous_id": None}
    assert doc["event"] == {"message_id": "m9", "name": "page", "time_ms": T0}
    assert doc["action"] == "none"
    assert doc["params"] == {}
    assert doc["propensity"] == 1.0
    assert doc["variant"] == "champion"
    assert doc["versions"] == {"policy": "rules-v2", "features": "features-v2"}
    assert [a["rule"] for a in doc["alternatives"]] == RULES[:-1]
    for alternative in doc["alternatives"]:
        assert set(alternative) == {"action", "score", "eligible", "rule"}
        assert alternative["eligible"] is False
        assert alternative["score"] == 0.0
    assert doc["reasons"] == [{"rule": "default", "detail": d.reasons[0].detail, "features": {}}]


def test_recommend_category_json_carries_the_category_param_and_its_features() -> None:
    doc = orjson.loads(choose(features(top_category="shoes", top_category_affinity=4.0)).to_bytes())
    assert doc["action"] == "recommend_category"
    assert doc["params"] == {"category": "shoes"}
    assert doc["reasons"][0]["features"] == {"top_category": "shoes", "top_category_affinity": 4.0}


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
    d = choose(features())
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
        {"recommend_min_affinity": 0.0},
        {"recommend_min_affinity": -3.0},
    ],
)
def test_invalid_policy_thresholds_are_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        PolicyConfig(**changes)


def test_the_rules_v1_threshold_is_gone() -> None:
    assert PolicyConfig().version == "rules-v2"
    with pytest.raises(TypeError):
        PolicyConfig(recommend_min_category_views=3)  # type: ignore[call-arg]

"""The rule-based default policy (``rules-v2``): an explicit, readable baseline.

Every action has one rule that says whether it is eligible for this user now and with what score.
The policy picks the eligible action with the highest priority; ``none`` is always eligible, so
there is always a decision. Rules, highest priority first:

==================  ==========================================================================
action              eligible when (thresholds in :class:`~stream.config.PolicyConfig`)
==================  ==========================================================================
none (protect)      the event is "Checkout Started" or "Order Completed": never interrupt a
                    purchase in progress or just finished
offer_discount      cart value >= ``discount_min_cart_value`` and at least
                    ``discount_min_views_since_add`` product views since the last add (the user
                    hesitates); score grows with the cart value
remind_cart         the cart is not empty and the event is not itself a cart action
invite_signup       the user is anonymous and has at least ``signup_min_page_views`` page,
                    screen or product views
recommend_category  the strongest decayed category affinity is at least
                    ``recommend_min_affinity`` (a view counts 1, an add 3, an order 5, halving
                    every week); the category is the decision's ``params.category``
none                always (score 0)
==================  ==========================================================================

The policy is deterministic, so every decision's propensity is 1.0 and its variant ``champion``;
later policies (bandits, experiments) keep the same contract.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from stream.config import PolicyConfig, StepConfig
from stream.decision import Alternative, Decision, Reason, Scalar, decision_id
from stream.events import Event
from stream.profile import Profile

__all__ = ["ACTIONS", "RuleOutcome", "decide"]

_EMPTY: Mapping[str, Scalar] = MappingProxyType({})
_CART_EVENTS = frozenset({"Product Added", "Product Removed", "Cart Viewed"})
_PROTECTED_EVENTS = frozenset({"Checkout Started", "Order Completed"})


class RuleOutcome(NamedTuple):
    """One rule's verdict: eligible or not, a score in [0, 1], its inputs and, on demand, a
    sentence. The sentence is rendered only for the chosen action: formatting six of them per
    event cost more than the rest of the decision. (Named tuples, not frozen dataclasses, for
    the per-event value objects: a frozen dataclass's ``__init__`` made ``decide`` 1.5x slower.)
    """

    eligible: bool
    score: float
    explain: Callable[[], str]
    features: Mapping[str, Scalar] = _EMPTY
    params: Mapping[str, Scalar] = _EMPTY


#: The feature vector the rules read (see stream.features.feature_vector).
Features = Mapping[str, Any]
Rule = Callable[[Features, Event, PolicyConfig], RuleOutcome]


def _protect_purchase(f: Features, event: Event, cfg: PolicyConfig) -> RuleOutcome:
    active = event.name in _PROTECTED_EVENTS
    verb = "is" if active else "is not"
    return RuleOutcome(
        active, 1.0 if active else 0.0, lambda: f"{event.name!r} {verb} a purchase step"
    )


def _offer_discount(f: Features, event: Event, cfg: PolicyConfig) -> RuleOutcome:
    value, views = f["cart_value"], f["views_since_add"]
    eligible = value >= cfg.discount_min_cart_value and views >= cfg.discount_min_views_since_add
    score = round(min(1.0, value / (4 * cfg.discount_min_cart_value or 1.0)), 4)

    def detail() -> str:
        return (
            f"cart worth {value:.2f} (needs {cfg.discount_min_cart_value:.2f}) and {views}"
            f" product views since the last add (needs {cfg.discount_min_views_since_add})"
        )

    return RuleOutcome(
        eligible,
        score if eligible else 0.0,
        detail,
        {"cart_value": value, "views_since_add": views},
    )


def _remind_cart(f: Features, event: Event, cfg: PolicyConfig) -> RuleOutcome:
    lines = f["cart_lines"]
    eligible = lines > 0 and event.name not in _CART_EVENTS
    score = round(0.5 + 0.1 * min(lines, 5), 4) if eligible else 0.0

    def detail() -> str:
        return f"{lines} product(s) in the cart; current event {event.name!r}"

    return RuleOutcome(eligible, score, detail, {"cart_lines": lines})


def _invite_signup(f: Features, event: Event, cfg: PolicyConfig) -> RuleOutcome:
    views, known = f["views_total"], f["known_user"]
    eligible = not known and views >= cfg.signup_min_page_views
    score = round(min(1.0, views / (4 * cfg.signup_min_page_views)), 4) if eligible else 0.0

    def detail() -> str:
        who = "known" if known else "anonymous"
        return f"{who} user with {views} views (needs anonymous and {cfg.signup_min_page_views})"

    return RuleOutcome(eligible, score, detail, {"views_total": views, "known_user": known})


def _recommend_category(f: Features, event: Event, cfg: PolicyConfig) -> RuleOutcome:
    top, affinity = f["top_category"], f["top_category_affinity"]
    if top is None:
        return RuleOutcome(False, 0.0, lambda: "no category interest yet")
    eligible = affinity >= cfg.recommend_min_affinity
    score = round(min(1.0, affinity / (4 * cfg.recommend_min_affinity)), 4)

    def detail() -> str:
        return (
            f"strongest category interest {top!r}, decayed affinity {affinity:.2f}"
            f" (needs {cfg.recommend_min_affinity:.2f}; a view counts 1, an add 3)"
        )

    return RuleOutcome(
        eligible,
        score if eligible else 0.0,
        detail,
        {"top_category": top, "top_category_affinity": affinity},
        {"category": top} if eligible else {},
    )


def _do_nothing(f: Features, event: Event, cfg: PolicyConfig) -> RuleOutcome:
    return RuleOutcome(True, 0.0, lambda: "default: no other action is eligible")


#: (action, rule name, rule), highest priority first.
ACTIONS: tuple[tuple[str, str, Rule], ...] = (
    ("none", "protect_purchase", _protect_purchase),
    ("offer_discount", "hesitating_cart", _offer_discount),
    ("remind_cart", "open_cart", _remind_cart),
    ("invite_signup", "engaged_anonymous", _invite_signup),
    ("recommend_category", "category_interest", _recommend_category),
    ("none", "default", _do_nothing),
)


def decide(
    profile: Profile,
    features: Features,
    event: Event,
    config: StepConfig,
    versions: dict[str, str],
) -> Decision:
    """The decision for ``profile`` (with its ``features``) right after it absorbed ``event``."""
    cfg = config.policy
    chosen_at = -1
    outcomes = []
    for i, (_, _, rule) in enumerate(ACTIONS):
        outcome = rule(features, event, cfg)
        outcomes.append(outcome)
        if chosen_at < 0 and outcome.eligible:
            chosen_at = i
    action, rule_name, _ = ACTIONS[chosen_at]
    chosen = outcomes[chosen_at]
    alternatives = tuple(
        [
            Alternative(ACTIONS[i][0], o.score, o.eligible, ACTIONS[i][1])
            for i, o in enumerate(outcomes)
            if i != chosen_at
        ]
    )
    return Decision(
        decision_id=decision_id(cfg.version, event.user_key, event.message_id),
        user_key=event.user_key,
        user_id=profile.user_id,
        anonymous_id=profile.anonymous_id,
        event_message_id=event.message_id,
        event_name=event.name,
        event_time_ms=event.timestamp_ms,
        action=action,
        score=chosen.score,
        propensity=1.0,
        variant="champion",
        params=dict(chosen.params),
        alternatives=alternatives,
        reasons=(Reason(rule_name, chosen.explain(), dict(chosen.features)),),
        versions=versions,
    )

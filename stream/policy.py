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
from typing import Any, NamedTuple

from stream.config import PolicyConfig, StepConfig
from stream.decision import Alternative, Decision, Reason, Scalar, decision_id
from stream.events import Event
from stream.profile import Profile

__all__ = ["ACTIONS", "Rule", "decide"]

_CART_EVENTS = frozenset({"Product Added", "Product Removed", "Cart Viewed"})
_PROTECTED_EVENTS = frozenset({"Checkout Started", "Order Completed"})

#: The feature vector the rules read (see stream.features.feature_vector).
Features = Mapping[str, Any]
#: (eligible, score in [0, 1]): what every rule computes for every event.
Verdict = tuple[bool, float]
#: (sentence, the features it used, the action's params): only for the chosen rule.
Explanation = tuple[str, dict[str, Scalar], dict[str, Scalar]]


class Rule(NamedTuple):
    """One action's rule, split in two: ``check`` runs for every rule on every event (it must
    be cheap: it decides eligibility and the score the alternatives report), ``explain`` only
    for the chosen one (formatting six sentences per event cost more than the decision)."""

    action: str
    name: str
    check: Callable[[Features, Event, PolicyConfig], Verdict]
    explain: Callable[[Features, Event, PolicyConfig], Explanation]


def _protect_purchase(f: Features, event: Event, cfg: PolicyConfig) -> Verdict:
    active = event.name in _PROTECTED_EVENTS
    return active, 1.0 if active else 0.0


def _explain_protect(f: Features, event: Event, cfg: PolicyConfig) -> Explanation:
    verb = "is" if event.name in _PROTECTED_EVENTS else "is not"
    return f"{event.name!r} {verb} a purchase step", {}, {}


def _offer_discount(f: Features, event: Event, cfg: PolicyConfig) -> Verdict:
    value = f["cart_value"]
    if value < cfg.discount_min_cart_value or f["views_since_add"] < (
        cfg.discount_min_views_since_add
    ):
        return False, 0.0
    return True, round(min(1.0, value / (4 * cfg.discount_min_cart_value or 1.0)), 4)


def _explain_discount(f: Features, event: Event, cfg: PolicyConfig) -> Explanation:
    value, views = f["cart_value"], f["views_since_add"]
    return (
        f"cart worth {value:.2f} (needs {cfg.discount_min_cart_value:.2f}) and {views}"
        f" product views since the last add (needs {cfg.discount_min_views_since_add})",
        {"cart_value": value, "views_since_add": views},
        {},
    )


def _remind_cart(f: Features, event: Event, cfg: PolicyConfig) -> Verdict:
    lines = f["cart_lines"]
    if lines > 0 and event.name not in _CART_EVENTS:
        return True, round(0.5 + 0.1 * min(lines, 5), 4)
    return False, 0.0


def _explain_cart(f: Features, event: Event, cfg: PolicyConfig) -> Explanation:
    lines = f["cart_lines"]
    return (
        f"{lines} product(s) in the cart; current event {event.name!r}",
        {"cart_lines": lines},
        {},
    )


def _invite_signup(f: Features, event: Event, cfg: PolicyConfig) -> Verdict:
    views = f["views_total"]
    if f["known_user"] or views < cfg.signup_min_page_views:
        return False, 0.0
    return True, round(min(1.0, views / (4 * cfg.signup_min_page_views)), 4)


def _explain_signup(f: Features, event: Event, cfg: PolicyConfig) -> Explanation:
    views, known = f["views_total"], f["known_user"]
    who = "known" if known else "anonymous"
    return (
        f"{who} user with {views} views (needs anonymous and {cfg.signup_min_page_views})",
        {"views_total": views, "known_user": known},
        {},
    )


def _recommend_category(f: Features, event: Event, cfg: PolicyConfig) -> Verdict:
    if f["top_category"] is None:
        return False, 0.0
    affinity = f["top_category_affinity"]
    if affinity < cfg.recommend_min_affinity:
        return False, 0.0
    return True, round(min(1.0, affinity / (4 * cfg.recommend_min_affinity)), 4)


def _explain_category(f: Features, event: Event, cfg: PolicyConfig) -> Explanation:
    top, affinity = f["top_category"], f["top_category_affinity"]
    if top is None:
        return "no category interest yet", {}, {}
    eligible = affinity >= cfg.recommend_min_affinity
    return (
        f"strongest category interest {top!r}, decayed affinity {affinity:.2f}"
        f" (needs {cfg.recommend_min_affinity:.2f}; a view counts 1, an add 3)",
        {"top_category": top, "top_category_affinity": affinity},
        {"category": top} if eligible else {},
    )


def _do_nothing(f: Features, event: Event, cfg: PolicyConfig) -> Verdict:
    return True, 0.0


def _explain_nothing(f: Features, event: Event, cfg: PolicyConfig) -> Explanation:
    return "default: no other action is eligible", {}, {}


#: The rules, highest priority first.
ACTIONS: tuple[Rule, ...] = (
    Rule("none", "protect_purchase", _protect_purchase, _explain_protect),
    Rule("offer_discount", "hesitating_cart", _offer_discount, _explain_discount),
    Rule("remind_cart", "open_cart", _remind_cart, _explain_cart),
    Rule("invite_signup", "engaged_anonymous", _invite_signup, _explain_signup),
    Rule("recommend_category", "category_interest", _recommend_category, _explain_category),
    Rule("none", "default", _do_nothing, _explain_nothing),
)


def decide(
    profile: Profile,
    features: Features,
    event: Event,
    config: StepConfig,
    versions: dict[str, Any],
    predictions: dict[str, Any] | None = None,
) -> Decision:
    """The decision for ``profile`` (with its ``features``) right after it absorbed ``event``."""
    cfg = config.policy
    verdicts = [rule.check(features, event, cfg) for rule in ACTIONS]
    chosen_at = next(i for i, (eligible, _) in enumerate(verdicts) if eligible)
    chosen = ACTIONS[chosen_at]
    detail, used, params = chosen.explain(features, event, cfg)
    alternatives = tuple(
        [
            Alternative(rule.action, score, eligible, rule.name)
            for rule, (eligible, score) in zip(ACTIONS, verdicts, strict=True)
            if rule is not chosen
        ]
    )
    return Decision(
        decision_id(cfg.version, event.user_key, event.message_id),
        event.user_key,
        profile.user_id,
        profile.anonymous_id,
        event.message_id,
        event.name,
        event.timestamp_ms,
        chosen.action,
        verdicts[chosen_at][1],
        1.0,
        "champion",
        params,
        alternatives,
        (Reason(chosen.name, detail, used),),
        versions,
        predictions,
    )

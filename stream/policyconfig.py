"""The next-best-action policy's configuration: catalog, experiment variants, rewards.

A JSON document validated with pydantic (:func:`load_policy`); :data:`DEFAULT_POLICY` is what
runs when none is given. Its shape::

    {
      "version": "nba-v1",
      "catalog": {"default_action": "none", "quiet_events": [...], "actions": [...]},
      "variants": [
        {"name": "holdout", "share": 0.1, "kind": "default"},
        {"name": "champion", "share": 0.8, "kind": "bandit", "exploration": 0.1},
        {"name": "challenger", "share": 0.1, "kind": "priority"}
      ],
      "salt": "nba-v1",
      "seed": "nba-v1",
      "rewards": {"window_ms": 1800000, "rewards": {"Order Completed": 1.0, ...}}
    }

Variant kinds: ``default`` always gives the default action (a holdout); ``priority`` gives the
highest-priority eligible action (the readable rules baseline); ``bandit`` learns which eligible
action earns the most reward in each context and explores at the configured rate.
Users are assigned to variants by a hash of their key and ``salt`` (sticky; change the salt to
reshuffle). ``seed`` seeds every exploration draw, one per decision id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stream.actions import ActionCatalog, ActionSpec, Condition, FrequencyCap
from stream.exceptions import ConfigError
from stream.rewards import RewardConfig
from stream.windows import DAY_MS, HOUR_MS, MINUTE_MS

__all__ = ["DEFAULT_CATALOG", "DEFAULT_POLICY", "PolicyConfig", "Variant", "load_policy"]

VariantKind = Literal["default", "priority", "bandit"]


_PURCHASE_STEPS = ("Checkout Started", "Order Completed")
_CART_EVENTS = ("Product Added", "Product Removed", "Cart Viewed")


def _when(feature: str, op: str, value: object) -> Condition:
    return Condition.model_validate({"feature": feature, "op": op, "value": value})


DEFAULT_CATALOG = ActionCatalog(
    default_action="none",
    quiet_events=_PURCHASE_STEPS,
    actions=(
        ActionSpec(
            name="offer_discount",
            priority=40,
            description="a discount for a hesitating shopper with a valuable cart",
            when=(_when("cart_value", ">=", 50.0), _when("views_since_add", ">=", 3)),
            caps=(FrequencyCap(max=2, window_ms=DAY_MS),),
            cooldown_ms=30 * MINUTE_MS,
        ),
        ActionSpec(
            name="remind_cart",
            priority=30,
            description="remind of the products left in the cart",
            when=(_when("cart_lines", ">=", 1), _when("event", "not_in", _CART_EVENTS)),
            caps=(FrequencyCap(max=4, window_ms=DAY_MS),),
            cooldown_ms=10 * MINUTE_MS,
        ),
        ActionSpec(
            name="invite_signup",
            priority=20,
            description="invite an engaged anonymous visitor to sign up",
            when=(_when("known_user", "==", False), _when("views_total", ">=", 5)),
            caps=(FrequencyCap(max=2, window_ms=DAY_MS),),
            cooldown_ms=HOUR_MS,
        ),
        ActionSpec(
            name="recommend_category",
            priority=10,
            description="recommend the category the user is most drawn to",
            when=(_when("top_category_affinity", ">=", 3.0),),
            caps=(FrequencyCap(max=20, window_ms=DAY_MS),),
            params={"category": "$top_category"},
        ),
        ActionSpec(name="none", priority=0, description="do nothing"),
    ),
)


class Variant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,19}$")
    share: float = Field(ge=0.0, le=1.0)
    kind: VariantKind
    #: Bandits: the probability of picking uniformly among the eligible actions.
    exploration: float = Field(default=0.1, ge=0.0, le=1.0)
    #: Bandits: after this many learned rewards, exploration decays like 1/sqrt(n) (0: never).
    exploration_decay_after: int = Field(default=0, ge=0)
    #: Bandits: the ridge penalty of each action's reward regression (its prior strength).
    ridge: float = Field(default=1.0, gt=0.0)


#: 10% holdout (the default action: the baseline every lift is measured against), 80% the
#: learning bandit, 10% the priority rules (the readable policy the bandit must beat).
DEFAULT_VARIANTS = (
    Variant(name="holdout", share=0.1, kind="default"),
    Variant(name="champion", share=0.8, kind="bandit", exploration=0.1),
    Variant(name="challenger", share=0.1, kind="priority"),
)


class PolicyConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(default="nba-v1", min_length=1)
    catalog: ActionCatalog = DEFAULT_CATALOG
    variants: tuple[Variant, ...] = Field(default=DEFAULT_VARIANTS, min_length=1)
    salt: str = "nba-v1"
    seed: str = "nba-v1"
    rewards: RewardConfig = RewardConfig()
    #: The consent category (in ``context.consent.categoryPreferences``, any case) that allows
    #: personalization; an event saying it is false opts the user out.
    consent_category: str = "personalization"

    @model_validator(mode="after")
    def _variants_add_up(self) -> PolicyConfig:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate variant names: {names}")
        total = sum(v.share for v in self.variants)
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"variant shares must add up to 1, not {total}")
        return self

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)


def load_policy(path: str | Path) -> PolicyConfig:
    """Read and validate a policy file; :class:`ConfigError` says what is wrong and where."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read policy file {path}: {exc}") from exc
    try:
        return PolicyConfig.model_validate_json(text)
    except ValidationError as exc:
        raise ConfigError(f"invalid policy file {path}:\n{exc}") from exc


DEFAULT_POLICY = PolicyConfig()

"""The action catalog: what the policy may do, and when each action is allowed.

The catalog is configuration (a JSON document validated with pydantic, see
:func:`load_policy`), not code: product teams add an action, change a threshold or a frequency
cap without a release. Each action has

* ``when``: eligibility conditions over the feature vector (:mod:`stream.features`), the event
  (``event``: its name) and the model scores (``score.conversion``, ``score.abandonment``); all
  must hold;
* ``priority``: the order the rules policy follows and ties are broken in (higher first);
* ``caps`` and ``cooldown_ms``: guardrails over event-time windows (:mod:`stream.guardrails`);
* ``params``: what the action carries to the front end; a value ``"$feature"`` is that
  feature's value now (e.g. the category to recommend).

One action is the **default** (``none`` unless configured): always eligible, uncapped, and what
holdout users, opted-out users and protected events (``quiet_events``: never interrupt a
purchase in progress) get.

Conditions are compiled once per catalog into closures; evaluating one costs a feature lookup
and a comparison. A condition that fails says why in words (``"cart_value is 12.5, needs >=
50"``): that sentence is the reason a decision gives for not choosing the action.

>>> catalog = ActionCatalog(actions=(
...     ActionSpec(name="remind_cart", priority=2,
...                when=(Condition(feature="cart_lines", op=">=", value=1),)),
...     ActionSpec(name="none", priority=0),
... ))
>>> eligibility(catalog, 0, {"cart_lines": 0}, "Page Viewed", None)
'cart_lines is 0, needs >= 1'
>>> eligibility(catalog, 0, {"cart_lines": 2}, "Page Viewed", None) is None
True
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stream.memo import PerObject

__all__ = [
    "ActionCatalog",
    "ActionSpec",
    "Condition",
    "FrequencyCap",
    "eligibility",
    "read_value",
    "resolve_params",
]

Op = Literal[">=", ">", "<=", "<", "==", "!=", "in", "not_in"]
Scalar = str | int | float | bool | None

#: Names a condition may read besides the features: the event's name and the model scores.
EVENT_NAME = "event"
SCORE_PREFIX = "score."
SCORES = frozenset({"score.conversion", "score.abandonment"})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Condition(_Frozen):
    """``feature op value``: e.g. ``cart_value >= 50`` or ``event not_in ["Order Completed"]``."""

    feature: str = Field(min_length=1)
    op: Op
    value: str | int | float | bool | tuple[str, ...] | None

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        membership = self.op in ("in", "not_in")
        if membership != isinstance(self.value, tuple):
            raise ValueError(f"op {self.op!r} needs {'a list' if membership else 'one value'}")
        if self.op in (">=", ">", "<=", "<") and (
            isinstance(self.value, bool) or not isinstance(self.value, int | float)
        ):
            raise ValueError(f"op {self.op!r} compares numbers; got {self.value!r}")
        return self


class FrequencyCap(_Frozen):
    """At most ``max`` starts of the action in any ``window_ms`` of event time."""

    max: int = Field(ge=1)
    window_ms: int = Field(ge=1)


class ActionSpec(_Frozen):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    priority: int
    description: str = ""
    when: tuple[Condition, ...] = ()
    caps: tuple[FrequencyCap, ...] = ()
    cooldown_ms: int = Field(default=0, ge=0)
    params: dict[str, Scalar] = Field(default_factory=dict)


class ActionCatalog(_Frozen):
    """The actions, kept sorted by priority (highest first; ties keep the configured order)."""

    default_action: str = "none"
    #: Events during which only the default action is given (a purchase in progress).
    quiet_events: tuple[str, ...] = ("Checkout Started", "Order Completed")
    actions: tuple[ActionSpec, ...] = Field(min_length=1)

    @field_validator("actions")
    @classmethod
    def _by_priority(cls, actions: tuple[ActionSpec, ...]) -> tuple[ActionSpec, ...]:
        names = [a.name for a in actions]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"duplicate action names: {duplicated}")
        return tuple(sorted(actions, key=lambda a: -a.priority))

    @model_validator(mode="after")
    def _default_is_plain(self) -> ActionCatalog:
        spec = next((a for a in self.actions if a.name == self.default_action), None)
        if spec is None:
            raise ValueError(f"default action {self.default_action!r} is not in the catalog")
        if spec.when or spec.caps or spec.cooldown_ms:
            raise ValueError("the default action must be unconditional and uncapped")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return _names(self)

    def unknown_features(self, known: frozenset[str]) -> list[str]:
        """Condition and parameter features that are neither features nor scores nor ``event``."""
        readable = known | SCORES | {EVENT_NAME}
        used = {c.feature for a in self.actions for c in a.when} | {
            v[1:]
            for a in self.actions
            for v in a.params.values()
            if isinstance(v, str) and _is_ref(v)
        }
        return sorted(used - readable)


def _is_ref(value: object) -> bool:
    return isinstance(value, str) and value.startswith("$")


_names: PerObject[ActionCatalog, tuple[str, ...]] = PerObject(
    lambda catalog: tuple(a.name for a in catalog.actions)
)

# -- evaluation --------------------------------------------------------------------------------

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
    "in": lambda value, allowed: value in allowed,
    "not_in": lambda value, allowed: value not in allowed,
}


def read_value(
    name: str, features: Mapping[str, Any], event_name: str, scores: Mapping[str, float] | None
) -> Any:
    """What a condition named ``name`` reads (``None`` when a score is not available)."""
    if name == EVENT_NAME:
        return event_name
    if name.startswith(SCORE_PREFIX):
        return None if scores is None else scores.get(name[len(SCORE_PREFIX) :])
    return features[name]


def _holds(condition: Condition, value: Any) -> bool:
    if value is None and condition.op not in ("==", "!=", "in", "not_in"):
        return False  # no score yet (cold models, empty cart): never eligible on it
    try:
        return bool(_COMPARE[condition.op](value, condition.value))
    except TypeError:
        return False


def _why_not(condition: Condition, value: Any) -> str:
    wanted = list(condition.value) if isinstance(condition.value, tuple) else condition.value
    shown = round(value, 4) if isinstance(value, float) else value
    return f"{condition.feature} is {shown!r}, needs {condition.op} {wanted!r}".replace("'", "")


def eligibility(
    catalog: ActionCatalog,
    index: int,
    features: Mapping[str, Any],
    event_name: str,
    scores: Mapping[str, float] | None,
) -> str | None:
    """``None`` when action ``index`` (in priority order) is eligible, else the first reason not."""
    for condition in catalog.actions[index].when:
        value = read_value(condition.feature, features, event_name, scores)
        if not _holds(condition, value):
            return _why_not(condition, value)
    return None


def resolve_params(spec: ActionSpec, features: Mapping[str, Any]) -> dict[str, Scalar]:
    """The action's params with every ``"$feature"`` replaced by that feature's value."""
    if not spec.params:
        return {}
    return {
        key: features[value[1:]] if isinstance(value, str) and _is_ref(value) else value
        for key, value in spec.params.items()
    }

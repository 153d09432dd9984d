"""Off-policy evaluation (OPE): what another policy would have earned, from the decision log alone.

A decision (``decision.v3``) records the action the logging policy took, the probability it had of
taking it (``propensity``), the actions it could have taken (``policy.eligible``), and the logging
policy's predicted reward per eligible action (``policy.scores``). A reward (``reward.v1``) says
what the action earned once its window closed. :func:`join` pairs the two by ``decision_id`` into
:class:`LoggedDecision` rows. A *target policy* is a function from a row to probabilities over the
row's eligible actions (:func:`uniform`, :func:`always`, :func:`priority`, :func:`greedy`,
:func:`epsilon_greedy`, :func:`logging_policy`; :func:`policy_from_spec` parses them).

Each logged reward ``r`` is weighed by ``w = target(logged action) / propensity``; over the
``n`` rows evaluated (``z = 1.96`` for 95%):

* **IPS** (inverse propensity scoring): ``V = mean(w * r)``, unbiased when every action the
  target takes had a positive logging probability. Interval ``V ± z * sd(w * r) / sqrt(n)``
  (normal approximation, ``sd`` the sample standard deviation).
* **SNIPS** (self-normalized IPS): ``V = sum(w * r) / sum(w)``, a weighted mean of the rewards,
  so always within their range; slightly biased, far less variance when weights are large.
  Interval by the delta method: ``V ± z * sd(w * (r - V)) / (mean(w) * sqrt(n))``.
* :func:`observed`: the logging policy's own mean reward (``w = 1``), for reference.

Every :class:`Estimate` carries the effective sample size ``(sum w)^2 / sum(w^2)`` (Kish: how
many on-policy rows the estimate is worth) and the largest weight: a small ESS or a large
weight means the target goes where the log rarely went, whatever the interval says. Rows with
a propensity <= 0 carry no information about their action and are skipped (``skipped``).

Errors (both :class:`~stream.exceptions.StreamError`)::

    StreamError
    ├── ConfigError
    │   └── PolicySpecError   a target policy spec that cannot be parsed
    └── RecordError           a decision or reward record without the fields OPE needs
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from stream.exceptions import ConfigError, StreamError

__all__ = [
    "DECISION_SCHEMA",
    "REWARD_SCHEMA",
    "Estimate",
    "JoinResult",
    "LoggedDecision",
    "PolicySpecError",
    "RecordError",
    "Target",
    "always",
    "check_record",
    "epsilon_greedy",
    "greedy",
    "ips",
    "join",
    "logging_policy",
    "observed",
    "policy_from_spec",
    "priority",
    "snips",
    "uniform",
]

DECISION_SCHEMA = "decision.v3"
REWARD_SCHEMA = "reward.v1"
#: The normal quantile of a two-sided 95% interval.
Z95 = 1.959963984540054


class PolicySpecError(ConfigError):
    """A target policy spec that :func:`policy_from_spec` cannot parse."""


class RecordError(StreamError, ValueError):
    """A decision or reward record lacks a field OPE needs, or has it with the wrong type."""


class LoggedDecision(NamedTuple):
    """One decision with its reward: what the logging policy did, with what probability."""

    decision_id: str
    action: str
    propensity: float
    #: The eligible actions, the chosen one included, in catalog priority order, each once.
    eligible: tuple[str, ...]
    #: The logging policy's predicted reward per eligible action (may be empty).
    scores: dict[str, float]
    variant: str
    reward: float


class JoinResult(NamedTuple):
    """:func:`join`'s rows and what it could not pair."""

    logged: tuple[LoggedDecision, ...]
    decisions: int  # distinct decision ids
    rewards: int  # distinct reward decision ids
    decisions_without_reward: int
    rewards_without_decision: int
    duplicate_decisions: int  # dropped: same decision_id seen again (at-least-once delivery)
    duplicate_rewards: int


class Estimate(NamedTuple):
    """A policy value with its 95% interval (NaN when undefined, e.g. ``n < 2``)."""

    value: float
    low: float
    high: float
    n: int
    effective_sample_size: float
    max_weight: float
    skipped: int = 0  # rows left out for a propensity <= 0


#: A target policy: probabilities over a row's eligible actions (missing actions: 0).
Target = Callable[[LoggedDecision], dict[str, float]]


# -- records -----------------------------------------------------------------------------------


def _text(doc: Mapping[str, Any], name: str, what: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str):
        raise RecordError(f"{what}: {name!r} missing or not a string")
    return value


def _number(doc: Mapping[str, Any], name: str, what: str) -> float:
    value: Any = doc.get(name)
    if not _finite(value):
        raise RecordError(f"{what}: {name!r} missing or not a finite number")
    return float(value)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _parse_decision(doc: Mapping[str, Any]) -> LoggedDecision:
    """The decision's row, its reward not known yet (NaN until :func:`join` pairs it)."""
    what = f"decision {doc.get('decision_id')!r}"
    decision_id = _text(doc, "decision_id", what)
    action = _text(doc, "action", what)
    propensity = _number(doc, "propensity", what)
    variant = _text(doc, "variant", what)
    policy = doc.get("policy")
    if not isinstance(policy, Mapping):
        raise RecordError(f"{what}: 'policy' missing or not an object")
    listed = policy.get("eligible")
    if not isinstance(listed, list) or not all(isinstance(a, str) for a in listed):
        raise RecordError(f"{what}: 'policy.eligible' missing or not a list of action names")
    if action not in listed:
        raise RecordError(f"{what}: the chosen action {action!r} is not in 'policy.eligible'")
    raw = policy.get("scores")
    scores = {k: float(v) for k, v in raw.items() if _finite(v)} if isinstance(raw, Mapping) else {}
    eligible = tuple(dict.fromkeys(listed))
    return LoggedDecision(decision_id, action, propensity, eligible, scores, variant, math.nan)


def _parse_reward(doc: Mapping[str, Any]) -> tuple[str, float]:
    what = f"reward {doc.get('decision_id')!r}"
    return _text(doc, "decision_id", what), _number(doc, "reward", what)


def check_record(doc: Mapping[str, Any]) -> str | None:
    """The record's kind, ``"decision"`` or ``"reward"``, after checking it has what
    :func:`join` needs (:class:`RecordError` if not); ``None`` for any other schema.

    >>> check_record({"schema": "reward.v1", "decision_id": "d1", "reward": 0.3})
    'reward'
    >>> check_record({"schema": "decision.v2"}) is None
    True
    >>> check_record({"schema": "reward.v1", "decision_id": "d1"})
    Traceback (most recent call last):
    ...
    stream.ope.RecordError: reward 'd1': 'reward' missing or not a finite number
    """
    schema = doc.get("schema")
    if schema == DECISION_SCHEMA:
        _parse_decision(doc)
        return "decision"
    if schema == REWARD_SCHEMA:
        _parse_reward(doc)
        return "reward"
    return None


def join(
    decisions: Iterable[Mapping[str, Any]],
    rewards: Iterable[Mapping[str, Any]],
) -> JoinResult:
    """Decisions paired with their rewards by ``decision_id``, in the decisions' order.

    A repeated ``decision_id`` is the same decision delivered again: the first is kept and the
    rest counted, for rewards too. Decisions without a reward (sticky repeats, windows still
    open) and rewards without a decision are counted, not evaluated. ``eligible`` is the
    decision's ``policy.eligible``: the actions it could have chosen, in catalog priority order.
    Bad records: :class:`RecordError`.

    >>> d = {"decision_id": "d1", "action": "remind_cart", "propensity": 0.9,
    ...      "variant": "champion",
    ...      "policy": {"eligible": ["remind_cart", "invite_signup", "none"]}}
    >>> result = join([d, d], [{"decision_id": "d1", "reward": 1.0}])
    >>> result.logged[0].eligible, result.duplicate_decisions
    (('remind_cart', 'invite_signup', 'none'), 1)
    """
    by_id: dict[str, LoggedDecision] = {}
    duplicate_decisions = 0
    for doc in decisions:
        row = _parse_decision(doc)
        if row.decision_id in by_id:
            duplicate_decisions += 1
            continue
        by_id[row.decision_id] = row
    paid: dict[str, float] = {}
    duplicate_rewards = 0
    for doc in rewards:
        decision_id, reward = _parse_reward(doc)
        if decision_id in paid:
            duplicate_rewards += 1
            continue
        paid[decision_id] = reward
    logged = tuple(
        row._replace(reward=paid[row.decision_id])
        for row in by_id.values()
        if row.decision_id in paid
    )
    return JoinResult(
        logged,
        len(by_id),
        len(paid),
        len(by_id) - len(logged),
        sum(1 for decision_id in paid if decision_id not in by_id),
        duplicate_decisions,
        duplicate_rewards,
    )


# -- target policies ---------------------------------------------------------------------------


def _row(action: str, eligible: tuple[str, ...], scores: dict[str, float]) -> LoggedDecision:
    """A row for the examples below."""
    return LoggedDecision("d", action, 0.5, eligible, scores, "champion", 1.0)


def uniform(d: LoggedDecision) -> dict[str, float]:
    """Every eligible action with the same probability.

    >>> uniform(_row("b", ("a", "b"), {}))
    {'a': 0.5, 'b': 0.5}
    """
    return {action: 1.0 / len(d.eligible) for action in d.eligible}


def priority(d: LoggedDecision) -> dict[str, float]:
    """The first eligible action in catalog order: the rules policy.

    >>> priority(_row("b", ("a", "b"), {}))
    {'a': 1.0}
    """
    return {d.eligible[0]: 1.0}


def always(action: str) -> Target:
    """``action`` when it is eligible, else the first eligible action in catalog order.

    >>> always("b")(_row("a", ("a", "b"), {})), always("c")(_row("a", ("a", "b"), {}))
    ({'b': 1.0}, {'a': 1.0})
    """

    def target(d: LoggedDecision) -> dict[str, float]:
        return {action: 1.0} if action in d.eligible else priority(d)

    return target


def greedy(d: LoggedDecision) -> dict[str, float]:
    """The eligible action the logging policy scored highest (ties and unscored actions: the
    first in catalog order).

    >>> greedy(_row("a", ("a", "b", "c"), {"a": 0.1, "b": 0.3, "c": 0.3}))
    {'b': 1.0}
    """
    best = max(d.eligible, key=lambda action: d.scores.get(action, -math.inf))
    return {best: 1.0}


def epsilon_greedy(eps: float) -> Target:
    """:func:`greedy` with probability ``1 - eps``, :func:`uniform` with probability ``eps``.

    >>> epsilon_greedy(0.2)(_row("a", ("a", "b"), {"a": 0.1, "b": 0.3}))
    {'a': 0.1, 'b': 0.9}
    """
    if not 0.0 <= eps <= 1.0:
        raise PolicySpecError(f"epsilon must be in [0, 1], not {eps}")

    def target(d: LoggedDecision) -> dict[str, float]:
        out = {action: eps / len(d.eligible) for action in d.eligible}
        (best,) = greedy(d)
        out[best] += 1.0 - eps
        return out

    return target


def logging_policy(d: LoggedDecision) -> dict[str, float]:
    """The logging policy itself, as far as a row knows it: the logged action's probability
    (all IPS and SNIPS need; the other actions' probabilities are not in the row).

    >>> logging_policy(_row("a", ("a", "b"), {}))
    {'a': 0.5}
    """
    return {d.action: d.propensity}


_SIMPLE: dict[str, Target] = {
    "uniform": uniform,
    "priority": priority,
    "greedy": greedy,
    "logging": logging_policy,
}


def policy_from_spec(spec: str) -> Target:
    """The target policy a spec names: ``uniform``, ``priority``, ``greedy``, ``logging``,
    ``always:ACTION`` or ``epsilon-greedy:EPS``; :class:`PolicySpecError` otherwise.

    >>> policy_from_spec("always:remind_cart")(_row("none", ("remind_cart", "none"), {}))
    {'remind_cart': 1.0}
    >>> policy_from_spec("best")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    stream.ope.PolicySpecError: unknown policy 'best': expected uniform, priority, greedy, ...
    """
    name, colon, arg = spec.strip().partition(":")
    if not colon and name in _SIMPLE:
        return _SIMPLE[name]
    if name == "always" and arg:
        return always(arg)
    if name == "epsilon-greedy" and arg:
        try:
            eps = float(arg)
        except ValueError:
            raise PolicySpecError(f"{spec!r}: epsilon {arg!r} is not a number") from None
        return epsilon_greedy(eps)
    raise PolicySpecError(
        f"unknown policy {spec!r}: expected {', '.join(_SIMPLE)}, always:ACTION or "
        "epsilon-greedy:EPS"
    )


# -- estimators --------------------------------------------------------------------------------


def _weighted(
    logged: Iterable[LoggedDecision], target: Target, variant: str | None
) -> tuple[list[float], list[float], int]:
    weights: list[float] = []
    rewards: list[float] = []
    skipped = 0
    for d in logged:
        if variant is not None and d.variant != variant:
            continue
        if not d.propensity > 0.0:
            skipped += 1
            continue
        weights.append(target(d).get(d.action, 0.0) / d.propensity)
        rewards.append(d.reward)
    return weights, rewards, skipped


def _sd(values: Sequence[float]) -> float:
    """Sample standard deviation (NaN below two values)."""
    n = len(values)
    if n < 2:
        return math.nan
    mean = math.fsum(values) / n
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def _estimate(value: float, sd: float, weights: list[float], skipped: int) -> Estimate:
    n = len(weights)
    half = Z95 * sd / math.sqrt(n) if n else math.nan
    total, squares = math.fsum(weights), math.fsum(w * w for w in weights)
    ess = total * total / squares if squares > 0.0 else 0.0
    return Estimate(value, value - half, value + half, n, ess, max(weights, default=0.0), skipped)


def ips(logged: Iterable[LoggedDecision], target: Target, variant: str | None = None) -> Estimate:
    """Inverse propensity scoring: ``mean(w * r)``, interval from ``sd(w * r)``.

    >>> rows = [_row("a", ("a", "b"), {})._replace(reward=r) for r in (1.0, 0.0)]
    >>> ips(rows, always("a")).value, ips(rows, always("b")).value
    (1.0, 0.0)
    """
    weights, rewards, skipped = _weighted(logged, target, variant)
    terms = [w * r for w, r in zip(weights, rewards, strict=True)]
    value = math.fsum(terms) / len(terms) if terms else math.nan
    return _estimate(value, _sd(terms), weights, skipped)


def snips(logged: Iterable[LoggedDecision], target: Target, variant: str | None = None) -> Estimate:
    """Self-normalized IPS: ``sum(w * r) / sum(w)``, interval by the delta method (NaN value
    when every weight is 0: the log never took what the target takes).

    >>> rows = [_row("a", ("a", "b"), {})._replace(reward=r) for r in (1.0, 0.0)]
    >>> snips(rows, uniform).value
    0.5
    """
    weights, rewards, skipped = _weighted(logged, target, variant)
    total = math.fsum(weights)
    if total <= 0.0:
        return _estimate(math.nan, math.nan, weights, skipped)
    value = math.fsum(w * r for w, r in zip(weights, rewards, strict=True)) / total
    mean_w = total / len(weights)
    sd = _sd([w * (r - value) for w, r in zip(weights, rewards, strict=True)]) / mean_w
    return _estimate(value, sd, weights, skipped)


def observed(logged: Iterable[LoggedDecision], variant: str | None = None) -> Estimate:
    """The logging policy's mean reward, what it did earn (every weight 1, nothing skipped).

    >>> observed([_row("a", ("a",), {})._replace(reward=r) for r in (1.0, 0.0)]).value
    0.5
    """
    rewards = [d.reward for d in logged if variant is None or d.variant == variant]
    value = math.fsum(rewards) / len(rewards) if rewards else math.nan
    return _estimate(value, _sd(rewards), [1.0] * len(rewards), 0)

"""A disjoint linear contextual bandit with epsilon-greedy exploration, in plain Python floats.

Each action keeps its own ridge regression of the reward on the context vector (LinUCB's
"disjoint" model, without the confidence bonus): ``A = ridge * I + sum x x^T`` and
``b = sum reward * x``, so the predicted reward is ``theta·x`` with ``theta = A^-1 b``. Only
``A^-1`` is stored; each observation updates it with the Sherman–Morrison formula in O(d^2)
instead of inverting ``A`` again. The verbs are River's (``pull`` / ``update``).

Exploration is epsilon-greedy and takes its one random number, ``uniform``, from the caller:
derived from a hash of the decision id (:func:`uniform_from`), it makes a replay choose exactly
what the live run chose. Every :class:`Choice` carries the probability that each eligible action
had of being chosen, which is what off-policy evaluation of logged decisions needs.

Every sum goes through :mod:`stream.models.arith`, so scores are bitwise identical on any CPU.
Like the other learners, the bandit refuses (returns False, changes nothing) an observation that
is not finite or would make its state non-finite.

>>> bandit = LinearBandit(["coupon", "banner"], dims=2)
>>> for _ in range(20):
...     _ = bandit.update("coupon", [1.0, 1.0], 1.0), bandit.update("banner", [1.0, 0.0], 1.0)
...     _ = bandit.update("coupon", [1.0, 0.0], 0.0), bandit.update("banner", [1.0, 1.0], 0.0)
>>> bandit.pull([1.0, 1.0], ["banner", "coupon"], epsilon=0.1, uniform=0.5).action
'coupon'
>>> choice = bandit.pull([1.0, 0.0], ["banner", "coupon"], epsilon=0.1, uniform=0.07)
>>> choice.action, choice.explored, choice.greedy, choice.probabilities
('coupon', True, 'banner', (0.9500000000000001, 0.05))
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Self

from stream.exceptions import ConfigError, SnapshotError
from stream.models import params, snapshot
from stream.models.arith import dot
from stream.models.hygiene import is_finite_vector

__all__ = ["Choice", "LinearBandit", "epsilon_schedule", "uniform_from"]

_KIND, _VERSION = "linear_bandit", "1"


class Choice(NamedTuple):
    """One pull: the chosen action and what a log needs to evaluate other policies later."""

    action: str
    #: The probability that ``action`` was chosen (the inverse-propensity weight's denominator).
    propensity: float
    #: Whether the exploration branch chose (False with a single eligible action: no choice).
    explored: bool
    #: The action with the highest predicted reward (what exploitation alone would choose).
    greedy: str
    #: The predicted reward of each eligible action, in ``eligible`` order.
    scores: tuple[float, ...]
    #: The probability each eligible action had of being chosen, in ``eligible`` order.
    probabilities: tuple[float, ...]


class _Arm:
    """One action's ridge regression: ``A^-1``, ``b``, the cached ``theta`` and its count."""

    __slots__ = ("a_inv", "b", "count", "theta")

    def __init__(self, a_inv: list[list[float]], b: list[float], count: int) -> None:
        self.a_inv, self.b, self.count = a_inv, b, count
        # Cached: scores outnumber updates, and theta depends only on A^-1 and b.
        self.theta = [dot(row, b) for row in a_inv]


class LinearBandit:
    """Epsilon-greedy over one ridge regression of the reward per action."""

    __slots__ = ("_arms", "actions", "dims", "ridge")

    def __init__(self, actions: Sequence[str], dims: int, ridge: float = 1.0) -> None:
        self.actions = _check_actions(actions)
        self.dims = params.check_dimension(dims)
        self.ridge = params.check_rate("ridge", ridge)
        if self.ridge == 0.0:  # A = 0 has no inverse
            raise ConfigError("ridge must be > 0")
        start = 1.0 / self.ridge
        self._arms = {
            action: _Arm([_unit_row(i, dims, start) for i in range(dims)], [0.0] * dims, 0)
            for action in self.actions
        }

    @property
    def n_updates(self) -> int:
        """How many observations were learned, over all actions (refused ones are not counted)."""
        return sum(arm.count for arm in self._arms.values())

    @property
    def counts(self) -> dict[str, int]:
        """How many observations each action learned, in ``actions`` order."""
        return {action: arm.count for action, arm in self._arms.items()}

    def theta(self, action: str) -> list[float]:
        """A copy of ``action``'s coefficients (``A^-1 b``)."""
        return list(self._arm(action).theta)

    def scores(self, context: Sequence[float], actions: Sequence[str]) -> list[float]:
        """The predicted reward ``theta_a·x`` of each of ``actions``."""
        self._check_length(context)
        return [dot(self._arm(action).theta, context) for action in actions]

    def pull(
        self, context: Sequence[float], eligible: Sequence[str], epsilon: float, uniform: float
    ) -> Choice:
        """Choose among ``eligible``: explore if ``uniform < epsilon``, else the greedy action.

        ``uniform`` (in [0, 1)) is the only randomness. Exploring picks the eligible action at
        ``uniform / epsilon`` of the way along ``eligible`` (uniform again, given that it is
        below ``epsilon``). The greedy action is the first highest score in ``eligible`` order,
        so the caller's priority order breaks ties.
        """
        _check_pull(eligible, epsilon, uniform)
        scores = self.scores(context, eligible)
        k = len(eligible)
        # A score that is not finite (only a context that is not finite makes one: theta is
        # finite) says nothing, so the priority order alone decides.
        greedy = _argmax(scores) if is_finite_vector(scores) else 0
        if k == 1:
            return Choice(eligible[0], 1.0, False, eligible[0], tuple(scores), (1.0,))
        explored = uniform < epsilon
        chosen = min(int(uniform / epsilon * k), k - 1) if explored else greedy
        share = epsilon / k
        probabilities = tuple(share + (1.0 - epsilon) if i == greedy else share for i in range(k))
        return Choice(
            eligible[chosen],
            probabilities[chosen],
            explored,
            eligible[greedy],
            tuple(scores),
            probabilities,
        )

    def update(self, action: str, context: Sequence[float], reward: float) -> bool:
        """Learn one ``(context, reward)`` of ``action``; False (and no change) if refused.

        Refused: an unknown action, a context or reward that is not finite, or values so large
        that the new state would overflow.
        """
        self._check_length(context)
        arm = self._arms.get(action)
        if arm is None or not (is_finite_vector(context) and math.isfinite(reward)):
            return False
        learned = _sherman_morrison(arm, context, reward)
        if learned is None:
            return False
        self._arms[action] = learned
        return True

    def _arm(self, action: str) -> _Arm:
        arm = self._arms.get(action)
        if arm is None:
            raise ValueError(f"unknown action {action!r}")
        return arm

    def _check_length(self, context: Sequence[float]) -> None:
        if len(context) != self.dims:
            raise ValueError(f"expected {self.dims} values, got {len(context)}")

    def to_state(self) -> dict[str, Any]:
        """A JSON-able snapshot (see :mod:`stream.models.snapshot`); ``theta`` is derived."""
        return {
            **snapshot.header(_KIND, _VERSION),
            "dims": self.dims,
            "ridge": self.ridge,
            "arms": [_arm_to_state(action, arm) for action, arm in self._arms.items()],
        }

    @classmethod
    def from_state(cls, state: object) -> Self:
        """The bandit ``to_state`` described; :class:`SnapshotError` if it does not fit."""
        doc = snapshot.check_header(state, _KIND, _VERSION)
        dims = snapshot.get_int(doc, "dims", minimum=1)
        arms = doc.get("arms")
        if not isinstance(arms, list) or not all(isinstance(arm, Mapping) for arm in arms):
            raise SnapshotError(f"{_KIND}: arms must be a list of mappings")
        ridge = snapshot.get_float(doc, "ridge")
        try:
            bandit = cls([arm.get("action") for arm in arms], dims, ridge)
        except ValueError as error:  # ConfigError: actions or ridge no bandit could have
            raise SnapshotError(f"{_KIND}: {error}") from error
        for arm in arms:
            bandit._arms[arm["action"]] = _arm_from_state(arm, dims)
        return bandit


def epsilon_schedule(base: float, decay_after: int, n: int) -> float:
    """The exploration rate after ``n`` updates: ``base``, decaying like 1/sqrt(n) later on.

    Constant exploration costs a constant share of the reward forever (regret linear in ``n``);
    decaying it as ``base * sqrt(decay_after / n)`` once ``n`` exceeds ``decay_after`` keeps
    exploring every action, ever more rarely, and makes regret grow like sqrt(n).
    ``decay_after = 0`` means no decay.

    >>> epsilon_schedule(0.2, 0, 1_000_000), epsilon_schedule(0.2, 200, 150)
    (0.2, 0.2)
    >>> epsilon_schedule(0.2, 200, 800), epsilon_schedule(0.2, 200, 3200)
    (0.1, 0.05)
    """
    if not 0.0 <= base <= 1.0:
        raise ConfigError(f"base must be in [0, 1], got {base!r}")
    if decay_after < 0 or n < 0:
        raise ValueError(f"decay_after and n must be >= 0, got {decay_after} and {n}")
    if decay_after == 0:
        return base
    return base * min(1.0, math.sqrt(decay_after / max(n, 1)))


def uniform_from(seed: str, key: str) -> float:
    """A float in [0, 1) from the hash of ``seed`` and ``key``: the same pair, the same float.

    53 bits of a BLAKE2b digest, exactly the precision of a float in [0, 1), as
    :func:`random.random` has; the ``\\x1f`` separator keeps ``("ab", "c")`` and ``("a", "bc")``
    apart.

    >>> uniform_from("policy-1", "decision-42") == uniform_from("policy-1", "decision-42")
    True
    >>> uniform_from("policy-1", "decision-42") == uniform_from("policy-2", "decision-42")
    False
    >>> all(0.0 <= uniform_from("policy-1", str(i)) < 1.0 for i in range(1000))
    True
    """
    digest = hashlib.blake2b(f"{seed}\x1f{key}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) * 2.0**-53


def _sherman_morrison(arm: _Arm, x: Sequence[float], reward: float) -> _Arm | None:
    """``arm`` after learning ``(x, reward)``, or None if the result would not be finite.

    ``(A + x x^T)^-1 = A^-1 - u u^T / (1 + x·u)`` with ``u = A^-1 x`` (``A^-1`` is symmetric).
    ``ui * uj`` equals ``uj * ui`` bit for bit, so ``A^-1`` stays exactly symmetric.
    """
    u = [dot(row, x) for row in arm.a_inv]
    denom = 1.0 + dot(x, u)
    if not (math.isfinite(denom) and denom > 0.0):  # > 0 always, barring overflow
        return None
    a_inv = [
        [a - ui * uj / denom for a, uj in zip(row, u, strict=True)]
        for row, ui in zip(arm.a_inv, u, strict=True)
    ]
    b = [bi + reward * xi for bi, xi in zip(arm.b, x, strict=True)]
    learned = _Arm(a_inv, b, arm.count + 1)
    if not all(map(is_finite_vector, [*a_inv, b, learned.theta])):
        return None
    return learned


def _arm_to_state(action: str, arm: _Arm) -> dict[str, Any]:
    return {
        "action": action,
        "count": arm.count,
        "a_inv": [list(row) for row in arm.a_inv],
        "b": list(arm.b),
    }


def _arm_from_state(arm: Mapping[str, Any], dims: int) -> _Arm:
    """One arm of a snapshot, checked: shapes, finite values, a symmetric ``A^-1``."""
    doc = {**arm, "kind": _KIND}  # the snapshot helpers name the kind in their errors
    rows = doc.get("a_inv")
    if not isinstance(rows, list) or len(rows) != dims:
        raise SnapshotError(f"{_KIND}: a_inv must be a list of {dims} rows")
    a_inv = [snapshot.floats(_KIND, "a_inv", row, dims) for row in rows]
    # A positive definite matrix is symmetric with a positive diagonal; cheap to check.
    if any(a_inv[i][j] != a_inv[j][i] for i in range(dims) for j in range(i)) or any(
        a_inv[i][i] <= 0.0 for i in range(dims)
    ):
        raise SnapshotError(f"{_KIND}: a_inv is not symmetric with a positive diagonal")
    b = snapshot.get_floats(doc, "b", dims)
    learned = _Arm(a_inv, b, snapshot.get_int(doc, "count"))
    if not is_finite_vector(learned.theta):
        raise SnapshotError(f"{_KIND}: theta overflows")
    return learned


def _check_actions(actions: Sequence[str]) -> tuple[str, ...]:
    """``actions`` as a tuple, if they are distinct non-empty strings (at least one)."""
    if isinstance(actions, str) or not actions:
        raise ConfigError("actions must be a non-empty sequence of names")
    if not all(isinstance(a, str) and a for a in actions) or len(set(actions)) != len(actions):
        raise ConfigError(f"actions must be distinct non-empty strings, got {actions!r}")
    return tuple(actions)


def _check_pull(eligible: Sequence[str], epsilon: float, uniform: float) -> None:
    if not eligible or len(set(eligible)) != len(eligible):
        raise ValueError(f"eligible must be non-empty and distinct, got {eligible!r}")
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon!r}")
    if not 0.0 <= uniform < 1.0:
        raise ValueError(f"uniform must be in [0, 1), got {uniform!r}")


def _argmax(scores: Sequence[float]) -> int:
    """The index of the first highest score: later equal scores do not replace it."""
    best = 0
    for i in range(1, len(scores)):
        if scores[i] > scores[best]:
            best = i
    return best


def _unit_row(i: int, dims: int, value: float) -> list[float]:
    """Row ``i`` of ``value * I``."""
    row = [0.0] * dims
    row[i] = value
    return row

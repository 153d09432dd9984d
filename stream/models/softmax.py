"""Online softmax (multinomial logistic) regression for "which category next".

The arithmetic is River's :class:`river.linear_model.SoftmaxRegression` with
``optimizer=optim.SGD(lr)`` and the cross-entropy loss, written for lists indexed by position:

* no intercept, one weight vector per class, zero for a class when it first appears;
* classes enter when first learned, and only classes already learned are predicted: a new
  label's first step sees its probability as 0, so its gradient is ``1e-15 - 1`` (River clips
  every probability to [1e-15, 1 - 1e-15] before the gradient ``p_k - [k == label]``);
* every known class takes one SGD step, ``w_k -= lr * (z * g_k + l2 * w_k)``.

What River does not have: a bound on the number of classes, so that the state stays bounded.
The first ``max_classes - 1`` distinct labels get a class each; every later label is learned as
the class ``"other"`` (added when the first such label arrives), which reserves the last slot. A
label that is literally ``"other"`` is that same class, and takes the reserved slot, not a named
one. With fewer distinct labels than that the
model is River's, up to the correctly rounded dot product and sum (the tests check 1e-9).

Logits are shifted by their maximum before ``exp`` (River does the same), so no input overflows
``exp``; a NaN input (never learned: refused like any non-finite vector) predicts a uniform
distribution.

>>> model = SoftmaxModel(2, lr=0.5)
>>> model.predict([1.0, 0.0])
[]
>>> for _ in range(30):
...     _ = model.learn([1.0, 0.0], "books"), model.learn([0.0, 1.0], "shoes")
>>> [name for name, _ in model.predict([1.0, 0.0])], model.top_k([0.0, 1.0], 1)[0][0]
(['books', 'shoes'], 'shoes')
"""

from __future__ import annotations

from collections.abc import Sequence
from math import exp
from typing import Any, Self

from stream.exceptions import ConfigError, SnapshotError
from stream.models import params, snapshot
from stream.models.arith import dot, total
from stream.models.hygiene import is_finite_vector

__all__ = ["OTHER", "SoftmaxModel"]

_KIND, _VERSION = "softmax", "1"
#: The class that absorbs every label beyond the first ``max_classes - 1``.
OTHER = "other"
_EPS = 1e-15
#: Bound for logits that overflowed (only finite inputs of astronomical size can do it).
_HUGE = 1e300


class SoftmaxModel:
    """Multiclass classifier, ``P(k | z) = softmax(W z)_k``, learned by SGD example by example."""

    __slots__ = ("_classes", "_index", "_n_learned", "_weights", "l2", "lr", "max_classes", "n")

    def __init__(self, n: int, max_classes: int = 16, lr: float = 0.01, l2: float = 0.0) -> None:
        self.n = params.check_dimension(n)
        if isinstance(max_classes, bool) or not isinstance(max_classes, int) or max_classes < 2:
            raise ConfigError(f"max_classes must be an int >= 2, got {max_classes!r}")
        self.max_classes = max_classes
        self.lr = params.check_rate("lr", lr)
        self.l2 = params.check_rate("l2", l2)
        params.check_penalty(self.lr, self.l2)
        self._classes: list[str] = []
        self._index: dict[str, int] = {}
        self._weights: list[list[float]] = []
        self._n_learned = 0

    @property
    def classes(self) -> list[str]:
        """The known classes, in first-seen order."""
        return list(self._classes)

    @property
    def n_learned(self) -> int:
        """How many labelled examples have been learned (refused ones are not counted)."""
        return self._n_learned

    def class_of(self, label: str) -> str:
        """What ``label`` is learned as: itself, or ``"other"`` once the named slots are full."""
        if label in self._index or label == OTHER:
            return label
        named = len(self._classes) - (OTHER in self._index)
        return label if named < self.max_classes - 1 else OTHER

    def predict(self, z: Sequence[float]) -> list[tuple[str, float]]:
        """Every known class with its probability, most likely first (ties by class name)."""
        ranked = list(zip(self._classes, self._proba(z), strict=True))
        ranked.sort(key=_rank_key)
        return ranked

    def top_k(self, z: Sequence[float], k: int) -> list[tuple[str, float]]:
        """The ``k`` most likely classes (fewer if fewer are known)."""
        return self.predict(z)[:k]

    def learn(self, z: Sequence[float], label: str) -> bool:
        """One SGD step on ``(z, label)``; False (no change) if ``z`` or the result is not finite.

        The length is checked first (by ``_proba``), so ``zip(strict=True)`` cannot fail halfway.
        """
        proba = self._proba(z)  # checks the length
        if not is_finite_vector(z):
            return False
        name = self.class_of(label)
        target = self._index.get(name, len(self._classes))
        lr, l2 = self.lr, self.l2
        weights = []
        new_class = target == len(self._classes)
        rows = [*self._weights, [0.0] * self.n] if new_class else self._weights
        for k, row in enumerate(rows):
            p = proba[k] if k < len(proba) else 0.0
            g = (_EPS if p < _EPS else 1.0 - _EPS if p > 1.0 - _EPS else p) - (k == target)
            if l2:
                new = [w - lr * (zi * g + l2 * w) for w, zi in zip(row, z, strict=True)]
            else:
                new = [w - lr * (zi * g) for w, zi in zip(row, z, strict=True)]
            if not is_finite_vector(new):
                return False
            weights.append(new)
        if new_class:
            self._index[name] = target
            self._classes.append(name)
        self._weights = weights
        self._n_learned += 1
        return True

    def _proba(self, z: Sequence[float]) -> list[float]:
        """Probabilities in class order (River's softmax: shift by the max, exp, normalize)."""
        if len(z) != self.n:
            raise ValueError(f"expected {self.n} values, got {len(z)}")
        logits = [dot(row, z) for row in self._weights]
        if not is_finite_vector(logits):
            logits = [_bounded(r) for r in logits]
        top = max(logits, default=0.0)
        exps = [exp(r - top) for r in logits]
        norm = total(exps)
        return [e / norm for e in exps]

    def to_state(self) -> dict[str, Any]:
        """A JSON-able snapshot (see :mod:`stream.models.snapshot`)."""
        return {
            **snapshot.header(_KIND, _VERSION),
            "n": self.n,
            "max_classes": self.max_classes,
            "lr": self.lr,
            "l2": self.l2,
            "classes": list(self._classes),
            "weights": [list(row) for row in self._weights],
            "n_learned": self._n_learned,
        }

    @classmethod
    def from_state(cls, state: object) -> Self:
        """The model ``to_state`` described; :class:`SnapshotError` if it does not fit."""
        doc = snapshot.check_header(state, _KIND, _VERSION)
        try:
            model = cls(
                snapshot.get_int(doc, "n", minimum=1),
                max_classes=snapshot.get_int(doc, "max_classes", minimum=2),
                lr=snapshot.get_float(doc, "lr"),
                l2=snapshot.get_float(doc, "l2"),
            )
        except ConfigError as error:
            raise SnapshotError(f"{_KIND}: {error}") from error
        classes = doc.get("classes")
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise SnapshotError(f"{_KIND}: classes must be a list of strings")
        if len(set(classes)) != len(classes) or len(classes) > model.max_classes:
            raise SnapshotError(f"{_KIND}: classes must be distinct and at most max_classes")
        rows = doc.get("weights")
        if not isinstance(rows, list) or len(rows) != len(classes):
            raise SnapshotError(f"{_KIND}: weights must hold one row per class")
        model._weights = [snapshot.floats(_KIND, "weights", row, model.n) for row in rows]
        model._classes = list(classes)
        model._index = {name: i for i, name in enumerate(classes)}
        model._n_learned = snapshot.get_int(doc, "n_learned")
        return model


def _rank_key(item: tuple[str, float]) -> tuple[float, str]:
    return (-item[1], item[0])


def _bounded(r: float) -> float:
    """NaN to 0, infinities to ±_HUGE: the shifted logits stay finite."""
    return _HUGE if r > _HUGE else -_HUGE if r < -_HUGE else r if r == r else 0.0

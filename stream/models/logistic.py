"""Online logistic regression over dense, already standardized vectors.

The arithmetic is River's :class:`river.linear_model.LogisticRegression` with
``optimizer=optim.SGD(lr)``, zero initial weights and intercept, the log loss and a sample weight
of 1, written for lists indexed by position. One :meth:`LogisticModel.learn` step is River's
``learn_one``:

* the loss gradient at the logit ``r = w·z + b`` is River's ``Log.gradient``, branch for branch
  (``-y / (exp(y r) + 1)`` with ``y`` in {-1, +1}, and its two tails beyond ``|r| > 18``);
  River then clips it to ±``clip_gradient`` (1e12), a no-op here since it never exceeds 1;
* the intercept moves first, ``b -= intercept_lr * g``, with the same ``g``;
* each weight takes one SGD step, ``w_i -= lr * (z_i * g + l2 * w_i)`` (the L2 term only when
  ``l2`` is not 0, as River does).

Deviations, all below 1e-13 in probability: the dot product is correctly rounded
(:mod:`stream.models.arith`) where River sums in dict order; and :meth:`predict_proba` clamps the
logit to ±35 (probabilities in [6.3e-16, 1 - 6.3e-16], never exactly 0 or 1, and no overflow in
``exp``) where River returns exactly 0 or 1 beyond ±30. A NaN logit, which only a NaN input can
produce, predicts 0.5.

Learning never makes the state non-finite: a vector with a NaN or infinity is refused, and so is
a step whose logit or weights would overflow (all leave the model unchanged and return False).

>>> model = LogisticModel(2, lr=0.5, intercept_lr=0.5)
>>> model.predict_proba([1.0, -1.0])
0.5
>>> for _ in range(20):
...     _ = model.learn([1.0, -1.0], True), model.learn([-1.0, 1.0], False)
>>> model.predict_proba([1.0, -1.0]) > 0.95, model.n_learned
(True, 40)
"""

from __future__ import annotations

from collections.abc import Sequence
from math import exp
from typing import Any, Self

from stream.exceptions import SnapshotError
from stream.models import params, snapshot
from stream.models.arith import dot
from stream.models.hygiene import is_finite_vector

__all__ = ["LOGIT_CAP", "LogisticModel"]

_KIND, _VERSION = "logistic", "1"

#: Logits are clamped to ±this before ``exp``: far from overflow, and sigmoid(35) is 1 - 6.3e-16.
LOGIT_CAP = 35.0


class LogisticModel:
    """Binary classifier: ``P(y | z) = sigmoid(w·z + b)``, learned by SGD one example at a time."""

    __slots__ = ("_intercept", "_n_learned", "_weights", "intercept_lr", "l2", "lr", "n")

    def __init__(
        self, n: int, lr: float = 0.01, l2: float = 0.0, intercept_lr: float = 0.01
    ) -> None:
        self.n = params.check_dimension(n)
        self.lr = params.check_rate("lr", lr)
        self.l2 = params.check_rate("l2", l2)
        self.intercept_lr = params.check_rate("intercept_lr", intercept_lr)
        params.check_penalty(self.lr, self.l2)
        self._weights = [0.0] * n
        self._intercept = 0.0
        self._n_learned = 0

    @property
    def n_learned(self) -> int:
        """How many labelled examples have been learned (refused ones are not counted)."""
        return self._n_learned

    @property
    def weights(self) -> list[float]:
        """A copy of the weights, by position."""
        return list(self._weights)

    @property
    def intercept(self) -> float:
        """The intercept (bias)."""
        return self._intercept

    def predict_proba(self, z: Sequence[float]) -> float:
        """``P(y = True | z)``, strictly inside (0, 1)."""
        self._check_length(z)
        r = dot(self._weights, z) + self._intercept
        if not -LOGIT_CAP <= r <= LOGIT_CAP:
            r = _clamp_logit(r)
        return 1.0 / (1.0 + exp(-r))

    def contributions(self, z: Sequence[float]) -> list[float]:
        """``w_i * z_i`` per position: what each feature added to the logit (for explanations)."""
        self._check_length(z)
        return [w * zi for w, zi in zip(self._weights, z, strict=True)]

    def learn(self, z: Sequence[float], y: bool) -> bool:
        """One SGD step on ``(z, y)``; False (and no change) if ``z`` or the result is not finite.

        A non-finite ``z`` shows as a non-finite logit (the weights are finite, and ``w * inf``
        is inf or, for a zero weight, NaN), so one check of the logit refuses it, along with the
        logits that overflow; a second check refuses a step whose weights would overflow.
        """
        self._check_length(z)  # first, so zip(strict=True) below cannot fail halfway
        r = dot(self._weights, z) + self._intercept
        if r - r != 0.0:  # NaN or ±inf
            return False
        g = _log_loss_gradient(r, y)
        lr, l2 = self.lr, self.l2
        if l2:
            weights = [w - lr * (zi * g + l2 * w) for w, zi in zip(self._weights, z, strict=True)]
        else:
            weights = [w - lr * (zi * g) for w, zi in zip(self._weights, z, strict=True)]
        intercept = self._intercept - self.intercept_lr * g
        if not (is_finite_vector(weights) and intercept - intercept == 0.0):
            return False
        self._weights, self._intercept = weights, intercept
        self._n_learned += 1
        return True

    def _check_length(self, z: Sequence[float]) -> None:
        if len(z) != self.n:
            raise ValueError(f"expected {self.n} values, got {len(z)}")

    def to_state(self) -> dict[str, Any]:
        """A JSON-able snapshot (see :mod:`stream.models.snapshot`)."""
        return {
            **snapshot.header(_KIND, _VERSION),
            "n": self.n,
            "lr": self.lr,
            "l2": self.l2,
            "intercept_lr": self.intercept_lr,
            "weights": list(self._weights),
            "intercept": self._intercept,
            "n_learned": self._n_learned,
        }

    @classmethod
    def from_state(cls, state: object) -> Self:
        """The model ``to_state`` described; :class:`SnapshotError` if it does not fit."""
        doc = snapshot.check_header(state, _KIND, _VERSION)
        try:
            model = cls(
                snapshot.get_int(doc, "n", minimum=1),
                lr=snapshot.get_float(doc, "lr"),
                l2=snapshot.get_float(doc, "l2"),
                intercept_lr=snapshot.get_float(doc, "intercept_lr"),
            )
        except ValueError as error:  # ConfigError: hyperparameters no model could have
            raise SnapshotError(f"{_KIND}: {error}") from error
        model._weights = snapshot.get_floats(doc, "weights", model.n)
        model._intercept = snapshot.get_float(doc, "intercept")
        model._n_learned = snapshot.get_int(doc, "n_learned")
        return model


def _clamp_logit(r: float) -> float:
    """``r`` clamped to ±LOGIT_CAP; NaN (from a NaN input) becomes 0, i.e. a probability of 0.5."""
    return LOGIT_CAP if r > 0.0 else -LOGIT_CAP if r < 0.0 else 0.0


def _log_loss_gradient(r: float, y: bool) -> float:
    """d(log loss)/d(logit), as River's ``optim.losses.Log.gradient`` computes it."""
    sign = 1.0 if y else -1.0
    yr = r * sign
    if yr > 18.0:
        return exp(-yr) * -sign
    if yr < -18.0:
        return -sign
    return -sign / (exp(yr) + 1.0)

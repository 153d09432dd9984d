"""The cold-start prior and the blend: what to predict before, and while, a model earns trust.

A fresh logistic model predicts 0.5 for everything, and after a few dozen labels it ranks
better than it is calibrated. Two things, both learned online from the same labels as the
model, make the served probability:

**A segment prior.** Not one base rate but a smoothed rate per *segment*: the session's event
count in powers of two (1, 2-3, 4-7, 8-15, 16-31, 32+: the popularity baseline's buckets) times
whether the cart holds something, 12 segments in all (:func:`segment_of`). The rate is
hierarchical: the partition's rate is a Beta(``alpha``, ``beta``) posterior mean, and each
segment's rate is its own counts shrunk towards it by ``strength`` pseudo-labels::

    overall   = (alpha + positives) / (alpha + beta + total)
    segment s = (positives_s + strength * overall) / (total_s + strength)

so a segment nobody has reached yet answers with the partition's rate.

**A learned blend (online stacking).** The served probability is a logistic regression on two
logits, the segment prior's and the model's (each clipped to ±``LOGIT_CLIP``)::

    p = sigmoid(b + a * logit(segment rate) + c * logit(model_p))

with ``(b, a, c)`` starting at ``(0, 1, 0)``, the prior alone, and learned by SGD on the log loss
(step ``lr``) from each label after it was predicted. How much the model is trusted is then what
its validated predictions earned, not a fixed count of labels: on a short log the blend leans on
the segment rates and uses the model's ranking as soon as it helps; on a long one it moves to the
model (and calibrates it).

Plain Python floats in a fixed order: the same labels in the same order give the same bytes.

>>> prior = ColdStartPrior(lr=0.0)
>>> cart, browsing = segment_of(math.log1p(3), math.log1p(1)), segment_of(math.log1p(3), 0.0)
>>> for y in (True, True, False):
...     prior.learn(y, 0.5, cart)
>>> for _ in range(5):
...     prior.learn(False, 0.5, browsing)
>>> round(prior.rate(cart), 4), round(prior.rate(browsing), 4), round(prior.base_rate(), 4)
(0.575, 0.05, 0.3)
>>> abs(prior.blend(0.9, cart) - prior.rate(cart)) < 1e-12  # the model has earned no weight yet
True
"""

from __future__ import annotations

import math
from typing import Any, Self

from stream.exceptions import ConfigError, SnapshotError
from stream.models import params, snapshot

__all__ = ["LOGIT_CLIP", "SEGMENTS", "SESSION_BUCKETS", "ColdStartPrior", "segment_of"]

_KIND, _VERSION = "cold_start_prior", "2"

#: Session event-count buckets (powers of two) of :func:`segment_of`.
SESSION_BUCKETS = 6
#: Segments: session bucket x cart held.
SEGMENTS = 2 * SESSION_BUCKETS
#: The blend's inputs are logits clipped to ±this (probabilities 4.5e-5 to 1 - 4.5e-5), so one
#: confident model cannot make an SGD step of the blend large.
LOGIT_CLIP = 10.0

_exp, _log, _log1p, _expm1 = math.exp, math.log, math.log1p, math.expm1


def segment_of(log_session_events: float, log_cart_lines: float) -> int:
    """The segment of an input vector from its ``log_session_events`` and ``log_cart_lines``
    (``log1p`` of the counts, as :mod:`stream.models.inputs` makes them).

    >>> [segment_of(math.log1p(n), 0.0) for n in (0, 1, 2, 3, 4, 31, 32, 500)]
    [0, 0, 1, 1, 2, 4, 5, 5]
    >>> segment_of(math.log1p(1), math.log1p(2))
    6
    """
    if log_session_events >= 50.0:  # beyond any count (and expm1's range)
        bucket = SESSION_BUCKETS - 1
    elif log_session_events > 0.0:  # False for NaN, which no cleaned input holds
        count = round(_expm1(log_session_events))
        bucket = min(max(count, 1).bit_length() - 1, SESSION_BUCKETS - 1)
    else:
        bucket = 0
    return bucket + SESSION_BUCKETS if log_cart_lines > 0.0 else bucket


def _logit(p: float) -> float:
    r = _log(p) - _log1p(-p) if 0.0 < p < 1.0 else (LOGIT_CLIP if p >= 1.0 else -LOGIT_CLIP)
    return LOGIT_CLIP if r > LOGIT_CLIP else -LOGIT_CLIP if r < -LOGIT_CLIP else r


#: The blend's own logit is clamped to ±this before ``exp``: the learned weights can grow its
#: magnitude without bound, and ``exp`` overflows past 709 (an OverflowError in the step); at
#: 35 the probability is still strictly inside (0, 1) (sigmoid(35) = 1 - 6.3e-16).
BLEND_LOGIT_CAP = 35.0


def _sigmoid(r: float) -> float:
    if r > BLEND_LOGIT_CAP:
        r = BLEND_LOGIT_CAP
    elif r < -BLEND_LOGIT_CAP:
        r = -BLEND_LOGIT_CAP
    return 1.0 / (1.0 + _exp(-r))


class ColdStartPrior:
    """Segment rates of a binary label and the learned blend with a model's probability."""

    __slots__ = (
        "_blend",
        "_counts",
        "_n_learned",
        "_positives",
        "_total",
        "alpha",
        "beta",
        "lr",
        "strength",
    )

    def __init__(
        self, alpha: float = 1.0, beta: float = 1.0, strength: float = 1.0, lr: float = 0.02
    ) -> None:
        for name, value in (("alpha", alpha), ("beta", beta), ("strength", strength)):
            if not (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
                and value > 0.0
            ):
                raise ConfigError(f"{name} must be finite and > 0, got {value!r}")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.strength = float(strength)
        self.lr = params.check_rate("lr", lr)
        self._positives = 0
        self._total = 0
        #: [positives, total] per segment.
        self._counts = [[0, 0] for _ in range(SEGMENTS)]
        #: (intercept, weight of the prior's logit, weight of the model's logit).
        self._blend = [0.0, 1.0, 0.0]
        self._n_learned = 0

    @property
    def positives(self) -> int:
        """Labels seen that were True."""
        return self._positives

    @property
    def total(self) -> int:
        """Labels seen."""
        return self._total

    @property
    def weights(self) -> tuple[float, float, float]:
        """The blend's (intercept, prior weight, model weight)."""
        b, a, c = self._blend
        return b, a, c

    def base_rate(self) -> float:
        """The partition's rate, ``(alpha + positives) / (alpha + beta + total)``."""
        return (self.alpha + self._positives) / (self.alpha + self.beta + self._total)

    def rate(self, segment: int) -> float:
        """The segment's rate, shrunk towards :meth:`base_rate` by ``strength`` labels."""
        positives, total = self._counts[segment]
        s = self.strength
        return (positives + s * self.base_rate()) / (total + s)

    def blend(self, model_p: float, segment: int) -> float:
        """The probability to serve, given the model's and the input's segment."""
        b, a, c = self._blend
        return _sigmoid(b + a * _logit(self.rate(segment)) + c * _logit(model_p))

    def learn(self, y: bool, model_p: float, segment: int) -> None:
        """Learn one label: a blend step on the prediction made *before* it (the model's
        probability then), then count it."""
        x_prior, x_model = _logit(self.rate(segment)), _logit(model_p)
        b, a, c = self._blend
        g = _sigmoid(b + a * x_prior + c * x_model) - (1.0 if y else 0.0)
        step = self.lr * g
        if step - step == 0.0:  # a NaN model_p (never from a LogisticModel) teaches nothing
            self._blend = [b - step, a - step * x_prior, c - step * x_model]
            self._n_learned += 1
        counts = self._counts[segment]
        counts[0] += bool(y)
        counts[1] += 1
        self._positives += bool(y)
        self._total += 1

    def to_state(self) -> dict[str, Any]:
        """A JSON-able snapshot (see :mod:`stream.models.snapshot`)."""
        return {
            **snapshot.header(_KIND, _VERSION),
            "alpha": self.alpha,
            "beta": self.beta,
            "strength": self.strength,
            "lr": self.lr,
            "segments": [list(pair) for pair in self._counts],
            "blend": list(self._blend),
            "n_learned": self._n_learned,
        }

    @classmethod
    def from_state(cls, state: object) -> Self:
        """The prior ``to_state`` described; :class:`SnapshotError` if it does not fit."""
        doc = snapshot.check_header(state, _KIND, _VERSION)
        try:
            prior = cls(
                snapshot.get_float(doc, "alpha"),
                snapshot.get_float(doc, "beta"),
                snapshot.get_float(doc, "strength"),
                snapshot.get_float(doc, "lr"),
            )
        except ConfigError as error:
            raise SnapshotError(f"{_KIND}: {error}") from error
        segments = doc.get("segments")
        if not isinstance(segments, list) or len(segments) != SEGMENTS:
            raise SnapshotError(f"{_KIND}: segments must be a list of {SEGMENTS} pairs")
        counts = []
        for pair in segments:
            if not (
                isinstance(pair, list)
                and len(pair) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
                and 0 <= pair[0] <= pair[1]
            ):
                raise SnapshotError(f"{_KIND}: a segment must be [positives, total], got {pair!r}")
            counts.append([pair[0], pair[1]])
        prior._counts = counts
        prior._positives = sum(pair[0] for pair in counts)
        prior._total = sum(pair[1] for pair in counts)
        prior._blend = snapshot.get_floats(doc, "blend", 3)
        prior._n_learned = snapshot.get_int(doc, "n_learned")
        return prior

"""A cold-start prior: what to predict before a model has seen enough labels to be trusted.

A fresh logistic model predicts 0.5 for everything, and after a few dozen labels it mostly
predicts noise. Until it has learned ``min_labels`` labels, the score is the smoothed base rate
(a Beta(alpha, beta) prior updated with every label seen); over the next ``min_labels`` labels it
ramps linearly to the model's own probability::

    n_learned <  m:         base_rate
    m <= n_learned < 2m:    base_rate + t * (model_p - base_rate),  t = (n_learned - m) / m
    n_learned >= 2m:        model_p

``min_labels = 0`` trusts the model from the start. The ramp (rather than a switch) keeps a user's
scores from jumping when the model takes over.

>>> prior = ColdStartPrior(alpha=1.0, beta=1.0, min_labels=100)
>>> for y in [True] + [False] * 7:
...     prior.learn(y)
>>> prior.base_rate()
0.2
>>> prior.blend(0.9, n_learned=50), prior.blend(0.9, n_learned=150), prior.blend(0.9, 400)
(0.2, 0.55, 0.9)
"""

from __future__ import annotations

import math
from typing import Any, Self

from stream.exceptions import ConfigError, SnapshotError
from stream.models import snapshot

__all__ = ["ColdStartPrior"]

_KIND, _VERSION = "cold_start_prior", "1"


class ColdStartPrior:
    """Smoothed base rate of a binary label, and the blend from it to a model's probability."""

    __slots__ = ("_positives", "_total", "alpha", "beta", "min_labels")

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, min_labels: int = 200) -> None:
        for name, value in (("alpha", alpha), ("beta", beta)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0.0):
                raise ConfigError(f"{name} must be finite and > 0, got {value!r}")
        if isinstance(min_labels, bool) or not isinstance(min_labels, int) or min_labels < 0:
            raise ConfigError(f"min_labels must be an int >= 0, got {min_labels!r}")
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.min_labels = min_labels
        self._positives = 0
        self._total = 0

    @property
    def positives(self) -> int:
        """Labels seen that were True."""
        return self._positives

    @property
    def total(self) -> int:
        """Labels seen."""
        return self._total

    def learn(self, y: bool) -> None:
        """Count one label."""
        self._positives += bool(y)
        self._total += 1

    def base_rate(self) -> float:
        """The posterior mean ``(alpha + positives) / (alpha + beta + total)``."""
        return (self.alpha + self._positives) / (self.alpha + self.beta + self._total)

    def blend(self, model_p: float, n_learned: int) -> float:
        """The probability to use, given the model's and how many labels the model has learned."""
        m = self.min_labels
        if n_learned >= 2 * m:
            return model_p
        base = self.base_rate()
        if n_learned < m:
            return base
        return base + (n_learned - m) / m * (model_p - base)

    def to_state(self) -> dict[str, Any]:
        """A JSON-able snapshot (see :mod:`stream.models.snapshot`)."""
        return {
            **snapshot.header(_KIND, _VERSION),
            "alpha": self.alpha,
            "beta": self.beta,
            "min_labels": self.min_labels,
            "positives": self._positives,
            "total": self._total,
        }

    @classmethod
    def from_state(cls, state: object) -> Self:
        """The prior ``to_state`` described; :class:`SnapshotError` if it does not fit."""
        doc = snapshot.check_header(state, _KIND, _VERSION)
        try:
            prior = cls(
                snapshot.get_float(doc, "alpha"),
                snapshot.get_float(doc, "beta"),
                snapshot.get_int(doc, "min_labels"),
            )
        except ConfigError as error:
            raise SnapshotError(f"{_KIND}: {error}") from error
        prior._positives = snapshot.get_int(doc, "positives")
        prior._total = snapshot.get_int(doc, "total", minimum=prior._positives)
        return prior

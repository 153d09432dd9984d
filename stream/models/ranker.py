"""Next category: a conditional-logit ranker over the categories a user leans to.

A softmax over user-level inputs (counts, recency, device) cannot know *which* category a user
likes: nothing in those inputs names one, so it learns little more than the categories' overall
popularity (measured: top-1 accuracy 0.13 on the generator's twelve categories, barely above
popularity), at 60 µs per prediction. This model scores each category from what the profile
says about *that* category, with weights shared by all categories:

    score(c) = bias[c] + w_affinity * log1p(affinity[c]) + w_current * [c is the event's category]

and predicts ``softmax(score)`` over the categories it knows plus the user's own candidates.
``bias`` learns popularity; the shared weights learn how much a user's own leaning predicts
their next step, and apply to categories the model has never seen a label for. Trained by SGD on
the cross-entropy, like River's ``SoftmaxRegression`` but with class-specific inputs (which River
has no estimator for).

The candidates are the user's strongest decayed category affinities at the moment of the
prediction (``Candidates``: category -> affinity, plus the event's own category), kept with the
pending label so the model learns from what it predicted with.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Self

from stream.exceptions import SnapshotError

__all__ = ["OTHER", "CategoryRanker"]

#: The class every category beyond the cap falls into.
OTHER = "other"

_KIND = "category-ranker"
_VERSION = "1"
_MAX_SCORE = 50.0


class CategoryRanker:
    """Mutable; ``predict`` never changes it, ``learn`` takes one SGD step."""

    __slots__ = ("_bias", "_learned", "lr", "max_classes", "w_affinity", "w_current")

    def __init__(self, max_classes: int = 32, lr: float = 0.05) -> None:
        if max_classes < 2:
            raise ValueError("max_classes must be >= 2 (one is reserved for 'other')")
        if not 0 < lr < 1:
            raise ValueError("lr must be in (0, 1)")
        self.max_classes, self.lr = max_classes, lr
        #: Category -> bias, in first-seen order (at most ``max_classes``, ``OTHER`` included).
        self._bias: dict[str, float] = {}
        self.w_affinity = 0.0
        self.w_current = 0.0
        self._learned = 0

    @property
    def n_learned(self) -> int:
        return self._learned

    def predict(
        self, affinity: Mapping[str, float], current: str | None
    ) -> list[tuple[str, float]]:
        """Every candidate category with its probability, most likely first (ties by name)."""
        scores = self._scores(affinity, current)
        if not scores:
            return []
        top = max(scores.values())
        exps = {c: math.exp(s - top) for c, s in scores.items()}
        norm = math.fsum(exps.values())
        ranked = [(c, e / norm) for c, e in exps.items()]
        ranked.sort(key=lambda pair: (-pair[1], pair[0]))
        return ranked

    def learn(self, affinity: Mapping[str, float], current: str | None, label: str) -> bool:
        """One SGD step towards ``label``; False (nothing changed) for non-finite affinities."""
        if not all(math.isfinite(v) and v >= 0 for v in affinity.values()):
            return False
        label = self._class_of(label)
        scores = self._scores(affinity, current)
        scores.setdefault(label, self._bias.get(label, 0.0))
        top = max(scores.values())
        exps = {c: math.exp(s - top) for c, s in scores.items()}
        norm = math.fsum(exps.values())
        lr = self.lr
        grad_affinity: list[float] = []
        grad_current = 0.0
        for category, e in exps.items():
            g = e / norm - (category == label)
            grad_affinity.append(g * math.log1p(affinity.get(category, 0.0)))
            if category == current:
                grad_current += g
            if category in self._bias or (category == label and len(self._bias) < self.max_classes):
                self._bias[category] = self._bias.get(category, 0.0) - lr * g
        self.w_affinity -= lr * math.fsum(grad_affinity)
        self.w_current -= lr * grad_current
        self._learned += 1
        return True

    def _class_of(self, label: str) -> str:
        if label in self._bias or len(self._bias) < self.max_classes - 1:
            return label
        return OTHER

    def _scores(self, affinity: Mapping[str, float], current: str | None) -> dict[str, float]:
        w_affinity, w_current = self.w_affinity, self.w_current
        scores = dict(self._bias)
        for category, value in affinity.items():
            scores[category] = scores.get(category, 0.0) + w_affinity * math.log1p(value)
        if current is not None:
            scores[current] = scores.get(current, 0.0) + w_current
        return {c: min(max(s, -_MAX_SCORE), _MAX_SCORE) for c, s in scores.items()}

    def to_state(self) -> dict[str, Any]:
        return {
            "kind": _KIND,
            "version": _VERSION,
            "max_classes": self.max_classes,
            "lr": self.lr,
            "bias": [[c, b] for c, b in self._bias.items()],
            "w_affinity": self.w_affinity,
            "w_current": self.w_current,
            "learned": self._learned,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        if state.get("kind") != _KIND or state.get("version") != _VERSION:
            raise SnapshotError(f"not a {_KIND} v{_VERSION} snapshot")
        try:
            ranker = cls(int(state["max_classes"]), float(state["lr"]))
            ranker._bias = {str(c): float(b) for c, b in state["bias"]}
            ranker.w_affinity = float(state["w_affinity"])
            ranker.w_current = float(state["w_current"])
            ranker._learned = int(state["learned"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"cannot restore {_KIND}: {exc}") from exc
        return ranker

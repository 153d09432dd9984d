"""Progressive validation: score each example before learning it, and keep the running figures.

Both trackers hold only counters and sums (no list of past predictions), so their state is small,
fixed in size and snapshot-able like the models'.

:class:`BinaryValidation` keeps a 1000-bin histogram of the scores of positives and of negatives.
The ROC AUC is read from it: a (positive, negative) pair counts 1 when the positive's bin is
higher, 1/2 when both fall in the same bin. That is the exact AUC whenever no pair shares a bin,
and off by at most half the share of pairs that do otherwise. Counting in integers makes it exact
arithmetic until the final division. The same histogram gives the calibration table (coarser,
10 bins), with one running sum of the scores per coarse bin for its mean prediction.

The log loss is River's (:class:`river.metrics.LogLoss`): probabilities clipped to
[1e-15, 1 - 1e-15], averaged; kept as a sum and divided when read.

>>> v = BinaryValidation()
>>> for p, y in [(0.9, True), (0.2, False), (0.8, False), (0.7, True)]:
...     v.update(p, y)
>>> v.roc_auc(), v.count, v.positives, round(v.brier(), 4)
(0.75, 4, 2, 0.195)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Self

from stream.exceptions import SnapshotError
from stream.models import snapshot

__all__ = ["AUC_BINS", "CALIBRATION_BINS", "BinaryValidation", "MulticlassValidation"]

#: Score histogram resolution for the ROC AUC: scores closer than 0.001 may tie.
AUC_BINS = 1000
#: Bins of the calibration table (each groups AUC_BINS // CALIBRATION_BINS histogram bins).
CALIBRATION_BINS = 10
_EPS = 1e-15
_DIGITS = 6


def _clip(p: float) -> float:
    return _EPS if p < _EPS else 1.0 - _EPS if p > 1.0 - _EPS else p


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, _DIGITS)


class BinaryValidation:
    """Running log loss, ROC AUC, Brier score, base rate and calibration of binary predictions."""

    __slots__ = ("_bin_sums", "_brier_sum", "_log_loss_sum", "_negatives", "_positives")

    def __init__(self) -> None:
        self._positives = [0] * AUC_BINS
        self._negatives = [0] * AUC_BINS
        self._bin_sums = [0.0] * CALIBRATION_BINS
        self._log_loss_sum = 0.0
        self._brier_sum = 0.0

    def update(self, p: float, y: bool) -> None:
        """Record the prediction ``p = P(y = True)`` made before ``y`` was known."""
        if not 0.0 <= p <= 1.0:  # also catches NaN: a model bug, not bad input
            raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
        fine = min(int(p * AUC_BINS), AUC_BINS - 1)
        (self._positives if y else self._negatives)[fine] += 1
        self._bin_sums[fine * CALIBRATION_BINS // AUC_BINS] += p
        clipped = _clip(p)
        self._log_loss_sum -= math.log(clipped) if y else math.log(1.0 - clipped)
        self._brier_sum += (p - 1.0) ** 2 if y else p * p

    @property
    def positives(self) -> int:
        """How many updates had ``y = True``."""
        return sum(self._positives)

    @property
    def count(self) -> int:
        """How many updates so far."""
        return self.positives + sum(self._negatives)

    def base_rate(self) -> float | None:
        """The share of positives (None before any update)."""
        return _ratio(self.positives, self.count)

    def log_loss(self) -> float | None:
        """Mean log loss (None before any update)."""
        return _ratio(self._log_loss_sum, self.count)

    def brier(self) -> float | None:
        """Mean squared error of the probability (None before any update)."""
        return _ratio(self._brier_sum, self.count)

    def roc_auc(self) -> float | None:
        """ROC AUC from the histogram (None until both classes have been seen)."""
        doubled = 0  # twice the number of correctly ordered pairs, ties counting 1/2
        negatives_below = 0
        for pos, neg in zip(self._positives, self._negatives, strict=True):
            doubled += pos * (2 * negatives_below + neg)
            negatives_below += neg
        return _ratio(doubled, 2 * self.positives * negatives_below)

    def calibration(self) -> list[tuple[float | None, float | None, int]]:
        """Per tenth of [0, 1]: (mean predicted, observed positive rate, count); None if empty."""
        width = AUC_BINS // CALIBRATION_BINS
        table = []
        for i, total in enumerate(self._bin_sums):
            pos = sum(self._positives[i * width : (i + 1) * width])
            count = pos + sum(self._negatives[i * width : (i + 1) * width])
            table.append((_ratio(total, count), _ratio(pos, count), count))
        return table

    def summary(self) -> dict[str, Any]:
        """The headline figures, rounded to 6 decimals, for logs and dashboards."""
        return {
            "count": self.count,
            "positives": self.positives,
            "base_rate": _rounded(self.base_rate()),
            "log_loss": _rounded(self.log_loss()),
            "roc_auc": _rounded(self.roc_auc()),
            "brier": _rounded(self.brier()),
        }

    def to_state(self) -> dict[str, Any]:
        """A JSON-able snapshot (see :mod:`stream.models.snapshot`)."""
        return {
            **snapshot.header("binary_validation", "1"),
            "positives": list(self._positives),
            "negatives": list(self._negatives),
            "bin_sums": list(self._bin_sums),
            "log_loss_sum": self._log_loss_sum,
            "brier_sum": self._brier_sum,
        }

    @classmethod
    def from_state(cls, state: object) -> Self:
        """The tracker ``to_state`` described; :class:`SnapshotError` if it does not fit."""
        doc = snapshot.check_header(state, "binary_validation", "1")
        tracker = cls()
        tracker._positives = _counts(doc, "positives", AUC_BINS)
        tracker._negatives = _counts(doc, "negatives", AUC_BINS)
        tracker._bin_sums = snapshot.get_floats(doc, "bin_sums", CALIBRATION_BINS)
        tracker._log_loss_sum = snapshot.get_float(doc, "log_loss_sum")
        tracker._brier_sum = snapshot.get_float(doc, "brier_sum")
        return tracker


class MulticlassValidation:
    """Running top-1 accuracy, top-k hit rate and log loss of ranked multiclass predictions.

    ``k`` is fixed by the first update: a hit rate mixing several k would mean nothing, so a later
    update with another k is a :class:`ValueError`.
    """

    __slots__ = ("_count", "_k", "_log_loss_sum", "_top1", "_topk")

    def __init__(self) -> None:
        self._count = 0
        self._top1 = 0
        self._topk = 0
        self._k: int | None = None
        self._log_loss_sum = 0.0

    def update(self, ranked: Sequence[tuple[str, float]], label: str, k: int = 3) -> None:
        """Record a ranking (most likely first, as ``SoftmaxModel.predict`` gives) and the truth.

        A label absent from the ranking counts as probability 0 (clipped to 1e-15 for the loss).
        """
        if k < 1 or k != (self._k if self._k is not None else k):
            raise ValueError(f"k must be >= 1 and the same for every update, got {k}")
        self._k = k
        labels = [name for name, _ in ranked]
        self._count += 1
        self._top1 += bool(labels) and labels[0] == label
        self._topk += label in labels[:k]
        p = next((prob for name, prob in ranked if name == label), 0.0)
        self._log_loss_sum -= math.log(_clip(p))

    @property
    def count(self) -> int:
        """How many updates so far."""
        return self._count

    @property
    def k(self) -> int | None:
        """The k of the top-k hit rate (None before the first update)."""
        return self._k

    def accuracy(self) -> float | None:
        """Share of updates whose top-ranked class was the label."""
        return _ratio(self._top1, self._count)

    def top_k_rate(self) -> float | None:
        """Share of updates whose label was among the first k."""
        return _ratio(self._topk, self._count)

    def log_loss(self) -> float | None:
        """Mean of ``-log p(label)``."""
        return _ratio(self._log_loss_sum, self._count)

    def summary(self) -> dict[str, Any]:
        """The headline figures, rounded to 6 decimals."""
        return {
            "count": self._count,
            "k": self._k,
            "accuracy": _rounded(self.accuracy()),
            "top_k": _rounded(self.top_k_rate()),
            "log_loss": _rounded(self.log_loss()),
        }

    def to_state(self) -> dict[str, Any]:
        """A JSON-able snapshot (see :mod:`stream.models.snapshot`)."""
        return {
            **snapshot.header("multiclass_validation", "1"),
            "count": self._count,
            "top1": self._top1,
            "topk": self._topk,
            "k": self._k,
            "log_loss_sum": self._log_loss_sum,
        }

    @classmethod
    def from_state(cls, state: object) -> Self:
        """The tracker ``to_state`` described; :class:`SnapshotError` if it does not fit."""
        doc = snapshot.check_header(state, "multiclass_validation", "1")
        tracker = cls()
        tracker._count = snapshot.get_int(doc, "count")
        tracker._top1 = snapshot.get_int(doc, "top1")
        tracker._topk = snapshot.get_int(doc, "topk")
        tracker._k = None if doc.get("k") is None else snapshot.get_int(doc, "k", minimum=1)
        tracker._log_loss_sum = snapshot.get_float(doc, "log_loss_sum")
        if not tracker._top1 <= tracker._topk <= tracker._count:
            raise SnapshotError("multiclass_validation: counts are inconsistent")
        return tracker


def _counts(doc: Any, key: str, length: int) -> list[int]:
    value = doc.get(key)
    if not isinstance(value, list) or len(value) != length:
        raise SnapshotError(f"{doc['kind']}: {key} must be a list of {length} counts")
    if not all(type(c) is int and c >= 0 for c in value):
        raise SnapshotError(f"{doc['kind']}: {key} must hold non-negative ints")
    return list(value)

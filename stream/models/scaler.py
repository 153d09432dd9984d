"""Running standardization: each position of a dense vector to zero mean and unit variance.

The scaler is shared by every model of a profile and learns from every input vector when it is
scored (unsupervised: it needs no label), so the models always see vectors standardized by all
the traffic so far, and learn from those standardized vectors when their labels arrive.

The arithmetic is River's :class:`river.preprocessing.StandardScaler` (default settings), written
for a list indexed by position instead of a dict, so the two agree to the last bit or two:

* mean and variance are updated with Welford's method, in River's exact form:
  ``mean += (x - old_mean) / n`` then ``var += ((x - old_mean) * (x - mean) - var) / n``;
* the variance is the population variance (``ddof=0``), and ``transform`` uses the statistics
  *after* the update when called after ``learn`` on the same vector (River's
  ``learn_one`` then ``transform_one``);
* a position with zero variance (no data, one value, or a constant) transforms to 0.0.

The one difference: the standard deviation is ``math.sqrt(var)``, correctly rounded by IEEE 754
on every machine, where River writes ``var ** 0.5`` (the C library's ``pow``).

>>> scaler = RunningScaler(2)
>>> for x in ([1.0, 5.0], [3.0, 5.0]):
...     scaler.learn_transform(x)
[0.0, 0.0]
[1.0, 0.0]
>>> scaler.transform([2.0, 7.0])
[0.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from math import sqrt
from typing import Any, Self

from stream.exceptions import SnapshotError
from stream.models import snapshot
from stream.models.hygiene import is_finite_vector

__all__ = ["RunningScaler"]

_KIND, _VERSION = "running_scaler", "1"


class RunningScaler:
    """Running mean and population variance per position of an ``n``-long vector."""

    __slots__ = ("_count", "_mean", "_std", "_var", "n")

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n = n
        self._count = 0
        self._mean = [0.0] * n
        self._var = [0.0] * n
        #: ``sqrt(var)``, computed once per update: transforms outnumber updates by far.
        self._std: list[float] | None = None

    @property
    def count(self) -> int:
        """How many vectors have been learned (refused ones are not counted)."""
        return self._count

    def learn(self, x: Sequence[float]) -> bool:
        """Fold ``x`` into the statistics; False (and no change) if ``x`` is not all finite."""
        return self._update(x) is not None

    def transform(self, x: Sequence[float]) -> list[float]:
        """``(x - mean) / std`` per position, 0.0 where the variance is zero."""
        self._check_length(x)
        std = self._std
        if std is None:
            std = self._std = [sqrt(v) for v in self._var]
        return [(xi - m) / s if s else 0.0 for xi, m, s in zip(x, self._mean, std, strict=True)]

    def learn_transform(self, x: Sequence[float]) -> list[float]:
        """``learn(x)`` then ``transform(x)`` in one pass (the hot path: half the loops).

        A refused ``x`` is transformed without being learned, so its non-finite values stay
        non-finite and the models downstream refuse it too.
        """
        z = self._update(x)
        return self.transform(x) if z is None else z

    def _update(self, x: Sequence[float]) -> list[float] | None:
        """The Welford step; returns the transform of ``x``, or None if refused.

        The new lists are built aside and installed only if they are finite, so a refusal (a
        non-finite input, or finite values so huge that the squares overflow) changes nothing.
        """
        self._check_length(x)
        count = self._count + 1
        mean: list[float] = []
        var: list[float] = []
        z: list[float] = []
        add_mean, add_var, add_z = mean.append, var.append, z.append
        # One loop for all three lists: the fastest of the forms measured (scripts/modelbench.py).
        for xi, old, v in zip(x, self._mean, self._var, strict=True):
            delta = xi - old
            m = old + delta / count
            v += (delta * (xi - m) - v) / count
            add_mean(m)
            add_var(v)
            add_z((xi - m) / sqrt(v) if v else 0.0)
        # One check after the loop covers the input too: a NaN input makes its variance NaN,
        # and an infinite one (or an overflow) makes it NaN or inf (inf - inf, inf * 0).
        if not is_finite_vector(var):
            return None
        self._count, self._mean, self._var, self._std = count, mean, var, None
        return z

    def _check_length(self, x: Sequence[float]) -> None:
        if len(x) != self.n:
            raise ValueError(f"expected {self.n} values, got {len(x)}")

    def to_state(self) -> dict[str, Any]:
        """A JSON-able snapshot (see :mod:`stream.models.snapshot`)."""
        return {
            **snapshot.header(_KIND, _VERSION),
            "n": self.n,
            "count": self._count,
            "mean": list(self._mean),
            "var": list(self._var),
        }

    @classmethod
    def from_state(cls, state: object) -> Self:
        """The scaler ``to_state`` described; :class:`SnapshotError` if it does not fit."""
        doc = snapshot.check_header(state, _KIND, _VERSION)
        scaler = cls(snapshot.get_int(doc, "n", minimum=1))
        scaler._count = snapshot.get_int(doc, "count")
        scaler._mean = snapshot.get_floats(doc, "mean", scaler.n)
        scaler._var = snapshot.get_floats(doc, "var", scaler.n)
        scaler._std = None
        if any(v < 0.0 for v in scaler._var):
            raise SnapshotError(f"{_KIND}: a variance is negative")
        return scaler

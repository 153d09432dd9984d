"""The one summation rule every learner uses, so a replay is bitwise identical anywhere.

Sums go through :func:`math.fsum`, which returns the correctly rounded sum of its terms. Each
term (a product of two floats) is itself correctly rounded by IEEE 754, so a dot product depends
only on its inputs: not on the CPU's SIMD width (as numpy's and BLAS's reductions do), not on the
summation order, and not on the Python version (the built-in :func:`sum` switched to compensated
summation in 3.12, so its results differ between 3.11 and 3.12).

>>> dot([0.1, 0.2, 0.3], [1.0, 1.0, 1.0]) == 0.6
True
>>> sum([0.1, 0.2, 0.3]) == 0.6  # on 3.11: plain left-to-right rounding
False
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from operator import mul

__all__ = ["dot", "total"]

_fsum = math.fsum


def dot(weights: Sequence[float], values: Sequence[float]) -> float:
    """The correctly rounded ``sum(w * v)``; inf or NaN when a product is not finite.

    :func:`math.fsum` raises where the plain sum would not: :class:`OverflowError` when finite
    partial sums overflow, :class:`ValueError` when products overflow to both infinities. The
    plain sum then says which infinity (or NaN) the result is, which callers clamp or refuse.
    """
    try:
        return _fsum(map(mul, weights, values))
    except (OverflowError, ValueError):
        return float(sum(map(mul, weights, values)))


def total(values: Sequence[float]) -> float:
    """The correctly rounded sum of ``values`` (see :func:`dot` for the overflow case)."""
    try:
        return _fsum(values)
    except (OverflowError, ValueError):
        return float(sum(values))

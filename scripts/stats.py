"""Tiny statistics helpers for reports.

>>> percentile([1, 2, 3, 4], 50)
2.5
>>> percentile([], 99)
nan
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["median", "percentile"]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile of already sorted values (NaN when empty)."""
    if not sorted_values:
        return math.nan
    rank = (len(sorted_values) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    weight = rank - low
    return float(sorted_values[low] * (1 - weight) + sorted_values[high] * weight)


def median(values: Sequence[float]) -> float:
    return percentile(sorted(values), 50)

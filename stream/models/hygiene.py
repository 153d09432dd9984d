"""Input hygiene for the learners: NaN and infinities must never reach a model's state.

A single NaN fed to a gradient step turns every weight into NaN for good, and a snapshot of that
state replays the damage forever. The learners therefore refuse (skip) any vector that is not
entirely finite, and callers that would rather keep the event can repair it first with
:func:`clean_inputs`, which also reports how much it had to fix (worth a metric).

>>> clean_inputs([1.0, float("nan"), float("inf"), -2e12])
([1.0, 0.0, 1000000000.0, -1000000000.0], 3)
>>> is_finite_vector([0.0, 1e308, -1e308]), is_finite_vector([0.0, float("nan")])
(True, False)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["DEFAULT_LIMIT", "clean_inputs", "is_finite_vector"]

#: Default magnitude cap of :func:`clean_inputs`: far above any real feature, far below overflow.
DEFAULT_LIMIT = 1e9


def is_finite_vector(values: Sequence[float]) -> bool:
    """Whether every value is finite (neither NaN nor ±inf).

    Fast path: a finite sum implies finite terms (an inf or NaN term makes the sum inf or NaN), and
    ``t - t`` is 0.0 exactly when ``t`` is finite. Only when the sum is not finite, which finite
    terms can also cause by overflowing, are the values checked one by one.
    """
    total = sum(values)
    return total - total == 0.0 or all(map(math.isfinite, values))


def clean_inputs(values: Sequence[float], limit: float = DEFAULT_LIMIT) -> tuple[list[float], int]:
    """Map NaN to 0.0 and clamp everything else into ``[-limit, limit]``; count the fixes.

    NaN carries no direction, so it becomes the neutral 0.0; an infinity keeps its sign and becomes
    the cap. Returns the cleaned copy (the input is not mutated) and how many values changed.
    """
    if not limit > 0.0 or not math.isfinite(limit):
        raise ValueError(f"limit must be finite and positive, got {limit!r}")
    # Fast path, all in C: the usual vector is finite and within the cap.
    if is_finite_vector(values) and (
        not values or (max(values) <= limit and min(values) >= -limit)
    ):
        return list(values), 0
    cleaned = [_clean(v, limit) for v in values]
    fixed = sum(1 for old, new in zip(values, cleaned, strict=True) if old != new)
    return cleaned, fixed


def _clean(value: float, limit: float) -> float:
    if value != value:  # NaN
        return 0.0
    return -limit if value < -limit else limit if value > limit else value

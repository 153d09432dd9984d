"""Experiments: sticky variant assignment by hashing, and reward statistics that merge.

A user's variant is a pure function of the experiment's salt and the user's key
(:func:`assign_variant`), so every partition, replay and restart puts the user in the same
variant without storing the assignment. A new salt reshuffles everyone (a new experiment).

:class:`RewardStats` keeps a count, mean and sum of squared deviations (M2) of the rewards per
variant, updated with Welford's method; :meth:`RewardStats.merge` combines the statistics of two
partitions with Chan's formula, so each partition keeps its own and the reader adds them up.
:meth:`RewardStats.lift` compares a variant with the baseline (the holdout by default): the
difference of means and its normal-approximation interval.

>>> shares = [("holdout", 0.1), ("champion", 0.9)]
>>> assign_variant("user-1", "exp-7", shares) == assign_variant("user-1", "exp-7", shares)
True
>>> stats = RewardStats()
>>> for reward in (0.0, 1.0, 0.0, 1.0):
...     _ = stats.observe("holdout", reward), stats.observe("champion", reward + 1.0)
>>> stats.mean("champion"), stats.variance("champion")
(1.5, 0.3333333333333333)
>>> lift = stats.lift("champion")
>>> lift.estimate, round(lift.low, 4), round(lift.high, 4), lift.n, lift.n_baseline
(1.0, 0.1998, 1.8002, 4, 4)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Self

from stream.exceptions import ConfigError, SnapshotError
from stream.models import snapshot
from stream.models.arith import total

__all__ = ["BUCKETS", "Lift", "RewardStats", "VariantAssigner", "assign_variant"]

_KIND, _VERSION = "reward_stats", "1"

#: Assignment granularity: shares are honoured to 1/10,000 (0.01 %).
BUCKETS = 10_000

#: How far the shares may sum from 1 (rounding in a config file), and no further.
_SHARE_TOLERANCE = 1e-9

#: One variant's (count, mean, m2): a tuple, so merging can share it without copying.
_Moments = tuple[int, float, float]


def assign_variant(user_key: str, salt: str, shares: Sequence[tuple[str, float]]) -> str:
    """The variant of ``user_key``: its hash bucket's place along the cumulative ``shares``.

    ``shares`` are ``(variant, share)`` pairs summing to 1; a share of 0 gets nobody (a variant
    switched off without moving anyone else). :class:`ConfigError` if they do not fit.

    >>> shares = [("holdout", 0.5), ("off", 0.0), ("champion", 0.5)]
    >>> sorted({assign_variant(f"user-{i}", "salt", shares) for i in range(100)})
    ['champion', 'holdout']
    >>> assign_variant("user-1", "salt", [("holdout", 0.5), ("champion", 0.6)])
    Traceback (most recent call last):
    ...
    stream.exceptions.ConfigError: shares must sum to 1, got 1.1
    """
    return VariantAssigner(salt, shares)(user_key)


class VariantAssigner:
    """:func:`assign_variant` for one salt and set of shares, checked and laid out once (the
    policy assigns a variant on every event)."""

    __slots__ = ("_edges", "_last", "_salt")

    def __init__(self, salt: str, shares: Sequence[tuple[str, float]]) -> None:
        _check_shares(shares)
        values = [share for _, share in shares]
        self._salt = salt
        # fsum of each prefix: the edges do not depend on how rounding accumulates.
        self._edges = [
            (total(values[: i + 1]) * BUCKETS, variant)
            for i, (variant, share) in enumerate(shares)
            if share > 0.0
        ]
        # Only the shares' rounding (below the tolerance) can leave the last buckets unclaimed.
        self._last = self._edges[-1][1]

    def __call__(self, user_key: str) -> str:
        bucket = _bucket(self._salt, user_key)
        for edge, variant in self._edges:
            if bucket < edge:
                return variant
        return self._last


class Lift(NamedTuple):
    """A variant's mean reward minus the baseline's, with its confidence interval."""

    variant: str
    baseline: str
    estimate: float
    low: float
    high: float
    n: int
    n_baseline: int


class RewardStats:
    """Count, mean and M2 (sum of squared deviations) of the rewards, per variant."""

    __slots__ = ("_moments",)

    def __init__(self) -> None:
        #: variant -> (count, mean, m2), in the order variants were first seen.
        self._moments: dict[str, _Moments] = {}

    @property
    def variants(self) -> tuple[str, ...]:
        """The variants with at least one reward, in the order they were first seen."""
        return tuple(self._moments)

    def count(self, variant: str) -> int:
        """How many rewards ``variant`` has (refused ones are not counted)."""
        return self._moments.get(variant, (0, 0.0, 0.0))[0]

    def mean(self, variant: str) -> float | None:
        """The mean reward of ``variant``; None before its first reward."""
        moments = self._moments.get(variant)
        return None if moments is None else moments[1]

    def variance(self, variant: str) -> float | None:
        """The sample variance (``n - 1`` denominator); None before two rewards."""
        count, _, m2 = self._moments.get(variant, (0, 0.0, 0.0))
        return m2 / (count - 1) if count >= 2 else None

    def observe(self, variant: str, reward: float) -> bool:
        """Fold one reward in (Welford); False (and no change) if it or the result is not finite."""
        count, mean, m2 = self._moments.get(variant, (0, 0.0, 0.0))
        count += 1
        delta = reward - mean
        mean += delta / count
        m2 += delta * (reward - mean)
        if not (math.isfinite(mean) and math.isfinite(m2)):
            return False
        self._moments[variant] = (count, mean, m2)
        return True

    def merge(self, other: RewardStats) -> RewardStats:
        """New statistics of both reward streams together (Chan et al.'s parallel formula)."""
        merged = RewardStats()
        merged._moments = dict(self._moments)
        for variant, moments in other._moments.items():
            mine = merged._moments.get(variant)
            merged._moments[variant] = moments if mine is None else _chan(mine, moments)
        return merged

    def lift(self, variant: str, baseline: str = "holdout", z: float = 1.96) -> Lift | None:
        """``mean(variant) - mean(baseline)`` ± ``z`` standard errors; None below 2 rewards each.

        The standard error is ``sqrt(var_v / n_v + var_b / n_b)`` (Welch's, unpooled), the
        normal approximation: fine for the thousands of rewards an experiment runs on.
        """
        if not (math.isfinite(z) and z >= 0.0):
            raise ValueError(f"z must be finite and >= 0, got {z!r}")
        var_v, var_b = self.variance(variant), self.variance(baseline)
        if var_v is None or var_b is None:
            return None
        (n_v, mean_v, _), (n_b, mean_b, _) = self._moments[variant], self._moments[baseline]
        estimate = mean_v - mean_b
        half = z * math.sqrt(total([var_v / n_v, var_b / n_b]))
        return Lift(variant, baseline, estimate, estimate - half, estimate + half, n_v, n_b)

    def to_state(self) -> dict[str, Any]:
        """A JSON-able snapshot (see :mod:`stream.models.snapshot`)."""
        variants = [
            {"variant": variant, "count": count, "mean": mean, "m2": m2}
            for variant, (count, mean, m2) in self._moments.items()
        ]
        return {**snapshot.header(_KIND, _VERSION), "variants": variants}

    @classmethod
    def from_state(cls, state: object) -> Self:
        """The statistics ``to_state`` described; :class:`SnapshotError` if they do not fit."""
        doc = snapshot.check_header(state, _KIND, _VERSION)
        variants = doc.get("variants")
        if not isinstance(variants, list) or not all(isinstance(v, Mapping) for v in variants):
            raise SnapshotError(f"{_KIND}: variants must be a list of mappings")
        stats = cls()
        for entry in variants:
            variant, moments = _moments_from_state(entry)
            if variant in stats._moments:
                raise SnapshotError(f"{_KIND}: variant {variant!r} appears twice")
            stats._moments[variant] = moments
        return stats


def _bucket(salt: str, user_key: str) -> int:
    """The user's bucket in [0, BUCKETS): 64 hash bits, so the modulo bias is below 1e-15."""
    digest = hashlib.blake2b(f"{salt}\x1f{user_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def _check_shares(shares: Sequence[tuple[str, float]]) -> None:
    if not shares:
        raise ConfigError("shares must name at least one variant")
    names = [variant for variant, _ in shares]
    if len(set(names)) != len(names):
        raise ConfigError(f"variants must be distinct, got {names!r}")
    values = [share for _, share in shares]
    if not all(math.isfinite(share) and 0.0 <= share <= 1.0 for share in values):
        raise ConfigError(f"each share must be in [0, 1], got {values!r}")
    if abs(total(values) - 1.0) > _SHARE_TOLERANCE:
        raise ConfigError(f"shares must sum to 1, got {total(values)!r}")


def _chan(a: _Moments, b: _Moments) -> _Moments:
    """The moments of two samples together, from each one's (count, mean, m2)."""
    (n_a, mean_a, m2_a), (n_b, mean_b, m2_b) = a, b
    n = n_a + n_b
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    return n, mean, total([m2_a, m2_b, delta * delta * (n_a * n_b / n)])


def _moments_from_state(entry: Mapping[str, Any]) -> tuple[str, _Moments]:
    doc = {**entry, "kind": _KIND}  # the snapshot helpers name the kind in their errors
    variant = doc.get("variant")
    if not isinstance(variant, str):
        raise SnapshotError(f"{_KIND}: variant must be a string, got {variant!r}")
    count = snapshot.get_int(doc, "count", minimum=1)
    mean, m2 = snapshot.get_float(doc, "mean"), snapshot.get_float(doc, "m2")
    if m2 < 0.0 or (count == 1 and m2 != 0.0):
        raise SnapshotError(f"{_KIND}: m2 of {variant!r} must be >= 0 (and 0 for one reward)")
    return variant, (count, mean, m2)

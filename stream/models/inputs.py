"""The models' input: a fixed-order vector of numbers built from a profile's features.

Linear learners with running standardization need inputs on a sane scale, so each feature is
mapped by a transform chosen for its kind, not left raw:

* counts, sums, prices and durations are heavy-tailed (a power user has 100x the median's
  views; ``ms_since_*`` spans milliseconds to weeks): ``log1p`` of the value (durations in
  seconds), so one extreme user does not dominate the running mean and variance;
* rates and flags are already in [0, 1] and stay as they are;
* "never happened" (``ms_since_order_completed == -1``) is its own flag plus the duration
  capped at the idle horizon, instead of a magic number that reads as "very recent";
* the local hour is a point on a circle (sin, cos), so 23:00 and 00:00 are neighbours;
* the device type is one-hot over the values the context knows.

The names are derived from the catalog (window features) plus a fixed list, once per config.
Every value is cleaned (:func:`stream.models.hygiene.clean_inputs`) before a learner sees it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stream.catalog import Catalog
from stream.features import FeatureView, group_of
from stream.memo import PerObject

__all__ = ["ModelInputs", "model_inputs"]

Transform = Callable[[Any], float]

_SECOND_MS = 1000.0


def _log_count(value: Any) -> float:
    return math.log1p(value) if value > 0 else 0.0


def _as_is(value: Any) -> float:
    return float(value)


def _flag(value: Any) -> float:
    return 1.0 if value else 0.0


def _log_duration(never_s: float) -> Transform:
    never = math.log1p(never_s)

    def transform(value: Any) -> float:
        return math.log1p(value / _SECOND_MS) if value >= 0 else never

    return transform


def _never(value: Any) -> float:
    return 1.0 if value < 0 else 0.0


_TWO_PI = 2.0 * math.pi


def _hour_sin(value: Any) -> float:
    return math.sin(_TWO_PI * value / 24.0) if isinstance(value, int) else 0.0


def _hour_cos(value: Any) -> float:
    return math.cos(_TWO_PI * value / 24.0) if isinstance(value, int) else 0.0


def _weekend(value: Any) -> float:
    return 1.0 if value in (5, 6) else 0.0  # Python weekday(): Saturday 5, Sunday 6


def _device(kind: str) -> Transform:
    def transform(value: Any) -> float:
        return 1.0 if value == kind else 0.0

    return transform


_DEVICES = {kind: _device(kind) for kind in ("mobile", "tablet", "desktop")}

_DURATIONS = (
    "ms_since_product_viewed",
    "ms_since_product_added",
    "ms_since_checkout_started",
    "ms_since_order_completed",
)

#: Name of the model input, the feature it reads, and the transform. Window features come first
#: (from the catalog); these follow.
_FIXED: tuple[tuple[str, str, Transform], ...] = (
    ("log_events_total", "events_total", _log_count),
    ("log_views_total", "views_total", _log_count),
    ("log_orders_total", "orders_total", _log_count),
    ("log_revenue_total", "revenue_total", _log_count),
    ("known_user", "known_user", _flag),
    ("log_tenure_s", "tenure_ms", _log_duration(0.0)),
    *(
        item
        for name in _DURATIONS
        for item in (
            (f"log_{name.removeprefix('ms_')}_s", name, _log_duration(30 * 86_400.0)),
            (f"never_{name.removeprefix('ms_since_')}", name, _never),
        )
    ),
    ("log_session_events", "session_events", _log_count),
    ("log_session_pages", "session_pages", _log_count),
    ("log_session_length_s", "session_length_ms", _log_duration(0.0)),
    ("log_sessions_7d", "sessions_7d", _log_count),
    ("log_sessions_total", "sessions_total", _log_count),
    ("returning_visitor", "returning_visitor", _flag),
    ("log_cart_lines", "cart_lines", _log_count),
    ("log_cart_items", "cart_items", _log_count),
    ("log_cart_value", "cart_value", _log_count),
    ("log_views_since_add", "views_since_add", _log_count),
    ("log_top_category_affinity", "top_category_affinity", _log_count),
    ("local_hour_sin", "context_local_hour", _hour_sin),
    ("local_hour_cos", "context_local_hour", _hour_cos),
    ("weekend", "context_weekday", _weekend),
    *((f"device_{kind}", "context_device_type", _DEVICES[kind]) for kind in _DEVICES),
)

#: Transforms whose value is 0 or 1: an explanation says "yes"/"no" for these inputs.
_FLAG_TRANSFORMS: frozenset[Transform] = frozenset({_flag, _never, _weekend, *_DEVICES.values()})


@dataclass(frozen=True, slots=True)
class ModelInputs:
    """The input layout for one catalog: names in order, and how to read each from features."""

    names: tuple[str, ...]
    #: The inputs that are 0/1 flags.
    flags: frozenset[str]
    _reads: tuple[tuple[str, Transform], ...]
    #: The feature groups the inputs read (see stream.features.FeatureView).
    _groups: tuple[str, ...]

    def vector(self, features: Mapping[str, Any]) -> list[float]:
        """The input vector of one feature view (values may still need cleaning)."""
        values = features.groups(self._groups) if isinstance(features, FeatureView) else features
        return [transform(values[feature]) for feature, transform in self._reads]

    def __len__(self) -> int:
        return len(self.names)


def _window_reads(catalog: Catalog) -> list[tuple[str, str, Transform]]:
    reads: list[tuple[str, str, Transform]] = []
    for spec in catalog.windowed:
        for window in spec.windows_ms:
            feature = spec.feature_name(window)
            reads.append((f"log_{feature}", feature, _log_count))
    for ratio in catalog.ratios:
        # A ratio of counts is a rate (kept as is); a ratio of money to a count is a price.
        if "price" in ratio.name or "revenue" in ratio.name:
            reads.append((f"log_{ratio.name}", ratio.name, _log_count))
        else:
            reads.append((ratio.name, ratio.name, _as_is))
    return reads


def _build(catalog: Catalog) -> ModelInputs:
    reads = [*_window_reads(catalog), *_FIXED]
    return ModelInputs(
        names=tuple(name for name, _, _ in reads),
        flags=frozenset(name for name, _, transform in reads if transform in _FLAG_TRANSFORMS),
        _reads=tuple((feature, transform) for _, feature, transform in reads),
        _groups=tuple(dict.fromkeys(group_of(feature) for _, feature, _ in reads)),
    )


#: The layout of each catalog, built once (the catalog is frozen and lives as long as a config).
model_inputs: PerObject[Catalog, ModelInputs] = PerObject(_build)

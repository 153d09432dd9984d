"""The feature catalog: which aggregations over which events and windows, as data.

Each :class:`WindowedSpec` names an event, an aggregator (:mod:`stream.aggregators`), an
optional property to aggregate, and the windows to keep. Feature names are derived from the spec
so they never drift from what is computed::

    WindowedSpec("Product Viewed", "count", windows_ms=(HOUR_MS,))  ->  product_viewed_count_1h
    WindowedSpec("Product Viewed", "distinct", "category", (DAY_MS,)) ->
        product_viewed_distinct_category_24h

Ratios (e.g. add-to-cart per view) are derived from two windowed features of the same window.

>>> [s.feature_name(w) for s in DEFAULT_CATALOG.windowed[:1] for w in s.windows_ms]
['product_viewed_count_1m', 'product_viewed_count_10m', 'product_viewed_count_1h', \
'product_viewed_count_24h', 'product_viewed_count_7d']
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stream.aggregators import AGGREGATORS
from stream.exceptions import ConfigError
from stream.windows import DAY_MS, HOUR_MS, MINUTE_MS, window_label

__all__ = ["DEFAULT_CATALOG", "Catalog", "RatioSpec", "WindowedSpec", "slug"]

ALL_WINDOWS = (MINUTE_MS, 10 * MINUTE_MS, HOUR_MS, DAY_MS, 7 * DAY_MS)


def slug(text: str) -> str:
    """Lower-case snake-case form of an event name.

    >>> slug("Product Added to Wishlist"), slug("page")
    ('product_added_to_wishlist', 'page')
    """
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


@dataclass(frozen=True, slots=True)
class WindowedSpec:
    """An aggregation of one event's occurrences (or one of its properties) over windows."""

    event: str
    aggregate: str
    field: str | None = None
    windows_ms: tuple[int, ...] = ALL_WINDOWS

    def __post_init__(self) -> None:
        aggregator = AGGREGATORS.get(self.aggregate)
        if aggregator is None:
            raise ConfigError(f"unknown aggregate {self.aggregate!r}; known: {sorted(AGGREGATORS)}")
        if aggregator.needs_value != (self.field is not None):
            raise ConfigError(
                f"{self.aggregate!r} {'needs' if aggregator.needs_value else 'takes no'}"
                f" field (spec for {self.event!r})"
            )
        if not self.windows_ms or any(w <= 0 for w in self.windows_ms):
            raise ConfigError(f"windows must be positive (spec for {self.event!r})")

    @property
    def key(self) -> str:
        """Stable identifier of the spec's state in a profile."""
        field = f"_{self.field}" if self.field else ""
        return f"{slug(self.event)}_{self.aggregate}{field}"

    def feature_name(self, window_ms: int) -> str:
        return f"{self.key}_{window_label(window_ms)}"


@dataclass(frozen=True, slots=True)
class RatioSpec:
    """``numerator / denominator`` of two windowed features (0 when the denominator is 0)."""

    name: str
    numerator: str
    denominator: str


@dataclass(frozen=True, slots=True)
class Catalog:
    """The windowed features and the ratios derived from them."""

    windowed: tuple[WindowedSpec, ...]
    ratios: tuple[RatioSpec, ...] = ()

    def __post_init__(self) -> None:
        names = [s.feature_name(w) for s in self.windowed for w in s.windows_ms]
        if len(names) != len(set(names)):
            raise ConfigError("two windowed specs derive the same feature name")
        for ratio in self.ratios:
            missing = {ratio.numerator, ratio.denominator} - set(names)
            if missing:
                raise ConfigError(f"ratio {ratio.name!r} refers to unknown {sorted(missing)}")

    def feature_names(self) -> list[str]:
        names = [s.feature_name(w) for s in self.windowed for w in s.windows_ms]
        return names + [r.name for r in self.ratios]


DEFAULT_CATALOG = Catalog(
    windowed=(
        WindowedSpec("Product Viewed", "count"),
        WindowedSpec("Product Viewed", "distinct", "product_id", (HOUR_MS, DAY_MS)),
        WindowedSpec("Product Viewed", "distinct", "category", (HOUR_MS, DAY_MS)),
        WindowedSpec("Product Viewed", "sum", "price", (DAY_MS,)),
        WindowedSpec("Product Viewed", "max", "price", (DAY_MS,)),
        WindowedSpec(
            "Product Added", "count", windows_ms=(10 * MINUTE_MS, HOUR_MS, DAY_MS, 7 * DAY_MS)
        ),
        WindowedSpec("Product Added", "sum", "price", (DAY_MS,)),
        WindowedSpec("Checkout Started", "count", windows_ms=(HOUR_MS, DAY_MS)),
        WindowedSpec("Order Completed", "count", windows_ms=(DAY_MS, 7 * DAY_MS)),
        WindowedSpec("Order Completed", "sum", "revenue", (7 * DAY_MS,)),
        WindowedSpec("page", "count", windows_ms=(10 * MINUTE_MS, HOUR_MS, DAY_MS)),
        WindowedSpec("screen", "count", windows_ms=(10 * MINUTE_MS, HOUR_MS, DAY_MS)),
        WindowedSpec("Products Searched", "count", windows_ms=(HOUR_MS, DAY_MS)),
    ),
    ratios=(
        RatioSpec("add_to_cart_per_view_1h", "product_added_count_1h", "product_viewed_count_1h"),
        RatioSpec(
            "add_to_cart_per_view_24h", "product_added_count_24h", "product_viewed_count_24h"
        ),
        RatioSpec(
            "mean_viewed_price_24h", "product_viewed_sum_price_24h", "product_viewed_count_24h"
        ),
        RatioSpec("orders_per_add_7d", "order_completed_count_7d", "product_added_count_7d"),
    ),
)

"""Windowed aggregates in event time: bucket series per catalog spec, updated and read purely.

State layout (JSON-ready, inside the profile)::

    {spec.key: {bucket_size_ms (str): {bucket_start_ms (str): aggregator state}}}

Adding an event touches one bucket per series, whatever the order events arrive in, and every
aggregator's ``add``/``merge`` is order-independent, so out-of-order events give the same state
as in-order ones. Buckets older than their series' longest window (relative to the profile's
latest event time) are dropped on every update: state is bounded by the catalog, not by history.

The catalog is compiled once into a :class:`Plan` (names, bucket sizes, retentions), so the
per-event work is only dictionary updates and merges.

>>> from stream.catalog import Catalog, WindowedSpec
>>> from stream.windows import HOUR_MS
>>> catalog = Catalog((WindowedSpec("Product Viewed", "count", windows_ms=(HOUR_MS,)),))
>>> state: WindowState = {}
>>> for t in (0, 60_000, 3_000_000):
...     add_event(state, catalog, "Product Viewed", t, lambda field: None)
>>> read_all(state, catalog, now_ms=3_000_000)
{'product_viewed_count_1h': 3.0}
>>> read_all(state, catalog, now_ms=3_700_000)  # the first two buckets left the window
{'product_viewed_count_1h': 1.0}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from stream.aggregators import AGGREGATORS, Aggregator
from stream.catalog import Catalog
from stream.windows import MINUTE_MS, bucket_size_for, bucket_start, expired_before

__all__ = ["Plan", "WindowState", "add_event", "copy_state", "expire", "plan_for", "read_all"]

WindowState = dict[str, dict[str, dict[str, Any]]]


class SeriesPlan(NamedTuple):
    size: int
    size_key: str
    retention_ms: int


class WindowPlan(NamedTuple):
    name: str
    window_ms: int
    size_key: str


class SpecPlan(NamedTuple):
    key: str
    field: str | None
    aggregator: Aggregator
    series: tuple[SeriesPlan, ...]
    windows: tuple[WindowPlan, ...]


class Plan(NamedTuple):
    """A catalog compiled for the hot path."""

    by_event: dict[str, tuple[SpecPlan, ...]]
    specs: tuple[SpecPlan, ...]
    ratios: tuple[tuple[str, str, str], ...]
    #: Expiry runs as of the start of the current tick (a minute, or the smallest bucket if
    #: larger): buckets may outlive their window by up to a tick, which reads never see.
    tick_ms: int
    #: min(retention - bucket size) over the series: an event newer than ``tick - this`` is in
    #: a live bucket of every series (its start is past every cutoff), so the check is skipped.
    slack_ms: int


_PLANS: dict[int, tuple[Catalog, Plan]] = {}


def plan_for(catalog: Catalog) -> Plan:
    """The compiled plan of ``catalog``, built once per catalog object.

    Cached by identity, not by value: hashing a catalog (nested frozen dataclasses) on every
    event cost more than the aggregation itself. The catalog is kept alive with its plan, so an
    id is never reused while cached.
    """
    cached = _PLANS.get(id(catalog))
    if cached is None:
        cached = _PLANS[id(catalog)] = (catalog, _compile(catalog))
    return cached[1]


def _compile(catalog: Catalog) -> Plan:
    specs = []
    for spec in catalog.windowed:
        series = tuple(
            SeriesPlan(size, str(size), retention) for size, retention in spec.series().items()
        )
        windows = tuple(
            WindowPlan(spec.feature_name(w), w, str(bucket_size_for(w))) for w in spec.windows_ms
        )
        specs.append(
            (
                spec.event,
                SpecPlan(spec.key, spec.field, AGGREGATORS[spec.aggregate], series, windows),
            )
        )
    by_event: dict[str, list[SpecPlan]] = {}
    for event, plan in specs:
        by_event.setdefault(event, []).append(plan)
    ratios = tuple((r.name, r.numerator, r.denominator) for r in catalog.ratios)
    smallest = min((series.size for _, plan in specs for series in plan.series), default=1)
    tick = max(smallest, MINUTE_MS)
    slack = min(
        (series.retention_ms - series.size for _, plan in specs for series in plan.series),
        default=0,
    )
    return Plan(
        {e: tuple(p) for e, p in by_event.items()},
        tuple(p for _, p in specs),
        ratios,
        tick,
        slack,
    )


def add_event(
    state: WindowState,
    catalog: Catalog,
    event_name: str,
    timestamp_ms: int,
    value_of: Callable[[str], Any],
    now_ms: int | None = None,
) -> None:
    """Fold an event into every series whose spec is about ``event_name``.

    ``value_of(field)`` gives the (sanitized) property value a spec aggregates, or ``None``
    when the event has no usable value (the spec then skips the event). A late event whose
    bucket already left every window of a series (as of ``now_ms``) is not added there, so an
    expired bucket never comes back (which is what lets :func:`expire` run only per tick).
    """
    plan = plan_for(catalog)
    now_tick = None if now_ms is None else bucket_start(now_ms, plan.tick_ms)
    # The usual case, an event at or near the latest time, cannot be behind any cutoff.
    recent = now_tick is None or timestamp_ms >= now_tick - plan.slack_ms
    for spec in plan.by_event.get(event_name, ()):
        value = value_of(spec.field) if spec.field is not None else None
        if spec.field is not None and value is None:
            continue
        aggregator = spec.aggregator
        series_by_size = state.setdefault(spec.key, {})
        for series in spec.series:
            start = bucket_start(timestamp_ms, series.size)
            if not recent and start < expired_before(
                now_tick or 0, series.retention_ms, series.size
            ):
                continue
            # Copy on write: bucket dicts may be shared with the profile the step was given.
            buckets = dict(series_by_size.get(series.size_key, ()))
            bucket = str(start)
            current = buckets.get(bucket)
            buckets[bucket] = aggregator.add(
                aggregator.initial() if current is None else current, value
            )
            series_by_size[series.size_key] = buckets


def expire(
    state: WindowState, catalog: Catalog, now_ms: int, previous_ms: int | None = None
) -> None:
    """Drop buckets that no window can include any more, and series left empty.

    Cutoffs only move when time crosses a multiple of the smallest bucket size (the plan's
    tick), and late events are not added to expired buckets, so when ``previous_ms`` (the time
    of the last call) lies in the same tick as ``now_ms`` there is nothing to do.
    """
    plan = plan_for(catalog)
    if previous_ms is not None and now_ms // plan.tick_ms == previous_ms // plan.tick_ms:
        return
    now_ms = bucket_start(now_ms, plan.tick_ms)
    for spec in plan.specs:
        series_by_size = state.get(spec.key)
        if not series_by_size:
            continue
        for series in spec.series:
            buckets = series_by_size.get(series.size_key)
            if buckets is None:
                continue
            oldest = expired_before(now_ms, series.retention_ms, series.size)
            kept = {b: v for b, v in buckets.items() if int(b) >= oldest}
            if not kept:
                del series_by_size[series.size_key]
            elif len(kept) < len(buckets):
                series_by_size[series.size_key] = kept  # a new dict: the old may be shared
        if not series_by_size:
            del state[spec.key]


def read_all(state: WindowState, catalog: Catalog, now_ms: int) -> dict[str, float]:
    """Every windowed feature and ratio of the catalog, by name, over ``(now - W, now]``."""
    plan = plan_for(catalog)
    values: dict[str, float] = {}
    for spec in plan.specs:
        series_by_size = state.get(spec.key, {})
        aggregator = spec.aggregator
        for window in spec.windows:
            merged = aggregator.initial()
            cutoff = now_ms - window.window_ms
            for bucket, value in series_by_size.get(window.size_key, {}).items():
                if cutoff < int(bucket) <= now_ms:
                    merged = aggregator.merge(merged, value)
            values[window.name] = aggregator.result(merged)
    for name, numerator, denominator in plan.ratios:
        below = values[denominator]
        values[name] = round(values[numerator] / below, 6) if below else 0.0
    return values


def copy_state(state: WindowState) -> WindowState:
    """A copy whose bucket dicts are shared: :func:`add_event` and :func:`expire` replace a
    bucket dict instead of changing it (copy on write), and aggregator states are immutable."""
    return {key: dict(series) for key, series in state.items()}

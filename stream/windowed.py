"""Windowed aggregates in event time, kept incrementally so a read costs nothing.

A catalog (:mod:`stream.catalog`) is compiled once into a :class:`Plan`. Per user, a
:class:`WindowState` holds:

* **bucket series**, one per bucket size the catalog's windows use: ``{bucket start: columns}``,
  one integer column per count, sum or max spec that has a window of that size. Sums are kept in
  integer micro-units, so adding them is exact and does not depend on the order of events;
* **running totals**, one per (count or sum spec, window): the sum of the column over the buckets
  inside the window ``(as_of - W, as_of]``. When time advances, the buckets that leave a window
  are subtracted from its totals; a read is a list lookup;
* **distinct maps**, one per distinct spec: value -> the last time it was seen, capped at the
  spec's limit by keeping the most recent values. The number of values seen within a window is
  then exact up to the limit (every value seen in the window is more recent than any outside it).

``as_of`` is the latest event time folded in (the user's own watermark). An event older than
``as_of`` still lands in its bucket and in the totals of the windows that contain its bucket; one
older than a series' retention (its longest window) has left every window and is skipped there.
Buckets, totals and distinct values therefore depend only on the set of events, not on the order
they arrived in, and the state stays bounded by the catalog, whatever the history.

The generic aggregators (:mod:`stream.aggregators`) are the reference semantics; the tests check
this engine against them event by event.

>>> from stream.catalog import Catalog, WindowedSpec
>>> from stream.windows import HOUR_MS
>>> catalog = Catalog((WindowedSpec("Product Viewed", "count", windows_ms=(HOUR_MS,)),))
>>> state = WindowState()
>>> for t in (0, 60_000, 3_000_000):
...     add_event(state, catalog, "Product Viewed", t, lambda field: None)
>>> read_all(state, catalog)
{'product_viewed_count_1h': 3}
>>> add_event(state, catalog, "page", 3_700_000, lambda field: None)  # time moves on
>>> read_all(state, catalog)  # the first two buckets left the window
{'product_viewed_count_1h': 1}
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any, NamedTuple

from stream.aggregators import AGGREGATORS, DISTINCT_LIMIT
from stream.catalog import Catalog
from stream.exceptions import SnapshotError
from stream.memo import PerObject
from stream.windows import bucket_size_for

__all__ = [
    "Plan",
    "WindowState",
    "add_event",
    "merge_into",
    "plan_for",
    "read_all",
    "reference_read",
]

#: Sums are kept as integers in millionths: exact, so the result ignores arrival order.
MICRO = 1_000_000

_COUNT, _SUM, _MAX, _DISTINCT = "count", "sum", "max", "distinct"


class Cell(NamedTuple):
    """Where one spec's value goes in one series: series index, column, bucket size, retention
    and the number of columns of the series' buckets."""

    series: int
    column: int
    size: int
    retention_ms: int
    width: int


class Total(NamedTuple):
    """One running total: its slot, its window and the series (and column) it sums."""

    slot: int
    window_ms: int
    series: int
    column: int
    size: int


class SpecOp(NamedTuple):
    """What adding an event does for one spec."""

    kind: str
    field: str | None
    cells: tuple[Cell, ...]
    totals: tuple[Total, ...]
    #: For distinct specs: the index of the spec's map, its cap and retention.
    distinct: int
    limit: int
    retention_ms: int


class Reader(NamedTuple):
    """How to read one feature: by kind, from a total slot, a series column or a distinct map."""

    name: str
    kind: str
    window_ms: int
    slot: int
    series: int
    column: int
    distinct: int


class Plan(NamedTuple):
    """A catalog compiled for the hot path (built once per catalog object, see :func:`plan_for`)."""

    by_event: dict[str, tuple[SpecOp, ...]]
    #: (size, retention, columns) per series.
    series: tuple[tuple[int, int, int], ...]
    #: The totals grouped by (window, series): what leaves together when time advances.
    leaving: tuple[tuple[int, int, int, tuple[tuple[int, int], ...]], ...]
    distinct_retention: tuple[int, ...]
    total_slots: int
    readers: tuple[Reader, ...]
    ratios: tuple[tuple[str, str, str], ...]
    #: Identifies the state layout: a profile written under another catalog starts its windows
    #: again instead of misreading columns.
    layout: str


def _compile(catalog: Catalog) -> Plan:
    sizes: dict[int, int] = {}  # size -> retention
    for spec in catalog.windowed:
        if spec.aggregate != _DISTINCT:
            for window in spec.windows_ms:
                size = bucket_size_for(window)
                sizes[size] = max(sizes.get(size, 0), window)
    series_index = {size: i for i, size in enumerate(sorted(sizes))}
    columns = [0] * len(series_index)
    ops: dict[str, list[SpecOp]] = {}
    readers: list[Reader] = []
    leaving: dict[tuple[int, int], list[tuple[int, int]]] = {}
    distinct_retention: list[int] = []
    slots = 0
    for spec in catalog.windowed:
        kind = spec.aggregate
        if kind == _DISTINCT:
            index = len(distinct_retention)
            retention = max(spec.windows_ms)
            distinct_retention.append(retention)
            limit = DISTINCT_LIMIT
            ops.setdefault(spec.event, []).append(
                SpecOp(kind, spec.field, (), (), index, limit, retention)
            )
            readers.extend(
                Reader(spec.feature_name(w), kind, w, -1, -1, -1, index) for w in spec.windows_ms
            )
            continue
        cells: dict[int, Cell] = {}
        totals = []
        for window in spec.windows_ms:
            size = bucket_size_for(window)
            s = series_index[size]
            if s not in cells:
                cells[s] = Cell(s, columns[s], size, sizes[size], 0)  # width set below
                columns[s] += 1
            column = cells[s].column
            if kind == _MAX:
                readers.append(Reader(spec.feature_name(window), kind, window, -1, s, column, -1))
                continue
            totals.append(Total(slots, window, s, column, size))
            leaving.setdefault((window, s), []).append((slots, column))
            readers.append(Reader(spec.feature_name(window), kind, window, slots, s, column, -1))
            slots += 1
        ops.setdefault(spec.event, []).append(
            SpecOp(kind, spec.field, tuple(cells.values()), tuple(totals), -1, 0, 0)
        )
    series = tuple((size, sizes[size], columns[series_index[size]]) for size in sorted(sizes))
    ops = {
        event: [
            op._replace(cells=tuple(c._replace(width=columns[c.series]) for c in op.cells))
            for op in spec_ops
        ]
        for event, spec_ops in ops.items()
    }
    leaving_plan = tuple(
        (window, s, series[s][0], tuple(pairs)) for (window, s), pairs in sorted(leaving.items())
    )
    ratios = tuple((r.name, r.numerator, r.denominator) for r in catalog.ratios)
    layout = hashlib.blake2b(repr((series, readers)).encode(), digest_size=6).hexdigest()
    return Plan(
        {event: tuple(spec_ops) for event, spec_ops in ops.items()},
        series,
        leaving_plan,
        tuple(distinct_retention),
        slots,
        tuple(readers),
        ratios,
        layout,
    )


class WindowState:
    """One user's windowed aggregates (mutable; the step owns the profile it updates)."""

    __slots__ = ("as_of", "buckets", "distinct", "layout", "totals")

    def __init__(
        self,
        layout: str = "",
        as_of: int | None = None,
        buckets: list[dict[int, list[int]]] | None = None,
        totals: list[int] | None = None,
        distinct: list[dict[str, int]] | None = None,
    ) -> None:
        self.layout = layout
        self.as_of = as_of
        self.buckets = buckets if buckets is not None else []
        self.totals = totals if totals is not None else []
        self.distinct = distinct if distinct is not None else []

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WindowState) and self.to_doc() == other.to_doc()

    def __repr__(self) -> str:
        return f"WindowState({self.to_doc()!r})"

    def copy(self) -> WindowState:
        return WindowState(
            self.layout,
            self.as_of,
            [{start: list(columns) for start, columns in b.items()} for b in self.buckets],
            list(self.totals),
            [dict(d) for d in self.distinct],
        )

    def to_doc(self) -> dict[str, Any]:
        """JSON-ready, canonical (buckets sorted by start)."""
        return {
            "layout": self.layout,
            "as_of": self.as_of,
            "buckets": [{str(k): b[k] for k in sorted(b)} for b in self.buckets],
            "totals": self.totals,
            "distinct": self.distinct,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> WindowState:
        try:
            return cls(
                str(doc["layout"]),
                None if doc["as_of"] is None else int(doc["as_of"]),
                [{int(k): [int(c) for c in v] for k, v in b.items()} for b in doc["buckets"]],
                [int(t) for t in doc["totals"]],
                [{str(k): int(v) for k, v in d.items()} for d in doc["distinct"]],
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SnapshotError(f"bad window state: {exc}") from exc


def _reset(state: WindowState, plan: Plan) -> None:
    state.layout = plan.layout
    state.as_of = None
    state.buckets = [{} for _ in plan.series]
    state.totals = [0] * plan.total_slots
    state.distinct = [{} for _ in plan.distinct_retention]


def add_event(
    state: WindowState,
    catalog: Catalog,
    event_name: str,
    timestamp_ms: int,
    value_of: Callable[[str], Any],
) -> None:
    """Fold one event into every spec about ``event_name`` (and move time on to it).

    ``value_of(field)`` gives the (sanitized) property value a spec aggregates, or ``None``
    when the event has no usable value (the spec then skips the event).
    """
    plan = plan_for(catalog)
    if state.layout != plan.layout:
        _reset(state, plan)
    t = timestamp_ms
    if state.as_of is None or t > state.as_of:
        _advance(state, plan, t)
    now = state.as_of
    assert now is not None
    in_order = t == now  # the usual case: every bucket and window of the event is live
    buckets_by_series, totals = state.buckets, state.totals
    for op in plan.by_event.get(event_name, ()):
        if op.field is None:
            amount = 1
        else:
            value = value_of(op.field)
            if value is None:
                continue
            if op.kind == _DISTINCT:
                if t > now - op.retention_ms:
                    _see(state.distinct[op.distinct], str(value), t, op.limit)
                continue
            amount = round(float(value) * MICRO)
        is_max = op.kind == _MAX
        for series, column, size, retention_ms, width in op.cells:
            start = t - t % size
            if not in_order and start <= now - retention_ms:
                continue  # left every window of the series already
            buckets = buckets_by_series[series]
            columns = buckets.get(start)
            if columns is None:
                columns = buckets[start] = [0] * width
            if not is_max:
                columns[column] += amount
            elif amount > columns[column]:
                columns[column] = amount
        if in_order:
            for total in op.totals:
                totals[total[0]] += amount
        else:
            for slot, window_ms, _, _, size in op.totals:
                if t - t % size > now - window_ms:
                    totals[slot] += amount


def merge_into(state: WindowState, other: WindowState, catalog: Catalog) -> None:
    """Add ``other``'s events to ``state``, as if one user had done both histories.

    Exact, because buckets, totals and distinct values depend only on the set of events (see
    the module's docstring): buckets add column by column (maxima take the larger), distinct
    values keep each value's latest time within the cap, time moves to the later ``as_of``,
    what left every window by then goes, and the totals are summed again from the buckets.
    """
    plan = plan_for(catalog)
    if other.layout != plan.layout or other.as_of is None:
        return
    if state.layout != plan.layout or state.as_of is None:
        copied = other.copy()
        state.layout, state.as_of, state.buckets = copied.layout, copied.as_of, copied.buckets
        state.totals, state.distinct = copied.totals, copied.distinct
        return
    now = max(state.as_of, other.as_of)
    maxima, limits, totals = _merge_layout(plan)
    for s, (_size, retention, _width) in enumerate(plan.series):
        buckets, cut = state.buckets[s], now - retention
        for start, columns in other.buckets[s].items():
            mine = buckets.get(start)
            if mine is None:
                buckets[start] = list(columns)
                continue
            for column, value in enumerate(columns):
                is_max = (s, column) in maxima
                mine[column] = max(mine[column], value) if is_max else mine[column] + value
        for start in [b for b in buckets if b <= cut]:
            del buckets[start]
    for index, retention in enumerate(plan.distinct_retention):
        cut = now - retention
        seen = {v: t for v, t in state.distinct[index].items() if t > cut}
        for label, t in other.distinct[index].items():
            if t > cut:
                _see(seen, label, t, limits[index])
        state.distinct[index] = seen
    state.as_of = now
    for slot, window_ms, s, column, _size in totals:
        cut = now - window_ms
        state.totals[slot] = sum(c[column] for start, c in state.buckets[s].items() if start > cut)


def _merge_layout(plan: Plan) -> tuple[set[tuple[int, int]], dict[int, int], list[Total]]:
    """The (series, column) pairs holding maxima, each distinct map's cap, every total."""
    maxima: set[tuple[int, int]] = set()
    limits: dict[int, int] = {}
    totals: list[Total] = []
    for ops in plan.by_event.values():
        for op in ops:
            if op.kind == _MAX:
                maxima.update((cell.series, cell.column) for cell in op.cells)
            elif op.kind == _DISTINCT:
                limits[op.distinct] = op.limit
            totals.extend(op.totals)
    return maxima, limits, totals


def _see(seen: dict[str, int], value: str, t: int, limit: int) -> None:
    previous = seen.get(value)
    if previous is None or t > previous:
        seen[value] = t
        if len(seen) > limit:
            # The least recent goes (ties by value): which values remain is then the `limit`
            # most recent, whatever the arrival order.
            del seen[min(seen, key=lambda v: (seen[v], v))]


def _advance(state: WindowState, plan: Plan, now: int) -> None:
    """Move ``as_of`` forward to ``now``: subtract the buckets leaving each window from its
    totals, then drop buckets and distinct values no window can include any more."""
    before = state.as_of
    state.as_of = now
    if before is None:
        return
    for window, s, size, pairs in plan.leaving:
        # Buckets start on multiples of the size: none leaves unless one lies in the range.
        old_cut, new_cut = before - window, now - window
        if old_cut // size == new_cut // size:
            continue
        for start, columns in state.buckets[s].items():
            if old_cut < start <= new_cut:
                for slot, column in pairs:
                    state.totals[slot] -= columns[column]
    for s, (size, retention, _) in enumerate(plan.series):
        old_cut, new_cut = before - retention, now - retention
        if old_cut // size != new_cut // size:
            buckets = state.buckets[s]
            for start in [b for b in buckets if b <= new_cut]:
                del buckets[start]
    for index, retention in enumerate(plan.distinct_retention):
        seen = state.distinct[index]
        cut = now - retention
        if seen and min(seen.values()) <= cut:
            state.distinct[index] = {v: t for v, t in seen.items() if t > cut}


def read_all(state: WindowState, catalog: Catalog) -> dict[str, float | int]:
    """Every windowed feature and ratio of the catalog, as of ``state.as_of``.

    Counts are ints; sums, maxima and ratios are floats.
    """
    plan = plan_for(catalog)
    if state.layout != plan.layout or state.as_of is None:
        return _empty(plan)
    now = state.as_of
    values: dict[str, float | int] = {}
    totals = state.totals
    for r in plan.readers:
        if r.kind == _COUNT:
            values[r.name] = totals[r.slot]
        elif r.kind == _SUM:
            values[r.name] = totals[r.slot] / MICRO
        elif r.kind == _MAX:
            cut = now - r.window_ms
            values[r.name] = (
                max(
                    (c[r.column] for b, c in state.buckets[r.series].items() if b > cut),
                    default=0,
                )
                / MICRO
            )
        else:
            cut = now - r.window_ms
            values[r.name] = sum(1 for t in state.distinct[r.distinct].values() if t > cut)
    _add_ratios(values, plan)
    return values


def _empty(plan: Plan) -> dict[str, float | int]:
    values: dict[str, float | int] = {
        r.name: 0 if r.kind in (_COUNT, _DISTINCT) else 0.0 for r in plan.readers
    }
    _add_ratios(values, plan)
    return values


def _add_ratios(values: dict[str, float | int], plan: Plan) -> None:
    for name, numerator, denominator in plan.ratios:
        below = values[denominator]
        values[name] = round(values[numerator] / below, 6) if below else 0.0


def reference_read(
    events: list[tuple[str, int, Callable[[str], Any]]], catalog: Catalog, now_ms: int
) -> dict[str, float | int]:
    """The same features computed from scratch with the generic aggregators (the tests' oracle).

    An event belongs to window ``W`` when its bucket (of the window's size) starts within
    ``(now - W, now]``; distinct counts saturate at the aggregator's limit.
    """
    values: dict[str, float | int] = {}
    for spec in catalog.windowed:
        aggregator = AGGREGATORS[spec.aggregate]
        for window in spec.windows_ms:
            size = bucket_size_for(window)
            state = aggregator.initial()
            inside = []
            for name, t, value_of in events:
                # Distinct counts use the exact time, the others the bucket's start.
                at = t if spec.aggregate == _DISTINCT else t - t % size
                if name != spec.event or not now_ms - window < at <= now_ms:
                    continue
                value = value_of(spec.field) if spec.field is not None else None
                if spec.field is not None and value is None:
                    continue
                inside.append(value)
            if spec.aggregate == _DISTINCT:
                state = sorted({str(v) for v in inside})
                result: float | int = min(len(state), DISTINCT_LIMIT)
            else:
                for value in inside:
                    state = aggregator.add(state, value)
                result = aggregator.result(state)
                result = int(result) if spec.aggregate == _COUNT else round(result, 6)
            values[spec.feature_name(window)] = result
    _add_ratios(values, plan_for(catalog))
    return values


#: The compiled plan of a catalog, built once per catalog object (stream.memo).
plan_for: PerObject[Catalog, Plan] = PerObject(_compile)

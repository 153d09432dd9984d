"""Window math, the catalog, and windowed aggregates in event time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.catalog import ALL_WINDOWS, DEFAULT_CATALOG, Catalog, RatioSpec, WindowedSpec
from stream.exceptions import ConfigError
from stream.windowed import WindowState, add_event, expire, read_all
from stream.windows import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    bucket_size_for,
    bucket_start,
    expired_before,
    in_window,
    window_label,
)

T0 = 1_700_000_000_000


@pytest.mark.parametrize("window", ALL_WINDOWS)
def test_every_window_gets_about_a_dozen_buckets(window: int) -> None:
    size = bucket_size_for(window)
    assert 12 <= window // size <= 30
    assert window % size == 0


def test_labels() -> None:
    assert [window_label(w) for w in ALL_WINDOWS] == ["1m", "10m", "1h", "24h", "7d"]


@settings(max_examples=200, deadline=None)
@given(
    now=st.integers(0, 10**13),
    window=st.sampled_from(ALL_WINDOWS),
    offset=st.integers(-3 * DAY_MS, DAY_MS),
)
def test_expired_buckets_are_exactly_those_no_longer_in_the_window(
    now: int, window: int, offset: int
) -> None:
    size = bucket_size_for(window)
    bucket = bucket_start(now + offset, size)
    if bucket <= now:
        assert in_window(bucket, now, window) == (bucket >= expired_before(now, window, size))


def test_catalog_rejects_nonsense() -> None:
    with pytest.raises(ConfigError, match="unknown aggregate"):
        WindowedSpec("Product Viewed", "median", "price")
    with pytest.raises(ConfigError, match="takes no field"):
        WindowedSpec("Product Viewed", "count", "price")
    with pytest.raises(ConfigError, match="needs"):
        WindowedSpec("Product Viewed", "sum")
    with pytest.raises(ConfigError, match="positive"):
        WindowedSpec("Product Viewed", "count", windows_ms=(0,))
    spec = WindowedSpec("Product Viewed", "count", windows_ms=(HOUR_MS,))
    with pytest.raises(ConfigError, match="same feature name"):
        Catalog((spec, spec))
    with pytest.raises(ConfigError, match="unknown"):
        Catalog((spec,), (RatioSpec("r", "product_viewed_count_1h", "nope_1h"),))


def test_default_catalog_names_are_derived_from_specs() -> None:
    names = DEFAULT_CATALOG.feature_names()
    assert len(names) == len(set(names))
    for expected in (
        "product_viewed_count_1h",
        "product_viewed_distinct_category_24h",
        "product_added_count_7d",
        "add_to_cart_per_view_1h",
    ):
        assert expected in names


VIEWS = Catalog(
    (
        WindowedSpec("Product Viewed", "count", windows_ms=(MINUTE_MS, HOUR_MS, DAY_MS)),
        WindowedSpec("Product Viewed", "sum", "price", (HOUR_MS,)),
        WindowedSpec("Product Viewed", "distinct", "category", (DAY_MS,)),
    )
)
EVENTS = st.lists(
    st.tuples(
        st.integers(0, 2 * DAY_MS),
        st.integers(0, 10_000).map(lambda c: c / 100),
        st.sampled_from(["a", "b", "c"]),
    ),
    min_size=1,
    max_size=40,
)


def _apply(events: list[tuple[int, float, str]], catalog: Catalog = VIEWS) -> WindowState:
    state: WindowState = {}
    for offset, price, category in events:
        values = {"price": price, "category": category}
        add_event(state, catalog, "Product Viewed", T0 + offset, values.__getitem__)
    return state


@settings(max_examples=80, deadline=None)
@given(events=EVENTS, data=st.data())
def test_arrival_order_does_not_change_state_or_features(
    events: list[tuple[int, float, str]], data: st.DataObject
) -> None:
    shuffled = list(data.draw(st.permutations(events)))
    now = T0 + max(e[0] for e in events)
    assert _apply(events) == _apply(shuffled)
    assert read_all(_apply(events), VIEWS, now) == read_all(_apply(shuffled), VIEWS, now)


@settings(max_examples=80, deadline=None)
@given(events=EVENTS)
def test_counts_match_a_brute_force_count_by_bucket(events: list[tuple[int, float, str]]) -> None:
    now = T0 + max(e[0] for e in events)
    features = read_all(_apply(events), VIEWS, now)
    for window, name in ((MINUTE_MS, "1m"), (HOUR_MS, "1h"), (DAY_MS, "24h")):
        size = bucket_size_for(window)
        expected = sum(
            1 for t, _, _ in events if in_window(bucket_start(T0 + t, size), now, window)
        )
        assert features[f"product_viewed_count_{name}"] == expected >= 0


@settings(max_examples=80, deadline=None)
@given(events=EVENTS)
def test_expiry_keeps_features_and_bounds_buckets(events: list[tuple[int, float, str]]) -> None:
    now = T0 + max(e[0] for e in events)
    state = _apply(events)
    before = read_all(state, VIEWS, now)
    expire(state, VIEWS, now)
    assert read_all(state, VIEWS, now) == before
    for series in state.values():
        for size, buckets in series.items():
            assert len(buckets) <= DAY_MS // int(size) + 1


@settings(max_examples=80, deadline=None)
@given(events=EVENTS)
def test_expiring_once_per_tick_as_events_arrive_equals_a_full_expiry(
    events: list[tuple[int, float, str]],
) -> None:
    """The streaming path (late adds to expired buckets skipped, expiry only when time crosses a
    tick) ends in exactly the state a full expiry of everything gives."""
    streamed: WindowState = {}
    latest: int | None = None
    for offset, price, category in events:
        t = T0 + offset
        now = t if latest is None else max(latest, t)
        values = {"price": price, "category": category}
        add_event(streamed, VIEWS, "Product Viewed", t, values.__getitem__, now)
        expire(streamed, VIEWS, now, latest)
        latest = now
    assert latest is not None
    batch = _apply([e for e in events])
    expire(batch, VIEWS, latest)
    # Buckets a late event would have re-created are exactly the ones the full expiry drops.
    assert streamed == batch
    assert read_all(streamed, VIEWS, latest) == read_all(_apply(events), VIEWS, latest)


def test_a_late_event_just_behind_a_cutoff_does_not_recreate_an_expired_bucket() -> None:
    """The edge of the in-order fast path: within one bucket of a series' cutoff."""
    spec = WindowedSpec("Product Viewed", "count", windows_ms=(DAY_MS,))
    catalog = Catalog((spec,))
    size = bucket_size_for(DAY_MS)
    now = T0 + 3 * DAY_MS
    state: WindowState = {}
    add_event(state, catalog, "Product Viewed", now, lambda field: None, now)
    cutoff = expired_before(bucket_start(now, MINUTE_MS), DAY_MS, size)
    for late in (cutoff - 1, cutoff - size, cutoff - size + 1):
        add_event(state, catalog, "Product Viewed", late, lambda field: None, now)
    assert all(int(b) >= cutoff for b in state[spec.key][str(size)])
    add_event(state, catalog, "Product Viewed", cutoff, lambda field: None, now)
    assert str(cutoff) in state[spec.key][str(size)]

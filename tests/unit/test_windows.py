"""Window math, the catalog, and the incremental windowed aggregates (against a reference)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.catalog import ALL_WINDOWS, DEFAULT_CATALOG, Catalog, RatioSpec, WindowedSpec
from stream.exceptions import ConfigError
from stream.windowed import MICRO, WindowState, add_event, plan_for, read_all, reference_read
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
        WindowedSpec("Product Viewed", "sum", "price", (HOUR_MS, DAY_MS)),
        WindowedSpec("Product Viewed", "max", "price", (HOUR_MS,)),
        WindowedSpec("Product Viewed", "distinct", "category", (HOUR_MS, DAY_MS)),
        WindowedSpec("page", "count", windows_ms=(10 * MINUTE_MS, HOUR_MS)),
    ),
    (RatioSpec("views_per_page_1h", "product_viewed_count_1h", "page_count_1h"),),
)
Raw = tuple[str, int, float | None, str]
EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["Product Viewed", "Product Viewed", "page", "Order Completed"]),
        # Two days with clusters: many events share buckets, many cross window edges.
        st.one_of(st.integers(0, 2 * DAY_MS), st.integers(0, 20).map(lambda m: m * MINUTE_MS)),
        st.one_of(st.none(), st.integers(0, 100_000).map(lambda c: c / 100)),
        st.sampled_from(["a", "b", "c", "d"]),
    ),
    min_size=1,
    max_size=60,
)


def _values(price: float | None, category: str) -> dict[str, object]:
    return {"price": price, "category": category}


def _apply(events: list[Raw], catalog: Catalog = VIEWS) -> WindowState:
    state = WindowState()
    for name, offset, price, category in events:
        add_event(state, catalog, name, T0 + offset, _values(price, category).get)
    return state


def _reference(events: list[Raw], now: int) -> dict[str, float | int]:
    return reference_read([(n, T0 + o, _values(p, c).get) for n, o, p, c in events], VIEWS, now)


def _check_totals_invariant(state: WindowState, catalog: Catalog) -> None:
    """Every running total equals its column summed over the buckets inside its window."""
    plan = plan_for(catalog)
    assert state.as_of is not None
    for window, series, _, pairs in plan.leaving:
        for slot, column in pairs:
            inside = sum(
                c[column] for b, c in state.buckets[series].items() if b > state.as_of - window
            )
            assert state.totals[slot] == inside


@settings(max_examples=150, deadline=None)
@given(events=EVENTS)
def test_features_equal_the_reference_aggregators_after_every_event(events: list[Raw]) -> None:
    """The engine (incremental totals, leaving buckets subtracted, late events placed) reads
    exactly what the generic aggregators compute from scratch over the events so far."""
    state = WindowState()
    for i, (name, offset, price, category) in enumerate(events):
        add_event(state, VIEWS, name, T0 + offset, _values(price, category).get)
        assert state.as_of is not None
        expected = _reference(events[: i + 1], state.as_of)
        got = read_all(state, VIEWS)
        assert got.keys() == expected.keys()
        for feature, value in expected.items():
            assert got[feature] == pytest.approx(value, abs=1e-6), feature
        _check_totals_invariant(state, VIEWS)


@settings(max_examples=100, deadline=None)
@given(events=EVENTS, data=st.data())
def test_arrival_order_does_not_change_state_or_features(
    events: list[Raw], data: st.DataObject
) -> None:
    shuffled = list(data.draw(st.permutations(events)))
    in_order, arrived = _apply(events), _apply(shuffled)
    assert in_order.to_doc() == arrived.to_doc()
    assert read_all(in_order, VIEWS) == read_all(arrived, VIEWS)


@settings(max_examples=100, deadline=None)
@given(events=EVENTS)
def test_counts_are_never_negative_and_state_stays_bounded(events: list[Raw]) -> None:
    state = WindowState()
    for name, offset, price, category in events:
        add_event(state, VIEWS, name, T0 + offset, _values(price, category).get)
        assert all(total >= 0 for total in state.totals)
        assert all(v >= 0 for v in read_all(state, VIEWS).values())
    for (size, retention, _), buckets in zip(plan_for(VIEWS).series, state.buckets, strict=True):
        assert len(buckets) <= retention // size + 1
        assert state.as_of is not None
        assert all(b > state.as_of - retention for b in buckets)


@settings(max_examples=60, deadline=None)
@given(events=EVENTS)
def test_snapshot_round_trips(events: list[Raw]) -> None:
    state = _apply(events)
    restored = WindowState.from_doc(state.to_doc())
    assert restored == state
    assert read_all(restored, VIEWS) == read_all(state, VIEWS)


def test_sums_are_exact_in_micro_units() -> None:
    state = WindowState()
    for i in range(1000):
        add_event(state, VIEWS, "Product Viewed", T0 + i, {"price": 0.1, "category": "a"}.get)
    assert read_all(state, VIEWS)["product_viewed_sum_price_1h"] == 100.0
    assert state.totals[plan_for(VIEWS).readers[3].slot] == 100 * MICRO


def test_a_profile_written_under_another_catalog_starts_its_windows_again() -> None:
    state = _apply([("Product Viewed", 0, 1.0, "a")])
    other = Catalog((WindowedSpec("Product Viewed", "count", windows_ms=(HOUR_MS,)),))
    assert read_all(state, other) == {"product_viewed_count_1h": 0}
    add_event(state, other, "Product Viewed", T0 + 1, lambda field: None)
    assert read_all(state, other) == {"product_viewed_count_1h": 1}


def test_distinct_saturates_at_its_limit_and_keeps_the_most_recent_values() -> None:
    spec = WindowedSpec("Product Viewed", "distinct", "category", (HOUR_MS, DAY_MS))
    catalog = Catalog((spec,))
    state = WindowState()
    for i in range(100):  # one new category a minute, the last 60 within the hour
        t = T0 + DAY_MS // 2 + (i - 60) * MINUTE_MS
        add_event(state, catalog, "Product Viewed", t, {"category": f"c{i}"}.get)
    features = read_all(state, catalog)
    assert features["product_viewed_distinct_category_24h"] == 32  # the limit
    assert features["product_viewed_distinct_category_1h"] == 32  # 60 in the hour, capped
    assert set(state.distinct[0]) == {f"c{i}" for i in range(68, 100)}


def test_an_event_older_than_every_window_is_not_kept() -> None:
    state = _apply([("Product Viewed", 3 * DAY_MS, 1.0, "a")])
    before = state.to_doc()
    add_event(state, VIEWS, "Product Viewed", T0, {"price": 5.0, "category": "z"}.get)
    assert state.to_doc() == before


def test_a_late_event_just_inside_the_longest_window_counts() -> None:
    now = T0 + 3 * DAY_MS
    state = _apply([("Product Viewed", 3 * DAY_MS, 1.0, "a")])
    size = bucket_size_for(DAY_MS)
    inside = bucket_start(now - DAY_MS, size) + size  # the oldest bucket still in the window
    add_event(state, VIEWS, "Product Viewed", inside, {"price": 2.0, "category": "b"}.get)
    features = read_all(state, VIEWS)
    assert features["product_viewed_count_24h"] == 2
    assert features["product_viewed_count_1h"] == 1
    add_event(state, VIEWS, "Product Viewed", inside - 1, {"price": 2.0, "category": "b"}.get)
    assert read_all(state, VIEWS)["product_viewed_count_24h"] == 2

"""Order-dependent features (sessions, cart, affinities) made order-independent within grace."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.context import read_context
from stream.ordered import (
    SESSION_BUCKET_MS,
    SESSION_HISTORY_MS,
    Moment,
    OrderedConfig,
    OrderedState,
    admit,
    decayed,
    event_order,
    fold,
    settle,
)
from stream.windows import DAY_MS, MINUTE_MS

CFG = OrderedConfig(
    session_gap_ms=30 * MINUTE_MS,
    half_life_ms=7 * DAY_MS,
    top_k=3,
    max_cart_lines=5,
    max_quantity=10,
)
T0 = 1_700_000_000_000


def _view(t: int, fp: int, category: str = "shoes") -> Moment:
    return Moment(T0 + t, fp, "Product Viewed", f"p{fp % 4}", category, "acme", 10.0)


def _add(t: int, fp: int, product: str = "p1", quantity: int = 1) -> Moment:
    return Moment(T0 + t, fp, "Product Added", product, "shoes", "acme", 25.0, quantity)


def _folded(moments: list[Moment]) -> OrderedState:
    state = OrderedState()
    for moment in sorted(moments, key=event_order):
        fold(state, moment, CFG)
    return state


def test_sessions_split_on_inactivity_gap() -> None:
    state = _folded([_view(0, 1), _view(10 * MINUTE_MS, 2), _view(41 * MINUTE_MS, 3)])
    assert state.sessions_total == 2
    assert state.session_start_ms == T0 + 41 * MINUTE_MS
    assert state.session_events == 1
    bucket = T0 - T0 % SESSION_BUCKET_MS
    assert sum(state.session_buckets.values()) == 2
    assert set(state.session_buckets) <= {bucket, bucket + SESSION_BUCKET_MS}


def test_session_history_keeps_only_the_last_week_in_a_few_buckets() -> None:
    # A session every 5 hours for 30 days: history is bounded by the 7-day horizon.
    state = _folded([_view(i * 5 * 60 * MINUTE_MS, i) for i in range(144)])
    assert state.sessions_total == 144
    assert len(state.session_buckets) <= 7 * 2 + 1
    latest = T0 + 143 * 5 * 60 * MINUTE_MS
    assert all(b > latest - SESSION_HISTORY_MS for b in state.session_buckets)


def test_cart_adds_removes_and_clears_on_order() -> None:
    state = _folded([_add(0, 1, "p1", 2), _add(1, 2, "p1", 1), _add(2, 3, "p2")])
    assert {k: v.quantity for k, v in state.cart.items()} == {"p1": 3, "p2": 1}
    fold(state, Moment(T0 + 3, 4, "Product Removed", "p1", quantity=3), CFG)
    assert list(state.cart) == ["p2"]
    fold(state, Moment(T0 + 4, 5, "Order Completed"), CFG)
    assert state.cart == {} and state.views_since_add == 0


def test_cart_is_bounded() -> None:
    state = _folded([_add(i, i, f"p{i}") for i in range(20)])
    assert len(state.cart) == CFG.max_cart_lines


def test_affinity_halves_every_half_life_and_keeps_top_k() -> None:
    state = _folded([_view(0, 1, "shoes")])
    assert decayed(state.categories, state.affinity_ms, T0 + 7 * DAY_MS, CFG.half_life_ms) == {
        "shoes": 0.5
    }
    state = _folded([_view(i, i, c) for i, c in enumerate("abcdef")])
    assert len(state.categories) == CFG.top_k


MOMENTS = st.lists(
    st.tuples(st.integers(0, 90_000), st.sampled_from(["view", "add", "remove", "order"])),
    min_size=1,
    max_size=25,
)


def _moments(spec: list[tuple[int, str]]) -> list[Moment]:
    out = []
    for fp, (t, kind) in enumerate(spec):
        if kind == "view":
            out.append(_view(t, fp, "shoes" if fp % 2 else "books"))
        elif kind == "add":
            out.append(_add(t, fp, f"p{fp % 3}"))
        elif kind == "remove":
            out.append(Moment(T0 + t, fp, "Product Removed", f"p{fp % 3}", quantity=1))
        else:
            out.append(Moment(T0 + t, fp, "Order Completed"))
    return out


@settings(max_examples=120, deadline=None)
@given(spec=MOMENTS, data=st.data())
def test_any_arrival_order_within_grace_gives_the_in_order_result(
    spec: list[tuple[int, str]], data: st.DataObject
) -> None:
    """Moments span 90 s and grace is 2 min: every order must give the sorted fold's result."""
    moments = _moments(spec)
    arrival = list(data.draw(st.permutations(moments)))
    final, head, pending = OrderedState(), OrderedState(), []
    latest = None
    for moment in arrival:
        head = admit(final, head, pending, moment, CFG)
        latest = moment.timestamp_ms if latest is None else max(latest, moment.timestamp_ms)
        settle(final, pending, latest - 2 * MINUTE_MS, CFG)
    assert head == _folded(moments)
    settle(final, pending, latest + 1, CFG)  # everything final now
    assert final == _folded(moments) and pending == []


def test_context_normalizes_and_falls_back() -> None:
    web = read_context(
        {
            "library": {"name": "analytics.js"},
            "page": {},
            "locale": "en_GB",
            "timezone": "Not/AZone",
            "device": {"type": "Desktop"},
        },
        T0,
    )
    assert (web.channel, web.country, web.timezone, web.timezone_valid, web.device_type) == (
        "web",
        "GB",
        "UTC",
        False,
        "desktop",
    )
    server = read_context({}, T0)
    assert (server.channel, server.device_type, server.os, server.country) == (
        "server",
        "unknown",
        "unknown",
        "unknown",
    )
    tokyo = read_context({"timezone": "Asia/Tokyo", "location": {"country": "Japan"}}, T0)
    assert (tokyo.local_hour, tokyo.country) == (7, "Japan")  # 22:13 UTC is 07:13 in Tokyo

"""Invariants over random streams of valid Segment events for a handful of users."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream import DeadLetter, Decision, Profile, StepConfig, decode_event, step
from stream.replay import ReplayResult, replay
from stream.synthetic import GeneratorConfig, generate_events
from stream.timeutil import ms_to_iso

T0 = 1_700_000_000_000
WEEK_MS = 7 * 86_400_000
#: (user key, whether its events carry a userId); "anon-*" users only have an anonymousId.
USERS = ("u1", "u2", "u3", "anon-4")
TRACK_NAMES = (
    "Products Searched",
    "Product List Viewed",
    "Product Viewed",
    "Product Clicked",
    "Product Added",
    "Product Removed",
    "Cart Viewed",
    "Checkout Started",
    "Order Completed",
    "Order Refunded",
    "Signed In",
    "Coupon Entered",  # not counted by name: track:other
)
WEIGHTED_NAMES = (*TRACK_NAMES, *["Product Added"] * 4, *["Product Viewed"] * 3, "Product Removed")
CONFIGS = (
    StepConfig(),
    StepConfig(max_cart_lines=2, max_categories=2, max_quantity=5, max_price=100.0),
)

valid_price = st.floats(min_value=0, max_value=500).map(lambda p: round(p, 2))
_bad_price = st.one_of(
    st.floats(),  # NaN and infinities are written as null by orjson
    st.integers(min_value=-10, max_value=10**12),
    st.sampled_from(["12.50", "free", "", "1e308", "-3", "NaN"]),
    st.booleans(),
    st.none(),
    st.just([1.0]),
)
#: Mostly sane prices (so carts fill up), a quarter of them hostile.
hostile_price = st.integers(0, 3).flatmap(lambda k: valid_price if k else _bad_price)
_bad_quantity = st.one_of(
    st.integers(min_value=-2, max_value=0),
    st.sampled_from([1.5, 10**9, True, False, "x", [1]]),
    st.floats(),
)
hostile_quantity = st.integers(0, 3).flatmap(
    lambda k: st.sampled_from([1, 2, 3, 2.0, "2"]) if k else _bad_quantity
)
categories = st.one_of(
    st.sampled_from(["shoes", "Shoes ", "books", "toys", "garden", "électronique"]),
    st.sampled_from(["", "  ", 7, None, "c" * 101]),
)
products = st.sampled_from(["p1", "p2", "p3", "p4", 5])


def _product_props(draw: st.DrawFn, name: str) -> dict[str, Any]:
    props: dict[str, Any] = {}
    if name in ("Product Viewed", "Product Clicked"):
        props = {"product_id": draw(products), "category": draw(categories)}
    elif name == "Product Added":
        props = {"product_id": draw(products), "price": draw(hostile_price)}
        if draw(st.booleans()):
            props["quantity"] = draw(hostile_quantity)
    elif name == "Product Removed":
        props = {"product_id": draw(products)}
        if draw(st.booleans()):
            props["quantity"] = draw(hostile_quantity)
    elif name == "Order Completed":
        props = {"revenue": draw(hostile_price)}
    return {k: v for k, v in props.items() if draw(st.integers(0, 9)) != 0}


@st.composite
def user_stream(draw: st.DrawFn, user: str, max_size: int = 12) -> list[dict[str, Any]]:
    """One user's events; some resend an earlier message (an SDK retry) with the same id."""
    docs: list[dict[str, Any]] = []
    for i in range(draw(st.integers(min_value=0, max_value=max_size))):
        if docs and draw(st.integers(0, 7)) == 0:
            docs.append(draw(st.sampled_from(docs)))
            continue
        kind = draw(st.sampled_from(["track"] * 6 + ["page", "screen", "identify"]))
        doc: dict[str, Any] = {
            "type": kind,
            "messageId": f"{user}-{i}",
            "timestamp": ms_to_iso(draw(st.integers(min_value=T0, max_value=T0 + WEEK_MS))),
        }
        if user.startswith("anon-"):
            doc["anonymousId"] = user
        else:
            doc["userId"] = user
            if draw(st.booleans()):
                doc["anonymousId"] = f"device-of-{user}"
        if kind == "track":
            doc["event"] = draw(st.sampled_from(WEIGHTED_NAMES))
            doc["properties"] = _product_props(draw, doc["event"])
        elif kind == "page":
            doc["name"] = "Home"
            doc["properties"] = {"category": draw(categories)}
        docs.append(doc)
    return docs


@st.composite
def per_user_streams(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    return {user: draw(user_stream(user)) for user in USERS}


@st.composite
def interleave(draw: st.DrawFn, streams: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One merge of the per-user streams that keeps each user's own order."""
    slots = [user for user, docs in streams.items() for _ in docs]
    order = draw(st.permutations(slots))
    positions = dict.fromkeys(streams, 0)
    merged = []
    for user in order:
        merged.append(streams[user][positions[user]])
        positions[user] += 1
    return merged


@st.composite
def logs(draw: st.DrawFn) -> list[dict[str, Any]]:
    return draw(interleave(draw(per_user_streams())))


def lines_of(docs: Iterable[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(doc) for doc in docs]


def features(profile: Profile) -> dict[str, Any]:
    doc = profile.to_dict()
    del doc["recent_messages"], doc["applied"]
    return doc


def decision_bytes(decisions: Iterable[Decision]) -> list[bytes]:
    return [d.to_bytes() for d in decisions]


def by_user(decisions: Iterable[Decision]) -> dict[str, list[bytes]]:
    grouped: dict[str, list[bytes]] = defaultdict(list)
    for d in decisions:
        grouped[d.user_key].append(d.to_bytes())
    return dict(grouped)


SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check_profile(profile: Profile, config: StepConfig) -> None:
    assert all(count >= 1 for count in profile.counts.values()), profile.counts
    assert len(profile.cart) <= config.max_cart_lines
    for line in profile.cart.values():
        assert isinstance(line.quantity, int) and not isinstance(line.quantity, bool)
        assert 1 <= line.quantity <= config.max_quantity
        assert isinstance(line.price, float)
        assert math.isfinite(line.price)
        assert 0.0 <= line.price <= config.max_price
    assert math.isfinite(profile.cart_value())
    assert len(profile.category_views) <= config.max_categories
    assert all(views >= 1 for views in profile.category_views.values())
    assert profile.views_since_add >= 0
    assert profile.first_seen_ms is not None and profile.last_seen_ms is not None
    assert T0 <= profile.first_seen_ms <= profile.last_seen_ms <= T0 + WEEK_MS
    assert len(profile.recent_messages) <= config.dedupe_window


@SETTINGS
@given(logs(), st.sampled_from(CONFIGS))
def test_counts_match_applied_events_and_carts_stay_clean(
    log: list[dict[str, Any]], config: StepConfig
) -> None:
    profiles: dict[str, Profile] = {}
    applied: dict[str, int] = defaultdict(int)
    seen: dict[str, set[str]] = defaultdict(set)
    for raw in lines_of(log):
        event = decode_event(raw)
        assert not isinstance(event, DeadLetter), event
        profile, out = step(profiles.get(event.user_key), event, config)
        profiles[event.user_key] = profile
        first_time = event.message_id not in seen[event.user_key]
        seen[event.user_key].add(event.message_id)
        # an event is applied (one decision) exactly when its message id is new for the user
        assert out.skipped == (None if first_time else "duplicate")
        assert len(out.decisions) == (1 if first_time else 0)
        applied[event.user_key] += len(out.decisions)
        assert sum(profile.counts.values()) == applied[event.user_key]
        check_profile(profile, config)
    assert set(profiles) == {doc.get("userId") or doc["anonymousId"] for doc in log}
    for user, profile in profiles.items():
        assert sum(profile.counts.values()) == len(seen[user])


@SETTINGS
@given(logs(), st.sampled_from(CONFIGS))
def test_replaying_the_same_log_twice_gives_identical_outputs(
    log: list[dict[str, Any]], config: StepConfig
) -> None:
    lines = [*lines_of(log), b"not json", b'{"type": "launch"}']
    first, second = replay(lines, config), replay(lines, config)
    assert decision_bytes(first.decisions) == decision_bytes(second.decisions)
    assert {k: p.to_bytes() for k, p in first.profiles.items()} == {
        k: p.to_bytes() for k, p in second.profiles.items()
    }
    assert [d.to_bytes() for d in first.deadletters] == [d.to_bytes() for d in second.deadletters]
    assert len(first.deadletters) == 2
    assert len(first.decisions) == len(
        {(d.get("userId") or d["anonymousId"], d["messageId"]) for d in log}
    )


@st.composite
def two_interleavings(
    draw: st.DrawFn,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    streams = draw(per_user_streams())
    return draw(interleave(streams)), draw(interleave(streams))


@SETTINGS
@given(two_interleavings(), st.sampled_from(CONFIGS))
def test_final_features_do_not_depend_on_how_users_interleave(
    logs_pair: tuple[list[dict[str, Any]], list[dict[str, Any]]], config: StepConfig
) -> None:
    one, other = (replay(lines_of(log), config) for log in logs_pair)
    assert set(one.profiles) == set(other.profiles)
    for user in one.profiles:
        assert features(one.profiles[user]) == features(other.profiles[user])
    # each user's own decisions depend only on that user's own events
    assert by_user(one.decisions) == by_user(other.decisions)


def _twice(lines: list[bytes]) -> list[bytes]:
    return [line for line in lines for _ in range(2)]


def _assert_same_outcome(once: ReplayResult, doubled: ReplayResult) -> None:
    assert {k: p.to_bytes() for k, p in once.profiles.items()} == {
        k: p.to_bytes() for k, p in doubled.profiles.items()
    }
    assert decision_bytes(once.decisions) == decision_bytes(doubled.decisions)


@SETTINGS
@given(logs(), st.sampled_from(CONFIGS))
def test_sending_every_event_twice_changes_nothing(
    log: list[dict[str, Any]], config: StepConfig
) -> None:
    lines = lines_of(log)
    _assert_same_outcome(replay(lines, config), replay(_twice(lines), config))


def test_sending_every_event_twice_changes_nothing_on_a_synthetic_day() -> None:
    lines = [orjson.dumps(doc) for doc in generate_events(GeneratorConfig(users=25, days=1.0))]
    assert len(lines) > 200
    once, doubled = replay(lines), replay(_twice(lines))
    assert once.deadletters == []
    assert len(once.decisions) == len(lines)
    _assert_same_outcome(once, doubled)
    actions = {d.action for d in once.decisions}
    assert len(actions) >= 3, actions

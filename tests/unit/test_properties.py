"""Invariants over random streams of valid Segment events for a handful of users."""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Iterable
from itertools import accumulate
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream import DeadLetter, Decision, Event, EventType, Profile, StepConfig, decode_event, step
from stream.config import FeatureConfig
from stream.features import feature_vector
from stream.ordered import OrderedConfig, event_order, rebuild_head
from stream.policyconfig import PolicyConfig, Variant
from stream.replay import ReplayResult, replay
from stream.synthetic import GeneratorConfig, generate_events
from stream.timeutil import ms_to_iso
from stream.windows import DAY_MS, MINUTE_MS

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
    StepConfig(
        max_cart_lines=2,
        max_quantity=5,
        max_price=100.0,
        features=FeatureConfig(affinity_top_k=2, grace_ms=30_000, session_gap_ms=10 * MINUTE_MS),
    ),
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
contexts = st.sampled_from(
    [
        {},
        {"device": {"type": "mobile"}, "timezone": "Europe/Berlin", "locale": "de-DE"},
        {"device": {"type": "desktop"}, "page": {"path": "/"}, "timezone": "Asia/Tokyo"},
        {"app": {"name": "Shop"}, "timezone": "Not/AZone"},
    ]
)


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


def _doc(draw: st.DrawFn, user: str, i: int, timestamp_ms: int) -> dict[str, Any]:
    """One event of ``user`` at ``timestamp_ms``, with a drawn type, properties and context."""
    kind = draw(st.sampled_from(["track"] * 6 + ["page", "screen", "identify"]))
    doc: dict[str, Any] = {
        "type": kind,
        "messageId": f"{user}-{i}",
        "timestamp": ms_to_iso(timestamp_ms),
        "context": draw(contexts),
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
    return doc


@st.composite
def user_stream(draw: st.DrawFn, user: str, max_size: int = 12) -> list[dict[str, Any]]:
    """One user's events, at any time of one week in any order (so many are late); some resend
    an earlier message (an SDK retry) with the same id."""
    docs: list[dict[str, Any]] = []
    for i in range(draw(st.integers(min_value=0, max_value=max_size))):
        if docs and draw(st.integers(0, 7)) == 0:
            docs.append(draw(st.sampled_from(docs)))
            continue
        docs.append(_doc(draw, user, i, draw(st.integers(min_value=T0, max_value=T0 + WEEK_MS))))
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


def state(profile: Profile) -> dict[str, Any]:
    """The profile's state, without the records of which messages and offsets it applied, and
    without its pending labels: those are snapshots of the moments predictions were made (like
    the decisions made on the way), and the partition's label clock settles them, so they
    follow arrival order and the other users of the partition (tests/unit/test_partition.py)."""
    doc = profile.to_dict()
    del doc["recent_messages"], doc["applied"], doc["labels"], doc["last_label_ms"]
    # The policy's record of its own decisions (and the latest one): made as events arrived, the
    # pending ones settled by the same clock and holding what the partition's models predicted
    # (see policy_history).
    del doc["decisions"], doc["starts"], doc["choice"], doc["last_decision"]
    return doc


def policy_history(profile: Profile) -> dict[str, Any]:
    """What the policy remembers of its own decisions (starts, the last choice): made at the
    events in the order they arrived, so a different arrival order may leave another one."""
    doc = profile.to_dict()
    return {"starts": doc["starts"], "choice": doc["choice"]}


def features(profile: Profile, config: StepConfig) -> dict[str, Any]:
    return dict(feature_vector(profile, config))


def decision_bytes(decisions: Iterable[Decision]) -> list[bytes]:
    return [d.to_bytes() for d in decisions]


def by_user(decisions: Iterable[Decision]) -> dict[str, list[bytes]]:
    """Each user's decisions without what the partition's models said and the bandit's context
    (the models learn from every user of the partition); the rest of a decision, under a policy
    without a bandit (:data:`RULES_ONLY`), comes from the user alone."""
    grouped: dict[str, list[bytes]] = defaultdict(list)
    for d in decisions:
        versions = {k: v for k, v in d.versions.items() if k != "models"}
        policy = {k: v for k, v in (d.policy or {}).items() if k != "context"}
        grouped[d.user_key].append(
            d._replace(predictions=None, versions=versions, policy=policy).to_bytes()
        )
    return dict(grouped)


#: The policy without its learning variant: every decision is a function of the user's events.
RULES_ONLY = PolicyConfig(variants=(Variant(name="champion", share=1.0, kind="priority"),))


SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _ordered(config: StepConfig) -> OrderedConfig:
    f = config.features
    return OrderedConfig(
        session_gap_ms=f.session_gap_ms,
        half_life_ms=f.affinity_half_life_ms,
        top_k=f.affinity_top_k,
        max_cart_lines=config.max_cart_lines,
        max_quantity=config.max_quantity,
    )


def check_profile(profile: Profile, config: StepConfig) -> None:
    """Invariants every profile the step returns keeps, whatever the events and their order."""
    data = profile.to_bytes()
    assert Profile.from_bytes(data).to_bytes() == data
    assert all(count >= 1 for count in profile.counts.values()), profile.counts
    assert all(total >= 0 for total in profile.windows.totals), profile.windows
    f = dict(feature_vector(profile, config))
    for name in config.features.catalog.feature_names():
        assert f[name] >= 0 and math.isfinite(f[name]), (name, f[name])
        if "_count_" in name or "_distinct_" in name:
            assert type(f[name]) is int, (name, f[name])
    assert f["events_total"] == sum(profile.counts.values())
    assert 0 <= f["late_events"] < f["events_total"]
    assert f["views_total"] <= f["events_total"] and f["orders_total"] <= f["events_total"]
    assert f["revenue_total"] >= 0 and math.isfinite(f["revenue_total"])
    assert all(f[n] >= -1 for n in f if n.startswith("ms_since_")), f
    assert f["sessions_total"] >= 1 and 0 <= f["sessions_7d"] <= f["sessions_total"]
    assert f["session_events"] >= 1 and 0 <= f["session_pages"] <= f["session_events"]
    assert f["views_since_add"] >= 0
    affinities = f["category_affinities"]
    assert len(affinities) <= config.features.affinity_top_k
    assert all(score > 0 for score in affinities.values())
    assert f["top_category"] is None or f["top_category"] in affinities
    # The head (what features read) is the final state with the pending events folded in, in
    # event order; pending holds only events within grace of the user's latest event.
    head = rebuild_head(profile.final, profile.pending, _ordered(config))
    assert profile.head is None or profile.head == head
    assert profile.pending == sorted(profile.pending, key=event_order)
    assert profile.last_seen_ms is not None and profile.first_seen_ms is not None
    grace = config.features.grace_ms
    assert all(m.timestamp_ms >= profile.last_seen_ms - grace for m in profile.pending)
    assert f["cart_lines"] == len(head.cart) <= config.max_cart_lines
    for line in head.cart.values():
        assert type(line.quantity) is int
        assert 1 <= line.quantity <= config.max_quantity
        assert type(line.price) is float
        assert 0.0 <= line.price <= config.max_price
    assert f["cart_value"] >= 0 and math.isfinite(f["cart_value"])
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
    assert {k: features(p, config) for k, p in first.profiles.items()} == {
        k: features(p, config) for k, p in second.profiles.items()
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
    config = dataclasses.replace(config, policy=RULES_ONLY)
    one, other = (replay(lines_of(log), config) for log in logs_pair)
    assert set(one.profiles) == set(other.profiles)
    for user in one.profiles:
        assert state(one.profiles[user]) == state(other.profiles[user])
        assert features(one.profiles[user], config) == features(other.profiles[user], config)
        assert policy_history(one.profiles[user]) == policy_history(other.profiles[user])
    # each user's own decisions depend only on that user's own events
    assert by_user(one.decisions) == by_user(other.decisions)


#: Gaps between one user's consecutive events: equal times, around the grace periods (30 s and
#: 2 min), around the session gaps (10 and 30 min), a day, and a month (an idle user's reset).
_GAPS = st.one_of(
    st.sampled_from([0, 1, 29_999, 30_000, 30_001, 119_999, 120_000, 120_001]),
    st.sampled_from([10 * MINUTE_MS + 1, 30 * MINUTE_MS + 1, DAY_MS, 31 * DAY_MS]),
    st.integers(min_value=0, max_value=5 * MINUTE_MS),
)


@st.composite
def arrivals_within_grace(
    draw: st.DrawFn, grace_ms: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One user's events in event-time order, and an arrival order in which no event comes more
    than ``grace_ms`` behind one that arrived before it.

    Sorting by time plus a delay in ``[0, grace]`` gives exactly such orders: an earlier arrival
    ``j`` has ``t_j + d_j <= t_i + d_i``, so ``t_i >= t_j - grace``.
    """
    n = draw(st.integers(min_value=1, max_value=14))
    gaps = draw(st.lists(_GAPS, min_size=n, max_size=n))
    times = [T0 + gap for gap in accumulate(gaps)]
    docs = [_doc(draw, "u1", i, t) for i, t in enumerate(times)]
    delays = draw(st.lists(st.integers(min_value=0, max_value=grace_ms), min_size=n, max_size=n))
    arrival = sorted(range(n), key=lambda i: (times[i] + delays[i], i))
    return docs, [docs[i] for i in arrival]


@SETTINGS
@given(
    st.sampled_from(CONFIGS).flatmap(
        lambda c: st.tuples(st.just(c), arrivals_within_grace(c.features.grace_ms))
    )
)
def test_arrival_order_within_grace_changes_neither_features_nor_decisions(
    drawn: tuple[StepConfig, tuple[list[dict[str, Any]], list[dict[str, Any]]]],
) -> None:
    config, (in_order, arrived) = drawn
    expected, actual = (replay(lines_of(log), config).profiles["u1"] for log in (in_order, arrived))
    assert actual.late_events == expected.late_events == 0
    assert features(actual, config) == features(expected, config)
    assert state(actual) == state(expected)
    assert sorted(actual.recent_messages) == sorted(expected.recent_messages)
    # the next decision is the same, byte for byte, given the same policy history (the policy
    # decided at each event as it arrived, so its own history follows the arrival order)
    actual.starts, actual.choice = expected.starts, expected.choice
    assert expected.last_seen_ms is not None
    probe = Event(
        "probe", EventType.TRACK, "Product Viewed", "u1", expected.last_seen_ms + 1, user_id="u1"
    )
    (want,) = step(expected, probe, config)[1].decisions
    (got,) = step(actual, probe, config)[1].decisions
    assert got.to_bytes() == want.to_bytes()


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

"""ColdStartPrior: segment rates, the learned blend, determinism, snapshots."""

from __future__ import annotations

import math
import random

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from stream.exceptions import ConfigError, SnapshotError
from stream.models.prior import LOGIT_CLIP, SEGMENTS, SESSION_BUCKETS, ColdStartPrior, segment_of

CART = SESSION_BUCKETS  # the first segment with a cart: one-event session, cart held


def _log_loss(p: float, y: bool) -> float:
    return -math.log(p if y else 1.0 - p)


def test_segments_are_session_buckets_times_cart() -> None:
    sessions = [segment_of(math.log1p(n), 0.0) for n in (1, 2, 3, 4, 7, 8, 16, 32, 10**6)]
    assert sessions == [0, 1, 1, 2, 2, 3, 4, 5, 5]
    assert segment_of(math.log1p(5), math.log1p(1)) == 2 + SESSION_BUCKETS
    # Values no cleaned input has still land in a segment.
    assert segment_of(0.0, 0.0) == 0
    assert segment_of(-3.0, -1.0) == 0
    assert segment_of(float("nan"), float("nan")) == 0
    assert segment_of(1e300, 1.0) == SEGMENTS - 1


def test_rates_are_shrunk_towards_the_partition_rate() -> None:
    prior = ColdStartPrior(alpha=1.0, beta=1.0, strength=2.0, lr=0.0)
    assert prior.base_rate() == 0.5
    assert prior.rate(3) == 0.5  # nothing seen: the Beta prior's mean
    for y in (True, True, True, False):
        prior.learn(y, 0.5, CART)
    for _ in range(4):
        prior.learn(False, 0.5, 0)
    assert (prior.positives, prior.total) == (3, 8)
    overall = 4.0 / 10.0
    assert prior.base_rate() == overall
    assert prior.rate(CART) == pytest.approx((3 + 2 * overall) / (4 + 2))
    assert prior.rate(0) == pytest.approx((0 + 2 * overall) / (4 + 2))
    assert prior.rate(5) == overall  # an unseen segment answers with the partition's rate


def test_it_learns_the_rates_it_should() -> None:
    planted = {0: 0.02, 1: 0.08, 2: 0.15, CART: 0.6, CART + 2: 0.8}
    rng = random.Random(11)
    prior = ColdStartPrior()
    segments = list(planted)
    for _ in range(20_000):
        segment = rng.choice(segments)
        prior.learn(rng.random() < planted[segment], 0.5, segment)
    for segment, rate in planted.items():
        assert prior.rate(segment) == pytest.approx(rate, abs=0.03)
    assert prior.base_rate() == pytest.approx(sum(planted.values()) / len(planted), abs=0.02)


def test_the_blend_starts_as_the_prior_and_ignores_a_model_that_knows_nothing() -> None:
    rng = random.Random(3)
    prior = ColdStartPrior()
    assert prior.weights == (0.0, 1.0, 0.0)
    assert prior.blend(0.99, 0) == pytest.approx(prior.rate(0), abs=1e-12)
    for _ in range(5_000):
        segment = rng.choice((0, CART))
        y = rng.random() < (0.1 if segment == 0 else 0.7)
        prior.learn(y, rng.random(), segment)  # the model's probability is noise
    _, _, model_weight = prior.weights
    assert abs(model_weight) < 0.1
    for segment in (0, CART):
        assert prior.blend(0.5, segment) == pytest.approx(prior.rate(segment), abs=0.03)


def test_the_blend_learns_to_trust_a_model_that_ranks() -> None:
    """Labels the segment cannot tell apart but the model can: the blend moves to the model,
    and its progressive log loss ends well below the segment rate's."""
    rng = random.Random(5)
    prior = ColdStartPrior()
    blend_loss = prior_loss = 0.0
    n = 4_000
    for i in range(n):
        y = rng.random() < 0.2
        model_p = min(max(rng.gauss(0.7 if y else 0.15, 0.1), 0.01), 0.99)
        if i >= n // 2:
            blend_loss += _log_loss(prior.blend(model_p, 0), y)
            prior_loss += _log_loss(prior.rate(0), y)
        prior.learn(y, model_p, 0)
    _, _, model_weight = prior.weights
    assert model_weight > 0.5
    assert blend_loss < 0.8 * prior_loss


def test_learning_is_deterministic_in_the_order_given() -> None:
    rng = random.Random(9)
    stream = [(rng.random() < 0.3, rng.random(), rng.randrange(SEGMENTS)) for _ in range(2_000)]
    one, two = ColdStartPrior(), ColdStartPrior()
    for y, p, s in stream:
        one.learn(y, p, s)
    for y, p, s in stream:
        two.learn(y, p, s)
    assert orjson.dumps(one.to_state()) == orjson.dumps(two.to_state())
    # The order matters to the blend (SGD), not to the counts.
    three = ColdStartPrior()
    for y, p, s in reversed(stream):
        three.learn(y, p, s)
    assert three.to_state()["segments"] == one.to_state()["segments"]
    assert three.weights != one.weights


def test_a_restored_prior_continues_exactly_as_the_uninterrupted_one() -> None:
    rng = random.Random(13)
    stream = [(rng.random() < 0.25, rng.random(), rng.randrange(SEGMENTS)) for _ in range(600)]
    straight = ColdStartPrior(alpha=0.5, beta=4.5, strength=3.0, lr=0.05)
    restored = ColdStartPrior(alpha=0.5, beta=4.5, strength=3.0, lr=0.05)
    for i, (y, p, s) in enumerate(stream):
        if i == 300:
            restored = ColdStartPrior.from_state(orjson.loads(orjson.dumps(restored.to_state())))
        straight.learn(y, p, s)
        restored.learn(y, p, s)
        assert restored.blend(p, s) == straight.blend(p, s)
    assert restored.to_state() == straight.to_state()


@given(
    st.floats(min_value=0.0, max_value=1.0),
    st.integers(min_value=0, max_value=SEGMENTS - 1),
    st.lists(
        st.tuples(
            st.booleans(),
            st.floats(min_value=0.0, max_value=1.0),
            st.integers(min_value=0, max_value=SEGMENTS - 1),
        ),
        max_size=60,
    ),
)
# Found by CI's Hypothesis run: the learned logit reached sigmoid's 1.0.
@example(model_p=0.0, segment=0, labels=[(False, 0.0, 0), (False, 0.9375, 0), (True, 0.0, 0)])
def test_the_blend_is_always_a_probability(
    model_p: float, segment: int, labels: list[tuple[bool, float, int]]
) -> None:
    prior = ColdStartPrior(lr=0.5)
    for y, p, s in labels:
        prior.learn(y, p, s)
    p = prior.blend(model_p, segment)
    assert 0.0 < p < 1.0
    assert all(math.isfinite(w) for w in prior.weights)
    assert abs(prior.weights[2]) <= 0.5 * len(labels) * LOGIT_CLIP  # bounded by the clip


@pytest.mark.parametrize("weights", [[1e6, 0.0, 0.0], [-1e6, 0.0, 0.0], [0.0, 1e300, 1e300]])
def test_extreme_blend_weights_neither_overflow_nor_reach_zero_or_one(weights: list[float]) -> None:
    prior = ColdStartPrior()
    prior._blend = weights  # what enough confident labels could teach it
    p = prior.blend(0.999, 0)
    assert 0.0 < p < 1.0
    prior.learn(True, 0.999, 0)  # exp of the clamped logit: no OverflowError


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alpha": 0.0},
        {"beta": -1.0},
        {"alpha": float("nan")},
        {"strength": 0.0},
        {"strength": True},
        {"lr": -0.1},
        {"lr": float("inf")},
    ],
)
def test_bad_configuration(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        ColdStartPrior(**kwargs)


def test_snapshot_round_trip_and_rejections() -> None:
    prior = ColdStartPrior(alpha=0.5, beta=4.5, strength=2.0, lr=0.1)
    for y, p, s in ((True, 0.9, CART), (False, 0.2, 0), (False, 0.4, 1)):
        prior.learn(y, p, s)
    state = prior.to_state()
    restored = ColdStartPrior.from_state(orjson.loads(orjson.dumps(state)))
    assert restored.to_state() == state
    assert (restored.positives, restored.total) == (1, 3)
    assert restored.blend(0.9, CART) == prior.blend(0.9, CART)
    segments = state["segments"]
    with pytest.raises(SnapshotError, match="must be \\[positives, total\\]"):
        ColdStartPrior.from_state({**state, "segments": [[2, 1], *segments[1:]]})
    with pytest.raises(SnapshotError, match="a list of 12 pairs"):
        ColdStartPrior.from_state({**state, "segments": segments[:-1]})
    with pytest.raises(SnapshotError, match="blend must be a list of 3"):
        ColdStartPrior.from_state({**state, "blend": [0.0, 1.0]})
    with pytest.raises(SnapshotError, match="strength must be finite"):
        ColdStartPrior.from_state({**state, "strength": 0.0})
    with pytest.raises(SnapshotError, match="expected kind"):
        ColdStartPrior.from_state({**state, "kind": "logistic"})


def test_a_version_1_snapshot_fails_cleanly() -> None:
    """What the single base-rate prior wrote before segments and the learned blend."""
    old = {
        "kind": "cold_start_prior",
        "version": "1",
        "alpha": 1.0,
        "beta": 1.0,
        "min_labels": 200,
        "positives": 3,
        "total": 40,
    }
    with pytest.raises(SnapshotError, match="unsupported version '1'"):
        ColdStartPrior.from_state(old)

"""Experiments: sticky assignment (determinism, proportions, salts, zero shares) and RewardStats
(Welford against statistics, Chan's merge, the lift interval on a known effect, snapshots)."""

from __future__ import annotations

import copy
import math
import random
import statistics
from collections import Counter

import orjson
import pytest

from stream.exceptions import ConfigError, SnapshotError
from stream.experiments import RewardStats, assign_variant

SHARES = [("holdout", 0.1), ("off", 0.0), ("champion", 0.6), ("challenger", 0.3)]


def _keys(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return [f"user-{rng.getrandbits(64):016x}" for _ in range(count)]


def _close(a: float, b: float, tolerance: float = 1e-12) -> bool:
    return abs(a - b) <= tolerance * max(1.0, abs(a), abs(b))


def test_assignment_is_deterministic() -> None:
    keys = _keys(1, 1000)
    first = [assign_variant(key, "exp-1", SHARES) for key in keys]
    assert first == [assign_variant(key, "exp-1", list(SHARES)) for key in keys]
    assert assign_variant("user-1", "exp-1", SHARES) == assign_variant("user-1", "exp-1", SHARES)


def test_assignment_proportions_match_the_shares() -> None:
    """Over 50,000 random keys each variant's count is within 4 binomial sigmas of its share."""
    keys = _keys(2, 50_000)
    counts = Counter(assign_variant(key, "exp-1", SHARES) for key in keys)
    for variant, share in SHARES:
        sigma = math.sqrt(len(keys) * share * (1.0 - share))
        assert abs(counts[variant] - len(keys) * share) <= 4.0 * sigma, (variant, counts)
    assert counts["off"] == 0


@pytest.mark.parametrize(
    "shares",
    [
        [("off", 0.0), ("a", 0.5), ("b", 0.5)],
        [("a", 0.5), ("off", 0.0), ("b", 0.5)],
        [("a", 0.5), ("b", 0.5), ("off", 0.0)],
        [("a", 1.0), ("off", 0.0)],
    ],
)
def test_a_zero_share_never_gets_anyone(shares: list[tuple[str, float]]) -> None:
    assigned = {assign_variant(key, "exp-1", shares) for key in _keys(3, 20_000)}
    assert "off" not in assigned and assigned == {v for v, s in shares if s > 0.0}


def test_a_new_salt_reshuffles_users() -> None:
    """Under a new salt a user's variant is independent of the old one: with 50/50 shares, half
    of the users move (within 4 sigma), where a salt that did nothing would move none."""
    shares, keys = [("a", 0.5), ("b", 0.5)], _keys(4, 20_000)
    moved = sum(
        assign_variant(k, "exp-1", shares) != assign_variant(k, "exp-2", shares) for k in keys
    )
    assert abs(moved - len(keys) / 2) <= 4.0 * math.sqrt(len(keys) * 0.25), moved


@pytest.mark.parametrize(
    "shares",
    [
        [],
        [("a", 0.5), ("b", 0.6)],
        [("a", 0.5), ("b", 0.4)],
        [("a", 0.5), ("a", 0.5)],
        [("a", 1.5), ("b", -0.5)],
        [("a", math.nan), ("b", 1.0)],
    ],
)
def test_bad_shares_raise_config_error(shares: list[tuple[str, float]]) -> None:
    with pytest.raises(ConfigError):
        assign_variant("user-1", "exp-1", shares)


def test_welford_matches_statistics() -> None:
    rng = random.Random(5)
    rewards = [rng.gauss(5.0, 3.0) for _ in range(5000)]
    stats = RewardStats()
    for reward in rewards:
        assert stats.observe("champion", reward)
    mean, variance = stats.mean("champion"), stats.variance("champion")
    assert mean is not None and variance is not None
    assert _close(mean, statistics.mean(rewards)), (mean, statistics.mean(rewards))
    assert _close(variance, statistics.variance(rewards)), (variance, statistics.variance(rewards))
    assert stats.count("champion") == 5000 and stats.variants == ("champion",)


def _observed(pairs: list[tuple[str, float]]) -> RewardStats:
    stats = RewardStats()
    for variant, reward in pairs:
        assert stats.observe(variant, reward)
    return stats


def test_merge_of_two_halves_equals_the_whole() -> None:
    rng = random.Random(6)
    pairs = [(rng.choice(["holdout", "champion"]), rng.expovariate(0.2)) for _ in range(4000)]
    pairs += [("late", 1.0), ("late", 3.0)]  # a variant only one half has
    whole, first, second = _observed(pairs), _observed(pairs[:1500]), _observed(pairs[1500:])
    before = orjson.dumps(first.to_state())
    merged = first.merge(second)
    assert orjson.dumps(first.to_state()) == before  # merge builds new statistics
    assert set(merged.variants) == set(whole.variants)
    for variant in whole.variants:
        assert merged.count(variant) == whole.count(variant)
        for ours, theirs in [
            (merged.mean(variant), whole.mean(variant)),
            (merged.variance(variant), whole.variance(variant)),
        ]:
            assert ours is not None and theirs is not None and _close(ours, theirs), variant
    assert RewardStats().merge(whole).to_state() == whole.to_state()


def test_lift_interval_on_a_known_effect() -> None:
    """50,000 users split 50/50, Bernoulli rewards at 0.10 (holdout) and 0.13 (champion),
    observed in four partitions then merged: the 95 % interval covers 0.03 and excludes 0."""
    rng = random.Random(7)
    shares, p = [("holdout", 0.5), ("champion", 0.5)], {"holdout": 0.10, "champion": 0.13}
    partitions = [RewardStats() for _ in range(4)]
    for i, key in enumerate(_keys(8, 50_000)):
        variant = assign_variant(key, "exp-lift", shares)
        assert partitions[i % 4].observe(variant, float(rng.random() < p[variant]))
    merged = RewardStats()
    for partition in partitions:
        merged = merged.merge(partition)
    lift = merged.lift("champion")
    assert lift is not None and lift.n + lift.n_baseline == 50_000
    assert lift.low <= 0.03 <= lift.high and lift.low > 0.0, lift
    assert lift.high - lift.low < 0.015  # 2 * 1.96 * sqrt(0.09/25k + 0.113/25k) = 0.011


def test_lift_needs_two_rewards_on_each_side() -> None:
    stats = _observed([("holdout", 1.0), ("holdout", 0.0), ("champion", 1.0)])
    assert stats.lift("champion") is None and stats.lift("unknown") is None
    assert stats.observe("champion", 0.0)
    lift = stats.lift("champion")
    assert lift is not None and (lift.estimate, lift.n, lift.n_baseline) == (0.0, 2, 2)


@pytest.mark.parametrize("reward", [math.nan, math.inf, -math.inf, 1e300])
def test_refused_reward_leaves_the_statistics_unchanged(reward: float) -> None:
    stats = _observed([("holdout", 1.0), ("holdout", -1e150)])  # 1e300 then overflows m2
    before = orjson.dumps(stats.to_state())
    assert stats.observe("holdout", reward) is False
    assert orjson.dumps(stats.to_state()) == before


def test_snapshot_round_trip() -> None:
    rng = random.Random(9)
    stats = _observed([(rng.choice("abc"), rng.random()) for _ in range(300)])
    restored = RewardStats.from_state(orjson.loads(orjson.dumps(stats.to_state())))
    assert orjson.dumps(restored.to_state()) == orjson.dumps(stats.to_state())
    for _ in range(100):
        variant, reward = rng.choice("abcd"), rng.random()
        assert stats.observe(variant, reward) and restored.observe(variant, reward)
    assert orjson.dumps(restored.to_state()) == orjson.dumps(stats.to_state())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", "linear_bandit"),
        ("version", "2"),
        ("variants", {"a": {}}),
        ("count", 0),
        ("mean", math.nan),
        ("m2", -1.0),
        ("variant", 7),
        ("duplicate", None),
    ],
)
def test_bad_snapshot_raises_snapshot_error(field: str, value: object) -> None:
    state = copy.deepcopy(_observed([("a", 1.0), ("a", 2.0), ("b", 0.5)]).to_state())
    if field in ("kind", "version", "variants"):
        state[field] = value
    elif field == "duplicate":
        state["variants"][1]["variant"] = "a"
    else:
        state["variants"][0][field] = value
    with pytest.raises(SnapshotError):
        RewardStats.from_state(state)

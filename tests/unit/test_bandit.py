"""LinearBandit: Sherman–Morrison against a direct solve, pull's probabilities, exploration rate,
sublinear regret in a known environment, refusals and snapshots."""

from __future__ import annotations

import copy
import math
import random
from collections import Counter
from collections.abc import Sequence

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.bandit import LinearBandit, epsilon_schedule, uniform_from
from stream.exceptions import ConfigError, SnapshotError
from stream.models.arith import total

ACTIONS = ("a0", "a1", "a2", "a3")
DIMS = 4


def _context(rng: random.Random) -> list[float]:
    """A bias and three features in [0, 1]."""
    return [1.0, rng.random(), rng.random(), rng.random()]


def _trained(seed: int, count: int = 300, actions: Sequence[str] = ACTIONS) -> LinearBandit:
    rng = random.Random(seed)
    bandit = LinearBandit(actions, DIMS, ridge=0.5)
    for _ in range(count):
        x = _context(rng)
        assert bandit.update(rng.choice(actions), x, x[1] - 0.5 * x[2] + rng.gauss(0.0, 0.1))
    return bandit


def _dump(bandit: LinearBandit) -> bytes:
    return orjson.dumps(bandit.to_state())


def test_sherman_morrison_matches_direct_ridge_solve() -> None:
    """After 200 updates, theta = (ridge I + X^T X)^-1 X^T y, as numpy solves it directly."""
    rng = random.Random(7)
    ridge, dims = 0.5, 6
    bandit = LinearBandit(["only", "other"], dims, ridge=ridge)
    rows, rewards = [], []
    for _ in range(200):
        x = [1.0, *(rng.gauss(0.0, 2.0) for _ in range(dims - 1))]
        y = rng.gauss(0.0, 3.0) + 2.0 * x[1] - x[3]
        assert bandit.update("only", x, y)
        rows.append(x)
        rewards.append(y)
    design, target = np.array(rows), np.array(rewards)
    expected = np.linalg.solve(ridge * np.eye(dims) + design.T @ design, design.T @ target)
    assert np.max(np.abs(np.array(bandit.theta("only")) - expected)) < 1e-9
    assert bandit.theta("other") == [0.0] * dims  # disjoint: the other arm learned nothing
    assert bandit.counts == {"only": 200, "other": 0} and bandit.n_updates == 200


_TRAINED = _trained(1)


@settings(max_examples=300, deadline=None)
@given(
    features=st.lists(st.floats(-10.0, 10.0), min_size=DIMS - 1, max_size=DIMS - 1),
    eligible=st.permutations(ACTIONS).flatmap(
        lambda order: st.integers(1, len(order)).map(lambda k: order[:k])
    ),
    epsilon=st.floats(0.0, 1.0),
    uniform=st.floats(0.0, 1.0, exclude_max=True),
)
def test_pull_probabilities_and_propensity(
    features: list[float], eligible: list[str], epsilon: float, uniform: float
) -> None:
    """Probabilities sum to 1; propensity is (1 - epsilon) [a = greedy] + epsilon / k."""
    x = [1.0, *features]
    choice = _TRAINED.pull(x, eligible, epsilon, uniform)
    k = len(eligible)
    scores = _TRAINED.scores(x, eligible)
    assert choice.scores == tuple(scores)
    assert choice.greedy == eligible[scores.index(max(scores))]  # the first of the highest
    assert abs(total(choice.probabilities) - 1.0) <= 1e-12
    assert choice.propensity == choice.probabilities[eligible.index(choice.action)]
    if k == 1:
        assert (choice.action, choice.propensity, choice.explored) == (eligible[0], 1.0, False)
        return
    assert choice.explored == (uniform < epsilon)
    if not choice.explored:
        assert choice.action == choice.greedy
    greedy_share = 1.0 - epsilon if choice.action == choice.greedy else 0.0
    assert math.isclose(choice.propensity, greedy_share + epsilon / k, rel_tol=1e-12)


def test_ties_go_to_the_earliest_eligible_action() -> None:
    """A fresh bandit scores every action 0: the caller's priority order decides."""
    bandit = LinearBandit(ACTIONS, DIMS)
    assert bandit.pull([1.0, 0.5, 0.5, 0.5], ["a2", "a0", "a1"], 0.0, 0.3).action == "a2"
    assert bandit.pull([1.0, 0.5, 0.5, 0.5], ["a1", "a2"], 0.0, 0.3).greedy == "a1"


def test_exploration_rate_matches_epsilon() -> None:
    """Over 20,000 hashed uniforms, explored pulls are epsilon of them, spread evenly."""
    bandit, epsilon, pulls = _trained(2), 0.1, 20_000
    rng = random.Random(3)
    explored: Counter[str] = Counter()
    for i in range(pulls):
        choice = bandit.pull(_context(rng), ACTIONS, epsilon, uniform_from("explore", str(i)))
        if choice.explored:
            explored[choice.action] += 1
    n = sum(explored.values())
    assert abs(n - pulls * epsilon) <= 4.0 * math.sqrt(pulls * epsilon * (1.0 - epsilon))
    k = len(ACTIONS)
    for action in ACTIONS:  # each action a binomial share 1/k of the explored pulls
        assert abs(explored[action] - n / k) <= 4.0 * math.sqrt(n * (1 / k) * (1 - 1 / k))


#: Known reward probabilities, linear in (1, x1, x2, x3): each action is best somewhere.
_ENVIRONMENT = {
    "a0": (0.2, 0.0, 0.0, 0.5),
    "a1": (0.1, 0.6, 0.0, 0.0),
    "a2": (0.1, 0.0, 0.6, 0.0),
    "a3": (0.7, -0.3, -0.3, 0.0),
}


def _p(action: str, x: Sequence[float]) -> float:
    return min(
        1.0, max(0.0, math.fsum(w * xi for w, xi in zip(_ENVIRONMENT[action], x, strict=True)))
    )


def _run_environment(rounds: int, seed: int) -> tuple[LinearBandit, list[float], random.Random]:
    """The bandit after ``rounds`` Bernoulli rewards, and its cumulative regret per round."""
    rng = random.Random(seed)
    bandit, regret, curve = LinearBandit(ACTIONS, DIMS), 0.0, []
    for t in range(rounds):
        x = _context(rng)
        epsilon = epsilon_schedule(0.2, 200, bandit.n_updates)
        choice = bandit.pull(x, ACTIONS, epsilon, uniform_from("regret", str(t)))
        p = {action: _p(action, x) for action in ACTIONS}
        regret += max(p.values()) - p[choice.action]
        curve.append(regret)
        assert bandit.update(choice.action, x, float(rng.random() < p[choice.action]))
    return bandit, curve, rng


def test_regret_is_sublinear_and_the_greedy_choice_learns_the_best_action() -> None:
    rounds = 20_000
    bandit, curve, rng = _run_environment(rounds, seed=11)
    ratio = curve[-1] / curve[rounds // 4 - 1]
    assert ratio < 3.0, ratio  # linear regret would quadruple; sqrt(T) regret doubles
    assert curve[-1] / rounds < 0.02, curve[-1]  # the average gap is ~0.2 when guessing
    fresh = [_context(rng) for _ in range(2000)]
    agree = sum(
        _p(bandit.pull(x, ACTIONS, 0.0, 0.5).greedy, x) == max(_p(a, x) for a in ACTIONS)
        for x in fresh
    )
    assert agree / len(fresh) >= 0.9, agree


@pytest.mark.parametrize(
    ("action", "context", "reward"),
    [
        ("a0", [1.0, math.nan, 0.0, 0.0], 1.0),
        ("a0", [1.0, 0.0, math.inf, 0.0], 1.0),
        ("a0", [1.0, 0.0, 0.0, 0.0], math.nan),
        ("a0", [1.0, 0.0, 0.0, 0.0], -math.inf),
        ("a0", [1.0, 1e200, 0.0, 0.0], 1.0),  # finite, but x^T A^-1 x overflows
        ("a0", [1.0, 1e150, 0.0, 0.0], 1e300),  # finite, but the reward times x overflows
        ("nope", [1.0, 0.0, 0.0, 0.0], 1.0),
    ],
)
def test_refused_input_leaves_the_state_unchanged(
    action: str, context: list[float], reward: float
) -> None:
    bandit = _trained(4)
    before = _dump(bandit)
    assert bandit.update(action, context, reward) is False
    assert _dump(bandit) == before and bandit.n_updates == 300


def test_pull_rejects_bad_arguments() -> None:
    bandit, x = LinearBandit(ACTIONS, DIMS), [1.0, 0.0, 0.0, 0.0]
    for eligible, epsilon, uniform in [
        ([], 0.1, 0.5),
        (["a0", "a0"], 0.1, 0.5),
        (["a0", "zz"], 0.1, 0.5),
        (["a0"], 1.5, 0.5),
        (["a0"], 0.1, 1.0),
    ]:
        with pytest.raises(ValueError):
            bandit.pull(x, eligible, epsilon, uniform)
    with pytest.raises(ValueError):
        bandit.pull([1.0, 0.0], ["a0"], 0.1, 0.5)  # wrong length


def test_non_finite_context_still_chooses_deterministically() -> None:
    choice = _trained(5).pull([1.0, math.nan, 0.0, 0.0], ["a3", "a1"], 0.1, 0.5)
    assert (choice.action, choice.greedy, choice.explored) == ("a3", "a3", False)


def test_snapshot_round_trip_gives_the_same_bytes_and_the_same_future() -> None:
    original = _trained(6)
    restored = LinearBandit.from_state(orjson.loads(_dump(original)))
    assert _dump(restored) == _dump(original)
    rng = random.Random(8)
    for _ in range(100):
        x, uniform, reward = _context(rng), rng.random(), rng.random()
        eligible = rng.sample(ACTIONS, rng.randint(1, len(ACTIONS)))
        choice = original.pull(x, eligible, 0.3, uniform)
        assert restored.pull(x, eligible, 0.3, uniform) == choice
        assert original.update(choice.action, x, reward)
        assert restored.update(choice.action, x, reward)
    assert _dump(restored) == _dump(original) and restored.n_updates == 400


def _corrupt(change: str) -> dict[str, object]:
    state = copy.deepcopy(_trained(9, count=20).to_state())
    arm = state["arms"][0]
    if change == "kind":
        state["kind"] = "logistic"
    elif change == "version":
        state["version"] = "0"
    elif change == "dims":
        state["dims"] = 3
    elif change == "ridge":
        state["ridge"] = 0.0
    elif change == "duplicate":
        state["arms"][1]["action"] = arm["action"]
    elif change == "arms":
        state["arms"] = {"a0": arm}
    elif change == "nan":
        arm["b"][1] = math.nan
    elif change == "asymmetric":
        arm["a_inv"][0][1] += 1e-3
    elif change == "diagonal":
        arm["a_inv"][2][2] = -1.0
    elif change == "count":
        arm["count"] = -1
    elif change == "row":
        arm["a_inv"][1] = arm["a_inv"][1][:2]
    return state


@pytest.mark.parametrize(
    "change",
    [
        "kind",
        "version",
        "dims",
        "ridge",
        "duplicate",
        "arms",
        "nan",
        "asymmetric",
        "diagonal",
        "count",
        "row",
    ],
)
def test_bad_snapshot_raises_snapshot_error(change: str) -> None:
    with pytest.raises(SnapshotError):
        LinearBandit.from_state(_corrupt(change))


def test_bad_configuration_raises_config_error() -> None:
    for actions, dims, ridge in [([], 4, 1.0), (["a", "a"], 4, 1.0), (["a"], 0, 1.0)]:
        with pytest.raises(ConfigError):
            LinearBandit(actions, dims, ridge)
    for ridge in (0.0, -1.0, math.nan):
        with pytest.raises(ConfigError):
            LinearBandit(["a"], 4, ridge)


def test_epsilon_schedule_decays_like_one_over_sqrt_n() -> None:
    assert epsilon_schedule(0.2, 200, 0) == epsilon_schedule(0.2, 200, 200) == 0.2
    assert math.isclose(epsilon_schedule(0.2, 200, 80_000), 0.2 / 20.0, rel_tol=1e-15)
    rates = [epsilon_schedule(0.2, 200, n) for n in range(0, 5000, 7)]
    assert rates == sorted(rates, reverse=True)

"""stream.ope: the join of decisions and rewards, the target policies, and IPS / SNIPS recovering
a known policy value on synthetic logs."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.exceptions import StreamError
from stream.ope import (
    Estimate,
    LoggedDecision,
    PolicySpecError,
    RecordError,
    Target,
    always,
    epsilon_greedy,
    greedy,
    ips,
    join,
    logging_policy,
    observed,
    policy_from_spec,
    priority,
    snips,
    uniform,
)


def decision(
    decision_id: str,
    action: str = "remind_cart",
    eligible: tuple[str, ...] = ("remind_cart", "none"),
    propensity: float = 0.9,
    variant: str = "champion",
    scores: dict[str, float] | None = None,
) -> dict[str, Any]:
    """A decision.v3 record: the eligible actions in catalog order, the chosen one included."""
    assert action in eligible
    return {
        "schema": "decision.v3",
        "decision_id": decision_id,
        "user": {"key": "u1"},
        "event": {"time_ms": 1_700_000_000_000},
        "action": action,
        "propensity": propensity,
        "variant": variant,
        "alternatives": [{"action": a, "eligible": True} for a in eligible if a != action],
        "policy": {
            "version": "nba-v1",
            "eligible": list(eligible),
            "scores": scores or {a: 0.1 for a in eligible},
        },
    }


def reward(decision_id: str, value: float = 0.3) -> dict[str, Any]:
    return {
        "schema": "reward.v1",
        "decision_id": decision_id,
        "user_key": "u1",
        "action": "remind_cart",
        "reward": value,
        "outcomes": ["Product Added"],
        "exposed": True,
        "by": "window",
    }


def row(
    eligible: tuple[str, ...], action: str = "a", scores: dict[str, float] | None = None
) -> LoggedDecision:
    return LoggedDecision("d", action, 0.5, eligible, scores or {}, "champion", 1.0)


# -- join --------------------------------------------------------------------------------------


def test_join_drops_duplicates_and_counts_what_it_cannot_pair() -> None:
    decisions = [decision("d1"), decision("d2"), decision("d1"), decision("d3"), decision("d2")]
    rewards = [reward("d1", 1.0), reward("d3", 0.0), reward("d1", 0.5), reward("orphan")]
    result = join(decisions, rewards)
    assert [(d.decision_id, d.reward) for d in result.logged] == [("d1", 1.0), ("d3", 0.0)]
    assert result.decisions == 3 and result.rewards == 3
    assert result.duplicate_decisions == 2 and result.duplicate_rewards == 1
    assert result.decisions_without_reward == 1  # d2 (e.g. a sticky repeat)
    assert result.rewards_without_decision == 1


def test_join_reads_the_eligible_actions_the_decision_logged() -> None:
    eligible = ("offer_discount", "remind_cart", "recommend_category", "none")
    d = join([decision("d1", "remind_cart", eligible)], [reward("d1")]).logged[0]
    assert d.eligible == eligible
    assert d.scores == {a: 0.1 for a in eligible}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (decision("d1") | {"propensity": "high"}, "'propensity'"),
        (decision("d1") | {"propensity": True}, "'propensity'"),
        ({k: v for k, v in decision("d1").items() if k != "variant"}, "'variant'"),
        (decision("d1") | {"policy": {"scores": {}}}, "'policy.eligible'"),
        (decision("d1") | {"policy": None}, "'policy'"),
        (decision("d1") | {"action": "offer_discount"}, "not in 'policy.eligible'"),
    ],
)
def test_join_refuses_records_without_what_it_needs(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(RecordError, match=message):
        join([doc], [])
    with pytest.raises(RecordError, match="'reward'"):
        join([], [reward("d1") | {"reward": None}])


# -- target policies ---------------------------------------------------------------------------


def test_target_policies_put_their_probability_on_eligible_actions() -> None:
    d = row(("a", "b", "c"), scores={"a": 0.2, "b": 0.5, "c": 0.5})
    assert uniform(d) == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    assert priority(d) == {"a": 1.0}
    assert always("c")(d) == {"c": 1.0}
    assert always("z")(d) == {"a": 1.0}  # not eligible: the first eligible
    assert greedy(d) == {"b": 1.0}  # tie with c: catalog order
    assert greedy(row(("a", "b"), scores={"b": -1.0})) == {"b": 1.0}  # unscored a loses
    assert greedy(row(("a", "b"))) == {"a": 1.0}  # nothing scored: catalog order
    assert epsilon_greedy(0.3)(d) == pytest.approx({"a": 0.1, "b": 0.8, "c": 0.1})
    assert epsilon_greedy(0.0)(d) == {"a": 0.0, "b": 1.0, "c": 0.0}
    assert epsilon_greedy(1.0)(d) == pytest.approx(uniform(d))
    assert logging_policy(d) == {"a": 0.5}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("uniform", {"a": 0.5, "b": 0.5}),
        ("priority", {"a": 1.0}),
        ("greedy", {"b": 1.0}),
        ("always:b", {"b": 1.0}),
        ("epsilon-greedy:0.5", {"a": 0.25, "b": 0.75}),
        ("logging", {"a": 0.5}),
    ],
)
def test_policy_specs(spec: str, expected: dict[str, float]) -> None:
    assert policy_from_spec(spec)(row(("a", "b"), scores={"a": 0.1, "b": 0.9})) == expected


@pytest.mark.parametrize(
    "spec", ["best", "always", "always:", "epsilon-greedy:x", "epsilon-greedy:1.5", "uniform:2"]
)
def test_bad_policy_specs_raise_a_typed_error(spec: str) -> None:
    with pytest.raises(PolicySpecError) as exc:
        policy_from_spec(spec)
    assert isinstance(exc.value, StreamError)


# -- estimators on synthetic logs with a known truth -------------------------------------------

ARMS = ("a", "b", "c", "none")
P_MOBILE = 0.4
#: Bernoulli reward probability per action, (desktop, mobile): the truth.
REWARD_P = {"a": (0.10, 0.35), "b": (0.25, 0.15), "c": (0.30, 0.20), "none": (0.05, 0.05)}
#: The logging policy's predicted rewards: deliberately not the truth (greedy picks b on
#: desktop where c is best).
SCORES = {"a": (0.12, 0.30), "b": (0.28, 0.18), "c": (0.22, 0.25), "none": (0.0, 0.0)}
#: Eligible sets: all four half the time, else one of a, b, c is not eligible.
ELIGIBLE = [(ARMS, 0.5)] + [(tuple(x for x in ARMS if x != drop), 1 / 6) for drop in "abc"]
N = 20_000


def _scores(mobile: int) -> dict[str, float]:
    return {a: SCORES[a][mobile] for a in ARMS}


def _logging_probabilities(eligible: tuple[str, ...], mobile: int, eps: float | None) -> Any:
    d = LoggedDecision("", "", 1.0, eligible, _scores(mobile), "champion", 0.0)
    return uniform(d) if eps is None else epsilon_greedy(eps)(d)


def synthetic_log(seed: int, eps: float | None = None, n: int = N) -> list[LoggedDecision]:
    """``n`` decisions logged uniformly at random (``eps=None``) or epsilon-greedy on
    ``SCORES``, with Bernoulli(``REWARD_P``) rewards."""
    rng = random.Random(seed)
    sets, set_weights = zip(*ELIGIBLE, strict=True)
    rows = []
    for i in range(n):
        mobile = int(rng.random() < P_MOBILE)
        (eligible,) = rng.choices(sets, set_weights)
        probabilities = _logging_probabilities(eligible, mobile, eps)
        (action,) = rng.choices(list(probabilities), list(probabilities.values()))
        r = float(rng.random() < REWARD_P[action][mobile])
        rows.append(
            LoggedDecision(
                f"d{i}", action, probabilities[action], eligible, _scores(mobile), "champion", r
            )
        )
    return rows


def true_value(target: Target) -> float:
    """The target's expected reward, exactly, by enumerating contexts and eligible sets."""
    total = 0.0
    for mobile, (eligible, p_set) in itertools.product((0, 1), ELIGIBLE):
        p_context = P_MOBILE if mobile else 1 - P_MOBILE
        d = LoggedDecision("", "", 1.0, eligible, _scores(mobile), "champion", 0.0)
        expected = sum(p * REWARD_P[a][mobile] for a, p in target(d).items())
        total += p_context * p_set * expected
    return total


def _assert_recovers(estimate: Estimate, truth: float) -> None:
    assert estimate.low <= truth <= estimate.high, (estimate, truth)
    assert (estimate.high - estimate.low) / 2 < 0.02, estimate
    assert estimate.n == N


@pytest.mark.parametrize(
    ("eps", "spec"),
    [
        (None, "always:a"),
        (None, "always:c"),
        (None, "greedy"),
        (0.3, "greedy"),
        (0.3, "uniform"),
        (0.3, "epsilon-greedy:0.1"),
    ],
)
def test_ips_and_snips_recover_the_true_value_of_a_target(eps: float | None, spec: str) -> None:
    # Seed 1: seeds 0 to 6 pass every case; with seed 7 one of these 12 intervals (IPS of
    # always:c) misses the truth by 0.002, as 95% intervals do (coverage: the test below).
    log = synthetic_log(seed=1, eps=eps)
    target = policy_from_spec(spec)
    truth = true_value(target)
    _assert_recovers(ips(log, target), truth)
    _assert_recovers(snips(log, target), truth)


def test_the_truth_differs_between_targets() -> None:
    # Guard against a recovery test that passes because every target has the same value.
    specs = ("always:a", "always:c", "greedy", "uniform", "epsilon-greedy:0.1")
    values = {spec: round(true_value(policy_from_spec(spec)), 4) for spec in specs}
    assert values == {
        "always:a": 0.2017,
        "always:c": 0.25,
        "greedy": 0.285,
        "uniform": 0.1728,
        "epsilon-greedy:0.1": 0.2738,
    }


def test_the_95_percent_intervals_cover_the_truth_about_95_percent_of_the_time() -> None:
    # 100 logs of 2,000 epsilon-greedy decisions, target always:c (max weight 13): each
    # interval should cover the truth about 95 times (binomial sd 2.2).
    target = always("c")
    truth = true_value(target)
    covered = {"ips": 0, "snips": 0}
    for seed in range(100):
        log = synthetic_log(seed=1000 + seed, eps=0.3, n=2_000)
        for name, estimator in (("ips", ips), ("snips", snips)):
            e = estimator(log, target)
            covered[name] += e.low <= truth <= e.high
    assert all(88 <= c <= 99 for c in covered.values()), covered


@pytest.mark.parametrize("eps", [None, 0.3])
def test_ips_of_the_logging_policy_is_its_observed_mean(eps: float | None) -> None:
    log = synthetic_log(seed=11, eps=eps)
    mean = sum(d.reward for d in log) / len(log)
    assert ips(log, logging_policy).value == pytest.approx(mean, rel=1e-12)
    assert snips(log, logging_policy).value == pytest.approx(mean, rel=1e-12)
    assert observed(log) == ips(log, logging_policy)
    if eps is None:  # logged uniformly: the uniform target is the logging policy
        assert ips(log, uniform).value == pytest.approx(mean, rel=1e-12)
    # ... and the observed mean is the logging policy's true value.
    logging_truth = true_value(lambda d: _logging_probabilities(d.eligible, _mobile(d), eps))
    assert observed(log).low <= logging_truth <= observed(log).high


def _mobile(d: LoggedDecision) -> int:
    return int(d.scores == _scores(1))


def test_estimates_report_weights_and_skip_zero_propensities() -> None:
    log = [
        row(("a", "b"))._replace(reward=1.0),
        row(("a", "b"), action="b")._replace(reward=0.0),
        row(("a", "b"))._replace(propensity=0.0),
        row(("a", "b"))._replace(variant="holdout", propensity=1.0),
    ]
    e = ips(log, always("a"), variant="champion")
    assert (e.value, e.n, e.max_weight, e.skipped) == (1.0, 2, 2.0, 1)
    assert e.effective_sample_size == pytest.approx(1.0)
    assert math.isnan(snips(log, always("z"), variant="holdout").high)  # n = 1: no interval
    nothing = snips(log[1:2], always("a"))
    assert math.isnan(nothing.value) and nothing.effective_sample_size == 0.0
    assert math.isnan(ips([], uniform).value) and observed([]).n == 0


# -- property ----------------------------------------------------------------------------------

_ACTION = st.sampled_from(("a", "b", "c", "d"))
_TARGETS = st.one_of(
    st.sampled_from(["uniform", "priority", "greedy", "logging"]),
    _ACTION.map(lambda a: f"always:{a}"),
    st.floats(0.0, 1.0).map(lambda e: f"epsilon-greedy:{e!r}"),
)


@st.composite
def _rows(draw: st.DrawFn) -> LoggedDecision:
    eligible = tuple(draw(st.lists(_ACTION, min_size=1, max_size=4, unique=True)))
    return LoggedDecision(
        "d",
        draw(st.sampled_from(eligible)),
        draw(st.floats(1e-3, 1.0)),
        eligible,
        draw(st.dictionaries(_ACTION, st.floats(-1.0, 1.0))),
        "champion",
        draw(st.floats(-100.0, 100.0)),
    )


@settings(max_examples=200, deadline=None, database=None)
@given(st.lists(_rows(), min_size=1, max_size=30), _TARGETS)
def test_snips_lies_within_the_range_of_the_rewards(log: list[LoggedDecision], spec: str) -> None:
    estimate = snips(log, policy_from_spec(spec))
    rewards = [d.reward for d in log]
    if math.isnan(estimate.value):  # the log never took what the target takes
        assert ips(log, policy_from_spec(spec)).value == 0.0
        return
    slack = 1e-9 * max(1.0, *map(abs, rewards))
    assert min(rewards) - slack <= estimate.value <= max(rewards) + slack

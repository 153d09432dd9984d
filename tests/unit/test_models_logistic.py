"""LogisticModel: River's LogisticRegression as the oracle, refusals, finiteness, snapshots."""

from __future__ import annotations

import math
import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import linear_model, optim, preprocessing

from stream.exceptions import ConfigError, SnapshotError
from stream.models import LogisticModel, RunningScaler

N = 56


def _examples(seed: int, count: int) -> list[tuple[list[float], bool]]:
    """Raw features on mixed scales with a label that depends on a few of them, plus noise."""
    rng = random.Random(seed)
    truth = [rng.gauss(0.0, 1.0) if i % 5 == 0 else 0.0 for i in range(N)]
    rows = []
    for _ in range(count):
        x = [rng.gauss(0.0, 1.0) * (1 + i % 4) + i % 3 for i in range(N)]
        logit = sum(
            t * (xi - i % 3) / (1 + i % 4) for i, (t, xi) in enumerate(zip(truth, x, strict=True))
        )
        rows.append((x, rng.random() < 1.0 / (1.0 + math.exp(-logit))))
    return rows


@pytest.mark.parametrize(
    ("lr", "l2", "intercept_lr"), [(0.01, 0.0, 0.01), (0.05, 0.001, 0.02), (0.2, 0.0, 0.0)]
)
def test_matches_river_on_standardized_stream(lr: float, l2: float, intercept_lr: float) -> None:
    """Progressive validation: score each example, then learn it, in both implementations."""
    river = linear_model.LogisticRegression(
        optimizer=optim.SGD(lr), l2=l2, intercept_lr=intercept_lr
    )
    scaler = RunningScaler(N)
    ours = LogisticModel(N, lr=lr, l2=l2, intercept_lr=intercept_lr)
    worst = 0.0
    for x, y in _examples(3, 4000):
        z = scaler.learn_transform(x)
        zd = dict(enumerate(z))
        expected = river.predict_proba_one(zd)[True]
        worst = max(worst, abs(ours.predict_proba(z) - expected))
        river.learn_one(zd, y)
        assert ours.learn(z, y)
    assert worst <= 1e-9
    assert ours.intercept == pytest.approx(river.intercept, abs=1e-9)
    assert ours.weights == pytest.approx([river.weights.get(i, 0.0) for i in range(N)], abs=1e-9)


def test_matches_river_pipeline_with_its_own_scaler() -> None:
    """The same check against River's StandardScaler | LogisticRegression pipeline."""
    pipeline = preprocessing.StandardScaler() | linear_model.LogisticRegression(optim.SGD(0.03))
    scaler, ours = RunningScaler(N), LogisticModel(N, lr=0.03)
    for x, y in _examples(4, 2000):
        xd = dict(enumerate(x))
        pipeline.learn_one(xd, y)  # River's pipeline updates its scaler in learn_one...
        z = scaler.learn_transform(x)  # ...ours when the vector is scored: the same order here
        assert ours.learn(z, y)
        assert ours.predict_proba(z) == pytest.approx(
            pipeline.predict_proba_one(xd)[True], abs=1e-9
        )


def test_learns_a_signal() -> None:
    model = LogisticModel(N, lr=0.05)
    scaler = RunningScaler(N)
    rows = _examples(5, 6000)
    for x, y in rows[:5000]:
        model.learn(scaler.learn_transform(x), y)
    hits = sum((model.predict_proba(scaler.transform(x)) > 0.5) == y for x, y in rows[5000:])
    assert hits > 650  # a constant guess scores about 500


def test_extreme_logits_are_clamped_not_overflowing() -> None:
    model = LogisticModel(2, lr=0.5)
    model._weights = [1e6, 0.0]  # as if trained on enormous inputs
    assert model.predict_proba([1e6, 0.0]) == 1.0 / (1.0 + math.exp(-35.0))
    assert 0.0 < model.predict_proba([-1e6, 0.0]) < 1e-15
    assert model.predict_proba([math.nan, 0.0]) == 0.5


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_input_is_refused_and_changes_nothing(bad: float) -> None:
    model = LogisticModel(3, lr=0.1)
    model.learn([1.0, 2.0, 3.0], True)
    before = model.to_state()
    assert model.learn([1.0, bad, 3.0], False) is False
    assert model.to_state() == before
    assert model.n_learned == 1


def test_overflowing_step_is_refused() -> None:
    model = LogisticModel(2, lr=1.0)
    assert model.learn([1e308, 1e308], False)  # w = -0.5e308 each: still finite
    assert model.learn([-1e308, 1e308], True) is False  # w_0 would reach -inf... or NaN
    assert all(math.isfinite(w) for w in model.weights)


def test_a_step_whose_weights_would_overflow_is_refused() -> None:
    model = LogisticModel(2, lr=100.0)
    before = model.to_state()
    assert model.learn([1e307, 1.0], True) is False  # the logit is 0, but w_0 would be 5e308
    assert model.to_state() == before
    assert model.learn([1e305, 1.0], True)


def test_contributions_sum_to_the_logit() -> None:
    model = LogisticModel(3, lr=0.3, intercept_lr=0.3)
    for z, y in (([1.0, 0.0, -1.0], True), ([0.0, 1.0, 1.0], False)):
        model.learn(z, y)
    z = [0.5, -2.0, 1.5]
    logit = math.fsum(model.contributions(z)) + model.intercept
    assert model.predict_proba(z) == pytest.approx(1.0 / (1.0 + math.exp(-logit)), rel=1e-15)
    assert model.contributions(z)[1] == model.weights[1] * -2.0


@pytest.mark.parametrize(
    "kwargs", [{"lr": -0.1}, {"lr": math.nan}, {"l2": math.inf}, {"lr": 0.5, "l2": 2.0}, {"n": 0}]
)
def test_bad_hyperparameters_are_config_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        LogisticModel(**{"n": 3, **kwargs})  # type: ignore[arg-type]


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
examples = st.lists(st.tuples(st.lists(finite, min_size=3, max_size=3), st.booleans()), max_size=40)


@settings(max_examples=80, deadline=None)
@given(examples, st.sampled_from([0.01, 0.5, 0.99]), st.sampled_from([0.0, 0.5]))
def test_any_finite_stream_keeps_the_model_finite(
    stream: list[tuple[list[float], bool]], lr: float, l2: float
) -> None:
    model = LogisticModel(3, lr=lr, l2=l2, intercept_lr=lr)
    for z, y in stream:
        assert model.learn(z, y)
        p = model.predict_proba(z)
        assert 0.0 < p < 1.0
    assert all(math.isfinite(w) for w in [*model.weights, model.intercept])


@settings(max_examples=60, deadline=None)
@given(examples, examples)
def test_snapshot_round_trip_gives_bitwise_equal_predictions(
    before: list[tuple[list[float], bool]], after: list[tuple[list[float], bool]]
) -> None:
    original = LogisticModel(3, lr=0.1, l2=0.01, intercept_lr=0.05)
    for z, y in before:
        original.learn(z, y)
    restored = LogisticModel.from_state(orjson.loads(orjson.dumps(original.to_state())))
    for z, y in after:
        assert original.predict_proba(z) == restored.predict_proba(z)
        assert original.learn(z, y) == restored.learn(z, y)
    assert orjson.dumps(original.to_state()) == orjson.dumps(restored.to_state())


@settings(max_examples=30, deadline=None)
@given(examples)
def test_two_models_fed_the_same_stream_have_identical_states(
    stream: list[tuple[list[float], bool]],
) -> None:
    a, b = LogisticModel(3, lr=0.2), LogisticModel(3, lr=0.2)
    for z, y in stream:
        a.learn(z, y)
        b.learn(list(z), y)
    assert orjson.dumps(a.to_state()) == orjson.dumps(b.to_state())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "running_scaler"}, "expected kind"),
        ({"version": "2"}, "unsupported version"),
        ({"weights": [0.0, 0.0]}, "weights must be a list of 3"),
        ({"intercept": math.nan}, "finite"),
        ({"lr": -1.0}, "lr must be finite"),
        ({"n_learned": True}, "n_learned must be an int"),
    ],
)
def test_bad_snapshots_are_rejected(change: dict[str, object], message: str) -> None:
    state = {**LogisticModel(3).to_state(), **change}
    with pytest.raises(SnapshotError, match=message):
        LogisticModel.from_state(state)


def test_input_is_not_mutated() -> None:
    model, z = LogisticModel(3, lr=0.1), [1.0, -2.0, 0.5]
    model.learn(z, True)
    model.predict_proba(z)
    assert z == [1.0, -2.0, 0.5]

"""SoftmaxModel: River's SoftmaxRegression as the oracle, the "other" class, properties."""

from __future__ import annotations

import itertools
import math
import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import linear_model, optim

from stream.exceptions import ConfigError, SnapshotError
from stream.models import RunningScaler
from stream.models.softmax import OTHER, SoftmaxModel

N = 12
LABELS = ("books", "shoes", "toys", "garden", "music", "food", "games")


def _examples(seed: int, count: int, labels: tuple[str, ...]) -> list[tuple[list[float], str]]:
    """Each label has a centre in feature space; examples are noisy draws around it."""
    rng = random.Random(seed)
    centres = {label: [rng.gauss(0.0, 1.0) for _ in range(N)] for label in labels}
    rows = []
    for _ in range(count):
        label = labels[min(int(rng.expovariate(0.6)), len(labels) - 1)]  # skewed frequencies
        rows.append(([c + rng.gauss(0.0, 1.5) for c in centres[label]], label))
    return rows


def _check_against_river(
    model: SoftmaxModel,
    river: linear_model.SoftmaxRegression,
    rows: list[tuple[list[float], str]],
    map_label: object,
) -> None:
    scaler = RunningScaler(N)
    for x, label in rows:
        z = scaler.learn_transform(x)
        expected = river.predict_proba_one(dict(enumerate(z)))
        got = dict(model.predict(z))
        assert got.keys() == expected.keys()
        assert all(abs(got[k] - expected[k]) <= 1e-9 for k in got)
        river.learn_one(dict(enumerate(z)), map_label(label))  # type: ignore[operator]
        assert model.learn(z, label)
    assert model.classes == list(river.weights)  # same classes, same first-seen order


@pytest.mark.parametrize(("lr", "l2"), [(0.01, 0.0), (0.1, 0.01)])
def test_matches_river_softmax_regression(lr: float, l2: float) -> None:
    river = linear_model.SoftmaxRegression(optimizer=optim.SGD(lr), l2=l2)
    model = SoftmaxModel(N, lr=lr, l2=l2)
    _check_against_river(model, river, _examples(1, 3000, LABELS), lambda label: label)


def test_labels_beyond_the_cap_are_learned_as_other() -> None:
    """With 4 classes, the first 3 distinct labels keep their name and the rest become "other"."""
    rows = _examples(2, 2000, LABELS)
    named: list[str] = []
    for _, label in rows:
        if label not in named and len(named) < 3:
            named.append(label)
    river = linear_model.SoftmaxRegression(optimizer=optim.SGD(0.05))
    model = SoftmaxModel(N, max_classes=4, lr=0.05)
    _check_against_river(model, river, rows, lambda label: label if label in named else OTHER)
    assert model.classes == [*named, OTHER][: len(model.classes)]
    assert len(model.classes) == 4
    assert model.class_of("never seen") == OTHER
    assert model.class_of(named[0]) == named[0]


def test_a_label_named_other_is_the_other_class() -> None:
    model = SoftmaxModel(2, max_classes=2, lr=0.1)
    model.learn([1.0, 0.0], OTHER)
    model.learn([0.0, 1.0], "books")  # the named slot is still free
    model.learn([0.0, 1.0], "shoes")  # no slot left: "other"
    assert model.classes == [OTHER, "books"]


def test_no_classes_predicts_nothing() -> None:
    model = SoftmaxModel(3)
    assert model.predict([1.0, 2.0, 3.0]) == []
    assert model.top_k([1.0, 2.0, 3.0], 3) == []


def test_learns_a_separable_problem() -> None:
    rng = random.Random(5)
    model = SoftmaxModel(2, lr=0.1)
    corners = {"ne": (1.0, 1.0), "nw": (-1.0, 1.0), "sw": (-1.0, -1.0), "se": (1.0, -1.0)}

    def draw() -> tuple[list[float], str]:
        label = rng.choice(sorted(corners))
        cx, cy = corners[label]
        return [cx + rng.uniform(-0.8, 0.8), cy + rng.uniform(-0.8, 0.8)], label

    for _ in range(3000):
        model.learn(*draw())
    tests = [draw() for _ in range(1000)]
    accuracy = sum(model.predict(z)[0][0] == label for z, label in tests) / len(tests)
    assert accuracy > 0.9


def test_ranking_breaks_ties_by_name_and_top_k_cuts() -> None:
    model = SoftmaxModel(1, lr=0.1)
    for label in ("c", "a", "b"):
        model.learn([0.0], label)  # z = 0: no weight moves, every class stays equally likely
    assert [name for name, _ in model.predict([5.0])] == ["a", "b", "c"]
    assert model.top_k([5.0], 2) == [("a", 1 / 3), ("b", 1 / 3)]


def test_huge_inputs_keep_probabilities_finite() -> None:
    model = SoftmaxModel(2, lr=0.5)
    model.learn([1.0, 0.0], "a")
    model.learn([0.0, 1.0], "b")
    for z in ([1e300, -1e300], [1e308, 1e308], [-1e308, 1e308], [math.nan, 0.0]):
        probs = [p for _, p in model.predict(z)]
        assert all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in probs)
        assert math.fsum(probs) == pytest.approx(1.0)
    assert model.learn([math.inf, 0.0], "a") is False
    state = model.to_state()
    state["weights"] = [[1.7e308, -1.7e308], [0.0, 1.7e308]]  # as if trained on enormous inputs
    model = SoftmaxModel.from_state(state)
    assert model.predict([1e308, 1e308])[0] == ("b", 1.0)  # logits NaN and inf, bounded
    assert model.learn([1e308, 1e308], "a") is False  # w_a[0] would pass 1.8e308: refused
    assert model.to_state() == state


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
labelled = st.lists(
    st.tuples(st.lists(finite, min_size=3, max_size=3), st.sampled_from(LABELS)), max_size=30
)


@settings(max_examples=60, deadline=None)
@given(labelled, st.lists(finite, min_size=3, max_size=3))
def test_probabilities_sum_to_one_and_state_stays_finite(
    stream: list[tuple[list[float], str]], probe: list[float]
) -> None:
    model = SoftmaxModel(3, max_classes=5, lr=0.3, l2=0.1)
    for z, label in stream:
        assert model.learn(z, label)
    ranked = model.predict(probe)
    assert len(ranked) == len(model.classes) <= 5
    if ranked:
        assert abs(math.fsum(p for _, p in ranked) - 1.0) <= 1e-12
        assert all(a[1] >= b[1] for a, b in itertools.pairwise(ranked))
    state = model.to_state()
    assert all(math.isfinite(w) for row in state["weights"] for w in row)


@settings(max_examples=60, deadline=None)
@given(labelled, labelled)
def test_snapshot_round_trip_gives_bitwise_equal_predictions(
    before: list[tuple[list[float], str]], after: list[tuple[list[float], str]]
) -> None:
    original = SoftmaxModel(3, max_classes=4, lr=0.2)
    for z, label in before:
        original.learn(z, label)
    restored = SoftmaxModel.from_state(orjson.loads(orjson.dumps(original.to_state())))
    for z, label in after:
        assert original.predict(z) == restored.predict(z)
        assert original.learn(z, label) == restored.learn(z, label)
    assert orjson.dumps(original.to_state()) == orjson.dumps(restored.to_state())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "logistic"}, "expected kind"),
        ({"classes": ["a", "a"], "weights": [[0.0] * 3] * 2}, "distinct"),
        ({"classes": ["a"], "weights": []}, "one row per class"),
        ({"classes": ["a"], "weights": [[0.0, 0.0]]}, "list of 3"),
        ({"max_classes": 1}, "max_classes must be an int >= 2"),
    ],
)
def test_bad_snapshots_are_rejected(change: dict[str, object], message: str) -> None:
    state = {**SoftmaxModel(3).to_state(), **change}
    with pytest.raises(SnapshotError, match=message):
        SoftmaxModel.from_state(state)


@pytest.mark.parametrize("kwargs", [{"max_classes": 1}, {"lr": -1.0}, {"lr": 0.5, "l2": 4.0}])
def test_bad_hyperparameters_are_config_errors(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        SoftmaxModel(3, **kwargs)  # type: ignore[arg-type]

"""RunningScaler: River's StandardScaler as the oracle, refusals, snapshots."""

from __future__ import annotations

import math
import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import preprocessing

from stream.exceptions import SnapshotError
from stream.models import RunningScaler

N = 56


def _stream(seed: int, count: int, n: int = N) -> list[list[float]]:
    """Mixed scales, a constant position and a position that is mostly zero (a sparse count)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        row = [rng.gauss(0.0, 1.0) * 10.0 ** (i % 7 - 3) + i for i in range(n)]
        row[0] = 4.0  # constant: zero variance forever
        row[1] = float(rng.random() < 0.05)
        rows.append(row)
    return rows


def _close(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b))


def test_matches_river_standard_scaler() -> None:
    river = preprocessing.StandardScaler()
    ours = RunningScaler(N)
    for row in _stream(1, 3000):
        river.learn_one(dict(enumerate(row)))
        expected = river.transform_one(dict(enumerate(row)))
        assert ours.learn_transform(row) == ours.transform(row)
        got = ours.transform(row)
        assert all(_close(got[i], expected[i]) for i in range(N)), (got, expected)
    assert got[0] == 0.0


def test_transform_without_learning_matches_river() -> None:
    """Scoring a vector the scaler has not learned uses the current statistics, as River does."""
    river = preprocessing.StandardScaler()
    ours = RunningScaler(N)
    rows = _stream(2, 500)
    for row in rows[:250]:
        river.learn_one(dict(enumerate(row)))
        ours.learn(row)
    for row in rows[250:]:
        expected = river.transform_one(dict(enumerate(row)))
        got = ours.transform(row)
        assert all(_close(got[i], expected[i]) for i in range(N))


def test_no_data_and_single_value_transform_to_zero() -> None:
    scaler = RunningScaler(3)
    assert scaler.transform([1.0, -2.0, 3.0]) == [0.0, 0.0, 0.0]
    scaler.learn([1.0, 2.0, 3.0])
    assert scaler.transform([5.0, -5.0, 0.0]) == [0.0, 0.0, 0.0]
    scaler.learn([3.0, 2.0, 3.0])
    assert scaler.transform([5.0, -5.0, 0.0]) == [3.0, 0.0, 0.0]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_input_is_refused_and_changes_nothing(bad: float) -> None:
    scaler = RunningScaler(3)
    scaler.learn([1.0, 2.0, 3.0])
    before = scaler.to_state()
    assert scaler.learn([1.0, bad, 3.0]) is False
    assert scaler.to_state() == before
    assert scaler.count == 1


def test_overflowing_input_is_refused() -> None:
    scaler = RunningScaler(2)
    scaler.learn([1.0, -1e300])
    assert scaler.learn([1.0, 1e300]) is False  # the squared deviation overflows
    assert scaler.count == 1


def test_wrong_length_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="expected 3 values"):
        RunningScaler(3).learn([1.0, 2.0])


finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(finite, min_size=4, max_size=4), min_size=1, max_size=40))
def test_state_stays_finite_and_variance_non_negative(rows: list[list[float]]) -> None:
    scaler = RunningScaler(4)
    for row in rows:
        assert scaler.learn(row)
        assert all(math.isfinite(v) for v in scaler.transform(row))
    state = scaler.to_state()
    assert all(math.isfinite(v) for v in state["mean"])
    assert all(v >= 0.0 and math.isfinite(v) for v in state["var"])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(finite, min_size=4, max_size=4), min_size=0, max_size=30),
    st.lists(st.lists(finite, min_size=4, max_size=4), min_size=1, max_size=10),
)
def test_snapshot_round_trip_is_bitwise(
    before: list[list[float]], after: list[list[float]]
) -> None:
    original = RunningScaler(4)
    for row in before:
        original.learn(row)
    restored = RunningScaler.from_state(orjson.loads(orjson.dumps(original.to_state())))
    for row in after:
        assert original.learn_transform(row) == restored.learn_transform(row)
    assert orjson.dumps(original.to_state()) == orjson.dumps(restored.to_state())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "logistic"}, "expected kind"),
        ({"version": "0"}, "unsupported version"),
        ({"mean": [0.0]}, "mean must be a list of 2"),
        ({"var": [0.0, -1.0]}, "negative"),
        ({"var": [0.0, None]}, "finite numbers"),
        ({"count": -1}, "count must be an int"),
    ],
)
def test_bad_snapshots_are_rejected(change: dict[str, object], message: str) -> None:
    state = {**RunningScaler(2).to_state(), **change}
    with pytest.raises(SnapshotError, match=message):
        RunningScaler.from_state(state)

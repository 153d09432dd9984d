"""The contract every learner keeps: non-finite inputs are refused and change nothing."""

from __future__ import annotations

import math

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.models import LogisticModel, RunningScaler, SoftmaxModel

N = 5
finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
history = st.lists(st.lists(finite, min_size=N, max_size=N), max_size=15)


@st.composite
def poisoned(draw: st.DrawFn) -> list[float]:
    """A finite vector with one or more NaN or infinite values at random positions."""
    values = draw(st.lists(finite, min_size=N, max_size=N))
    for i in draw(st.sets(st.integers(0, N - 1), min_size=1)):
        values[i] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    return values


@settings(max_examples=80, deadline=None)
@given(history, poisoned())
def test_non_finite_inputs_are_refused_by_every_learner(
    rows: list[list[float]], bad: list[float]
) -> None:
    scaler = RunningScaler(N)
    logistic = LogisticModel(N, lr=0.1, l2=0.01)
    softmax = SoftmaxModel(N, max_classes=3, lr=0.1)
    for i, row in enumerate(rows):
        scaler.learn(row)
        logistic.learn(row, i % 2 == 0)
        softmax.learn(row, "abcd"[i % 4])
    before = [orjson.dumps(m.to_state()) for m in (scaler, logistic, softmax)]
    assert scaler.learn(bad) is False
    assert logistic.learn(bad, True) is False
    assert softmax.learn(bad, "a") is False
    assert [orjson.dumps(m.to_state()) for m in (scaler, logistic, softmax)] == before
    p = logistic.predict_proba(bad)  # scoring a bad vector still gives a probability
    assert 0.0 < p < 1.0
    assert all(0.0 <= q <= 1.0 for _, q in softmax.predict(bad))

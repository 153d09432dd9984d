"""ColdStartPrior: base rate, the blend rule, snapshots."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.exceptions import ConfigError, SnapshotError
from stream.models.prior import ColdStartPrior


def test_base_rate_is_the_beta_posterior_mean() -> None:
    prior = ColdStartPrior(alpha=2.0, beta=8.0, min_labels=10)
    assert prior.base_rate() == 0.2
    for y in (True, True, True, False):
        prior.learn(y)
    assert (prior.positives, prior.total) == (3, 4)
    assert prior.base_rate() == 5.0 / 14.0


def test_blend_follows_the_documented_ramp() -> None:
    prior = ColdStartPrior(alpha=1.0, beta=3.0, min_labels=100)  # base rate 0.25
    assert prior.blend(0.85, 0) == 0.25
    assert prior.blend(0.85, 99) == 0.25
    assert prior.blend(0.85, 100) == 0.25
    assert prior.blend(0.85, 125) == pytest.approx(0.25 + 0.25 * 0.6)
    assert prior.blend(0.85, 199) == pytest.approx(0.25 + 0.99 * 0.6)
    assert prior.blend(0.85, 200) == 0.85
    assert prior.blend(0.85, 10_000) == 0.85


def test_zero_min_labels_trusts_the_model_at_once() -> None:
    assert ColdStartPrior(min_labels=0).blend(0.7, 0) == 0.7


@given(
    st.floats(min_value=0.0, max_value=1.0),
    st.integers(min_value=0, max_value=1000),
    st.lists(st.booleans(), max_size=50),
)
def test_blend_stays_between_the_base_rate_and_the_model(
    model_p: float, n_learned: int, labels: list[bool]
) -> None:
    prior = ColdStartPrior(min_labels=200)
    for y in labels:
        prior.learn(y)
    low, high = sorted((prior.base_rate(), model_p))
    assert low - 1e-15 <= prior.blend(model_p, n_learned) <= high + 1e-15


@pytest.mark.parametrize(
    "kwargs", [{"alpha": 0.0}, {"beta": -1.0}, {"alpha": float("nan")}, {"min_labels": -1}]
)
def test_bad_configuration(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        ColdStartPrior(**kwargs)  # type: ignore[arg-type]


def test_snapshot_round_trip_and_rejections() -> None:
    prior = ColdStartPrior(alpha=0.5, beta=4.5, min_labels=30)
    for y in (True, False, False):
        prior.learn(y)
    restored = ColdStartPrior.from_state(orjson.loads(orjson.dumps(prior.to_state())))
    assert restored.to_state() == prior.to_state()
    assert restored.blend(0.9, 45) == prior.blend(0.9, 45)
    with pytest.raises(SnapshotError, match="total must be an int >= 1"):
        ColdStartPrior.from_state({**prior.to_state(), "total": 0})
    with pytest.raises(SnapshotError, match="alpha must be finite"):
        ColdStartPrior.from_state({**prior.to_state(), "alpha": 0.0})
    with pytest.raises(SnapshotError, match="expected kind"):
        ColdStartPrior.from_state({**prior.to_state(), "kind": "logistic"})

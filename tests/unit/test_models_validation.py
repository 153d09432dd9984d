"""BinaryValidation and MulticlassValidation: brute force and River as oracles, snapshots."""

from __future__ import annotations

import math
import random

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import metrics

from stream.exceptions import SnapshotError
from stream.models.validation import AUC_BINS, BinaryValidation, MulticlassValidation


def _pairwise_auc(scores: list[tuple[float, bool]]) -> tuple[float, int]:
    """Exact AUC by comparing every (positive, negative) pair, and how many pairs share a bin."""
    pos = [p for p, y in scores if y]
    neg = [p for p, y in scores if not y]
    doubled = sum(2 * (a > b) + (a == b) for a in pos for b in neg)
    shared = sum(_bin(a) == _bin(b) for a in pos for b in neg)
    return doubled / (2 * len(pos) * len(neg)), shared


def _bin(p: float) -> int:
    return min(int(p * AUC_BINS), AUC_BINS - 1)


def test_auc_is_exact_when_every_score_has_its_own_bin() -> None:
    rng = random.Random(7)
    bins = rng.sample(range(AUC_BINS), 300)
    scores = [((b + 0.5) / AUC_BINS, rng.random() < b / AUC_BINS) for b in bins]
    tracker = BinaryValidation()
    for p, y in scores:
        tracker.update(p, y)
    exact, shared = _pairwise_auc(scores)
    assert shared == 0
    assert tracker.roc_auc() == exact
    assert 0.6 < exact < 0.95  # an informative score, not a degenerate case


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_auc_is_within_the_shared_bin_error(seed: int) -> None:
    rng = random.Random(seed)
    scores = []
    for _ in range(600):
        y = rng.random() < 0.3
        scores.append((min(1.0, max(0.0, rng.gauss(0.6 if y else 0.4, 0.2))), y))
    tracker = BinaryValidation()
    for p, y in scores:
        tracker.update(p, y)
    exact, shared = _pairwise_auc(scores)
    auc = tracker.roc_auc()
    assert auc is not None
    assert shared > 0
    assert abs(auc - exact) <= 0.5 * shared / (tracker.positives * (600 - tracker.positives))


def test_log_loss_matches_river() -> None:
    rng = random.Random(11)
    river = metrics.LogLoss()
    tracker = BinaryValidation()
    for i in range(3000):
        p = rng.random() if i % 50 else float(i % 100 == 0)  # exact 0s and 1s get clipped
        y = rng.random() < p
        river.update(y, p)
        tracker.update(p, y)
    assert tracker.log_loss() == pytest.approx(river.get(), rel=1e-12)


def test_brier_base_rate_and_calibration() -> None:
    tracker = BinaryValidation()
    for p, y in [(0.05, False), (0.05, True), (0.15, False), (0.95, True), (1.0, True)]:
        tracker.update(p, y)
    assert tracker.count == 5
    assert tracker.positives == 3
    assert tracker.base_rate() == 0.6
    expected_brier = (0.05**2 + 0.95**2 + 0.15**2 + 0.05**2 + 0.0) / 5
    assert tracker.brier() == pytest.approx(expected_brier, rel=1e-15)
    table = tracker.calibration()
    assert len(table) == 10
    assert table[0] == (0.05, 0.5, 2)
    assert table[1] == (0.15, 0.0, 1)
    assert table[5] == (None, None, 0)
    assert table[9] == (pytest.approx(0.975), 1.0, 2)  # 1.0 falls in the last bin


def test_empty_and_one_class_figures_are_none() -> None:
    tracker = BinaryValidation()
    assert tracker.summary() == {
        "count": 0,
        "positives": 0,
        "base_rate": None,
        "log_loss": None,
        "roc_auc": None,
        "brier": None,
    }
    tracker.update(0.3, True)
    assert tracker.roc_auc() is None
    assert tracker.summary()["log_loss"] == round(-math.log(0.3), 6)


@pytest.mark.parametrize("p", [math.nan, -0.1, 1.5, math.inf])
def test_a_non_probability_is_a_programming_error(p: float) -> None:
    with pytest.raises(ValueError, match="probability"):
        BinaryValidation().update(p, True)


probability = st.floats(min_value=0.0, max_value=1.0)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(probability, st.booleans()), max_size=50),
    st.lists(st.tuples(probability, st.booleans()), min_size=1, max_size=20),
)
def test_binary_snapshot_round_trip(
    before: list[tuple[float, bool]], after: list[tuple[float, bool]]
) -> None:
    original = BinaryValidation()
    for p, y in before:
        original.update(p, y)
    restored = BinaryValidation.from_state(orjson.loads(orjson.dumps(original.to_state())))
    for p, y in after:
        original.update(p, y)
        restored.update(p, y)
    assert orjson.dumps(original.to_state()) == orjson.dumps(restored.to_state())
    assert original.summary() == restored.summary()
    auc = original.roc_auc()
    assert auc is None or 0.0 <= auc <= 1.0


def test_multiclass_figures() -> None:
    tracker = MulticlassValidation()
    ranked = [("shoes", 0.5), ("books", 0.3), ("toys", 0.15), ("garden", 0.05)]
    tracker.update(ranked, "shoes")
    tracker.update(ranked, "toys")
    tracker.update(ranked, "garden")
    tracker.update(ranked, "unseen")
    tracker.update([], "shoes")
    assert tracker.count == 5
    assert tracker.accuracy() == 0.2
    assert tracker.top_k_rate() == 0.4
    expected = -(math.log(0.5) + math.log(0.15) + math.log(0.05) + 2 * math.log(1e-15)) / 5
    assert tracker.log_loss() == pytest.approx(expected, rel=1e-15)
    assert tracker.summary()["k"] == 3


def test_multiclass_k_is_fixed_by_the_first_update() -> None:
    tracker = MulticlassValidation()
    tracker.update([("a", 1.0)], "a", k=1)
    with pytest.raises(ValueError, match="same for every update"):
        tracker.update([("a", 1.0)], "a", k=3)


def test_multiclass_snapshot_round_trip_and_rejections() -> None:
    tracker = MulticlassValidation()
    tracker.update([("a", 0.7), ("b", 0.3)], "b", k=1)
    state = orjson.loads(orjson.dumps(tracker.to_state()))
    assert MulticlassValidation.from_state(state).summary() == tracker.summary()
    with pytest.raises(SnapshotError, match="inconsistent"):
        MulticlassValidation.from_state({**state, "top1": 2})
    with pytest.raises(SnapshotError, match="expected kind"):
        MulticlassValidation.from_state(BinaryValidation().to_state())
    with pytest.raises(SnapshotError, match="non-negative ints"):
        BinaryValidation.from_state({**BinaryValidation().to_state(), "positives": [-1] * 1000})

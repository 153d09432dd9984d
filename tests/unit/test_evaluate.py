"""python -m scripts.evaluate: exact AUC, the baselines, the batch logistic regression, and one
end-to-end run on a small synthetic log."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scripts import evaluate
from scripts.evaluate import (
    base_rate_scores,
    bucket_rate_scores,
    fit_logistic,
    log_loss,
    popularity_top_k,
    roc_auc,
    roc_curve,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _pairwise_auc(scores: list[float], labels: list[bool]) -> float:
    positives = [s for s, y in zip(scores, labels, strict=True) if y]
    negatives = [s for s, y in zip(scores, labels, strict=True) if not y]
    credit = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives)
    return credit / (len(positives) * len(negatives))


# Few distinct scores, so ties are common.
_examples = st.lists(
    st.tuples(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9, 1.0, -3.0]), st.booleans()),
    min_size=2,
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(_examples)
def test_auc_equals_the_pairwise_count_with_ties_at_half(
    examples: list[tuple[float, bool]],
) -> None:
    scores = [s for s, _ in examples]
    labels = [y for _, y in examples]
    if all(labels) or not any(labels):
        assert math.isnan(roc_auc(scores, labels))
    else:
        assert roc_auc(scores, labels) == pytest.approx(_pairwise_auc(scores, labels), abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.booleans()), min_size=2, max_size=80))
def test_auc_on_continuous_scores_and_the_curve_agrees(examples: list[tuple[float, bool]]) -> None:
    scores = [s for s, _ in examples]
    labels = [y for _, y in examples]
    if all(labels) or not any(labels):
        return
    auc = roc_auc(scores, labels)
    assert auc == pytest.approx(_pairwise_auc(scores, labels), abs=1e-12)
    fpr, tpr = roc_curve(scores, labels)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert float(np.trapezoid(tpr, fpr)) == pytest.approx(auc, abs=1e-9)  # ties: diagonal steps


def test_base_rate_predicts_before_it_updates() -> None:
    # (positives so far + 1) / (labels so far + 2)
    assert base_rate_scores([True, True, False, False]).tolist() == pytest.approx(
        [1 / 2, 2 / 3, 3 / 4, 3 / 5]
    )
    assert base_rate_scores([]).tolist() == []


def test_popularity_is_the_bucket_rate_with_one_pseudo_example_at_the_overall_rate() -> None:
    buckets = [0, 0, 1, 0, 1]
    labels = [True, True, False, False, False]
    overall = [1 / 2, 2 / 3, 3 / 4, 3 / 5, 3 / 6]
    expected = [
        overall[0],  # bucket 0 unseen: the overall rate
        (1 + overall[1]) / 2,  # bucket 0: 1 of 1
        overall[2],  # bucket 1 unseen
        (2 + overall[3]) / 3,  # bucket 0: 2 of 2
        (0 + overall[4]) / 2,  # bucket 1: 0 of 1
    ]
    assert bucket_rate_scores(buckets, labels).tolist() == pytest.approx(expected)


def test_category_popularity_ranks_by_count_so_far_ties_by_first_seen() -> None:
    labels = ["shoes", "books", "books", "toys", "shoes", "shoes"]
    assert popularity_top_k(labels, k=2) == [
        (),
        ("shoes",),
        ("shoes", "books"),
        ("books", "shoes"),
        ("books", "shoes"),
        ("shoes", "books"),
    ]


def test_next_category_rates_count_hits_after_the_warm_up() -> None:
    log = evaluate.CategoryLog(
        users=["u"] * 4,
        top=[("a",), ("b", "a"), ("a", "b", "c"), ()],
        labels=["a", "a", "a", "a"],
    )
    figures = evaluate.evaluate_category(log, warmup_fraction=0.25)
    assert figures["online"] == {"top1": pytest.approx(1 / 3), "top3": pytest.approx(2 / 3)}
    # popularity before examples 2..4: (a), (a), (a)
    assert figures["popularity"] == {"top1": 1.0, "top3": 1.0}


def test_batch_logistic_recovers_a_planted_linear_rule() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4000, 6)) * [1.0, 10.0, 0.1, 1.0, 1.0, 1.0] + [0, 50, 0, 0, 0, 0]
    z = (x - [0, 50, 0, 0, 0, 0]) / [1.0, 10.0, 0.1, 1.0, 1.0, 1.0]
    logit = 2.0 * z[:, 0] - 1.5 * z[:, 1] + 1.0 * z[:, 2] - 0.5
    y = rng.random(4000) < 1 / (1 + np.exp(-logit))
    fit = fit_logistic(x[:2000], y[:2000])
    scores = fit.predict(x[2000:])
    assert roc_auc(scores, y[2000:]) > 0.9
    assert np.sign(fit.weights[:3]).tolist() == [1.0, -1.0, 1.0]
    assert abs(fit.weights[3:]).max() < 0.2  # noise inputs stay near zero
    assert log_loss(scores, y[2000:]) < log_loss(np.full(2000, y[:2000].mean()), y[2000:])
    again = fit_logistic(x[:2000], y[:2000])
    assert again.weights.tolist() == fit.weights.tolist()  # deterministic


def test_end_to_end_on_a_small_synthetic_log(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    # One partition: one model learns from every example, so it is past its cold start soon.
    args = ["--synthetic", "80,2,2", "--partitions", "1"]
    assert evaluate.main([*args, "--out", str(out)]) == 0
    for name in (
        "report.md",
        "over_time.png",
        "roc_conversion.png",
        "roc_abandonment.png",
        "calibration_conversion.png",
        "calibration_abandonment.png",
    ):
        assert (out / name).is_file(), name
        if name.endswith(".png"):
            assert (out / name).read_bytes()[:8] == PNG_SIGNATURE
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"data", "targets"}
    assert set(metrics["targets"]) == {"conversion", "abandonment", "next_category"}
    conversion = metrics["targets"]["conversion"]
    assert set(conversion) >= {"examples", "positives", "online", "calibration", "baselines"}
    assert set(conversion["baselines"]) == {
        "base_rate",
        "popularity",
        "batch_logistic",
        "planted_truth",
    }
    assert len(conversion["calibration"]) == 10
    assert conversion["positives"] > 0
    assert conversion["online"]["after_warmup"]["auc"] > 0.5
    report = (out / "report.md").read_text()
    assert "Verdict (conversion)" in report and "](roc_conversion.png)" in report
    # Deterministic: a second run writes the same figures.
    again = tmp_path / "again"
    assert evaluate.main([*args, "--out", str(again)]) == 0
    assert (again / "metrics.json").read_bytes() == (out / "metrics.json").read_bytes()


def test_user_mistakes_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        evaluate.main([str(tmp_path / "missing.ndjson")])
    assert exc.value.code == 2
    capsys.readouterr()
    assert evaluate.main(["--synthetic", "ten,3,1", "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    not_rees = tmp_path / "not.csv"
    not_rees.write_text("a,b,c\n1,2,3\n")
    assert evaluate.main(["--rees46", str(not_rees), "--out", str(tmp_path / "y")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    garbage = tmp_path / "garbage.ndjson"
    garbage.write_bytes(b"not json\n{}\n")
    assert evaluate.main([str(garbage), "--out", str(tmp_path / "z")]) == 2
    assert capsys.readouterr().err.startswith("error: no valid events")

"""The main job's summary: the models' online validation and the experiment, as a worker's
``/stats.json`` reports them (scripts.run)."""

from __future__ import annotations

from typing import Any

import orjson

from scripts.run import _learning, explanation_lines
from stream import StepConfig
from stream.replay import replay
from stream.transparency import describe
from tests.support import viewed_event


def test_the_summary_reports_model_validation_and_the_experiment() -> None:
    stats: dict[str, Any] = {
        "models": [
            {"partition": 0, "target": "conversion", "count": 1200, "roc_auc": 0.7712},
            {"partition": 1, "target": "conversion", "count": 900, "roc_auc": 0.7013},
            {"partition": 0, "target": "next_category", "count": 800, "k": 3, "top_k": 0.61},
        ],
        "experiment": {
            "holdout": {"settled": 150, "mean_reward": 0.08, "lift": None},
            "champion": {
                "settled": 1300,
                "mean_reward": 0.11,
                "lift": 0.03,
                "lift_low": 0.01,
                "lift_high": 0.05,
            },
        },
    }
    text = "\n".join(_learning(stats))
    assert "conversion       p0 AUC 0.771 (1,200 labels), p1 AUC 0.701 (900 labels)" in text
    assert "next_category    p0 top-3 0.610 (800 labels)" in text
    assert "champion         mean 0.1100  lift +0.0300 [+0.0100, +0.0500]  (1,300 settled)" in text
    assert "holdout          mean 0.0800  baseline  (150 settled)" in text


def test_the_summary_says_when_there_is_nothing_yet() -> None:
    text = "\n".join(_learning({"models": [], "experiment": {}}))
    assert "no label resolved yet" in text and "no decision settled yet" in text
    assert "could not be read" in "\n".join(_learning(None))


def test_the_summary_explains_one_users_last_decision_from_the_transparency_document() -> None:
    # A real document (stream.transparency over a replayed profile), through JSON as served.
    result = replay([viewed_event(i, "u1", f"2024-01-01T00:0{i}:00Z") for i in range(3)])
    doc = orjson.loads(orjson.dumps(describe(result.profiles["u1"], StepConfig())))
    last = result.decisions[-1]
    lines = explanation_lines("u1", doc)
    assert lines[0].endswith("'u1'")
    assert lines[1] == (
        f"    last decision    {last.action} ({last.variant}): "
        + "; ".join(r.detail for r in last.reasons[:2])
    )
    assert lines[2].startswith("    holds            3 events counted, ")
    assert lines[2].endswith("consent None")

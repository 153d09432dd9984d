"""scripts.modelbench runs end to end on tiny settings and prints one row per case."""

from __future__ import annotations

import pytest

from scripts import modelbench


def test_modelbench_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--dim", "4", "--classes", "3", "--calls", "20", "--rounds", "1"]
    assert modelbench.main(argv) == 0
    out = capsys.readouterr().out
    for case in ("scaler learn_transform", "logistic learn", "softmax predict (3 cl.)"):
        line = next(line for line in out.splitlines() if line.startswith(case))
        assert len(line.split()) >= 4  # ours and River's figures and the ratio
    assert "dot: math.fsum(map(mul))" in out


def test_time_per_call_is_the_best_round() -> None:
    calls: list[int] = []
    assert modelbench.time_per_call(calls.append, 5, 3) >= 0.0
    assert calls == [5, 5, 5]

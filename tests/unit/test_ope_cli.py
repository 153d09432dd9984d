"""python -m scripts.ope: NDJSON decision and reward logs in, an estimates table (and JSON) out;
user mistakes exit 2 with the file and the line, without a traceback."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest

from scripts import ope
from tests.unit.test_ope import decision, reward


def _records() -> list[dict[str, Any]]:
    """Uniform logging over remind_cart / none (propensity 0.5): remind_cart earns 1, none 0;
    one duplicate decision, one decision without reward, one record of another schema."""
    out: list[dict[str, Any]] = []
    for i in range(40):
        action = "remind_cart" if i % 2 else "none"
        out.append(decision(f"d{i}", action, propensity=0.5))
        out.append(reward(f"d{i}", 1.0 if action == "remind_cart" else 0.0))
    out.append(decision("d3", "remind_cart", propensity=0.5))  # delivered twice
    out.append(decision("sticky", "remind_cart", propensity=1.0))  # no reward
    out.append({"schema": "decision.v2", "decision_id": "old"})
    return out


def _write(path: Path, records: list[dict[str, Any]], extra: bytes = b"") -> Path:
    data = b"".join(orjson.dumps(r) + b"\n" for r in records) + extra
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def test_estimates_a_mixed_log_and_writes_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _write(tmp_path / "log.ndjson", _records())
    out = tmp_path / "ope.json"
    specs = ["always:remind_cart", "priority", "uniform", "logging"]
    argv = [str(log), *[arg for spec in specs for arg in ("--policy", spec)], "--json", str(out)]
    assert ope.main(argv) == 0
    printed = capsys.readouterr().out
    assert "always:remind_cart" in printed and "SNIPS" in printed and "95% interval" in printed
    assert "observed mean reward: 0.5" in printed
    doc = orjson.loads(out.read_bytes())
    assert doc["join"] == {
        "evaluable": 40,
        "decisions": 41,
        "rewards": 40,
        "decisions_without_reward": 1,
        "rewards_without_decision": 0,
        "duplicate_decisions": 1,
        "duplicate_rewards": 0,
    }
    values = {(r["policy"], r["estimator"]): r["value"] for r in doc["estimates"]}
    assert values[("always:remind_cart", "IPS")] == 1.0
    assert values[("always:remind_cart", "SNIPS")] == 1.0
    assert values[("priority", "SNIPS")] == 1.0  # remind_cart comes before the default none
    assert values[("uniform", "IPS")] == values[("logging (observed)", "mean")] == 0.5
    assert values[("logging", "IPS")] == 0.5


def test_decisions_and_rewards_in_two_files_one_gzipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = _records()
    decisions = _write(tmp_path / "decisions.ndjson.gz", records[0::2])
    rewards = _write(tmp_path / "rewards.ndjson", records[1::2])
    out = tmp_path / "ope.json"
    argv = [str(decisions), str(rewards), "--policy", "greedy", "--json", str(out)]
    assert ope.main([*argv, "--variant", "champion"]) == 0
    assert orjson.loads(out.read_bytes())["join"]["evaluable"] == 40
    assert ope.main([*argv, "--variant", "holdout"]) == 2
    assert "no decision of variant 'holdout'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (b'{"schema": "reward.v1", "decision_id": \n', "line 84: not JSON"),
        (b"[1, 2]\n", "line 84: not a JSON object"),
        (b'{"schema": "reward.v1", "decision_id": "x"}\n', "line 84: reward 'x': 'reward'"),
    ],
)
def test_a_bad_line_exits_2_naming_the_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: bytes, message: str
) -> None:
    log = _write(tmp_path / "log.ndjson", _records(), extra)
    assert ope.main([str(log), "--policy", "uniform"]) == 2
    err = capsys.readouterr().err
    assert f"{log}: {message}" in err
    assert "Traceback" not in err


def test_user_mistakes_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = _write(tmp_path / "log.ndjson", _records())
    for argv in (
        [str(tmp_path / "missing.ndjson"), "--policy", "uniform"],
        [str(log), "--policy", "best"],
        [str(log)],
    ):
        with pytest.raises(SystemExit) as exc:
            ope.main(argv)
        assert exc.value.code == 2
    assert "unknown policy 'best'" in capsys.readouterr().err
    broken = tmp_path / "broken.ndjson.gz"
    broken.write_bytes(b"not gzip")
    assert ope.main([str(broken), "--policy", "uniform"]) == 2
    only_decisions = _write(tmp_path / "decisions.ndjson", _records()[0::2])
    assert ope.main([str(only_decisions), "--policy", "uniform"]) == 2
    assert "no decision has a reward" in capsys.readouterr().err

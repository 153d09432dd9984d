"""python -m scripts.replay, offline: decisions out, and --check against golden files."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from scripts import importer, replay
from scripts.golden import DATA_DIR, GOLDEN_DIR, golden_path
from stream.synthetic import GeneratorConfig, generate_events
from tests.support import INVALID_EVENTS

needs_data = pytest.mark.skipif(not (DATA_DIR / "taobao").is_dir(), reason="no ../shared/data")


def _log(tmp_path: Path, name: str = "log.ndjson") -> Path:
    events = generate_events(GeneratorConfig(seed=3, users=20, days=1.0))
    lines = [orjson.dumps(e) for _, e in zip(range(300), events, strict=False)]
    lines[10:10] = [raw for raw, _ in INVALID_EVENTS[:3]]
    lines.append(lines[5])  # a duplicate: applied once, one decision
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_offline_writes_one_canonical_decision_per_valid_event(tmp_path: Path) -> None:
    out = tmp_path / "decisions.ndjson"
    assert replay.main([str(_log(tmp_path)), "--offline", "--out", str(out)]) == 0
    decisions = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(decisions) == 300
    assert all("processing" not in d for d in decisions)


def test_check_passes_on_itself_and_fails_on_a_change(tmp_path: Path) -> None:
    log, out = _log(tmp_path), tmp_path / "decisions.ndjson"
    replay.main([str(log), "--offline", "--out", str(out)])
    assert replay.main([str(log), "--offline", "--check", str(out)]) == 0
    golden = tmp_path / "golden.ndjson.gz"
    golden.write_bytes(gzip.compress(out.read_bytes().replace(b'"none"', b'"nada"', 1)))
    assert replay.main([str(log), "--offline", "--check", str(golden)]) == 1


def test_user_mistakes_exit_2_without_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        replay.main([str(tmp_path / "missing.ndjson"), "--offline"])
    assert exc.value.code == 2
    bad = tmp_path / "bad.ndjson.gz"
    bad.write_bytes(b"not gzip")
    assert replay.main([str(bad), "--offline"]) == 2


def test_stored_properties_replays_under_that_allow_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, full, kept = _log(tmp_path), tmp_path / "full.ndjson", tmp_path / "kept.ndjson"
    assert replay.main([str(log), "--offline", "--out", str(full)]) == 0
    assert replay.main([str(log), "--offline", "--out", str(kept), "--stored-properties=sku"]) == 0
    assert kept.read_bytes() != full.read_bytes()  # the allow-list reached the step
    capsys.readouterr()
    assert replay.main([str(log), "--offline", "--stored-properties", "price,brnad,"]) == 2
    err = capsys.readouterr().err
    assert "no feature reads brnad" in err and err.count("\n") == 1  # one line, no traceback
    with pytest.raises(SystemExit) as exc:  # through Kafka, the worker's setting applies
        replay.main([str(log), "--stored-properties", "price"])
    assert exc.value.code == 2


@needs_data
def test_the_imported_real_sample_replays_to_its_golden_file(tmp_path: Path) -> None:
    log = tmp_path / "taobao.ndjson"
    assert (
        importer.main(["taobao", str(DATA_DIR / "taobao" / "user_behavior.csv"), "--out", str(log)])
        == 0
    )
    check = golden_path("taobao", GOLDEN_DIR)
    assert replay.main([str(log), "--offline", "--check", str(check)]) == 0

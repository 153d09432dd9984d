"""Golden replays: the real samples' decisions must match tests/golden byte for byte."""

from __future__ import annotations

import functools
from pathlib import Path

import orjson
import pytest

from scripts import golden
from scripts.golden import (
    GOLDEN_DIR,
    KINDS,
    SAMPLES,
    decisions_file,
    first_difference,
    golden_bytes,
    golden_path,
    main,
    read_golden,
    write_golden,
)
from scripts.replay import offline_decisions
from stream import StepConfig
from stream.replay import replay
from stream.synthetic import GeneratorConfig, generate_events

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not all((DATA / rel).is_file() for rel, _ in SAMPLES.values()),
    reason=f"real samples not found under {DATA} (shared data is outside the repository)",
)
#: Each sample is replayed once per test session (a replay takes a second or two).
replayed = functools.cache(golden_bytes)


@pytest.fixture
def cached_replays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(golden, "golden_bytes", replayed)


@needs_data
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_replay_equals_golden_file(name: str, kind: str) -> None:
    expected = read_golden(golden_path(name, kind=kind))
    difference = first_difference(expected, replayed(name, DATA)[kind])
    assert difference is None, f"{name} {kind}: {difference}\n(see tests/golden/README.md)"


@needs_data
@pytest.mark.usefixtures("cached_replays")
def test_check_command_passes_on_the_committed_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{name} {kind}: ok" for name in SAMPLES for kind in KINDS
    ]


def test_one_character_change_is_detected() -> None:
    golden = read_golden(golden_path("taobao"))
    lines = golden.splitlines(keepends=True)
    target = len(lines) // 2
    changed = lines[target].replace(b'"score":', b'"scorf":', 1)
    assert changed != lines[target]
    tampered = b"".join([*lines[:target], changed, *lines[target + 1 :]])

    report = first_difference(golden, tampered)

    assert report is not None
    head, golden_line, replay_line = report.splitlines()
    assert head.startswith(f"line {target + 1}, column ")
    assert "scorf" in replay_line and "scorf" not in golden_line
    assert len(golden_line) < 200 and len(replay_line) < 200, "long lines are cut"


@needs_data
@pytest.mark.usefixtures("cached_replays")
def test_check_exits_1_on_a_tampered_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in SAMPLES:
        for kind in KINDS:
            content = read_golden(golden_path(name, GOLDEN_DIR, kind))
            write_golden(golden_path(name, tmp_path, kind), content)
    first = golden_path("rees46", tmp_path)
    write_golden(first, read_golden(first).replace(b"nba-v1", b"nba-v0", 1))

    assert main(["--check", "--golden", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "rees46 decisions: MISMATCH line 1, column " in out
    assert "rees46 features: ok" in out
    assert "taobao decisions: ok" in out


def test_missing_data_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check", "--data", str(tmp_path)]) == 2
    assert "sample data not found" in capsys.readouterr().err


def test_golden_files_and_offline_replay_write_the_same_decisions_file() -> None:
    """An event repeated beyond the dedupe window is applied again under the same decision id:
    both writers keep the first decision per id, so ``replay --offline --check`` agrees with
    the golden files on such logs too."""
    events = list(generate_events(GeneratorConfig(seed=5, users=1, days=3.0)))
    known = [e for e in events if e.get("userId")]  # after login: one profile, one key
    assert len(known) > StepConfig().dedupe_window + 1
    lines = [orjson.dumps(e) for e in events] + [orjson.dumps(known[0])]
    decisions = replay(lines, StepConfig()).decisions
    ids = [d.decision_id for d in decisions]
    assert len(ids) == len(lines) and len(set(ids)) == len(lines) - 1  # the repeat was applied

    written = decisions_file(decisions)

    assert written == offline_decisions(lines)
    assert written.count(b"\n") == len(lines) - 1
    assert written.splitlines()[0] == decisions[0].to_bytes()

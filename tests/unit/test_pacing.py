"""Replay pacing on a fake clock: the schedule by event time, drift correction, untimed lines."""

from __future__ import annotations

import argparse
import gzip
from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest

from scripts import replay
from scripts.pacing import follow, parse_pace, plan
from stream.timeutil import ms_to_iso

T0 = 1_700_000_000_000


class FakeClock:
    """Monotonic time that moves only when slept (plus ``oversleep_s``) or when a send costs."""

    def __init__(self, oversleep_s: float = 0.0, send_cost_s: float = 0.0) -> None:
        self.now = 100.0  # not 0: the schedule must be relative to the start
        self.oversleep_s = oversleep_s
        self.send_cost_s = send_cost_s
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds + self.oversleep_s


def _line(offset_ms: int | None, field: str = "timestamp", n: int = 0) -> bytes:
    doc: dict[str, object] = {"type": "track", "event": "E", "messageId": f"m{n}", "userId": "u"}
    if offset_ms is not None:
        doc[field] = ms_to_iso(T0 + offset_ms)
    return orjson.dumps(doc)


def _replay(
    lines: Sequence[bytes], speed: float, clock: FakeClock
) -> tuple[list[float], float, list[str]]:
    """Follow the plan on the clock: (send times after the start, lateness, calls in order)."""
    start, sent_at, calls = clock.now, [], []

    def send(raw: bytes) -> None:
        sent_at.append(round(clock.now - start, 6))
        calls.append("send")
        clock.now += clock.send_cost_s

    schedule = plan(lines, range(1, len(lines) + 1), speed)
    late = follow(schedule.due_s, lines, send, lambda: calls.append("flush"), clock)
    return sent_at, late, calls


def test_each_gap_in_event_time_is_waited_divided_by_the_speed() -> None:
    lines = [_line(ms, n=i) for i, ms in enumerate([0, 1_000, 1_500, 4_000, 4_000])]
    sent_at, late, calls = _replay(lines, 10.0, FakeClock())
    assert sent_at == [0.0, 0.1, 0.15, 0.4, 0.4]
    assert late == pytest.approx(0.0, abs=1e-9)
    # flushed before each wait (so nothing lingers in the producer while we sleep) and at the end
    assert calls == ["send", "flush", "send", "flush", "send", "flush", "send", "send", "flush"]


def test_realtime_uses_timestamp_else_original_timestamp_else_received_at() -> None:
    lines = [
        _line(0),
        _line(2_000, "originalTimestamp"),
        _line(5_000, "receivedAt"),
        _line(6_000, "timestamp"),
    ]
    sent_at, _, _ = _replay(lines, 1.0, FakeClock())
    assert sent_at == [0.0, 2.0, 5.0, 6.0]


def test_lines_without_a_readable_time_go_at_once_and_are_counted_by_line_number() -> None:
    lines = [
        _line(0),
        b"not json at all",
        _line(3_000),
        orjson.dumps({"timestamp": "yesterday", "userId": "u"}),
        orjson.dumps({"timestamp": 1_700_000_000, "userId": "u"}),  # a number, not ISO-8601
        _line(None),
        _line(4_000),
    ]
    schedule = plan(lines, [1, 3, 4, 7, 8, 9, 12], 1.0)
    assert schedule.untimed_lines == [3, 7, 8, 9]
    assert schedule.due_s == [0.0, 0.0, 3.0, 3.0, 3.0, 3.0, 4.0]


def test_an_older_event_goes_at_once_and_the_next_gap_counts_from_the_latest_time() -> None:
    lines = [_line(ms, n=i) for i, ms in enumerate([0, 10_000, 4_000, 12_000])]
    sent_at, _, _ = _replay(lines, 2.0, FakeClock())
    assert sent_at == [0.0, 5.0, 5.0, 6.0]  # the whole replay: the span (12 s) / 2


def test_oversleeping_and_slow_sends_do_not_accumulate_as_drift() -> None:
    lines = [_line(i * 100, n=i) for i in range(200)]  # 20 s of event time, 0.1 s gaps
    clock = FakeClock(oversleep_s=0.004, send_cost_s=0.002)
    sent_at, late, _ = _replay(lines, 1.0, clock)
    # Sleeping each gap would end 200 * 6 ms = 1.2 s late; by schedule each send is at most
    # one oversleep late, and the sleeps shrink to make up for the send cost.
    assert all(0 <= at - i * 0.1 <= 0.0041 for i, at in enumerate(sent_at))
    assert late == pytest.approx(0.004)  # reported: the worst lateness, one oversleep
    assert clock.sleeps[1] == pytest.approx(0.1 - 0.004 - 0.002)


def test_a_replay_that_falls_behind_catches_up_without_sleeping() -> None:
    lines = [_line(i * 100, n=i) for i in range(10)]  # 10 ms apart at 10x
    clock = FakeClock(send_cost_s=0.025)  # each send takes longer than the gap
    sent_at, late, _ = _replay(lines, 10.0, clock)
    assert clock.sleeps == []
    assert sent_at == pytest.approx([i * 0.025 for i in range(10)])
    assert late == pytest.approx(9 * 0.025 - 9 * 0.01)


@pytest.mark.parametrize(
    ("text", "speed"), [("fast", None), ("realtime", 1.0), ("10x", 10.0), ("2.5x", 2.5)]
)
def test_pace_modes(text: str, speed: float | None) -> None:
    assert parse_pace(text) == speed


@pytest.mark.parametrize("text", ["10", "0x", "-2x", "x", "ten x", "real-time", "1e3x"])
def test_bad_paces_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected fast, realtime"):
        parse_pace(text)


def _log(tmp_path: Path) -> Path:
    path = tmp_path / "log.ndjson"
    path.write_bytes(b"\n".join(_line(i * 1_000, n=i) for i in range(5)) + b"\n")
    return path


@pytest.mark.parametrize(
    "args", [["--pace", "bogus"], ["--pace", "0x"], ["--offline", "--pace", "10x"]]
)
def test_pace_mistakes_exit_2_with_a_message(
    tmp_path: Path, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        replay.main([str(_log(tmp_path)), *args])
    assert exc.value.code == 2
    assert "--pace" in capsys.readouterr().err


def test_a_truncated_gzip_log_is_reported_with_its_line_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [_line(i, n=i) for i in range(2_000)]
    data = gzip.compress(b"\n".join(lines) + b"\n")
    bad = tmp_path / "cut.ndjson.gz"
    bad.write_bytes(data[: len(data) // 2])
    assert replay.main([str(bad), "--offline"]) == 2
    err = capsys.readouterr().err
    assert f"cannot read {bad}: line " in err
    assert "Traceback" not in err
    number = int(err.split(": line ")[1].split(":")[0])
    assert 1 < number < 2_000

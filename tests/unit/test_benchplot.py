"""The benchmark's plot, drawn from a small synthetic report (no broker, no measurement)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from scripts import bench
from scripts.benchplot import ReportError, render_plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _report() -> dict[str, Any]:
    peak = 3_000
    loads = [
        {
            "offered_events_per_s": peak * fraction,
            "fraction_of_peak": fraction,
            "events": 100,
            "complete": fraction < 0.9,
            "achieved_events_per_s": round(peak * fraction),
            "latency_ms": {"p50": p50, "p95": p50 * 2, "p99": p50 * 3},
        }
        for fraction, p50 in [(0.3, 40.0), (0.5, 60.0), (0.7, 300.0), (0.9, 900.0)]
    ]
    return {
        "pure_step": {"median_events_per_s": 11_155},
        "end_to_end": {
            "peak": {"achieved_events_per_s": peak, "offered_events_per_s": None},
            "loads": loads[::-1],  # in any order
            "partitions": 4,
            "workers": 2,
        },
    }


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    assert data.endswith(b"IEND\xaeB`\x82")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_a_report_renders_to_a_png_of_plausible_size(tmp_path: Path) -> None:
    path = render_plot(_report(), tmp_path / "nested" / "bench.png")
    assert _png_size(path) == (800, 500)
    assert 10_000 < path.stat().st_size < 500_000  # curves, labels and text, not an empty canvas


def test_plot_only_draws_next_to_an_existing_report(tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    report.write_text(json.dumps(_report()))
    assert bench.main(["--plot-only", str(report)]) == 0
    assert _png_size(tmp_path / "bench.png") == (800, 500)


@pytest.mark.parametrize(
    "report",
    [
        {"pure_step": {"median_events_per_s": 1}},  # run with --skip-e2e
        {"end_to_end": {"peak": {"achieved_events_per_s": 1}, "loads": []}},
        {"end_to_end": {"peak": {}, "loads": []}},
        [1, 2, 3],
    ],
)
def test_reports_without_loads_are_refused_with_a_reason(
    tmp_path: Path, report: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ReportError):
        render_plot(report, tmp_path / "x.png")
    source = tmp_path / "bench.json"
    source.write_text(json.dumps(report))
    assert bench.main(["--plot-only", str(source)]) == 2
    assert "no plot: " in capsys.readouterr().err
    assert not (tmp_path / "bench.png").exists()


def test_plot_only_of_a_missing_or_broken_report_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(["--plot-only", str(tmp_path / "missing.json")]) == 2
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert bench.main(["--plot-only", str(broken)]) == 2
    assert capsys.readouterr().err.count("cannot read the report") == 2

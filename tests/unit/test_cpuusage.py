"""scripts.cpuusage and the benchmark's CPU split: where an end-to-end run's cores went."""

from __future__ import annotations

import os
import subprocess
import sys

from scripts.bench import _cpu_split
from scripts.cpuusage import CpuMeter, cpu_seconds


def test_a_busy_process_is_charged_and_a_gone_one_reads_as_unknown() -> None:
    busy = subprocess.run(
        [sys.executable, "-c", "import os; sum(range(30_000_000)); print(os.getpid())"],
        capture_output=True,
        check=True,
    )
    assert cpu_seconds(int(busy.stdout)) is None, "the process is gone"
    meter = CpuMeter({"me": os.getpid(), "gone": int(busy.stdout)})
    before = cpu_seconds(os.getpid())
    sum(range(5_000_000))
    after = cpu_seconds(os.getpid())
    assert before is not None and after is not None and after > before
    used = meter.used()
    assert used["gone"] is None
    assert used["me"] is not None and used["me"] > 0.0


def test_the_split_is_per_event_with_workers_summed_and_unknowns_left_out() -> None:
    used = {"load driver": 2.0, "broker": 1.0, "worker 0": 3.0, "worker 1": None}
    split = _cpu_split(used, events=4_000, seconds=3.0)
    assert split == {
        "ms_per_event": {"load driver": 0.5, "broker": 0.25, "worker 0": 0.75, "worker 1": None},
        "workers_ms_per_event": 0.75,
        "total_ms_per_event": 1.5,
        "cores_busy": 2.0,
    }

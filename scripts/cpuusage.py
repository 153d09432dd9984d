"""Where an end-to-end run's CPU went: seconds of CPU per process, read from ``/proc`` (Linux).

The broker, the workers and the load driver share the machine's cores, so the sustained rate
is bounded by the CPU one event costs all of them together. Splitting that cost by process says
which part a faster step would speed up, and which it would not.

    >>> meter = CpuMeter({"this process": os.getpid()})
    >>> sum(range(200_000)) > 0
    True
    >>> used = meter.used()
    >>> used["this process"] >= 0.0
    True
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CpuMeter", "cpu_seconds"]

_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds of process ``pid`` (all its threads) so far; ``None`` when
    it cannot be read (gone, or no ``/proc``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _TICKS_PER_S


class CpuMeter:
    """CPU seconds each named process used since the meter was made; a process that cannot be
    read at either end counts as ``None``."""

    def __init__(self, processes: dict[str, int]) -> None:
        self._processes = dict(processes)
        self._start = {name: cpu_seconds(pid) for name, pid in self._processes.items()}

    def used(self) -> dict[str, float | None]:
        used: dict[str, float | None] = {}
        for name, pid in self._processes.items():
            start, now = self._start[name], cpu_seconds(pid)
            used[name] = None if start is None or now is None else round(now - start, 3)
        return used

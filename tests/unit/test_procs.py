"""Process control used by scripts and tests: stop by PID, escalate to SIGKILL, never hang."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from scripts.procs import free_port, pid_alive, stop_process, wait_for_port

_IGNORE_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"


def test_stop_process_terminates_a_cooperative_child() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert pid_alive(child.pid)
    assert stop_process(child, timeout_s=5.0) is False
    assert child.returncode == -signal.SIGTERM


def test_stop_process_kills_a_child_that_ignores_sigterm() -> None:
    child = subprocess.Popen([sys.executable, "-c", _IGNORE_TERM])
    time.sleep(0.3)  # let it install the handler
    started = time.monotonic()
    assert stop_process(child, timeout_s=0.5) is True
    assert child.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 5.0


def test_wait_for_port_times_out_when_nothing_listens() -> None:
    with pytest.raises(TimeoutError):
        wait_for_port("127.0.0.1", free_port(), timeout_s=0.3)


def test_wait_for_port_reports_a_child_that_died() -> None:
    child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    child.wait()
    with pytest.raises(RuntimeError, match="exited with 3"):
        wait_for_port("127.0.0.1", free_port(), timeout_s=5.0, proc=child)

"""Process helpers for operator scripts and tests: free ports, readiness, stopping by PID.

Processes are stopped by the PID we started them with (never by name): SIGTERM, a bounded wait,
then SIGKILL. Every helper has a timeout, so nothing here can hang forever.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = [
    "exit_on_termination_signals",
    "free_port",
    "pid_alive",
    "read_pid",
    "stop_pid",
    "stop_process",
    "wait_for_port",
]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    host: str, port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until something accepts TCP connections on ``host:port``.

    Raises ``TimeoutError`` after ``timeout_s``, or ``RuntimeError`` if ``proc`` exits first.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.pid} exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s:.0f}s")


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists (and is not a zombie we could reap)."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_pid(pid: int, timeout_s: float = 10.0, sig: int = signal.SIGTERM) -> bool:
    """Send ``sig`` to ``pid``, wait up to ``timeout_s``, then SIGKILL. True if it had to kill.

    For a process known only by its PID (e.g. from a PID file); use :func:`stop_process` for a
    child started in this process.
    """
    if not pid_alive(pid):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return False
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> bool:
    """Stop a child we hold: SIGTERM, wait up to ``timeout_s``, then SIGKILL. True if killed.

    Children are waited for through their ``Popen`` (not :func:`pid_alive`, which would reap
    them behind ``Popen``'s back and lose their exit status).
    """
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
        return False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5.0)
        return True


def read_pid(path: Path) -> int | None:
    """The PID stored in a PID file, or None when the file is absent or unreadable."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def exit_on_termination_signals() -> None:
    """Turn SIGTERM and SIGHUP into ``SystemExit`` so ``with``/``finally`` blocks stop what the
    command started (its children run in their own sessions and would otherwise survive)."""

    def raise_exit(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, raise_exit)

"""Start and stop worker and collector processes (``python -m agents worker|collector``) for
scripts and tests.

A worker is a child process with its own environment (``LIVEPROFILES_*``) and log file. It is
ready when Faust logs that recovery finished and the worker is ready; it is stopped by PID
(SIGTERM, a bounded wait, then SIGKILL) and never by name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from scripts.procs import stop_process, wait_for_port

__all__ = ["READY_MARKER", "CollectorProcess", "WorkerProcess"]

#: What Faust logs (at INFO) once the worker has recovered its tables and started consuming.
READY_MARKER = b"[^Worker]: Ready"


def _spawn(command: str, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``python -m agents COMMAND`` in its own session (a terminal's Ctrl-C is for the parent,
    which stops it by PID), output appended to ``log_path``, INFO logs unless ``env`` says."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "agents", command],
            env={**os.environ, "LIVEPROFILES_LOG_LEVEL": "info", **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


@dataclass
class WorkerProcess:
    """One worker process; ``env`` holds its ``LIVEPROFILES_*`` settings."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    _log_offset: int = field(default=0, repr=False)

    def start(self, timeout_s: float = 90.0, wait_ready: bool = True) -> WorkerProcess:
        """Start the worker; by default wait until it is ready (raises ``TimeoutError``)."""
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.process = _spawn("worker", self.env, self.log_path)
        if wait_ready:
            try:
                self.wait_ready(timeout_s)
            except BaseException:
                self.stop()
                raise
        return self

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._new_log().find(READY_MARKER) >= 0:
                return
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"worker exited early; see {self.log_path}")
            time.sleep(0.1)
        raise TimeoutError(f"worker not ready after {timeout_s:.0f}s; see {self.log_path}")

    def _new_log(self) -> bytes:
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            return log.read()

    def stop(self, timeout_s: float = 20.0) -> bool:
        """Stop gracefully (SIGTERM, then SIGKILL after ``timeout_s``); True if it was killed."""
        if self.process is None:
            return False
        killed = stop_process(self.process, timeout_s)
        self.process = None
        return killed

    def kill(self) -> None:
        """SIGKILL at once: a crash, as fault tests need it."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10.0)
            self.process = None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def web_url(self) -> str | None:
        """Base URL of the worker's web server (``/metrics``, ``/dashboard``), if enabled."""
        if self.env.get("LIVEPROFILES_WEB_ENABLED", "").lower() not in ("1", "true", "yes"):
            return None
        host = self.env.get("LIVEPROFILES_WEB_HOST", "127.0.0.1")
        return f"http://{host}:{self.env.get('LIVEPROFILES_WEB_PORT', '6066')}"


@dataclass
class CollectorProcess:
    """One HTTP collector (``python -m agents collector``); ``env`` holds its ``LIVEPROFILES_*``
    settings. It serves (with 503s) even while the broker is unreachable, so "started" means its
    port accepts connections, and "ready" that ``/health`` says it is connected to the broker."""

    env: dict[str, str]
    log_path: Path
    port: int
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0, wait_connected: bool = True) -> CollectorProcess:
        """Start it; by default wait until it is connected to the broker (``TimeoutError``)."""
        address = {
            "LIVEPROFILES_COLLECTOR_HOST": self.host,
            "LIVEPROFILES_COLLECTOR_PORT": str(self.port),
        }
        self.process = _spawn("collector", {**self.env, **address}, self.log_path)
        try:
            wait_for_port(self.host, self.port, timeout_s, self.process)
            if wait_connected:
                self._wait_healthy(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2.0) as answer:
                    if answer.status == 200:
                        return
            except OSError:  # 503 (HTTPError) while connecting, or a refused connection
                pass
            time.sleep(0.1)
        raise TimeoutError(f"collector not connected after {timeout_s:.0f}s; see {self.log_path}")

    def stop(self, timeout_s: float = 10.0) -> bool:
        """SIGTERM (the collector flushes what is in flight), then SIGKILL after ``timeout_s``."""
        if self.process is None:
            return False
        killed = stop_process(self.process, timeout_s)
        self.process = None
        return killed

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

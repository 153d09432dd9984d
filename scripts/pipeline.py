"""A whole local pipeline for the main job and the benchmark: broker, topics, workers, optionally
the HTTP collector, and a watcher that timestamps decisions as they arrive.

Everything it starts it stops, by PID, when the ``with`` block ends (also on Ctrl-C).
"""

from __future__ import annotations

import secrets
import shutil
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import orjson
from kafka import KafkaConsumer

from agents.admin import ensure_topics
from agents.settings import Settings
from scripts.broker import EmbeddedBroker
from scripts.launch import CollectorProcess, WorkerProcess
from scripts.procs import free_port

__all__ = ["DecisionWatcher", "LocalPipeline", "now_ms"]


def now_ms() -> int:
    """Wall-clock epoch milliseconds (produce and arrival stamps are taken in one process)."""
    return time.time_ns() // 1_000_000


@dataclass
class LocalPipeline:
    """Embedded broker + topics + ``workers`` workers in one consumer group, and the HTTP
    collector when ``collector`` is set (with a fresh random write key); a context manager that
    cleans up after itself."""

    run_dir: Path = Path(".run")
    partitions: int = 4
    port: int = 0
    workers: int = 1
    collector: bool = False
    #: Enable the first worker's web server (metrics, dashboard) on a free port.
    web: bool = False
    write_key: str = field(default_factory=lambda: "wk-" + secrets.token_hex(8))
    #: Identity stitching (stream.router): producers send to the ingest topic.
    stitch_identities: bool = False
    #: The bearer token of the first worker's privacy API (with ``web``), fresh for each run.
    privacy_token: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    settings: Settings = field(init=False)
    broker: EmbeddedBroker = field(init=False)
    started: list[WorkerProcess] = field(init=False, default_factory=list)
    http: CollectorProcess | None = field(init=False, default=None)

    @property
    def worker(self) -> WorkerProcess:
        """The first worker (the only one by default)."""
        return self.started[0]

    def __enter__(self) -> LocalPipeline:
        port = self.port or free_port()
        self.broker = EmbeddedBroker(port=port, run_dir=self.run_dir)
        state_root = self.run_dir / f"state-{port}"
        # The broker keeps everything in memory, so a new broker means a new, empty state dir.
        shutil.rmtree(state_root, ignore_errors=True)
        self.settings = Settings(
            bootstrap_servers=f"127.0.0.1:{port}",
            partitions=self.partitions,
            data_dir=state_root,
            stitch_identities=self.stitch_identities,
        )
        try:
            self.broker.start()
            ensure_topics(self.settings)
            for index in range(self.workers):
                self._start_worker(port, state_root / f"worker-{index}", index)
            if self.collector:
                self._start_collector(port)
        except BaseException:
            self._stop()
            raise
        return self

    def _start_worker(self, port: int, state_dir: Path, index: int) -> None:
        env = {
            "LIVEPROFILES_BOOTSTRAP_SERVERS": self.settings.bootstrap_servers,
            "LIVEPROFILES_PARTITIONS": str(self.partitions),
            "LIVEPROFILES_DATA_DIR": str(state_dir),
            "LIVEPROFILES_STITCH_IDENTITIES": str(self.stitch_identities).lower(),
        }
        if self.web and index == 0:
            env.update(
                LIVEPROFILES_WEB_ENABLED="true",
                LIVEPROFILES_WEB_PORT=str(free_port()),
                LIVEPROFILES_PRIVACY_TOKENS=f"local-run:{self.privacy_token}",
            )
        worker = WorkerProcess(env=env, log_path=self.run_dir / f"worker-{port}-{index}.log")
        self.started.append(worker)
        worker.start()

    def _start_collector(self, port: int) -> None:
        env = {
            "LIVEPROFILES_BOOTSTRAP_SERVERS": self.settings.bootstrap_servers,
            "LIVEPROFILES_COLLECTOR_WRITE_KEYS": self.write_key,
            "LIVEPROFILES_STITCH_IDENTITIES": str(self.stitch_identities).lower(),
        }
        log_path = self.run_dir / f"collector-{port}.log"
        self.http = CollectorProcess(env=env, log_path=log_path, port=free_port())
        self.http.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        # Nested so that a failure (or a second Ctrl-C) stopping one still stops the others.
        try:
            if self.http is not None:
                self.http.stop()
        finally:
            self._stop_workers_and_broker()

    def _stop_workers_and_broker(self) -> None:
        try:
            for worker in self.started:
                worker.stop(timeout_s=15.0)
        finally:
            try:
                self.broker.stop()
            finally:
                shutil.rmtree(self.settings.data_dir, ignore_errors=True)


class DecisionWatcher(threading.Thread):
    """Consumes the decisions topic in the background and records when each decision arrived."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(name="decision-watcher", daemon=True)
        self._consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=20,
        )
        self._stop_event = threading.Event()
        self._lock = threading.Lock()
        self.arrived_ms: dict[str, int] = {}
        self.actions: Counter[str] = Counter()
        self.variants: Counter[str] = Counter()
        self.latest: list[dict[str, object]] = []
        #: The latest decision for another action than the default one (to explain in a summary).
        self.last_personalized: dict[str, object] | None = None

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                batch = self._consumer.poll(timeout_ms=50)
                arrived = now_ms()
                for records in batch.values():
                    for record in records:
                        self._record(orjson.loads(record.value), arrived)
        finally:
            self._consumer.close()

    def _record(self, decision: dict[str, object], arrived: int) -> None:
        event = decision["event"]
        assert isinstance(event, dict)
        with self._lock:
            self.arrived_ms[str(event["message_id"])] = arrived
            self.actions[str(decision["action"])] += 1
            self.variants[str(decision.get("variant"))] += 1
            self.latest.append(decision)
            if decision["action"] != "none":
                self.last_personalized = decision

    def count(self) -> int:
        with self._lock:
            return len(self.arrived_ms)

    def drain_latest(self) -> list[dict[str, object]]:
        """Decisions that arrived since the last call (for a live display)."""
        with self._lock:
            latest, self.latest = self.latest, []
        return latest

    def wait_for(self, expected: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.count() >= expected:
                return True
            time.sleep(0.02)
        return self.count() >= expected

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10.0)

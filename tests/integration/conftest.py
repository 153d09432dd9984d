"""Fixtures that start a real embedded broker and real worker processes, and stop them by PID;
and the helpers the fault tests share (workers with their own state, a paced sender, reading
decisions until every expected one arrived)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer

from agents.admin import ensure_topics
from agents.settings import Settings
from scripts.broker import EmbeddedBroker
from scripts.kafkaio import consume, new_producer
from scripts.launch import CollectorProcess, WorkerProcess
from scripts.load import Prepared, send_paced
from scripts.procs import free_port

_prefixes = itertools.count(1)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    run_dir = tmp_path_factory.mktemp("broker")
    embedded = EmbeddedBroker(port=free_port(), run_dir=run_dir).start()
    try:
        yield embedded
    finally:
        embedded.stop()


@pytest.fixture
def settings(broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    """Settings for one test: its own topic prefix (so tests share the broker but not topics)."""
    made = Settings(
        bootstrap_servers=broker.bootstrap,
        prefix=f"t{next(_prefixes)}",
        partitions=4,
        data_dir=tmp_path / "state",
    )
    ensure_topics(made)
    return made


#: Starts a worker; keyword arguments are extra ``LIVEPROFILES_*`` settings (without prefix).
WorkerFactory = Callable[..., WorkerProcess]


@pytest.fixture
def start_worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerFactory]:
    """Start workers for ``settings``; every worker started is stopped at teardown."""
    started: list[WorkerProcess] = []

    def start(**extra: object) -> WorkerProcess:
        env = worker_env(settings, settings.data_dir)
        env.update({f"LIVEPROFILES_{name.upper()}": str(value) for name, value in extra.items()})
        worker = WorkerProcess(env=env, log_path=tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker.start()

    try:
        yield start
    finally:
        for worker in started:
            worker.stop(timeout_s=15.0)


#: Starts a collector; keyword arguments are extra ``LIVEPROFILES_*`` settings (without prefix),
#: e.g. ``collector_write_keys`` or ``bootstrap_servers`` (to point it elsewhere).
CollectorFactory = Callable[..., CollectorProcess]


@pytest.fixture
def start_collector(settings: Settings, tmp_path: Path) -> Iterator[CollectorFactory]:
    """Start collectors for ``settings`` (write key ``wk-test`` unless told otherwise); every
    collector started is stopped, by PID, at teardown."""
    started: list[CollectorProcess] = []

    def start(wait_connected: bool = True, **extra: object) -> CollectorProcess:
        env = {
            "LIVEPROFILES_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "LIVEPROFILES_PREFIX": settings.prefix,
            "LIVEPROFILES_COLLECTOR_WRITE_KEYS": "wk-test",
        }
        env.update({f"LIVEPROFILES_{name.upper()}": str(value) for name, value in extra.items()})
        log_path = tmp_path / f"collector-{len(started)}.log"
        collector = CollectorProcess(env=env, log_path=log_path, port=free_port())
        started.append(collector)
        return collector.start(wait_connected=wait_connected)

    try:
        yield start
    finally:
        for collector in started:
            collector.stop()


def worker_env(settings: Settings, data_dir: Path) -> dict[str, str]:
    """The ``LIVEPROFILES_*`` environment of a worker for ``settings``."""
    return {
        "LIVEPROFILES_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "LIVEPROFILES_PREFIX": settings.prefix,
        "LIVEPROFILES_PARTITIONS": str(settings.partitions),
        "LIVEPROFILES_DATA_DIR": str(data_dir),
    }


def worker_process(settings: Settings, tmp_path: Path, index: int) -> WorkerProcess:
    """A worker (not started) with its own local state directory, as on its own machine; the
    caller starts and stops it."""
    return WorkerProcess(
        env=worker_env(settings, tmp_path / f"state-{index}"),
        log_path=tmp_path / f"worker-{index}.log",
    )


def paced_sender(settings: Settings, prepared: Sequence[Prepared], rate: float) -> threading.Thread:
    """A started background thread sending ``prepared`` to the events topic at ``rate``/s."""

    def send() -> None:
        producer = new_producer(settings.bootstrap_servers)
        try:
            send_paced(producer, settings.names.events, prepared, rate, {})
        finally:
            producer.close()

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    return sender


def read_json(
    settings: Settings, topic: str, expected: int, idle_s: float = 30.0
) -> list[dict[str, Any]]:
    """Every record of ``topic`` as JSON: waits for ``expected`` records (at most 120 s, or until
    idle for ``idle_s``), then reads on for 3 s so that extras (duplicates) are counted too."""
    records = consume(
        settings.bootstrap_servers, topic, expected, idle_s=idle_s, timeout_s=120.0, linger_s=3.0
    )
    return [orjson.loads(value) for _, value in records]


def decisions_until(
    settings: Settings, expected: set[str], timeout_s: float
) -> list[dict[str, object]]:
    """Read decisions until every expected id was seen (then 3 s more, to see extras).

    Not "until idle": after a kill -9 the dead member keeps its partitions until its session
    expires, so decisions for them can pause for ~20 s before the group rebalances.
    """
    decisions: list[dict[str, object]] = []
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    consumer = KafkaConsumer(
        settings.names.decisions,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
    )
    try:
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    decision = orjson.loads(record.value)
                    decisions.append(decision)
                    seen.add(str(decision["decision_id"]))
            if expected <= seen:
                deadline = min(deadline, time.monotonic() + 3.0)
    finally:
        consumer.close()
    return decisions

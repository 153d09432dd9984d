"""Fixtures that start a real embedded broker and real worker processes, and stop them by PID."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agents.admin import ensure_topics
from agents.settings import Settings
from scripts.broker import EmbeddedBroker
from scripts.launch import CollectorProcess, WorkerProcess
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
        env = {
            "LIVEPROFILES_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "LIVEPROFILES_PREFIX": settings.prefix,
            "LIVEPROFILES_PARTITIONS": str(settings.partitions),
            "LIVEPROFILES_DATA_DIR": str(settings.data_dir),
        }
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

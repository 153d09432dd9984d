"""The broker stops answering under load, then comes back: the worker backs off and recovers,
or exits loudly (status 70) and its restart recovers; either way nothing is lost and the state
equals an offline replay.

The embedded broker keeps everything in memory, so a real restart would lose every topic (see
../shared/BROKER.md); the outage is a freeze (SIGSTOP, then SIGCONT): connections stay open and
nothing answers, as with a broker host that hangs or a network partition."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from agents.settings import Settings
from scripts.broker import EmbeddedBroker
from scripts.load import prepare
from stream import StepConfig
from stream.replay import replay
from stream.synthetic import GeneratorConfig, generate_events
from tests.integration.conftest import decisions_until, paced_sender, worker_process
from tests.integration.test_pipeline import (
    _expected_profiles,
    _stored_profiles,
    _without_positions,
    differing_profiles,
)

pytestmark = pytest.mark.broker

EVENTS = 12_000
RATE = 1_200.0  # events/s: ~10 s of traffic, the outage lands in the middle of it
OUTAGE_S = 15.0
#: The status agents.guard exits with when a batch keeps failing (it is then not acknowledged).
EXIT_BATCH_FAILED = 70


def test_worker_survives_a_broker_outage_under_load(
    broker: EmbeddedBroker, settings: Settings, tmp_path: Path
) -> None:
    events = list(generate_events(GeneratorConfig(seed=44, users=800, days=1.0)))[:EVENTS]
    prepared = list(prepare(events, settings.partitions))
    lines = [p.value for p in prepared]
    assert broker.process is not None
    worker = worker_process(settings, tmp_path, 0)
    exits: list[int] = []
    try:
        worker.start()
        sender = paced_sender(settings, prepared, RATE)
        time.sleep(3.0)
        broker.process.send_signal(signal.SIGSTOP)
        try:
            time.sleep(OUTAGE_S)
        finally:
            broker.process.send_signal(signal.SIGCONT)
        sender.join(timeout=300)
        assert not sender.is_alive()
        offline = replay(lines, StepConfig())
        expected = Counter(d.decision_id for d in offline.decisions)
        deadline = time.monotonic() + 300.0
        decisions: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            # A worker that gave up during the outage must have said so with its status; a
            # supervisor restarts it, as this loop does.
            assert worker.process is not None
            status = worker.process.poll()
            if status is not None:
                exits.append(status)
                assert status == EXIT_BATCH_FAILED, f"unexpected exit {status}; see {tmp_path}"
                worker.process = None
                worker.start()
            decisions = decisions_until(settings, set(expected), timeout_s=20.0)
            if set(expected) <= {str(d["decision_id"]) for d in decisions}:
                break
    finally:
        worker.stop(timeout_s=15.0)
    seen = Counter(str(d["decision_id"]) for d in decisions)
    assert set(seen) == set(expected), f"{len(set(expected) - set(seen))} lost; logs in {tmp_path}"
    print(
        f"worker exits during the outage: {exits}; decisions read: {sum(seen.values())},"
        f" distinct: {len(seen)}, events: {EVENTS}"
    )
    assert not differing_profiles(
        _without_positions(_stored_profiles(settings)), _expected_profiles(lines)
    )

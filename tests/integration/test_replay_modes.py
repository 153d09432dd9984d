"""The same log, replayed offline and through Kafka, gives the same decisions byte for byte."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from agents.settings import Settings
from scripts.replay import kafka_decisions, offline_decisions
from stream.synthetic import GeneratorConfig, generate_events
from tests.integration.conftest import WorkerFactory
from tests.support import INVALID_EVENTS

pytestmark = pytest.mark.broker


def test_offline_and_kafka_replays_are_byte_identical(
    settings: Settings, start_worker: WorkerFactory, tmp_path: Path
) -> None:
    events = generate_events(GeneratorConfig(seed=8, users=60, days=1.0))
    lines = [orjson.dumps(e) for _, e in zip(range(1_500), events, strict=False)]
    lines[100:100] = [raw for raw, _ in INVALID_EVENTS]
    lines.append(lines[-1])  # an SDK retry of the last event: one decision either way
    lines.append(lines[42])  # an old event again, beyond the dedupe window: applied twice,
    # under the same decision id; both modes keep the first decision per id
    start_worker()

    through_kafka = kafka_decisions(lines, settings.bootstrap_servers, settings.names, idle_s=15.0)
    offline = offline_decisions(lines)

    assert offline.count(b"\n") == 1_500
    assert through_kafka == offline

"""The same log, replayed offline and through Kafka, gives the same decisions byte for byte."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import orjson
import pytest

from agents.settings import Settings
from scripts.pacing import plan
from scripts.replay import collect_decisions, kafka_decisions, offline_decisions, send_log
from stream.synthetic import GeneratorConfig, generate_events
from stream.timeutil import ms_to_iso
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


def _log_spanning(events: int, gap_ms: int) -> list[bytes]:
    """Generated events in event-time order, moved to ``gap_ms`` apart (a short, dense log)."""
    generated = itertools.islice(
        generate_events(GeneratorConfig(seed=9, users=40, days=1.0)), events
    )
    lines = []
    for index, event in enumerate(sorted(generated, key=lambda e: str(e["timestamp"]))):
        event["timestamp"] = ms_to_iso(1_700_000_000_000 + index * gap_ms)
        event.pop("sentAt", None)
        lines.append(orjson.dumps(event))
    return lines


def test_a_10x_replay_takes_a_tenth_of_the_event_time_and_decides_as_offline(
    settings: Settings, start_worker: WorkerFactory
) -> None:
    lines = _log_spanning(400, gap_ms=75)  # 29.9 s of event time
    lines[50:50] = [raw for raw, _ in INVALID_EVENTS[:3]]  # no readable time: sent at once
    schedule = plan(lines, range(1, len(lines) + 1), speed=10.0)
    assert schedule.duration_s == pytest.approx(2.9925)
    assert schedule.untimed_lines == [51, 52, 53]
    start_worker()

    started = time.monotonic()
    late_s = send_log(lines, settings.bootstrap_servers, settings.names.events, schedule)
    elapsed = time.monotonic() - started
    through_kafka = collect_decisions(
        lines, settings.bootstrap_servers, settings.names.decisions, idle_s=15.0
    )

    # Connecting and closing the producer come on top of the schedule; a shared 2-core
    # machine gets a second of slack.
    assert schedule.duration_s <= elapsed < schedule.duration_s + 1.0
    assert late_s < 0.5
    assert through_kafka == offline_decisions(lines)
    assert through_kafka.count(b"\n") == 400

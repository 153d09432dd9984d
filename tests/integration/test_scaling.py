"""Scale out and in under load on the real broker: two workers in one group, a third joins and
one of the first two leaves while events stream in; nothing is lost, state is exact, and no
worker is left stuck in recovery."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from agents.settings import Settings
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

EVENTS = 30_000
RATE = 1_200.0  # events/s: ~25 s of traffic, so both membership changes happen under load


def _committed(settings: Settings) -> dict[int, int | None]:
    """The group's committed offset per events partition (an OffsetFetch; joins no group)."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=settings.names.app_id,
        enable_auto_commit=False,
    )
    try:
        return {
            p: consumer.committed(TopicPartition(settings.names.events, p))
            for p in range(settings.partitions)
        }
    finally:
        consumer.close()


def test_a_worker_joins_and_one_leaves_under_load(settings: Settings, tmp_path: Path) -> None:
    events = list(generate_events(GeneratorConfig(seed=33, users=1_500, days=1.0)))[:EVENTS]
    prepared = list(prepare(events, settings.partitions))
    lines = [p.value for p in prepared]
    workers = [worker_process(settings, tmp_path, i) for i in range(3)]
    try:
        workers[0].start()
        workers[1].start()
        sender = paced_sender(settings, prepared, RATE)
        time.sleep(6.0)
        workers[2].start()  # scale out: partitions move to the newcomer
        time.sleep(6.0)
        assert not workers[0].stop(timeout_s=30.0), "the leaving worker had to be killed"
        sender.join(timeout=300)
        assert not sender.is_alive()
        offline = replay(lines, StepConfig())
        expected = Counter(d.decision_id for d in offline.decisions)
        decisions = decisions_until(settings, set(expected), timeout_s=120.0)
        # Both remaining workers are alive (none crashed or hung up in recovery: every event
        # of every partition got its decision, so each partition was recovered and consumed).
        assert all(w.process is not None and w.process.poll() is None for w in workers[1:])
    finally:
        for worker in workers:
            worker.stop(timeout_s=15.0)
    seen = Counter(str(d["decision_id"]) for d in decisions)
    assert len(expected) == EVENTS
    missing = Counter(
        p.partition
        for p, d in zip(prepared, offline.decisions, strict=True)
        if d.decision_id not in seen
    )
    assert not missing, (
        f"events without a decision by partition: {dict(missing)}; committed offsets:"
        f" {_committed(settings)}; logs in {tmp_path}"
    )
    print(f"decisions read: {sum(seen.values())}, distinct: {len(seen)}, events: {EVENTS}")
    assert not differing_profiles(
        _without_positions(_stored_profiles(settings)), _expected_profiles(lines)
    )

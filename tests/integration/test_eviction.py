"""Idle profiles are deleted by their partition's watermark (event time), with a tombstone."""

from __future__ import annotations

import orjson
import pytest

from agents.settings import Settings
from scripts.kafkaio import consume, new_producer, produce_events
from scripts.load import partition_for
from stream.timeutil import ms_to_iso
from stream.windows import DAY_MS
from tests.integration.conftest import WorkerFactory

pytestmark = pytest.mark.broker

T0 = 1_700_000_000_000


def _view(user: str, at_ms: int, n: int) -> bytes:
    return orjson.dumps(
        {
            "type": "track",
            "event": "Product Viewed",
            "messageId": f"{user}-{n}",
            "userId": user,
            "timestamp": ms_to_iso(at_ms),
            "properties": {"product_id": "p1", "category": "shoes", "price": 10.0},
        }
    )


def test_profiles_idle_beyond_the_horizon_are_tombstoned(
    settings: Settings, start_worker: WorkerFactory
) -> None:
    # A sample of one event makes each partition's watermark its latest event time, so the test
    # controls it exactly (the median's robustness is unit-tested).
    start_worker(watermark_sample=1)
    idle, active = "idle-user", "active-user"
    partition = partition_for(idle.encode(), settings.partitions)
    # Users on the idle user's partition whose events, 40 days later, move its watermark.
    movers = [
        u
        for u in (f"mover-{i}" for i in range(200))
        if partition_for(u.encode(), settings.partitions) == partition
    ][:5]
    producer = new_producer(settings.bootstrap_servers)
    try:
        produce_events(producer, settings.names.events, [_view(idle, T0, 0)])
        later = T0 + 40 * DAY_MS
        produce_events(
            producer,
            settings.names.events,
            [_view(active, later - DAY_MS, 0)] + [_view(u, later, 0) for u in movers],
        )
    finally:
        producer.close()
    decisions = list(
        consume(settings.bootstrap_servers, settings.names.decisions, 2 + len(movers), idle_s=20)
    )
    assert len(decisions) == 2 + len(movers)

    latest: dict[bytes, bytes | None] = {}
    for _ in range(20):  # the sweep runs after the batch that moved the watermark
        for key, value in consume(
            settings.bootstrap_servers, settings.names.profiles_changelog, idle_s=2.0
        ):
            assert key is not None
            latest[key] = value
        if latest.get(idle.encode(), b"") is None:
            break
    assert latest[idle.encode()] is None, "the idle profile was not tombstoned"
    assert latest[active.encode()] is not None
    assert all(latest[u.encode()] is not None for u in movers)

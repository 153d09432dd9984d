"""Crash consistency on the real broker: SIGKILL the worker at random moments (also during its
recovery) while events stream in; after the last restart, every event has its decision, the
decision ids are exactly those of an offline replay (duplicates allowed, same ids), and the
stored profiles equal the offline replay's."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer

from agents.settings import Settings
from scripts.kafkaio import consume, new_producer
from scripts.launch import WorkerProcess
from scripts.load import prepare, send_paced
from stream import StepConfig
from stream.replay import replay
from stream.synthetic import GeneratorConfig, generate_events
from tests.integration.test_pipeline import _expected_profiles, _stored_profiles, _without_positions

pytestmark = pytest.mark.broker

EVENTS = 100_000
RATE = 2_000.0  # events/s: the stream lasts ~50 s, long enough for every kill to land in it
#: Kill moments: False = kill a running worker; True = kill it, restart it, and kill it again
#: while it is still recovering (before it reports ready).
KILLS = (False, True, False, True, False)


def _worker(settings: Settings, log: Path) -> WorkerProcess:
    env = {
        "LIVEPROFILES_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "LIVEPROFILES_PREFIX": settings.prefix,
        "LIVEPROFILES_PARTITIONS": str(settings.partitions),
        "LIVEPROFILES_DATA_DIR": str(settings.data_dir),
    }
    return WorkerProcess(env=env, log_path=log)


@pytest.mark.timeout(900)  # ~50 s of traffic, 7 restarts of ~20 s each, then the checks
def test_kill_9_at_random_moments_loses_nothing_and_matches_offline_replay(
    settings: Settings, tmp_path: Path
) -> None:
    events = list(generate_events(GeneratorConfig(seed=21, users=3_000, days=2.0)))[:EVENTS]
    prepared = list(prepare(events, settings.partitions))
    lines = [p.value for p in prepared]
    rng = random.Random(5)
    worker = _worker(settings, tmp_path / "worker.log")
    worker.start()

    sender = threading.Thread(target=_send, args=(settings, prepared), daemon=True)
    sender.start()
    kills = []
    try:
        for during_recovery in KILLS:
            time.sleep(rng.uniform(2.0, 8.0))
            worker.kill()
            kills.append(during_recovery)
            worker.start(wait_ready=not during_recovery)
            if during_recovery:
                time.sleep(rng.uniform(0.5, 2.0))  # killed again before it is ready
                worker.kill()
                worker.start()
        sender.join(timeout=300)
        offline = replay(lines, StepConfig())
        expected_ids = Counter(d.decision_id for d in offline.decisions)
        decisions = _decisions_until(settings, set(expected_ids), timeout_s=480.0)
    finally:
        worker.stop()

    seen_ids = Counter(str(d["decision_id"]) for d in decisions)
    assert len(kills) == len(KILLS) and len(expected_ids) == EVENTS
    print(
        f"kills: {len(KILLS) + sum(KILLS)} SIGKILLs ({sum(KILLS)} during recovery);"
        f" decisions read: {len(decisions)}, distinct: {len(seen_ids)}, events: {EVENTS}"
    )
    letters = [
        orjson.loads(v)
        for _, v in consume(settings.bootstrap_servers, settings.names.deadletters, idle_s=3.0)
    ]
    missing = set(expected_ids) - set(seen_ids)
    lost = [d for d in offline.decisions if d.decision_id in missing]
    assert not missing and set(seen_ids) <= set(expected_ids), (
        f"{len(missing)} events without decision: "
        f"{[(d.user_key, d.event_message_id, d.event_name) for d in lost][:5]}; "
        f"dead letters: {[(x['reason'], x['message']) for x in letters][:5]}; "
        f"logs in {tmp_path}"
    )
    assert _without_positions(_stored_profiles(settings)) == _expected_profiles(lines)


def _decisions_until(
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


def _send(settings: Settings, prepared: list) -> None:  # type: ignore[type-arg]
    producer = new_producer(settings.bootstrap_servers)
    try:
        send_paced(producer, settings.names.events, prepared, RATE, {})
    finally:
        producer.close()

"""Crash consistency on the real broker: SIGKILL the worker at random moments (also during its
recovery) while events stream in; after the last restart, every event has its decision, the
decision ids are exactly those of an offline replay (duplicates allowed, same ids), and the
stored profiles equal the offline replay's."""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from agents.settings import Settings
from scripts.kafkaio import consume
from scripts.load import prepare
from stream import StepConfig
from stream.replay import replay
from stream.synthetic import GeneratorConfig, generate_events
from tests.integration.conftest import decisions_until, paced_sender, worker_process
from tests.integration.test_pipeline import (
    _expected_profiles,
    _stored_profiles,
    _without_pending_labels,
    _without_positions,
    differing_profiles,
)

pytestmark = pytest.mark.broker

EVENTS = 100_000
RATE = 2_000.0  # events/s: the stream lasts ~50 s, long enough for every kill to land in it
#: Kill moments: False = kill a running worker; True = kill it, restart it, and kill it again
#: while it is still recovering (before it reports ready).
KILLS = (False, True, False, True, False)


@pytest.mark.timeout(900)  # ~50 s of traffic, 7 restarts of ~20 s each, then the checks
def test_kill_9_at_random_moments_loses_nothing_and_matches_offline_replay(
    settings: Settings, tmp_path: Path
) -> None:
    events = list(generate_events(GeneratorConfig(seed=21, users=3_000, days=2.0)))[:EVENTS]
    prepared = list(prepare(events, settings.partitions))
    lines = [p.value for p in prepared]
    rng = random.Random(5)
    worker = worker_process(settings, tmp_path, 0)
    worker.start()

    sender = paced_sender(settings, prepared, RATE)
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
        decisions = decisions_until(settings, set(expected_ids), timeout_s=480.0)
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
    stored, expected = _without_positions(_stored_profiles(settings)), _expected_profiles(lines)
    differ = differing_profiles(_without_pending_labels(stored), _without_pending_labels(expected))
    assert not differ, f"{len(differ)} profiles differ from the replay, e.g. {differ[:5]}"
    # Pending labels follow the partition's learner snapshot, which a kill can leave ahead of
    # or behind a profile: a label may then settle at another record than in the replay.
    unsettled = [k for k in expected if stored[k]["labels"] != expected[k]["labels"]]
    print(f"profiles whose pending labels differ from the replay: {len(unsettled)}")
    assert len(unsettled) <= len(expected) // 100, unsettled[:5]
    # The policy's record follows the decisions the bandit made, which after a kill learned
    # without the rewards a lost snapshot held: counted, not required equal.
    record = ("decisions", "starts", "choice", "last_decision")
    other = [k for k in expected if any(stored[k][f] != expected[k][f] for f in record)]
    print(f"profiles whose policy record differs from the replay: {len(other)}")

"""Records lost in transit between the consumer and the agent are noticed and fetched again.

Faust was seen to lose records around rebalances (agents.sequencer); here the worker loses the
first delivery of every 40th record on purpose (agents.faults), on the real broker, and every
event must still get exactly one decision, with state equal to an offline replay.
"""

from __future__ import annotations

import pytest

from agents.settings import Settings
from stream import StepConfig
from stream.replay import replay
from tests.integration.conftest import WorkerFactory
from tests.integration.test_pipeline import (
    _decisions,
    _expected_profiles,
    _log,
    _send,
    _stored_profiles,
    _without_positions,
    differing_profiles,
)

pytestmark = pytest.mark.broker

LOSE_EVERY = 40


def test_records_lost_in_transit_are_fetched_again_and_applied_once_in_order(
    settings: Settings, start_worker: WorkerFactory
) -> None:
    lines = _log(users=60, limit=3_000, seed=14)
    worker = start_worker(fault_lose_every=LOSE_EVERY)
    _send(settings, lines)

    decisions = _decisions(settings, expected=len(lines))

    ids = [str(d["decision_id"]) for d in decisions]
    assert len(ids) == len(set(ids)) == len(lines)
    assert set(ids) == {d.decision_id for d in replay(lines, StepConfig()).decisions}
    assert not differing_profiles(
        _without_positions(_stored_profiles(settings)), _expected_profiles(lines)
    )
    # The loss did happen and was repaired by seeking back (not by luck or a rebalance).
    log = worker.log_path.read_text()
    assert log.count("seeking back") >= len(lines) // settings.partitions // LOSE_EVERY

"""Issue 8, "Bad input", on the real broker: the hostile corpus (tests.hostile) produced as raw
record values to the events topic of a running worker.

Dead letters on the topic by reason equal the injected counts exactly, decisions equal the valid
(non-duplicate) events, the worker is still running afterwards (zero crashes), and the whole
run is bounded in time; the fixtures stop the worker and the broker.
"""

from __future__ import annotations

import time
from collections import Counter
from itertools import islice

import pytest

from agents.settings import Settings
from scripts.kafkaio import new_producer
from stream.synthetic import GeneratorConfig, generate_events
from tests.hostile import DUPLICATE, VALID, Hostile, hostile_corpus, mixed_stream
from tests.integration.conftest import WorkerFactory, read_json

pytestmark = pytest.mark.broker

#: The whole run (produce, process, read back) must fit in this.
BUDGET_S = 180.0


def _stream() -> list[Hostile]:
    synthetic = islice(generate_events(GeneratorConfig(seed=9, users=40, days=1.0)), 600)
    return list(mixed_stream(hostile_corpus(seed=9), synthetic, seed=9))


def _produce(settings: Settings, items: list[Hostile]) -> None:
    """Raw bytes as the record value, the key an SDK would set (or none): nothing re-encoded."""
    producer = new_producer(settings.bootstrap_servers)
    try:
        for item in items:
            producer.send(settings.names.events, key=item.key, value=item.raw)
        producer.flush()
    finally:
        producer.close()


def test_the_hostile_corpus_gives_exact_dead_letters_and_no_crash(
    settings: Settings, start_worker: WorkerFactory
) -> None:
    started = time.monotonic()
    items = _stream()
    injected = Counter(h.expected for h in items if h.expected not in (VALID, DUPLICATE))
    valid = [h for h in items if h.expected == VALID]
    assert sum(injected.values()) >= 1000
    # The corpus's event times span 2000..2100, so a partition's watermark can run decades
    # ahead of most users; the adapter then deletes their profiles as idle, and a resent event
    # far behind the watermark is applied again (the documented exception in stream.eviction).
    # Eviction is off here so that duplicates are exact; the rest does not depend on it.
    worker = start_worker(eviction_budget=0)

    _produce(settings, items)
    letters = read_json(settings, settings.names.deadletters, sum(injected.values()))
    decisions = read_json(settings, settings.names.decisions, len(valid))

    assert Counter(letter["reason"] for letter in letters) == injected
    decided = Counter((d["user"]["key"], d["event"]["message_id"]) for d in decisions)
    assert decided == Counter((h.user_key, h.message_id) for h in valid)
    assert worker.process is not None and worker.process.poll() is None, "the worker crashed"
    assert time.monotonic() - started < BUDGET_S

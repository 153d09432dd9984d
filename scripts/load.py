"""The load driver: prepare events, then send them at a target rate, stamping when each was sent.

Preparation (serializing, choosing the key and the partition) happens before the clock starts:
SDKs and producers are outside the system under test, so the driver should spend its CPU on
sending, not on the pure-Python murmur2 hash kafka-python would otherwise run per send.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from kafka import KafkaProducer
from kafka.partitioner.default import murmur2

from scripts.pipeline import now_ms

__all__ = ["Prepared", "partition_for", "prepare", "send_paced"]

_TICK_S = 0.005


@dataclass(frozen=True, slots=True)
class Prepared:
    """One event ready to send: its id (to match the decision), key, value and partition."""

    message_id: str
    key: bytes
    value: bytes
    partition: int


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as in the Java client) picks."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def prepare(events: Iterable[dict[str, Any]], partitions: int) -> Iterator[Prepared]:
    """Serialize generated events and key them by user (``userId``, else ``anonymousId``)."""
    for event in events:
        key = str(event.get("userId") or event["anonymousId"]).encode()
        yield Prepared(
            str(event["messageId"]), key, orjson.dumps(event), partition_for(key, partitions)
        )


def send_paced(
    producer: KafkaProducer,
    topic: str,
    events: Iterable[Prepared],
    rate_per_s: float | None,
    sent_ms: dict[str, int],
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """Send prepared events; ``rate_per_s=None`` means as fast as possible.

    Pacing is by schedule, not by sleeping per event: event *i* is due ``i / rate`` seconds after
    the start, so a slow moment is caught up instead of lowering the offered load.
    """
    start, sent = time.monotonic(), 0
    for event in events:
        if rate_per_s:
            delay = start + sent / rate_per_s - time.monotonic()
            if delay > _TICK_S:
                producer.flush()  # don't let linger hold back what is already due
                time.sleep(delay)
        sent_ms[event.message_id] = now_ms()
        producer.send(topic, key=event.key, value=event.value, partition=event.partition)
        sent += 1
        if on_sent is not None and sent % 100 == 0:
            on_sent(100)
    producer.flush()
    return sent

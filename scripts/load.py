"""Send events into the events topic at a target rate, stamping when each was sent."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from kafka import KafkaProducer

from scripts.pipeline import now_ms

__all__ = ["send_paced"]

_TICK_S = 0.005


def send_paced(
    producer: KafkaProducer,
    topic: str,
    events: Iterable[tuple[str, bytes, bytes]],
    rate_per_s: float | None,
    sent_ms: dict[str, int],
    on_sent: Callable[[int], None] | None = None,
) -> int:
    """Send ``(message_id, key, value)`` triples; ``rate_per_s=None`` means as fast as possible.

    Pacing is by schedule, not by sleeping per event: event *i* is due ``i / rate`` seconds after
    the start, so a slow moment is caught up instead of lowering the offered load.
    """
    start, sent = time.monotonic(), 0
    for message_id, key, value in events:
        if rate_per_s:
            due = start + sent / rate_per_s
            delay = due - time.monotonic()
            if delay > _TICK_S:
                producer.flush()  # don't let linger hold back what is already due
                time.sleep(delay)
        sent_ms[message_id] = now_ms()
        producer.send(topic, key=key, value=value)
        sent += 1
        if on_sent is not None and sent % 100 == 0:
            on_sent(100)
    producer.flush()
    return sent

"""The Faust app, built by a factory: topics, the profiles table and the events agent.

The agent body is plumbing: take a micro-batch, hand each source partition's records to
:func:`agents.batch.process_records`, send the decisions and dead letters, wait for the broker
to acknowledge them, then write each changed profile once.

Ordering is what makes a crash safe (at-least-once in, effectively-once state): outputs are
acknowledged *before* the profile that records their source offset is written, and Faust flushes
the producer before it commits consumer offsets. So after a crash, a redelivered record is either
not in the stored profile yet (it is applied again and its decision re-sent with the same id) or
it is, and then its decision was already acknowledged (it is skipped). A batch that fails is
retried, and if it keeps failing the process exits without acknowledging it (agents.guard).

A skipped record still writes its (unchanged) profile back. That is deliberate: after a kill,
RocksDB may hold a profile whose changelog record was never sent; rewriting it repairs the
changelog, so a later rebuild from the changelog does not lose it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

import faust
from faust.streams import _current_event
from faust.types import TP, EventT, StreamT

from agents.batch import BatchResult, RawRecord, process_records
from agents.eviction import IdleSweeper
from agents.guard import handle_or_exit
from agents.metrics import WorkerMetrics
from agents.names import Names
from agents.settings import Settings
from agents.transport import register as register_transport
from agents.web import register_pages
from stream import SourcePosition, StepConfig
from stream.watermark import PartitionWatermark

__all__ = ["Clock", "create_app", "wall_clock_ms"]

log = logging.getLogger(__name__)

#: A consumed record as Faust hands it to a stream.
Message = EventT[bytes]

Clock = Callable[[], int]


def wall_clock_ms() -> int:
    """Processing time in epoch ms: used only to stamp when a decision was emitted."""
    return time.time_ns() // 1_000_000


def create_app(
    settings: Settings, config: StepConfig | None = None, clock: Clock = wall_clock_ms
) -> faust.App:
    """Build the worker app; nothing is started and nothing global is touched but the registry
    of transports (the ``tansu://`` scheme)."""
    register_transport()
    step_config = config or StepConfig()
    names = settings.names
    app = faust.App(names.app_id, **settings.faust_options())
    events = app.topic(
        names.events,
        value_type=bytes,
        value_serializer="raw",
        key_type=bytes,
        key_serializer="raw",
        partitions=settings.partitions,
    )
    # bytes key and value types make Faust use the "raw" codec: we own the serialization.
    profiles = app.Table(
        names.profiles_table, partitions=settings.partitions, key_type=bytes, value_type=bytes
    )
    watermarks: dict[int, PartitionWatermark] = defaultdict(
        lambda: PartitionWatermark(settings.watermark_sample)
    )
    app.watermarks = watermarks  # type: ignore[attr-defined]
    sweeper = IdleSweeper(
        step_config.features, settings.eviction_budget, settings.eviction_every_ms
    )
    #: Next offset to process per events partition (for the consumer-lag metric).
    positions: dict[int, int] = {}
    metrics = WorkerMetrics(settings.process_id, lambda: _lag(app, names.events, positions))
    app.metrics = metrics  # type: ignore[attr-defined]
    if settings.web_enabled:
        register_pages(app, metrics)

    async def handle(batch: Sequence[EventT[bytes]]) -> None:
        groups = list(_by_partition(batch))
        results = [
            (first, _process_partition(group, profiles, step_config)) for first, group in groups
        ]
        emitted_at_ms = await _send_outputs(results, app.producer, names, clock)
        for first, result in results:
            partition = first.message.partition
            watermark = watermarks[partition].observe(result.event_times)
            with _in_partition_of(first):
                for key, value in result.profile_bytes().items():
                    profiles[key.encode()] = value
                if settings.eviction_budget:
                    looked, evicted = sweeper.sweep(profiles, partition, watermark)
                    result.counters["eviction:looked"] += looked
                    result.counters["eviction:evicted"] += evicted
            metrics.observe_batch(result, emitted_at_ms)
            metrics.observe_watermark(partition, watermark)
        for first, group in groups:
            positions[first.message.partition] = group[-1].message.offset + 1

    @app.agent(events, name="process-events")
    async def process_events(stream: StreamT[Any]) -> None:
        # take_events exists on faust.Stream but is missing from the StreamT interface.
        batches = cast(faust.Stream[bytes], stream).take_events(
            settings.batch_max, within=settings.batch_within_s
        )
        async for batch in batches:
            await handle_or_exit(handle, batch)

    @app.timer(interval=10.0)  # type: ignore[untyped-decorator]
    async def log_stats() -> None:
        counters = dict(sorted(metrics.counters.items()))
        log.info("worker stats %s", counters, extra={"counters": counters})

    return app


def _by_partition(
    batch: Sequence[EventT[bytes]],
) -> Iterator[tuple[EventT[bytes], list[EventT[bytes]]]]:
    groups: dict[tuple[str, int], list[EventT[bytes]]] = defaultdict(list)
    for event in batch:
        groups[(event.message.topic, event.message.partition)].append(event)
    for group in groups.values():
        yield group[0], group


def _process_partition(
    group: list[EventT[bytes]], profiles: Any, config: StepConfig
) -> BatchResult:
    records = [
        RawRecord(
            SourcePosition(e.message.topic, e.message.partition, e.message.offset),
            e.message.key,
            e.message.value or b"",  # a null value (tombstone) is not an event: dead-lettered
            _timestamp_ms(e.message.timestamp),
        )
        for e in group
    ]
    with _in_partition_of(group[0]):
        return process_records(records, lambda key: profiles.get(key.encode()), config)


def _timestamp_ms(timestamp: float | None) -> int | None:
    """Faust gives the record's Kafka timestamp in seconds (a float), or nothing."""
    return None if timestamp is None else round(timestamp * 1000)


def _lag(app: faust.App, topic: str, positions: dict[int, int]) -> dict[int, int]:
    """High water minus the next offset to process, per assigned partition of ``topic``.

    The high water is what the consumer last saw in a fetch (no broker round trip at scrape
    time); a partition not processed yet since it was assigned counts from its committed offset.
    """
    consumer = app.consumer
    # Faust keeps the committed offsets it knows in a private map (no public sync accessor).
    committed: dict[TP, int | None] = getattr(consumer, "_committed_offset", {})
    lag: dict[int, int] = {}
    for tp in consumer.assignment():
        if tp.topic != topic:
            continue
        highwater = consumer.highwater(tp)
        position = positions.get(tp.partition, committed.get(tp))
        if highwater is not None and position is not None:
            lag[tp.partition] = max(highwater - position, 0)
    return lag


async def _send_outputs(
    results: list[tuple[EventT[bytes], BatchResult]], producer: Any, topics: Names, clock: Clock
) -> int:
    """Send every output of the batch, then wait until the broker acknowledged all of them.

    Straight to the producer rather than through ``Topic.send``: the channel layer costs more
    per record than the rest of the step, and these topics are created up front. Returns the
    emission stamp the decisions carry (for the latency metrics).
    """
    pending = []
    now = clock()
    for _, result in results:
        for decision in result.decisions:
            pending.append(
                await producer.send(
                    topics.decisions,
                    decision.user_key.encode(),
                    decision.to_bytes(emitted_at_ms=now),
                    None,
                    None,
                    None,
                )
            )
        for letter in result.deadletters:
            pending.append(
                await producer.send(
                    topics.deadletters, letter.key, letter.to_bytes(), None, None, None
                )
            )
    if pending:
        # flush() sends now instead of after the producer's linger; gather() then surfaces a
        # failed send as an exception, which agents.guard retries or turns into an exit.
        await producer.flush()
        await asyncio.gather(*pending)
    return now


@contextlib.contextmanager
def _in_partition_of(event: EventT[bytes]) -> Iterator[None]:
    """Make Faust's table store read and write the partition of ``event``.

    Faust's RocksDB store and changelog pick the partition from the *current event* context
    variable. ``take_events`` fills its buffer in another task, so in the agent's task there is
    no current event at all (a write would fail); we set it to an event of the partition whose
    profiles are being read or written.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)

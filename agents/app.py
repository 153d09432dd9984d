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
import sys
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import faust
from faust.streams import _current_event
from faust.types import TP, EventT, StreamT

from agents.batch import BatchResult, RawRecord, SuppressionLookup, process_records
from agents.erasure import Eraser
from agents.eviction import IdleSweeper
from agents.faults import FirstDeliveryLoss
from agents.guard import handle_or_exit
from agents.identity import IdentityStage, is_control
from agents.metrics import WorkerMetrics
from agents.names import Names
from agents.privacy import register_privacy
from agents.profilecache import ProfileCache
from agents.sequencer import Admission, OffsetSequencer, Partition
from agents.settings import Settings
from agents.topics import raw_table, raw_topic
from agents.transport import register as register_transport
from agents.web import register_pages
from stream import SourcePosition, StepConfig
from stream.erasure import ErasureRequest
from stream.exceptions import SnapshotError
from stream.partition import PartitionLearner
from stream.watermark import PartitionWatermark

__all__ = ["Clock", "create_app", "wall_clock_ms"]

log = logging.getLogger(__name__)

#: A consumed record as Faust hands it to a stream.
Message = EventT[bytes]

Clock = Callable[[], int]

#: How often to look for partitions that stopped short of their log's end (agents.sequencer).
STALL_CHECK_S = 5.0


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
    # Every topic and table has the events' partition count (agents.topics: raw bytes):
    # co-partitioned, so partition p of each is on the worker that holds partition p of the
    # events.
    events, erasures = (
        raw_topic(app, name, settings.partitions) for name in (names.events, names.erasures)
    )
    profiles, learner_table, suppressions = (
        raw_table(app, name, settings.partitions)
        for name in (names.profiles_table, names.learners_table, names.suppressions_table)
    )
    identity = (
        IdentityStage(app, settings, _in_partition_of, clock)
        if step_config.stitch_identities
        else None
    )
    #: Held while a batch of events or an erasure reads and writes state: an erasure must not
    #: delete a profile that a batch in flight (awaiting its sends) is about to write back.
    state_lock = asyncio.Lock()
    #: Each assigned partition's learner, loaded from its table on the partition's first batch.
    learners: dict[int, PartitionLearner] = {}
    app.learners = learners  # type: ignore[attr-defined]
    watermarks: dict[int, PartitionWatermark] = defaultdict(
        lambda: PartitionWatermark(settings.watermark_sample)
    )
    app.watermarks = watermarks  # type: ignore[attr-defined]
    sweeper = IdleSweeper(
        step_config.features, settings.eviction_budget, settings.eviction_every_ms
    )
    #: Profiles this worker wrote, kept restored for the user's next batch.
    cache = ProfileCache(settings.profile_cache_size)
    #: Next offset to process per events partition (for the consumer-lag metric).
    positions: dict[int, int] = {}
    metrics = WorkerMetrics(
        settings.process_id,
        lambda: _lag(app, names.events, positions),
        lambda: {p: (lr.models.summary(), lr.missed) for p, lr in learners.items()},
        lambda: {p: lr.policy.stats for p, lr in learners.items()},
    )
    app.metrics = metrics  # type: ignore[attr-defined]
    eraser = Eraser(
        names,
        settings.partitions,
        profiles,
        learner_table,
        suppressions,
        lambda record: _learner_of(learners, learner_table, record, step_config),
        _learner_key,
        settings.privacy_secret.encode(),
        settings.erasure_skew_ms,
        () if identity is None else (names.identities_changelog,),
    )
    if identity is not None:
        identity.suppression_of = eraser.suppression_of
    if settings.web_enabled:
        register_pages(app, metrics)
        register_privacy(app, settings, profiles, eraser, step_config, clock)

    sequencer = OffsetSequencer()
    lose = FirstDeliveryLoss(settings.fault_lose_every) if settings.fault_lose_every else None

    async def handle(batch: Sequence[EventT[bytes]]) -> None:
        async with state_lock:
            await handle_events(batch)

    async def handle_events(batch: Sequence[EventT[bytes]]) -> None:
        if lose is not None:
            batch = lose(batch)
        groups = list(_by_partition(batch))
        if identity is not None:
            # Records of a partition paused at an identity await, fetched before the pause:
            # held (the partition is fetched again from the await once resumed).
            for group in [g for g in groups if identity.is_waiting(g[0].message.partition)]:
                groups.remove(group)
                for event in group:
                    event.message.acked = True
        admitted = [_admit(sequencer, group) for group in groups]
        work = [a for a in admitted if a.events]
        results = []
        for a in work:
            learner = _learner_of(learners, learner_table, a.events[0], step_config)
            processed = _process_partition(
                a.events, profiles, step_config, learner, eraser.suppression_of, identity, cache
            )
            results.append((a.events[0], processed))
        emitted_at_ms = await _send_outputs(results, app.producer, names, clock)
        for first, result in results:
            partition = first.message.partition
            watermark = watermarks[partition].observe(result.event_times)
            with _in_partition_of(first):
                for key, profile in result.profiles.items():
                    value = profile.to_bytes()
                    profiles[key.encode()] = value
                    cache.keep(key, value, profile)
                # After the profiles: a crash in between leaves the models behind the profiles
                # (their labels go unlearned, counted), never ahead (stream.partition).
                learner_table[_learner_key(partition)] = learners[partition].to_bytes()
                if identity is not None:
                    identity.drop_taken(result.taken)
                if settings.eviction_budget:
                    looked, evicted = sweeper.sweep(profiles, partition, watermark)
                    result.counters["eviction:looked"] += looked
                    result.counters["eviction:evicted"] += evicted
            metrics.observe_batch(result, emitted_at_ms)
            metrics.observe_watermark(partition, watermark)
        # Where a partition stopped at an identity await whose handoff has not arrived.
        waiting = {
            a.partition: a.events[result.waiting].message.offset
            for a, (_, result) in zip(work, results, strict=True)
            if result.waiting is not None
        }
        for a in admitted:
            await _settle(a, sequencer, app.consumer, metrics, waiting.get(a.partition))
        for a in work:
            next_offset = waiting.get(a.partition, a.events[-1].message.offset + 1)
            positions[a.partition[1]] = next_offset
        for a, (first, result) in zip(work, results, strict=True):
            if identity is not None and result.waiting_for is not None:
                with _in_partition_of(first):  # it reads the partition's handoffs
                    await identity.wait(a.partition[1], waiting[a.partition], result.waiting_for)

    @app.on_partitions_revoked.connect
    async def _stop_sequencing(_sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        revoked: set[TP] = args[0]  # Faust sends the revoked partitions as the one argument
        sequencer.end((tp.topic, tp.partition) for tp in revoked)
        cache.clear()  # its profiles are another worker's to change now
        for tp in revoked:
            if tp.topic == names.events:
                learners.pop(tp.partition, None)
                if identity is not None:
                    identity.forget_partition(tp.partition)

    @app.on_rebalance_complete.connect
    async def _start_sequencing(_sender: Any, /, *_args: Any, signal: Any, **_: Any) -> None:
        # Sent once the assigned partitions' state is recovered, before Faust resumes and seeks
        # the stream partitions; its seek goes to these same committed offsets.
        assigned = [tp for tp in app.consumer.assignment() if tp.topic == names.events]
        for tp, offset in (await _start_offsets(cast(Any, app.consumer), assigned)).items():
            sequencer.begin((tp.topic, tp.partition), offset)

    @app.agent(events, name="process-events")
    async def process_events(stream: StreamT[Any]) -> None:
        # take_events exists on faust.Stream but is missing from the StreamT interface.
        batches = cast(faust.Stream[bytes], stream).take_events(
            settings.batch_max, within=settings.batch_within_s
        )
        async for batch in batches:
            await handle_or_exit(handle, batch)

    async def erase(record: EventT[bytes]) -> None:
        async with state_lock:
            # An erased profile is never served from the cache (the table no longer holds its
            # bytes), but it must not stay in memory either; erasures are rare, so all goes.
            cache.clear()
            await _erase(record, eraser, app.producer, names, clock, metrics, identity)

    @app.agent(erasures, name="erase-users")
    async def erase_users(stream: StreamT[Any]) -> None:
        async for record in stream.events():
            await handle_or_exit(erase, record)

    @app.timer(interval=STALL_CHECK_S)  # type: ignore[untyped-decorator]
    async def seek_stalled_partitions() -> None:
        highwaters = {}
        for tp in app.consumer.assignment():
            highwater = app.consumer.highwater(tp) if tp.topic == names.events else None
            if highwater is not None:
                highwaters[(tp.topic, tp.partition)] = highwater
        for partition, offset in sequencer.stalled(highwaters).items():
            if identity is not None and identity.is_waiting(partition[1]):
                continue  # paused at an identity await: fetched again below
            await _seek_back(app.consumer, partition, offset, f"no progress in {STALL_CHECK_S} s")
            metrics.observe_sequencing(0, 0, rewound=True)
        if identity is not None:
            await identity.retry_waiting()

    @app.timer(interval=10.0)  # type: ignore[untyped-decorator]
    async def log_stats() -> None:
        counters = dict(sorted(metrics.counters.items()))
        log.info("worker stats %s", counters, extra={"counters": counters})

    return app


async def _start_offsets(consumer: Any, assigned: list[TP]) -> dict[TP, int]:
    """Where each assigned partition's processing starts: its committed offset, or where its
    log begins when nothing was committed yet (the consumer's offset reset is "earliest").

    ``seek_to_committed`` is the call Faust makes right after this one, to the same offsets;
    it and ``earliest_offsets`` are on Faust's Consumer but not on the ConsumerT interface.
    """
    committed = {
        (tp.topic, tp.partition): offset
        for tp, offset in (await consumer.seek_to_committed()).items()
        if offset is not None and offset >= 0
    }
    fresh = [tp for tp in assigned if (tp.topic, tp.partition) not in committed]
    earliest = await consumer.earliest_offsets(*fresh) if fresh else {}
    return {tp: committed.get((tp.topic, tp.partition), earliest.get(tp, 0)) for tp in assigned}


def _by_partition(batch: Sequence[EventT[bytes]]) -> Iterator[list[EventT[bytes]]]:
    groups: dict[tuple[str, int], list[EventT[bytes]]] = defaultdict(list)
    for event in batch:
        groups[(event.message.topic, event.message.partition)].append(event)
    yield from groups.values()


@dataclass(frozen=True, slots=True)
class _Admitted:
    """One source partition's records of a batch, sorted by the sequencer."""

    partition: Partition
    admission: Admission
    #: The records to process, in offset order.
    events: list[EventT[bytes]]
    #: The records to leave unprocessed and unacknowledged (see agents.sequencer).
    deferred: list[EventT[bytes]]


def _admit(sequencer: OffsetSequencer, group: list[EventT[bytes]]) -> _Admitted:
    partition = (group[0].message.topic, group[0].message.partition)
    admission = sequencer.plan(partition, [e.message.offset for e in group])
    events = [group[i] for i in admission.process]
    deferred = group[len(group) - admission.deferred :] if admission.deferred else []
    return _Admitted(partition, admission, events, deferred)


async def _settle(
    admitted: _Admitted,
    sequencer: OffsetSequencer,
    consumer: Any,
    metrics: WorkerMetrics,
    waiting_at: int | None = None,
) -> None:
    """After the batch is written: record progress, hold back what was deferred, and seek a
    partition back to the record it is missing, or to the identity await it waits at."""
    admission = admitted.admission
    deferred = admitted.deferred
    if waiting_at is not None:
        # The await and everything after it: not processed, processed again once the
        # handoff is there (agents.batch stopped at it). A hole after it is not one yet.
        deferred = [e for e in admitted.events if e.message.offset >= waiting_at] + deferred
        admission = replace(admission, next_offset=waiting_at, hole=None)
    sequencer.advance(admitted.partition, admission)
    topic, number = admitted.partition
    if admission.next_offset is not None:
        _forget_gaps_from(consumer, TP(topic, number), admission.next_offset)
    if admission.gap is not None:
        log.warning(
            "offsets %d to %d of %s[%d] are not in the log: stepped over",
            admission.gap[0],
            admission.gap[1] - 1,
            topic,
            number,
            extra={"partition": number, "gap": list(admission.gap)},
        )
    for event in deferred:
        # Faust's take_events acknowledges every event of the batch once the agent moves on,
        # and an acknowledged offset may be committed. Marked as acknowledged already, these
        # are left out of that bookkeeping, so the committed offset cannot pass them.
        event.message.acked = True
    if admission.hole is not None:  # (none when waiting: agents.identity pauses and seeks)
        resume_at, got = admission.hole
        await _seek_back(consumer, admitted.partition, resume_at, f"got offset {got}")
    metrics.observe_sequencing(
        admission.redelivered, admission.deferred, admission.hole is not None
    )


def _forget_gaps_from(consumer: Any, tp: TP, offset: int) -> None:
    """Drop what Faust believes are gaps in the log at or after ``offset``.

    Faust records a "gap" whenever a record it reads is more than one past the last one it read
    (meant for compacted or transactional topics) and commits across gaps as if their offsets
    were acknowledged. After a seek, records of a fetch still in flight can make it record a
    gap over records that exist and were never processed (read in Faust's code; the losses
    seen in tests were its dropped records), and the committed offset would then pass them.
    The sequencer decides what the log's real gaps are; only offsets below the next one to
    process may be committed.
    (``_gap`` is Faust's private map of IntervalTrees; faust-streaming is pinned for this.)
    """
    gaps = getattr(consumer, "_gap", {}).get(tp)
    if gaps:
        gaps.chop(offset, sys.maxsize)


async def _seek_back(
    consumer: Any, partition: Partition, offset: int, why: str, level: int = logging.WARNING
) -> None:
    topic, number = partition
    log.log(
        level,
        "records missing in %s[%d] from offset %d (%s): seeking back",
        topic,
        number,
        offset,
        why,
        extra={"partition": number, "seek_to": offset},
    )
    # seek_wait runs in the consumer's own thread. Consumer.seek would change the fetcher from
    # this one while that thread may be reading it: aiokafka then raised KeyError in
    # fetched_records and the worker crashed (seen once in CI).
    await consumer.seek_wait({TP(topic, number): offset})


def _learner_key(partition: int) -> bytes:
    return str(partition).encode()


def _learner_of(
    learners: dict[int, PartitionLearner], table: Any, first: EventT[bytes], config: StepConfig
) -> PartitionLearner:
    """The partition's learner: in memory, else its last snapshot in the table, else new."""
    partition = first.message.partition
    learner = learners.get(partition)
    if learner is None:
        with _in_partition_of(first):
            stored = table.get(_learner_key(partition))
        if stored is not None:
            try:
                learner = PartitionLearner.from_bytes(stored, config)
            except SnapshotError:
                # Written by other models (a new version shares the table only by mistake):
                # start fresh rather than stop the partition. Logged: it resets learning.
                log.exception("partition %d: unreadable learner snapshot, starting anew", partition)
        if learner is None:
            learner = PartitionLearner.new(partition, config)
        learners[partition] = learner
    return learner


async def _erase(
    record: EventT[bytes],
    eraser: Eraser,
    producer: Any,
    names: Names,
    clock: Clock,
    metrics: WorkerMetrics,
    identity: IdentityStage | None = None,
) -> None:
    """Carry out one erasure request (agents.erasure): the state first, then, once the broker
    acknowledged the tombstones, the audit record. With identities stitched, the handoffs
    waiting for the user go too, and the identity stage is asked to forget the key's links."""
    request = eraser.parse(record)
    if not isinstance(request, ErasureRequest):
        await producer.send_and_wait(
            names.deadletters, request.key, request.to_bytes(), None, None, None
        )
        metrics.observe_erasure("invalid")
        return
    home = eraser.home_partition(request)
    if home != record.message.partition:
        # Keyed by something else than the user key: the state is on another partition.
        await producer.send_and_wait(
            names.erasures, request.user_key.encode(), request.to_bytes(), home, None, None
        )
        metrics.observe_erasure("forwarded")
        return
    with _in_partition_of(record):
        linked = eraser.linked(request)
    for other in linked:
        await producer.send_and_wait(
            names.erasures, other.user_key.encode(), other.to_bytes(), None, None, None
        )
    with _in_partition_of(record):
        audit = eraser.erase(record, request, clock(), linked)
        if identity is not None:
            identity.drop_handoffs_to(request.user_key, audit.suppressed_until_ms)
    if identity is not None:
        await identity.unlink(request.user_key, audit.suppressed_until_ms)
    await producer.flush()  # the tombstones and the suppression, before the audit says "done"
    await producer.send_and_wait(
        names.audit, audit.subject.encode(), audit.to_bytes(), None, None, None
    )
    metrics.observe_erasure("done")
    log.info(
        "erasure %s done on partition %d",
        request.request_id,
        audit.partition,
        extra={"request_id": request.request_id, "removed": audit.removed.to_dict()},
    )


def _process_partition(
    group: Sequence[EventT[bytes]],
    profiles: Any,
    config: StepConfig,
    learner: PartitionLearner,
    suppression: SuppressionLookup,
    identity: IdentityStage | None,
    cache: ProfileCache,
) -> BatchResult:
    records = [
        RawRecord(
            SourcePosition(e.message.topic, e.message.partition, e.message.offset),
            e.message.key,
            e.message.value or b"",  # a null value (tombstone) is not an event: dead-lettered
            _timestamp_ms(e.message.timestamp),
            identity is not None and is_control(e.message.headers),
        )
        for e in group
    ]
    with _in_partition_of(group[0]):
        return process_records(
            records,
            lambda key: profiles.get(key.encode()),
            config,
            learner,
            suppression,
            None if identity is None else identity.handoff_of,
            cache,
        )


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
        for reward in result.rewards:
            pending.append(
                await producer.send(
                    topics.rewards, reward.user_key.encode(), reward.to_bytes(), None, None, None
                )
            )
        for letter in result.deadletters:
            pending.append(
                await producer.send(
                    topics.deadletters, letter.key, letter.to_bytes(), None, None, None
                )
            )
        for handoff in result.handoffs:  # to the person's partition (stream.router)
            pending.append(
                await producer.send(
                    topics.handoffs, handoff.person.encode(), handoff.to_bytes(), None, None, None
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

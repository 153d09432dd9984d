"""The offset sequencer: each partition's records processed once, in order, whatever the
consumer delivers (holes, rewinds, repeats, batches from before a rebalance)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from faust.types import TP
from hypothesis import example, given, settings
from hypothesis import strategies as st
from intervaltree import IntervalTree

from agents.app import _admit, _settle
from agents.metrics import WorkerMetrics
from agents.sequencer import GAP_CONFIRMATIONS, Admission, OffsetSequencer

P = ("events", 0)


def test_a_partition_that_is_not_ready_defers_everything_without_seeking() -> None:
    seq = OffsetSequencer()
    assert seq.plan(P, [5, 6, 7]) == Admission((), 0, 3, None)
    seq.begin(P, 5)
    seq.end([P])
    assert not seq.is_ready(P)
    assert seq.plan(P, [5]).deferred == 1


def test_in_order_records_are_processed_and_progress_is_recorded_only_on_advance() -> None:
    seq = OffsetSequencer()
    seq.begin(P, 100)
    first = seq.plan(P, [100, 101, 102])
    assert first == Admission((0, 1, 2), 0, 0, 103)
    # Not advanced (the batch failed and is retried): the same plan again.
    assert seq.plan(P, [100, 101, 102]) == first
    seq.advance(P, first)
    assert seq.plan(P, [100, 101, 102, 103]) == Admission((3,), 3, 0, 104)


def test_a_hole_defers_the_rest_of_the_batch_and_asks_to_seek_back() -> None:
    seq = OffsetSequencer()
    seq.begin(P, 10)
    plan = seq.plan(P, [10, 11, 15, 16, 12])
    # 12 comes after the hole in delivery order: processing it before 15 and 16 were sorted out
    # would be fine, but the sequencer does not reorder; everything after the hole waits.
    assert plan == Admission((0, 1), 0, 3, 12, hole=(12, 15))


def test_a_hole_that_seeking_back_cannot_fill_is_stepped_over_after_confirmations() -> None:
    seq = OffsetSequencer()
    seq.begin(P, 10)
    for _ in range(GAP_CONFIRMATIONS - 1):  # offsets 10 and 11 are not in the log
        plan = seq.plan(P, [12, 13])
        assert plan.process == () and plan.resume_at == 10
        seq.advance(P, plan)
    plan = seq.plan(P, [12, 13])
    assert plan == Admission((0, 1), 0, 0, 14, gap=(10, 12))


def test_a_hole_filled_in_between_resets_the_confirmations() -> None:
    seq = OffsetSequencer()
    seq.begin(P, 10)
    seq.advance(P, seq.plan(P, [12]))
    seq.advance(P, seq.plan(P, [10]))  # the seek back worked: 10 arrived
    for _ in range(GAP_CONFIRMATIONS - 1):
        plan = seq.plan(P, [13])
        assert plan.resume_at == 11
        seq.advance(P, plan)


def test_a_partition_cannot_begin_without_an_offset() -> None:
    with pytest.raises(ValueError, match="no offset"):
        OffsetSequencer().begin(P, -1)  # what a broker answers for "nothing committed"


def test_a_partition_is_stalled_only_after_a_whole_check_without_progress() -> None:
    seq = OffsetSequencer()
    seq.begin(P, 10)
    assert seq.stalled({P: 20}) == {}
    seq.advance(P, seq.plan(P, [10, 11]))
    assert seq.stalled({P: 20}) == {}  # it moved since the last look
    assert seq.stalled({P: 20}) == {P: 12}
    assert seq.stalled({P: 12}) == {}  # caught up with the log: nothing missing
    seq.end([P])
    assert seq.stalled({P: 20}) == {}


def test_partitions_are_independent() -> None:
    seq = OffsetSequencer()
    seq.begin(("events", 0), 3)
    seq.begin(("events", 1), 50)
    seq.advance(("events", 0), seq.plan(("events", 0), [3, 4]))
    assert seq.plan(("events", 1), [50]).process == (0,)
    assert seq.plan(("events", 0), [5]).process == (0,)


class _FaultyConsumer:
    """A consumer of one partition's log ``0..size-1`` that misbehaves as Faust was seen to:
    it may skip ahead (drop records), jump back, or repeat, until the faults run out; a seek
    puts it back where it is told. It does not drop the same records from the same position
    :data:`GAP_CONFIRMATIONS` times in a row: that is what a real gap in the log looks like.
    Jumping back repeats records (a redelivery), never from inside records it dropped: that
    would show the same hole once more without a skip."""

    def __init__(self, size: int, faults: list[tuple[str, int]]) -> None:
        self.size = size
        self.position = 0
        self.faults = faults
        self.skips: list[tuple[int, int]] = []

    def seek(self, offset: int) -> None:
        self.position = offset

    def batch(self, length: int) -> list[int]:
        if self.faults:
            kind, amount = self.faults.pop(0)
            skip = (self.position, min(self.position + amount, self.size))
            repeats = self.skips[-(GAP_CONFIRMATIONS - 1) :]
            if kind == "skip" and repeats.count(skip) < GAP_CONFIRMATIONS - 1:
                self.skips.append(skip)
                self.position = skip[1]
            elif kind == "rewind":
                back = max(self.position - amount, 0)
                self.position = min([a for a, b in self.skips if a < back < b], default=back)
        out = list(range(self.position, min(self.position + length, self.size)))
        self.position += len(out)
        return out


@settings(max_examples=300, deadline=None)
@example(
    size=21, start=0, lengths=[1], faults=[("skip", 7), ("skip", 7), ("skip", 21), ("rewind", 14)]
)
@given(
    size=st.integers(0, 300),
    start=st.integers(0, 20),
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=8),
    faults=st.lists(st.tuples(st.sampled_from(["skip", "rewind", "none"]), st.integers(1, 60))),
)
def test_every_record_is_processed_exactly_once_and_in_order(
    size: int, start: int, lengths: list[int], faults: list[tuple[str, int]]
) -> None:
    start = min(start, size)
    consumer = _FaultyConsumer(size, list(faults))
    consumer.seek(start)
    seq = OffsetSequencer()
    seq.begin(P, start)
    processed: list[int] = []
    for round_ in range(10 * (size + len(faults) + 2)):
        offsets = consumer.batch(lengths[round_ % len(lengths)])
        if not offsets:  # nothing delivered: the agent's periodic check for stalled partitions
            for _, offset in seq.stalled({P: size}).items():
                consumer.seek(offset)
            continue
        plan = seq.plan(P, offsets)
        processed.extend(offsets[i] for i in plan.process)
        seq.advance(P, plan)
        if plan.resume_at is not None:
            consumer.seek(plan.resume_at)
    assert processed == list(range(start, size))


@settings(max_examples=200, deadline=None)
@given(present=st.sets(st.integers(0, 200), max_size=80), length=st.integers(1, 30))
def test_offsets_missing_from_the_log_are_stepped_over_and_the_rest_processed_in_order(
    present: set[int], length: int
) -> None:
    log = sorted(present)  # a log with holes (transaction markers, compaction)
    seq = OffsetSequencer()
    seq.begin(P, 0)
    position, processed = 0, list[int]()
    for _ in range(GAP_CONFIRMATIONS * (len(log) + 1) + 10):
        batch = [o for o in log if o >= position][:length]
        if not batch:
            break
        plan = seq.plan(P, batch)
        processed.extend(batch[i] for i in plan.process)
        seq.advance(P, plan)
        position = plan.resume_at if plan.resume_at is not None else batch[-1] + 1
    assert processed == log


# --- the adapter's use of it: what happens to deferred records, Faust's gaps and the seek ---


class _Message:
    def __init__(self, offset: int) -> None:
        self.topic, self.partition, self.offset = P[0], P[1], offset
        self.tp = TP(*P)
        self.acked = False


class _Event:
    def __init__(self, offset: int) -> None:
        self.message = _Message(offset)


class _Consumer:
    def __init__(self) -> None:
        self._gap = {TP(*P): IntervalTree.from_tuples([(3, 9)])}
        self.seeks: list[tuple[TP, int]] = []

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        self.seeks.extend(partitions.items())


def test_after_a_hole_the_rest_stays_unacknowledged_faust_gaps_go_and_the_consumer_seeks() -> None:
    seq = OffsetSequencer()
    seq.begin(P, 4)
    events = [_Event(o) for o in (3, 4, 5, 8, 9)]
    admitted = _admit(seq, cast(Any, events))
    assert [e.message.offset for e in admitted.events] == [4, 5]
    consumer = _Consumer()
    metrics = WorkerMetrics("test")
    asyncio.run(_settle(admitted, seq, consumer, metrics))
    assert [e.message.acked for e in events] == [False, False, False, True, True]
    assert consumer.seeks == [(TP(*P), 6)]
    # Faust's gap over 3..8 may only cover what was processed: 3..5.
    assert sorted((i.begin, i.end) for i in consumer._gap[TP(*P)]) == [(3, 6)]
    assert metrics.counters["sequencer:redelivered"] == 1
    assert metrics.counters["sequencer:deferred"] == 2
    assert metrics.counters["sequencer:rewinds"] == 1
    assert seq.plan(P, [6]).process == (0,)

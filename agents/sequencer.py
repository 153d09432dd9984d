"""Each source partition's records processed once, strictly in offset order; no Faust in here.

Why the agent needs this. Around a rebalance Faust can hand a stream a partition's records with
holes or out of order, and it never hands the missing ones over again (measured on the embedded
broker in the scale-in and kill -9 tests, faust-streaming 0.15.3):

* recovery resumes the stream partitions *before* seeking them to the committed offsets, so a
  fetch from before the seek can still be in flight; its records raise Faust's "read offset"
  past the seek position, and Faust then silently drops the re-fetched records below it;
* records Faust drops or skips are never acknowledged, so the committed offset stops there while
  later records keep flowing: the partition looks alive, but its lag never closes.

Two things downstream depend on order. The profile's redelivery guard (skip an offset at or
below the last one applied for that partition) is sound only if a partition's records are
applied in offset order; and an offset acknowledged without being processed may be committed
past, which loses it for good.

A hole is only seen when a later record arrives. When Faust drops a partition's last records
and nothing newer comes, the partition would wait for new traffic; so the agent also asks,
every few seconds, which partitions are :meth:`~OffsetSequencer.stalled` (no progress since the
last check while the log holds records beyond their next offset), and seeks those back too.

Offsets missing from the log itself (transaction markers, compaction: the events topic should
have neither) would look like a hole that seeking back cannot fill. So a hole seen again at
the same place after :data:`GAP_CONFIRMATIONS` seeks is taken as a real gap in the log: it is
stepped over, and the agent logs it.

So the agent admits records through an :class:`OffsetSequencer`. It knows, per assigned
partition, the next offset to process: the committed offset when the partition was (re)assigned,
then one past each record processed. A record below it was processed already (redelivered) and
is dropped; the record at it is processed; a record above it means a hole, so it and everything
after it in the batch are *deferred*: neither processed nor acknowledged, and the consumer is
sought back to the missing offset. A partition that is not (yet) assigned and ready defers all
its records: the rebalance will seek it.

Admission is a plan: :meth:`OffsetSequencer.plan` changes nothing, and :meth:`~OffsetSequencer.
advance` records progress only once the batch's outputs and profiles are written, so a batch that
fails and is retried is planned again from the same position.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["GAP_CONFIRMATIONS", "Admission", "OffsetSequencer", "Partition"]

#: How many times the same hole must be seen (with a seek back in between) before it is taken
#: as offsets that are not in the log. A stale record delivered twice must not be enough.
GAP_CONFIRMATIONS = 3

#: A source partition: (topic, partition).
Partition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Admission:
    """What to do with one partition's records of a batch, given in delivery order.

    >>> seq = OffsetSequencer()
    >>> seq.begin(("events", 0), 10)
    >>> seq.plan(("events", 0), [8, 9, 10, 11, 13, 14])  # doctest: +NORMALIZE_WHITESPACE
    Admission(process=(2, 3), redelivered=2, deferred=2, next_offset=12, hole=(12, 13), gap=None)
    """

    #: Indexes of the records to process, in order (their offsets are consecutive).
    process: tuple[int, ...]
    #: Records below the next offset: processed already, dropped.
    redelivered: int
    #: Records neither processed nor to be acknowledged (after a hole, or partition not ready).
    deferred: int
    #: The partition's next offset once the processed records are done (None: not ready).
    next_offset: int | None
    #: The hole as (next offset, first offset delivered after it), when there was one.
    hole: tuple[int, int] | None = None
    #: A confirmed gap in the log that was stepped over, as (first missing, first present).
    gap: tuple[int, int] | None = None

    @property
    def resume_at(self) -> int | None:
        """Where to seek the consumer back to, when records were deferred past a hole."""
        return None if self.hole is None else self.hole[0]


class OffsetSequencer:
    """The next offset to process for every assigned, ready partition."""

    def __init__(self) -> None:
        self._next: dict[Partition, int] = {}
        #: The next offset of each partition when :meth:`stalled` last looked.
        self._checked: dict[Partition, int] = {}
        #: The last hole of each partition and how many times in a row it was seen.
        self._holes: dict[Partition, tuple[tuple[int, int], int]] = {}

    def begin(self, partition: Partition, offset: int) -> None:
        """The partition is assigned and its state recovered: process from ``offset`` (its
        committed offset, or where its log begins when nothing was committed yet)."""
        if offset < 0:
            raise ValueError(f"{partition}: no offset to begin at ({offset})")
        self._next[partition] = offset

    def end(self, partitions: Iterable[Partition]) -> None:
        """The partitions were revoked: defer their records until they are begun again."""
        for partition in partitions:
            self._next.pop(partition, None)
            self._checked.pop(partition, None)
            self._holes.pop(partition, None)

    def is_ready(self, partition: Partition) -> bool:
        return partition in self._next

    def plan(self, partition: Partition, offsets: Sequence[int]) -> Admission:
        """Classify ``offsets`` (one partition's records, in delivery order); changes nothing."""
        if partition not in self._next:
            return Admission((), 0, len(offsets), None)
        expected = self._next[partition]
        process: list[int] = []
        redelivered = 0
        gap = None
        for index, offset in enumerate(offsets):
            if offset > expected and self._confirms_gap(partition, (expected, offset)):
                gap = (expected, offset)
                expected = offset
            if offset < expected:
                redelivered += 1
            elif offset == expected:
                process.append(index)
                expected += 1
            else:  # a hole: nothing after it may be processed before the missing records
                deferred = len(offsets) - index
                hole = (expected, offset)
                return Admission(tuple(process), redelivered, deferred, expected, hole, gap)
        return Admission(tuple(process), redelivered, 0, expected, None, gap)

    def _confirms_gap(self, partition: Partition, hole: tuple[int, int]) -> bool:
        seen, times = self._holes.get(partition, (None, 0))
        return seen == hole and times + 1 >= GAP_CONFIRMATIONS

    def advance(self, partition: Partition, admission: Admission) -> None:
        """The admitted records are done: move the partition's next offset past them."""
        if partition in self._next and admission.next_offset is not None:
            self._next[partition] = admission.next_offset
        if admission.hole is not None:
            seen, times = self._holes.get(partition, (None, 0))
            self._holes[partition] = (admission.hole, times + 1 if seen == admission.hole else 1)
        elif admission.process:
            self._holes.pop(partition, None)

    def stalled(self, highwaters: Mapping[Partition, int]) -> dict[Partition, int]:
        """Partitions that made no progress since the previous call although the log (its
        ``highwaters``: one past the last record) holds records from their next offset on;
        each with the offset to seek back to.

        >>> seq = OffsetSequencer()
        >>> seq.begin(("events", 0), 7)
        >>> seq.stalled({("events", 0): 9})  # the first look only takes note
        {}
        >>> seq.stalled({("events", 0): 9})
        {('events', 0): 7}
        """
        stalled: dict[Partition, int] = {}
        for partition, expected in self._next.items():
            highwater = highwaters.get(partition)
            if highwater is None or highwater <= expected:
                continue
            if self._checked.get(partition) == expected:
                stalled[partition] = expected
        self._checked = dict(self._next)
        return stalled

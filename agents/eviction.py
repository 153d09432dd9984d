"""Deleting idle profiles from the table, a few at a time, by each partition's watermark.

The rule is pure (:func:`stream.eviction.evictable`); this module only walks the RocksDB store
of one partition and deletes through the Faust table, so the deletion reaches the changelog as a
tombstone (compaction then drops the profile for good, and a restore never brings it back).

A pass over a partition starts when its watermark has moved ``every_ms`` of event time since the
previous pass started, and proceeds ``budget`` profiles per micro-batch, resuming after the last
key it looked at, so a sweep never holds a batch up for long.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from stream.config import FeatureConfig
from stream.eviction import evictable
from stream.profile import Profile

__all__ = ["IdleSweeper", "SweepCursor"]


@dataclass(slots=True)
class SweepCursor:
    """Where a partition's pass is: the watermark it started at and the last key it looked at
    (``None`` when no pass is running)."""

    started_at: int | None = None
    after_key: bytes | None = None
    running: bool = False


@dataclass(slots=True)
class IdleSweeper:
    """Owned by the worker; one cursor per partition. A cursor holds no open iterator, only a
    key, so a partition that moves away and back simply resumes its pass."""

    config: FeatureConfig
    budget: int = 100
    every_ms: int = 3_600_000
    cursors: dict[int, SweepCursor] = field(default_factory=dict)

    def sweep(self, table: Any, partition: int, watermark_ms: int | None) -> tuple[int, int]:
        """Look at up to ``budget`` profiles of ``partition`` and delete the idle ones.

        Must run where the table writes to ``partition`` (the adapter sets Faust's current
        event). Returns (profiles looked at, profiles deleted).
        """
        if watermark_ms is None:
            return 0, 0
        cursor = self.cursors.setdefault(partition, SweepCursor())
        if not cursor.running:
            if cursor.started_at is not None and watermark_ms - cursor.started_at < self.every_ms:
                return 0, 0
            cursor.started_at, cursor.after_key, cursor.running = watermark_ms, None, True
        looked, idle = 0, []
        for key, value in _items_after(table, partition, cursor.after_key):
            looked += 1
            cursor.after_key = key
            # An unreadable profile has no last-seen time: never deleted here (its next event
            # dead-letters it).
            if evictable(Profile.last_seen_of(value), watermark_ms, self.config):
                idle.append(key)
            if looked >= self.budget:
                break
        else:
            cursor.running = False  # the pass reached the end of the partition
        for key in idle:
            del table[key]
        return looked, len(idle)


def _items_after(table: Any, partition: int, after: bytes | None) -> Iterator[tuple[bytes, bytes]]:
    """The partition's stored profiles in key order, strictly after ``after``.

    Reads Faust's RocksDB store directly (``_db_for_partition``, the store's ``offset_key``):
    Faust has no public per-partition iteration, and faust-streaming is pinned.
    """
    store = table.data
    db = store._db_for_partition(partition)
    for key, value in db.items(from_key=after) if after is not None else db.items():
        if key == store.offset_key or key == after:
            continue
        yield key, value

"""Which partition a key goes to: Kafka's default partitioner, so a replay can split a log the way
the broker did.

Kafka's Java client (and kafka-python, and the producers in ``scripts/``) put a keyed record in
partition ``murmur2(key) & 0x7fffffff % partitions``. The models are per partition
(:mod:`stream.partition`), so an offline replay must group events exactly like this to learn
what the live run learned.

>>> partition_for(b"user-1", 4) == partition_for(b"user-1", 4)
True
>>> murmur2(b"21")  # a value from the Java client's test suite
-973932308
"""

from __future__ import annotations

__all__ = ["murmur2", "partition_for"]

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """MurmurHash2 with Kafka's seed, as a signed 32-bit int (``Utils.murmur2`` in Java)."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length % 4
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a keyed record."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions

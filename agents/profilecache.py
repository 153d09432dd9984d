"""Profiles kept restored between batches, so a user's next batch need not decode them again.

The profiles table holds bytes. Restoring a profile (parsing it, rebuilding its windows, ordered
state and pending labels, and later the feature head the step keeps in memory) costs about 53 µs
plus the head, a tenth of stepping an event, and a worker restores one for every user of every
batch. A user's events come in bursts (a session), so the profile one batch writes is usually
read again by one of the next few batches.

The cache keeps each written profile object next to the exact bytes it was written as. A read
gets the object back only if the table still holds those same bytes; anything that changed the
table behind the cache (an erasure, an idle eviction, a restore from the changelog, another worker
owning the partition in between) is a miss, never a stale profile. Equal bytes restore to an
equal profile (the table's value is the profile's canonical serialization), so a hit changes no
output.

The step updates a profile in place, so a read takes the profile out of the cache: a batch that
fails halfway may leave it half-updated, and such an object must never be handed out again. It
comes back when its batch writes it.
"""

from __future__ import annotations

from stream import Profile

__all__ = ["ProfileCache"]


class ProfileCache:
    """At most ``capacity`` restored profiles, least recently written evicted first."""

    __slots__ = ("_capacity", "_entries")

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self._capacity = capacity
        #: user key -> (the bytes written, the profile they were written from). A dict keeps
        #: insertion order, and every write reinserts, so the first key is the oldest write.
        self._entries: dict[str, tuple[bytes, Profile]] = {}

    def restore(self, user_key: str, stored: bytes) -> tuple[Profile, bool]:
        """The profile ``stored`` holds, and whether it was kept: the kept object if it was
        written as exactly these bytes, else decoded (raises
        :class:`~stream.exceptions.SnapshotError` if it cannot be)."""
        entry = self._entries.pop(user_key, None)
        if entry is not None and entry[0] == stored:
            return entry[1], True
        return Profile.from_bytes(stored), False

    def keep(self, user_key: str, stored: bytes, profile: Profile) -> None:
        """Remember that ``profile`` was just written to the table as ``stored``."""
        if self._capacity == 0:
            return
        entries = self._entries
        entries.pop(user_key, None)
        entries[user_key] = (stored, profile)
        if len(entries) > self._capacity:
            del entries[next(iter(entries))]

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

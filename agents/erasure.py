"""Carry out erasure requests from the control topic: remove every piece of a user's state.

A request (``erasure-request.v1``, keyed by the user key) arrives on the erasures topic, which is
co-partitioned with the events: partition *p* of it is consumed by the worker that holds
partition *p* of the profiles, so the state to remove is local. For one request, under the
worker's state lock (no events batch of the partition is half-written meanwhile):

1. the user's profile is deleted (its pending labels, pending decisions, consent and idempotence
   records are in it), which writes a tombstone to the profiles changelog;
2. the user is dropped from the partition learner's pending-label index (the only place outside
   the profile that names them), and the learner snapshot is rewritten without them;
3. a suppression (keyed by the subject pseudonym, not the id) keeps the erasure in force for the
   user's events still in flight: agents.batch drops them (stream.erasure.Suppression);
4. the user's anonymous id, which their profile recorded, gets a derived request of its own
   (before anything is removed), so the anonymous profile of their visits before logging in
   goes too, on whichever partition holds it;
5. once the broker acknowledged all of that, the audit record goes to the audit topic.

The models and the bandits keep what they learned from the user's past events: they hold
aggregate weights, no record of anyone. Output topics (decisions, rewards, dead letters) are
append-only logs with a retention limit, not state: no new record names the user after the
erasure, and old ones age out with the topic's retention (README, "Privacy").

A request delivered twice (a crash before its offset was committed) is carried out twice; the
second finds nothing left and its audit record says so. Audit readers keep the first record of a
``request_id``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from faust.types import EventT

from agents.names import Names
from stream import DeadLetter, DeadLetterReason, Profile, SourcePosition
from stream.erasure import (
    ErasureAudit,
    ErasureRequest,
    InvalidErasureRequest,
    Suppression,
    linked_requests,
    removed_from,
    subject_of,
)
from stream.exceptions import SnapshotError
from stream.partition import PartitionLearner
from stream.partitioning import partition_for

__all__ = ["Eraser"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Eraser:
    """Everything an erasure touches; ``erase`` is called with the current event set to the
    request's record (so the tables read and write its partition)."""

    names: Names
    partitions: int
    profiles: Any
    learner_table: Any
    suppressions: Any
    #: The request's partition's learner (loaded from its snapshot if not in memory yet).
    learner_of: Callable[[EventT[bytes]], PartitionLearner]
    learner_key: Callable[[int], bytes]
    secret: bytes
    skew_ms: int
    #: Other compacted topics an erasure writes the user's tombstones to (the identity stage's
    #: links, when identities are stitched: agents.identity).
    also_tombstoned: tuple[str, ...] = ()

    def suppression_of(self, user_key: str) -> Suppression | None:
        """The erasure in force for ``user_key`` (read in the current event's partition)."""
        stored = self.suppressions.get(subject_of(user_key, self.secret).encode())
        return None if stored is None else Suppression.from_bytes(stored)

    def parse(self, record: EventT[bytes]) -> ErasureRequest | DeadLetter:
        message = record.message
        source = SourcePosition(message.topic, message.partition, message.offset)
        try:
            return ErasureRequest.from_bytes(message.value or b"")
        except InvalidErasureRequest as exc:
            return DeadLetter.of(
                DeadLetterReason.INVALID_ERASURE_REQUEST,
                str(exc),
                message.value or b"",
                source,
                message.key,
            )

    def home_partition(self, request: ErasureRequest) -> int:
        """Where the user's state lives: their key's partition under Kafka's default
        partitioner (a request keyed otherwise is forwarded there by the agent)."""
        return partition_for(request.user_key.encode(), self.partitions)

    def linked(self, request: ErasureRequest) -> list[ErasureRequest]:
        """Requests for the user's other keys their profile knows (stream.erasure), to be sent
        (and acknowledged) before this one's state is removed: a crash in between then
        re-sends them, instead of losing the keys with the profile."""
        return linked_requests(request, self._profile(request)[1])

    def _profile(self, request: ErasureRequest) -> tuple[bytes | None, Profile | None]:
        stored = self.profiles.get(request.user_key.encode())
        if stored is None:
            return None, None
        try:
            return stored, Profile.from_bytes(stored)
        except SnapshotError:
            log.warning("erasure %s: unreadable profile, deleted all the same", request.request_id)
            return stored, None

    def erase(
        self,
        record: EventT[bytes],
        request: ErasureRequest,
        now_ms: int,
        linked: Sequence[ErasureRequest] = (),
    ) -> ErasureAudit:
        """Remove the user's state in the record's partition; return the audit record (to be
        sent once the broker acknowledged the tombstones)."""
        partition = record.message.partition
        key = request.user_key.encode()
        stored, profile = self._profile(request)
        learner = self.learner_of(record)
        indexed = learner.forget(request.user_key)
        removed = removed_from(profile, indexed)
        if stored is not None and profile is None:
            removed = type(removed)(profile=True, learner_index=indexed)
        # Deleting writes the tombstone even when nothing is stored: the changelog's latest
        # record for the key is then a tombstone whatever came before.
        del self.profiles[key]
        if indexed:
            self.learner_table[self.learner_key(partition)] = learner.to_bytes()
        subject = subject_of(request.user_key, self.secret)
        until = request.requested_at_ms + self.skew_ms
        self.suppressions[subject.encode()] = Suppression(request.request_id, until).to_bytes()
        return ErasureAudit(
            request=request,
            subject=subject,
            partition=partition,
            removed=removed,
            tombstones=(self.names.profiles_changelog, *self.also_tombstoned),
            suppressed_until_ms=until,
            completed_at_ms=now_ms,
            cascaded=tuple(subject_of(other.user_key, self.secret) for other in linked),
        )

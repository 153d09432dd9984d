"""One source partition's learning state, and the per-record function that drives it.

**Where the models live, and why.** One set of models per source partition, updated in the
partition's offset order by whoever processes it (a worker, or an offline replay that splits a log
the way Kafka's default partitioner does). A partition's log is a total order that both the live
run and a replay see, so the models' updates, and so every prediction, are the same in both,
byte for byte. The alternatives were worse here: a central trainer publishing snapshots makes
which snapshot scored an event a matter of timing (a replay could not reproduce it), and one model
for the whole stream would need all partitions to agree on an order. The price: each partition's
model learns from its own users only (a quarter of the traffic with four partitions), and the
partition count is part of what a replay must know.

:func:`process` is :func:`~stream.step.step` plus the learning around it:

1. the step scores the user's event with the partition's models and returns the labels it
   resolved and the inputs of any new pending label;
2. the learner learns them, in that order (the scaler from the new label's inputs first: the
   models learn from standardized vectors);
3. the partition's **label clock** (event time, a robust median of recent events, minus the
   allowed lateness) moves, and every user whose pending labels it settles is looked up and
   resolved: a user who never comes back still teaches the models that they did not buy.

The users with pending labels are indexed by the event time at which the clock would settle
their next label, and the index is part of the snapshot, so a partition that moves to another
worker resolves the same labels at the same records.

**Crash semantics.** The snapshot (models, clock, index, last learned offset) is written with
every batch of profiles. A record redelivered after a crash is learned at most once (the learner
skips offsets it has learned); if a profile was stored but the snapshot was not, the record's
labels are not learned again and are counted (``missed``). Profiles stay exact either way;
predictions after such a crash can differ from a replay's.
"""

from __future__ import annotations

import bisect
import heapq
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson

from stream.config import StepConfig
from stream.events import Event
from stream.exceptions import SnapshotError
from stream.identity import (
    NOTE_ROUTED,
    Handoff,
    hand_over,
    linked_keys,
    route,
    stitch,
    take_over,
)
from stream.labels import Example, deadline, expire
from stream.models.inputs import model_inputs
from stream.models.learner import PartitionModels
from stream.policylearner import PolicyLearner
from stream.profile import Profile
from stream.rewards import Reward, close
from stream.rewards import deadline as reward_deadline
from stream.router import Link
from stream.step import SKIP_ALREADY_APPLIED, StepOutputs, step

__all__ = ["LEARNER_SCHEMA", "LabelClock", "Observer", "PartitionLearner", "ProfileStore"]

#: Called with (user key, example, the prediction it was validated with) for every example
#: learned: how the evaluation command sees each prediction against its outcome.
Observer = Callable[[str, Example, "float | list[tuple[str, float]]"], None]

LEARNER_SCHEMA = "partition-learner.v2"


class ProfileStore:
    """How :func:`PartitionLearner.process` reads and writes profiles (a dict offline; the
    batch's cache over the table in the adapter)."""

    def __init__(
        self,
        get: Callable[[str], Profile | None],
        put: Callable[[str, Profile], None],
        moved: Callable[[str], None] | None = None,
    ) -> None:
        self.get, self.put = get, put
        #: Told the key whose pending labels a merge moved away (stream.identity), when that
        #: key is indexed by another partition's learner than the one processing.
        self.moved = moved


class LabelClock:
    """The partition's event-time clock for settling labels: the largest median of the latest
    ``sample`` event times, minus ``lateness_ms``. A median, so a few devices with clocks far
    in the future cannot settle everyone's labels at once."""

    __slots__ = ("_order", "_recent", "lateness_ms", "value")

    def __init__(self, lateness_ms: int, sample: int = 101) -> None:
        self.lateness_ms = lateness_ms
        self._recent: deque[int] = deque(maxlen=sample)
        self._order: list[int] = []
        self.value: int | None = None

    def observe(self, time_ms: int) -> int | None:
        recent, order = self._recent, self._order
        if len(recent) == recent.maxlen:
            del order[bisect.bisect_left(order, recent[0])]
        recent.append(time_ms)
        bisect.insort(order, time_ms)
        median = order[(len(order) - 1) // 2] - self.lateness_ms
        if self.value is None or median > self.value:
            self.value = median
        return self.value

    def to_state(self) -> dict[str, Any]:
        return {"recent": list(self._recent), "value": self.value}

    def restore(self, state: dict[str, Any]) -> None:
        for time_ms in state["recent"]:
            self.observe(int(time_ms))
        self.value = state["value"]


@dataclass(slots=True)
class PartitionLearner:
    """Models, label clock and pending-label index of one source partition (mutable)."""

    partition: int
    models: PartitionModels
    clock: LabelClock
    policy: PolicyLearner
    #: (settle-after time, user key), lazily invalidated: ``due`` holds each user's current one.
    heap: list[tuple[int, str]] = field(default_factory=list)
    due: dict[str, int] = field(default_factory=dict)
    #: The highest source offset learned (``-1``: none); redeliveries at or below are not.
    learned_offset: int = -1
    #: Records whose profile was already applied but whose labels the models had not learned
    #: (a crash between writing profiles and writing this snapshot).
    missed: int = 0
    observer: Observer | None = None

    @classmethod
    def new(cls, partition: int, config: StepConfig) -> PartitionLearner:
        names = model_inputs(config.features.catalog).names
        return cls(
            partition,
            PartitionModels(names, config.models, partition),
            LabelClock(config.models.label_lateness_ms),
            PolicyLearner(config.policy, partition),
        )

    def process(
        self, event: Event, store: ProfileStore, config: StepConfig, routed: bool = False
    ) -> StepOutputs:
        """Step one event of this partition (in offset order) and learn what it taught.

        ``routed``: the identity stage (stream.router) sent the event to its person's
        partition, under the person's key, after the control records of the links it makes;
        otherwise, with stitching on, the links are made here (one partition holds every key).
        """
        identity_notes: tuple[str, ...] = ()
        if config.stitch_identities and not routed:
            event, identity_notes = self._resolve_identity(event, store, config)
        user = event.user_key
        profile, outputs = step(store.get(user), event, config, self.models, self.policy)
        store.put(user, profile)
        if identity_notes:
            outputs = replace(outputs, notes=outputs.notes + identity_notes, user_key=user)
        offset = event.source.offset if event.source is not None else None
        if offset is not None:
            if offset <= self.learned_offset:
                # In the snapshot already (learned, clock moved). The profile may have been
                # restored from further back and re-applied the record: index what it holds.
                self._index(user, profile, config)
                return outputs
            self.learned_offset = offset
        if outputs.skipped is None:
            if outputs.new_label is not None:
                self.models.observe_inputs(outputs.new_label)
            self._learn(user, outputs.examples)
            self._reward(outputs.rewards, config)
        elif outputs.skipped == SKIP_ALREADY_APPLIED:
            # The profile was stored after this record, the snapshot before it (a crash in
            # between): its labels are lost to the models. The clock and the index below still
            # follow the record, so every profile settles exactly as in an uninterrupted run.
            self.missed += 1
        else:
            return outputs  # a duplicate message changes nothing, the clock included
        self._index(user, profile, config)
        now = self.clock.observe(event.timestamp_ms)
        if now is not None:
            settled = self._settle(now, store, config)
            if settled:
                outputs = replace(outputs, rewards=outputs.rewards + tuple(settled))
        return outputs

    def _resolve_identity(
        self, event: Event, store: ProfileStore, config: StepConfig
    ) -> tuple[Event, tuple[str, ...]]:
        """Route the event to its person's profile and merge the keys it links
        (stream.identity)."""
        notes: list[str] = []
        target = route(event.user_key, store.get, event.source)
        if target != event.user_key:
            event = replace(event, user_key=target)
            notes.append(NOTE_ROUTED)
        for other in linked_keys(event):
            if other == target:
                continue
            note = stitch(target, other, event.timestamp_ms, store.get, store.put, config)
            if note is not None:
                notes.append(note)
                # Its pending labels moved to the person's profile, and so to this index.
                (store.moved or self.forget)(other)
        return event, tuple(notes)

    def hand_over(self, link: Link, store: ProfileStore) -> Handoff | None:
        """The other key's side of a link (a ``request`` from the identity stage): its profile
        becomes a forwarder and its pending labels leave this partition's index (``None``:
        handed over for this link already, stream.identity.hand_over)."""
        forwarder, handoff = hand_over(store.get(link.key), link.key, link.person, link.at_ms)
        store.put(link.key, forwarder)
        self.forget(link.key)
        return handoff

    def take_over(self, handoff: Handoff, store: ProfileStore, config: StepConfig) -> str:
        """The person's side of a link (an ``await``, with the handoff it waited for); the
        person's next event indexes the labels that moved in, as a link made in place does."""
        person, note = take_over(store.get(handoff.person), handoff.person, handoff, config)
        store.put(handoff.person, person)
        return note

    def forget(self, user: str) -> bool:
        """Drop ``user`` from the pending-label index (an erasure): whether it was there.

        The heap entry stays and is skipped when reached, like a superseded one."""
        return self.due.pop(user, None) is not None

    def _reward(self, rewards: Sequence[Reward], config: StepConfig) -> None:
        for reward in rewards:
            self.policy.learn(reward, config.policy)

    def _learn(self, user: str, examples: Sequence[Example]) -> None:
        learn, observer = self.models.learn, self.observer
        for example in examples:
            prediction = learn(example)
            if observer is not None:
                observer(user, example, prediction)

    def _index(self, user: str, profile: Profile, config: StepConfig) -> None:
        settles_after = deadline(
            profile.labels,
            profile.last_seen_ms,
            config.models.conversion_horizon_ms,
            config.features.session_gap_ms,
        )
        rewards_after = reward_deadline(profile.decisions, config.policy.rewards)
        if rewards_after is not None and (settles_after is None or rewards_after < settles_after):
            settles_after = rewards_after
        if settles_after is None:
            self.due.pop(user, None)
        elif self.due.get(user) != settles_after:
            self.due[user] = settles_after
            heapq.heappush(self.heap, (settles_after, user))

    def _settle(self, now: int, store: ProfileStore, config: StepConfig) -> list[Reward]:
        """Resolve the labels and settle the decisions of every user the clock has passed;
        return the settled decisions (already learned)."""
        heap, due = self.heap, self.due
        settled: list[Reward] = []
        while heap and heap[0][0] < now:
            settles_after, user = heapq.heappop(heap)
            if due.get(user) != settles_after:
                continue  # superseded by a later index entry
            try:
                profile = store.get(user)
            except SnapshotError:
                profile = None  # unreadable: its own next event dead-letters (agents.batch)
            if profile is None:  # or deleted (idle eviction) since it was indexed
                del due[user]
                continue
            examples: list[Example] = []
            profile.labels = expire(
                profile.labels,
                now,
                profile.last_seen_ms,
                config.models.conversion_horizon_ms,
                config.features.session_gap_ms,
                examples,
            )
            rewards: list[Reward] = []
            if profile.decisions:
                profile.decisions = close(
                    profile.decisions, now, config.policy.rewards, user, rewards
                )
            store.put(user, profile)
            self._learn(user, examples)
            self._reward(rewards, config)
            settled.extend(rewards)
            del due[user]
            self._index(user, profile, config)
        return settled

    # -- snapshots -----------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "schema": LEARNER_SCHEMA,
                "partition": self.partition,
                "models": self.models.to_state(),
                "policy": self.policy.to_state(),
                "clock": self.clock.to_state(),
                # Sorted: the index's content, not the heap's layout, is the state.
                "due": sorted(self.due.items()),
                "learned_offset": self.learned_offset,
                "missed": self.missed,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes, config: StepConfig) -> PartitionLearner:
        """Restore a snapshot; raises :class:`SnapshotError` for another schema or models."""
        try:
            doc = orjson.loads(data)
            if doc.get("schema") != LEARNER_SCHEMA:
                raise SnapshotError(f"unsupported learner schema {doc.get('schema')!r}")
            learner = cls(
                int(doc["partition"]),
                PartitionModels.from_state(doc["models"], config.models),
                LabelClock(config.models.label_lateness_ms),
                PolicyLearner.from_state(doc["policy"], config.policy, int(doc["partition"])),
            )
            learner.clock.restore(doc["clock"])
            learner.due = {str(user): int(at) for user, at in doc["due"]}
            learner.heap = [(at, user) for user, at in learner.due.items()]
            heapq.heapify(learner.heap)
            learner.learned_offset = int(doc["learned_offset"])
            learner.missed = int(doc["missed"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SnapshotError(f"cannot restore partition learner: {exc}") from exc
        return learner

"""One micro-batch of raw records through the pure step; no Faust in here.

The agent hands over the records of one source partition and a way to read stored profiles; this
module decodes, steps and collects what to send and what to store: at most one profile value per
user, however many of their events the batch holds. Nothing here raises on bad input: a record
that cannot be decoded, or whose step fails, becomes a dead letter.

Each record goes through the partition's :class:`~stream.partition.PartitionLearner` when the
agent hands one over (the step plus the models' learning, in offset order, as in an offline
replay); the learner may also resolve other users' pending labels, and their profiles are then
part of the batch's writes too.

The step updates a profile in place. If it raises halfway, the profile may be half-updated, so
the user's profile is rebuilt: restored from its stored bytes and stepped again through the
events of this batch that had succeeded (the step is deterministic, so they succeed again).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from agents.profilecache import ProfileCache
from stream import (
    DeadLetter,
    DeadLetterReason,
    Decision,
    Event,
    Profile,
    SourcePosition,
    StepConfig,
    decode_event,
    step,
)
from stream.erasure import Suppression
from stream.identity import Handoff, take_over
from stream.partition import PartitionLearner, ProfileStore
from stream.rewards import Reward
from stream.router import Link

__all__ = ["BatchResult", "RawRecord", "process_records"]


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A record as consumed: where it came from, its key and its undecoded value."""

    source: SourcePosition
    key: bytes | None
    value: bytes
    #: The record's Kafka timestamp (epoch ms), when known: for the processing-latency metric.
    timestamp_ms: int | None = None
    #: A control record of the identity stage (stream.router), marked so by a header only the
    #: stage sets: an event that merely looks like one is an event.
    control: bool = False


@dataclass(slots=True)
class BatchResult:
    """What a batch produced: decisions and dead letters to send, profiles to store, counts."""

    decisions: list[Decision] = field(default_factory=list)
    #: Decisions whose reward window closed in this batch (``reward.v1``, keyed by user).
    rewards: list[Reward] = field(default_factory=list)
    #: Kafka timestamp of the record behind each decision (same order as ``decisions``).
    decision_record_ms: list[int | None] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)
    profiles: dict[str, Profile] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)
    #: Event time of every decoded event, for the partition's watermark.
    event_times: list[int] = field(default_factory=list)
    #: The events applied to each user's profile in this batch, and the identity handoffs
    #: taken over into it, to rebuild it after a failure.
    applied: dict[str, list[Event | Handoff]] = field(default_factory=dict)
    #: Stored profiles read in this batch and not changed (yet): read once, not written back
    #: (identity stitching looks at the other key's profile for every event carrying both).
    read: dict[str, Profile | None] = field(default_factory=dict)
    #: What this partition hands over to persons' partitions (identity requests), to send.
    handoffs: list[Handoff] = field(default_factory=list)
    #: The awaits whose handoff was taken over: their handoffs can go.
    taken: list[Link] = field(default_factory=list)
    #: The index of the record the batch stopped at: an await whose handoff has not arrived
    #: yet. It and every later record of the partition wait (agents.identity pauses the
    #: partition at it until the handoff arrives).
    waiting: int | None = None
    #: The await the batch stopped at.
    waiting_for: Link | None = None

    def profile_bytes(self) -> dict[str, bytes]:
        """Each changed profile serialized once."""
        return {key: profile.to_bytes() for key, profile in self.profiles.items()}


ProfileLoader = Callable[[str], bytes | None]
#: A user's stored profile, restored (through the cache when there is one).
ProfileReader = Callable[[str], Profile | None]
#: The erasure still in force for a user key, if any (agents.erasure).
SuppressionLookup = Callable[[str], Suppression | None]
#: Counted for each stored profile read through the cache: kept restored, or decoded.
PROFILE_CACHE_HIT = "profile_cache:hit"
PROFILE_CACHE_MISS = "profile_cache:miss"
#: Counted for each event dropped because its user was erased after sending it.
SKIPPED_ERASED = "skipped:erased"
#: The handoff of an identity link, if it has arrived (agents.app: the handoffs table).
HandoffLookup = Callable[[Link], Handoff | None]


def process_records(
    records: Iterable[RawRecord],
    load: ProfileLoader,
    config: StepConfig,
    learner: PartitionLearner | None = None,
    suppression: SuppressionLookup | None = None,
    handoff_of: HandoffLookup | None = None,
    cache: ProfileCache | None = None,
) -> BatchResult:
    """Decode and step every record, in order, reading each user's profile at most once.

    With ``suppression``, an event of an erased user sent before the erasure (its event time
    within the suppression) is dropped: counted, no profile, no decision.

    With ``handoff_of``, the records come from the identity stage (stream.router): an event is
    the profile's of its record key (its person), and control records carry out the halves of
    identity links; at an await whose handoff has not arrived the batch stops (``waiting``).

    With ``cache``, profiles this worker wrote are not decoded again (agents.profilecache); a
    profile that must be rebuilt after a failed step is always restored from its bytes."""
    result = BatchResult()

    def restore(user_key: str) -> Profile | None:
        if cache is None:
            return _stored(user_key, load)
        stored = load(user_key)
        if stored is None:
            return None
        profile, hit = cache.restore(user_key, stored)
        result.counters[PROFILE_CACHE_HIT if hit else PROFILE_CACHE_MISS] += 1
        return profile

    store = ProfileStore(
        lambda user_key: _current_profile(result, user_key, restore),
        result.profiles.__setitem__,
    )
    erased = _Suppressions(suppression) if suppression is not None else None
    for index, record in enumerate(records):
        if record.control:
            if learner is None or handoff_of is None:
                _reject(result, record, ValueError("identity control record, stitching is off"))
            elif not _control(result, record, learner, store, config, handoff_of, erased):
                result.waiting, result.waiting_for = index, Link.from_bytes(record.value)
                break
            continue
        result.counters["events_in"] += 1
        try:
            _process_one(
                result, record, restore, config, learner, store, erased, handoff_of is not None
            )
        except StepFailed as failed:
            # Bad state, or a bug a hostile input reached: park this event with its reason and
            # keep the batch (and every other user's events) going.
            _rebuild(result, failed.user_key, load, config)
            _reject(result, record, failed.__cause__ or failed)
        except Exception as exc:  # decoding itself failed: no profile was touched
            _reject(result, record, exc)
    return result


class StepFailed(Exception):
    """The step raised for this user's event (the cause is chained)."""

    def __init__(self, user_key: str) -> None:
        super().__init__(user_key)
        self.user_key = user_key


def _reject(result: BatchResult, record: RawRecord, exc: BaseException) -> None:
    message = f"{type(exc).__name__}: {exc}"
    letter = DeadLetter.of(
        DeadLetterReason.PROCESSING_ERROR, message, record.value, record.source, record.key
    )
    _dead_letter(result, letter)


def _process_one(
    result: BatchResult,
    record: RawRecord,
    restore: ProfileReader,
    config: StepConfig,
    learner: PartitionLearner | None,
    store: ProfileStore,
    erased: _Suppressions | None,
    routed: bool = False,
) -> None:
    decoded = decode_event(record.value, record.source, record.key)
    if isinstance(decoded, DeadLetter):
        _dead_letter(result, decoded)
        return
    if routed and record.key is not None:
        person = record.key.decode()
        if person != decoded.user_key:
            decoded = replace(decoded, user_key=person)
    elif record.key is not None and record.key != decoded.user_key.encode():
        # Partitioned by another key than its profile's: counted, because one user's events
        # could then be split across partitions (and so across two profiles).
        result.counters["note:key_mismatch"] += 1
    result.event_times.append(decoded.timestamp_ms)
    if erased is not None and erased.covers(decoded.user_key, decoded.timestamp_ms):
        result.counters[SKIPPED_ERASED] += 1
        return
    before = len(result.decisions)
    _step_one(result, decoded, restore, config, learner, store, routed)
    result.decision_record_ms.extend([record.timestamp_ms] * (len(result.decisions) - before))


def _step_one(
    result: BatchResult,
    event: Event,
    restore: ProfileReader,
    config: StepConfig,
    learner: PartitionLearner | None,
    store: ProfileStore,
    routed: bool = False,
) -> None:
    if event.user_key not in result.profiles:
        # Read before stepping, so an unreadable stored profile fails here (a dead letter,
        # nothing to rebuild) rather than inside the step.
        stored = restore(event.user_key)
        if stored is not None:
            result.profiles[event.user_key] = stored
    try:
        if learner is not None:
            outputs = learner.process(event, store, config, routed)
        else:
            updated, outputs = step(result.profiles.get(event.user_key), event, config)
            result.profiles[event.user_key] = updated
    except Exception as exc:
        raise StepFailed(event.user_key) from exc
    # Stored even when the step skipped the event: see "A skipped record" in agents.app. A
    # routed event (stream.identity) is rebuilt under the profile it was applied to.
    applied_to = outputs.user_key or event.user_key
    if applied_to != event.user_key:
        event = replace(event, user_key=applied_to)
    result.applied.setdefault(applied_to, []).append(event)
    result.decisions.extend(outputs.decisions)
    result.counters["decisions_out"] += len(outputs.decisions)
    if outputs.rewards:
        result.rewards.extend(outputs.rewards)
        result.counters["rewards_out"] += len(outputs.rewards)
    if outputs.skipped:
        result.counters[f"skipped:{outputs.skipped}"] += 1
    for note in outputs.notes:
        result.counters[f"note:{note}"] += 1


def _control(
    result: BatchResult,
    record: RawRecord,
    learner: PartitionLearner,
    store: ProfileStore,
    config: StepConfig,
    handoff_of: HandoffLookup,
    erased: _Suppressions | None = None,
) -> bool:
    """Carry out one identity control record; ``False`` when it must wait (an await whose
    handoff has not arrived).

    A link made by an erased user's event still in flight (before the identity stage forgot
    their links) changes no state: the request hands over nothing, the await drops what
    arrives."""
    try:
        link = Link.from_bytes(record.value)
        if link.kind == "request":
            if erased is not None and erased.covers(link.key, link.at_ms):
                at = link.at_ms
                result.handoffs.append(Handoff(link.key, link.person, at, at, None))
                result.counters[SKIPPED_ERASED] += 1
                return True
            handoff = learner.hand_over(link, store)
            if handoff is not None:
                result.handoffs.append(handoff)
                result.counters["identity:handed_over"] += 1
            return True
        if erased is not None and erased.covers(link.person, link.at_ms):
            # Never waits: its handoff is dropped if here, and not kept when it comes
            # (agents.identity).
            result.taken.append(link)
            result.counters[SKIPPED_ERASED] += 1
            return True
        handoff = handoff_of(link)
        if handoff is None:
            person = store.get(link.person)
            if person is None or link.key not in person.aliases:
                return False
            # Taken over already: a record delivered again after its handoff was removed.
            result.counters["identity:taken_over_before"] += 1
            return True
        note = learner.take_over(handoff, store, config)
        # Replayed if a later event of the person in this batch fails (see _rebuild).
        result.applied.setdefault(handoff.person, []).append(handoff)
    except Exception as exc:  # written by the stage only: a bug, not input; parked, not lost
        _reject(result, record, exc)
        return True
    result.taken.append(link)
    result.counters[f"note:{note}"] += 1
    return True


class _Suppressions:
    """The suppression lookup, read once per user per batch (most users have none)."""

    __slots__ = ("_known", "_lookup")

    def __init__(self, lookup: SuppressionLookup) -> None:
        self._lookup = lookup
        self._known: dict[str, Suppression | None] = {}

    def covers(self, user_key: str, event_time_ms: int) -> bool:
        known = self._known
        if user_key not in known:
            known[user_key] = self._lookup(user_key)
        suppression = known[user_key]
        return suppression is not None and suppression.covers(event_time_ms)


def _current_profile(result: BatchResult, user_key: str, restore: ProfileReader) -> Profile | None:
    cached = result.profiles.get(user_key)
    if cached is not None:
        return cached
    read = result.read
    if user_key not in read:
        read[user_key] = restore(user_key)
    return read[user_key]


def _stored(user_key: str, load: ProfileLoader) -> Profile | None:
    stored = load(user_key)
    return None if stored is None else Profile.from_bytes(stored)


def _rebuild(result: BatchResult, user_key: str, load: ProfileLoader, config: StepConfig) -> None:
    result.read.pop(user_key, None)  # may be the half-updated object
    profile = _stored(user_key, load)
    for applied in result.applied.get(user_key, ()):
        if isinstance(applied, Handoff):
            profile, _ = take_over(profile, user_key, applied, config)
        else:
            profile, _ = step(profile, applied, config)
    if profile is None:
        result.profiles.pop(user_key, None)
    else:
        result.profiles[user_key] = profile


def _dead_letter(result: BatchResult, letter: DeadLetter) -> None:
    result.deadletters.append(letter)
    result.counters[f"deadletter:{letter.reason.value}"] += 1

"""Identity stitching: one person's keys, one profile.

An event that carries both a ``userId`` and an ``anonymousId`` (an SDK after ``identify``), or
an ``alias`` call (``previousId`` to ``userId``), says two keys are the same person. The history
kept under the other key is then **merged** into the person's profile, and the other key's
profile becomes a **forwarder**: an event that carries only that key is applied to the person's
profile instead (:func:`route`).

What a merge keeps (:func:`merge`):

* when the person's profile has no history yet (the first login after anonymous browsing, or
  an ``identify`` before any other event), it *is* the other history: the merged profile is
  exactly the profile of one user who did all of it;
* otherwise the two histories are added: lifetime counts, first and last seen, recency,
  revenue, the event-time windows (exactly: they depend only on the set of events), the
  events still within grace, pending labels and pending decisions; the order-dependent part
  (sessions, cart, views since the last add, affinities) is joined as one history followed by
  the other (:func:`stream.ordered.join`, exact but for the cases it names);
* an opt-out on either key holds for the person: the merged profile is the consent record.

Nothing is counted twice: a key is merged once (``Profile.aliases`` records it with the latest
event time of the history merged), and the forwarder keeps its history but not its labels or
decisions (they moved). The forwarder's history is kept until idle eviction so that a merge
whose write a crash lost (the forwarder stored, the person's profile not) is made again at the
record's redelivery, and a lost forwarder write (the other way round) is repaired without
merging twice.

A forwarder whose device later logs in as someone else follows the latest login; its history
stays with the first person it was merged into.

Pure functions over a profile reader and writer: the partition's per-record function
(:mod:`stream.partition`) calls them, live and in replay alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from stream.config import StepConfig
from stream.consent import withhold
from stream.deadletter import SourcePosition
from stream.decision import Decision
from stream.events import Event, EventType
from stream.features import ordered_settings
from stream.ordered import Moment, OrderedState, event_order, join, settle
from stream.profile import Profile
from stream.records import read_record
from stream.windowed import merge_into

__all__ = [
    "HANDOFF_SCHEMA",
    "MAX_FORWARDS",
    "NOTE_LINKED",
    "NOTE_MERGED",
    "NOTE_REPAIRED",
    "NOTE_ROUTED",
    "Handoff",
    "follow",
    "hand_over",
    "linked_keys",
    "merge",
    "route",
    "stitch",
    "take_over",
]

HANDOFF_SCHEMA = "identity-handoff.v1"

#: Another key's history was merged into the event's user's profile.
NOTE_MERGED = "identity_merged"
#: Another key was linked to the event's user, with no history to merge (yet).
NOTE_LINKED = "identity_linked"
#: A merge half-written before a crash was completed.
NOTE_REPAIRED = "identity_repaired"
#: An event that carried another key was applied to the person's profile it forwards to.
NOTE_ROUTED = "identity_routed"

#: Forwarders followed at most (an alias of an alias...); a longer chain stops at the last.
MAX_FORWARDS = 4

Reader = Callable[[str], Profile | None]


def linked_keys(event: Event) -> tuple[str, ...]:
    """The other keys ``event`` says belong to its user: the anonymous id next to a user id,
    and an alias call's previous id.

    >>> e = Event("m", EventType.IDENTIFY, "identify", "u", 0, user_id="u", anonymous_id="a")
    >>> linked_keys(e)
    ('a',)
    """
    keys: tuple[str, ...] = ()
    anonymous = event.anonymous_id
    if event.user_id is not None and anonymous is not None and anonymous != event.user_key:
        keys = (anonymous,)
    previous = event.previous_id
    if (
        event.type is EventType.ALIAS
        and previous
        and previous != event.user_key
        and previous not in keys
    ):
        keys += (previous,)
    return keys


def route(user_key: str, get: Reader, source: SourcePosition | None = None) -> str:
    """The key whose profile an event of ``user_key`` is applied to: itself, unless its profile
    forwards (a merged identity).

    A record from ``source`` that the key's own profile had applied before it was merged stays
    there: redelivered after a crash, it is skipped as applied rather than counted again under
    the person.
    """

    def forwards_to(key: str) -> str | None:
        profile = get(key)
        if profile is None:
            return None
        if source is not None and profile.applied.get(source.key, -1) >= source.offset:
            return None
        return profile.merged_into

    return follow(user_key, forwards_to)


def follow(key: str, next_of: Callable[[str], str | None]) -> str:
    """The end of ``key``'s chain of forwards (``next_of``: where a key forwards, if it does),
    at most :data:`MAX_FORWARDS` long and stopping before a cycle.

    >>> follow("a", {"a": "b", "b": "c", "c": "a"}.get)
    'c'
    """
    seen = {key}
    for _ in range(MAX_FORWARDS):
        target = next_of(key)
        if target is None or target in seen:
            break
        key = target
        seen.add(key)
    return key


def stitch(
    user_key: str,
    other_key: str,
    at_ms: int,
    get: Reader,
    put: Callable[[str, Profile], None],
    config: StepConfig,
) -> str | None:
    """Make ``other_key`` an alias of ``user_key``: merge its history in (once), and make its
    profile a forwarder. Return what happened (a ``NOTE_*``), ``None`` when it already was.

    The two halves, :func:`hand_over` (the other key's side) and :func:`take_over` (the
    person's), one after the other: across partitions each runs where its key lives.

    Done when the other key forwards to the person and the person records it (the usual
    case: every event after a login carries both ids). Both profiles are read every time, so
    a merge half-written before a crash is completed when the record is delivered again: the
    forwarder stored but not the person (merged again), or the other way round (repaired).
    """
    known, other = get(user_key), get(other_key)
    done = other is not None and other.merged_into == user_key
    if done and known is not None and other_key in known.aliases:
        return None
    # Here a forwarder of this very link means its person's write was lost: hand over again.
    forwarder, handoff = hand_over(other, other_key, user_key, at_ms, again=True)
    assert handoff is not None
    person, note = take_over(known, user_key, handoff, config)
    put(user_key, person)
    put(other_key, forwarder)
    return note


@dataclass(frozen=True, slots=True)
class Handoff:
    """What the other key's side of a link hands to the person's side."""

    key: str
    person: str
    at_ms: int
    #: The latest event time of what the other key held (the link's time when nothing).
    last_seen_ms: int
    #: What to merge: the other key's profile as it was (``None``: nothing to merge).
    history: Profile | None
    #: The other key's history was merged into someone else before (a shared device): it
    #: stays there, and only the key's later events follow this person.
    elsewhere: bool = False

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "schema": HANDOFF_SCHEMA,
                "key": self.key,
                "person": self.person,
                "at_ms": self.at_ms,
                "last_seen_ms": self.last_seen_ms,
                "elsewhere": self.elsewhere,
                "history": None if self.history is None else self.history.to_dict(),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Handoff:
        """Raises :class:`SnapshotError` for anything but a handoff this version wrote."""
        return read_record(data, HANDOFF_SCHEMA, "an identity handoff", cls._from_doc)

    @classmethod
    def _from_doc(cls, doc: dict[str, Any]) -> Handoff:
        history = doc["history"]
        return cls(
            str(doc["key"]),
            str(doc["person"]),
            int(doc["at_ms"]),
            int(doc["last_seen_ms"]),
            None if history is None else Profile.from_dict(history),
            bool(doc["elsewhere"]),
        )


def hand_over(
    other: Profile | None, other_key: str, person_key: str, at_ms: int, again: bool = False
) -> tuple[Profile, Handoff | None]:
    """The other key's side of a link: its profile becomes a forwarder to the person (keeping
    its history, not its labels or decisions, which move), and what it held is handed over.
    ``other`` is updated in place when there is one.

    No handoff when ``other`` was handed over for this very link already (the request
    delivered again after a crash): the first one, labels and all, was sent and acknowledged
    before the forwarder was stored, and a second, from the forwarder, would replace it;
    ``again`` hands over all the same (what the forwarder kept)."""
    if other is None:
        forwarder = Profile(
            user_key=other_key, last_seen_ms=at_ms, merged_into=person_key, merged_at_ms=at_ms
        )
        return forwarder, Handoff(other_key, person_key, at_ms, at_ms, None)
    if other.merged_into == person_key and other.merged_at_ms == at_ms and not again:
        return other, None
    seen = other.last_seen_ms if other.last_seen_ms is not None else at_ms
    elsewhere = other.merged_into is not None and other.merged_into != person_key
    # A consent record has no history but must travel: an opt-out holds for the person.
    holds = other.first_seen_ms is not None or other.consent is False
    history = other.copy() if holds and not elsewhere else None
    other.merged_into, other.merged_at_ms = person_key, at_ms
    if not elsewhere:
        other.labels, other.decisions = [], []
    return other, Handoff(other_key, person_key, at_ms, seen, history, elsewhere)


def take_over(
    person: Profile | None, person_key: str, handoff: Handoff, config: StepConfig
) -> tuple[Profile, str]:
    """The person's side of a link: merge what was handed over, once (``person`` is updated
    in place when there is one); return the profile and what happened (a ``NOTE_*``)."""
    person = person if person is not None else Profile(user_key=person_key)
    key, seen = handoff.key, handoff.last_seen_ms
    merged_at = person.aliases.get(key)
    if handoff.elsewhere:
        # Recorded as merged up to that history's end, so it is never merged here too.
        person.aliases[key] = seen
        return person, NOTE_LINKED
    if merged_at is not None and (handoff.history is None or seen <= merged_at):
        note = NOTE_REPAIRED  # merged already; the forwarder's write was lost
    elif handoff.history is not None:
        merge(person, handoff.history, config)
        note = NOTE_MERGED
    else:
        note = NOTE_LINKED
    person.aliases[key] = max(seen, merged_at or seen)
    return person, note


def merge(person: Profile, other: Profile, config: StepConfig) -> None:
    """Add ``other``'s history to ``person`` (in place; ``other`` is left unchanged)."""
    opted_out = person.consent is False or other.consent is False
    latest = max(t for t in (person.last_seen_ms, other.last_seen_ms, 0) if t is not None)
    if other.first_seen_ms is None:
        pass  # no history to add: only its consent counts
    elif person.first_seen_ms is None:
        _adopt(person, other, config)
    else:
        _combine(person, other, config)
    if opted_out:
        withhold(person, latest)


def _adopt(person: Profile, other: Profile, config: StepConfig) -> None:
    """``person`` has no history: it becomes ``other``'s, under the person's identity."""
    key, user_id, anonymous_id = person.user_key, person.user_id, person.anonymous_id
    applied, recent, aliases = person.applied, person.recent_messages, person.aliases
    adopted = other.copy()
    for name in Profile.__dataclass_fields__:
        setattr(person, name, getattr(adopted, name))
    person.user_key, person.merged_into = key, None
    person.user_id = user_id or adopted.user_id
    person.anonymous_id = adopted.anonymous_id or anonymous_id
    person.applied = _latest_positions(adopted.applied, applied)
    person.recent_messages = _recent(adopted.recent_messages, recent, config.dedupe_window)
    person.aliases = {**adopted.aliases, **aliases}


def _combine(person: Profile, other: Profile, config: StepConfig) -> None:
    """Both have a history: add the order-free parts, join the ordered ones."""
    earlier, later = sorted((person, other), key=lambda p: (p.first_seen_ms, p is other))
    latest = max(person.last_seen_ms or 0, other.last_seen_ms or 0)
    # Read from both before ``person`` changes.
    person.final, person.pending = _joined_ordered(earlier, later, latest, config)
    person.head = None  # rebuilt from final and pending by the next step
    person.recent_messages = _recent(
        earlier.recent_messages, later.recent_messages, config.dedupe_window
    )
    for name, n in other.counts.items():
        person.counts[name] = person.counts.get(name, 0) + n
    assert person.first_seen_ms is not None and other.first_seen_ms is not None
    person.first_seen_ms = min(person.first_seen_ms, other.first_seen_ms)
    person.last_seen_ms = latest
    for name, t in other.last_event_ms.items():
        person.last_event_ms[name] = max(person.last_event_ms.get(name, t), t)
    person.revenue_total = round(person.revenue_total + other.revenue_total, 6)
    person.late_events += other.late_events
    merge_into(person.windows, other.windows, config.features.catalog)
    if other.context_ms is not None and (
        person.context_ms is None
        or (other.context_ms, other.context_fingerprint or 0)
        > (person.context_ms, person.context_fingerprint or 0)
    ):
        person.context = other.context
        person.context_ms, person.context_fingerprint = other.context_ms, other.context_fingerprint
    person.applied = _latest_positions(person.applied, other.applied)
    labels = sorted(person.labels + other.labels, key=lambda label: label.at_ms)
    person.labels = labels[-config.models.max_pending_labels :]
    if other.last_label_ms is not None:
        person.last_label_ms = max(person.last_label_ms or 0, other.last_label_ms)
    person.starts = sorted(person.starts + other.starts, key=lambda start: start[1])
    decisions = sorted(person.decisions + other.decisions, key=lambda d: d.at_ms)
    person.decisions = decisions[-config.policy.rewards.max_pending :]
    # The running choice names a session of one history; the person's next decision is new.
    person.choice = None
    person.last_decision = _later(person.last_decision, other.last_decision)
    person.anonymous_id = person.anonymous_id or other.anonymous_id
    person.aliases = {**other.aliases, **person.aliases}


def _joined_ordered(
    earlier: Profile, later: Profile, latest_ms: int, config: StepConfig
) -> tuple[OrderedState, list[Moment]]:
    """Fold each history's events that the merged one has made final, then join the finals;
    what is still within grace stays pending (both histories' moments, in event order)."""
    cfg = ordered_settings(config)
    assert later.first_seen_ms is not None
    cutoff = latest_ms - config.features.grace_ms
    finals, pendings = [], []
    for history in (earlier, later):
        final, pending = history.final.copy(), list(history.pending)
        settle(final, pending, cutoff, cfg)
        finals.append(final)
        pendings.extend(pending)
    joined = join(finals[0], finals[1], later.first_seen_ms, frozenset(later.counts), cfg)
    return joined, sorted(pendings, key=event_order)


def _later(
    mine: Decision | dict[str, Any] | None, theirs: Decision | dict[str, Any] | None
) -> Decision | dict[str, Any] | None:
    """The decision made at the later event (a kept decision is the object or its summary)."""
    if mine is None or theirs is None:
        return mine if theirs is None else theirs
    return theirs if _decided_at(theirs) > _decided_at(mine) else mine


def _decided_at(decision: Decision | dict[str, Any]) -> int:
    if isinstance(decision, Decision):
        return decision.event_time_ms
    event = decision.get("event")
    return int(event[1]) if isinstance(event, list) and len(event) > 1 else 0


def _recent(first: list[int], then: list[int], window: int) -> list[int]:
    """Both histories' recent message fingerprints, in that order, each once, the latest kept."""
    seen = set(first)
    return (first + [m for m in then if m not in seen])[-window:]


def _latest_positions(left: dict[str, int], right: dict[str, int]) -> dict[str, int]:
    merged = dict(left)
    for position, offset in right.items():
        merged[position] = max(merged.get(position, offset), offset)
    return merged

"""The identity stage: one ordered log in, each event sent to its person's partition.

Identity stitching (stream.identity) merges two keys' histories at the record that links them.
Within one partition that record has a place in the partition's log, and a replay puts the
merge at the same place. Across partitions the two keys' records have no common order, so the
stage in front of the partitions gives them one: every event is first read from a single
ordered **ingest** partition, and this router, knowing every link made so far, sends it on:

* an event goes to the events partition of its **person** (the key it forwards to, else its
  own), so a device's anonymous events after a login reach the person's partition directly;
* a new link (a key not yet forwarding to the event's person) first emits two control
  records: a **request** to the other key's partition (hand your profile over, become a
  forwarder: :func:`stream.identity.hand_over`), then an **await** to the person's partition
  (merge the handoff here: :func:`stream.identity.take_over`), and then the event itself.

Each events partition receives its records in the router's order, so a request lands after
every record of the other key sent before the link, and the await before the person's later
records: both halves happen where an offline replay (which runs them at the linking event)
puts them. The person's partition waits at the await until the handoff arrives. That cannot
deadlock: a partition waiting at an await needs the request emitted just before it, which
comes after only records the router sent earlier, so every wait is for an earlier position of
the one ingest log.

Pure: the links made so far are read and written through ``persons`` (a key's person, or
``None``), a table in the adapter and the profiles' forwarders offline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal

import orjson

from stream.events import Event
from stream.identity import follow, linked_keys
from stream.records import read_record

__all__ = ["LINK_SCHEMA", "UNLINK_SCHEMA", "Link", "Routing", "Unlink", "route_event"]

LINK_SCHEMA = "identity-link.v1"
UNLINK_SCHEMA = "identity-unlink.v1"

#: A key's person (``None``: it forwards nowhere), and how to record one.
PersonOf = Callable[[str], str | None]
SetPerson = Callable[[str, str], None]
#: Whether a key may be linked by an event of this time (not if it was erased after it).
Linkable = Callable[[str, int], bool]


@dataclass(frozen=True, slots=True)
class Link:
    """A control record of the identity stage: ``request`` goes to the other key's partition,
    ``await`` to the person's."""

    kind: Literal["request", "await"]
    #: The other key (the one becoming an alias).
    key: str
    person: str
    #: Event time of the linking event.
    at_ms: int

    @property
    def record_key(self) -> str:
        """The key it is sent under: it lands on that key's partition."""
        return self.key if self.kind == "request" else self.person

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "schema": LINK_SCHEMA,
                "kind": self.kind,
                "key": self.key,
                "person": self.person,
                "at_ms": self.at_ms,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Link:
        """Raises :class:`SnapshotError` for anything but a link record this version wrote."""
        return read_record(data, LINK_SCHEMA, "an identity link", cls._from_doc)

    @classmethod
    def _from_doc(cls, doc: dict[str, Any]) -> Link:
        kind = doc["kind"]
        if kind not in ("request", "await"):
            raise ValueError(f"kind {kind!r}")
        return cls(kind, str(doc["key"]), str(doc["person"]), int(doc["at_ms"]))


@dataclass(frozen=True, slots=True)
class Unlink:
    """A control record to the identity stage: forget every link from these keys, and link
    none of them again from events up to ``until_ms`` of event time (an erasure, and its
    suppression of the events still in flight: stream.erasure)."""

    keys: tuple[str, ...]
    until_ms: int

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {"schema": UNLINK_SCHEMA, "keys": list(self.keys), "until_ms": self.until_ms}
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Unlink:
        """Raises :class:`SnapshotError` for anything but an unlink record."""
        return read_record(
            data,
            UNLINK_SCHEMA,
            "an identity unlink",
            lambda doc: cls(tuple(str(key) for key in doc["keys"]), int(doc["until_ms"])),
        )


@dataclass(frozen=True, slots=True)
class Routing:
    """Where one event goes: the person's key, and the control records to send before it."""

    person: str
    links: tuple[Link, ...] = ()


def route_event(
    event: Event, person_of: PersonOf, set_person: SetPerson, linkable: Linkable | None = None
) -> Routing:
    """Route ``event`` and record the links it makes (none with a key that is not
    ``linkable``: an erased user's events still in flight link nothing again).

    >>> from stream.events import EventType
    >>> persons: dict[str, str] = {}
    >>> e = Event("m", EventType.IDENTIFY, "identify", "u", 0, user_id="u", anonymous_id="a")
    >>> routing = route_event(e, persons.get, persons.__setitem__)
    >>> [(link.kind, link.record_key) for link in routing.links]
    [('request', 'a'), ('await', 'u')]
    >>> route_event(Event("m2", EventType.PAGE, "page", "a", 1, anonymous_id="a"),
    ...             persons.get, persons.__setitem__).person
    'u'
    """
    person = follow(event.user_key, person_of)
    links: list[Link] = []
    routed = event if person == event.user_key else replace(event, user_key=person)
    for other in linked_keys(routed):
        if other == person or person_of(other) == person:
            continue
        at = event.timestamp_ms
        if linkable is not None and not (linkable(other, at) and linkable(person, at)):
            continue
        set_person(other, person)
        links += (Link("request", other, person, at), Link("await", other, person, at))
    return Routing(person, tuple(links))

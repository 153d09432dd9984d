"""The identity stage's protocol (stream.router), emulated without a broker: each partition with
its own store and its own queue of records in the router's order, run in any interleaving. It
must decide exactly what the offline replay decides, whatever the interleaving."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict, deque
from dataclasses import replace

import orjson
import pytest

from stream import StepConfig
from stream.deadletter import DeadLetter
from stream.decode import decode_event
from stream.events import Event, EventType
from stream.exceptions import SnapshotError
from stream.identity import Handoff
from stream.partition import PartitionLearner, ProfileStore
from stream.partitioning import partition_for
from stream.profile import Profile
from stream.replay import replay
from stream.router import Link, Routing, Unlink, route_event
from stream.synthetic import GeneratorConfig, generate_events

ON = StepConfig(stitch_identities=True)


def _lines() -> list[bytes]:
    generated = itertools.islice(
        generate_events(GeneratorConfig(seed=23, users=50, days=2.0)), 3000
    )
    lines = [orjson.dumps(e) for e in generated]
    # A login before the device's anonymous events, and a shared device.
    t = "2023-11-14T22:13:20.000Z"
    lines += [
        orjson.dumps(
            {
                "type": "identify",
                "messageId": "x1",
                "userId": "z",
                "anonymousId": "dz",
                "timestamp": t,
            }
        ),
        orjson.dumps({"type": "page", "messageId": "x2", "anonymousId": "dz", "timestamp": t}),
        orjson.dumps(
            {
                "type": "identify",
                "messageId": "x3",
                "userId": "y",
                "anonymousId": "dz",
                "timestamp": t,
            }
        ),
        orjson.dumps({"type": "page", "messageId": "x4", "anonymousId": "dz", "timestamp": t}),
    ]
    return lines


def _key_partition(key: str, partitions: int) -> int:
    return partition_for(key.encode(), partitions)


def _staged(
    lines: list[bytes], partitions: int, schedule: random.Random
) -> tuple[dict[str, Profile], dict[str, bytes]]:
    """Route the log, then run the partitions' queues in an order ``schedule`` picks; a
    partition at an await whose handoff has not come yet is skipped until it has."""
    persons: dict[str, str] = {}
    queues: list[deque[Link | Event]] = [deque() for _ in range(partitions)]
    for raw in lines:
        decoded = decode_event(raw)
        if isinstance(decoded, DeadLetter):
            continue
        routing = route_event(decoded, persons.get, persons.__setitem__)
        for link in routing.links:
            queues[_key_partition(link.record_key, partitions)].append(link)
        routed = replace(decoded, user_key=routing.person)
        queues[_key_partition(routing.person, partitions)].append(routed)
    stores: list[dict[str, Profile]] = [{} for _ in range(partitions)]
    learners = [PartitionLearner.new(p, ON) for p in range(partitions)]
    handoffs: dict[tuple[str, str], deque[Handoff]] = defaultdict(deque)
    decisions: dict[str, bytes] = {}

    def blocked(record: Link | Event) -> bool:
        return (
            isinstance(record, Link)
            and record.kind == "await"
            and not handoffs[(record.key, record.person)]
        )

    while any(queues):
        ready = [p for p, q in enumerate(queues) if q and not blocked(q[0])]
        assert ready, "every partition waits: a deadlock"
        p = schedule.choice(ready)
        record = queues[p].popleft()
        store = ProfileStore(stores[p].get, stores[p].__setitem__)
        if isinstance(record, Event):
            outputs = learners[p].process(record, store, ON, routed=True)
            for decision in outputs.decisions:
                decisions.setdefault(decision.decision_id, decision.to_bytes())
        elif record.kind == "request":
            handoff = learners[p].hand_over(record, store)
            assert handoff is not None  # each link is requested once here
            # Through the handoffs topic: as bytes.
            handoffs[(record.key, record.person)].append(Handoff.from_bytes(handoff.to_bytes()))
        else:
            learners[p].take_over(handoffs[(record.key, record.person)].popleft(), store, ON)
    merged = {k: v for store in stores for k, v in store.items()}
    return merged, decisions


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_any_interleaving_of_the_partitions_decides_as_the_offline_replay(seed: int) -> None:
    lines = _lines()
    offline = replay(lines, ON, partitions=4)
    profiles, decisions = _staged(lines, 4, random.Random(seed))
    assert decisions == {d.decision_id: d.to_bytes() for d in offline.decisions}
    assert profiles.keys() == offline.profiles.keys()
    for key, profile in offline.profiles.items():
        assert profiles[key].to_bytes() == profile.to_bytes(), key
    merged = [k for k, p in profiles.items() if p.merged_into is not None]
    assert len(merged) >= 10
    assert profiles["dz"].merged_into == "y" and profiles["z"].counts == {"identify": 1, "page": 1}


def test_a_new_link_is_requested_once_and_awaited_before_the_event() -> None:
    persons: dict[str, str] = {}
    login = Event("m", EventType.IDENTIFY, "identify", "u", 5, user_id="u", anonymous_id="a")
    routing = route_event(login, persons.get, persons.__setitem__)
    assert routing == Routing("u", (Link("request", "a", "u", 5), Link("await", "a", "u", 5)))
    assert route_event(login, persons.get, persons.__setitem__) == Routing("u")
    later = Event("m2", EventType.PAGE, "page", "a", 6, anonymous_id="a")
    assert route_event(later, persons.get, persons.__setitem__) == Routing("u")


def test_an_erased_key_is_linked_by_no_event_up_to_its_suppression() -> None:
    persons: dict[str, str] = {}
    erased = {"a": 10}

    def linkable(key: str, at_ms: int) -> bool:
        return at_ms > erased.get(key, -1)

    def login(at_ms: int) -> Event:
        return Event(f"m{at_ms}", EventType.IDENTIFY, "identify", "u", at_ms, "u", "a")

    assert route_event(login(10), persons.get, persons.__setitem__, linkable) == Routing("u")
    assert persons == {}
    later = route_event(login(11), persons.get, persons.__setitem__, linkable)
    assert [link.kind for link in later.links] == ["request", "await"]


def test_link_records_round_trip_and_refuse_anything_else() -> None:
    link = Link("await", "a", "u", 5)
    assert Link.from_bytes(link.to_bytes()) == link
    unlink = Unlink(("a", "u"), 7)
    assert Unlink.from_bytes(unlink.to_bytes()) == unlink
    with pytest.raises(SnapshotError):
        Unlink.from_bytes(link.to_bytes())
    for bad in (
        b"{}",
        b"[]",
        b"not json",
        orjson.dumps({"schema": "identity-link.v1", "kind": "x"}),
    ):
        with pytest.raises(SnapshotError):
            Link.from_bytes(bad)

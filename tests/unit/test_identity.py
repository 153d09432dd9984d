"""Identity stitching (stream.identity): one person's keys, one profile, nothing counted twice."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.batch import RawRecord, process_records
from stream import SourcePosition, StepConfig
from stream.erasure import ErasureRequest, linked_requests
from stream.events import Event, EventType
from stream.features import ordered_settings
from stream.identity import (
    NOTE_LINKED,
    NOTE_MERGED,
    NOTE_REPAIRED,
    NOTE_ROUTED,
    Handoff,
    hand_over,
    linked_keys,
    merge,
    route,
    stitch,
    take_over,
)
from stream.ordered import Moment, OrderedState, fold, join
from stream.partition import PartitionLearner, ProfileStore
from stream.profile import Profile
from stream.replay import replay
from stream.synthetic import GeneratorConfig, generate_events, user_traits
from stream.windowed import WindowState, add_event, merge_into, read_all
from tests.unit.test_windows import EVENTS, T0, VIEWS, Raw, _values

ON = StepConfig(stitch_identities=True)
MIN = 60_000
SYNTHETIC = GeneratorConfig(seed=17, users=60, days=3.0)

#: What a person did, as opposed to what the policy did with it (variants and so decisions
#: follow the key an event was decided under, which before a login is the anonymous id).
#: Added up exactly whatever the two histories were.
ORDER_FREE = (
    "counts",
    "first_seen_ms",
    "last_seen_ms",
    "last_event_ms",
    "revenue_total",
    "windows",
)
HISTORY = (
    *ORDER_FREE,
    "final",
    "pending",
    "context",
    "context_ms",
    "context_fingerprint",
    "late_events",
    "recent_messages",
    "last_label_ms",
    "consent",
    "user_id",
    "anonymous_id",
)


def _history(profile: Profile, fields: tuple[str, ...] = HISTORY) -> dict[str, Any]:
    doc = profile.to_dict()
    out = {name: doc[name] for name in fields}
    # A label's inputs include "is the user known", which differs before the login.
    out["labels"] = [label[:2] + label[3:] for label in doc["labels"]]
    return out


def _synthetic() -> tuple[list[dict[str, Any]], dict[str, str]]:
    """A synthetic log, and the user id each device logged in as (in the log)."""
    events = list(itertools.islice(generate_events(SYNTHETIC), 6000))
    owner = {e["anonymousId"]: e["userId"] for e in events if "userId" in e and "anonymousId" in e}
    registered = {t.user_id for t in user_traits(SYNTHETIC).values()}
    assert set(owner.values()) <= registered
    return events, owner


def _as_one_user(events: list[dict[str, Any]], owner: dict[str, str]) -> list[bytes]:
    """The same log with every event of a registered user's devices carrying their user id."""
    lines = []
    for event in events:
        user = owner.get(event.get("anonymousId", ""))
        lines.append(orjson.dumps({**event, "userId": user} if user else event))
    return lines


def _devices(events: list[dict[str, Any]], owner: dict[str, str]) -> dict[str, set[str]]:
    used: dict[str, set[str]] = {}
    for event in events:
        user = owner.get(event.get("anonymousId", ""))
        if user is not None:
            used.setdefault(user, set()).add(event["anonymousId"])
    return used


@pytest.mark.parametrize("partitions", [1, 4])
def test_a_merged_profile_is_the_profile_of_one_user_who_did_all_of_it(partitions: int) -> None:
    """Anonymous visits, then a login: the person's profile equals the one a log where every
    event already carried the user id gives, whatever partition each key lives on. With two
    devices (the second merged into a profile with history) the order-free parts are exact."""
    events, owner = _synthetic()
    stitched = replay([orjson.dumps(e) for e in events], ON, partitions)
    one_user = replay(_as_one_user(events, owner), ON, partitions)
    devices = _devices(events, owner)
    single = [u for u, used in devices.items() if len(used) == 1]
    several = [u for u, used in devices.items() if len(used) > 1]
    assert len(single) >= 10 and several, (len(single), len(several))
    fields = HISTORY if partitions == 1 else tuple(f for f in HISTORY if f != "last_label_ms")
    for user in single:
        got, want = (
            _history(stitched.profiles[user], fields),
            _history(one_user.profiles[user], fields),
        )
        if partitions != 1:  # labels settle by each partition's own clock
            got.pop("labels"), want.pop("labels")
        assert got == want, user
    for user in several:
        got = _history(stitched.profiles[user], ORDER_FREE)
        want = _history(one_user.profiles[user], ORDER_FREE)
        got.pop("labels"), want.pop("labels")
        assert got == want, user
    # Every device's key forwards to its person, and holds no labels of its own any more.
    for user, used in devices.items():
        for anonymous in used:
            forwarder = stitched.profiles[anonymous]
            assert forwarder.merged_into == user and not forwarder.labels
            assert anonymous in stitched.profiles[user].aliases


def test_the_partition_count_changes_nothing_a_person_did() -> None:
    events, _ = _synthetic()
    lines = [orjson.dumps(e) for e in events]
    one, four = replay(lines, ON, 1), replay(lines, ON, 4)
    assert one.profiles.keys() == four.profiles.keys()
    fields = tuple(f for f in HISTORY if f != "last_label_ms")
    for key, profile in one.profiles.items():
        assert _history(profile, fields) | {"labels": None} == _history(
            four.profiles[key], fields
        ) | {"labels": None}, key


def _event(
    message: str,
    t: int,
    name: str = "Product Viewed",
    user: str | None = None,
    anonymous: str | None = "a1",
    kind: EventType = EventType.TRACK,
    previous: str | None = None,
    **properties: Any,
) -> Event:
    key = user or anonymous
    assert key is not None
    return Event(
        message,
        kind,
        name if kind is EventType.TRACK else kind.value,
        key,
        T0 + t,
        user_id=user,
        anonymous_id=anonymous,
        properties=properties or {"product_id": "p1", "category": "shoes", "price": 10.0},
        previous_id=previous,
    )


def _run(events: list[Event], config: StepConfig = ON) -> tuple[dict[str, Profile], list[str]]:
    profiles: dict[str, Profile] = {}
    learner = PartitionLearner.new(0, config)
    store = _store(profiles)
    notes: list[str] = []
    for event in events:
        notes.extend(learner.process(event, store, config).notes)
    return profiles, notes


def _store(profiles: dict[str, Profile]) -> ProfileStore:
    return ProfileStore(profiles.get, profiles.__setitem__)


def test_identify_after_the_anonymous_events_merges_them() -> None:
    profiles, notes = _run(
        [
            _event("m1", 0),
            _event("m2", MIN, "Product Added", product_id="p1", price=5.0, quantity=1),
            _event("m3", 2 * MIN, user="u1", kind=EventType.IDENTIFY),
            _event("m4", 3 * MIN, user="u1"),
        ]
    )
    person = profiles["u1"]
    assert person.counts == {"Product Viewed": 2, "Product Added": 1, "identify": 1}
    assert person.head is not None and len(person.head.cart) == 1
    assert person.final.sessions_total + (1 if person.pending else 0) >= 1
    assert person.aliases == {"a1": T0 + MIN}
    assert profiles["a1"].merged_into == "u1"
    assert notes.count(NOTE_MERGED) == 1


def test_identify_before_the_anonymous_events_sends_them_to_the_person() -> None:
    """The other order: the login comes first, later events carry only the device's id."""
    profiles, notes = _run(
        [
            _event("m1", 0, user="u1", kind=EventType.IDENTIFY),
            _event("m2", MIN),
            _event("m3", 2 * MIN),
        ]
    )
    assert profiles["u1"].counts == {"identify": 1, "Product Viewed": 2}
    forwarder = profiles["a1"]
    assert forwarder.merged_into == "u1" and forwarder.first_seen_ms is None
    assert notes.count(NOTE_LINKED) == 1 and notes.count(NOTE_ROUTED) == 2


def test_a_shared_device_follows_the_latest_login() -> None:
    """Its history stays with the first person it was merged into; its later anonymous events
    go to whoever logged in last, and back again."""
    profiles, notes = _run(
        [
            _event("m1", 0),
            _event("m2", MIN, user="u1", kind=EventType.IDENTIFY),
            _event("m3", 2 * MIN, user="u2", kind=EventType.IDENTIFY),
            _event("m4", 3 * MIN),
            _event("m4b", 3 * MIN, user="u2"),  # both ids again: nothing more to merge
            _event("m5", 4 * MIN, user="u1", kind=EventType.IDENTIFY),
            _event("m6", 5 * MIN),
        ]
    )
    assert profiles["u1"].counts == {"Product Viewed": 2, "identify": 2}
    assert profiles["u2"].counts == {"identify": 1, "Product Viewed": 2}
    assert profiles["a1"].merged_into == "u1"
    assert notes.count(NOTE_MERGED) == 1 and notes.count(NOTE_LINKED) == 2


def test_a_decision_for_a_forwarded_event_is_the_persons() -> None:
    learner, profiles = PartitionLearner.new(0, ON), dict[str, Profile]()
    store = _store(profiles)
    learner.process(_event("m1", 0, user="u1", kind=EventType.IDENTIFY), store, ON)
    outputs = learner.process(_event("m2", MIN), store, ON)
    (decision,) = outputs.decisions
    assert decision.user_key == "u1" and outputs.user_key == "u1"


def test_an_alias_call_merges_a_previous_user_id() -> None:
    profiles, notes = _run(
        [
            _event("m1", 0, user="old", anonymous=None),
            _event("m2", MIN, user="new", anonymous=None, kind=EventType.ALIAS, previous="old"),
            _event("m3", 2 * MIN, user="old", anonymous=None),
        ]
    )
    assert profiles["new"].counts == {"Product Viewed": 2, "alias": 1}
    assert profiles["old"].merged_into == "new"
    assert NOTE_MERGED in notes and NOTE_ROUTED in notes


@pytest.mark.parametrize("person_history", [False, True])
def test_the_two_halves_apart_equal_a_stitch_in_one_place(person_history: bool) -> None:
    """Across partitions the other key's side hands its profile over as bytes; the person's
    side merges it: the same profiles as a stitch where both live together."""
    before = [_event("m1", 0), _event("m2", MIN, "Product Added", product_id="p2", price=3.0)]
    if person_history:
        before.append(_event("m3", 90 * MIN, user="u1", anonymous=None))
    profiles, _ = _run(before, StepConfig())  # two keys, not linked yet
    in_one = {k: Profile.from_bytes(p.to_bytes()) for k, p in profiles.items()}
    assert stitch("u1", "a1", T0 + 100 * MIN, in_one.get, in_one.__setitem__, ON)
    forwarder, handoff = hand_over(
        Profile.from_bytes(profiles["a1"].to_bytes()), "a1", "u1", T0 + 100 * MIN
    )
    person = profiles.get("u1")
    person = None if person is None else Profile.from_bytes(person.to_bytes())
    merged, _ = take_over(person, "u1", Handoff.from_bytes(handoff.to_bytes()), ON)
    assert merged.to_bytes() == in_one["u1"].to_bytes()
    assert forwarder.to_bytes() == in_one["a1"].to_bytes()


def test_an_opted_out_anonymous_visitor_who_logs_in_stays_opted_out() -> None:
    opted_out = {"consent": {"categoryPreferences": {"personalization": False}}}
    first = replace(_event("m1", 0), context=opted_out)
    profiles, _ = _run([first, _event("m2", MIN, user="u1", kind=EventType.IDENTIFY)])
    assert profiles["u1"].consent is False and profiles["u1"].counts == {}


def test_linked_keys() -> None:
    identify = _event("m", 0, user="u", kind=EventType.IDENTIFY)
    assert linked_keys(identify) == ("a1",)
    assert linked_keys(_event("m", 0)) == ()  # anonymous only
    assert linked_keys(_event("m", 0, user="u", anonymous="u")) == ()
    alias = _event("m", 0, user="u", anonymous="a1", kind=EventType.ALIAS, previous="a0")
    assert linked_keys(alias) == ("a1", "a0")


def test_forwarders_are_followed_without_looping() -> None:
    profiles = {
        "a": Profile("a", merged_into="b"),
        "b": Profile("b", merged_into="c"),
        "c": Profile("c", merged_into="a"),  # a cycle, however it came about
    }
    assert route("a", profiles.get) == "c"
    assert route("x", profiles.get) == "x"


def test_stitching_is_off_unless_asked() -> None:
    profiles, notes = _run(
        [_event("m1", 0), _event("m2", MIN, user="u1", kind=EventType.IDENTIFY)], StepConfig()
    )
    assert profiles["a1"].merged_into is None and profiles["u1"].counts == {"identify": 1}
    assert not any(n.startswith("identity_") for n in notes)


# -- redelivery and crashes ----------------------------------------------------------------------


def _records(events: list[Event]) -> list[RawRecord]:
    records = []
    for offset, event in enumerate(events):
        doc: dict[str, Any] = {
            "type": event.type.value,
            "messageId": event.message_id,
            "timestamp": f"{event.timestamp_ms}",
            "properties": event.properties,
        }
        if event.type is EventType.TRACK:
            doc["event"] = event.name
        for field, value in (("userId", event.user_id), ("anonymousId", event.anonymous_id)):
            if value is not None:
                doc[field] = value
        doc["timestamp"] = _iso(event.timestamp_ms)
        key = (event.user_id or event.anonymous_id or "").encode()
        records.append(RawRecord(SourcePosition("events", 0, offset), key, orjson.dumps(doc)))
    return records


def _iso(ms: int) -> str:
    from stream.timeutil import ms_to_iso

    return ms_to_iso(ms)


STORY = [
    _event("m1", 0),
    _event("m2", MIN, "Product Added", product_id="p1", price=5.0, quantity=2),
    _event("m3", 2 * MIN, user="u1", kind=EventType.IDENTIFY),
    _event("m4", 3 * MIN, "Product Viewed"),
    _event("m5", 4 * MIN, "Order Completed", user="u1", revenue=20.0),
]


def _uninterrupted() -> dict[str, bytes]:
    stored: dict[str, bytes] = {}
    stored.update(
        process_records(
            _records(STORY), stored.get, ON, PartitionLearner.new(0, ON)
        ).profile_bytes()
    )
    return stored


def test_a_redelivered_batch_changes_nothing() -> None:
    stored = _uninterrupted()
    again = dict(stored)
    learner = PartitionLearner.new(0, ON)
    result = process_records(_records(STORY), again.get, ON, learner)
    again.update(result.profile_bytes())
    assert again == stored
    assert result.counters["note:identity_merged"] == 0


@pytest.mark.parametrize("lost", ["u1", "a1"])
def test_a_merge_half_written_before_a_crash_is_completed_once(lost: str) -> None:
    """The batch's writes reached the table for one of the two keys only; the batch is
    delivered again: the merge is made (or its forwarder repaired), nothing counted twice."""
    records = _records(STORY)
    first = process_records(records[:3], dict[str, bytes]().get, ON, PartitionLearner.new(0, ON))
    stored = {k: v for k, v in first.profile_bytes().items() if k != lost}
    again = process_records(records, stored.get, ON, PartitionLearner.new(0, ON))
    stored.update(again.profile_bytes())
    assert again.counters[f"note:{NOTE_REPAIRED if lost == 'a1' else NOTE_MERGED}"] == 1
    want = _uninterrupted()
    assert _history(Profile.from_bytes(stored["u1"])) == _history(Profile.from_bytes(want["u1"]))
    assert Profile.from_bytes(stored["a1"]).merged_into == "u1"


# -- merging the parts -----------------------------------------------------------------------------


def test_an_opt_out_on_either_key_holds_for_the_person() -> None:
    anonymous = Profile("a1", consent=False, last_seen_ms=T0)
    person, _ = _run([_event("m1", 0, user="u1", anonymous=None)])
    merge(person["u1"], anonymous, ON)
    assert person["u1"].consent is False and person["u1"].counts == {}


def test_erasing_a_person_reaches_every_merged_key() -> None:
    request = ErasureRequest(request_id="r", user_key="u1", requested_by="s", requested_at_ms=T0)
    profile = Profile("u1", anonymous_id="a1", aliases={"a1": T0, "a2": T0, "old": T0})
    assert sorted(r.user_key for r in linked_requests(request, profile)) == ["a1", "a2", "old"]
    forwarder = Profile("a2", merged_into="u1")
    by_device = request.model_copy(update={"user_key": "a2"})
    assert [r.user_key for r in linked_requests(by_device, forwarder)] == ["u1"]


@settings(max_examples=150, deadline=None)
@given(events=EVENTS, cut=st.integers(0, 60), data=st.data())
def test_merged_windows_equal_one_history(events: list[Raw], cut: int, data: st.DataObject) -> None:
    """Windows depend on the set of events only: two keys' windows merged equal the windows of
    all their events applied to one, whichever way they are split."""
    mine = data.draw(st.lists(st.booleans(), min_size=len(events), max_size=len(events)))
    left = [e for e, m in zip(events, mine, strict=True) if m]
    right = [e for e, m in zip(events, mine, strict=True) if not m]
    merged, other, whole = WindowState(), WindowState(), WindowState()
    for target, part in ((merged, left), (other, right), (whole, events)):
        for name, offset, price, category in part:
            add_event(target, VIEWS, name, T0 + offset, _values(price, category).get)
    merge_into(merged, other, VIEWS)
    assert merged.to_doc() == whole.to_doc()
    assert read_all(merged, VIEWS) == read_all(whole, VIEWS)


NAMES = ["page", "Product Viewed", "Product Viewed", "Product Added", "Order Completed"]
MOMENTS = st.lists(
    st.tuples(
        st.sampled_from(NAMES),
        st.integers(1, 90 * MIN),  # gaps: some within a session, some start a new one
        st.sampled_from(["p1", "p2", "p3"]),
        st.sampled_from(["shoes", "hats", None]),
    ),
    min_size=1,
    max_size=25,
)


def _moments(steps: list[tuple[str, int, str, str | None]], start: int) -> list[Moment]:
    out, t = [], start
    for i, (name, gap, product, category) in enumerate(steps):
        t += gap
        cart = name == "Product Added"
        out.append(
            Moment(t, i, name, product, category, None, 5.0 if cart else None, 1 if cart else None)
        )
    return out


@settings(max_examples=200, deadline=None)
@given(earlier=MOMENTS, later=MOMENTS, gap=st.integers(1, 3 * 60 * MIN))
def test_joined_ordered_state_equals_one_history(
    earlier: list[tuple[str, int, str, str | None]],
    later: list[tuple[str, int, str, str | None]],
    gap: int,
) -> None:
    """One history after the other (no removals): sessions, session buckets, cart and views
    since the last add are exact, affinities equal to the 9 decimals features read."""
    cfg = ordered_settings(ON)
    first = _moments(earlier, T0)
    second = _moments(later, first[-1].timestamp_ms + gap)
    alone_first, alone_second, whole = OrderedState(), OrderedState(), OrderedState()
    for state, moments in ((alone_first, first), (alone_second, second), (whole, first + second)):
        for moment in moments:
            fold(state, moment, cfg)
    names = frozenset(m.name for m in second)
    joined = join(alone_first, alone_second, second[0].timestamp_ms, names, cfg)
    got, want = joined.to_dict(), whole.to_dict()
    for name in ("categories", "brands"):
        got_scores, want_scores = got.pop(name), want.pop(name)
        assert got_scores.keys() == want_scores.keys()
        for label, score in want_scores.items():
            assert got_scores[label] == pytest.approx(score, rel=1e-12)
    assert got == want

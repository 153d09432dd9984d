"""stream.erasure and the pure parts of carrying an erasure out: the request, the pseudonym,
the suppression of in-flight events (agents.batch), the learner forgetting the user, the audit.

The worker end to end (tombstones, audit topic, a scan of every topic) is
tests/integration/test_privacy.py.
"""

from __future__ import annotations

import itertools

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.batch import SKIPPED_ERASED, RawRecord, process_records
from stream import Profile, SourcePosition, StepConfig
from stream.erasure import (
    ErasureAudit,
    ErasureRequest,
    InvalidErasureRequest,
    Suppression,
    linked_requests,
    removed_from,
    subject_of,
)
from stream.replay import replay
from stream.synthetic import GeneratorConfig, generate_events
from stream.timeutil import ms_to_iso
from tests.support import viewed_event

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z, the time of tests.support.viewed_event
SECRET = b"test-secret"


def _request(**changes: object) -> ErasureRequest:
    fields: dict[str, object] = {
        "request_id": "r1",
        "user_key": "user-1@example.com",
        "requested_by": "support",
        "requested_at_ms": T0,
        "reason": "ticket 42",
    }
    return ErasureRequest.model_validate({**fields, **changes})


def test_a_request_round_trips_through_its_bytes() -> None:
    request = _request()
    raw = request.to_bytes()
    assert orjson.loads(raw)["schema"] == "erasure-request.v1"
    assert ErasureRequest.from_bytes(raw) == request


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ({"user_key": ""}, "user_key"),
        ({"user_key": None}, "user_key"),
        ({"requested_at_ms": -1}, "requested_at_ms"),
        ({"schema": "erasure-request.v2"}, "schema"),
        ({"unexpected": 1}, "unexpected"),
        ({"user_key": "x" * 257}, "user_key"),
    ],
)
def test_an_invalid_request_says_which_field(doc: dict[str, object], where: str) -> None:
    valid = orjson.loads(_request().to_bytes())
    with pytest.raises(InvalidErasureRequest, match=where):
        ErasureRequest.from_bytes(orjson.dumps({**valid, **doc}))


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b"{}"])
def test_garbage_is_an_invalid_request(raw: bytes) -> None:
    with pytest.raises(InvalidErasureRequest):
        ErasureRequest.from_bytes(raw)


@given(st.text(min_size=1, max_size=60))
def test_the_subject_never_contains_the_id_and_depends_on_the_secret(user_key: str) -> None:
    subject = subject_of(user_key, SECRET)
    assert len(subject) == 64 and int(subject, 16) >= 0
    assert subject == subject_of(user_key, SECRET) != subject_of(user_key, b"another secret")
    assert subject != subject_of(user_key + "x", SECRET)


def test_a_suppression_covers_event_times_up_to_its_end() -> None:
    suppression = Suppression("r1", T0)
    assert suppression.covers(T0 - 1) and suppression.covers(T0)
    assert not suppression.covers(T0 + 1)
    assert Suppression.from_bytes(suppression.to_bytes()) == suppression


def test_the_audit_record_names_the_subject_never_the_user() -> None:
    request = _request()
    replayed = replay([viewed_event(i, request.user_key) for i in range(3)])
    profile = replayed.profiles[request.user_key]
    removed = removed_from(profile, learner_index=True)
    assert removed.profile and removed.events_seen == 3 and removed.learner_index
    audit = ErasureAudit(
        request=request,
        subject=subject_of(request.user_key, SECRET),
        partition=1,
        removed=removed,
        tombstones=("changelog",),
        suppressed_until_ms=T0 + 600_000,
        completed_at_ms=T0 + 5,
        cascaded=(subject_of("anon-1", SECRET),),
    )
    raw = audit.to_bytes()
    assert request.user_key.encode() not in raw
    doc = orjson.loads(raw)
    assert doc["schema"] == "erasure-audit.v1"
    assert (doc["request_id"], doc["requested_by"], doc["reason"]) == ("r1", "support", "ticket 42")
    assert doc["cascaded_from"] is None and doc["cascaded"] == [subject_of("anon-1", SECRET)]
    assert doc["removed"] == {
        "profile": True,
        "events_seen": 3,
        "pending_labels": len(profile.labels),
        "pending_decisions": len(profile.decisions),
        "learner_index": True,
    }
    assert removed_from(None, learner_index=False).to_dict()["profile"] is False


def test_a_known_users_anonymous_id_gets_a_derived_request() -> None:
    request = _request()
    known = Profile(request.user_key, user_id=request.user_key, anonymous_id="anon-1")
    (derived,) = linked_requests(request, known)
    assert (derived.user_key, derived.cascaded_from) == ("anon-1", "r1")
    assert derived.request_id == "r1/1" and derived.requested_by == request.requested_by
    assert ErasureRequest.from_bytes(derived.to_bytes()) == derived
    anonymous = Profile("anon-1", anonymous_id="anon-1")
    assert linked_requests(derived, anonymous) == [], "nothing more to cascade to"
    # Erasing a device's merged key reaches the person, then the person's other keys; a
    # derived request never goes back up, and the depth is bounded.
    device = linked_requests(_request(user_key="a1"), Profile("a1", merged_into="u"))
    assert [(d.user_key, d.cascaded_from) for d in device] == [("u", "r1")]
    person = Profile("u", anonymous_id="a1", aliases={"a1": 0, "a2": 0})
    # (a1 again: erasing a key twice finds nothing the second time)
    assert [d.user_key for d in linked_requests(device[0], person)] == ["a1", "a2"]
    forwarder = Profile("a2", merged_into="u")
    assert linked_requests(linked_requests(device[0], person)[1], forwarder) == []
    deep = _request().model_copy(update={"request_id": "r1/1/1/1", "cascaded_from": "r1"})
    assert linked_requests(deep, person) == []
    assert linked_requests(request, Profile("u", user_id="u")) == []
    assert linked_requests(_request(user_key="anon-1"), anonymous) == []
    assert linked_requests(request, None) == []


def _records(values: list[bytes], start: int = 0) -> list[RawRecord]:
    return [
        RawRecord(SourcePosition("events", 0, start + i), None, v) for i, v in enumerate(values)
    ]


def test_events_sent_before_the_erasure_are_dropped_and_later_ones_start_afresh() -> None:
    erased, other = "erased-user", "other-user"
    until = T0 + 60_000
    lookups: list[str] = []

    def suppression(user_key: str) -> Suppression | None:
        lookups.append(user_key)
        return Suppression("r1", until) if user_key == erased else None

    in_flight = [viewed_event(i, erased, ms_to_iso(T0 + i * 20_000)) for i in range(4)]  # T0..until
    later = viewed_event(9, erased, ms_to_iso(until + 1))
    values = [*in_flight, viewed_event(5, other), later]
    result = process_records(_records(values), lambda _: None, StepConfig(), None, suppression)

    assert result.counters[SKIPPED_ERASED] == 4, "up to and including `until`"
    assert [d.user_key for d in result.decisions] == [other, erased]
    assert result.profiles[erased].counts == {"Product Viewed": 1}
    assert result.profiles[erased].first_seen_ms == until + 1
    assert sorted(set(lookups)) == [erased, other] and len(lookups) == 2, "once per user"
    assert result.deadletters == []


def test_forgetting_a_user_drops_them_from_the_learner_and_its_snapshot() -> None:
    lines = [
        orjson.dumps(e)
        for e in itertools.islice(
            generate_events(GeneratorConfig(seed=3, users=20, days=0.5)), 1500
        )
    ]
    replayed = replay(lines, StepConfig(), partitions=1)
    learner = replayed.learners[0]
    waiting = sorted(learner.due)
    assert waiting, "the log leaves some users with labels to settle"
    user = waiting[0]
    assert learner.forget(user)
    assert not learner.forget(user), "a second erasure finds nothing"
    assert user not in learner.due
    assert f'"{user}"'.encode() not in learner.to_bytes()
    # The heap still holds the user's entry: settling skips it instead of touching the user.
    assert any(u == user for _, u in learner.heap)

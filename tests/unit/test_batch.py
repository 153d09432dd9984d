"""agents.batch: one micro-batch through the step, without Faust or a broker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

import agents.batch
from agents.batch import BatchResult, RawRecord, process_records
from stream import Event, Profile, SourcePosition, StepConfig, step
from stream.timeutil import ms_to_iso
from tests.support import INVALID_EVENTS, viewed_event

T0 = 1_700_000_000_000


def _event(i: int, user: str) -> bytes:
    return viewed_event(i, user)


def _records(values: list[bytes], partition: int = 0, start: int = 0) -> list[RawRecord]:
    return [
        RawRecord(SourcePosition("events", partition, start + i), None, v)
        for i, v in enumerate(values)
    ]


def test_each_user_gets_one_profile_value_per_batch_with_every_event_applied() -> None:
    values = [_event(i, f"u{i % 3}") for i in range(9)]
    loads: list[str] = []

    def load(key: str) -> bytes | None:
        loads.append(key)
        return None

    result = process_records(_records(values), load, StepConfig())

    assert sorted(result.profiles) == ["u0", "u1", "u2"]
    assert sorted(loads) == ["u0", "u1", "u2"], "each user's stored profile is read once"
    assert all(p.counts == {"Product Viewed": 3} for p in result.profiles.values())
    assert len(result.decisions) == 9
    assert result.counters["events_in"] == 9 and result.counters["decisions_out"] == 9


def test_invalid_records_become_dead_letters_between_valid_ones() -> None:
    invalid = [raw for raw, _ in INVALID_EVENTS]
    values = [_event(0, "u"), *invalid, _event(1, "u")]
    result = process_records(_records(values, partition=2, start=100), lambda _: None, StepConfig())

    assert [d.event_message_id for d in result.decisions] == ["m0", "m1"]
    assert [d.reason.value for d in result.deadletters] == [r for _, r in INVALID_EVENTS]
    assert [d.source.offset for d in result.deadletters if d.source] == list(
        range(101, 101 + len(invalid))
    )
    assert result.profiles["u"].applied == {"events:2": 100 + len(values) - 1}


def test_stored_profile_is_continued_and_redelivered_records_are_skipped() -> None:
    first = process_records(
        _records([_event(0, "u"), _event(1, "u")]), lambda _: None, StepConfig()
    )
    stored = first.profile_bytes()["u"]

    again = process_records(
        _records([_event(0, "u"), _event(1, "u"), _event(2, "u")]), lambda _: stored, StepConfig()
    )

    assert again.profiles["u"].counts == {"Product Viewed": 3}
    assert [d.event_message_id for d in again.decisions] == ["m2"]
    assert again.counters["skipped:already_applied"] == 2


def test_corrupt_stored_profile_dead_letters_the_event_instead_of_crashing() -> None:
    result = process_records(_records([_event(0, "u")]), lambda _: b"not a profile", StepConfig())

    assert result.decisions == []
    assert [d.reason.value for d in result.deadletters] == ["processing_error"]
    assert "SnapshotError" in result.deadletters[0].message
    assert "u" not in result.profiles


def test_profile_bytes_round_trip() -> None:
    result = process_records(_records([_event(0, "u")]), lambda _: None, StepConfig())
    restored = Profile.from_bytes(result.profile_bytes()["u"])
    assert restored.to_dict() == result.profiles["u"].to_dict()


def test_a_batch_of_only_redelivered_records_still_writes_the_profile_back() -> None:
    """The rewrite repairs a changelog record lost in a crash (see agents.app's docstring)."""
    first = process_records(_records([_event(0, "u")]), lambda _: None, StepConfig())
    stored = first.profile_bytes()["u"]

    again = process_records(_records([_event(0, "u")]), lambda _: stored, StepConfig())

    assert again.decisions == []
    assert again.profile_bytes() == {"u": stored}


def test_records_keyed_differently_from_their_user_are_counted() -> None:
    records = [
        RawRecord(SourcePosition("events", 0, 0), b"u", _event(0, "u")),
        RawRecord(SourcePosition("events", 0, 1), b"someone-else", _event(1, "u")),
    ]
    result = process_records(records, lambda _: None, StepConfig())
    assert result.counters["note:key_mismatch"] == 1
    assert len(result.decisions) == 2


def test_an_unexpected_error_in_one_record_dead_letters_only_that_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_step = agents.batch.step

    def flaky_step(profile: Profile | None, event: Event, config: StepConfig) -> object:
        if event.message_id == "m1":
            raise AttributeError("a bug reached by a strange input")
        return real_step(profile, event, config)

    monkeypatch.setattr(agents.batch, "step", flaky_step)
    values = [_event(i, f"u{i}") for i in range(3)]
    result = process_records(_records(values), lambda _: None, StepConfig())

    assert [d.event_message_id for d in result.decisions] == ["m0", "m2"]
    assert [
        (d.reason.value, d.source.offset if d.source else None) for d in result.deadletters
    ] == [("processing_error", 1)]
    assert "AttributeError" in result.deadletters[0].message


# --- a step that raises halfway --------------------------------------------------------------


def _shop_event(i: int, user: str, name: str, **props: Any) -> bytes:
    """Event ``m<i>`` of ``user``, ``i`` seconds after T0."""
    return orjson.dumps(
        {
            "type": "track",
            "event": name,
            "messageId": f"m{i}",
            "userId": user,
            "timestamp": ms_to_iso(T0 + 1000 * i),
            "properties": props,
        }
    )


#: Two users' interleaved events: u's cart fills, one of u's events will fail.
SHOP = [
    _shop_event(0, "u", "Product Viewed", product_id="p1", category="shoes"),
    _shop_event(1, "v", "Product Viewed", product_id="p9", category="books"),
    _shop_event(2, "u", "Product Added", product_id="p1", price=30.0, quantity=2),
    _shop_event(3, "u", "Product Viewed", product_id="p2", category="shoes"),
    _shop_event(4, "u", "Product Added", product_id="p2", price=5.0),
    _shop_event(5, "v", "Product Added", product_id="p9", price=12.0),
    _shop_event(6, "u", "Product Removed", product_id="p1", quantity=1),
    _shop_event(7, "u", "Product Viewed", product_id="p3", category="toys"),
]

#: How the step fails: before touching the profile, after changing part of it, or after
#: applying the whole event (the worst case for a profile updated in place).
Failure = Callable[[Profile | None, Event, StepConfig], None]


def _before(profile: Profile | None, event: Event, config: StepConfig) -> None:
    return None


def _partway(profile: Profile | None, event: Event, config: StepConfig) -> None:
    if profile is not None:
        profile.counts["Product Viewed"] = 999
        profile.recent_messages.clear()
        profile.applied.clear()


def _after(profile: Profile | None, event: Event, config: StepConfig) -> None:
    step(profile, event, config)


FAILURES = {"before": _before, "partway": _partway, "after": _after}


def _failing_on(monkeypatch: pytest.MonkeyPatch, message_id: str, failure: Failure) -> list[str]:
    """Make the batch's step raise for ``message_id``; return the ids it was called with."""
    real_step = agents.batch.step
    calls: list[str] = []

    def flaky_step(profile: Profile | None, event: Event, config: StepConfig) -> object:
        calls.append(event.message_id)
        if event.message_id == message_id:
            failure(profile, event, config)
            raise RuntimeError(f"boom on {message_id}")
        return real_step(profile, event, config)

    monkeypatch.setattr(agents.batch, "step", flaky_step)
    return calls


def _without(records: list[RawRecord], offset: int) -> list[RawRecord]:
    return [r for r in records if r.source.offset != offset]


def _run(records: list[RawRecord], stored: dict[str, bytes]) -> BatchResult:
    return process_records(records, stored.get, StepConfig())


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
@pytest.mark.parametrize("failing", [3, 0, 7], ids=["middle", "first", "last"])
def test_a_step_failing_halfway_leaves_the_profile_built_from_the_other_events_only(
    monkeypatch: pytest.MonkeyPatch, failure: Failure, failing: int
) -> None:
    records = _records(SHOP)
    expected = _run(_without(records, failing), {})
    calls = _failing_on(monkeypatch, f"m{failing}", failure)

    result = _run(records, {})

    assert [
        (d.reason.value, d.source.offset if d.source else None) for d in result.deadletters
    ] == [("processing_error", failing)]
    assert result.deadletters[0].message == f"RuntimeError: boom on m{failing}"
    assert result.deadletters[0].payload == SHOP[failing]
    assert result.profile_bytes() == expected.profile_bytes()
    assert [d.to_bytes() for d in result.decisions] == [d.to_bytes() for d in expected.decisions]
    assert result.counters["deadletter:processing_error"] == 1
    assert calls.count(f"m{failing}") == 1, "the failed event is not stepped again"


def test_a_step_failing_on_a_stored_users_event_restores_the_stored_profile_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    earlier = _run(_records(SHOP[:2]), {})  # offsets 0 and 1
    stored = earlier.profile_bytes()
    later = _records(SHOP[2:], start=2)
    expected = _run(_without(later, 4), stored)
    _failing_on(monkeypatch, "m4", _after)

    result = _run(later, stored)

    assert result.profile_bytes() == expected.profile_bytes()
    assert result.profiles["u"].counts["Product Viewed"] == 3  # m0 (stored), m3 and m7
    assert [d.event_message_id for d in result.decisions] == ["m2", "m3", "m5", "m6", "m7"]


def test_a_new_user_whose_only_event_fails_gets_no_profile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _failing_on(monkeypatch, "m1", _after)
    result = _run(_records(SHOP[:2]), {})
    assert list(result.profiles) == ["u"]
    assert [d.event_message_id for d in result.decisions] == ["m0"]

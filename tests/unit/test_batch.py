"""agents.batch: one micro-batch through the step, without Faust or a broker."""

from __future__ import annotations

import orjson
import pytest

from agents.batch import RawRecord, process_records
from stream import Event, Profile, SourcePosition, StepConfig
from tests.support import INVALID_EVENTS


def _event(i: int, user: str) -> bytes:
    return orjson.dumps(
        {
            "type": "track",
            "event": "Product Viewed",
            "messageId": f"m{i}",
            "userId": user,
            "timestamp": "2024-01-01T00:00:00Z",
            "properties": {"category": "books"},
        }
    )


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
    import agents.batch

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

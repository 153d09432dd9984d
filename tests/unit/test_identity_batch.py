"""The identity stage's control records in a partition's batch (agents.batch): a request hands
over, an await waits for its handoff (the batch stops there) and then merges it, once."""

from __future__ import annotations

import orjson

from agents.batch import RawRecord, process_records
from stream import SourcePosition, StepConfig
from stream.erasure import Suppression
from stream.identity import Handoff
from stream.partition import PartitionLearner
from stream.profile import Profile
from stream.router import Link
from stream.timeutil import ms_to_iso

ON = StepConfig(stitch_identities=True)
T0 = 1_700_000_000_000


def _event(message: str, at_s: int, **ids: str) -> bytes:
    doc = {"type": "page", "messageId": message, "timestamp": ms_to_iso(T0 + at_s * 1000)}
    return orjson.dumps({**doc, **ids})


def _records(partition: int, items: list[tuple[bytes, bytes, bool]]) -> list[RawRecord]:
    return [
        RawRecord(SourcePosition("events", partition, offset), key, value, None, control)
        for offset, (key, value, control) in enumerate(items)
    ]


REQUEST = Link("request", "a", "u", T0 + 60_000)
AWAIT = Link("await", "a", "u", T0 + 60_000)


def _device_partition() -> tuple[dict[str, bytes], list[Handoff]]:
    """The device's partition: two anonymous visits, then the request."""
    stored: dict[str, bytes] = {}
    records = _records(
        0,
        [
            (b"a", _event("m1", 0, anonymousId="a"), False),
            (b"a", _event("m2", 30, anonymousId="a"), False),
            (b"a", REQUEST.to_bytes(), True),
        ],
    )
    result = process_records(records, stored.get, ON, PartitionLearner.new(0, ON), None, _never)
    stored.update(result.profile_bytes())
    return stored, result.handoffs


def _never(_link: Link) -> Handoff | None:
    return None


def test_a_request_hands_the_history_over_once() -> None:
    stored, handoffs = _device_partition()
    (handoff,) = handoffs
    assert handoff.history is not None and handoff.history.counts == {"page": 2}
    forwarder = Profile.from_bytes(stored["a"])
    assert (forwarder.merged_into, forwarder.merged_at_ms) == ("u", REQUEST.at_ms)
    # Delivered again (a crash before the commit): nothing handed over a second time.
    again = process_records(
        _records(0, [(b"a", REQUEST.to_bytes(), True)]),
        stored.get,
        ON,
        PartitionLearner.new(0, ON),
        None,
        _never,
    )
    assert again.handoffs == []


def test_an_await_stops_the_batch_until_its_handoff_arrived_then_merges_it() -> None:
    _, (handoff,) = _device_partition()
    items = [
        (b"u", AWAIT.to_bytes(), True),
        (b"u", _event("m3", 60, userId="u", anonymousId="a"), False),
    ]
    stored: dict[str, bytes] = {}
    waiting = process_records(
        _records(1, items), stored.get, ON, PartitionLearner.new(1, ON), None, _never
    )
    assert waiting.waiting == 0 and waiting.decisions == [] and waiting.profiles == {}
    merged = process_records(
        _records(1, items), stored.get, ON, PartitionLearner.new(1, ON), None, lambda _l: handoff
    )
    assert merged.waiting is None and len(merged.decisions) == 1
    assert merged.taken == [AWAIT]
    person = merged.profiles["u"]
    assert person.counts == {"page": 3} and person.aliases == {"a": T0 + 30_000}


def test_an_erased_persons_await_never_waits_and_drops_its_handoff() -> None:
    erased = Suppression("r1", T0 + 3_600_000)
    result = process_records(
        _records(1, [(b"u", AWAIT.to_bytes(), True)]),
        dict[str, bytes]().get,
        ON,
        PartitionLearner.new(1, ON),
        lambda key: erased if key == "u" else None,
        _never,
    )
    assert result.waiting is None and result.taken == [AWAIT] and result.profiles == {}


def test_a_control_record_is_refused_when_stitching_is_off() -> None:
    result = process_records(
        _records(1, [(b"u", AWAIT.to_bytes(), True)]),
        dict[str, bytes]().get,
        StepConfig(),
        PartitionLearner.new(1, StepConfig()),
    )
    assert [d.reason.value for d in result.deadletters] == ["processing_error"]

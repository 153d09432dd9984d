"""Issue 8, "Bad input": the hostile corpus (tests.hostile) through the adapter's batch path.

Dead letters by reason equal the injected counts exactly, nothing crashes (no processing_error),
every valid event gets exactly one decision, duplicates are skipped exactly, refused property
values are noted exactly, and no bad value reaches stored state.

What may be stored: a valid event's user key, userId and anonymousId are stored as they came,
whatever their text (an injection string used as an id is an opaque key the processor never
interprets, and its profile must be found by it). Every other hostile string (in messageIds,
event and page names, types, times, property keys and values) must not appear in any profile.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from functools import lru_cache
from itertools import islice
from typing import Any

import orjson
import pytest

from agents.batch import BatchResult, RawRecord, process_records
from stream import Profile, SourcePosition, StepConfig, decode_event
from stream.deadletter import DeadLetter
from stream.features import feature_vector
from stream.synthetic import GeneratorConfig, generate_events
from tests.hostile import DUPLICATE, HOSTILE_STRINGS, VALID, Hostile, hostile_corpus, mixed_stream

CONFIG = StepConfig()
#: Bounds of every numeric feature of a profile built from this corpus (generous, finite).
MAX_FEATURE = 1e13


@lru_cache(maxsize=1)
def _stream() -> tuple[Hostile, ...]:
    synthetic = islice(generate_events(GeneratorConfig(seed=8, users=60, days=1.0)), 1500)
    return tuple(mixed_stream(hostile_corpus(seed=8), synthetic, seed=8))


@lru_cache(maxsize=1)
def _run() -> tuple[BatchResult, dict[str, bytes]]:
    """The stream in batches of 200 records, profiles kept as bytes between batches."""
    store: dict[str, bytes] = {}
    total = BatchResult()
    items = _stream()
    for start in range(0, len(items), 200):
        records = [
            RawRecord(SourcePosition("events", 0, start + i), h.key, h.raw)
            for i, h in enumerate(items[start : start + 200])
        ]
        result = process_records(records, store.get, CONFIG)
        store.update(result.profile_bytes())
        total.decisions += result.decisions
        total.deadletters += result.deadletters
        total.counters.update(result.counters)
    return total, store


def _expected(outcome: str) -> int:
    return sum(1 for h in _stream() if h.expected == outcome)


def test_the_corpus_is_large_seeded_and_covers_every_category() -> None:
    corpus = hostile_corpus(seed=8)
    assert len(corpus) >= 1000
    assert [h.raw for h in corpus] == [h.raw for h in hostile_corpus(seed=8)]
    categories = Counter(h.category for h in corpus)
    for name in (
        "truncated",
        "malformed",
        "wrong_type",
        "oversized",
        "gzip_bomb",
        "deep_nesting",
        "invalid_utf8",
        "nan_inf",
        "injection",
        "long_string",
        "missing_id",
        "timestamp",
        "duplicate",
    ):
        assert categories[name] >= 20, name
    reasons = {h.expected for h in corpus} - {VALID, DUPLICATE}
    assert reasons == {
        "too_large",
        "invalid_encoding",
        "malformed_json",
        "not_an_object",
        "unknown_type",
        "missing_identity",
        "missing_field",
        "invalid_field",
        "implausible_timestamp",
        "future_timestamp",
    }


def test_each_input_decodes_to_its_documented_outcome() -> None:
    """Input by input (a wrong expectation is named here, not only counted below)."""
    wrong = []
    for h in _stream():
        decoded = decode_event(h.raw, key=h.key)
        got = decoded.reason.value if isinstance(decoded, DeadLetter) else VALID
        want = VALID if h.expected == DUPLICATE else h.expected
        if got != want or (got == VALID and decoded.user_key != h.user_key):  # type: ignore[union-attr]
            wrong.append((h.category, h.why, want, got, h.raw[:120]))
    assert wrong == []


def test_dead_letters_by_reason_equal_the_injected_counts_exactly() -> None:
    result, _ = _run()
    injected = Counter(
        f"deadletter:{h.expected}" for h in _stream() if h.expected not in (VALID, DUPLICATE)
    )
    got = Counter({k: v for k, v in result.counters.items() if k.startswith("deadletter:")})
    assert got == injected
    assert result.counters["deadletter:processing_error"] == 0
    assert result.counters["events_in"] == len(_stream())


def test_every_valid_event_gets_one_decision_and_duplicates_are_skipped() -> None:
    result, _ = _run()
    valid = Counter((h.user_key, h.message_id) for h in _stream() if h.expected == VALID)
    decided = Counter((d.user_key, d.event_message_id) for d in result.decisions)
    assert decided == valid
    assert result.counters["skipped:duplicate"] == _expected(DUPLICATE)
    assert result.counters["skipped:already_applied"] == 0


def test_refused_property_values_are_noted_exactly_once_per_event() -> None:
    result, _ = _run()
    expected = Counter(f"note:sanitized:{f}" for h in _stream() for f in h.sanitized)
    got = Counter({k: v for k, v in result.counters.items() if k.startswith("note:sanitized:")})
    assert got == expected


def test_stored_profiles_round_trip_and_their_features_are_finite_and_bounded() -> None:
    _, store = _run()
    assert len(store) == len({h.user_key for h in _stream() if h.expected == VALID})
    for data in store.values():
        profile = Profile.from_bytes(data)
        assert profile.to_bytes() == data
        for name, value in feature_vector(profile, CONFIG).items():
            for number in _numbers(value):
                assert math.isfinite(number) and abs(number) <= MAX_FEATURE, (name, value)


def _numbers(value: Any) -> Iterator[float]:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, dict):
        for inner in value.values():
            yield from _numbers(inner)
        return
    assert isinstance(value, int | float), value
    yield float(value)


def test_no_hostile_string_reaches_stored_state_but_a_valid_events_own_ids() -> None:
    _, store = _run()
    ids = {(h.user_key, h.raw) for h in _stream() if h.expected == VALID}
    assert ids
    for data in store.values():
        doc = orjson.loads(data)
        for field in ("user_key", "user_id", "anonymous_id"):
            doc.pop(field)
        rest = orjson.dumps(doc)
        for hostile in HOSTILE_STRINGS:
            assert orjson.dumps(hostile)[1:-1] not in rest, hostile[:40]
            assert hostile.encode() not in rest, hostile[:40]


@pytest.mark.parametrize("batch", [1, 7, 500])
def test_the_outcome_does_not_depend_on_batch_boundaries(batch: int) -> None:
    items = _stream()[:1500]
    store: dict[str, bytes] = {}
    counters: Counter[str] = Counter()
    for start in range(0, len(items), batch):
        records = [
            RawRecord(SourcePosition("events", 0, start + i), h.key, h.raw)
            for i, h in enumerate(items[start : start + batch])
        ]
        result = process_records(records, store.get, CONFIG)
        store.update(result.profile_bytes())
        counters.update(result.counters)
    expected = Counter(h.expected for h in items)
    assert counters["decisions_out"] == expected[VALID]
    assert counters["skipped:duplicate"] == expected[DUPLICATE]
    assert counters["deadletter:processing_error"] == 0

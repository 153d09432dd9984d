"""One micro-batch of raw records through the pure step; no Faust in here.

The agent hands over the records of one source partition and a way to read stored profiles; this
module decodes, steps and collects what to send and what to store: at most one profile value per
user, however many of their events the batch holds. Nothing here raises on bad input: a record
that cannot be decoded, or whose step fails, becomes a dead letter.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

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

__all__ = ["BatchResult", "RawRecord", "process_records"]


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A record as consumed: where it came from, its key and its undecoded value."""

    source: SourcePosition
    key: bytes | None
    value: bytes


@dataclass(slots=True)
class BatchResult:
    """What a batch produced: decisions and dead letters to send, profiles to store, counts."""

    decisions: list[Decision] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)
    profiles: dict[str, Profile] = field(default_factory=dict)
    counters: Counter[str] = field(default_factory=Counter)

    def profile_bytes(self) -> dict[str, bytes]:
        """Each changed profile serialized once."""
        return {key: profile.to_bytes() for key, profile in self.profiles.items()}


ProfileLoader = Callable[[str], bytes | None]


def process_records(
    records: Iterable[RawRecord], load: ProfileLoader, config: StepConfig
) -> BatchResult:
    """Decode and step every record, in order, reading each user's profile at most once."""
    result = BatchResult()
    for record in records:
        result.counters["events_in"] += 1
        try:
            _process_one(result, record, load, config)
        except Exception as exc:
            # Bad state, or a bug a hostile input reached: park this event with its reason and
            # keep the batch (and every other user's events) going.
            message = f"{type(exc).__name__}: {exc}"
            _dead_letter(
                result,
                DeadLetter.of(
                    DeadLetterReason.PROCESSING_ERROR,
                    message,
                    record.value,
                    record.source,
                    record.key,
                ),
            )
    return result


def _process_one(
    result: BatchResult, record: RawRecord, load: ProfileLoader, config: StepConfig
) -> None:
    decoded = decode_event(record.value, record.source, record.key)
    if isinstance(decoded, DeadLetter):
        _dead_letter(result, decoded)
        return
    if record.key is not None and record.key != decoded.user_key.encode():
        # Partitioned by another key than its profile's: counted, because one user's events
        # could then be split across partitions (and so across two profiles).
        result.counters["note:key_mismatch"] += 1
    _step_one(result, decoded, load, config)


def _step_one(result: BatchResult, event: Event, load: ProfileLoader, config: StepConfig) -> None:
    profile = _current_profile(result, event.user_key, load)
    updated, outputs = step(profile, event, config)
    # Stored even when the step skipped the event: see "A skipped record" in agents.app.
    result.profiles[event.user_key] = updated
    result.decisions.extend(outputs.decisions)
    result.counters["decisions_out"] += len(outputs.decisions)
    if outputs.skipped:
        result.counters[f"skipped:{outputs.skipped}"] += 1
    for note in outputs.notes:
        result.counters[f"note:{note}"] += 1


def _current_profile(result: BatchResult, user_key: str, load: ProfileLoader) -> Profile | None:
    cached = result.profiles.get(user_key)
    if cached is not None:
        return cached
    stored = load(user_key)
    return None if stored is None else Profile.from_bytes(stored)


def _dead_letter(result: BatchResult, letter: DeadLetter) -> None:
    result.deadletters.append(letter)
    result.counters[f"deadletter:{letter.reason.value}"] += 1

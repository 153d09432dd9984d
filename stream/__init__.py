"""The pure core: events in, profiles and decisions out. No Faust, no Kafka, no wall clock."""

from __future__ import annotations

from stream.config import PolicyConfig, StepConfig
from stream.deadletter import DeadLetter, DeadLetterReason, SourcePosition
from stream.decision import Decision, canonical_bytes, decision_id
from stream.decode import MAX_EVENT_BYTES, decode_event
from stream.events import Event, EventType, SegmentEvent
from stream.exceptions import ConfigError, SnapshotError, StreamError
from stream.profile import Profile
from stream.step import StepOutputs, step

__all__ = [
    "MAX_EVENT_BYTES",
    "ConfigError",
    "DeadLetter",
    "DeadLetterReason",
    "Decision",
    "Event",
    "EventType",
    "PolicyConfig",
    "Profile",
    "SegmentEvent",
    "SnapshotError",
    "SourcePosition",
    "StepConfig",
    "StepOutputs",
    "StreamError",
    "canonical_bytes",
    "decision_id",
    "decode_event",
    "step",
]

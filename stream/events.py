"""The event contract: Segment-spec events, validated at the edge.

Two shapes live here. :class:`SegmentEvent` is the wire model (pydantic, field names as in the
Segment spec). :class:`Event` is the compact domain value the step works on: integer event time
in milliseconds, the user key, and only what the core reads.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stream.deadletter import SourcePosition
from stream.eventtime import event_time_ms
from stream.timeutil import datetime_to_ms

__all__ = [
    "MAX_EVENT_NAME_LENGTH",
    "MAX_ID_LENGTH",
    "MAX_STR_LENGTH",
    "Event",
    "EventType",
    "SegmentEvent",
    "message_fingerprint",
]

#: Ids longer than this are rejected: they are never legitimate and would bloat state and keys.
MAX_ID_LENGTH = 256
#: Any text field, and any key or text inside `context`/`properties`/`traits`.
MAX_STR_LENGTH = 10_000
#: A track event's name (`event`) or a page/screen `name`.
MAX_EVENT_NAME_LENGTH = 200


class EventType(StrEnum):
    """The Segment call types the processor accepts."""

    TRACK = "track"
    PAGE = "page"
    SCREEN = "screen"
    IDENTIFY = "identify"
    ALIAS = "alias"


Identifier = str | None


class SegmentEvent(BaseModel):
    """A Segment-spec event as it arrives (track, page, screen, identify or alias).

    Unknown top-level fields are allowed and ignored, as Segment does. Numeric ids are accepted
    and turned into strings (several SDKs send numeric user ids); any other type is invalid.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, str_max_length=MAX_STR_LENGTH)

    type: Literal["track", "page", "screen", "identify", "alias"]
    messageId: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    userId: Identifier = Field(default=None, max_length=MAX_ID_LENGTH)
    anonymousId: Identifier = Field(default=None, max_length=MAX_ID_LENGTH)
    previousId: Identifier = Field(default=None, max_length=MAX_ID_LENGTH)
    timestamp: datetime | None = None
    originalTimestamp: datetime | None = None
    sentAt: datetime | None = None
    receivedAt: datetime | None = None
    event: str | None = Field(default=None, min_length=1, max_length=MAX_EVENT_NAME_LENGTH)
    name: str | None = Field(default=None, max_length=MAX_EVENT_NAME_LENGTH)
    context: dict[str, Any] = Field(default_factory=dict)
    properties: dict[str, Any] = Field(default_factory=dict)
    traits: dict[str, Any] = Field(default_factory=dict)

    @field_validator("userId", "anonymousId", "previousId", mode="before")
    @classmethod
    def _ids_as_text(cls, value: object) -> object:
        # bool is an int subclass; a boolean id is a client bug, not an id.
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if value == "":
            return None
        return value

    @model_validator(mode="after")
    def _required_by_type(self) -> SegmentEvent:
        if self.type == "track" and self.event is None:
            raise ValueError("missing: a track call needs `event`")
        if self.type == "alias" and self.previousId is None:
            raise ValueError("missing: an alias call needs `previousId`")
        if self.event_time() is None:
            raise ValueError("missing: no `timestamp`, `originalTimestamp` or `receivedAt`")
        return self

    def event_time(self) -> datetime | None:
        """When it happened: ``timestamp``, else ``originalTimestamp``, else ``receivedAt``
        (before the correction for the device's clock: see :mod:`stream.eventtime`)."""
        return self.timestamp or self.originalTimestamp or self.receivedAt

    def user_key(self) -> str:
        """The profile key: the known user id when present, else the anonymous id."""
        key = self.userId or self.anonymousId
        assert key is not None, "identity is checked before validation"
        return key


@dataclass(frozen=True, slots=True)
class Event:
    """A validated event, as the step sees it.

    ``name`` is what the event counts as: the track event name (``"Product Viewed"``), or the call
    type for the other calls (``"page"``, ``"screen"``, ``"identify"``, ``"alias"``).
    ``timestamp_ms`` is the event time, corrected for the device's clock (:mod:`stream.eventtime`);
    ``received_at_ms`` is when the collector received it, if it said.
    """

    message_id: str
    type: EventType
    name: str
    user_key: str
    timestamp_ms: int
    user_id: str | None = None
    anonymous_id: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    source: SourcePosition | None = None
    received_at_ms: int | None = None
    #: An alias call's ``previousId``: the other key it says is the same person.
    previous_id: str | None = None

    @classmethod
    def from_segment(cls, wire: SegmentEvent, source: SourcePosition | None = None) -> Event:
        """The domain event for a validated wire event."""
        timestamp, original, sent, received = (
            None if value is None else datetime_to_ms(value)
            for value in (wire.timestamp, wire.originalTimestamp, wire.sentAt, wire.receivedAt)
        )
        when = event_time_ms(timestamp, original, sent, received)
        assert when is not None, "checked by the model validator"
        return cls(
            message_id=wire.messageId,
            type=EventType(wire.type),
            name=wire.event if wire.type == "track" and wire.event else wire.type,
            user_key=wire.user_key(),
            timestamp_ms=when,
            user_id=wire.userId,
            anonymous_id=wire.anonymousId,
            properties=wire.properties,
            context=wire.context,
            source=source,
            received_at_ms=received,
            previous_id=wire.previousId,
        )


def message_fingerprint(message_id: str) -> int:
    """A 63-bit fingerprint of a message id (compact to keep in state; collisions ~2^-63).

    >>> message_fingerprint("m1") == message_fingerprint("m1") != message_fingerprint("m2")
    True
    """
    digest = hashlib.blake2b(message_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1

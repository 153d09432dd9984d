"""Dead-letter records: bad input as data, with a typed reason.

Every input that cannot become a valid :class:`~stream.events.Event` turns into exactly one
:class:`DeadLetter`, which the adapter publishes to the dead-letter topic. Nothing is dropped
silently and nothing raises inside an agent.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

__all__ = [
    "DEADLETTER_SCHEMA",
    "MAX_PAYLOAD_BYTES_KEPT",
    "DeadLetter",
    "DeadLetterReason",
    "SourcePosition",
]

DEADLETTER_SCHEMA = "deadletter.v1"
#: The original payload is kept up to this many bytes so the dead-letter topic stays bounded.
MAX_PAYLOAD_BYTES_KEPT = 4096


class DeadLetterReason(StrEnum):
    """Why an input was rejected. Values are stable: dashboards and alerts key on them."""

    TOO_LARGE = "too_large"
    INVALID_ENCODING = "invalid_encoding"
    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_TYPE = "unknown_type"
    MISSING_IDENTITY = "missing_identity"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    FUTURE_TIMESTAMP = "future_timestamp"
    IMPLAUSIBLE_TIMESTAMP = "implausible_timestamp"
    PROCESSING_ERROR = "processing_error"
    #: A record on the erasures control topic that is not a valid erasure request.
    INVALID_ERASURE_REQUEST = "invalid_erasure_request"


@dataclass(frozen=True, slots=True)
class SourcePosition:
    """Where a record came from: topic, partition and offset (``None`` offline)."""

    topic: str
    partition: int
    offset: int

    @property
    def key(self) -> str:
        """``"topic:partition"``: what a profile's applied positions are keyed by."""
        return f"{self.topic}:{self.partition}"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One rejected input: the reason, a readable message and the (bounded) original bytes."""

    reason: DeadLetterReason
    message: str
    payload: bytes
    payload_size: int
    source: SourcePosition | None = None
    key: bytes | None = None

    @classmethod
    def of(
        cls,
        reason: DeadLetterReason,
        message: str,
        raw: bytes,
        source: SourcePosition | None = None,
        key: bytes | None = None,
    ) -> DeadLetter:
        """Build a record, truncating the payload to :data:`MAX_PAYLOAD_BYTES_KEPT` bytes."""
        return cls(reason, message[:500], raw[:MAX_PAYLOAD_BYTES_KEPT], len(raw), source, key)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; the payload is base64 because it may not be valid UTF-8."""
        return {
            "schema": DEADLETTER_SCHEMA,
            "reason": self.reason.value,
            "message": self.message,
            "payload_b64": base64.b64encode(self.payload).decode("ascii"),
            "payload_size": self.payload_size,
            "payload_truncated": self.payload_size > len(self.payload),
            "source": _source_dict(self.source),
            "key_b64": None if self.key is None else base64.b64encode(self.key).decode("ascii"),
        }

    def to_bytes(self) -> bytes:
        """Serialized record for the dead-letter topic."""
        return orjson.dumps(self.to_dict())


def _source_dict(source: SourcePosition | None) -> dict[str, Any] | None:
    if source is None:
        return None
    return {"topic": source.topic, "partition": source.partition, "offset": source.offset}

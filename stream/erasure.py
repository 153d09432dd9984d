"""Erasure (the right to be forgotten): the request, what it removed, and its suppression.

A deletion request names one user key (a ``userId`` or an ``anonymousId``: the key the user's
events are partitioned by). Carrying it out (the adapter, :mod:`agents.erasure`) removes every
piece of state keyed by that user and writes an audit record; this module holds the pure parts:

* :class:`ErasureRequest`: the control record (``erasure-request.v1``), validated like an event;
* :func:`subject_of`: the pseudonym by which the audit record and the suppression name the user.
  The audit topic and the suppression table must not keep the identifier they exist to remove,
  so they hold a keyed hash (HMAC-SHA-256 with the deployment's secret) instead: a support agent
  who knows the id, and the deployment, can find the record; nobody can read the id from it;
* :class:`Suppression`: keeps the erasure in force for the user's events still in flight. Those
  were sent before the request, so their event time is at or before the request's (up to the
  client clock's skew): they are dropped, not folded into a new profile. A later event is a new
  visit and starts a new profile (with the consent it carries);
* :class:`Removed` and :class:`ErasureAudit`: what was removed, by whom, when
  (``erasure-audit.v1``); the audit never names the user but by the subject pseudonym;
* :func:`linked_requests`: the same user under another key. A known user's profile records the
  ``anonymousId`` their events carried; the anonymous profile that key may have of its own
  (events sent before the user logged in) is erased too, by a request derived from this one
  (``cascaded_from``), which the adapter sends to that key's partition.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stream.events import MAX_ID_LENGTH
from stream.profile import Profile

__all__ = [
    "ERASURE_AUDIT_SCHEMA",
    "ERASURE_REQUEST_SCHEMA",
    "SUPPRESSION_SCHEMA",
    "ErasureAudit",
    "ErasureRequest",
    "InvalidErasureRequest",
    "Removed",
    "Suppression",
    "linked_requests",
    "removed_from",
    "subject_of",
]

ERASURE_REQUEST_SCHEMA = "erasure-request.v1"
ERASURE_AUDIT_SCHEMA = "erasure-audit.v1"
SUPPRESSION_SCHEMA = "suppression.v1"


class InvalidErasureRequest(ValueError):
    """A control record that is not a valid erasure request (it is dead-lettered)."""


class ErasureRequest(BaseModel):
    """Erase everything held about ``user_key``; asked by ``requested_by`` at ``requested_at_ms``
    (processing time at the API that took the request, epoch ms)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_: Literal["erasure-request.v1"] = Field(default="erasure-request.v1", alias="schema")
    request_id: str = Field(min_length=1, max_length=128)
    user_key: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    requested_by: str = Field(min_length=1, max_length=200)
    requested_at_ms: int = Field(ge=0)
    reason: str = Field(default="", max_length=500)
    #: The request this one was derived from (the same user under another key), if any.
    cascaded_from: str | None = Field(default=None, max_length=128)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(by_alias=True))

    @classmethod
    def from_bytes(cls, data: bytes) -> ErasureRequest:
        """Parse a control record; raises :class:`InvalidErasureRequest` saying why not."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "record"
            raise InvalidErasureRequest(f"{where}: {first['msg']}") from exc


#: How many times a derived request may derive again (a person's merged keys, their own
#: anonymous ids): enough for every chain stitching makes, and a bound whatever the state.
MAX_CASCADE_DEPTH = 3


def linked_requests(request: ErasureRequest, profile: Profile | None) -> list[ErasureRequest]:
    """Requests for the user's other keys that ``profile`` knows: its anonymous id, the keys
    merged into it, and (for the request asked for, not a derived one) the person a merged key
    forwards to (stream.identity). A derived request cascades down to merged keys only, so
    erasing a device's key erases the person and every other key of theirs, and the cascade
    ends: each key's profile is deleted once, and depth is bounded.

    >>> r = ErasureRequest(request_id="r", user_key="u", requested_by="s", requested_at_ms=0)
    >>> [x.user_key for x in linked_requests(r, Profile("u", user_id="u", anonymous_id="a"))]
    ['a']
    """
    root = request.cascaded_from
    # Derived ids are the root's id plus "/n" per level (whatever the root's id contains).
    depth = 0 if root is None else request.request_id.count("/") - root.count("/")
    if profile is None or depth >= MAX_CASCADE_DEPTH:
        return []
    up = (profile.merged_into,) if request.cascaded_from is None else ()
    others = dict.fromkeys(
        key
        for key in (profile.anonymous_id, *sorted(profile.aliases), *up)
        if key is not None and key != request.user_key
    )
    root = root or request.request_id
    return [
        request.model_copy(
            update={
                "request_id": f"{request.request_id}/{n}",
                "user_key": key,
                "cascaded_from": root,
            }
        )
        for n, key in enumerate(others, start=1)
    ]


def subject_of(user_key: str, secret: bytes) -> str:
    """The user's pseudonym in the audit topic and the suppression table (64 hex digits).

    >>> subject_of("u1", b"k") == subject_of("u1", b"k") != subject_of("u1", b"other")
    True
    """
    return hmac.new(secret, user_key.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Suppression:
    """The erasure of one subject, still in force for events sent before it.

    ``until_ms`` is the request time plus the allowed client clock skew: an event of the user
    with an event time at or before it is dropped (``covers``).
    """

    request_id: str
    until_ms: int

    def covers(self, event_time_ms: int) -> bool:
        return event_time_ms <= self.until_ms

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {"schema": SUPPRESSION_SCHEMA, "request_id": self.request_id, "until_ms": self.until_ms}
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Suppression:
        doc = orjson.loads(data)
        if doc.get("schema") != SUPPRESSION_SCHEMA:
            raise ValueError(f"unsupported suppression schema {doc.get('schema')!r}")
        return cls(str(doc["request_id"]), int(doc["until_ms"]))


@dataclass(frozen=True, slots=True)
class Removed:
    """What the erasure found and removed for one user (counts, never content)."""

    profile: bool = False
    events_seen: int = 0
    pending_labels: int = 0
    pending_decisions: int = 0
    #: The partition learner's entry for the user (when their pending labels settle).
    learner_index: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "events_seen": self.events_seen,
            "pending_labels": self.pending_labels,
            "pending_decisions": self.pending_decisions,
            "learner_index": self.learner_index,
        }


def removed_from(profile: Profile | None, learner_index: bool) -> Removed:
    """Describe the state about to be removed (``profile`` ``None``: there was none)."""
    if profile is None:
        return Removed(learner_index=learner_index)
    return Removed(
        profile=True,
        events_seen=sum(profile.counts.values()),
        pending_labels=len(profile.labels),
        pending_decisions=len(profile.decisions),
        learner_index=learner_index,
    )


@dataclass(frozen=True, slots=True)
class ErasureAudit:
    """The audit record of one carried-out request (``erasure-audit.v1``).

    ``completed_at_ms`` is processing time (when the worker carried it out). ``tombstones``
    names the compacted topics a tombstone was written to for the user's key; ``suppressed_until``
    is the event time up to which the user's in-flight events are dropped.
    """

    request: ErasureRequest
    subject: str
    partition: int
    removed: Removed
    tombstones: tuple[str, ...]
    suppressed_until_ms: int
    completed_at_ms: int
    #: Subjects (pseudonyms) of the user's other keys, erased by derived requests.
    cascaded: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": ERASURE_AUDIT_SCHEMA,
            "request_id": self.request.request_id,
            "subject": self.subject,
            "requested_by": self.request.requested_by,
            "requested_at_ms": self.request.requested_at_ms,
            "reason": self.request.reason,
            "cascaded_from": self.request.cascaded_from,
            "cascaded": list(self.cascaded),
            "completed_at_ms": self.completed_at_ms,
            "partition": self.partition,
            "removed": self.removed.to_dict(),
            "tombstones": list(self.tombstones),
            "suppressed_until_ms": self.suppressed_until_ms,
        }

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_dict())

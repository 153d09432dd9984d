"""The per-user profile: one compact value per user, round-tripping to bytes with orjson.

It holds everything the step knows about a user: lifetime counts by event name, first and last
seen (event time; ``last_seen_ms`` is the user's own watermark), the last time of key events,
windowed aggregates (:mod:`stream.windowed`), the order-dependent state and the events still
within grace (:mod:`stream.ordered`), the latest context, the fingerprints of recently applied
messages (duplicates are applied once) and the last applied source positions (a record delivered
again after a crash is not applied twice).
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass, field
from typing import Any

import orjson

from stream.context import minimal_context
from stream.decision import Decision
from stream.exceptions import SnapshotError
from stream.labels import PendingLabel
from stream.ordered import CartLine, Moment, OrderedState
from stream.rewards import PendingDecision
from stream.windowed import WindowState

__all__ = ["PROFILE_SCHEMA", "CartLine", "Profile"]

PROFILE_SCHEMA = "profile.v7"


@dataclass(slots=True)
class Profile:
    """Mutable: the step takes ownership of the profile it is given and updates it in place."""

    user_key: str
    user_id: str | None = None
    anonymous_id: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    first_seen_ms: int | None = None
    last_seen_ms: int | None = None
    last_event_ms: dict[str, int] = field(default_factory=dict)
    revenue_total: float = 0.0
    windows: WindowState = field(default_factory=WindowState)
    final: OrderedState = field(default_factory=OrderedState)
    pending: list[Moment] = field(default_factory=list)
    #: ``final`` with ``pending`` folded in: what features read. Kept in memory (not recomputed
    #: per event) because events almost always arrive in order, and then it only needs the new
    #: event; not stored (it would double the profile's size), so ``None`` right after a restore
    #: until the step rebuilds it from ``final`` and ``pending``.
    head: OrderedState | None = field(default_factory=OrderedState)
    context: dict[str, Any] | None = None
    context_ms: int | None = None
    #: The kept context is the latest event's by (event time, this message fingerprint).
    context_fingerprint: int | None = None
    late_events: int = 0
    recent_messages: list[int] = field(default_factory=list)
    #: Last applied source offset per ``"topic:partition"``. The topic is part of the key so a
    #: new (versioned) events topic, whose offsets start again at 0, is not mistaken for a
    #: redelivery of the old one.
    applied: dict[str, int] = field(default_factory=dict)
    #: Predictions waiting for their outcome (stream.labels), oldest first.
    labels: list[PendingLabel] = field(default_factory=list)
    #: Event time of the latest pending label made (labels are made at most every so often).
    last_label_ms: int | None = None
    #: Consent to personalization from the latest event that said (``None``: never said;
    #: ``False``: opted out, the policy gives the default action).
    consent: bool | None = None
    #: (action, event time) of each recent new choice: what caps and cooldowns count.
    starts: list[tuple[str, int]] = field(default_factory=list)
    #: The previous new choice: [action, variant, session number, allowed actions, decision id]
    #: (the policy keeps the action while these stay the same).
    choice: list[Any] | None = None
    #: Decisions waiting for their reward (stream.rewards), oldest first.
    decisions: list[PendingDecision] = field(default_factory=list)
    #: The latest decision made for the user, for the transparency endpoint: the decision
    #: itself until the profile is serialized (building its summary on every event would cost
    #: more than keeping a reference), its :meth:`Decision.summary` once restored.
    last_decision: Decision | dict[str, Any] | None = None
    #: The other keys whose history was merged into this profile (stream.identity): key ->
    #: the latest event time of that history when it was merged.
    aliases: dict[str, int] = field(default_factory=dict)
    #: Set when this key's history was merged into another profile: the key it now lives
    #: under. Events carrying only this key go there; the history is kept until idle eviction
    #: so a merge lost in a crash can be made again (stream.identity).
    merged_into: str | None = None
    #: The time of the link this key was handed over for (with ``merged_into``): a request
    #: delivered again for the same link hands nothing over a second time.
    merged_at_ms: int | None = None

    def copy(self) -> Profile:
        """A deep copy (leaves are immutable scalars, tuples or never-mutated lists)."""
        return Profile(
            self.user_key,
            self.user_id,
            self.anonymous_id,
            dict(self.counts),
            self.first_seen_ms,
            self.last_seen_ms,
            dict(self.last_event_ms),
            self.revenue_total,
            self.windows.copy(),
            self.final.copy(),
            list(self.pending),
            None if self.head is None else self.head.copy(),
            self.context,
            self.context_ms,
            self.context_fingerprint,
            self.late_events,
            list(self.recent_messages),
            dict(self.applied),
            list(self.labels),
            self.last_label_ms,
            self.consent,
            list(self.starts),
            None if self.choice is None else list(self.choice),
            list(self.decisions),
            self.last_decision,
            dict(self.aliases),
            self.merged_into,
            self.merged_at_ms,
        )

    def restart(self, **kept: Any) -> None:
        """Make this profile a fresh one, in place, keeping its identity (key, ids and
        aliases), its idempotence records (applied offsets, recent message ids) and the ``kept``
        fields."""
        fresh = Profile(
            user_key=self.user_key,
            user_id=self.user_id,
            anonymous_id=self.anonymous_id,
            recent_messages=self.recent_messages,
            applied=self.applied,
            aliases=self.aliases,
            merged_into=self.merged_into,
            merged_at_ms=self.merged_at_ms,
            **kept,
        )
        for name in Profile.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": PROFILE_SCHEMA,
            "user_key": self.user_key,
            "user_id": self.user_id,
            "anonymous_id": self.anonymous_id,
            "counts": self.counts,
            "first_seen_ms": self.first_seen_ms,
            "last_seen_ms": self.last_seen_ms,
            "last_event_ms": self.last_event_ms,
            "revenue_total": self.revenue_total,
            "windows": self.windows.to_doc(),
            "final": self.final.to_dict(),
            "pending": [list(m) for m in self.pending],
            "context": None if self.context is None else minimal_context(self.context),
            "context_ms": self.context_ms,
            "context_fingerprint": self.context_fingerprint,
            "late_events": self.late_events,
            "recent_messages": _pack(self.recent_messages),
            "applied": self.applied,
            "labels": [label.to_list() for label in self.labels],
            "last_label_ms": self.last_label_ms,
            "consent": self.consent,
            "starts": [list(start) for start in self.starts],
            "choice": self.choice,
            "decisions": [d.to_list() for d in self.decisions],
            "last_decision": self.last_decision_summary(),
            "aliases": self.aliases,
            "merged_into": self.merged_into,
            "merged_at_ms": self.merged_at_ms,
        }

    def last_decision_summary(self) -> dict[str, Any] | None:
        """Why the latest decision was made (:meth:`Decision.summary`), if there was one."""
        last = self.last_decision
        return last.summary() if isinstance(last, Decision) else last

    def to_bytes(self) -> bytes:
        """Compact bytes for the profiles table (keys sorted so equal profiles give equal bytes)."""
        return orjson.dumps(self.to_dict(), option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_bytes(cls, data: bytes) -> Profile:
        """Restore a profile written by :meth:`to_bytes`; raises :class:`SnapshotError`."""
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise SnapshotError(f"cannot restore profile: {exc}") from exc
        return cls.from_dict(doc)

    @classmethod
    def from_dict(cls, doc: Any) -> Profile:
        """Restore a profile from :meth:`to_dict`'s document; raises :class:`SnapshotError`."""
        try:
            return cls._from_dict(doc)
        except (
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
            binascii.Error,
            struct.error,
        ) as exc:
            raise SnapshotError(f"cannot restore profile: {exc}") from exc

    @staticmethod
    def last_seen_of(data: bytes) -> int | None:
        """The latest event time of a stored profile without restoring all of it; ``None`` if
        it has none or cannot be read."""
        try:
            last_seen = orjson.loads(data).get("last_seen_ms")
        except (orjson.JSONDecodeError, AttributeError):
            return None
        return last_seen if isinstance(last_seen, int) else None

    @classmethod
    def _from_dict(cls, doc: dict[str, Any]) -> Profile:
        if doc.get("schema") != PROFILE_SCHEMA:
            raise SnapshotError(f"unsupported profile schema {doc.get('schema')!r}")
        return cls(
            user_key=doc["user_key"],
            user_id=doc["user_id"],
            anonymous_id=doc["anonymous_id"],
            counts=dict(doc["counts"]),
            first_seen_ms=doc["first_seen_ms"],
            last_seen_ms=doc["last_seen_ms"],
            last_event_ms={str(k): int(v) for k, v in doc["last_event_ms"].items()},
            revenue_total=float(doc["revenue_total"]),
            windows=WindowState.from_doc(doc["windows"]),
            final=OrderedState.from_dict(doc["final"]),
            pending=[Moment(*m) for m in doc["pending"]],
            head=None,
            context=doc["context"],
            context_ms=doc["context_ms"],
            context_fingerprint=doc["context_fingerprint"],
            late_events=int(doc["late_events"]),
            recent_messages=_unpack(doc["recent_messages"]),
            applied={str(p): int(o) for p, o in doc["applied"].items()},
            labels=[PendingLabel.from_list(item) for item in doc["labels"]],
            last_label_ms=doc["last_label_ms"],
            consent=doc["consent"],
            starts=[(str(a), int(t)) for a, t in doc["starts"]],
            choice=doc["choice"],
            decisions=[PendingDecision.from_list(item) for item in doc["decisions"]],
            last_decision=doc["last_decision"],
            aliases={str(k): int(v) for k, v in doc["aliases"].items()},
            merged_into=doc["merged_into"],
            merged_at_ms=doc["merged_at_ms"],
        )


def _pack(fingerprints: list[int]) -> str:
    """Fingerprints (63-bit) as base64 of 8 big-endian bytes each: about half the JSON size of
    the decimal list, and the dedupe window is the largest fixed part of a profile."""
    return base64.b64encode(struct.pack(f">{len(fingerprints)}Q", *fingerprints)).decode()


def _unpack(text: str) -> list[int]:
    raw = base64.b64decode(text, validate=True)
    if len(raw) % 8:
        raise ValueError("recent_messages is not a whole number of fingerprints")
    return list(struct.unpack(f">{len(raw) // 8}Q", raw))

"""The per-user profile: one compact value per user, round-tripping to bytes with orjson.

The profile holds everything the step needs about a user: counts by event name, first and last
seen (event time), the current cart, per-category view counts, the ids of recently applied
messages (to apply duplicates once) and the last applied source position (so a record delivered
again after a crash is not applied twice).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from stream.exceptions import SnapshotError

__all__ = ["PROFILE_SCHEMA", "CartLine", "Profile"]

PROFILE_SCHEMA = "profile.v2"


@dataclass(slots=True)
class CartLine:
    """One product in the cart: quantity and unit price at the time it was added."""

    quantity: int
    price: float


@dataclass(slots=True)
class Profile:
    """Mutable while the step builds it; the step never mutates the profile it was given."""

    user_key: str
    user_id: str | None = None
    anonymous_id: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    first_seen_ms: int | None = None
    last_seen_ms: int | None = None
    cart: dict[str, CartLine] = field(default_factory=dict)
    category_views: dict[str, int] = field(default_factory=dict)
    views_since_add: int = 0
    recent_messages: list[int] = field(default_factory=list)
    #: Last applied source offset per ``"topic:partition"``. The topic is part of the key so a
    #: new (versioned) events topic, whose offsets start again at 0, is not mistaken for a
    #: redelivery of the old one.
    applied: dict[str, int] = field(default_factory=dict)

    def copy(self) -> Profile:
        """A deep copy (values are immutable scalars, so copying the containers is enough)."""
        return Profile(
            user_key=self.user_key,
            user_id=self.user_id,
            anonymous_id=self.anonymous_id,
            counts=dict(self.counts),
            first_seen_ms=self.first_seen_ms,
            last_seen_ms=self.last_seen_ms,
            cart={k: CartLine(v.quantity, v.price) for k, v in self.cart.items()},
            category_views=dict(self.category_views),
            views_since_add=self.views_since_add,
            recent_messages=list(self.recent_messages),
            applied=dict(self.applied),
        )

    def cart_value(self) -> float:
        """Sum of quantity times price over the cart, rounded to cents."""
        return round(sum(line.quantity * line.price for line in self.cart.values()), 2)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": PROFILE_SCHEMA,
            "user_key": self.user_key,
            "user_id": self.user_id,
            "anonymous_id": self.anonymous_id,
            "counts": self.counts,
            "first_seen_ms": self.first_seen_ms,
            "last_seen_ms": self.last_seen_ms,
            "cart": {k: [v.quantity, v.price] for k, v in self.cart.items()},
            "category_views": self.category_views,
            "views_since_add": self.views_since_add,
            "recent_messages": self.recent_messages,
            "applied": self.applied,
        }

    def to_bytes(self) -> bytes:
        """Compact bytes for the profiles table (keys sorted so equal profiles give equal bytes)."""
        return orjson.dumps(self.to_dict(), option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_bytes(cls, data: bytes) -> Profile:
        """Restore a profile written by :meth:`to_bytes`; raises :class:`SnapshotError`."""
        try:
            doc = orjson.loads(data)
            return cls._from_dict(doc)
        except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"cannot restore profile: {exc}") from exc

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
            cart={k: CartLine(int(q), float(p)) for k, (q, p) in doc["cart"].items()},
            category_views=dict(doc["category_views"]),
            views_since_add=int(doc["views_since_add"]),
            recent_messages=[int(m) for m in doc["recent_messages"]],
            applied={str(p): int(o) for p, o in doc["applied"].items()},
        )

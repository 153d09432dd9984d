"""The decision contract (schema ``decision.v3``): what downstream services consume.

A decision is a pure function of the profile and the causing event, so its id is derived from
the event alone: replaying a log, or re-delivering a record after a crash, gives the same id and
lets consumers drop duplicates. The only non-deterministic part, when the adapter emitted it, is
kept apart in a trailing ``processing`` block; :meth:`Decision.to_bytes` without a clock value is
the canonical form that replays compare byte for byte.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

import orjson

__all__ = [
    "DECISION_SCHEMA",
    "Alternative",
    "Decision",
    "Reason",
    "canonical_bytes",
    "decision_id",
]

DECISION_SCHEMA = "decision.v3"

Scalar = str | int | float | bool | None


def decision_id(policy_version: str, user_key: str, message_id: str) -> str:
    """Deterministic id of the decision caused by one event under one policy version.

    >>> decision_id("rules-v1", "u1", "m1") == decision_id("rules-v1", "u1", "m1")
    True
    >>> len(decision_id("rules-v1", "u1", "m1"))
    32
    """
    material = "\x1f".join((policy_version, user_key, message_id)).encode()
    return hashlib.blake2b(material, digest_size=16).hexdigest()


class Reason(NamedTuple):
    """Why the chosen action was chosen: the rule, in words, and the features it looked at."""

    rule: str
    detail: str
    features: dict[str, Scalar]

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "detail": self.detail, "features": self.features}


class Alternative(NamedTuple):
    """An action the policy considered: its predicted reward, whether it was eligible (``rule``
    says why not, or ``"eligible"``), and the probability the policy had of choosing it."""

    action: str
    score: float
    eligible: bool
    rule: str
    probability: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "score": self.score,
            "eligible": self.eligible,
            "rule": self.rule,
            "probability": self.probability,
        }


class Decision(NamedTuple):
    """The next best action for one user after one event (immutable, cheap to build)."""

    decision_id: str
    user_key: str
    user_id: str | None
    anonymous_id: str | None
    event_message_id: str
    event_name: str
    event_time_ms: int
    action: str
    score: float
    propensity: float
    variant: str
    params: dict[str, Scalar]
    alternatives: tuple[Alternative, ...]
    reasons: tuple[Reason, ...]
    versions: dict[str, Any]
    #: What the online models predict for this user now (``None`` when no models ran): per
    #: target, the probability or ranking, the model version, and the inputs that weighed most.
    predictions: dict[str, Any] | None = None
    #: How the policy chose: its version (with the bandit's learned count), the variant's kind,
    #: the exploration rate and whether this decision explored, whether it kept the previous
    #: action (``sticky``), the predicted reward of each eligible action, and the context.
    policy: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": DECISION_SCHEMA,
            "decision_id": self.decision_id,
            "user": {
                "key": self.user_key,
                "user_id": self.user_id,
                "anonymous_id": self.anonymous_id,
            },
            "event": {
                "message_id": self.event_message_id,
                "name": self.event_name,
                "time_ms": self.event_time_ms,
            },
            "action": self.action,
            "params": self.params,
            "score": self.score,
            "propensity": self.propensity,
            "variant": self.variant,
            "alternatives": [a.to_dict() for a in self.alternatives],
            "reasons": [r.to_dict() for r in self.reasons],
            "versions": self.versions,
            "predictions": self.predictions,
            "policy": self.policy,
        }

    def summary(self) -> dict[str, Any]:
        """Why this decision was made, in words, without the user's ids (they are the profile's
        key): what a profile keeps of its latest decision for the transparency endpoint.

        Kept small (it is in every profile): the reasons' words and the values they saw, each
        model's prediction and what weighed most (the ``says`` words), every eligible action's
        predicted reward, why each other action was not eligible, and the policy's version.
        The decision itself, with everything, is in the decisions topic under its id.
        """
        policy = self.policy or {}
        return {
            "decision_id": self.decision_id,
            # Not the causing event's messageId: a client's free text.
            "event": [self.event_name, self.event_time_ms],
            "action": self.action,
            "variant": self.variant,
            "policy": policy.get("version"),
            "explored": policy.get("explored", False),
            "reasons": [[r.detail, r.features] if r.features else [r.detail] for r in self.reasons],
            "scores": {
                a: round(v, 4)
                for a, v in policy.get("scores", {}).items()
                if a in policy.get("eligible", ())
            },
            "not_eligible": {a.action: a.rule for a in self.alternatives if not a.eligible},
            "predictions": _predictions_in_words(self.predictions),
        }

    def to_bytes(self, emitted_at_ms: int | None = None) -> bytes:
        """Serialized decision; with ``emitted_at_ms``, a ``processing`` block is appended.

        The block says when the adapter emitted it and the event-to-emit freshness; everything
        before it is deterministic.
        """
        doc = self.to_dict()
        if emitted_at_ms is not None:
            doc["processing"] = {
                "emitted_at_ms": emitted_at_ms,
                "event_to_emit_ms": emitted_at_ms - self.event_time_ms,
            }
        return orjson.dumps(doc)


def canonical_bytes(raw: bytes) -> bytes:
    """The deterministic part of a serialized decision (drops the ``processing`` block)."""
    doc = orjson.loads(raw)
    doc.pop("processing", None)
    return orjson.dumps(doc)


def _predictions_in_words(predictions: dict[str, Any] | None) -> dict[str, Any] | None:
    """Each model's prediction, and for binary ones what weighed most, in words."""
    if predictions is None:
        return None
    words: dict[str, Any] = {}
    for target, prediction in predictions.items():
        if prediction is None:
            words[target] = None
        elif "top" in prediction:
            words[target] = [label for label, _ in prediction["top"]]
        else:
            words[target] = [prediction["p"], [why["says"] for why in prediction["why"]]]
    return words

"""The delayed-label join, in event time: what a prediction turned out to be.

When a user acts, the models predict from their features; later events (or the passing of event
time) reveal what happened. Each user's profile keeps a few **pending labels**: the input
vector at the moment of a prediction, and which targets are still unresolved. A target resolves
into an :class:`Example` the partition's learner trains on:

==============  ======================================  ========================================
target          positive / label                        negative
==============  ======================================  ========================================
conversion      an "Order Completed" later than the     event time passes ``at + horizon``
                prediction and within the horizon       without one
abandonment     the session ends (no event for the      an "Order Completed" in the same
(cart held)     session gap) without an order           session after the prediction
next_category   the category of the next product        nothing to learn: dropped when event
                viewed or added                         time passes ``at + horizon``
==============  ======================================  ========================================

Abandonment is **cart** abandonment: only a prediction made while the cart held something opens
it. Without that condition it is the mirror image of conversion (a session without an order
is, within 30 minutes, a conversion that did not happen; measured: every abandonment label was
the negation of a conversion label on the REES46 sample), and a model of it learns nothing new.

"Event time passes" is judged by the user's own next event or by the partition's label clock
(:mod:`stream.partition`), whichever comes first; both follow the log's order, so a replay
resolves every label at the same place as the live run.

Not every event leaves a pending label: one at most every ``label_every_ms`` of a user's event
time, plus one at every "Product Added" (and at most ``max_pending_labels`` at once), so a
burst of clicks does not train the models on twenty near-copies of the same moment, and a
profile stays small. The inputs are kept
as float32 (a quarter of the JSON size); that rounding happens when the label is made, so live
and replayed runs learn from the same numbers.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from typing import Any, NamedTuple

__all__ = [
    "ABANDONMENT",
    "CONVERSION",
    "NEXT_CATEGORY",
    "Example",
    "PendingLabel",
    "deadline",
    "expire",
    "pack_inputs",
    "resolve_outcome",
    "unpack_inputs",
]

CONVERSION = "conversion"
ABANDONMENT = "abandonment"
NEXT_CATEGORY = "next_category"

_CONVERSION, _ABANDONMENT, _NEXT_CATEGORY = 1, 2, 4
ALL_TARGETS = _CONVERSION | _ABANDONMENT | _NEXT_CATEGORY
#: The targets a prediction made with an empty cart opens.
WITHOUT_CART = _CONVERSION | _NEXT_CATEGORY

ORDER_EVENT = "Order Completed"
CATEGORY_EVENTS = frozenset({"Product Viewed", "Product Added"})


class PendingLabel(NamedTuple):
    """A prediction waiting for its outcome (immutable; replaced when a target resolves)."""

    #: Event time of the prediction.
    at_ms: int
    #: Start of the session the prediction was made in (abandonment is per session).
    session_start_ms: int
    #: The model inputs at that moment, packed float32 (see :func:`pack_inputs`).
    inputs: bytes
    #: Bit set of unresolved targets.
    open: int = ALL_TARGETS
    #: The user's strongest category affinities then (category, affinity), for next category.
    candidates: tuple[tuple[str, float], ...] = ()
    #: The category of the event the prediction was made at, if it named one.
    current: str | None = None

    def to_list(self) -> list[object]:
        return [
            self.at_ms,
            self.session_start_ms,
            base64.b64encode(self.inputs).decode(),
            self.open,
            [list(pair) for pair in self.candidates],
            self.current,
        ]

    @classmethod
    def from_list(cls, item: Sequence[Any]) -> PendingLabel:
        at_ms, session_start_ms, inputs, open_targets, candidates, current = item
        if not (
            isinstance(at_ms, int)
            and isinstance(session_start_ms, int)
            and isinstance(inputs, str)
            and isinstance(open_targets, int)
            and isinstance(candidates, list)
            and (current is None or isinstance(current, str))
        ):
            raise ValueError(f"malformed pending label {item!r}")
        return cls(
            at_ms,
            session_start_ms,
            base64.b64decode(inputs, validate=True),
            open_targets,
            tuple((str(c), float(v)) for c, v in candidates),
            current,
        )


class Example(NamedTuple):
    """A resolved target: the inputs at prediction time and what happened."""

    target: str
    at_ms: int
    inputs: bytes
    #: ``True``/``False`` for the binary targets, the category for ``next_category``.
    label: bool | str
    #: For ``next_category``: the label's candidates and current category (see PendingLabel).
    candidates: tuple[tuple[str, float], ...] = ()
    current: str | None = None


def pack_inputs(values: Sequence[float]) -> bytes:
    """Inputs as little-endian float32 (values must be finite and cleaned)."""
    return struct.pack(f"<{len(values)}f", *values)


def unpack_inputs(packed: bytes) -> list[float]:
    if len(packed) % 4:
        raise ValueError("packed inputs are not a whole number of float32")
    return list(struct.unpack(f"<{len(packed) // 4}f", packed))


def expire(
    labels: list[PendingLabel],
    now_ms: int,
    last_activity_ms: int | None,
    horizon_ms: int,
    session_gap_ms: int,
    examples: list[Example],
) -> list[PendingLabel]:
    """Resolve what event time ``now_ms`` settles; return the labels still pending.

    ``last_activity_ms`` is the user's latest event before ``now_ms`` (a session with no event
    for ``session_gap_ms`` has ended).
    """
    session_over = last_activity_ms is not None and now_ms - last_activity_ms > session_gap_ms
    kept: list[PendingLabel] = []
    for label in labels:
        open_targets = label.open
        past_horizon = now_ms > label.at_ms + horizon_ms
        if open_targets & _CONVERSION and past_horizon:
            examples.append(Example(CONVERSION, label.at_ms, label.inputs, False))
            open_targets &= ~_CONVERSION
        if open_targets & _ABANDONMENT and session_over:
            examples.append(Example(ABANDONMENT, label.at_ms, label.inputs, True))
            open_targets &= ~_ABANDONMENT
        if open_targets & _NEXT_CATEGORY and past_horizon:
            open_targets &= ~_NEXT_CATEGORY
        if open_targets:
            kept.append(label if open_targets == label.open else label._replace(open=open_targets))
    return kept


def resolve_outcome(
    labels: list[PendingLabel],
    event_name: str,
    category: str | None,
    time_ms: int,
    horizon_ms: int,
    examples: list[Example],
) -> list[PendingLabel]:
    """Resolve what an event at ``time_ms`` reveals (call :func:`expire` first)."""
    is_order = event_name == ORDER_EVENT
    names_category = category is not None and event_name in CATEGORY_EVENTS
    if not (is_order or names_category):
        return labels
    kept: list[PendingLabel] = []
    for label in labels:
        open_targets = label.open
        if time_ms > label.at_ms:
            if is_order:
                if open_targets & _CONVERSION and time_ms <= label.at_ms + horizon_ms:
                    examples.append(Example(CONVERSION, label.at_ms, label.inputs, True))
                    open_targets &= ~_CONVERSION
                if open_targets & _ABANDONMENT:
                    examples.append(Example(ABANDONMENT, label.at_ms, label.inputs, False))
                    open_targets &= ~_ABANDONMENT
            elif open_targets & _NEXT_CATEGORY:
                assert category is not None
                examples.append(
                    Example(
                        NEXT_CATEGORY,
                        label.at_ms,
                        label.inputs,
                        category,
                        label.candidates,
                        label.current,
                    )
                )
                open_targets &= ~_NEXT_CATEGORY
        if open_targets:
            kept.append(label if open_targets == label.open else label._replace(open=open_targets))
    return kept


def deadline(
    labels: Sequence[PendingLabel],
    last_activity_ms: int | None,
    horizon_ms: int,
    session_gap_ms: int,
) -> int | None:
    """The earliest event time at which :func:`expire` would resolve something (``None``: never).

    :func:`expire` resolves strictly after it, so the label clock must pass this value.
    """
    soonest: int | None = None
    for label in labels:
        candidates = []
        if label.open & (_CONVERSION | _NEXT_CATEGORY):
            candidates.append(label.at_ms + horizon_ms)
        if label.open & _ABANDONMENT and last_activity_ms is not None:
            candidates.append(last_activity_ms + session_gap_ms)
        for candidate in candidates:
            if soonest is None or candidate < soonest:
                soonest = candidate
    return soonest

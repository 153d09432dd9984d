"""Frequency caps and cooldowns over event time, kept per user as a short list of action starts.

A **start** is a decision that newly chose an action (not a repetition of the previous decision's
action in the same context, see :mod:`stream.policy`). Caps and cooldowns count starts:

* a cap ``(max, window_ms)`` allows at most ``max`` starts of the action in *any* window of
  ``window_ms`` of event time;
* a cooldown ``cooldown_ms`` keeps two starts of the action at least that far apart.

Events arrive out of order (within the grace period and beyond), so a start at time ``t`` is
checked against starts on **both** sides of ``t``: the action may start only if fewer than
``max`` starts lie within ``window_ms`` before or after ``t`` (strictly), and none within the
cooldown. That is conservative (it can refuse a start a clairvoyant scheduler would allow) and it
means no window anywhere ever holds more than ``max`` starts, whatever order the events came in.

>>> from stream.actions import ActionSpec, FrequencyCap
>>> spec = ActionSpec(name="remind_cart", priority=1, cooldown_ms=10,
...                   caps=(FrequencyCap(max=2, window_ms=100),))
>>> starts = [("remind_cart", 0), ("remind_cart", 50)]
>>> blocked(spec, starts, 99)
'cap: 2 starts within 100 ms'
>>> blocked(spec, starts, 151) is None
True
>>> blocked(spec, [("remind_cart", 0)], 5)
'cooldown: started 5 ms away, needs 10 ms'
"""

from __future__ import annotations

from collections.abc import Sequence

from stream.actions import ActionCatalog, ActionSpec
from stream.memo import PerObject

__all__ = ["blocked", "horizon_ms", "late_limit", "record_start"]

#: (action, event time of the start), in the order they were recorded.
Start = tuple[str, int]


def blocked(
    spec: ActionSpec, starts: Sequence[Start], at_ms: int, late_at_ms: int | None = None
) -> str | None:
    """Why ``spec`` may not start at ``at_ms`` (a cap or the cooldown), or ``None``.

    ``late_at_ms`` (:func:`late_limit`): an event at or before it is too late for a capped
    action: the starts it would have to be checked against may have been pruned.
    """
    if not spec.caps and not spec.cooldown_ms:
        return None
    if late_at_ms is not None and at_ms <= late_at_ms:
        return "late: the event is older than the starts the guardrails remember"
    name = spec.name
    times = [t for action, t in starts if action == name]
    if spec.cooldown_ms:
        for t in times:
            if abs(t - at_ms) < spec.cooldown_ms:
                return f"cooldown: started {abs(t - at_ms)} ms away, needs {spec.cooldown_ms} ms"
    for cap in spec.caps:
        near = sum(1 for t in times if abs(t - at_ms) < cap.window_ms)
        if near >= cap.max:
            return f"cap: {near} starts within {cap.window_ms} ms"
    return None


def late_limit(latest_ms: int, catalog: ActionCatalog) -> int:
    """For a user whose latest event is at ``latest_ms``: events at or before this time are too
    late for capped actions (:func:`record_start` keeps the starts every later event needs)."""
    return latest_ms - horizon_ms(catalog)


def horizon_ms(catalog: ActionCatalog) -> int:
    """How long a start matters to any cap or cooldown of the catalog."""
    return _horizon(catalog)


_horizon: PerObject[ActionCatalog, int] = PerObject(
    lambda catalog: max(
        [a.cooldown_ms for a in catalog.actions]
        + [c.window_ms for a in catalog.actions for c in a.caps]
        + [0]
    )
)


def record_start(
    starts: list[Start], action: str, at_ms: int, latest_ms: int, catalog: ActionCatalog
) -> list[Start]:
    """``starts`` with the new one, without those no allowed event can be checked against.

    ``latest_ms`` is the user's latest event time. An event may start a capped action only after
    :func:`late_limit` (``latest_ms - horizon``), and a start matters to events less than the
    horizon away, so starts after ``latest_ms - 2 * horizon`` are kept: pruning at one horizon
    let a late event just inside the limit miss a start just outside it, and exceed its cap.
    """
    keep_after = latest_ms - 2 * horizon_ms(catalog)
    kept = [s for s in starts if s[1] > keep_after]
    kept.append((action, at_ms))
    return kept

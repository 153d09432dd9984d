"""Reading model snapshots back: one place that checks kind, version and shape.

Every learner's ``to_state()`` is a JSON-able dict with a ``"kind"`` and a ``"version"``; its
``from_state`` goes through these helpers so that a snapshot of another model, of an older layout
or of the wrong dimension fails loudly with :class:`~stream.exceptions.SnapshotError` instead of
being misread. Floats are accepted as ints too (a JSON encoder may write ``0.0`` as ``0``) and
must be finite: a restored model must satisfy the same invariants as a trained one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from stream.exceptions import SnapshotError

__all__ = [
    "check_header",
    "floats",
    "get_float",
    "get_floats",
    "get_int",
    "header",
]


def header(kind: str, version: str) -> dict[str, Any]:
    """The first two keys of every snapshot."""
    return {"kind": kind, "version": version}


def check_header(state: object, kind: str, version: str) -> Mapping[str, Any]:
    """``state`` as a mapping, after checking that it is a ``kind`` snapshot of ``version``."""
    if not isinstance(state, Mapping):
        raise SnapshotError(f"{kind}: expected a mapping, got {type(state).__name__}")
    if state.get("kind") != kind:
        raise SnapshotError(f"expected kind {kind!r}, got {state.get('kind')!r}")
    if state.get("version") != version:
        raise SnapshotError(f"{kind}: unsupported version {state.get('version')!r}")
    return state


def get_int(state: Mapping[str, Any], key: str, minimum: int = 0) -> int:
    """An integer field, at least ``minimum``."""
    value = _field(state, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SnapshotError(f"{state['kind']}: {key} must be an int >= {minimum}, got {value!r}")
    return value


def get_float(state: Mapping[str, Any], key: str) -> float:
    """A finite float field."""
    return _finite(state["kind"], key, _field(state, key))


def get_floats(state: Mapping[str, Any], key: str, length: int) -> list[float]:
    """A list of exactly ``length`` finite floats."""
    return floats(state["kind"], key, _field(state, key), length)


def floats(kind: str, key: str, value: object, length: int) -> list[float]:
    """``value`` as a list of exactly ``length`` finite floats (for nested lists)."""
    if not isinstance(value, list) or len(value) != length:
        raise SnapshotError(f"{kind}: {key} must be a list of {length} numbers")
    return [_finite(kind, key, v) for v in value]


def _field(state: Mapping[str, Any], key: str) -> Any:
    if key not in state:
        raise SnapshotError(f"{state['kind']}: missing field {key!r}")
    return state[key]


def _finite(kind: str, key: str, value: object) -> float:
    if not isinstance(value, bool) and isinstance(value, int | float):
        try:
            number = float(value)  # an int beyond the float range raises OverflowError
        except OverflowError:
            number = math.inf
        if math.isfinite(number):
            return number
    raise SnapshotError(f"{kind}: {key} must hold finite numbers, got {value!r}")

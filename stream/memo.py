"""A value derived once per configuration object, looked up by identity on the hot path.

Configurations (catalogs, step configs) are frozen and live for the whole run, and the step
needs values derived from them (a compiled plan, a settings subset) on every event. Hashing a
nested frozen dataclass per event cost more than the work itself, so the cache is keyed by
``id``; the object is kept alive with its value, so an id is never reused while cached.

>>> double = PerObject(lambda numbers: [2 * n for n in numbers])
>>> owner = (1, 2)
>>> double(owner) is double(owner)
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["PerObject"]

Owner = TypeVar("Owner")
Value = TypeVar("Value")


class PerObject(Generic[Owner, Value]):
    """``build(owner)``, computed on the first call for each owner object and then reused."""

    __slots__ = ("_build", "_cache")

    def __init__(self, build: Callable[[Owner], Value]) -> None:
        self._build = build
        self._cache: dict[int, tuple[Owner, Value]] = {}

    def __call__(self, owner: Owner) -> Value:
        cached = self._cache.get(id(owner))
        if cached is None:
            cached = self._cache[id(owner)] = (owner, self._build(owner))
        return cached[1]

"""Aggregators: how one bucket of a windowed feature folds values, and how buckets combine.

Every aggregator follows one small protocol, ``initial / add / merge / result`` (Quix Streams'
``initialize / agg / result`` plus ``merge``, which windows need to combine buckets). States are
plain JSON values (ints, floats, lists), so a profile round-trips through orjson unchanged, and
``add`` and ``merge`` return new states instead of mutating, so the contract tests can check
order independence. A contract suite (``tests/unit/test_aggregators.py``) runs over
:data:`AGGREGATORS`.

>>> count = AGGREGATORS["count"]
>>> count.result(count.merge(count.add(count.initial(), None), count.add(count.initial(), None)))
2.0
>>> distinct = AGGREGATORS["distinct"]
>>> distinct.result(distinct.add(distinct.add(distinct.initial(), "shoes"), "shoes"))
1.0
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["AGGREGATORS", "DISTINCT_LIMIT", "Aggregator", "Count", "Distinct", "Max", "Sum"]

State = Any
#: How many distinct values a distinct count tracks exactly (it saturates there).
DISTINCT_LIMIT = 32
Value = float | str | None


class Aggregator(Protocol):
    """Folds values into a JSON-able state; merges states; reads a number out of a state."""

    name: str
    #: Whether ``add`` needs a value (``count`` does not).
    needs_value: bool

    def initial(self) -> State: ...

    def add(self, state: State, value: Value) -> State: ...

    def merge(self, left: State, right: State) -> State: ...

    def result(self, state: State) -> float: ...


class Count:
    """How many events."""

    name = "count"
    needs_value = False

    def initial(self) -> int:
        return 0

    def add(self, state: int, value: Value) -> int:
        return state + 1

    def merge(self, left: int, right: int) -> int:
        return left + right

    def result(self, state: int) -> float:
        return float(state)


class Sum:
    """Sum of a numeric property, kept in cents-precision floats (rounded to 1e-6)."""

    name = "sum"
    needs_value = True

    def initial(self) -> float:
        return 0.0

    def add(self, state: float, value: Value) -> float:
        return round(state + float(value or 0.0), 6)

    def merge(self, left: float, right: float) -> float:
        return round(left + right, 6)

    def result(self, state: float) -> float:
        return state


class Max:
    """Largest value of a numeric property (0 when there was none)."""

    name = "max"
    needs_value = True

    def initial(self) -> float | None:
        return None

    def add(self, state: float | None, value: Value) -> float | None:
        number = float(value or 0.0)
        return number if state is None else max(state, number)

    def merge(self, left: float | None, right: float | None) -> float | None:
        if left is None or right is None:
            return right if left is None else left
        return max(left, right)

    def result(self, state: float | None) -> float:
        return 0.0 if state is None else state


class Distinct:
    """How many distinct values, exact up to ``limit`` (then saturates at ``limit``).

    The state is the sorted list of values seen, capped, so its size is bounded and equal
    inputs give equal bytes whatever their order.
    """

    name = "distinct"
    needs_value = True

    def __init__(self, limit: int = DISTINCT_LIMIT) -> None:
        self.limit = limit

    def initial(self) -> list[str]:
        return []

    def add(self, state: list[str], value: Value) -> list[str]:
        return self.merge(state, [str(value)])

    def merge(self, left: list[str], right: list[str]) -> list[str]:
        return sorted(set(left) | set(right))[: self.limit]

    def result(self, state: list[str]) -> float:
        return float(len(state))


#: Every aggregator by name; the feature catalog refers to them by these names.
AGGREGATORS: dict[str, Aggregator] = {a.name: a for a in (Count(), Sum(), Max(), Distinct())}

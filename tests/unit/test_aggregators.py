"""Contract suite run over every aggregator (as River's ``checks`` run over every estimator)."""

from __future__ import annotations

import itertools
from functools import reduce
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.aggregators import AGGREGATORS, Aggregator

NUMBERS = st.lists(st.integers(0, 10**6).map(lambda c: c / 100), max_size=12)
LABELS = st.lists(st.sampled_from(["shoes", "books", "toys", "home", "beauty"]), max_size=12)


def _values(aggregator: Aggregator) -> st.SearchStrategy[list[Any]]:
    if not aggregator.needs_value:
        return st.lists(st.none(), max_size=12)
    return LABELS if aggregator.name == "distinct" else NUMBERS


def _fold(aggregator: Aggregator, values: list[Any]) -> Any:
    return reduce(aggregator.add, values, aggregator.initial())


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_state_is_plain_json_and_round_trips(name: str) -> None:
    aggregator = AGGREGATORS[name]
    sample = ["shoes", "toys"] if name == "distinct" else [1.25, 3.5]
    state = _fold(aggregator, sample if aggregator.needs_value else [None, None])
    assert orjson.loads(orjson.dumps(state)) == state


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_order_of_values_does_not_matter(name: str, data: st.DataObject) -> None:
    aggregator = AGGREGATORS[name]
    values = data.draw(_values(aggregator))
    shuffled = data.draw(st.permutations(values))
    assert _fold(aggregator, values) == _fold(aggregator, list(shuffled))


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_merging_buckets_equals_folding_everything(name: str, data: st.DataObject) -> None:
    aggregator = AGGREGATORS[name]
    parts = [data.draw(_values(aggregator)) for _ in range(3)]
    states = [_fold(aggregator, p) for p in parts]
    everything = _fold(aggregator, list(itertools.chain(*parts)))
    left = aggregator.merge(aggregator.merge(states[0], states[1]), states[2])
    right = aggregator.merge(states[0], aggregator.merge(states[1], states[2]))
    assert left == right == everything
    assert aggregator.merge(states[0], states[1]) == aggregator.merge(states[1], states[0])
    assert aggregator.merge(aggregator.initial(), states[0]) == states[0]


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_add_and_merge_do_not_mutate_their_inputs(name: str) -> None:
    aggregator = AGGREGATORS[name]
    value = "shoes" if name == "distinct" else (2.5 if aggregator.needs_value else None)
    state = aggregator.add(aggregator.initial(), value)
    snapshot = orjson.dumps(state)
    aggregator.add(state, value)
    aggregator.merge(state, state)
    assert orjson.dumps(state) == snapshot


def test_results() -> None:
    assert AGGREGATORS["count"].result(_fold(AGGREGATORS["count"], [None] * 3)) == 3.0
    assert AGGREGATORS["sum"].result(_fold(AGGREGATORS["sum"], [0.1, 0.2, 0.3])) == 0.6
    assert AGGREGATORS["max"].result(AGGREGATORS["max"].initial()) == 0.0
    assert AGGREGATORS["max"].result(_fold(AGGREGATORS["max"], [3.0, 9.5, 1.0])) == 9.5
    distinct = AGGREGATORS["distinct"]
    assert distinct.result(_fold(distinct, ["a", "b", "a"])) == 2.0


def test_distinct_is_bounded_and_saturates() -> None:
    distinct = AGGREGATORS["distinct"]
    state = _fold(distinct, [f"v{i:03d}" for i in range(100)])
    assert len(state) == 32 and distinct.result(state) == 32.0

"""clean_inputs and is_finite_vector."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stream.models import clean_inputs, is_finite_vector


def test_clean_inputs_maps_each_kind_of_bad_value() -> None:
    values = [1.5, math.nan, math.inf, -math.inf, 2e9, -3e9, -1e9]
    cleaned, fixed = clean_inputs(values)
    assert cleaned == [1.5, 0.0, 1e9, -1e9, 1e9, -1e9, -1e9]
    assert fixed == 5
    assert math.isnan(values[1])  # the input is not mutated


def test_clean_inputs_custom_limit_and_clean_input() -> None:
    assert clean_inputs([3.0, -0.5], limit=2.0) == ([2.0, -0.5], 1)
    assert clean_inputs([3.0, -0.5]) == ([3.0, -0.5], 0)


@pytest.mark.parametrize("limit", [0.0, -1.0, math.inf, math.nan])
def test_clean_inputs_rejects_a_useless_limit(limit: float) -> None:
    with pytest.raises(ValueError, match="limit"):
        clean_inputs([1.0], limit=limit)


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=20))
def test_clean_inputs_output_is_finite_bounded_and_counted(values: list[float]) -> None:
    cleaned, fixed = clean_inputs(values)
    assert len(cleaned) == len(values)
    assert all(-1e9 <= v <= 1e9 for v in cleaned)
    changed = sum(
        1 for old, new in zip(values, cleaned, strict=True) if math.isnan(old) or old != new
    )
    assert fixed == changed


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=20))
def test_is_finite_vector_agrees_with_the_definition(values: list[float]) -> None:
    assert is_finite_vector(values) == all(math.isfinite(v) for v in values)


def test_is_finite_vector_when_the_sum_overflows() -> None:
    assert is_finite_vector([1e308, 1e308])  # the sum is inf, every value is finite
    assert not is_finite_vector([1e308, math.inf])
    assert not is_finite_vector([math.inf, -math.inf])
    assert is_finite_vector([])

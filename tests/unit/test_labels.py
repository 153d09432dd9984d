"""The delayed-label rules (stream.labels): what resolves when, and into what."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from stream.labels import (
    ABANDONMENT,
    CONVERSION,
    NEXT_CATEGORY,
    Example,
    PendingLabel,
    deadline,
    expire,
    pack_inputs,
    resolve_outcome,
    unpack_inputs,
)

MIN = 60_000
HORIZON = 30 * MIN
GAP = 30 * MIN
INPUTS = pack_inputs([1.0, 2.5])


def _label(at: int, session_start: int | None = None) -> PendingLabel:
    return PendingLabel(at, at if session_start is None else session_start, INPUTS)


def _resolved(examples: list[Example]) -> set[tuple[str, int, bool | str]]:
    return {(e.target, e.at_ms, e.label) for e in examples}


def test_an_order_within_the_horizon_is_a_conversion_and_not_an_abandonment() -> None:
    examples: list[Example] = []
    left = resolve_outcome([_label(0)], "Order Completed", None, 10 * MIN, HORIZON, examples)
    assert _resolved(examples) == {(CONVERSION, 0, True), (ABANDONMENT, 0, False)}
    assert [label.open for label in left] == [4]  # next category still open


def test_an_order_after_the_horizon_is_not_a_conversion() -> None:
    examples: list[Example] = []
    resolve_outcome([_label(0)], "Order Completed", None, HORIZON + 1, HORIZON, examples)
    assert (CONVERSION, 0, True) not in _resolved(examples)


def test_an_outcome_at_or_before_the_prediction_resolves_nothing() -> None:
    examples: list[Example] = []
    labels = [_label(5 * MIN)]
    assert resolve_outcome(labels, "Order Completed", None, 5 * MIN, HORIZON, examples) == labels
    assert resolve_outcome(labels, "Product Viewed", "shoes", MIN, HORIZON, examples) == labels
    assert examples == []


def test_the_next_viewed_category_is_the_next_category_label() -> None:
    examples: list[Example] = []
    left = resolve_outcome([_label(0)], "Product Viewed", "shoes", MIN, HORIZON, examples)
    assert _resolved(examples) == {(NEXT_CATEGORY, 0, "shoes")}
    # A later view does not relabel it.
    resolve_outcome(left, "Product Viewed", "hats", 2 * MIN, HORIZON, examples)
    assert len(examples) == 1


def test_passing_the_horizon_is_a_negative_conversion_and_drops_next_category() -> None:
    examples: list[Example] = []
    left = expire(
        [_label(0)],
        HORIZON + 1,
        last_activity_ms=HORIZON,
        horizon_ms=HORIZON,
        session_gap_ms=GAP,
        examples=examples,
    )
    assert _resolved(examples) == {(CONVERSION, 0, False)}
    assert [label.open for label in left] == [2]  # the session is still open: abandonment waits


def test_a_session_that_ends_without_an_order_is_an_abandonment() -> None:
    examples: list[Example] = []
    left = expire(
        [_label(0)],
        GAP + 1,
        last_activity_ms=0,
        horizon_ms=HORIZON,
        session_gap_ms=GAP,
        examples=examples,
    )
    assert (ABANDONMENT, 0, True) in _resolved(examples)
    assert left == []  # conversion and next category resolved by the same passing of time


def test_exactly_at_the_deadline_nothing_resolves() -> None:
    labels = [_label(0)]
    examples: list[Example] = []
    assert deadline(labels, 0, HORIZON, GAP) == HORIZON
    assert expire(labels, HORIZON, 0, HORIZON, GAP, examples) == labels
    assert examples == []


@given(
    at=st.lists(st.integers(0, 10 * HORIZON), min_size=1, max_size=6),
    last=st.integers(0, 10 * HORIZON),
    now=st.integers(0, 20 * HORIZON),
)
def test_expire_resolves_something_exactly_when_the_clock_passes_the_deadline(
    at: list[int], last: int, now: int
) -> None:
    labels = [_label(t) for t in sorted(at)]
    examples: list[Example] = []
    left = expire(labels, now, last, HORIZON, GAP, examples)
    soonest = deadline(labels, last, HORIZON, GAP)
    assert soonest is not None
    assert (left != labels) == (now > soonest)
    # Every label resolves each of its binary targets at most once.
    per_label = [(e.target, e.at_ms) for e in examples]
    assert len(per_label) == len(set(per_label)) or len(set(at)) < len(at)


def test_inputs_are_rounded_to_float32_once() -> None:
    exact = [0.5, -3.0, 1e6, 0.0]  # representable in float32
    assert unpack_inputs(pack_inputs(exact)) == exact
    rounded = unpack_inputs(pack_inputs([0.1]))
    assert rounded != [0.1] and math.isclose(rounded[0], 0.1, rel_tol=1e-7)
    assert unpack_inputs(pack_inputs(rounded)) == rounded  # a second rounding changes nothing


def test_a_pending_label_round_trips_through_its_list_form() -> None:
    label = PendingLabel(123, 100, pack_inputs([1.5, -2.0]), 5)
    assert PendingLabel.from_list(label.to_list()) == label

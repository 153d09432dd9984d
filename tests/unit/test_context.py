"""Context features read the same from the full event context and from what a profile keeps."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.context import minimal_context, read_context

text = st.one_of(
    st.text(alphabet=" \t\nabcDE-_/", max_size=90),
    st.sampled_from(["Europe/Berlin", " America/New_York ", "de-DE", "iOS", "mobile", " " * 70]),
    st.builds(lambda pad, word: " " * pad + word + " " * pad, st.integers(0, 80), st.text("ab ")),
)
anything = st.one_of(text, st.integers(), st.none(), st.booleans(), st.lists(st.integers()))
contexts = st.fixed_dictionaries(
    {},
    optional={
        "device": st.one_of(st.fixed_dictionaries({"type": anything, "id": text}), anything),
        "os": st.one_of(st.fixed_dictionaries({"name": anything}), anything),
        "locale": anything,
        "timezone": anything,
        "location": st.one_of(st.fixed_dictionaries({"country": anything}), anything),
        "library": st.one_of(st.fixed_dictionaries({"name": anything}), anything),
        "app": st.one_of(st.just({"name": "Shop"}), anything),
        "page": st.one_of(st.just({"path": "/"}), anything),
        "ip": st.just("203.0.113.9"),
        "userAgent": text,
    },
)


@settings(max_examples=300, deadline=None)
@given(context=contexts, at=st.integers(0, 4_000_000_000_000))
def test_features_from_the_kept_context_equal_features_from_the_full_one(
    context: dict[str, Any], at: int
) -> None:
    kept = minimal_context(context)
    assert read_context(kept, at) == read_context(context, at)
    assert minimal_context(kept) == kept  # idempotent: a restored profile keeps the same


@settings(max_examples=200, deadline=None)
@given(context=contexts)
def test_the_kept_context_is_small_and_holds_no_ip_or_user_agent(context: dict[str, Any]) -> None:
    kept = minimal_context(context)
    assert set(kept) <= {"device", "os", "locale", "timezone", "location", "library", "app", "page"}
    for value in kept.values():
        inner = list(value.values()) if isinstance(value, dict) else [value]
        assert all(v is None or (isinstance(v, str) and len(v) <= 64) for v in inner)


def test_a_zone_database_directory_as_timezone_is_unknown_not_a_crash() -> None:
    for name in ("Europe", "America", "America/Argentina", "Etc", "posix", "right"):
        context = read_context({"timezone": name}, 1_700_000_000_000)
        assert (context.timezone, context.timezone_valid) == ("UTC", False)

"""agents.profilecache: profiles kept restored between batches change no output."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.batch import PROFILE_CACHE_HIT, PROFILE_CACHE_MISS, BatchResult, process_records
from agents.profilecache import ProfileCache
from stream import Profile, StepConfig
from stream.partition import PartitionLearner
from stream.replay import replay
from tests.unit.test_batch import FAILURES, SHOP, Failure, _failing_on, _records
from tests.unit.test_partition import LOG, _batches, _partition_records

CFG = StepConfig()


def _profile(user: str, views: int) -> Profile:
    return Profile(user_key=user, counts={"Product Viewed": views})


def _write(result: BatchResult, stored: dict[str, bytes], cache: ProfileCache | None) -> None:
    """What the worker does after a batch's outputs are acknowledged."""
    for key, profile in result.profiles.items():
        value = profile.to_bytes()
        stored[key] = value
        if cache is not None:
            cache.keep(key, value, profile)


def test_a_kept_profile_comes_back_only_for_the_bytes_it_was_written_as() -> None:
    cache = ProfileCache(4)
    kept = _profile("u", 1)
    cache.keep("u", kept.to_bytes(), kept)

    assert cache.restore("u", kept.to_bytes()) == (kept, True)
    assert cache.restore("u", kept.to_bytes())[1] is False, "a read takes it out"

    cache.keep("u", kept.to_bytes(), kept)
    changed = _profile("u", 2)  # written behind the cache (another worker, a restore)
    restored, hit = cache.restore("u", changed.to_bytes())
    assert not hit
    assert restored is not kept
    assert restored.to_bytes() == changed.to_bytes()


def test_the_oldest_write_is_evicted_first() -> None:
    cache = ProfileCache(2)
    profiles = {user: _profile(user, 1) for user in "abc"}
    for user in "abab":  # b is written last, then a; c pushes out the older of the two: b
        cache.keep(user, profiles[user].to_bytes(), profiles[user])
    cache.keep("a", profiles["a"].to_bytes(), profiles["a"])
    cache.keep("c", profiles["c"].to_bytes(), profiles["c"])
    assert len(cache) == 2
    assert cache.restore("b", profiles["b"].to_bytes())[1] is False
    assert cache.restore("a", profiles["a"].to_bytes())[1] is True
    assert cache.restore("c", profiles["c"].to_bytes())[1] is True


def test_a_cache_of_size_zero_keeps_nothing() -> None:
    cache = ProfileCache(0)
    kept = _profile("u", 1)
    cache.keep("u", kept.to_bytes(), kept)
    assert len(cache) == 0
    with pytest.raises(ValueError):
        ProfileCache(-1)


@settings(max_examples=10, deadline=None)
@given(
    cuts=st.lists(st.integers(0, 10_000), max_size=12),
    capacity=st.sampled_from([1, 3, 50]),
    restart_at=st.integers(0, 10_000),
)
def test_batches_through_the_cache_decide_and_store_exactly_what_decoding_does(
    cuts: list[int], capacity: int, restart_at: int
) -> None:
    """Partition 1 in arbitrary batches, with the learner restored at one batch boundary:
    the same decisions as the offline replay, and the same stored bytes as without a cache."""
    records = _partition_records(LOG, 4, 1)
    offline = [d.to_bytes() for d in replay([r.value for r in records], CFG).decisions]
    plain: dict[str, bytes] = {}
    plain_learner = PartitionLearner.new(1, CFG)
    for batch in _batches(records, cuts):
        _write(process_records(batch, plain.get, CFG, plain_learner), plain, None)

    stored: dict[str, bytes] = {}
    cache = ProfileCache(capacity)
    learner = PartitionLearner.new(1, CFG)
    decided: list[bytes] = []
    hits = 0
    for index, batch in enumerate(_batches(records, cuts)):
        if index == restart_at % 5:
            learner = PartitionLearner.from_bytes(learner.to_bytes(), CFG)
        result = process_records(batch, stored.get, CFG, learner, cache=cache)
        _write(result, stored, cache)
        decided.extend(d.to_bytes() for d in result.decisions)
        hits += result.counters[PROFILE_CACHE_HIT]

    assert decided == offline
    assert stored == plain
    if len(list(_batches(records, cuts))) > 3:
        assert hits > 0, "the cache was never used"


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
def test_a_batch_retried_after_a_failure_never_sees_a_profile_the_failure_changed(
    monkeypatch: pytest.MonkeyPatch, failure: Failure
) -> None:
    """A batch whose outputs could not be sent is processed again (agents.guard) with nothing
    written: the profiles its first attempt updated in place must not come back."""
    first, later = _records(SHOP[:2]), _records(SHOP[2:], start=2)
    expected: dict[str, bytes] = {}
    _write(process_records(first, expected.get, CFG), expected, None)
    expected_result = process_records(later, expected.get, CFG)

    stored: dict[str, bytes] = {}
    cache = ProfileCache(8)
    _write(process_records(first, stored.get, CFG, cache=cache), stored, cache)
    _failing_on(monkeypatch, "m4", failure)  # and a step fails halfway, too
    attempt = process_records(later, stored.get, CFG, cache=cache)
    assert attempt.counters[PROFILE_CACHE_HIT] == 2, "u and v came from the cache"
    monkeypatch.undo()
    retried = process_records(later, stored.get, CFG, cache=cache)  # the first was not sent

    assert retried.counters[PROFILE_CACHE_MISS] == 2
    assert retried.profile_bytes() == expected_result.profile_bytes()
    assert [d.to_bytes() for d in retried.decisions] == [
        d.to_bytes() for d in expected_result.decisions
    ]

"""The partition learner (stream.partition): learning in log order, identically however the
records are batched, restarted or moved."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.batch import RawRecord, process_records
from stream import SourcePosition, StepConfig
from stream.config import ModelConfig
from stream.decision import Decision
from stream.decode import decode_event
from stream.events import Event
from stream.exceptions import SnapshotError
from stream.labels import ABANDONMENT, CONVERSION, Example
from stream.partition import LabelClock, PartitionLearner, ProfileStore
from stream.partitioning import partition_for
from stream.policyconfig import PolicyConfig, Variant
from stream.profile import Profile
from stream.replay import replay
from stream.synthetic import GeneratorConfig, generate_events
from tests.support import viewed_event

CFG = StepConfig()
MIN = 60_000
T0 = 1_700_000_000_000


def _log(users: int = 30, days: float = 2.0, seed: int = 7, limit: int = 4000) -> list[bytes]:
    events = generate_events(GeneratorConfig(seed=seed, users=users, days=days))
    return [orjson.dumps(e) for e in itertools.islice(events, limit)]


LOG = _log()


def _partition_records(lines: list[bytes], partitions: int, wanted: int) -> list[RawRecord]:
    """The records Kafka would hold in partition ``wanted``, with their offsets."""
    records = []
    for line in lines:
        decoded = decode_event(line)
        if isinstance(decoded, Event):
            key = decoded.user_key.encode()
            if partition_for(key, partitions) == wanted:
                source = SourcePosition("events", wanted, len(records))
                records.append(RawRecord(source, key, line))
    return records


def _batches(records: list[RawRecord], cuts: list[int]) -> Iterator[list[RawRecord]]:
    edges = sorted({0, len(records), *(c % (len(records) + 1) for c in cuts)})
    for start, end in itertools.pairwise(edges):
        yield records[start:end]


def _canonical(decisions: list[Decision]) -> list[bytes]:
    return [d.to_bytes() for d in decisions]


def test_the_label_clock_is_a_robust_median_that_never_goes_back() -> None:
    clock = LabelClock(lateness_ms=0, sample=5)
    assert clock.observe(1000) == 1000
    for t in (2000, 3000):
        clock.observe(t)
    assert clock.observe(10**15) == 2000  # one wild clock does not move it far
    assert clock.observe(0) == 2000  # nor does a late one pull it back
    assert LabelClock(lateness_ms=500, sample=1).observe(1000) == 500


def test_a_user_who_never_comes_back_still_teaches_the_models() -> None:
    learner = PartitionLearner.new(0, CFG)
    seen: list[tuple[str, Example]] = []
    learner.observer = lambda user, example, _p: seen.append((user, example))
    profiles: dict[str, Profile] = {}
    store = ProfileStore(profiles.get, profiles.__setitem__)
    added = {
        "type": "track",
        "event": "Product Added",
        "messageId": "added",
        "userId": "leaver",
        "timestamp": T0,
        "properties": {"category": "books", "product_id": "p1", "price": 20.0},
    }
    learner.process(_event(orjson.dumps(added)), store, CFG)
    assert profiles["leaver"].labels  # a pending label was made, with a cart
    # Another user keeps the partition's event time moving for two hours.
    for i in range(1, 121):
        learner.process(_event(viewed_event(i, "stayer", T0 + i * MIN)), store, CFG)
    outcomes = {(e.target, e.label) for user, e in seen if user == "leaver"}
    assert outcomes == {(CONVERSION, False), (ABANDONMENT, True)}
    assert profiles["leaver"].labels == []
    assert "leaver" not in learner.due


def _event(line: bytes) -> Event:
    decoded = decode_event(line)
    assert isinstance(decoded, Event)
    return decoded


def _users_own(profile: Profile) -> dict[str, object]:
    """A profile without the policy's record of its decisions (which follow what the
    partition's bandit and models learned)."""
    doc = profile.to_dict()
    del doc["decisions"], doc["starts"], doc["choice"], doc["last_decision"]
    return doc


def test_profiles_do_not_depend_on_what_the_models_learned() -> None:
    """Models that learn differently give other predictions, never another account of what the
    user did: that part of a profile equals its replay even where a crash made a model differ.
    The policy's record of its own decisions follows the decisions made, as predictions do."""
    other = StepConfig(models=ModelConfig(learning_rate=0.5, min_labels=0))
    one, another = replay(LOG, CFG), replay(LOG, other)
    assert {k: _users_own(p) for k, p in one.profiles.items()} == {
        k: _users_own(p) for k, p in another.profiles.items()
    }
    predictions = [(d.predictions or {}).get("conversion") for d in one.decisions]
    assert predictions != [(d.predictions or {}).get("conversion") for d in another.decisions]
    assert [d.action for d in one.decisions] != [d.action for d in another.decisions]


def test_without_a_bandit_the_policy_record_does_not_depend_on_the_models_either() -> None:
    rules = PolicyConfig(variants=(Variant(name="rules", share=1.0, kind="priority"),))
    config = StepConfig(policy=rules)
    other = StepConfig(policy=rules, models=ModelConfig(learning_rate=0.5, min_labels=0))
    one, another = replay(LOG, config), replay(LOG, other)
    assert [d.action for d in one.decisions] == [d.action for d in another.decisions]
    for user, profile in one.profiles.items():
        twin = another.profiles[user]
        assert (profile.starts, profile.choice) == (twin.starts, twin.choice)
        # pending decisions hold the context the bandit would learn from: predictions included
        assert [d.decision_id for d in profile.decisions] == [d.decision_id for d in twin.decisions]


def test_the_models_learn_and_decisions_carry_their_predictions() -> None:
    result = replay(LOG, CFG)
    learned = sum(m.models.binary[CONVERSION].n_learned for m in result.learners.values())
    assert learned > 100
    last = result.decisions[-1]
    assert last.predictions is not None
    assert 0.0 <= last.predictions["conversion"]["p"] <= 1.0
    assert last.predictions["conversion"]["model"].startswith("models-v2/p")
    assert last.versions["models"]["conversion"] == last.predictions["conversion"]["model"]


@settings(max_examples=15, deadline=None)
@given(cuts=st.lists(st.integers(0, 10_000), max_size=12), restart_at=st.integers(0, 10_000))
def test_batching_and_restarts_do_not_change_a_single_byte(
    cuts: list[int], restart_at: int
) -> None:
    """Partition 1 processed the adapter's way, in arbitrary batches, with a snapshot and
    restore at one batch boundary, decides exactly what the offline replay decides."""
    records = _partition_records(LOG, 4, 1)
    offline = [d.to_bytes() for d in replay([r.value for r in records], CFG).decisions]
    stored: dict[str, bytes] = {}
    learner = PartitionLearner.new(1, CFG)
    live: list[bytes] = []
    restart_batch = restart_at % 5
    for index, batch in enumerate(_batches(records, cuts)):
        if index == restart_batch:
            learner = PartitionLearner.from_bytes(learner.to_bytes(), CFG)
        result = process_records(batch, stored.get, CFG, learner)
        stored.update(result.profile_bytes())
        live.extend(d.to_bytes() for d in result.decisions)
    assert live == offline


def test_a_redelivered_record_is_not_learned_twice() -> None:
    records = _partition_records(LOG, 4, 2)[:600]
    stored: dict[str, bytes] = {}
    learner = PartitionLearner.new(2, CFG)
    stored.update(process_records(records[:300], stored.get, CFG, learner).profile_bytes())
    before = learner.to_bytes()
    # The same records again, as after a restart: nothing is learned twice.
    again = process_records(records[200:300], stored.get, CFG, learner)
    assert learner.to_bytes() == before
    assert again.decisions == []


def test_labels_a_crash_kept_from_the_models_are_counted() -> None:
    records = _partition_records(LOG, 4, 3)[:400]
    stored: dict[str, bytes] = {}
    learner = PartitionLearner.new(3, CFG)
    snapshot = learner.to_bytes()
    result = process_records(records, stored.get, CFG, learner)
    stored.update(result.profile_bytes())
    # Profiles written, snapshot not: the restarted learner is back at the old snapshot.
    restarted = PartitionLearner.from_bytes(snapshot, CFG)
    process_records(records, stored.get, CFG, restarted)
    assert restarted.missed == len(records)


def test_a_snapshot_of_other_models_is_refused() -> None:
    data = PartitionLearner.new(0, CFG).to_bytes()
    other = StepConfig(models=ModelConfig(version="models-v0"))
    with pytest.raises(SnapshotError):
        PartitionLearner.from_bytes(data, other)
    with pytest.raises(SnapshotError):
        PartitionLearner.from_bytes(b"{}", CFG)


def test_a_snapshot_from_before_the_segment_prior_is_refused() -> None:
    """models-v1 kept one base rate per target (cold_start_prior version 1): such a snapshot
    fails with SnapshotError, whether its models version says so or not."""
    doc = orjson.loads(PartitionLearner.new(0, CFG).to_bytes())
    old_prior = {
        "kind": "cold_start_prior",
        "version": "1",
        "alpha": 1.0,
        "beta": 1.0,
        "min_labels": 200,
        "positives": 0,
        "total": 0,
    }
    doc["models"]["priors"] = {CONVERSION: old_prior, ABANDONMENT: old_prior}
    with pytest.raises(SnapshotError, match="unsupported version '1'"):
        PartitionLearner.from_bytes(orjson.dumps(doc), CFG)
    doc["models"]["version"] = "models-v1"
    with pytest.raises(SnapshotError, match="models-v1"):
        PartitionLearner.from_bytes(orjson.dumps(doc), CFG)


def test_replay_splits_users_by_kafkas_partitioner() -> None:
    result = replay(LOG, CFG, partitions=3)
    users_by_partition = {p: 0 for p in range(3)}
    for user in result.profiles:
        users_by_partition[partition_for(user.encode(), 3)] += 1
    assert set(result.learners) == {p for p, n in users_by_partition.items() if n}


def _without_labels(profile: Profile) -> dict[str, object]:
    doc = _users_own(profile)
    del doc["labels"]
    return doc


def test_the_partition_count_changes_pending_labels_and_the_policy_record_only() -> None:
    """Each partition's label clock settles labels at its own pace, and each partition's bandit
    learns from its own users; everything else in a profile is the user's own business."""
    rng = random.Random(3)
    counts = rng.sample(range(1, 9), 2)
    one, other = (replay(LOG, CFG, partitions=n) for n in counts)
    assert {k: _without_labels(p) for k, p in one.profiles.items()} == {
        k: _without_labels(p) for k, p in other.profiles.items()
    }


def test_after_a_crash_between_profiles_and_snapshot_profiles_still_equal_a_replay() -> None:
    records = _partition_records(LOG, 4, 0)
    assert len(records) > 400
    uninterrupted: dict[str, bytes] = {}
    learner = PartitionLearner.new(0, CFG)
    for batch in _batches(records, [200, 300]):
        uninterrupted.update(
            process_records(batch, uninterrupted.get, CFG, learner).profile_bytes()
        )

    stored: dict[str, bytes] = {}
    crashed = PartitionLearner.new(0, CFG)
    stored.update(process_records(records[:200], stored.get, CFG, crashed).profile_bytes())
    snapshot = crashed.to_bytes()
    # The next batch's profiles reach the table, its snapshot does not.
    stored.update(process_records(records[200:300], stored.get, CFG, crashed).profile_bytes())
    restarted = PartitionLearner.from_bytes(snapshot, CFG)
    for batch in _batches(records[200:], [100]):
        stored.update(process_records(batch, stored.get, CFG, restarted).profile_bytes())
    # The restarted bandit missed the rewards of those 100 records, so the policy's record of
    # its later decisions may differ; everything the users did is exactly the same.
    assert {k: _users_own(Profile.from_bytes(v)) for k, v in stored.items()} == {
        k: _users_own(Profile.from_bytes(v)) for k, v in uninterrupted.items()
    }
    assert restarted.missed == 100


def test_a_cart_add_makes_a_label_even_right_after_another() -> None:
    """Only labels made with a cart open cart abandonment, so an add makes one at once."""
    learner = PartitionLearner.new(0, CFG)
    profiles: dict[str, Profile] = {}
    store = ProfileStore(profiles.get, profiles.__setitem__)
    learner.process(_event(viewed_event(0, "u", T0)), store, CFG)
    learner.process(_event(viewed_event(1, "u", T0 + MIN)), store, CFG)
    assert len(profiles["u"].labels) == 1  # the view a minute later made none
    added = {
        "type": "track",
        "event": "Product Added",
        "messageId": "added",
        "userId": "u",
        "timestamp": T0 + 2 * MIN,
        "properties": {"category": "books", "product_id": "p1", "price": 20.0},
    }
    learner.process(_event(orjson.dumps(added)), store, CFG)
    first, second = profiles["u"].labels
    abandonment = 2  # the target's bit (stream.labels)
    assert not first.open & abandonment and second.open & abandonment

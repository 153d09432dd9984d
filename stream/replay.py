"""Offline replay: the same per-partition processing over a recorded log, with no broker.

Events are split into partitions the way Kafka's default partitioner splits them by user key
(:mod:`stream.partitioning`), and each partition's events go through its own
:class:`~stream.partition.PartitionLearner` in log order, exactly as a worker processes the
partition's records. Profiles live in a dict; outputs come back in log order. This is what the
Kafka path must reproduce: the same log, into a topic with the same partition count, gives the
same decisions, byte for byte (canonical form).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from stream.config import StepConfig
from stream.deadletter import DeadLetter
from stream.decision import Decision
from stream.decode import decode_event
from stream.identity import route
from stream.partition import PartitionLearner, ProfileStore
from stream.partitioning import partition_for
from stream.profile import Profile
from stream.rewards import Reward

__all__ = ["DEFAULT_PARTITIONS", "ReplayResult", "replay", "replay_outputs"]

#: The events topic's partition count unless told otherwise (the adapter's default too).
DEFAULT_PARTITIONS = 4


@dataclass(slots=True)
class ReplayResult:
    """Final profiles by user key, each partition's learner, and every decision, settled reward
    and dead letter in log order."""

    profiles: dict[str, Profile] = field(default_factory=dict)
    learners: dict[int, PartitionLearner] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    rewards: list[Reward] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)


def replay_outputs(
    lines: Iterable[bytes],
    config: StepConfig,
    profiles: dict[str, Profile] | None = None,
    partitions: int = DEFAULT_PARTITIONS,
    learners: dict[int, PartitionLearner] | None = None,
) -> Iterator[Decision | Reward | DeadLetter]:
    """Yield each line's outputs in order; ``profiles`` and ``learners`` (updated in place)
    hold the state."""
    if partitions < 1:
        raise ValueError("partitions must be >= 1")
    state = profiles if profiles is not None else {}
    by_partition = learners if learners is not None else {}

    def moved(key: str) -> None:
        # A merged key's labels left its own partition's index (stream.identity).
        learner = by_partition.get(partition_for(key.encode(), partitions))
        if learner is not None:
            learner.forget(key)

    store = ProfileStore(state.get, state.__setitem__, moved)
    stitching = config.stitch_identities
    for raw in lines:
        decoded = decode_event(raw.rstrip(b"\r\n"))
        if isinstance(decoded, DeadLetter):
            yield decoded
            continue
        key = decoded.user_key
        if stitching:
            # The identity stage's routing: an event of a merged key goes to its person's
            # partition, as it would be produced there (see stream.identity).
            key = route(key, state.get)
        partition = partition_for(key.encode(), partitions)
        learner = by_partition.get(partition)
        if learner is None:
            learner = by_partition[partition] = PartitionLearner.new(partition, config)
        outputs = learner.process(decoded, store, config)
        yield from outputs.decisions
        yield from outputs.rewards


def replay(
    lines: Iterable[bytes], config: StepConfig | None = None, partitions: int = DEFAULT_PARTITIONS
) -> ReplayResult:
    """Replay a whole log and collect the result."""
    result = ReplayResult()
    outputs = replay_outputs(
        lines, config or StepConfig(), result.profiles, partitions, result.learners
    )
    for output in outputs:
        if isinstance(output, Decision):
            result.decisions.append(output)
        elif isinstance(output, Reward):
            result.rewards.append(output)
        else:
            result.deadletters.append(output)
    return result

"""One source partition's policy state: a bandit per ``bandit`` variant, and reward statistics.

It lives beside the partition's models (:mod:`stream.partition`) for the same reason: updated in
the partition's log order, it is the same live and in replay. The step reads it (to choose);
only :meth:`PolicyLearner.learn` changes it, with each settled :class:`~stream.rewards.Reward`.
The reward statistics per variant give the experiment's running lift (merged across partitions
by whoever reports them, see :class:`~stream.experiments.RewardStats`).
"""

from __future__ import annotations

from typing import Any

from stream.bandit import LinearBandit
from stream.exceptions import SnapshotError
from stream.experiments import RewardStats
from stream.policyconfig import PolicyConfig
from stream.rewards import Reward

__all__ = ["CONTEXT_NAMES", "PolicyLearner"]

#: The bandit's context, in order (see :func:`stream.policy.context_vector`).
CONTEXT_NAMES = (
    "bias",
    "conversion",
    "abandonment",
    "cart",
    "cart_value",
    "known_user",
    "session_events",
    "views_since_add",
)


class PolicyLearner:
    __slots__ = ("_versions", "bandits", "partition", "stats", "unexposed", "version")

    def __init__(self, config: PolicyConfig, partition: int) -> None:
        self.version = config.version
        self.partition = partition
        names = config.catalog.names
        self.bandits: dict[str, LinearBandit] = {
            v.name: LinearBandit(names, len(CONTEXT_NAMES), v.ridge)
            for v in config.variants
            if v.kind == "bandit"
        }
        self.stats = RewardStats()
        #: Rewards not learned because no exposure said the decision was shown.
        self.unexposed = 0
        self._versions: dict[str, str] = {}

    def bandit(self, variant: str) -> LinearBandit | None:
        return self.bandits.get(variant)

    def learn(self, reward: Reward, config: PolicyConfig) -> None:
        """Learn one settled decision (in the partition's log order)."""
        decision = reward.decision
        if config.rewards.require_exposure and not decision.exposed:
            self.unexposed += 1
            return
        self.stats.observe(decision.variant, reward.reward)
        bandit = self.bandits.get(decision.variant)
        if bandit is not None:
            bandit.update(decision.action, list(decision.context), reward.reward)
            self._versions.pop(decision.variant, None)

    def version_of(self, variant: str) -> str:
        """``nba-v1/p3/champion@1234``: family, partition, variant, rewards learned."""
        version = self._versions.get(variant)
        if version is None:
            bandit = self.bandits.get(variant)
            learned = 0 if bandit is None else bandit.n_updates
            version = f"{self.version}/p{self.partition}/{variant}@{learned}"
            self._versions[variant] = version
        return version

    def to_state(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "bandits": {name: b.to_state() for name, b in sorted(self.bandits.items())},
            "stats": self.stats.to_state(),
            "unexposed": self.unexposed,
        }

    @classmethod
    def from_state(
        cls, state: dict[str, Any], config: PolicyConfig, partition: int
    ) -> PolicyLearner:
        if state.get("version") != config.version:
            raise SnapshotError(
                f"policy snapshot {state.get('version')!r} is not {config.version!r}"
            )
        learner = cls(config, partition)
        bandits = state["bandits"]
        if sorted(bandits) != sorted(learner.bandits):
            raise SnapshotError("policy snapshot has other bandit variants than the config")
        learner.bandits = {name: LinearBandit.from_state(s) for name, s in bandits.items()}
        learner.stats = RewardStats.from_state(state["stats"])
        learner.unexposed = int(state["unexposed"])
        return learner

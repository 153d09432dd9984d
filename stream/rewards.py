"""Rewards: what happened after a decision, joined back to it in event time.

Every decision that newly chose an action (see :mod:`stream.policy`) waits in its user's profile
as a :class:`PendingDecision` for ``window_ms`` of event time. Meanwhile the user's events join
back to it:

* an **exposure** (``exposure_event``, e.g. "Decision Shown") marks the decision it names (by
  ``properties.decision_id``) as shown;
* an **outcome** (an event named in ``rewards``, e.g. "Decision Clicked", "Product Added",
  "Order Completed") credits the decision it names by ``properties.decision_id`` when that one
  is pending; otherwise (no id, or the id of a decision that is not waiting: a sticky repeat, a
  settled one) the user's latest pending decision made at or before it (last-touch attribution
  within the window). Front ends should name a decision's ``policy.pending_id``: the decision
  that waits for the reward, which a sticky decision names for the one it continues.

A decision's reward is the **largest** reward among its outcomes, so an order after an add to
cart counts as an order, not both.

When the window closes (the user's own later events, or the partition's clock for users who
never come back) the decision is settled as a :class:`Reward` record: its reward, or
``default_reward`` when nothing happened. Rewards are output (topic ``rewards.v1``) for
analysts and off-policy evaluation, and learned by the policy's bandit, in log order, exactly as
the models learn their labels (:mod:`stream.partition`).

>>> cfg = RewardConfig()
>>> made = PendingDecision("d1", "remind_cart", "champion", 1_000, 0.9, (1.0,), None, (), False)
>>> pending = [made]
>>> pending = credit(pending, "Product Added", None, 2_000, cfg)
>>> pending[0].reward, pending[0].outcomes
(0.3, ('Product Added',))
>>> settled: list[Reward] = []
>>> close(pending, 1_000 + cfg.window_ms + 1, cfg, "u1", settled), settled[0].reward
([], 0.3)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson
from pydantic import BaseModel, ConfigDict, Field

from stream.windows import MINUTE_MS

__all__ = [
    "REWARD_SCHEMA",
    "PendingDecision",
    "Reward",
    "RewardConfig",
    "close",
    "credit",
    "deadline",
    "expose",
]

REWARD_SCHEMA = "reward.v1"


class RewardConfig(BaseModel):
    """How outcomes become rewards (part of the policy configuration)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_ms: int = Field(default=30 * MINUTE_MS, ge=1)
    #: Outcome event name -> reward. The largest one seen in the window is the decision's.
    rewards: dict[str, float] = Field(
        default_factory=lambda: {
            "Decision Clicked": 0.2,
            "Product Added": 0.3,
            "Checkout Started": 0.5,
            "Order Completed": 1.0,
        }
    )
    default_reward: float = 0.0
    exposure_event: str = "Decision Shown"
    #: Learn only from decisions an exposure said were shown (when the front end reports them).
    require_exposure: bool = False
    max_pending: int = Field(default=8, ge=1)


class PendingDecision(NamedTuple):
    decision_id: str
    action: str
    variant: str
    at_ms: int
    propensity: float
    #: The bandit's context when it chose (what it learns the reward against).
    context: tuple[float, ...]
    reward: float | None
    outcomes: tuple[str, ...]
    exposed: bool

    def to_list(self) -> list[Any]:
        return list(self._replace(context=list(self.context), outcomes=list(self.outcomes)))  # type: ignore[arg-type]

    @classmethod
    def from_list(cls, item: Sequence[Any]) -> PendingDecision:
        d, action, variant, at, propensity, context, reward, outcomes, exposed = item
        return cls(
            str(d),
            str(action),
            str(variant),
            int(at),
            float(propensity),
            tuple(float(x) for x in context),
            None if reward is None else float(reward),
            tuple(str(o) for o in outcomes),
            bool(exposed),
        )


class Reward(NamedTuple):
    """A settled decision: what it earned, for the bandit and for the ``rewards.v1`` topic."""

    user_key: str
    decision: PendingDecision
    reward: float
    resolved_at_ms: int

    def to_dict(self) -> dict[str, Any]:
        d = self.decision
        return {
            "schema": REWARD_SCHEMA,
            "decision_id": d.decision_id,
            "user_key": self.user_key,
            "action": d.action,
            "variant": d.variant,
            "propensity": d.propensity,
            "decided_at_ms": d.at_ms,
            "resolved_at_ms": self.resolved_at_ms,
            "reward": self.reward,
            "outcomes": list(d.outcomes),
            "exposed": d.exposed,
            "by": "window",
        }

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_dict())


def expose(pending: list[PendingDecision], decision_id: str | None) -> list[PendingDecision]:
    """Mark the pending decision named ``decision_id`` as shown."""
    if decision_id is None:
        return pending
    return [p._replace(exposed=True) if p.decision_id == decision_id else p for p in pending]


def credit(
    pending: list[PendingDecision],
    event_name: str,
    decision_id: str | None,
    time_ms: int,
    config: RewardConfig,
) -> list[PendingDecision]:
    """Credit an outcome event to the decision it names, or the latest one before it."""
    value = config.rewards.get(event_name)
    if value is None or not pending:
        return pending
    target = _named(pending, decision_id)
    if target is None:
        target = _latest_before(pending, time_ms, config.window_ms)
    if target is None:
        return pending
    old = pending[target]
    outcomes = old.outcomes if event_name in old.outcomes else (*old.outcomes, event_name)
    best = value if old.reward is None else max(old.reward, value)
    updated = list(pending)
    updated[target] = old._replace(reward=best, outcomes=outcomes)
    return updated


def _named(pending: Sequence[PendingDecision], decision_id: str | None) -> int | None:
    if decision_id is None:
        return None
    return next((i for i, p in enumerate(pending) if p.decision_id == decision_id), None)


def _latest_before(pending: Sequence[PendingDecision], time_ms: int, window_ms: int) -> int | None:
    best: int | None = None
    for i, p in enumerate(pending):
        if p.at_ms <= time_ms < p.at_ms + window_ms and (
            best is None or p.at_ms >= pending[best].at_ms
        ):
            best = i
    return best


def close(
    pending: list[PendingDecision],
    now_ms: int,
    config: RewardConfig,
    user_key: str,
    settled: list[Reward],
) -> list[PendingDecision]:
    """Settle every decision whose window ended strictly before ``now_ms``; return the rest."""
    kept: list[PendingDecision] = []
    for p in pending:
        if p.at_ms + config.window_ms < now_ms:
            reward = config.default_reward if p.reward is None else p.reward
            settled.append(Reward(user_key, p, reward, now_ms))
        else:
            kept.append(p)
    return kept


def deadline(pending: Sequence[PendingDecision], config: RewardConfig) -> int | None:
    """The event time :func:`close` must pass to settle something (``None``: nothing pending)."""
    return min((p.at_ms + config.window_ms for p in pending), default=None)

"""Measure the policy's lift over the holdout in a closed loop with simulated users.

    python -m scripts.simulate --users 2000 --days 7 --seed 1 --partitions 4 --json out.json

The environment (:mod:`stream.environment`) emits Segment events one at a time in event time;
each goes through :func:`stream.replay.replay_outputs` (decode, partition, the partition's
:class:`~stream.partition.PartitionLearner`: the production path), and its decision goes back to
the environment, whose user reacts with known probabilities. The report, per variant: decisions,
new choices, settled rewards, mean reward per settled decision and lift over the holdout (95 %
intervals, the partitions' :class:`~stream.experiments.RewardStats` merged), orders per user,
the true (oracle) value of the chosen actions against the best eligible one, and the bandit's
action mix in the first and last quarter of the period. Same arguments, same figures.

Exit codes: 0 done, 2 bad arguments, 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from stream.config import StepConfig
from stream.decision import Decision
from stream.environment import Environment, EnvironmentConfig
from stream.experiments import RewardStats, assign_variant
from stream.partition import PartitionLearner
from stream.replay import DEFAULT_PARTITIONS, replay_outputs
from stream.rewards import Reward

__all__ = ["Simulation", "main", "report", "simulate"]

_FORCED = frozenset({"opted_out", "protect_purchase"})
_Z = 1.96


@dataclass(slots=True)
class Simulation:
    """What a closed-loop run produced (decisions are tallied, not kept, unless asked)."""

    env: Environment
    config: StepConfig
    learners: dict[int, PartitionLearner] = field(default_factory=dict)
    rewards: list[Reward] = field(default_factory=list)
    decisions: Counter[str] = field(default_factory=Counter)
    new_choices: Counter[str] = field(default_factory=Counter)
    #: (variant, quarter of the period) -> action -> new choices.
    mix: dict[tuple[str, int], Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    deadletters: int = 0
    events: int = 0
    seconds: float = 0.0
    kept: list[Decision] | None = None

    def quarter(self, time_ms: int) -> int:
        start, end = self.env.config.start_ms, self.env.end_ms
        return min(3, max(0, (time_ms - start) * 4 // max(end - start, 1)))

    def tally(self, decision: Decision) -> None:
        self.decisions[decision.variant] += 1
        if (decision.policy or {}).get("sticky") or decision.reasons[0].rule in _FORCED:
            return
        self.new_choices[decision.variant] += 1
        self.mix[decision.variant, self.quarter(decision.event_time_ms)][decision.action] += 1


def simulate(
    env_config: EnvironmentConfig,
    config: StepConfig | None = None,
    partitions: int = DEFAULT_PARTITIONS,
    progress: bool = False,
    keep_decisions: bool = False,
) -> Simulation:
    """Run the closed loop to the end of the environment's period."""
    env = Environment(env_config)
    sim = Simulation(env, config or StepConfig(), kept=[] if keep_decisions else None)
    started = time.perf_counter()
    bar = tqdm(unit="ev", desc="simulate", file=sys.stderr, disable=not progress or None)
    outputs = replay_outputs(env.lines(), sim.config, {}, partitions, sim.learners)
    with bar:
        for output in outputs:
            if isinstance(output, Decision):
                env.observe(output)
                sim.tally(output)
                sim.events += 1
                bar.update()
                if sim.kept is not None:
                    sim.kept.append(output)
            elif isinstance(output, Reward):
                sim.rewards.append(output)
            else:
                sim.deadletters += 1
    sim.seconds = time.perf_counter() - started
    return sim


def merged_stats(sim: Simulation) -> RewardStats:
    stats = RewardStats()
    for partition in sorted(sim.learners):
        stats = stats.merge(sim.learners[partition].policy.stats)
    return stats


def _mean_ci(values: Sequence[float]) -> dict[str, float | int | None]:
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "low": None, "high": None}
    mean = math.fsum(values) / n
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    half = _Z * math.sqrt(var / n)
    return {"n": n, "mean": mean, "low": mean - half, "high": mean + half, "var": var}


def _diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float] | None:
    if not a["n"] or not b["n"] or a["n"] < 2 or b["n"] < 2:
        return None
    estimate = a["mean"] - b["mean"]
    half = _Z * math.sqrt(a["var"] / a["n"] + b["var"] / b["n"])
    return {"estimate": estimate, "low": estimate - half, "high": estimate + half}


def _quarter_lifts(sim: Simulation, variants: Sequence[str]) -> dict[str, list[Any]]:
    per_quarter = [RewardStats() for _ in range(4)]
    for reward in sim.rewards:
        d = reward.decision
        per_quarter[sim.quarter(d.at_ms)].observe(d.variant, reward.reward)
    out: dict[str, list[Any]] = {}
    for variant in variants:
        lifts = [s.lift(variant) for s in per_quarter]
        out[variant] = [None if lift is None else lift._asdict() for lift in lifts]
    return out


def report(sim: Simulation) -> dict[str, Any]:
    """Every figure of the run, JSON-able."""
    policy = sim.config.policy
    names = [v.name for v in policy.variants]
    baseline = next((v.name for v in policy.variants if v.kind == "default"), names[0])
    stats = merged_stats(sim)
    shares = [(v.name, v.share) for v in policy.variants]
    orders: dict[str, list[float]] = {name: [] for name in names}
    for key, count in sim.env.orders().items():
        orders[assign_variant(key, policy.salt, shares)].append(float(count))
    oracle: dict[str, dict[str, list[float]]] = {n: {"value": [], "best": []} for n in names}
    for o in sim.env.opportunities:
        oracle[o.variant]["value"].append(o.value)
        oracle[o.variant]["best"].append(o.best)
    per_orders = {name: _mean_ci(orders[name]) for name in names}
    variants: dict[str, Any] = {}
    for name in names:
        n, mean, var = stats.count(name), stats.mean(name), stats.variance(name)
        half = _Z * math.sqrt(var / n) if var is not None and n else None
        lift = stats.lift(name, baseline) if name != baseline else None
        orders_lift = None if name == baseline else _diff(per_orders[name], per_orders[baseline])
        first, last = sim.mix.get((name, 0), Counter()), sim.mix.get((name, 3), Counter())
        variants[name] = {
            "kind": policy.variant(name).kind,
            "decisions": sim.decisions[name],
            "new_choices": sim.new_choices[name],
            "settled_rewards": n,
            "mean_reward": mean,
            "mean_reward_ci": None if half is None or mean is None else [mean - half, mean + half],
            "lift": None if lift is None else lift._asdict(),
            "users": per_orders[name]["n"],
            "orders_per_user": per_orders[name],
            "orders_lift": orders_lift,
            "oracle_value_chosen": _mean_ci(oracle[name]["value"])["mean"],
            "oracle_value_best": _mean_ci(oracle[name]["best"])["mean"],
            "mix_first_quarter": dict(sorted(first.items())),
            "mix_last_quarter": dict(sorted(last.items())),
        }
    return {
        "events": sim.events,
        "deadletters": sim.deadletters,
        "seconds": sim.seconds,
        "events_per_s": sim.events / sim.seconds if sim.seconds else None,
        "baseline": baseline,
        "variants": variants,
        "lift_by_quarter": _quarter_lifts(sim, [n for n in names if n != baseline]),
    }


def _fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _interval(d: dict[str, Any] | None) -> str:
    if d is None:
        return "-"
    return f"{d['estimate']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"


def render(figures: dict[str, Any]) -> str:
    lines = [
        f"events {figures['events']:,} in {figures['seconds']:.1f} s "
        f"({figures['events_per_s'] or 0:,.0f}/s), dead letters {figures['deadletters']}",
        "",
        "variant     decisions    new  rewards  mean reward [95% CI]        "
        "lift vs holdout [95% CI]         orders/user [95% CI]       oracle chosen/best",
    ]
    for name, v in figures["variants"].items():
        ci = v["mean_reward_ci"] or [None, None]
        o = v["orders_per_user"]
        lines.append(
            f"{name:<11} {v['decisions']:>9,} {v['new_choices']:>6,} {v['settled_rewards']:>8,}  "
            f"{_fmt(v['mean_reward'])} [{_fmt(ci[0])}, {_fmt(ci[1])}]  "
            f"{_interval(v['lift'] and {**v['lift']}):<32} "
            f"{_fmt(o['mean'], 3)} [{_fmt(o['low'], 3)}, {_fmt(o['high'], 3)}]  "
            f"{_fmt(v['oracle_value_chosen'], 3)}/{_fmt(v['oracle_value_best'], 3)}"
        )
    lines.append("")
    for name, v in figures["variants"].items():
        if v["orders_lift"] is not None:
            lines.append(f"orders/user lift {name}: {_interval(v['orders_lift'])}")
    for name, v in figures["variants"].items():
        if v["kind"] != "default":
            lines.append(f"{name} mix, first quarter: {v['mix_first_quarter']}")
            lines.append(f"{name} mix, last quarter:  {v['mix_last_quarter']}")
    for name, lifts in figures["lift_by_quarter"].items():
        shown = ", ".join("-" if q is None else _interval(q) for q in lifts)
        lines.append(f"{name} lift by quarter: {shown}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.simulate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--days", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.partitions < 1:
        parser.error("--partitions must be >= 1")
    try:
        env_config = EnvironmentConfig(users=args.users, days=args.days, seed=args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        sim = simulate(env_config, StepConfig(), args.partitions, progress=True)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    figures = report(sim)
    print(render(figures))
    if args.json is not None:
        try:
            args.json.write_bytes(orjson.dumps(figures, option=orjson.OPT_INDENT_2))
        except OSError as exc:
            print(f"cannot write {args.json}: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

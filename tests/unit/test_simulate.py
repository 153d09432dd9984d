"""The closed-loop environment and the simulation command (stream.environment, scripts.simulate)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from scripts.simulate import main, merged_stats, report, simulate
from stream.config import StepConfig
from stream.decision import Decision
from stream.environment import (
    Environment,
    EnvironmentConfig,
    Traits,
    click_probability,
    true_action_values,
)
from stream.policyconfig import PolicyConfig, Variant
from stream.replay import replay_outputs


def _run_bytes(config: EnvironmentConfig) -> tuple[list[bytes], list[bytes]]:
    env = Environment(config)
    events: list[bytes] = []

    def recorded() -> Iterator[bytes]:
        for line in env.lines():
            events.append(line)
            yield line

    decisions: list[bytes] = []
    for output in replay_outputs(recorded(), StepConfig(), partitions=2):
        if isinstance(output, Decision):
            env.observe(output)
            decisions.append(output.to_bytes())
    return events, decisions


def test_same_seed_same_events_and_decisions() -> None:
    config = EnvironmentConfig(users=25, days=0.5, seed=3)
    events, decisions = _run_bytes(config)
    again = _run_bytes(config)
    assert len(events) > 200
    assert (events, decisions) == again
    assert _run_bytes(EnvironmentConfig(users=25, days=0.5, seed=4))[0] != events


def test_observe_refuses_a_decision_for_another_event() -> None:
    env = Environment(EnvironmentConfig(users=2, days=0.2, seed=1))
    with pytest.raises(ValueError, match="just returned"):
        env.observe(None)  # type: ignore[arg-type]


def test_documented_action_values() -> None:
    def traits(known: bool, sensitive: bool, focused: bool) -> Traits:
        return Traits("u", "a", "u" if known else None, sensitive, focused, "books", 0.1, 0.3)

    actions = ("offer_discount", "remind_cart", "recommend_category", "invite_signup", "none")
    sensitive = true_action_values(traits(False, True, True), actions)
    assert round(sensitive["offer_discount"], 3) == 0.222
    assert sensitive["recommend_category"] == pytest.approx(0.0705)
    assert round(sensitive["invite_signup"], 3) == 0.024
    assert sensitive["none"] == 0.0
    known = [true_action_values(traits(True, s, False), actions) for s in (True, False)]
    # Known users: the reminder beats the discount on average (20 % are price-sensitive).
    assert 0.2 * known[0]["remind_cart"] + 0.8 * known[1]["remind_cart"] == pytest.approx(
        0.1263, abs=1e-4
    )
    assert 0.2 * known[0]["offer_discount"] + 0.8 * known[1]["offer_discount"] < 0.08


def test_reactions_follow_the_documented_click_probabilities() -> None:
    # One variant, the priority rules: every eligible user gets the highest-priority action.
    policy = PolicyConfig(variants=(Variant(name="rules", share=1.0, kind="priority"),))
    sim = simulate(EnvironmentConfig(users=120, days=1.0, seed=5), StepConfig(policy=policy))
    traits = sim.env.traits
    shown = [o for o in sim.env.opportunities if o.clicked is not None]
    by_action: dict[str, list[tuple[float, bool]]] = {}
    for o in shown:
        by_action.setdefault(o.action, []).append(
            (click_probability(o.action, traits[o.user_key]), bool(o.clicked))
        )
    assert {"offer_discount", "remind_cart", "recommend_category"} <= set(by_action)
    for action, draws in by_action.items():
        expected = math.fsum(p for p, _ in draws)
        sd = math.sqrt(math.fsum(p * (1 - p) for p, _ in draws))
        clicks = sum(clicked for _, clicked in draws)
        assert abs(clicks - expected) <= 4 * sd + 1e-9, (action, clicks, expected, sd)


def test_the_learned_bandit_beats_the_holdout_and_uniform_exploration() -> None:
    variants = (
        Variant(name="holdout", share=0.25, kind="default"),
        Variant(name="champion", share=0.5, kind="bandit", exploration=0.1),
        Variant(name="uniform", share=0.25, kind="bandit", exploration=1.0),
    )
    config = StepConfig(policy=PolicyConfig(variants=variants))
    sim = simulate(EnvironmentConfig(users=160, days=2.0, seed=2), config, partitions=1)
    stats = merged_stats(sim)
    figures = report(sim)["variants"]
    champion, uniform, holdout = (stats.mean(v) or 0.0 for v in ("champion", "uniform", "holdout"))
    assert champion > holdout
    assert champion > uniform
    # The true value of what it chose: learning moved it above uniform choice.
    assert figures["champion"]["oracle_value_chosen"] > figures["uniform"]["oracle_value_chosen"]


def test_cli_refuses_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--users", "0"])
    assert exit_info.value.code == 2
    assert "users" in capsys.readouterr().err

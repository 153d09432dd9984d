"""The next-best-action policy (stream/policy.py and what it uses): the catalog's validation, each
action's eligibility boundaries, guardrails, consent, purchase steps, propensities, exploration,
experiment variants, session consistency, rewards joined in event time, and replay determinism."""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from stream import ConfigError, DeadLetter, Decision, Profile, StepConfig, decode_event, step
from stream.actions import ActionCatalog, ActionSpec, Condition, FrequencyCap, eligibility
from stream.bandit import epsilon_schedule
from stream.experiments import assign_variant
from stream.features import feature_vector
from stream.guardrails import Start
from stream.partition import PartitionLearner, ProfileStore
from stream.partitioning import partition_for
from stream.policy import NOTE_DECISION_DROPPED, model_scores
from stream.policyconfig import DEFAULT_CATALOG, DEFAULT_POLICY, PolicyConfig, Variant, load_policy
from stream.policylearner import PolicyLearner
from stream.replay import replay, replay_outputs
from stream.rewards import PendingDecision, Reward, RewardConfig, close, credit, expose
from stream.step import NOTE_OPTED_OUT
from stream.synthetic import GeneratorConfig, generate_events
from stream.timeutil import ms_to_iso
from stream.windows import DAY_MS, MINUTE_MS
from tests.unit.test_guardrails import violations
from tests.unit.test_step import RULES, add, ev, page, view

M = MINUTE_MS
T0 = 1_700_000_000_000
CFG = StepConfig()
DEFAULT = DEFAULT_CATALOG.default_action
QUIET = DEFAULT_CATALOG.quiet_events
FORCED = ("opted_out", "protect_purchase")
#: Decisions that make no choice among eligible actions: the policy had probability 1.
CERTAIN = ("holdout", "priority", "sticky", *FORCED)
BANDIT = StepConfig(
    policy=PolicyConfig(
        variants=(Variant(name="bandit", share=1.0, kind="bandit", exploration=0.5),)
    )
)


def _index(catalog: ActionCatalog, name: str) -> int:
    return catalog.names.index(name)


# -- the catalog's validation ------------------------------------------------------------------


def _spec(name: str, **kw: Any) -> ActionSpec:
    return ActionSpec.model_validate({"name": name, "priority": kw.pop("priority", 1), **kw})


def test_duplicate_action_names_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"duplicate action names: \['a'\]"):
        ActionCatalog(actions=(_spec("a"), _spec("a", priority=2), _spec("none", priority=0)))


def test_the_default_action_must_exist_and_be_plain() -> None:
    with pytest.raises(ValidationError, match="'nothing' is not in the catalog"):
        ActionCatalog(default_action="nothing", actions=(_spec("a"), _spec("none")))
    conditional = _spec("none", when=[{"feature": "cart_lines", "op": ">=", "value": 1}])
    with pytest.raises(ValidationError, match="unconditional and uncapped"):
        ActionCatalog(actions=(_spec("a"), conditional))
    for guard in ({"cooldown_ms": 5}, {"caps": [{"max": 1, "window_ms": 10}]}):
        with pytest.raises(ValidationError, match="unconditional and uncapped"):
            ActionCatalog(actions=(_spec("a"), _spec("none", **guard)))
    # Another default, if it is plain, is fine; actions come out sorted by priority.
    catalog = ActionCatalog(default_action="idle", actions=(_spec("idle", priority=-1), _spec("a")))
    assert catalog.names == ("a", "idle")


@pytest.mark.parametrize(
    ("op", "value", "message"),
    [
        ("in", "shoes", "op 'in' needs a list"),
        ("not_in", 3, "op 'not_in' needs a list"),
        ("==", ["a", "b"], "op '==' needs one value"),
        (">=", ["a"], "op '>=' needs one value"),
        (">=", "50", "op '>=' compares numbers"),
        ("<", True, "op '<' compares numbers"),
        (">", None, "op '>' compares numbers"),
    ],
)
def test_conditions_refuse_values_their_op_cannot_use(op: str, value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Condition.model_validate({"feature": "cart_value", "op": op, "value": value})


def test_conditions_accept_values_their_op_can_use() -> None:
    for op, value in (("in", ["a"]), ("==", False), (">=", 0), ("<", 2.5), ("!=", None)):
        Condition.model_validate({"feature": "x", "op": op, "value": value})


def test_a_catalog_reading_unknown_features_is_refused_by_the_step_config() -> None:
    reads = _spec("a", when=[{"feature": "cart_valeu", "op": ">=", "value": 1}])
    catalog = ActionCatalog(actions=(reads, _spec("none", priority=0)))
    with pytest.raises(ConfigError, match=r"unknown features: \['cart_valeu'\]"):
        StepConfig(policy=PolicyConfig(catalog=catalog))
    param = _spec("b", params={"category": "$top_categroy", "fixed": "$"})
    with pytest.raises(ConfigError, match="top_categroy"):
        StepConfig(policy=PolicyConfig(catalog=ActionCatalog(actions=(param, _spec("none")))))
    # Features, the scores and the event name are all readable.
    fine = _spec(
        "c",
        when=[
            {"feature": "cart_value", "op": ">=", "value": 1},
            {"feature": "score.conversion", "op": ">=", "value": 0.5},
            {"feature": "event", "op": "in", "value": ["page"]},
        ],
        params={"category": "$top_category"},
    )
    StepConfig(policy=PolicyConfig(catalog=ActionCatalog(actions=(fine, _spec("none")))))


def test_variant_shares_must_add_up_to_one_and_names_be_unique() -> None:
    with pytest.raises(ValidationError, match="must add up to 1"):
        PolicyConfig(
            variants=(
                Variant(name="a", share=0.5, kind="default"),
                Variant(name="b", share=0.4, kind="priority"),
            )
        )
    with pytest.raises(ValidationError, match="duplicate variant names"):
        PolicyConfig(
            variants=(
                Variant(name="a", share=0.5, kind="default"),
                Variant(name="a", share=0.5, kind="priority"),
            )
        )


def test_load_policy_reads_a_good_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(DEFAULT_POLICY.model_dump_json(), encoding="utf-8")
    assert load_policy(path) == DEFAULT_POLICY
    doc = {
        "version": "nba-test",
        "variants": [{"name": "rules", "share": 1.0, "kind": "priority"}],
        "catalog": {
            "actions": [
                {
                    "name": "remind_cart",
                    "priority": 5,
                    "when": [{"feature": "cart_lines", "op": ">=", "value": 1}],
                    "caps": [{"max": 3, "window_ms": 3600000}],
                },
                {"name": "none", "priority": 0},
            ]
        },
    }
    path.write_bytes(orjson.dumps(doc))
    loaded = load_policy(str(path))
    assert loaded.version == "nba-test"
    assert loaded.catalog.names == ("remind_cart", "none")
    assert loaded.catalog.actions[0].caps == (FrequencyCap(max=3, window_ms=3_600_000),)
    assert loaded.catalog.quiet_events == QUIET  # defaults fill the rest


def test_load_policy_says_what_is_wrong_and_where(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"variants": [{"name": "a", "share": 0.3, "kind": "bandit"}]}')
    with pytest.raises(ConfigError, match="invalid policy file") as info:
        load_policy(path)
    assert str(path) in str(info.value) and "add up to 1" in str(info.value)
    path.write_text('{"catalog": ')
    with pytest.raises(ConfigError, match=str(path)):
        load_policy(path)
    missing = tmp_path / "missing.json"
    with pytest.raises(ConfigError, match=f"cannot read policy file {missing}"):
        load_policy(missing)


# -- eligibility at each condition's boundary --------------------------------------------------

#: A feature vector in which every default action's conditions hold.
ALL_HOLD: dict[str, Any] = {
    "cart_value": 100.0,
    "views_since_add": 5,
    "cart_lines": 2,
    "known_user": False,
    "views_total": 10,
    "top_category_affinity": 5.0,
}

BOUNDARIES = [
    # (action, feature, the value at the boundary (holds), one step beyond it (fails), why not)
    ("offer_discount", "cart_value", 50.0, 49.99, "cart_value is 49.99, needs >= 50.0"),
    ("offer_discount", "views_since_add", 3, 2, "views_since_add is 2, needs >= 3"),
    ("remind_cart", "cart_lines", 1, 0, "cart_lines is 0, needs >= 1"),
    ("invite_signup", "known_user", False, True, "known_user is True, needs == False"),
    ("invite_signup", "views_total", 5, 4, "views_total is 4, needs >= 5"),
    (
        "recommend_category",
        "top_category_affinity",
        3.0,
        2.9999,
        "top_category_affinity is 2.9999, needs >= 3.0",
    ),
]


@pytest.mark.parametrize(("action", "feature", "holds", "fails", "why"), BOUNDARIES)
def test_each_default_action_is_eligible_exactly_at_its_thresholds(
    action: str, feature: str, holds: Any, fails: Any, why: str
) -> None:
    i = _index(DEFAULT_CATALOG, action)
    assert eligibility(DEFAULT_CATALOG, i, ALL_HOLD, "Page Viewed", None) is None
    assert eligibility(DEFAULT_CATALOG, i, {**ALL_HOLD, feature: holds}, "page", None) is None
    assert eligibility(DEFAULT_CATALOG, i, {**ALL_HOLD, feature: fails}, "page", None) == why
    # No other action reads this feature's boundary the same way by accident.
    others = [a.name for a in DEFAULT_CATALOG.actions if a.name != action]
    for other in others:
        j = _index(DEFAULT_CATALOG, other)
        assert eligibility(DEFAULT_CATALOG, j, {**ALL_HOLD, feature: fails}, "page", None) in (
            None,
            why,
        )


@pytest.mark.parametrize("cart_event", ["Product Added", "Product Removed", "Cart Viewed"])
def test_remind_cart_is_not_eligible_during_a_cart_event(cart_event: str) -> None:
    i = _index(DEFAULT_CATALOG, "remind_cart")
    assert eligibility(DEFAULT_CATALOG, i, ALL_HOLD, cart_event, None) == (
        f"event is {cart_event}, needs not_in [Product Added, Product Removed, Cart Viewed]"
    )
    assert eligibility(DEFAULT_CATALOG, i, ALL_HOLD, "Product Viewed", None) is None


def test_the_first_failing_condition_is_the_reason() -> None:
    i = _index(DEFAULT_CATALOG, "offer_discount")
    both = {**ALL_HOLD, "cart_value": 10.0, "views_since_add": 0}
    assert (
        eligibility(DEFAULT_CATALOG, i, both, "page", None) == "cart_value is 10.0, needs >= 50.0"
    )


def test_the_default_action_is_always_eligible() -> None:
    assert eligibility(DEFAULT_CATALOG, _index(DEFAULT_CATALOG, DEFAULT), {}, "x", None) is None


def test_a_missing_score_never_satisfies_a_comparison() -> None:
    catalog = ActionCatalog(
        actions=(
            _spec("save", when=[{"feature": "score.abandonment", "op": ">=", "value": 0.5}]),
            _spec("none", priority=0),
        )
    )
    assert eligibility(catalog, 0, {}, "page", None) == "score.abandonment is None, needs >= 0.5"
    assert eligibility(catalog, 0, {}, "page", {"conversion": 0.9}) is not None
    assert eligibility(catalog, 0, {}, "page", {"abandonment": 0.5}) is None
    assert eligibility(catalog, 0, {}, "page", {"abandonment": 0.4999}) == (
        "score.abandonment is 0.4999, needs >= 0.5"
    )


# -- an instrumented replay --------------------------------------------------------------------


@dataclass
class Traced:
    """One event's decision, with what the profile recorded while deciding."""

    decision: Decision
    started: Start | None
    pending: bool
    #: Whether the partition's clock settled this very decision in the same record (its event
    #: was older than the partition's clock by more than the reward window).
    settled_at_once: bool
    consent: bool | None
    notes: tuple[str, ...]
    eligible_by_conditions: bool
    #: Pending decisions an opt-out discarded in this step (nothing is learned from them).
    withheld: int = 0


@dataclass
class Trace:
    steps: list[Traced] = field(default_factory=list)
    rewards: list[Reward] = field(default_factory=list)
    profiles: dict[str, Profile] = field(default_factory=dict)
    learners: dict[int, PartitionLearner] = field(default_factory=dict)


def traced_replay(lines: Sequence[bytes], config: StepConfig, partitions: int = 2) -> Trace:
    """What stream.replay does, one record at a time, diffing each profile's starts around the
    step: ``record_start`` returns a new list exactly when the policy recorded a start."""
    trace = Trace()
    store = ProfileStore(trace.profiles.get, trace.profiles.__setitem__)
    catalog = config.policy.catalog
    for raw in lines:
        event = decode_event(raw)
        assert not isinstance(event, DeadLetter), event
        part = partition_for(event.user_key.encode(), partitions)
        learner = trace.learners.get(part) or trace.learners.setdefault(
            part, PartitionLearner.new(part, config)
        )
        before = trace.profiles.get(event.user_key)
        before_starts = before.starts if before is not None else None
        before_pending = len(before.decisions) if before is not None else 0
        outputs = learner.process(event, store, config)
        trace.rewards.extend(outputs.rewards)
        if outputs.skipped is not None:
            continue
        profile = trace.profiles[event.user_key]
        (decision,) = outputs.decisions
        started = (
            profile.starts[-1] if profile.starts is not before_starts and profile.starts else None
        )
        features = feature_vector(profile, config)
        allowed = eligibility(
            catalog,
            _index(catalog, decision.action),
            features,
            event.name,
            model_scores(decision.predictions),
        )
        trace.steps.append(
            Traced(
                decision,
                started,
                any(p.decision_id == decision.decision_id for p in profile.decisions),
                any(r.decision.decision_id == decision.decision_id for r in outputs.rewards),
                profile.consent,
                outputs.notes,
                allowed is None,
                before_pending if NOTE_OPTED_OUT in outputs.notes else 0,
            )
        )
    return trace


def check_trace(trace: Trace, config: StepConfig) -> None:
    """Every rule of the policy that a log of decisions can show."""
    policy = config.policy
    catalog, rc = policy.catalog, policy.rewards
    starts: dict[str, list[Start]] = defaultdict(list)
    new_choices: set[str] = set()
    dropped = 0
    for t in trace.steps:
        d = t.decision
        rule = d.reasons[0].rule
        block = d.policy
        assert block is not None
        # The variant is the user's hash bucket's.
        shares = [(v.name, v.share) for v in policy.variants]
        assert d.variant == assign_variant(d.user_key, policy.salt, shares)
        # (b) the chosen action's conditions held at that event.
        assert t.eligible_by_conditions, d
        # (c) opted out: the default, no choice made.
        if t.consent is False:
            assert (d.action, rule) == (DEFAULT, "opted_out"), d
        else:
            assert rule != "opted_out", d
        # (d) purchase steps are never interrupted.
        if d.event_name in QUIET:
            assert d.action == DEFAULT and rule in FORCED, d
        elif t.consent is not False:
            assert rule != "protect_purchase"
        # (e) propensities.
        probabilities = [a.probability for a in d.alternatives]
        assert math.isclose(d.propensity + sum(probabilities), 1.0, abs_tol=1e-9), d
        assert all(a.probability == 0.0 for a in d.alternatives if not a.eligible), d
        assert set(block["eligible"]) == {a.action for a in d.alternatives if a.eligible} | (
            {d.action} if d.action in block["eligible"] else set()
        )
        if rule in CERTAIN:
            assert d.propensity == 1.0 and not any(probabilities), d
        else:
            assert rule in ("bandit_greedy", "bandit_explore"), rule
            assert d.action in block["eligible"]
            eps, k = block["exploration_rate"], len(block["eligible"])
            shares_ = {round(eps / k, 12), round(eps / k + 1 - eps, 12)} if k > 1 else {1.0}
            assert d.propensity in shares_ and set(probabilities) - {0.0} <= shares_, d
            assert block["explored"] == (rule == "bandit_explore")
            assert not block["explored"] or k > 1
        if rule == "holdout":
            assert d.action == DEFAULT
        # Only new choices wait for a reward; forced and sticky decisions do not.
        new = rule not in (*FORCED, "sticky")
        assert (t.pending or t.settled_at_once) == new, d
        assert not (t.pending and t.settled_at_once)
        assert block["sticky"] == (rule == "sticky")
        if new:
            new_choices.add(d.decision_id)
        dropped += t.notes.count(NOTE_DECISION_DROPPED) + t.withheld
        # Only new choices start anything, and never the default.
        if t.started is not None:
            assert new and t.started == (d.action, d.event_time_ms) and d.action != DEFAULT, d
            starts[d.user_key].append(t.started)
    # (a) over every start the policy recorded: no cap window overflows, no cooldown is broken.
    for user, recorded in starts.items():
        assert violations(recorded, catalog) == [], user
    # Rewards: each decision settled at most once, only new choices, the largest reward.
    settled = [r.decision.decision_id for r in trace.rewards]
    assert len(settled) == len(set(settled))
    assert set(settled) <= new_choices
    for r in trace.rewards:
        outcomes = r.decision.outcomes
        expected = max(rc.rewards[o] for o in outcomes) if outcomes else rc.default_reward
        assert r.reward == expected
        assert r.resolved_at_ms > r.decision.at_ms + rc.window_ms
    # Every new choice is settled, still pending (its window not closed by its user's clock),
    # or was dropped for max_pending or discarded by an opt-out (both counted).
    pending: set[str] = set()
    for profile in trace.profiles.values():
        now = (profile.last_seen_ms or 0) - config.features.grace_ms
        for p in profile.decisions:
            assert p.at_ms + rc.window_ms >= now, p
            pending.add(p.decision_id)
    assert not pending & set(settled)
    assert len(new_choices - set(settled) - pending) == dropped


# -- random streams ----------------------------------------------------------------------------


def _users_by_variant() -> dict[str, str]:
    """One user key per default variant (holdout, champion, challenger)."""
    shares = [(v.name, v.share) for v in DEFAULT_POLICY.variants]
    found: dict[str, str] = {}
    for i in itertools.count():
        key = f"user-{i}"
        found.setdefault(assign_variant(key, DEFAULT_POLICY.salt, shares), key)
        if len(found) == len(shares):
            break
    return found


VARIANT_USERS = _users_by_variant()
USERS = (*sorted(VARIANT_USERS.values()), "anon-9")
CATEGORIES = ("shoes", "books", "toys")


def _consent(value: bool) -> dict[str, Any]:
    return {"consent": {"categoryPreferences": {"Personalization": value, "ads": not value}}}


@st.composite
def user_docs(draw: st.DrawFn, user: str) -> list[dict[str, Any]]:
    """One user's events: carts, views, checkouts, orders, consent changes and reactions to
    decisions; mostly minutes apart, sometimes a new session or a new day, sometimes late."""
    docs: list[dict[str, Any]] = []
    t = T0 + draw(st.integers(0, 60)) * M
    for i in range(draw(st.integers(1, 25))):
        t += draw(st.sampled_from([0, 1, 1, 2, 3, 5, 9, 11, 31, 45, 24 * 60, 25 * 60])) * M
        at = t - draw(st.sampled_from([0, 0, 0, 0, 30_000, 2 * M, 20 * M]))
        kind = draw(
            st.sampled_from(
                ["view"] * 4
                + ["add"] * 2
                + ["remove", "cart", "page", "checkout", "order", "consent", "shown", "click"]
            )
        )
        doc: dict[str, Any] = {"type": "track", "messageId": f"{user}-{i}"}
        doc["timestamp"] = ms_to_iso(at)
        if kind == "view":
            doc |= {
                "event": "Product Viewed",
                "properties": {"product_id": "p", "category": draw(st.sampled_from(CATEGORIES))},
            }
        elif kind == "add":
            price = draw(st.sampled_from([5.0, 20.0, 49.99, 50.0, 120.0]))
            doc |= {
                "event": "Product Added",
                "properties": {"product_id": draw(st.sampled_from("abc")), "price": price},
            }
        elif kind == "remove":
            doc |= {
                "event": "Product Removed",
                "properties": {"product_id": draw(st.sampled_from("abc"))},
            }
        elif kind == "cart":
            doc |= {"event": "Cart Viewed"}
        elif kind == "checkout":
            doc |= {"event": "Checkout Started"}
        elif kind == "order":
            doc |= {"event": "Order Completed", "properties": {"revenue": 30.0}}
        elif kind == "shown":
            doc |= {"event": "Decision Shown", "properties": {"decision_id": "unknown"}}
        elif kind == "click":
            doc |= {"event": "Decision Clicked"}
        else:
            doc = {**doc, "type": "page", "name": "Home"}
        if kind == "consent" or draw(st.integers(0, 14)) == 0:
            doc["context"] = _consent(draw(st.booleans()))
        if user.startswith("anon-"):
            doc["anonymousId"] = user
        else:
            doc["userId"] = user
        docs.append(doc)
    # Far later (within the idle horizon): every earlier decision's window is closed by then.
    docs.append(
        {
            "type": "page",
            "messageId": f"{user}-end",
            "timestamp": ms_to_iso(t + 2 * DAY_MS),
            "name": "Home",
            ("anonymousId" if user.startswith("anon-") else "userId"): user,
        }
    )
    return docs


@st.composite
def random_logs(draw: st.DrawFn) -> list[bytes]:
    streams = {user: draw(user_docs(user)) for user in USERS}
    slots = [user for user, docs in streams.items() for _ in docs]
    order = draw(st.permutations(slots))
    position = dict.fromkeys(streams, 0)
    merged = []
    for user in order:
        merged.append(orjson.dumps(streams[user][position[user]]))
        position[user] += 1
    return merged


RANDOM_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CONFIGS = (CFG, RULES, BANDIT)


@RANDOM_SETTINGS
@given(random_logs(), st.sampled_from(CONFIGS))
def test_every_decision_of_a_random_log_follows_the_policy_rules(
    lines: list[bytes], config: StepConfig
) -> None:
    trace = traced_replay(lines, config)
    assert len(trace.steps) == len(lines)
    check_trace(trace, config)


@pytest.fixture(scope="module")
def synthetic_lines() -> list[bytes]:
    events = generate_events(GeneratorConfig(seed=11, users=60, days=2.0))
    return [orjson.dumps(e) for e in events]


@pytest.mark.parametrize("config", CONFIGS, ids=["default", "rules", "bandit"])
def test_every_decision_of_a_synthetic_log_follows_the_policy_rules(
    synthetic_lines: list[bytes], config: StepConfig
) -> None:
    trace = traced_replay(synthetic_lines, config)
    check_trace(trace, config)
    rules = Counter(t.decision.reasons[0].rule for t in trace.steps)
    assert rules["protect_purchase"] > 0 and rules["sticky"] > 0
    assert sum(1 for t in trace.steps if t.started) > 50
    assert len(trace.rewards) > 50


# -- consent and purchase steps, one user ------------------------------------------------------


def test_an_opted_out_user_gets_the_default_until_they_opt_back_in() -> None:
    user = "consenting"
    out_ctx, in_ctx = _consent(False), _consent(True)
    profile, _ = step(None, add("p1", 30.0, user=user, ts=T0), RULES)
    profile, out = step(profile, page(user=user, ts=T0 + M), RULES)
    assert out.decisions[0].action == "remind_cart"
    assert profile.decisions and profile.labels
    profile, out = step(profile, page(user=user, ts=T0 + 2 * M, context=out_ctx), RULES)
    assert NOTE_OPTED_OUT in out.notes and not out.examples and out.new_label is None
    # Only the consent record is left: the cart, the pending label and decision are gone.
    record = profile.to_dict()
    assert record["consent"] is False and record["last_seen_ms"] == T0 + 2 * M
    assert record["counts"] == {} and record["labels"] == [] and record["decisions"] == []
    assert record["starts"] == [] and record["choice"] is None and not record["final"]["cart"]
    for i in range(3, 6):  # events that say nothing keep the user opted out, and unrecorded
        profile, out = step(profile, add("p2", 9.0, user=user, ts=T0 + i * M), RULES)
        d = out.decisions[0]
        assert (d.action, d.reasons[0].rule, d.propensity) == (DEFAULT, "opted_out", 1.0)
        assert d.predictions is None
        assert profile.counts == {} and profile.decisions == []
    profile, out = step(profile, page(user=user, ts=T0 + 40 * M, context=in_ctx), RULES)
    # Opting back in starts from clean: nothing from before, nor from the opted-out period.
    assert out.decisions[0].action == DEFAULT  # the cart was forgotten
    fresh, _ = step(None, page(user=user, ts=T0 + 40 * M, context=in_ctx), RULES)
    assert feature_vector(profile, RULES) == feature_vector(fresh, RULES)
    profile, out = step(profile, add("p3", 5.0, user=user, ts=T0 + 41 * M), RULES)
    profile, out = step(profile, page(user=user, ts=T0 + 42 * M), RULES)
    d = out.decisions[0]
    assert (d.action, d.reasons[0].rule) == ("remind_cart", "priority")
    assert profile.decisions[-1].decision_id == d.decision_id


@pytest.mark.parametrize("name", QUIET)
def test_purchase_steps_always_get_the_default(name: str) -> None:
    profile, _ = step(None, add("p1", 80.0, user="buyer", ts=T0), RULES)
    profile, out = step(profile, page(user="buyer", ts=T0 + M), RULES)
    assert out.decisions[0].action == "remind_cart"
    count = len(profile.decisions)
    profile, out = step(profile, ev(name, user="buyer", ts=T0 + 2 * M), RULES)
    d = out.decisions[0]
    assert (d.action, d.reasons[0].rule, d.propensity) == (DEFAULT, "protect_purchase", 1.0)
    assert len(profile.decisions) == count


# -- exploration -------------------------------------------------------------------------------


def _learned(version: str) -> int:
    """The rewards a bandit had learned, from ``nba-v1/p3/champion@1234``."""
    return int(version.rsplit("@", 1)[1])


@pytest.fixture(scope="module")
def explored_log() -> list[Decision]:
    config = StepConfig(
        policy=PolicyConfig(
            variants=(
                Variant(name="flat", share=0.5, kind="bandit", exploration=0.2),
                Variant(
                    name="decaying",
                    share=0.5,
                    kind="bandit",
                    exploration=0.2,
                    exploration_decay_after=20,
                ),
            )
        )
    )
    events = generate_events(GeneratorConfig(seed=5, users=120, days=3.0))
    return replay([orjson.dumps(e) for e in events], config).decisions


def test_the_logged_exploration_rate_follows_the_configured_schedule(
    explored_log: list[Decision],
) -> None:
    decisions = [d for d in explored_log if d.policy]
    for d in decisions:
        assert d.policy is not None
        learned = _learned(d.policy["version"])
        if d.variant == "flat":
            assert d.policy["exploration_rate"] == 0.2
        else:
            assert d.policy["exploration_rate"] == epsilon_schedule(0.2, 20, learned)
    decayed = [
        d
        for d in decisions
        if d.variant == "decaying" and d.policy and _learned(d.policy["version"]) > 80
    ]
    assert decayed, "the decaying variant must have learned past its decay point"


def test_the_fraction_of_explored_decisions_matches_the_rate(explored_log: list[Decision]) -> None:
    """``explored`` is a Bernoulli(epsilon) draw per non-sticky bandit decision with more than one
    eligible action; the count must lie within 4 binomial sigmas of its expectation."""
    for variant in ("flat", "decaying"):
        chosen = [
            d
            for d in explored_log
            if d.variant == variant
            and d.policy is not None
            and d.reasons[0].rule in ("bandit_greedy", "bandit_explore")
        ]
        assert len(chosen) > 600, len(chosen)
        rates = [
            d.policy["exploration_rate"] if d.policy and len(d.policy["eligible"]) > 1 else 0.0
            for d in chosen
        ]
        expected = sum(rates)
        sigma = math.sqrt(sum(p * (1 - p) for p in rates))
        explored = sum(1 for d in chosen if d.policy and d.policy["explored"])
        print(f"{variant}: {len(chosen)} choices, {explored} explored,", end=" ")
        print(f"expected {expected:.1f} ± {sigma:.1f}")
        assert abs(explored - expected) <= 4 * sigma, (explored, expected, sigma)
        # Exploring draws uniformly among the eligible: each position equally often.
        positions = Counter(
            (len(d.policy["eligible"]), d.policy["eligible"].index(d.action))
            for d in chosen
            if d.policy and d.policy["explored"]
        )
        for k in {k for k, _ in positions}:
            counts = [positions[(k, i)] for i in range(k)]
            n = sum(counts)
            if n >= 40:
                for c in counts:
                    assert abs(c - n / k) <= 4 * math.sqrt(n * (1 / k) * (1 - 1 / k)), (k, counts)


# -- variants ----------------------------------------------------------------------------------


def test_variant_shares_over_many_users_match_the_configuration() -> None:
    shares = [(v.name, v.share) for v in DEFAULT_POLICY.variants]
    n = 20_000
    counts = Counter(assign_variant(f"visitor-{i}", DEFAULT_POLICY.salt, shares) for i in range(n))
    for name, share in shares:
        assert abs(counts[name] - n * share) <= 4 * math.sqrt(n * share * (1 - share)), counts
    reshuffled = Counter(
        assign_variant(f"visitor-{i}", "another-salt", shares)
        == assign_variant(f"visitor-{i}", DEFAULT_POLICY.salt, shares)
        for i in range(2_000)
    )
    assert reshuffled[False] > 200  # a new salt moves users


def test_a_users_variant_is_sticky_and_a_holdout_user_always_gets_the_default() -> None:
    """Through the step: every decision of a user carries the same variant; the holdout user
    gets the default action even with a full cart, many views and an affinity."""
    for variant, user in VARIANT_USERS.items():
        profile: Profile | None = None
        actions = set()
        events = [add("p1", 80.0, user=user, ts=T0)]
        events += [view("shoes", user=user, ts=T0 + i * M) for i in range(1, 12)]
        events += [page(user=user, ts=T0 + 50 * M), page(user=user, ts=T0 + DAY_MS)]
        for event in events:
            profile, out = step(profile, event, CFG)
            d = out.decisions[0]
            assert d.variant == variant
            actions.add(d.action)
            if variant == "holdout":
                assert d.action == DEFAULT and d.propensity == 1.0
                assert d.reasons[0].rule in ("holdout", "sticky")
        if variant != "holdout":
            assert actions - {DEFAULT}, (variant, actions)


# -- session consistency -----------------------------------------------------------------------


def test_the_running_action_is_kept_while_the_allowed_set_is_the_same() -> None:
    user = "shopper"
    seen: list[tuple[str, str, bool]] = []
    profile: Profile | None = None

    def go(event: Any) -> Decision:
        nonlocal profile
        before = profile.starts if profile is not None else None
        count = len(profile.decisions) if profile is not None else 0
        profile, out = step(profile, event, RULES)
        d = out.decisions[0]
        started = profile.starts is not before and bool(profile.starts)
        seen.append((d.action, d.reasons[0].rule, started))
        if d.reasons[0].rule == "sticky":
            assert d.propensity == 1.0 and d.policy and d.policy["sticky"]
            assert len(profile.decisions) == count  # a sticky decision waits for nothing
        return d

    go(add("p1", 20.0, user=user, ts=T0))
    assert go(page(user=user, ts=T0 + M)).action == "remind_cart"
    assert seen[-1] == ("remind_cart", "priority", True)
    go(page(user=user, ts=T0 + 2 * M))
    for i in range(3, 6):
        go(view("shoes", user=user, ts=T0 + i * M))
    assert seen[2:] == [("remind_cart", "sticky", False)] * 4
    # The affinity crosses 3: recommend_category joins the allowed set, so the context changed
    # materially; remind_cart is chosen again though its 10-minute cooldown runs (it started 5
    # minutes ago): continuing is not a start.
    d = go(view("shoes", user=user, ts=T0 + 6 * M))
    assert seen[-1] == ("remind_cart", "priority", False)
    assert d.policy and d.policy["eligible"] == ["remind_cart", "recommend_category", "none"]
    assert go(view("shoes", user=user, ts=T0 + 7 * M)).reasons[0].rule == "sticky"
    # A new session (a 40-minute gap), same allowed set: a new choice, and a new start.
    d = go(page(user=user, ts=T0 + 47 * M))
    assert seen[-1] == ("remind_cart", "priority", True)
    assert profile is not None
    assert [a for a, _ in profile.starts] == ["remind_cart", "remind_cart"]


def test_a_new_choice_that_is_not_the_running_action_respects_its_cooldown() -> None:
    """Within the cooldown of an action that is no longer running, it is not eligible."""
    user = "cooled"
    profile, _ = step(None, add("p1", 20.0, user=user, ts=T0), RULES)
    profile, out = step(profile, page(user=user, ts=T0 + M), RULES)
    assert out.decisions[0].action == "remind_cart"
    # A cart event: remind_cart's conditions fail, so the default is chosen (a new choice).
    profile, out = step(profile, add("p2", 1.0, user=user, ts=T0 + 2 * M), RULES)
    assert out.decisions[0].action == DEFAULT
    # remind_cart's conditions hold again, but it started 2 minutes ago (cooldown 10).
    profile, out = step(profile, page(user=user, ts=T0 + 3 * M), RULES)
    d = out.decisions[0]
    assert d.action == DEFAULT
    (remind,) = [a for a in d.alternatives if a.action == "remind_cart"]
    assert not remind.eligible
    assert remind.rule == "cooldown: started 120000 ms away, needs 600000 ms"
    # After the cooldown, in the same session: the allowed set is what it was, so the default
    # is kept (sticky); a changed context (another add, then a page) lets it start again.
    profile, out = step(profile, page(user=user, ts=T0 + 12 * M), RULES)
    assert (out.decisions[0].action, out.decisions[0].reasons[0].rule) == (DEFAULT, "sticky")
    profile, out = step(profile, add("p3", 1.0, user=user, ts=T0 + 13 * M), RULES)
    profile, out = step(profile, page(user=user, ts=T0 + 14 * M), RULES)
    assert out.decisions[0].action == "remind_cart"


# -- rewards -----------------------------------------------------------------------------------

RC = RewardConfig()


def _pending(did: str, at_ms: int) -> PendingDecision:
    return PendingDecision(did, "remind_cart", "rules", at_ms, 1.0, (1.0,), None, (), False)


def test_an_outcome_naming_a_decision_credits_that_decision() -> None:
    pending = [_pending("d1", 1_000), _pending("d2", 2_000)]
    credited = credit(pending, "Decision Clicked", "d1", 3_000, RC)
    assert [(p.reward, p.outcomes) for p in credited] == [(0.2, ("Decision Clicked",)), (None, ())]
    assert pending[0].reward is None  # not mutated


def test_an_outcome_naming_no_decision_credits_the_latest_before_it() -> None:
    pending = [_pending("d1", 1_000), _pending("d2", 2_000)]
    assert [p.reward for p in credit(pending, "Product Added", None, 1_500, RC)] == [0.3, None]
    assert [p.reward for p in credit(pending, "Product Added", None, 2_000, RC)] == [None, 0.3]
    assert [p.reward for p in credit(pending, "Product Added", None, 999, RC)] == [None, None]
    late = 1_000 + RC.window_ms
    assert [p.reward for p in credit(pending, "Product Added", None, late, RC)] == [None, 0.3]
    assert credit(pending, "Product Added", None, 2_000 + RC.window_ms, RC) == pending
    assert credit(pending, "Product Viewed", None, 2_500, RC) == pending  # not an outcome


def test_the_largest_reward_wins() -> None:
    pending = [_pending("d1", 1_000)]
    for name in ("Product Added", "Order Completed", "Decision Clicked", "Order Completed"):
        pending = credit(pending, name, None, 5_000, RC)
    assert pending[0].reward == 1.0
    assert pending[0].outcomes == ("Product Added", "Order Completed", "Decision Clicked")


def test_a_named_decision_that_is_not_pending_falls_back_to_the_last_touch() -> None:
    """A sticky repeat's id (or a settled decision's) names nothing pending: the outcome goes
    to the latest pending decision before it, as an unnamed one would."""
    pending = [_pending("d1", 1_000), _pending("d2", 2_000)]
    credited = credit(pending, "Order Completed", "gone", 3_000, RC)
    assert [p.reward for p in credited] == [None, 1.0]
    assert credit(pending, "Order Completed", "gone", 999, RC) == pending  # nothing before it


def test_a_sticky_decision_names_the_running_one_as_its_pending_id() -> None:
    profile, outs = None, []
    for event in (add("p1", 20.0, user="s", ts=T0), page(user="s", ts=T0 + M)):
        profile, out = step(profile, event, RULES)
        outs.extend(out.decisions)
    profile, out = step(profile, page(user="s", ts=T0 + 2 * M), RULES)
    new, sticky = outs[-1], out.decisions[0]
    assert (new.action, new.reasons[0].rule) == ("remind_cart", "priority")
    assert (sticky.action, sticky.reasons[0].rule) == ("remind_cart", "sticky")
    assert new.policy is not None and sticky.policy is not None
    assert new.policy["pending_id"] == new.decision_id
    assert sticky.policy["pending_id"] == new.decision_id
    assert [d.decision_id for d in profile.decisions][-1] == new.decision_id
    # a front end that reports the sticky decision's own id still rewards the running choice
    click = ev("Decision Clicked", {"decision_id": sticky.decision_id}, user="s", ts=T0 + 3 * M)
    profile, _ = step(profile, click, RULES)
    running = next(d for d in profile.decisions if d.decision_id == new.decision_id)
    assert running.outcomes == ("Decision Clicked",)


def test_an_exposure_marks_the_named_decision_only() -> None:
    pending = [_pending("d1", 1_000), _pending("d2", 2_000)]
    assert [p.exposed for p in expose(pending, "d2")] == [False, True]
    assert expose(pending, None) == pending
    assert expose(pending, "gone") == pending


def test_the_default_reward_when_the_window_closes() -> None:
    config = RewardConfig(default_reward=0.05, window_ms=100)
    pending = [_pending("d1", 1_000), _pending("d2", 1_050)]
    pending = credit(pending, "Product Added", "d2", 1_060, config)
    settled: list[Reward] = []
    assert close(pending, 1_100, config, "u", settled) == pending  # 1_000 + 100 is not < 1_100
    rest = close(pending, 1_101, config, "u", settled)
    assert [p.decision_id for p in rest] == ["d2"]
    assert [(r.decision.decision_id, r.reward, r.resolved_at_ms) for r in settled] == [
        ("d1", 0.05, 1_101)
    ]
    close(rest, 1_151, config, "u", settled)
    assert settled[-1].reward == 0.3


def test_a_choice_on_an_event_later_than_its_reward_window_waits_for_no_reward() -> None:
    """The user's own clock has closed the window of a choice made on a very late event: it is
    a start (the guardrails count it) but not a pending decision, which would be settled at
    once with the default reward and teach the bandit that late events earn nothing."""
    window, grace = CFG.policy.rewards.window_ms, CFG.features.grace_ms
    profile, _ = step(None, page(user="late", ts=T0), RULES)
    profile, _ = step(profile, add("p1", 20.0, user="late", ts=T0 + 2 * 60 * M), RULES)
    pending = list(profile.decisions)
    late_at = T0 + 10 * M
    assert late_at + window < profile.last_seen_ms - grace  # type: ignore[operator]
    profile, out = step(profile, page(user="late", ts=late_at), RULES)
    (decision,) = out.decisions
    assert (decision.action, decision.reasons[0].rule) == ("remind_cart", "priority")
    assert profile.starts[-1] == ("remind_cart", late_at)
    assert profile.decisions == pending
    # just inside the window, the same choice waits for its reward
    profile, _ = step(None, page(user="ok", ts=T0), RULES)
    profile, _ = step(profile, add("p1", 20.0, user="ok", ts=T0 + 40 * M), RULES)
    profile, _ = step(profile, page(user="ok", ts=T0 + 15 * M), RULES)
    assert profile.decisions[-1].action == "remind_cart"


def test_require_exposure_makes_the_learner_skip_unexposed_rewards() -> None:
    strict = PolicyConfig(
        variants=(Variant(name="bandit", share=1.0, kind="bandit"),),
        rewards=RewardConfig(require_exposure=True),
    )
    learner = PolicyLearner(strict, 0)
    shown = PendingDecision("d1", "remind_cart", "bandit", 0, 0.5, (1.0,) * 8, 1.0, (), True)
    hidden = shown._replace(decision_id="d2", exposed=False)
    learner.learn(Reward("u", hidden, 1.0, 10), strict)
    bandit = learner.bandit("bandit")
    assert bandit is not None
    assert (learner.unexposed, bandit.n_updates, learner.stats.count("bandit")) == (1, 0, 0)
    learner.learn(Reward("u", shown, 1.0, 10), strict)
    assert (learner.unexposed, bandit.n_updates, learner.stats.count("bandit")) == (1, 1, 1)
    # Without require_exposure, both are learned.
    lax = strict.model_copy(update={"rewards": RewardConfig()})
    other = PolicyLearner(lax, 0)
    other.learn(Reward("u", hidden, 1.0, 10), lax)
    assert (other.unexposed, other.stats.count("bandit")) == (0, 1)


def test_rewards_are_joined_in_event_time_through_the_step() -> None:
    """Shown, clicked by id, then an order: the decision earns the order; the window is closed
    by the user's own clock once it is grace past the window's end."""
    user = "rewarded"
    grace = RULES.features.grace_ms
    profile, _ = step(None, add("p1", 20.0, user=user, ts=T0), RULES)
    profile, out = step(profile, page(user=user, ts=T0 + M), RULES)
    did = out.decisions[0].decision_id
    props = {"decision_id": did}
    for i, name in enumerate(("Decision Shown", "Decision Clicked", "Order Completed"), start=2):
        profile, out = step(profile, ev(name, props, user=user, ts=T0 + i * M), RULES)
        assert out.rewards == ()
    (mine,) = [p for p in profile.decisions if p.decision_id == did]
    assert mine.exposed and mine.reward == 1.0
    assert mine.outcomes == ("Decision Clicked", "Order Completed")
    end = T0 + M + RC.window_ms + grace
    profile, out = step(profile, page(user=user, ts=end), RULES)  # not strictly past yet
    assert did not in {r.decision.decision_id for r in out.rewards}
    profile, out = step(profile, page(user=user, ts=end + 1), RULES)
    (reward,) = [r for r in out.rewards if r.decision.decision_id == did]
    assert (reward.reward, reward.decision.exposed, reward.resolved_at_ms) == (
        1.0,
        True,
        end + 1 - grace,
    )
    assert reward.to_dict()["outcomes"] == ["Decision Clicked", "Order Completed"]


def test_replay_settles_rewards_in_log_order_each_decision_once(
    synthetic_lines: list[bytes],
) -> None:
    """Every user comes back once, far later: every earlier window closes. Each decision is
    settled at most once, after it was made in the output order, and every new choice is
    settled, still pending (the tail's own) or dropped for max_pending."""
    users = sorted(
        {
            orjson.loads(line).get("userId") or orjson.loads(line)["anonymousId"]
            for line in synthetic_lines
        }
    )
    end = T0 + 10 * DAY_MS
    tail = [
        orjson.dumps(
            {"type": "page", "messageId": f"end-{u}", "anonymousId": u, "timestamp": ms_to_iso(end)}
        )
        for u in users
    ]
    profiles: dict[str, Profile] = {}
    outputs = list(replay_outputs([*synthetic_lines, *tail], RULES, profiles))
    decided: dict[str, int] = {}
    settled: list[str] = []
    for i, output in enumerate(outputs):
        if isinstance(output, Decision):
            decided[output.decision_id] = i
        elif isinstance(output, Reward):
            assert decided[output.decision.decision_id] < i
            settled.append(output.decision.decision_id)
    assert len(settled) == len(set(settled)) > 100
    decisions = [o for o in outputs if isinstance(o, Decision)]
    new = [d for d in decisions if d.reasons[0].rule not in (*FORCED, "sticky")]
    assert set(settled) <= {d.decision_id for d in new}
    pending = {p.decision_id for prof in profiles.values() for p in prof.decisions}
    assert pending <= {d.decision_id for d in new if d.event_time_ms == end}
    dropped = {d.decision_id for d in new} - set(settled) - pending
    assert len(dropped) <= len(new) // 20, len(dropped)  # max_pending drops are rare


# -- determinism and snapshots -----------------------------------------------------------------


def test_the_same_log_replays_to_identical_bytes_and_snapshots_round_trip(
    synthetic_lines: list[bytes],
) -> None:
    config = StepConfig(
        policy=PolicyConfig(
            variants=(Variant(name="bandit", share=1.0, kind="bandit", exploration=0.3),)
        )
    )
    once, twice = replay(synthetic_lines, config), replay(synthetic_lines, config)
    assert [d.to_bytes() for d in once.decisions] == [d.to_bytes() for d in twice.decisions]
    assert [r.to_bytes() for r in once.rewards] == [r.to_bytes() for r in twice.rewards]
    assert once.rewards
    assert sorted(once.learners) == sorted(twice.learners)
    for part, learner in once.learners.items():
        data = learner.to_bytes()
        assert data == twice.learners[part].to_bytes()
        assert PartitionLearner.from_bytes(data, config).to_bytes() == data
        policy = orjson.loads(data)["policy"]
        assert policy["bandits"]["bandit"] == learner.policy.bandits["bandit"].to_state()
        assert learner.policy.bandits["bandit"].n_updates > 0
        assert learner.policy.stats.count("bandit") > 0
    for profile in once.profiles.values():
        assert Profile.from_bytes(profile.to_bytes()).to_bytes() == profile.to_bytes()


def test_the_readmes_policy_file_is_the_default_policy() -> None:
    """The README shows the default policy as a file: it must load, and be the default (but
    for the actions' descriptions, which it leaves out)."""
    text = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    start = text.index('{"version": "nba-v1",')
    shown = PolicyConfig.model_validate_json(text[start : text.index("```", start)])

    def without_descriptions(policy: PolicyConfig) -> PolicyConfig:
        actions = tuple(a.model_copy(update={"description": ""}) for a in policy.catalog.actions)
        catalog = policy.catalog.model_copy(update={"actions": actions})
        return policy.model_copy(update={"catalog": catalog})

    assert without_descriptions(shown) == without_descriptions(DEFAULT_POLICY)

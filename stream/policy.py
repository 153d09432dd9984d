"""The next-best-action policy: eligibility, guardrails, consent, experiments and exploration.

For every event the policy decides, in this order:

1. **Variant**: the user's experiment variant, by a hash of their key (sticky, see
   :mod:`stream.experiments`).
2. **Forced default**: a user who opted out of personalization, or an event that is a purchase
   step (the catalog's ``quiet_events``), gets the default action; no choice is made, so nothing
   is learned from it.
3. **Eligibility**: each catalog action's conditions (:mod:`stream.actions`), then its frequency
   caps and cooldown (:mod:`stream.guardrails`). The default action is always eligible. Every
   action that is not eligible says why, in the decision's alternatives.
4. **Session consistency**: the action of the user's previous new choice in this session and
   variant is *running*. If the set of actions whose conditions hold is the same as then (so the
   running one's still do), the running action is kept (``sticky``; propensity 1): the context
   changed *materially* exactly when that set changed (a cart filled or emptied, a model score
   crossed an eligibility threshold) or a new session began. A sticky decision is not a start
   and waits for no reward of its own: it is the same offer, still showing. When the context did
   change, the running action stays eligible despite its own caps and cooldown (they limit new
   starts; choosing it again is not one).
5. **Choice**, by the variant's kind: ``default`` (holdout) the default action; ``priority`` the
   highest-priority eligible action; ``bandit`` the eligible action with the highest predicted
   reward in this context, or with probability ``exploration`` one drawn uniformly among the
   eligible actions. The draw is seeded by the decision id, so a replay draws the same. Every
   decision logs the probability it had of choosing what it chose (``propensity``) and each
   alternative's, which is what off-policy evaluation needs (:mod:`stream.ope`).
6. A new choice is recorded as a start (for the guardrails) and as a pending decision whose
   reward is joined in event time (:mod:`stream.rewards`).
"""

from __future__ import annotations

from collections.abc import Mapping
from math import log1p
from typing import Any, NamedTuple

from stream.actions import ActionSpec, eligibility, read_value, resolve_params
from stream.bandit import LinearBandit, epsilon_schedule, uniform_from
from stream.config import StepConfig
from stream.decision import Alternative, Decision, Reason, Scalar, decision_id
from stream.events import Event
from stream.experiments import VariantAssigner
from stream.guardrails import blocked, late_limit, record_start
from stream.memo import PerObject
from stream.policyconfig import PolicyConfig, Variant
from stream.policylearner import CONTEXT_NAMES, PolicyLearner
from stream.profile import Profile
from stream.rewards import PendingDecision

__all__ = ["NOTE_DECISION_DROPPED", "context_vector", "decide", "model_scores"]

#: A user had ``max_pending`` decisions waiting for rewards; the oldest was dropped unlearned.
NOTE_DECISION_DROPPED = "decision_dropped"

#: The feature vector the policy reads (see stream.features.feature_vector).
Features = Mapping[str, Any]
#: The model scores conditions and the context read, by target (:func:`model_scores`).
Scores = Mapping[str, float] | None


def context_vector(features: Features, scores: Scores) -> tuple[float, ...]:
    """The bandit's context (:data:`~stream.policylearner.CONTEXT_NAMES`), each roughly in [0, 1],
    from the features and the model scores (:func:`model_scores`).

    Rounded to 6 decimals: it is stored with every pending decision, and the bandit needs no more.
    """
    scores = scores or {}
    values = (
        1.0,
        scores.get("conversion", 0.0),
        scores.get("abandonment") or 0.0,
        1.0 if features["cart_lines"] > 0 else 0.0,
        min(log1p(max(features["cart_value"], 0.0)) / 7.0, 1.5),
        1.0 if features["known_user"] else 0.0,
        min(features["session_events"], 50) / 50.0,
        min(features["views_since_add"], 10) / 10.0,
    )
    return tuple(round(float(v), 6) for v in values)


def model_scores(predictions: Mapping[str, Any] | None) -> Scores:
    """The probabilities conditions and the context read (``score.conversion``, ...), from the
    decision's predictions; ``None`` without models, and no abandonment score without a cart."""
    if predictions is None:
        return None
    scores = {"conversion": predictions["conversion"]["p"]}
    if predictions.get("abandonment") is not None:
        scores["abandonment"] = predictions["abandonment"]["p"]
    return scores


class _Options(NamedTuple):
    """What the policy could do for this event."""

    #: Each action (priority order) with why its conditions fail and why its guardrails block
    #: a new start (``None``: they do not).
    verdicts: list[tuple[str, str | None, str | None]]
    #: The actions whose conditions hold.
    allowed: tuple[str, ...]
    #: The actions it may choose now: allowed, and free to start (or running already).
    eligible: tuple[str, ...]
    #: The action of the user's last new choice in this session and variant, if any.
    running: str | None


class _Choice(NamedTuple):
    action: str
    propensity: float
    #: Each eligible action's probability of being chosen.
    probabilities: dict[str, float]
    #: (rule, detail): how it was chosen.
    how: tuple[str, str]


def decide(
    profile: Profile,
    features: Features,
    event: Event,
    config: StepConfig,
    versions: dict[str, Any],
    predictions: dict[str, Any] | None = None,
    learner: PolicyLearner | None = None,
    notes: list[str] | None = None,
) -> Decision:
    """The decision for ``profile`` right after it absorbed ``event`` (updates the profile's
    policy state: starts, the last choice, pending decisions)."""
    policy = config.policy
    did = decision_id(policy.version, event.user_key, event.message_id)
    variant = _variant(policy, event.user_key)
    forced = _forced(profile, event, policy)
    scores = model_scores(predictions)
    options = _options(profile, features, event, policy, variant, scores, forced)
    bandit = _bandit_of(variant, learner, policy)
    context = context_vector(features, scores)
    scored = (
        dict(zip(options.allowed, bandit.scores(list(context), options.allowed), strict=True))
        if bandit
        else {}
    )
    kept = None if forced is not None else _kept(profile, options)
    if kept is not None:
        choice = _Choice(kept, 1.0, {kept: 1.0}, ("sticky", _STICKY))
        pending_id = profile.choice[4] if profile.choice is not None else None
    else:
        choice = _choose(policy, variant, options.eligible, bandit, context, did, forced)
        pending_id = None
        if forced is None:
            pending_id = _remember(
                profile, features, event, config, variant, options, choice, context, did, notes
            )
    block = {
        "version": learner.version_of(variant.name) if learner else policy.version,
        "kind": variant.kind,
        "exploration_rate": _epsilon(variant, bandit),
        "explored": choice.how[0] == "bandit_explore",
        "sticky": kept is not None,
        # What exposures and outcomes should name as their decision_id: this decision when it
        # waits for a reward, the running one when this one only keeps its action (sticky).
        "pending_id": pending_id,
        "eligible": list(options.eligible),
        "scores": scored,
        "context": dict(zip(CONTEXT_NAMES, context, strict=True)),
    }
    spec = _spec(policy, choice.action)
    return Decision(
        did,
        event.user_key,
        profile.user_id,
        profile.anonymous_id,
        event.message_id,
        event.name,
        event.timestamp_ms,
        choice.action,
        scored.get(choice.action, 0.0),
        round(choice.propensity, 12),
        variant.name,
        resolve_params(spec, features),
        _alternatives(options, choice, scored),
        (
            Reason(choice.how[0], choice.how[1], {}),
            _eligibility_reason(spec, features, event, scores),
        ),
        versions,
        predictions,
        block,
    )


def _options(
    profile: Profile,
    features: Features,
    event: Event,
    policy: PolicyConfig,
    variant: Variant,
    scores: Scores,
    forced: tuple[str, str] | None,
) -> _Options:
    verdicts = _verdicts(profile, features, event, policy, scores, forced)
    allowed = tuple(name for name, condition, _ in verdicts if condition is None)
    eligible = tuple(name for name, condition, guard in verdicts if condition is guard is None)
    running = _running(profile, features, variant)
    if running in allowed and running not in eligible:
        # The running action's own caps and cooldown limit new starts, not its continuation.
        eligible = tuple(name for name in allowed if name in eligible or name == running)
    return _Options(verdicts, allowed, eligible, running)


def _remember(
    profile: Profile,
    features: Features,
    event: Event,
    config: StepConfig,
    variant: Variant,
    options: _Options,
    choice: _Choice,
    context: tuple[float, ...],
    did: str,
    notes: list[str] | None,
) -> str | None:
    """Record a new choice in the profile (start, pending decision, running choice); return
    the id of the decision waiting for its reward, if this one waits."""
    policy = config.policy
    start = choice.action != options.running
    waits = _record(
        profile,
        event,
        policy,
        choice.action,
        variant.name,
        choice.propensity,
        context,
        did,
        start,
        config.features.grace_ms,
    )
    if len(profile.decisions) > policy.rewards.max_pending:
        del profile.decisions[0]
        if notes is not None:
            notes.append(NOTE_DECISION_DROPPED)
    session = features["sessions_total"]
    profile.choice = [choice.action, variant.name, session, list(options.allowed), did]
    return did if waits else None


def _alternatives(
    options: _Options, choice: _Choice, scored: Mapping[str, float]
) -> tuple[Alternative, ...]:
    """Every other action: its predicted reward, whether it was eligible (else why not: its
    conditions, or its guardrails), and its probability of being chosen."""
    eligible = options.eligible
    return tuple(
        Alternative(
            name,
            scored.get(name, 0.0),
            name in eligible,
            condition or (None if name in eligible else guard) or "eligible",
            round(choice.probabilities.get(name, 0.0), 12),
        )
        for name, condition, guard in options.verdicts
        if name != choice.action
    )


def _variant(policy: PolicyConfig, user_key: str) -> Variant:
    assign, variants = _assigner(policy)
    return variants[assign(user_key)]


_assigner: PerObject[PolicyConfig, tuple[VariantAssigner, dict[str, Variant]]] = PerObject(
    lambda policy: (
        VariantAssigner(policy.salt, [(v.name, v.share) for v in policy.variants]),
        {v.name: v for v in policy.variants},
    )
)


def _forced(profile: Profile, event: Event, policy: PolicyConfig) -> tuple[str, str] | None:
    """(rule, detail) when the user must get the default action whatever else holds."""
    if profile.consent is False:
        return "opted_out", "the user opted out of personalization"
    if event.name in policy.catalog.quiet_events:
        return "protect_purchase", f"{event.name!r} is a purchase step: never interrupt it"
    return None


def _verdicts(
    profile: Profile,
    features: Features,
    event: Event,
    policy: PolicyConfig,
    scores: Scores,
    forced: tuple[str, str] | None,
) -> list[tuple[str, str | None, str | None]]:
    """Each action (priority order) with why its conditions fail and why its guardrails block
    a new start (``None``: they do not)."""
    catalog = policy.catalog
    t = event.timestamp_ms
    latest = profile.last_seen_ms if profile.last_seen_ms is not None else t
    late_at = late_limit(latest, catalog)
    verdicts: list[tuple[str, str | None, str | None]] = []
    for index, spec in enumerate(catalog.actions):
        if spec.name == catalog.default_action:
            verdicts.append((spec.name, None, None))
            continue
        condition = (
            forced[0] if forced else eligibility(catalog, index, features, event.name, scores)
        )
        guard = None if condition else blocked(spec, profile.starts, t, late_at)
        verdicts.append((spec.name, condition, guard))
    return verdicts


def _running(profile: Profile, features: Features, variant: Variant) -> str | None:
    """The action of the user's previous new choice, if made in this session and variant."""
    previous = profile.choice
    if (
        previous is not None
        and previous[1] == variant.name
        and previous[2] == features["sessions_total"]
    ):
        return str(previous[0])
    return None


def _kept(profile: Profile, options: _Options) -> str | None:
    """The running action, if the context has not changed materially (see above)."""
    choice = profile.choice
    if options.running is not None and choice is not None and tuple(choice[3]) == options.allowed:
        return options.running
    return None


def _bandit_of(
    variant: Variant, learner: PolicyLearner | None, policy: PolicyConfig
) -> LinearBandit | None:
    if variant.kind != "bandit":
        return None
    bandit = learner.bandit(variant.name) if learner is not None else None
    return bandit if bandit is not None else _untrained(policy)[variant.name]


#: A bandit that learned nothing, per variant: what a step without a learner scores with.
_untrained: PerObject[PolicyConfig, dict[str, LinearBandit]] = PerObject(
    lambda policy: PolicyLearner(policy, -1).bandits
)


def _epsilon(variant: Variant, bandit: LinearBandit | None) -> float:
    if bandit is None:
        return 0.0
    return epsilon_schedule(variant.exploration, variant.exploration_decay_after, bandit.n_updates)


def _choose(
    policy: PolicyConfig,
    variant: Variant,
    eligible: tuple[str, ...],
    bandit: LinearBandit | None,
    context: tuple[float, ...],
    did: str,
    forced: tuple[str, str] | None,
) -> _Choice:
    """A new choice (or the forced default)."""
    default = policy.catalog.default_action
    if forced is not None:
        return _Choice(default, 1.0, {default: 1.0}, forced)
    if variant.kind == "default":
        return _Choice(
            default, 1.0, {default: 1.0}, ("holdout", f"variant {variant.name!r}: default")
        )
    if variant.kind == "priority" or bandit is None:
        action = eligible[0]
        return _Choice(action, 1.0, {action: 1.0}, ("priority", _PRIORITY))
    epsilon = _epsilon(variant, bandit)
    choice = bandit.pull(list(context), eligible, epsilon, uniform_from(policy.seed, did))
    probabilities = dict(zip(eligible, choice.probabilities, strict=True))
    if choice.explored:
        detail = f"explored: drawn uniformly among {len(eligible)} eligible (rate {epsilon:g})"
        return _Choice(choice.action, choice.propensity, probabilities, ("bandit_explore", detail))
    detail = f"highest predicted reward ({max(choice.scores):.4f}) in this context"
    return _Choice(choice.action, choice.propensity, probabilities, ("bandit_greedy", detail))


_STICKY = "same session, same eligible actions: the previous decision's action is kept"
_PRIORITY = "the highest-priority eligible action"


def _record(
    profile: Profile,
    event: Event,
    policy: PolicyConfig,
    action: str,
    variant: str,
    propensity: float,
    context: tuple[float, ...],
    did: str,
    start: bool,
    grace_ms: int,
) -> bool:
    """A new choice waits for its reward (``True``); unless it continues the running action (or
    is the default, which has no guardrails), it is also a start the caps and cooldowns count.

    A choice made on an event so late that the user's own clock has already closed its reward
    window waits for nothing: it would be settled at once with the default reward, and teach
    the bandit that whatever late events get earns nothing.
    """
    t = event.timestamp_ms
    latest = max(t, profile.last_seen_ms or t)
    if start and action != policy.catalog.default_action:
        profile.starts = record_start(profile.starts, action, t, latest, policy.catalog)
    if t + policy.rewards.window_ms < latest - grace_ms:
        return False
    pending = PendingDecision(did, action, variant, t, propensity, context, None, (), False)
    profile.decisions = [*profile.decisions, pending]
    return True


def _spec(policy: PolicyConfig, action: str) -> ActionSpec:
    return _specs(policy)[action]


_specs: PerObject[PolicyConfig, dict[str, ActionSpec]] = PerObject(
    lambda policy: {spec.name: spec for spec in policy.catalog.actions}
)


def _eligibility_reason(
    spec: ActionSpec, features: Features, event: Event, scores: Scores
) -> Reason:
    """The conditions that made the chosen action eligible, with the values they saw."""
    if not spec.when:
        return Reason("eligible", f"{spec.name!r} is always eligible", {})
    used: dict[str, Scalar] = {}
    for condition in spec.when:
        value = read_value(condition.feature, features, event.name, scores)
        used[condition.feature] = round(value, 4) if isinstance(value, float) else value
    detail = " and ".join(
        f"{c.feature} {c.op} {list(c.value) if isinstance(c.value, tuple) else c.value}"
        for c in spec.when
    )
    return Reason("eligible", f"{spec.name!r} is eligible: {detail}", used)

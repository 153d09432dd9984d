"""The whole behaviour: ``step(profile, event, config) -> (profile, outputs)``.

Pure and synchronous: the agents, offline replay and the tests all call this one function. Its
result depends only on the profile, the event and the configuration (no clock, no I/O, no
global state).

The step takes ownership of the profile it is given and returns it updated (the same object):
copying a profile with its windows, sessions and affinities on every event cost more than
computing the features. A caller that may need the previous value keeps its bytes
(:meth:`Profile.to_bytes`) and restores it from them; the adapter does exactly that when a step
fails halfway (see ``agents.batch``).

Idempotence, in two layers:

* **redelivery**: a record whose source offset is at or below the profile's last applied offset
  for that topic partition was already applied (a worker crashed after writing state but before
  committing its offset) and is skipped;
* **duplicates**: an event whose ``messageId`` is among the profile's recently applied ids
  (an SDK retry, a producer resend) is applied once.

Skipped events produce no decision: the decision for the first application already went out,
with the same deterministic id.

**Consent.** An event that opts the user out of personalization, and every event while they
are opted out, reduces the profile to its consent record and gets the default action: nothing
of it reaches features, labels, models or the bandit (:mod:`stream.consent`).

**Models.** The step reads its partition's models (to score) but never updates them: it returns
the labels this event resolved (``examples``) and the inputs of the pending label it made, and the
partition's learner (:mod:`stream.partition`) learns from them in log order. The profile's
pending labels do not depend on the models at all, so a profile equals its offline replay even
where a crash made a model differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from stream.config import StepConfig
from stream.consent import consent_of, withhold
from stream.decision import Decision
from stream.events import Event, message_fingerprint
from stream.eviction import idle_too_long, reset_after_idle
from stream.features import apply_event, count_key, feature_vector
from stream.labels import Example
from stream.memo import PerObject
from stream.models.predict import label_and_predict
from stream.policy import decide
from stream.profile import Profile
from stream.rewards import Reward, close, credit, expose

if TYPE_CHECKING:
    from stream.models.learner import PartitionModels
    from stream.policylearner import PolicyLearner

__all__ = [
    "NOTE_IDLE_RESET",
    "NOTE_OPTED_OUT",
    "SKIP_ALREADY_APPLIED",
    "SKIP_DUPLICATE",
    "StepOutputs",
    "message_fingerprint",
    "step",
]

SKIP_ALREADY_APPLIED = "already_applied"
SKIP_DUPLICATE = "duplicate"
#: The user had been idle beyond the horizon: the event started a fresh profile.
NOTE_IDLE_RESET = "idle_reset"
#: The user is opted out of personalization: the event was not applied (stream.consent).
NOTE_OPTED_OUT = "opted_out"


@dataclass(frozen=True, slots=True)
class StepOutputs:
    """What one step produced: decisions, why it skipped the event (if it did), and notes."""

    decisions: tuple[Decision, ...] = ()
    skipped: str | None = None
    notes: tuple[str, ...] = ()
    #: Labels this event resolved, for the partition's learner (in order).
    examples: tuple[Example, ...] = ()
    #: Inputs of the pending label this event made (packed float32), if it made one.
    new_label: bytes | None = None
    #: Decisions whose reward window this event closed (for the policy's learner and the
    #: rewards topic), in order.
    rewards: tuple[Reward, ...] = ()
    #: The profile the event was applied to, when not its own key's (stream.identity).
    user_key: str | None = None


def step(
    profile: Profile | None,
    event: Event,
    config: StepConfig,
    models: PartitionModels | None = None,
    policy: PolicyLearner | None = None,
) -> tuple[Profile, StepOutputs]:
    """Apply ``event`` to ``profile`` (``None`` for a new user) and decide what to do next.

    ``models`` and ``policy`` are the event's partition's (read only); without models,
    decisions carry no predictions, and without the policy's learner its bandits are untrained.
    """
    current = profile if profile is not None else Profile(user_key=event.user_key)
    source = event.source
    if source is not None:
        position = source.key  # "topic:partition", formatted once
        if current.applied.get(position, -1) >= source.offset:
            return current, StepOutputs(skipped=SKIP_ALREADY_APPLIED)
        current.applied[position] = source.offset
    fingerprint = message_fingerprint(event.message_id)
    if fingerprint in current.recent_messages:
        return current, StepOutputs(skipped=SKIP_DUPLICATE)
    notes: list[str] = []
    if idle_too_long(current.last_seen_ms, event.timestamp_ms, config.features):
        reset_after_idle(current)
        notes.append(NOTE_IDLE_RESET)
    _remember_message(current, fingerprint, config.dedupe_window)
    consent = consent_of(event, config.policy.consent_category)
    if consent is False or (consent is None and current.consent is False):
        return current, _opted_out(current, event, config)
    current.consent = consent if consent is not None else current.consent
    previous_seen = current.last_seen_ms
    notes.extend(apply_event(current, event, config, fingerprint))
    features = feature_vector(current, config)
    examples: list[Example] = []
    new_label, predictions = label_and_predict(
        current, event, features, config, previous_seen, models, examples, notes
    )
    versions = (
        _versions(config) if models is None else {**_versions(config), "models": models.versions()}
    )
    rewards = _join_rewards(current, event, config) if current.decisions else ()
    decision = decide(current, features, event, config, versions, predictions, policy, notes)
    # Kept under the bounded event name (unknown track names as ``track:other``): the client's
    # free text is not stored (stream.features.count_key).
    name = count_key(event)
    current.last_decision = decision if name == event.name else decision._replace(event_name=name)
    return current, StepOutputs(
        decisions=(decision,),
        notes=tuple(notes),
        examples=tuple(examples),
        new_label=new_label,
        rewards=rewards,
    )


def _opted_out(profile: Profile, event: Event, config: StepConfig) -> StepOutputs:
    """The step for a user who opted out: the profile stays a consent record (stream.consent),
    the decision is the default action, and nothing reaches the models or the bandit."""
    withhold(profile, event.timestamp_ms)
    features = feature_vector(profile, config)
    decision = decide(profile, features, event, config, _versions(config))
    return StepOutputs(decisions=(decision,), notes=(NOTE_OPTED_OUT,))


def _join_rewards(profile: Profile, event: Event, config: StepConfig) -> tuple[Reward, ...]:
    """Join the event to the user's pending decisions; settle those whose window it closed.

    The user's own clock settles them once it is ``grace_ms`` past the window (the latest
    event an in-order outcome may still come from); the partition's clock settles the rest.
    """
    rc = config.policy.rewards
    named = event.properties.get("decision_id") if event.properties else None
    named = named if isinstance(named, str) else None
    decisions = profile.decisions
    if event.name == rc.exposure_event:
        decisions = expose(decisions, named)
    decisions = credit(decisions, event.name, named, event.timestamp_ms, rc)
    settled: list[Reward] = []
    now = (profile.last_seen_ms or event.timestamp_ms) - config.features.grace_ms
    profile.decisions = close(decisions, now, rc, profile.user_key, settled)
    return tuple(settled)


def _remember_message(profile: Profile, fingerprint: int, window: int) -> None:
    recent = profile.recent_messages
    recent.append(fingerprint)
    if len(recent) > window:
        del recent[: len(recent) - window]


#: The versions a decision names, one dict per config object (decisions only read it).
_versions: PerObject[StepConfig, dict[str, str]] = PerObject(
    lambda config: {"policy": config.policy.version, "features": config.feature_version}
)

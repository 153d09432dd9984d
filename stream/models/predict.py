"""The step's model part: resolve the user's pending labels, score, and maybe make a new label.

Kept apart from :mod:`stream.step` so the step reads as the short list of what happens to an
event. Everything here is a function of the profile and the event, except the scores, which also
read the partition's models (never write them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stream.config import StepConfig
from stream.events import Event
from stream.labels import (
    ALL_TARGETS,
    WITHOUT_CART,
    Example,
    PendingLabel,
    expire,
    pack_inputs,
    resolve_outcome,
)
from stream.models.hygiene import clean_inputs
from stream.models.inputs import model_inputs
from stream.profile import Profile
from stream.sanitize import clean_text

if TYPE_CHECKING:
    from stream.models.learner import BinaryScore, PartitionModels, Scores

__all__ = ["NOTE_INPUTS_CLEANED", "NOTE_LABEL_DROPPED", "describe_input", "label_and_predict"]

#: A model input was NaN, infinite or absurdly large and was replaced before any model saw it.
NOTE_INPUTS_CLEANED = "model_inputs_cleaned"
#: A user had ``max_pending_labels`` unresolved labels; the oldest was dropped unlearned.
NOTE_LABEL_DROPPED = "label_dropped"


def label_and_predict(
    profile: Profile,
    event: Event,
    features: Mapping[str, Any],
    config: StepConfig,
    previous_seen_ms: int | None,
    models: PartitionModels | None,
    examples: list[Example],
    notes: list[str],
) -> tuple[bytes | None, dict[str, Any] | None]:
    """Resolve labels (appending to ``examples``), score; return (new label's inputs, predictions).

    Called after the event was folded into ``profile``.
    """
    mc = config.models
    t = event.timestamp_ms
    now = profile.last_seen_ms if profile.last_seen_ms is not None else t
    labels = profile.labels
    # Kept in the pending label: a withheld category (stream.config.stored_properties) is absent.
    category = (
        clean_text(event.properties.get("category"), config.max_text_length)
        if event.properties and "category" in config.stored_properties
        else None
    )
    if labels:
        horizon = mc.conversion_horizon_ms
        labels = expire(
            labels, now, previous_seen_ms, horizon, config.features.session_gap_ms, examples
        )
        labels = resolve_outcome(labels, event.name, category, t, horizon, examples)
    in_order = previous_seen_ms is None or t >= previous_seen_ms
    # A cart action is a new situation (and the only way into cart abandonment's labels), so it
    # makes a label however recent the last one is.
    make_label = in_order and (
        profile.last_label_ms is None
        or t - profile.last_label_ms >= mc.label_every_ms
        or event.name in CART_ACTIONS
    )
    predictions: dict[str, Any] | None = None
    new_label: bytes | None = None
    if models is not None or make_label:
        inputs, fixed = clean_inputs(model_inputs(config.features.catalog).vector(features))
        if fixed:
            notes.append(NOTE_INPUTS_CLEANED)
        candidates = _candidates(features["category_affinities"])
        cart = features["cart_lines"] > 0
        if models is not None:
            flags = model_inputs(config.features.catalog).flags
            predictions = _predictions(models.score(inputs, candidates, category, cart), flags)
        if make_label:
            new_label = pack_inputs(inputs)
            session_start = now - features["ms_since_session_start"]
            targets = ALL_TARGETS if cart else WITHOUT_CART
            label = PendingLabel(t, session_start, new_label, targets, candidates, category)
            labels = [*labels, label]
            if len(labels) > mc.max_pending_labels:
                del labels[0]
                notes.append(NOTE_LABEL_DROPPED)
            profile.last_label_ms = t
    profile.labels = labels
    return new_label, predictions


#: Events that make a pending label even within ``label_every_ms`` of the previous one.
CART_ACTIONS = frozenset({"Product Added"})

#: Categories a next-category prediction considers beyond those the model knows.
CANDIDATES = 5


def _candidates(affinities: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    """The user's strongest category affinities (ties by name), as kept with a label."""
    ranked = sorted(affinities.items(), key=lambda pair: (-pair[1], pair[0]))
    return tuple(ranked[:CANDIDATES])


def _predictions(scores: Scores, flags: frozenset[str]) -> dict[str, Any]:
    return {
        "conversion": _binary(scores.conversion, "conversion", flags),
        "abandonment": None
        if scores.abandonment is None
        else _binary(scores.abandonment, "cart abandonment", flags),
        "next_category": {
            "top": [list(pair) for pair in scores.next_category],
            "model": scores.next_category_model,
        },
    }


def _binary(score: BinaryScore, target: str, flags: frozenset[str]) -> dict[str, Any]:
    return {
        "p": score.probability,
        "model": score.model,
        "why": [
            {
                "input": name,
                "contribution": contribution,
                "says": f"{_state_of(name, above, name in flags)}"
                f" {'raises' if contribution > 0 else 'lowers'}"
                f" the {target} chance",
            }
            for name, contribution, above in score.top_inputs
        ],
    }


def _state_of(name: str, above: bool, flag: bool) -> str:
    """What an input says about the user: yes/no for a flag (a flag is above its average
    exactly when it is set), above/below average otherwise.

    >>> _state_of("weekend", True, flag=True), _state_of("log_cart_value", False, flag=False)
    ('weekend: yes', 'cart value below average')
    """
    if flag:
        return f"{describe_input(name)}: {'yes' if above else 'no'}"
    return f"{describe_input(name)} {'above' if above else 'below'} average"


def describe_input(name: str) -> str:
    """A model input's name in words.

    >>> describe_input("log_product_viewed_count_1h")
    'product viewed count (1h)'
    >>> describe_input("log_since_product_added_s")
    'time since product added'
    >>> describe_input("never_order_completed")
    'never order completed'
    """
    words = name.removeprefix("log_").removesuffix("_s")
    if words.startswith("since_"):
        words = "time " + words
    parts = words.split("_")
    if parts[-1] in _WINDOW_LABELS:
        return " ".join(parts[:-1]) + f" ({parts[-1]})"
    return " ".join(parts)


_WINDOW_LABELS = frozenset({"1m", "10m", "1h", "24h", "7d"})

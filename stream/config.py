"""Configuration of the pure step: frozen, validated, passed in explicitly (never read from env)."""

from __future__ import annotations

from dataclasses import dataclass

from stream.catalog import DEFAULT_CATALOG, Catalog
from stream.exceptions import ConfigError
from stream.policyconfig import DEFAULT_POLICY, PolicyConfig
from stream.windows import DAY_MS, MINUTE_MS

__all__ = [
    "DEFAULT_STORED_PROPERTIES",
    "STEP_PROPERTIES",
    "FeatureConfig",
    "ModelConfig",
    "PolicyConfig",
    "StepConfig",
    "parse_properties",
    "readable_properties",
]

#: The event properties the step itself reads (and may keep in a profile), whatever the feature
#: catalog: the product of cart lines and affinities (stream.features._moment), the order's
#: revenue (lifetime total), the category a pending label names (stream.models.predict).
#: ``sku`` and ``total`` are Segment's alternatives, read when an event lacks ``product_id`` or
#: ``revenue`` (stream.features.CleanProperties). ``decision_id`` is not one of them: it is only
#: matched against the decisions a profile already holds, never kept from the event.
STEP_PROPERTIES = frozenset(
    {"product_id", "sku", "category", "brand", "price", "quantity", "revenue", "total"}
)


def readable_properties(catalog: Catalog) -> frozenset[str]:
    """Every property some feature reads: the step's own and the catalog's windowed fields."""
    return STEP_PROPERTIES | {spec.field for spec in catalog.windowed if spec.field is not None}


#: Everything the default features read: with it, profiles are what they were before there was
#: an allow-list (the golden files check it).
DEFAULT_STORED_PROPERTIES = readable_properties(DEFAULT_CATALOG)


def parse_properties(text: str) -> frozenset[str]:
    """An allow-list as an operator writes it: comma-separated names, blanks ignored (so an
    empty text allows no property at all).

    >>> sorted(parse_properties(" price, category,,"))
    ['category', 'price']
    """
    return frozenset(name.strip() for name in text.split(",") if name.strip())


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    """Which features, and the time rules they follow (all durations in event-time ms)."""

    catalog: Catalog = DEFAULT_CATALOG
    #: Inactivity that ends a session (Segment and most analytics tools use 30 minutes).
    session_gap_ms: int = 30 * MINUTE_MS
    #: How late (behind the user's latest event) an event may arrive and still be placed in
    #: order; later ones are "late" (see stream.ordered).
    grace_ms: int = 2 * MINUTE_MS
    affinity_half_life_ms: int = 7 * DAY_MS
    affinity_top_k: int = 10
    #: A user idle longer than this (event time) starts again from a fresh profile, and the
    #: adapter may delete idle profiles once its partition's watermark is this far past them
    #: (plus ``eviction_margin_ms``); see stream.eviction.
    idle_horizon_ms: int = 30 * DAY_MS
    #: Extra event time the partition watermark must be past an idle profile before the adapter
    #: deletes it: only an event this much behind the watermark could still tell the difference.
    eviction_margin_ms: int = DAY_MS

    def __post_init__(self) -> None:
        for name in (
            "session_gap_ms",
            "affinity_half_life_ms",
            "affinity_top_k",
            "idle_horizon_ms",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        if self.grace_ms < 0 or self.eviction_margin_ms < 0:
            raise ConfigError("grace_ms and eviction_margin_ms must be >= 0")
        if self.idle_horizon_ms <= 7 * DAY_MS:
            # Shorter would wipe the 7-day windows and session history of a weekly visitor.
            raise ConfigError("idle_horizon_ms must be longer than the 7-day features")


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """The online models (see :mod:`stream.models` and the label rules in :mod:`stream.labels`)."""

    #: Names the model family in every decision and in the learners' snapshots: change it when
    #: the inputs, targets or learners change, so old snapshots are not read as new ones.
    version: str = "models-v2"
    #: Conversion: an order within this much event time after the prediction.
    conversion_horizon_ms: int = 30 * MINUTE_MS
    #: At most one pending label per user per this much event time (see stream.labels).
    label_every_ms: int = 5 * MINUTE_MS
    max_pending_labels: int = 8
    #: How far behind the partition's event time the label clock runs: a label is resolved
    #: by the clock only once events this late can no longer change it.
    label_lateness_ms: int = 2 * MINUTE_MS
    learning_rate: float = 0.02
    #: Labels a binary model must have learned before a decision explains its score by the
    #: model's inputs (before that the blend leans on the cold-start prior's segment rates).
    min_labels: int = 200
    #: SGD step of the blend of the cold-start prior and the model (stream.models.prior).
    blend_learning_rate: float = 0.02
    next_category_classes: int = 16
    #: Categories reported in a decision's next-category prediction.
    top_k: int = 3
    #: Features named in each prediction's explanation.
    explain_top: int = 3

    def __post_init__(self) -> None:
        for name in (
            "conversion_horizon_ms",
            "label_every_ms",
            "max_pending_labels",
            "next_category_classes",
            "top_k",
            "explain_top",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        if self.label_lateness_ms < 0 or self.min_labels < 0:
            raise ConfigError("label_lateness_ms and min_labels must be >= 0")
        if not 0 < self.learning_rate < 1:
            raise ConfigError("learning_rate must be in (0, 1)")
        if not 0 <= self.blend_learning_rate < 1:
            raise ConfigError("blend_learning_rate must be in [0, 1)")


@dataclass(frozen=True, slots=True)
class StepConfig:
    """Everything the step's behaviour depends on, besides the profile and the event."""

    feature_version: str = "features-v2"
    features: FeatureConfig = FeatureConfig()
    policy: PolicyConfig = DEFAULT_POLICY
    models: ModelConfig = ModelConfig()
    #: How many recent message ids each profile remembers to apply duplicates once.
    dedupe_window: int = 64
    max_cart_lines: int = 50
    max_price: float = 1_000_000.0
    max_quantity: int = 1000
    max_text_length: int = 100
    #: Data minimization: the event properties the step may read, hence keep in a profile. A
    #: property not listed reads as absent from every event (CleanProperties): it is never
    #: stored and never moves a feature (quantity: absent means 1, Segment's default). Aliases
    #: are separate names: without ``sku``, an event lacking ``product_id`` has no product;
    #: without ``product_id``, ``sku`` is the product id (``revenue``/``total`` likewise).
    #: The allow-list governs the events folded from now on; it does not purge what stored
    #: profiles already hold.
    stored_properties: frozenset[str] = DEFAULT_STORED_PROPERTIES
    #: Identity stitching (stream.identity): an event linking two keys (``userId`` with
    #: ``anonymousId``, an ``alias`` call) merges the other key's history into the person's
    #: profile, and events carrying only the other key follow it there.
    stitch_identities: bool = False

    def __post_init__(self) -> None:
        for name in ("dedupe_window", "max_cart_lines", "max_quantity", "max_text_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        if not self.max_price > 0:
            raise ConfigError("max_price must be > 0")
        if not isinstance(self.stored_properties, frozenset):  # a set would make it unhashable
            raise ConfigError("stored_properties must be a frozenset of property names")
        # A name no feature reads would allow nothing: most likely a typo, which would otherwise
        # leave the property it meant withheld without a word. The converse, the catalog (or
        # the action catalog, through features) reading a property the list leaves out, is not
        # an error: that is how an operator withholds a property without editing the built-in
        # catalogs, and the features it feeds read as for events without it (0, None).
        readable = readable_properties(self.features.catalog)
        unread = self.stored_properties - readable
        if unread:
            raise ConfigError(
                f"stored_properties: no feature reads {', '.join(sorted(unread))}"
                f" (known: {', '.join(sorted(readable))})"
            )
        from stream.features import feature_names  # features import this module

        unknown = self.policy.catalog.unknown_features(feature_names(self))
        if unknown:
            raise ConfigError(f"the action catalog reads unknown features: {unknown}")

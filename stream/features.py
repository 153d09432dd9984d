"""Per-user behavioural features: folding an event in, and reading the feature vector out.

:func:`apply_event` folds one event into a profile the step owns (in place) and returns notes for
every value it refused or rule it applied (sanitized values, late events), so the adapter can
count them. :func:`feature_vector` reads every feature as of the user's latest event time:

* lifetime: counts by event name (bounded: unknown track names count as ``track:other``),
  orders and revenue, first/last seen;
* windows: the catalog's aggregates (:mod:`stream.catalog`, :mod:`stream.windowed`);
* recency: time since the last view, add to cart, checkout and order;
* sessions, cart, decayed category/brand affinities (:mod:`stream.ordered`);
* context: device, OS, locale, country, channel, local hour and weekday (:mod:`stream.context`).

Time rules: everything is event time. An event older than the user's latest event by more than
the grace period is *late*: counted (``note:late_event``), applied to order-free state only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from stream.catalog import slug
from stream.config import StepConfig
from stream.context import Context, read_context
from stream.events import Event, message_fingerprint
from stream.memo import PerObject
from stream.ordered import (
    SESSION_HISTORY_MS,
    Moment,
    OrderedConfig,
    OrderedState,
    admit,
    decay_factor,
    decayed,
    rebuild_head,
    settle,
)
from stream.profile import Profile
from stream.sanitize import clean_id, clean_price, clean_quantity, clean_text
from stream.windowed import add_event as add_to_windows
from stream.windowed import read_all

__all__ = [
    "COUNTED_EVENTS",
    "OTHER_TRACK",
    "RECENCY_EVENTS",
    "FeatureView",
    "apply_event",
    "count_key",
    "feature_vector",
    "group_of",
]

#: Segment e-commerce spec events counted under their own name.
COUNTED_EVENTS = frozenset(
    {
        "Products Searched",
        "Product List Viewed",
        "Product Viewed",
        "Product Clicked",
        "Product Added",
        "Product Removed",
        "Product Added to Wishlist",
        "Cart Viewed",
        "Checkout Started",
        "Order Completed",
        "Order Refunded",
        "Signed Up",
        "Signed In",
    }
)
OTHER_TRACK = "track:other"
#: Events whose last occurrence is a recency feature.
RECENCY_EVENTS = ("Product Viewed", "Product Added", "Checkout Started", "Order Completed")
#: (event name, its recency feature's name).
_RECENCY_KEYS = tuple((name, f"ms_since_{slug(name)}") for name in RECENCY_EVENTS)
_NUMERIC_FIELDS = frozenset({"price", "revenue"})

FeatureVector = dict[str, Any]


def count_key(event: Event) -> str:
    """The counter an event increments.

    >>> from stream.events import EventType
    >>> count_key(Event("m", EventType.TRACK, "Button Pressed", "u", 0))
    'track:other'
    """
    if event.type != "track" or event.name in COUNTED_EVENTS:
        return event.name
    return OTHER_TRACK


def apply_event(
    profile: Profile, event: Event, config: StepConfig, fingerprint: int | None = None
) -> list[str]:
    """Fold ``event`` into ``profile`` in place; return notes about refused values and rules.

    ``fingerprint`` is the event's :func:`~stream.events.message_fingerprint` when the caller
    already has it.
    """
    notes: list[str] = []
    t = event.timestamp_ms
    previous_latest = profile.last_seen_ms
    late = previous_latest is not None and t < previous_latest - config.features.grace_ms
    ordered = _ordered(config)
    props = CleanProperties(event.properties, config, notes)
    if fingerprint is None:
        fingerprint = message_fingerprint(event.message_id)
    _apply_identity(profile, event)
    _apply_lifetime(profile, event, props)
    _apply_windows(profile, event, config, props)
    _apply_context(profile, event, fingerprint)
    if late:
        profile.late_events += 1
        notes.append("late_event")
    else:
        profile.head = admit(
            profile.final,
            profile.head,
            profile.pending,
            _moment(event, fingerprint, props),
            ordered,
        )
    latest = profile.last_seen_ms or t
    settle(profile.final, profile.pending, latest - config.features.grace_ms, ordered)
    return notes


def feature_names(config: StepConfig) -> frozenset[str]:
    """The name of every feature (those of the window catalog included)."""
    return frozenset(FeatureView(Profile(user_key=""), config))


def feature_vector(profile: Profile, config: StepConfig) -> FeatureView:
    """Every feature, as of the user's latest event time (computed group by group on access)."""
    return FeatureView(profile, config)


class FeatureView(Mapping[str, Any]):
    """The feature vector of one profile, read lazily: a group of features (windows, lifetime,
    recency, sessions/cart/affinities, context) is computed the first time one of its features
    is read. The policy reads a handful of features per event; computing all of them for every
    event cost more than the rest of the step.
    """

    def __init__(self, profile: Profile, config: StepConfig) -> None:
        self._profile, self._config = profile, config
        self._now = profile.last_seen_ms or 0
        self._values: dict[str, Any] = {}
        self._done: set[str] = set()

    def __getitem__(self, name: str) -> Any:
        values = self._values
        if name not in values:
            self._compute(_GROUP_OF.get(name, "windows"))  # unknown names: KeyError below
        return values[name]

    def __iter__(self) -> Iterator[str]:
        for group in _COMPUTE:
            self._compute(group)
        return iter(self._values)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def groups(self, names: Iterable[str]) -> dict[str, Any]:
        """Every feature of the named groups, in one dict (the values computed so far too):
        a reader of many features skips the per-name lookup of ``__getitem__``."""
        for group in names:
            self._compute(group)
        return self._values

    def _compute(self, group: str) -> None:
        if group not in self._done:
            self._done.add(group)
            self._values.update(_COMPUTE[group](self._profile, self._config, self._now))


Group = Callable[[Profile, StepConfig, int], FeatureVector]


def _window_features(p: Profile, c: StepConfig, now: int) -> FeatureVector:
    return read_all(p.windows, c.features.catalog)


def _context_group(p: Profile, c: StepConfig, now: int) -> FeatureVector:
    return _context_features(p)


#: Each group of features and how to compute it; the view computes a group on first access.
_COMPUTE: dict[str, Group] = {
    "windows": _window_features,
    "lifetime": lambda p, c, now: _lifetime_features(p),
    "recency": lambda p, c, now: _recency_features(p, now),
    "sessions": lambda p, c, now: _session_features(_head(p, c), c, now),
    "cart": lambda p, c, now: _cart_features(_head(p, c)),
    "top_affinity": lambda p, c, now: _top_affinity_features(_head(p, c), c, now),
    "top_brand": lambda p, c, now: {"top_brand": _top(_head(p, c).brands)},
    "affinities": lambda p, c, now: _affinity_features(_head(p, c), c, now),
    "context": _context_group,
}
_MEMBERS = {
    "lifetime": (
        "events_total",
        "views_total",
        "orders_total",
        "revenue_total",
        "known_user",
        "late_events",
        "tenure_ms",
    ),
    "recency": tuple(feature for _, feature in _RECENCY_KEYS),
    "sessions": (
        "session_events",
        "session_pages",
        "session_length_ms",
        "ms_since_session_start",
        "session_open",
        "sessions_7d",
        "sessions_total",
        "returning_visitor",
    ),
    "cart": ("cart_lines", "cart_items", "cart_value", "views_since_add"),
    "top_affinity": ("top_category", "top_category_affinity"),
    "top_brand": ("top_brand",),
    "affinities": ("category_affinities",),
    "context": tuple(f"context_{name}" for name in Context._fields),
}
#: Feature name -> its group (window features are the default).
_GROUP_OF = {name: group for group, names in _MEMBERS.items() for name in names}


def group_of(feature: str) -> str:
    """The group a feature is computed in (unknown names: the window features')."""
    return _GROUP_OF.get(feature, "windows")


def _apply_identity(profile: Profile, event: Event) -> None:
    if event.user_id:
        profile.user_id = event.user_id
    if event.anonymous_id and profile.anonymous_id is None:
        profile.anonymous_id = event.anonymous_id


def _apply_lifetime(profile: Profile, event: Event, props: CleanProperties) -> None:
    key = count_key(event)
    profile.counts[key] = profile.counts.get(key, 0) + 1
    t = event.timestamp_ms
    # Min/max rather than "latest write wins": the result must not depend on arrival order.
    profile.first_seen_ms = t if profile.first_seen_ms is None else min(profile.first_seen_ms, t)
    profile.last_seen_ms = t if profile.last_seen_ms is None else max(profile.last_seen_ms, t)
    if event.name in RECENCY_EVENTS:
        profile.last_event_ms[event.name] = max(profile.last_event_ms.get(event.name, t), t)
    if event.name == "Order Completed":
        revenue = props.get("revenue")
        profile.revenue_total = round(profile.revenue_total + (revenue or 0.0), 6)


def _apply_windows(
    profile: Profile, event: Event, config: StepConfig, props: CleanProperties
) -> None:
    add_to_windows(
        profile.windows, config.features.catalog, event.name, event.timestamp_ms, props.get
    )


def _apply_context(profile: Profile, event: Event, fingerprint: int) -> None:
    # Keep the latest event's context, by event time and then fingerprint, so the kept context
    # does not depend on arrival order. The event's dict is referenced as is: the profile keeps
    # only the fields features use (stream.context.minimal_context) when it is serialized, once
    # per batch rather than once per event, and features read both forms identically.
    order = (event.timestamp_ms, fingerprint)
    if profile.context_ms is None or order > (profile.context_ms, profile.context_fingerprint):
        profile.context = event.context
        profile.context_ms, profile.context_fingerprint = order


class CleanProperties:
    """An event's properties, each sanitized on first use and at most once, so a refused value
    is noted (``sanitized:<field>``) once per event however many features read it.

    Rules (stream.sanitize): prices and revenue finite, >= 0 and <= ``max_price``, rounded to
    cents; quantities whole, 1..``max_quantity`` (absent means 1); labels (category, brand)
    trimmed, lower-cased, 1..``max_text_length`` characters; product ids (``product_id``, else
    ``sku``) text or integers up to ``max_text_length``. Absent is not refused: it is ``None``.

    A property outside ``config.stored_properties`` reads as absent (never looked up, so no
    ``sanitized:`` note either). The check is made once per name and event, with the cleaning:
    values are kept, so the features reading a property again do not repeat it.
    """

    __slots__ = ("_config", "_notes", "_props", "_values")

    def __init__(self, props: dict[str, Any], config: StepConfig, notes: list[str]) -> None:
        self._props, self._config, self._notes = props, config, notes
        self._values: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        values = self._values
        if name not in values:
            values[name] = self._clean(name)
        return values[name]

    def _clean(self, name: str) -> Any:
        props, config = self._props, self._config
        allowed = config.stored_properties
        if name == "quantity":
            quantity = props.get("quantity") if "quantity" in allowed else None
            value: Any = clean_quantity(quantity, config.max_quantity)
            refused = value is None
        else:
            # A withheld name falls back to its alias as an event without it would.
            if name == "revenue" and ("revenue" not in allowed or "revenue" not in props):
                name = "total"  # Segment's Order Completed may carry total without revenue
            elif name == "product_id" and (
                "product_id" not in allowed or "product_id" not in props
            ):
                name = "sku"
            raw = props.get(name) if name in allowed else None
            if raw is None:
                return None
            if name in _NUMERIC_FIELDS or name == "total":
                value = clean_price(raw, config.max_price)
            elif name in ("product_id", "sku"):
                value = clean_id(raw, config.max_text_length)
            else:
                value = clean_text(raw, config.max_text_length)
            refused = value is None
        if refused:
            self._notes.append(f"sanitized:{name}")
        return value


_CART_CHANGES = frozenset({"Product Added", "Product Removed"})


def _moment(event: Event, fingerprint: int, props: CleanProperties) -> Moment:
    if event.type != "track":
        return Moment(event.timestamp_ms, fingerprint, event.name)
    # The bounded name (unknown track names as `track:other`), not the client's text: moments
    # within grace are stored in the profile, and the ordered state only tells known names apart.
    return Moment(
        event.timestamp_ms,
        fingerprint,
        count_key(event),
        props.get("product_id"),
        props.get("category"),
        props.get("brand"),
        props.get("price"),
        props.get("quantity") if event.name in _CART_CHANGES else None,
    )


def _ordered_config(config: StepConfig) -> OrderedConfig:
    f = config.features
    return OrderedConfig(
        f.session_gap_ms,
        f.affinity_half_life_ms,
        f.affinity_top_k,
        config.max_cart_lines,
        config.max_quantity,
    )


#: The ordered-state settings of a step config, built once per config object (stream.memo).
_ordered: PerObject[StepConfig, OrderedConfig] = PerObject(_ordered_config)


def _lifetime_features(profile: Profile) -> FeatureVector:
    counts = profile.counts
    return {
        "events_total": sum(counts.values()),
        "views_total": (
            counts.get("page", 0) + counts.get("screen", 0) + counts.get("Product Viewed", 0)
        ),
        "orders_total": counts.get("Order Completed", 0),
        "revenue_total": profile.revenue_total,
        "known_user": profile.user_id is not None,
        "late_events": profile.late_events,
        "tenure_ms": (profile.last_seen_ms or 0) - (profile.first_seen_ms or 0),
    }


def _recency_features(profile: Profile, now: int) -> FeatureVector:
    # -1 means "never": a number (not None) so that a model's feature vector stays numeric.
    last = profile.last_event_ms
    return {feature: now - last[n] if n in last else -1 for n, feature in _RECENCY_KEYS}


def _session_features(state: OrderedState, config: StepConfig, now: int) -> FeatureVector:
    start, last = state.session_start_ms, state.session_last_ms
    week_ago = now - SESSION_HISTORY_MS
    return {
        "session_events": state.session_events,
        "session_pages": state.session_pages,
        "session_length_ms": (last - start) if start is not None and last is not None else 0,
        "ms_since_session_start": (now - start) if start is not None else -1,
        "session_open": last is not None and now - last <= config.features.session_gap_ms,
        "sessions_7d": sum(n for b, n in state.session_buckets.items() if b > week_ago),
        "sessions_total": state.sessions_total,
        "returning_visitor": state.sessions_total > 1,
    }


def _head(profile: Profile, config: StepConfig) -> OrderedState:
    """The profile's head, rebuilt (and kept) if the profile was just restored from bytes."""
    if profile.head is None:
        profile.head = rebuild_head(profile.final, profile.pending, _ordered(config))
    return profile.head


def _cart_features(state: OrderedState) -> FeatureVector:
    cart = state.cart.values()
    return {
        "cart_lines": len(state.cart),
        "cart_items": sum(line.quantity for line in cart),
        "cart_value": round(sum(line.quantity * line.price for line in cart), 2),
        "views_since_add": state.views_since_add,
    }


def _top_affinity_features(state: OrderedState, config: StepConfig, now: int) -> FeatureVector:
    # Decay is uniform, so the ranking is that of the stored scores: only the top one is
    # decayed here; the full (decayed) dict is its own lazily read group.
    top_category = _top(state.categories)
    top_affinity = 0.0
    if top_category is not None:
        score = state.categories[top_category]
        if state.affinity_ms is not None:  # as stream.ordered.decayed computes it
            half_life = config.features.affinity_half_life_ms
            score = round(score * decay_factor(state.affinity_ms, now, half_life), 9)
        top_affinity = round(score, 4)
    return {"top_category": top_category, "top_category_affinity": top_affinity}


def _affinity_features(state: OrderedState, config: StepConfig, now: int) -> FeatureVector:
    half_life = config.features.affinity_half_life_ms
    categories = decayed(state.categories, state.affinity_ms, now, half_life)
    return {"category_affinities": {k: round(v, 4) for k, v in sorted(categories.items())}}


def _top(scores: dict[str, float]) -> str | None:
    """The label with the highest score, ties to the greatest label (order-free)."""
    return max(zip(scores.values(), scores, strict=True))[1] if scores else None


def _context_features(profile: Profile) -> FeatureVector:
    # Local hour and weekday of the user's latest event, in the latest context's time zone.
    context = read_context(profile.context or {}, profile.last_seen_ms or 0)
    return {f"context_{k}": v for k, v in context.to_dict().items()}


def ordered_settings(config: StepConfig) -> OrderedConfig:
    """The settings the order-dependent features fold with (stream.ordered)."""
    return _ordered(config)

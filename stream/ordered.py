"""Order-dependent features, made order-independent within the grace period.

Sessions (inactivity gaps), the cart (add, then remove), "views since the last add" and decayed
affinities depend on the order of events. Events therefore first wait in a small *pending*
buffer, sorted by (event time, message fingerprint); once an event is older than the user's
latest event time minus the grace period it is folded, in that order, into the *final* state.
Features are read from a scratch copy of the final state with the pending events folded in, so
any arrival order within grace yields exactly the same features.

An event that arrives already older than ``latest - grace`` is *late*: it still counts in
lifetime counters, windows and recency (those are order-free), but not here, since the history
it belongs to is final. The step counts it (``note:late_event``).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from stream.windows import DAY_MS

__all__ = [
    "AFFINITY_WEIGHTS",
    "CartLine",
    "Moment",
    "OrderedConfig",
    "OrderedState",
    "admit",
    "decay_factor",
    "decay_to",
    "decayed",
    "event_order",
    "fold",
    "join",
    "rebuild_head",
    "settle",
]

SESSION_HISTORY_MS = 7 * DAY_MS
#: Session starts are counted in buckets of this size (like the 7-day windows' buckets), so
#: "sessions in the last 7 days" costs at most 15 numbers however often a user comes back.
SESSION_BUCKET_MS = 12 * 60 * 60 * 1000


class Moment(NamedTuple):
    """What the order-dependent features need of one event, already sanitized."""

    timestamp_ms: int
    fingerprint: int
    name: str
    product_id: str | None = None
    category: str | None = None
    brand: str | None = None
    price: float | None = None
    quantity: int | None = None


class CartLine(NamedTuple):
    """One product in the cart: quantity and unit price at the time it was added (immutable,
    so copying a cart is copying a dict)."""

    quantity: int
    price: float


@dataclass(slots=True)
class OrderedState:
    """The folded, final part of the order-dependent features."""

    session_start_ms: int | None = None
    session_last_ms: int | None = None
    session_events: int = 0
    session_pages: int = 0
    #: Session starts by 12-hour bucket (bucket start -> sessions), for the last 7 days.
    session_buckets: dict[int, int] = field(default_factory=dict)
    sessions_total: int = 0
    cart: dict[str, CartLine] = field(default_factory=dict)
    views_since_add: int = 0
    affinity_ms: int | None = None
    categories: dict[str, float] = field(default_factory=dict)
    brands: dict[str, float] = field(default_factory=dict)

    def copy(self) -> OrderedState:
        return OrderedState(
            self.session_start_ms,
            self.session_last_ms,
            self.session_events,
            self.session_pages,
            dict(self.session_buckets),
            self.sessions_total,
            dict(self.cart),
            self.views_since_add,
            self.affinity_ms,
            dict(self.categories),
            dict(self.brands),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "session": [
                self.session_start_ms,
                self.session_last_ms,
                self.session_events,
                self.session_pages,
                self.sessions_total,
            ],
            "session_buckets": {str(b): n for b, n in sorted(self.session_buckets.items())},
            "cart": {k: [v.quantity, v.price] for k, v in self.cart.items()},
            "views_since_add": self.views_since_add,
            "affinity_ms": self.affinity_ms,
            "categories": self.categories,
            "brands": self.brands,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> OrderedState:
        start, last, events, pages, total = doc["session"]
        return cls(
            start,
            last,
            int(events),
            int(pages),
            {int(b): int(n) for b, n in doc["session_buckets"].items()},
            int(total),
            {k: CartLine(int(q), float(p)) for k, (q, p) in doc["cart"].items()},
            int(doc["views_since_add"]),
            doc["affinity_ms"],
            {str(k): float(v) for k, v in doc["categories"].items()},
            {str(k): float(v) for k, v in doc["brands"].items()},
        )


@dataclass(frozen=True, slots=True)
class OrderedConfig:
    session_gap_ms: int
    half_life_ms: int
    top_k: int
    max_cart_lines: int
    max_quantity: int


#: How much one event says about interest in its category and brand.
AFFINITY_WEIGHTS = {
    "Product Viewed": 1.0,
    "Product Added": 3.0,
    "Order Completed": 5.0,
    "Product Added to Wishlist": 2.0,
}
_PAGE_NAMES = frozenset({"page", "screen"})


def admit(
    final: OrderedState,
    head: OrderedState | None,
    pending: list[Moment],
    moment: Moment,
    cfg: OrderedConfig,
) -> OrderedState:
    """Add a moment to the (sorted) pending list and return the new head.

    In order (the usual case), the head just folds the moment; out of order, or when there is
    no head (a profile just restored: the head is not stored), it is rebuilt from the final
    state and the pending moments, in event order.
    """
    in_order = not pending or event_order(moment) >= event_order(pending[-1])
    bisect.insort(pending, moment, key=event_order)
    if in_order and head is not None:
        fold(head, moment, cfg)
        return head
    return rebuild_head(final, pending, cfg)


def rebuild_head(final: OrderedState, pending: list[Moment], cfg: OrderedConfig) -> OrderedState:
    """``final`` with the pending moments folded in, in event order (a new state)."""
    head = final.copy()
    for moment in pending:
        fold(head, moment, cfg)
    return head


def settle(final: OrderedState, pending: list[Moment], before_ms: int, cfg: OrderedConfig) -> None:
    """Fold (and remove) the pending moments older than ``before_ms``, oldest first.

    The head does not change: it already is ``final`` with every pending moment folded in order.
    """
    ready = 0
    while ready < len(pending) and pending[ready].timestamp_ms < before_ms:
        fold(final, pending[ready], cfg)
        ready += 1
    del pending[:ready]


def event_order(moment: Moment) -> tuple[int, int]:
    """Event time, then message fingerprint: a total order that ignores arrival order."""
    return moment.timestamp_ms, moment.fingerprint


def fold(state: OrderedState, moment: Moment, cfg: OrderedConfig) -> None:
    """Apply one moment to the state, in event-time order."""
    _fold_session(state, moment, cfg)
    _fold_affinity(state, moment, cfg)
    _fold_cart(state, moment, cfg)


def join(
    earlier: OrderedState,
    later: OrderedState,
    later_first_ms: int,
    later_names: frozenset[str] | set[str],
    cfg: OrderedConfig,
) -> OrderedState:
    """The final state of one history followed by another, from the two folded apart (a new
    state): how two identities' histories become one person's (stream.identity).

    ``later_first_ms`` is the later history's first event time and ``later_names`` the event
    names it holds. Exact for sessions (the later history's first session continues the
    earlier's last one when the gap allows: one session, counted once), session buckets, the
    cart when the later history removed nothing from it (a removal of a product only the earlier
    history had added was a no-op when it was folded, and cannot be replayed from the folded
    states), views since the last add, and the affinities up to float rounding (their sums are
    rebased to one reference time) while no more than ``top_k`` labels compete.
    """
    if earlier.session_last_ms is None:
        return later.copy()
    if later.session_last_ms is None:
        return earlier.copy()
    out = later.copy()
    joined = later_first_ms - earlier.session_last_ms <= cfg.session_gap_ms
    out.sessions_total = earlier.sessions_total + later.sessions_total - int(joined)
    buckets = dict(earlier.session_buckets)
    for bucket, n in later.session_buckets.items():
        buckets[bucket] = buckets.get(bucket, 0) + n
    if joined:
        # The later history's first session start was the earlier's last session going on.
        first = later_first_ms - later_first_ms % SESSION_BUCKET_MS
        if buckets.get(first, 0) > 0:
            buckets[first] -= 1
        if later.sessions_total == 1:
            out.session_start_ms = earlier.session_start_ms
            out.session_events = earlier.session_events + later.session_events
            out.session_pages = earlier.session_pages + later.session_pages
    start = out.session_start_ms
    assert start is not None
    out.session_buckets = {
        b: n for b, n in sorted(buckets.items()) if n > 0 and b > start - SESSION_HISTORY_MS
    }
    if "Order Completed" not in later_names:  # an order empties the cart: else both count
        cart = dict(earlier.cart)
        for product, line in later.cart.items():
            held = cart.get(product)
            if held is not None:
                quantity = min(held.quantity + line.quantity, cfg.max_quantity)
                cart[product] = CartLine(quantity, line.price)
            elif len(cart) < cfg.max_cart_lines:
                cart[product] = line
        out.cart = cart
        if "Product Added" not in later_names:
            out.views_since_add = earlier.views_since_add + later.views_since_add
    _join_affinities(out, earlier, later, cfg)
    return out


def _join_affinities(
    out: OrderedState, earlier: OrderedState, later: OrderedState, cfg: OrderedConfig
) -> None:
    if earlier.affinity_ms is None:
        return  # `out` has the later's already
    if later.affinity_ms is None:
        out.affinity_ms = earlier.affinity_ms
        out.categories, out.brands = dict(earlier.categories), dict(earlier.brands)
        return
    gap = later.affinity_ms - earlier.affinity_ms
    if gap > _REBASE_AFTER_HALF_LIVES * cfg.half_life_ms:
        # Folded as one history, the scores would have been rebased too.
        reference, early, late = later.affinity_ms, decay_factor(0, gap, cfg.half_life_ms), 1.0
    else:
        reference, early, late = earlier.affinity_ms, 1.0, math.pow(2.0, gap / cfg.half_life_ms)
    out.affinity_ms = reference
    for name in ("categories", "brands"):
        scores = {label: score * early for label, score in getattr(earlier, name).items()}
        for label, score in getattr(later, name).items():
            scores[label] = scores.get(label, 0.0) + score * late
        _keep_top(scores, cfg.top_k)
        setattr(out, name, scores)


def _fold_session(state: OrderedState, moment: Moment, cfg: OrderedConfig) -> None:
    t = moment.timestamp_ms
    if state.session_last_ms is None or t - state.session_last_ms > cfg.session_gap_ms:
        state.session_start_ms, state.session_events, state.session_pages = t, 0, 0
        state.sessions_total += 1
        buckets = state.session_buckets
        bucket = t - t % SESSION_BUCKET_MS
        buckets[bucket] = buckets.get(bucket, 0) + 1
        for old in [b for b in buckets if b <= t - SESSION_HISTORY_MS]:
            del buckets[old]
    state.session_last_ms = t
    state.session_events += 1
    if moment.name in _PAGE_NAMES:
        state.session_pages += 1


def _fold_affinity(state: OrderedState, moment: Moment, cfg: OrderedConfig) -> None:
    weight = AFFINITY_WEIGHTS.get(moment.name)
    if weight is None or (moment.category is None and moment.brand is None):
        return
    t = moment.timestamp_ms
    if state.affinity_ms is None:
        state.affinity_ms = t
    elif t - state.affinity_ms > _REBASE_AFTER_HALF_LIVES * cfg.half_life_ms:
        decay_to(state, t, cfg)
    # Scores are kept as of `affinity_ms`: instead of decaying every score to `t` and adding
    # `weight`, the weight is grown to the reference time (`weight * 2^((t - ref) / half-life)`).
    # Same values on read, one multiplication per event instead of one per label.
    boost = weight * math.pow(2.0, (t - state.affinity_ms) / cfg.half_life_ms)
    for scores, label in ((state.categories, moment.category), (state.brands, moment.brand)):
        if label is not None:
            scores[label] = scores.get(label, 0.0) + boost
            if len(scores) > cfg.top_k:
                _keep_top(scores, cfg.top_k)


#: When the reference time falls this many half-lives behind, scores are rebased to the event's
#: time so the growth factor stays far from float overflow (2^1024).
_REBASE_AFTER_HALF_LIVES = 64


def decayed(
    scores: dict[str, float], since_ms: int | None, now_ms: int, half_life_ms: int
) -> dict[str, float]:
    """Scores as of ``now_ms``, from scores kept as of ``since_ms`` (read-only)."""
    if since_ms is None:
        return dict(scores)
    factor = decay_factor(since_ms, now_ms, half_life_ms)
    return {label: round(score * factor, 9) for label, score in scores.items()}


def decay_factor(since_ms: int, now_ms: int, half_life_ms: int) -> float:
    """What a score kept as of ``since_ms`` is multiplied by to be read at ``now_ms``.

    >>> decay_factor(0, 7, 7), decay_factor(0, 0, 7)
    (0.5, 1.0)
    """
    return math.pow(0.5, (now_ms - since_ms) / half_life_ms)


def decay_to(state: OrderedState, now_ms: int, cfg: OrderedConfig) -> None:
    """Rebase every affinity to ``now_ms`` (exponential decay, half-life from the config)."""
    if state.affinity_ms is not None and now_ms > state.affinity_ms:
        factor = decay_factor(state.affinity_ms, now_ms, cfg.half_life_ms)
        for scores in (state.categories, state.brands):
            for label in scores:
                scores[label] = scores[label] * factor
    state.affinity_ms = now_ms if state.affinity_ms is None else max(state.affinity_ms, now_ms)


def _keep_top(scores: dict[str, float], k: int) -> None:
    while len(scores) > k:
        # The weakest goes; ties by name so the result does not depend on insertion order.
        del scores[min(scores, key=lambda label: (scores[label], label))]


def _fold_cart(state: OrderedState, moment: Moment, cfg: OrderedConfig) -> None:
    if moment.name == "Product Viewed":
        state.views_since_add += 1
    elif moment.name == "Product Added":
        _add_to_cart(state, moment, cfg)
    elif moment.name == "Product Removed":
        _remove_from_cart(state, moment)
    elif moment.name == "Order Completed":
        state.cart.clear()
        state.views_since_add = 0


def _add_to_cart(state: OrderedState, moment: Moment, cfg: OrderedConfig) -> None:
    if moment.product_id is None or moment.price is None or moment.quantity is None:
        return
    state.views_since_add = 0
    line = state.cart.get(moment.product_id)
    if line is not None:
        quantity = min(line.quantity + moment.quantity, cfg.max_quantity)
        state.cart[moment.product_id] = CartLine(quantity, moment.price)
    elif len(state.cart) < cfg.max_cart_lines:
        state.cart[moment.product_id] = CartLine(moment.quantity, moment.price)


def _remove_from_cart(state: OrderedState, moment: Moment) -> None:
    line = state.cart.get(moment.product_id) if moment.product_id is not None else None
    if line is None or moment.quantity is None or moment.product_id is None:
        return
    left = line.quantity - moment.quantity
    if left <= 0:
        del state.cart[moment.product_id]
    else:
        state.cart[moment.product_id] = CartLine(left, line.price)

"""First per-user features: counts by event name, first/last seen, cart and category views.

:func:`apply_event` folds one event into a profile the step owns (a copy). It returns notes for
every value it refused, so the adapter can count them. Counting is bounded: track events outside
:data:`COUNTED_EVENTS` are counted together under ``"track:other"`` so a client cannot grow state
by inventing event names.
"""

from __future__ import annotations

from typing import Any

from stream.config import StepConfig
from stream.events import Event
from stream.profile import CartLine, Profile
from stream.sanitize import clean_id, clean_price, clean_quantity, clean_text

__all__ = ["COUNTED_EVENTS", "OTHER_TRACK", "apply_event", "count_key"]

#: Segment e-commerce spec events counted under their own name.
COUNTED_EVENTS = frozenset(
    {
        "Products Searched",
        "Product List Viewed",
        "Product Viewed",
        "Product Clicked",
        "Product Added",
        "Product Removed",
        "Cart Viewed",
        "Checkout Started",
        "Order Completed",
        "Order Refunded",
        "Signed Up",
        "Signed In",
    }
)
OTHER_TRACK = "track:other"


def count_key(event: Event) -> str:
    """The counter an event increments.

    >>> from stream.events import EventType
    >>> count_key(Event("m", EventType.TRACK, "Button Pressed", "u", 0))
    'track:other'
    """
    if event.type != "track" or event.name in COUNTED_EVENTS:
        return event.name
    return OTHER_TRACK


def apply_event(profile: Profile, event: Event, config: StepConfig) -> list[str]:
    """Fold ``event`` into ``profile`` in place; return notes about refused values."""
    notes: list[str] = []
    _apply_identity(profile, event)
    key = count_key(event)
    profile.counts[key] = profile.counts.get(key, 0) + 1
    _apply_times(profile, event.timestamp_ms)
    handler = _HANDLERS.get(event.name) if event.type == "track" else None
    if handler is not None:
        handler(profile, event.properties, config, notes)
    return notes


def _apply_identity(profile: Profile, event: Event) -> None:
    if event.user_id:
        profile.user_id = event.user_id
    if event.anonymous_id and profile.anonymous_id is None:
        profile.anonymous_id = event.anonymous_id


def _apply_times(profile: Profile, timestamp_ms: int) -> None:
    # Min/max rather than "latest write wins": the result must not depend on arrival order.
    if profile.first_seen_ms is None or timestamp_ms < profile.first_seen_ms:
        profile.first_seen_ms = timestamp_ms
    if profile.last_seen_ms is None or timestamp_ms > profile.last_seen_ms:
        profile.last_seen_ms = timestamp_ms


def _on_product_viewed(
    profile: Profile, props: dict[str, Any], config: StepConfig, notes: list[str]
) -> None:
    profile.views_since_add += 1
    category = clean_text(props.get("category"), config.max_text_length)
    if category is None:
        if "category" in props:
            notes.append("sanitized:category")
        return
    views = profile.category_views
    views[category] = views.get(category, 0) + 1
    if len(views) > config.max_categories:
        # Evict the least viewed; ties by name so the result is deterministic.
        victim = min(views, key=lambda name: (views[name], name))
        del views[victim]


def _on_product_added(
    profile: Profile, props: dict[str, Any], config: StepConfig, notes: list[str]
) -> None:
    product = _product_id(props, config, notes)
    price = clean_price(props.get("price"), config.max_price)
    quantity = clean_quantity(props.get("quantity"), config.max_quantity)
    if price is None:
        notes.append("sanitized:price")
    if quantity is None:
        notes.append("sanitized:quantity")
    if product is None or price is None or quantity is None:
        return
    profile.views_since_add = 0
    line = profile.cart.get(product)
    if line is None:
        if len(profile.cart) >= config.max_cart_lines:
            notes.append("cart_full")
            return
        profile.cart[product] = CartLine(quantity, price)
    else:
        line.quantity = min(line.quantity + quantity, config.max_quantity)
        line.price = price


def _on_product_removed(
    profile: Profile, props: dict[str, Any], config: StepConfig, notes: list[str]
) -> None:
    product = _product_id(props, config, notes)
    line = profile.cart.get(product) if product is not None else None
    if line is None or product is None:
        return
    quantity = clean_quantity(props.get("quantity"), config.max_quantity)
    if quantity is None:
        notes.append("sanitized:quantity")
        return
    line.quantity -= quantity
    if line.quantity <= 0:
        del profile.cart[product]


def _on_order_completed(
    profile: Profile, props: dict[str, Any], config: StepConfig, notes: list[str]
) -> None:
    profile.cart.clear()
    profile.views_since_add = 0


def _product_id(props: dict[str, Any], config: StepConfig, notes: list[str]) -> str | None:
    raw = props.get("product_id", props.get("sku"))
    product = clean_id(raw, config.max_text_length)
    if product is None:
        notes.append("sanitized:product_id")
    return product


_HANDLERS = {
    "Product Viewed": _on_product_viewed,
    "Product Added": _on_product_added,
    "Product Removed": _on_product_removed,
    "Order Completed": _on_order_completed,
}

"""Rules that keep untrusted property values from poisoning state.

Each rule returns ``None`` for a value it rejects; the caller records a note so the rejection is
counted, and the feature simply does not use the value.

>>> clean_price(19.99, 1e6), clean_price(float("nan"), 1e6), clean_price(-5, 1e6)
(19.99, None, None)
>>> clean_quantity("3", 1000), clean_quantity(None, 1000), clean_quantity(10**9, 1000)
(3, 1, None)
>>> clean_text("  Electronics ", 100), clean_text("", 100), clean_text(7, 100)
('electronics', None, None)
"""

from __future__ import annotations

import math

__all__ = ["clean_id", "clean_price", "clean_quantity", "clean_text"]


def clean_price(value: object, max_price: float) -> float | None:
    """A finite, non-negative price up to ``max_price``, rounded to cents."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        price = float(value)
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(price) or price < 0 or price > max_price:
        return None
    return round(price, 2)


def clean_quantity(value: object, max_quantity: int) -> int | None:
    """A whole quantity from 1 to ``max_quantity``; absent means 1 (the Segment default)."""
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        quantity = float(value)
    except (ValueError, OverflowError):
        return None
    if not math.isfinite(quantity) or quantity != int(quantity):
        return None
    whole = int(quantity)
    return whole if 1 <= whole <= max_quantity else None


def clean_text(value: object, max_length: int) -> str | None:
    """A normalized label (trimmed, lower-case) no longer than ``max_length``; else ``None``."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    return text if 0 < len(text) <= max_length else None


def clean_id(value: object, max_length: int) -> str | None:
    """A product id or sku as text (numbers allowed), case kept; too long or empty is ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        value = str(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    return text if 0 < len(text) <= max_length else None

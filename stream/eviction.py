"""Idle users, by event time: when a profile starts again, and when it may be deleted.

Two rules, one horizon (``FeatureConfig.idle_horizon_ms``, 30 days by default):

* **reset** (in the step, deterministic): an event more than the horizon after the user's latest
  event starts from a fresh profile. Only the identity and the idempotence records (recent
  message ids, applied source offsets) are carried over, so a duplicate or redelivered record is
  still recognized. Every feature of such a user would have expired anyway (the longest window
  is 7 days); the reset also drops lifetime counts, affinities and the cart, which a product
  team expects of a visitor who comes back after months.
* **delete** (in the adapter, to bound storage): a profile whose latest event is more than the
  horizon plus a margin behind its partition's watermark may be deleted. The next event of that
  user then builds a fresh profile, exactly what the reset gives, unless that event is more than
  the margin behind the partition watermark itself (an event a day late by default): such an
  event would find no idempotence records either. This is the one documented way in which
  deleting differs from keeping.

The watermark never comes from the wall clock: see :mod:`stream.watermark`.

>>> from stream.config import FeatureConfig
>>> cfg = FeatureConfig()
>>> day = 86_400_000
>>> idle_too_long(last_seen_ms=0, event_ms=31 * day, config=cfg)
True
>>> evictable(last_seen_ms=0, watermark_ms=31 * day, config=cfg)  # within the margin
False
>>> evictable(last_seen_ms=0, watermark_ms=31 * day + 1, config=cfg)
True
"""

from __future__ import annotations

from stream.config import FeatureConfig
from stream.profile import Profile

__all__ = ["evictable", "idle_too_long", "reset_after_idle"]


def idle_too_long(last_seen_ms: int | None, event_ms: int, config: FeatureConfig) -> bool:
    """Whether an event at ``event_ms`` comes after more than the idle horizon."""
    return last_seen_ms is not None and event_ms - last_seen_ms > config.idle_horizon_ms


def reset_after_idle(profile: Profile) -> None:
    """Start ``profile`` again (in place), keeping identity, consent and idempotence records."""
    profile.restart(consent=profile.consent)


def evictable(last_seen_ms: int | None, watermark_ms: int | None, config: FeatureConfig) -> bool:
    """Whether the adapter may delete a profile last seen at ``last_seen_ms``."""
    if last_seen_ms is None or watermark_ms is None:
        return False
    return watermark_ms - last_seen_ms > config.idle_horizon_ms + config.eviction_margin_ms

"""Consent to personalization, as Segment's consent management sends it, enforced by the step.

Segment's Consent Management puts the user's choices in every event's
``context.consent.categoryPreferences`` (category name -> bool). The step reads one category
(``PolicyConfig.consent_category``, matched in any case): ``False`` opts the user out, ``True``
opts them back in; events that say nothing leave the user's consent as it was.

While a user is opted out (:func:`withhold`), their profile is only the **consent record**: the
key and ids, the consent, the latest event time (so an idle record is still evicted) and the
idempotence records (so a redelivered event is still applied once). Their events are not folded
into features, make no pending label or decision, and nothing is learned from them; every
decision is the default action (reason ``opted_out``). Opting back in starts from that clean
record: nothing from before, or from the opted-out period, comes back.

>>> from stream.events import Event, EventType
>>> def with_consent(prefs):
...     return Event("m1", EventType.TRACK, "Page Viewed", "u1", 0,
...                   context={"consent": {"categoryPreferences": prefs}})
>>> consent_of(with_consent({"Personalization": False}), "personalization")
False
>>> consent_of(with_consent({"Advertising": False}), "personalization") is None
True
"""

from __future__ import annotations

from stream.events import Event
from stream.profile import Profile

__all__ = ["consent_of", "withhold"]


def consent_of(event: Event, category: str) -> bool | None:
    """The event's consent for ``category`` (``None``: it does not say)."""
    consent = event.context.get("consent") if event.context else None
    if not isinstance(consent, dict):
        return None
    preferences = consent.get("categoryPreferences")
    if not isinstance(preferences, dict):
        return None
    wanted = category.casefold()
    for name, value in preferences.items():
        if isinstance(name, str) and name.casefold() == wanted and isinstance(value, bool):
            return value
    return None


def withhold(profile: Profile, event_time_ms: int) -> None:
    """Reduce ``profile`` (in place) to the consent record of an opted-out user."""
    latest = max(event_time_ms, profile.last_seen_ms or event_time_ms)
    profile.restart(consent=False, last_seen_ms=latest, head=None)

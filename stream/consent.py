"""Consent to personalization, as Segment's consent management sends it.

Segment's Consent Management puts the user's choices in every event's
``context.consent.categoryPreferences`` (category name -> bool). The policy reads one category
(``PolicyConfig.consent_category``, matched in any case): ``False`` opts the user out of
personalization (the default action, see :mod:`stream.policy`), ``True`` opts them back in.
Events that say nothing leave the user's consent as it was.

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

__all__ = ["consent_of"]


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

"""What the system holds about one user, and why their last decision was made, in plain JSON.

For the transparency endpoint (``GET /privacy/users/{key}``, :mod:`agents.privacy`): a support
agent answering "what do you know about me, and why did I see this?" reads this document, so it
names things in words, gives times as ISO 8601 as well as epoch ms, and says what is *not* kept.

It is built from the stored profile alone (pure: no clock; "now" is the user's latest event
time, as for every feature).
"""

from __future__ import annotations

from typing import Any

from stream.config import StepConfig
from stream.features import feature_vector
from stream.profile import PROFILE_SCHEMA, Profile
from stream.timeutil import ms_to_iso

__all__ = ["NOT_KEPT", "TRANSPARENCY_SCHEMA", "describe"]

TRANSPARENCY_SCHEMA = "transparency.v1"

#: What a profile never keeps (stream.context.minimal_context, StepConfig.stored_properties);
#: the document adds the properties the configuration's allow-list keeps.
NOT_KEPT = (
    "IP addresses, user agents and every context field other than device type, OS name, "
    "locale, time zone, country, library name and whether the event came from an app or a page",
    "any event property not on the allow-list, and no property at all of an event the user "
    "opted out with",
    "raw events: only counts, windowed aggregates and the events of the last few minutes that "
    "may still be reordered",
)


def describe(profile: Profile, config: StepConfig) -> dict[str, Any]:
    """The transparency document of ``profile`` (reads, never changes, what it describes)."""
    opted_out = profile.consent is False
    doc: dict[str, Any] = {
        "schema": TRANSPARENCY_SCHEMA,
        "profile_schema": PROFILE_SCHEMA,
        "user": {
            "key": profile.user_key,
            "user_id": profile.user_id,
            "anonymous_id": profile.anonymous_id,
            # Other keys of the same person whose history was merged in (stream.identity).
            "merged_keys": sorted(profile.aliases),
            # Set when this key's history lives in another profile now.
            "merged_into": profile.merged_into,
        },
        "consent": {
            "personalization": profile.consent,
            "meaning": _consent_meaning(profile.consent),
        },
        "activity": {
            "first_seen": _time(profile.first_seen_ms),
            "last_seen": _time(profile.last_seen_ms),
            "events_by_name": dict(sorted(profile.counts.items())),
            "revenue_total": profile.revenue_total,
            "events_out_of_order": profile.late_events,
        },
        "context": profile.to_dict()["context"],
        # An opted-out user's profile is the consent record: there are no features to show.
        "features": {} if opted_out else _features(profile, config),
        "predictions_waiting_for_outcome": len(profile.labels),
        "decisions_waiting_for_reward": [
            {
                "decision_id": d.decision_id,
                "action": d.action,
                "made": _time(d.at_ms),
                "exposed": d.exposed,
            }
            for d in profile.decisions
        ],
        "recent_action_starts": [
            {"action": action, "at": _time(at)} for action, at in profile.starts
        ],
        "last_decision": profile.last_decision_summary(),
        "not_kept": list(NOT_KEPT),
        "properties_allow_list": sorted(config.stored_properties),
    }
    return doc


def _features(profile: Profile, config: StepConfig) -> dict[str, Any]:
    # The view computes lazily and may rebuild the profile's in-memory head: a copy keeps the
    # caller's profile exactly as it was.
    view = feature_vector(profile.copy(), config)
    return {name: view[name] for name in view}


def _consent_meaning(consent: bool | None) -> str:
    if consent is False:
        return (
            "opted out of personalization: only this consent record is kept, every decision is "
            "the default action, and nothing is learned from the user's events"
        )
    if consent is True:
        return "opted in to personalization"
    return "never said: treated as consenting (the site's consent banner decides what it sends)"


def _time(ms: int | None) -> dict[str, Any] | None:
    return None if ms is None else {"ms": ms, "iso": ms_to_iso(ms)}

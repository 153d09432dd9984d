"""Context features: device, OS, locale and country, channel, and local time of day.

Read from the Segment ``context`` object. Hour of day and weekday are in the user's own time
zone (``context.timezone``, an IANA name), falling back to UTC when it is absent or unknown.

>>> ctx = {"device": {"type": "mobile"}, "os": {"name": "iOS"}, "locale": "de-DE",
...        "timezone": "Europe/Berlin", "app": {"name": "Shop"}}
>>> c = read_context(ctx, 1_700_000_000_000)  # 2023-11-14 22:13:20 UTC
>>> c.device_type, c.os, c.country, c.channel, c.local_hour, c.weekday, c.timezone_valid
('mobile', 'ios', 'DE', 'app', 23, 1, True)
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["DEVICE_TYPES", "Context", "minimal_context", "read_context"]

DEVICE_TYPES = frozenset({"mobile", "desktop", "tablet"})
_APP_LIBRARIES = (
    "analytics-ios",
    "analytics-android",
    "analytics-react-native",
    "analytics-flutter",
)


class Context(NamedTuple):
    """The context of one event, normalized to small closed vocabularies where possible."""

    device_type: str
    os: str
    locale: str
    country: str
    channel: str
    timezone: str
    timezone_valid: bool
    local_hour: int
    weekday: int

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


def read_context(context: dict[str, Any], timestamp_ms: int) -> Context:
    """Normalize ``context`` and place ``timestamp_ms`` in the user's local time."""
    zone_name = _text(context.get("timezone"), 64)
    zone = _zone(zone_name) if zone_name else None
    local = datetime.fromtimestamp(timestamp_ms / 1000, tz=zone or UTC)
    locale = _text(context.get("locale"), 20) or "unknown"
    return Context(
        device_type=_device_type(context),
        os=(_text(_get(context, "os", "name"), 40) or "unknown").lower(),
        locale=locale,
        country=_country(context, locale),
        channel=_channel(context),
        timezone=zone_name if zone and zone_name else "UTC",
        timezone_valid=zone is not None,
        local_hour=local.hour,
        weekday=local.weekday(),
    )


#: The context fields features read: (key, inner key or None for a top-level value).
_FIELDS = (
    ("device", "type"),
    ("os", "name"),
    ("locale", None),
    ("timezone", None),
    ("location", "country"),
    ("library", "name"),
    ("app", None),
    ("page", None),
)
_KEPT_LENGTH = 64


def minimal_context(context: dict[str, Any]) -> dict[str, Any]:
    """Only the fields :func:`read_context` uses, texts trimmed and cut to 64 characters:
    what a profile stores (no IP address, user agent or anything else), and read exactly as
    the full context would be (every limit below is at most 64, applied after trimming).

    >>> minimal_context({"ip": "10.0.0.1", "device": {"type": " mobile ", "id": "x"}, "app": {}})
    {'device': {'type': 'mobile'}, 'app': {}}
    """
    kept: dict[str, Any] = {}
    for key, inner in _FIELDS:
        value = context.get(key)
        if value is None:
            continue
        if inner is not None:
            value = value.get(inner) if isinstance(value, dict) else None
            if isinstance(value, str):  # anything else reads as absent
                kept[key] = {inner: value.strip()[:_KEPT_LENGTH]}
        elif isinstance(value, str):
            kept[key] = value.strip()[:_KEPT_LENGTH]
        elif isinstance(value, dict):
            kept[key] = {}  # presence matters (app / page tell the channel)
    return kept


def _get(doc: dict[str, Any], key: str, inner: str) -> object:
    value = doc.get(key)
    return value.get(inner) if isinstance(value, dict) else None


def _text(value: object, limit: int) -> str | None:
    # Trim, cut, trim again: the result is then the same from a value minimal_context cut.
    text = value.strip()[:limit].rstrip() if isinstance(value, str) else ""
    return text or None


@lru_cache(maxsize=512)
def _zone(name: str) -> tzinfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # OSError: a name that is a directory of the zone database ("Europe", "America")
        # makes ZoneInfo open the directory (IsADirectoryError), not raise "not found".
        return None


def _device_type(context: dict[str, Any]) -> str:
    kind = (_text(_get(context, "device", "type"), 20) or "").lower()
    if kind in DEVICE_TYPES:
        return kind
    if kind in {"ios", "android"}:  # some SDKs put the platform in device.type
        return "mobile"
    return "other" if kind else "unknown"


def _country(context: dict[str, Any], locale: str) -> str:
    explicit = _text(_get(context, "location", "country"), 60)
    if explicit:
        return explicit
    parts = locale.replace("_", "-").split("-")
    return parts[1].upper() if len(parts) > 1 and len(parts[1]) == 2 else "unknown"


def _channel(context: dict[str, Any]) -> str:
    library = (_text(_get(context, "library", "name"), 60) or "").lower()
    if isinstance(context.get("app"), dict) or library.startswith(_APP_LIBRARIES):
        return "app"
    if isinstance(context.get("page"), dict) or library in {"analytics.js", "analytics-next"}:
        return "web"
    return "server"

"""Collector settings, read from the environment (prefix ``LIVEPROFILES_COLLECTOR_``).

The broker (servers, profile, topic prefix) comes from the worker's
:class:`agents.settings.Settings`, so a collector and the workers of one deployment agree on
the events topic by construction.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream.decode import MAX_EVENT_BYTES

__all__ = ["CollectorSettings"]


class CollectorSettings(BaseSettings):
    """The HTTP edge: where it listens, who may write, how much, and how long it waits."""

    model_config = SettingsConfigDict(env_prefix="LIVEPROFILES_COLLECTOR_", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8088, ge=0, le=65535)
    #: Accepted write keys, comma-separated. None configured means every request gets 401.
    write_keys: str = ""
    #: Per write key: sustained events/s and the burst a key may send at once (token bucket).
    rate_per_s: float = Field(default=5_000.0, gt=0)
    burst: int = Field(default=10_000, ge=1)
    #: Segment's limits: per event (as stored, so the worker's decoder accepts what we accept)
    #: and per request body after decompression.
    max_event_bytes: int = Field(default=MAX_EVENT_BYTES, ge=256)
    max_batch_bytes: int = Field(default=500 * 1024, ge=1024)
    #: How long a request waits for Kafka to acknowledge its events before answering 503.
    send_timeout_s: float = Field(default=10.0, gt=0)
    #: What 503 answers put in ``Retry-After`` (seconds).
    retry_after_s: int = Field(default=5, ge=1)

    def key_set(self) -> frozenset[str]:
        """The write keys as a set (blank entries ignored)."""
        return frozenset(k.strip() for k in self.write_keys.split(",") if k.strip())

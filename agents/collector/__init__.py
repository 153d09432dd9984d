"""The Segment-compatible HTTP collector: SDKs send events to it by changing only their host.

Private modules, each with one job:

* :mod:`~agents.collector.request`: requests to records (gzip, limits, write keys, batches,
  ``receivedAt``, ``messageId``, route types), pure;
* :mod:`~agents.collector.ratelimit`: per-write-key token buckets on an injected clock, pure;
* :mod:`~agents.collector.publish`: records to Kafka, acknowledged or :class:`Unavailable`;
* :mod:`~agents.collector.server`: the aiohttp application;
* :mod:`~agents.collector.config`: ``LIVEPROFILES_COLLECTOR_*`` settings;
* :mod:`~agents.collector.main`: ``python -m agents collector``.
"""

from __future__ import annotations

from agents.collector.config import CollectorSettings
from agents.collector.errors import CollectorError, Refused, Unavailable
from agents.collector.publish import KafkaPublisher, MemoryPublisher, Publisher
from agents.collector.ratelimit import RateLimiter, TokenBucket
from agents.collector.request import ROUTE_TYPES, Record
from agents.collector.server import RUNNER_OPTIONS, create_collector_app

__all__ = [
    "ROUTE_TYPES",
    "RUNNER_OPTIONS",
    "CollectorError",
    "CollectorSettings",
    "KafkaPublisher",
    "MemoryPublisher",
    "Publisher",
    "RateLimiter",
    "Record",
    "Refused",
    "TokenBucket",
    "Unavailable",
    "create_collector_app",
]

"""``python -m agents collector``: the HTTP collector as its own process.

Settings: the broker and topic prefix from ``LIVEPROFILES_*`` (as the worker's), the rest from
``LIVEPROFILES_COLLECTOR_*`` (:class:`~agents.collector.config.CollectorSettings`). It refuses to
start without a write key: a collector that accepts nothing is a misconfiguration.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from agents.collector.config import CollectorSettings
from agents.collector.publish import KafkaPublisher
from agents.collector.server import RUNNER_OPTIONS, create_collector_app
from agents.settings import Settings

__all__ = ["LISTENING_MARKER", "run_collector"]

log = logging.getLogger("agents.collector")

#: Logged (at WARNING, so it shows at the default level) once the collector accepts requests.
LISTENING_MARKER = "collector listening on"


def run_collector(settings: Settings, config: CollectorSettings) -> int:
    """Serve until SIGINT/SIGTERM; exit status 2 when no write key is configured."""
    if not config.key_set():
        log.error("no write key: set LIVEPROFILES_COLLECTOR_WRITE_KEYS (comma-separated)")
        return 2
    publisher = KafkaPublisher(settings, timeout_s=config.send_timeout_s)
    app = create_collector_app(config, publisher)
    loop = _new_loop(settings.event_loop)
    web.run_app(
        app,
        host=config.host,
        port=config.port,
        print=lambda text: log.warning(
            "%s http://%s:%d", LISTENING_MARKER, config.host, config.port
        ),
        access_log=None,
        shutdown_timeout=5.0,
        loop=loop,
        **RUNNER_OPTIONS,
    )
    return 0


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()

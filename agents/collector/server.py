"""The collector's HTTP plumbing (aiohttp): routes, body reading, CORS, and the answers.

Every decision about a request is made by the pure functions of
:mod:`agents.collector.request` and :mod:`agents.collector.ratelimit`; this module reads the
body (bounded), calls them in order, hands the records to a
:class:`~agents.collector.publish.Publisher` and turns the outcome into a response:

======  =====================================================================
200     every event of the request is acknowledged by Kafka: ``{"success": true}``
400     bad body, event or batch over the limits (``code``: a stable reason)
401     no valid write key
429     the key is over its rate (``Retry-After``)
503     Kafka did not acknowledge every event in time (``Retry-After``);
        some events may have been stored: SDKs retry, and the worker applies a
        ``messageId`` once
======  =====================================================================
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from agents.collector.config import CollectorSettings
from agents.collector.errors import Refused, Unavailable
from agents.collector.publish import Publisher
from agents.collector.ratelimit import RateLimiter
from agents.collector.request import (
    ROUTE_TYPES,
    basic_auth_key,
    inflate,
    parse_body,
    records_of,
    write_key_of,
)
from stream.timeutil import ms_to_iso

__all__ = ["RUNNER_OPTIONS", "cors_headers", "create_collector_app", "wall_clock_ms"]

log = logging.getLogger(__name__)

#: For ``AppRunner``/``run_app``: aiohttp would otherwise gunzip bodies itself, unbounded, before
#: :func:`~agents.collector.request.inflate` could apply the limit.
RUNNER_OPTIONS: dict[str, Any] = {"auto_decompress": False}

_PUBLISHER = web.AppKey("publisher", Publisher)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def wall_clock_ms() -> int:
    """Processing time for ``receivedAt``: the one place the collector reads the wall clock."""
    return time.time_ns() // 1_000_000


def cors_headers(origin: str | None) -> dict[str, str]:
    """CORS for browsers: any origin may send (the write key is the access control, as at
    Segment); the origin is echoed so credentials (Basic auth) are allowed too.

    >>> cors_headers("https://shop.example")["Access-Control-Allow-Origin"]
    'https://shop.example'
    """
    return {
        "Access-Control-Allow-Origin": origin or "*",
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type, Content-Encoding",
        "Access-Control-Max-Age": "86400",
        "Vary": "Origin",
    }


def create_collector_app(
    config: CollectorSettings,
    publisher: Publisher,
    wall_ms: Callable[[], int] = wall_clock_ms,
    monotonic_s: Callable[[], float] = time.monotonic,
) -> web.Application:
    """The collector as an aiohttp application; clocks are injectable for tests."""
    app = web.Application(middlewares=[_cors_middleware], client_max_size=config.max_batch_bytes)
    app[_PUBLISHER] = publisher
    ingest = _Ingest(
        config, publisher, wall_ms, RateLimiter(config.rate_per_s, config.burst, monotonic_s)
    )
    for name, route_type in ROUTE_TYPES.items():
        app.router.add_post(f"/v1/{name}", ingest.handler(route_type))
        app.router.add_route("OPTIONS", f"/v1/{name}", _preflight)
    app.router.add_get("/health", _health)
    app.on_startup.append(_start_publisher)
    app.on_cleanup.append(_stop_publisher)
    return app


class _Ingest:
    """One request: read, decode, authorize, limit, publish."""

    def __init__(
        self,
        config: CollectorSettings,
        publisher: Publisher,
        wall_ms: Callable[[], int],
        limiter: RateLimiter,
    ) -> None:
        self.config = config
        self.keys = config.key_set()
        self.publisher = publisher
        self.wall_ms = wall_ms
        self.limiter = limiter

    def handler(self, route_type: str | None) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            try:
                return await self.ingest(request, route_type)
            except Refused as refused:
                return _error(refused.status, refused.code, refused.message)
            except Unavailable as exc:
                log.warning("answering 503: %s", exc)
                headers = {"Retry-After": str(self.config.retry_after_s)}
                return _error(503, "unavailable", "events not stored; retry later", headers)

        return handle

    async def ingest(self, request: web.Request, route_type: str | None) -> web.StreamResponse:
        header_key = basic_auth_key(request.headers.get("Authorization"))
        self._authorize(header_key, header_key is not None)  # refuse before reading the body
        body = await _read_limited(request, self.config.max_batch_bytes)
        limit = self.config.max_batch_bytes
        doc = parse_body(inflate(body, request.headers.get("Content-Encoding"), limit))
        key = self._authorize(header_key or write_key_of(None, doc), True)
        received_at = ms_to_iso(self.wall_ms())
        records = records_of(doc, route_type, received_at, self.config.max_event_bytes)
        wait_s = self.limiter.acquire(key, len(records))
        if wait_s > 0:
            retry = {"Retry-After": str(max(1, math.ceil(wait_s)))}
            return _error(
                429, "rate_limited", f"write key over {self.config.rate_per_s:g} events/s", retry
            )
        await self.publisher.publish(records)
        return web.json_response({"success": True})

    def _authorize(self, key: str | None, required: bool) -> str:
        if key is None and not required:
            return ""
        if key is None or key not in self.keys:
            raise Refused(
                401, "unauthorized", "a valid write key is required (Basic auth or writeKey)"
            )
        return key


async def _read_limited(request: web.Request, limit: int) -> bytes:
    """The raw body, refused as soon as it is longer than ``limit`` (without reading it all)."""
    if request.content_length is not None and request.content_length > limit:
        raise Refused(
            400,
            "batch_too_large",
            f"request body is {request.content_length} bytes; the limit is {limit}",
        )
    chunks, size = [], 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise Refused(400, "batch_too_large", f"request body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {"success": False, "code": code, "message": message}
    return web.json_response(body, status=status, headers=headers)


@web.middleware
async def _cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.update(cors_headers(request.headers.get("Origin")))
    return response


async def _preflight(request: web.Request) -> web.StreamResponse:
    return web.Response(status=204)


async def _health(request: web.Request) -> web.StreamResponse:
    ready = request.app[_PUBLISHER].ready
    return web.json_response(
        {"status": "ok" if ready else "unavailable", "kafka": ready}, status=200 if ready else 503
    )


async def _start_publisher(app: web.Application) -> None:
    await app[_PUBLISHER].start()


async def _stop_publisher(app: web.Application) -> None:
    await app[_PUBLISHER].stop()

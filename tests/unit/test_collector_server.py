"""The collector's HTTP answers, in process, against an in-memory publisher (no broker)."""

from __future__ import annotations

import asyncio
import base64
import gzip
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agents.collector import RUNNER_OPTIONS, CollectorSettings, MemoryPublisher
from agents.collector.server import create_collector_app

AUTH = {"Authorization": "Basic " + base64.b64encode(b"wk:").decode()}
EVENT = {"userId": "u1", "event": "Product Viewed", "messageId": "m1"}
NOW_MS = 1_714_564_800_000  # 2024-05-01T12:00:00Z

Client = TestClient[web.Request, web.Application]
Scenario = Callable[[Client, MemoryPublisher], Awaitable[None]]


def _run(scenario: Scenario, clock: list[float] | None = None, **config: object) -> MemoryPublisher:
    settings = CollectorSettings.model_validate({"write_keys": "wk,other", **config})
    publisher = MemoryPublisher()
    now = clock if clock is not None else [0.0]
    app = create_collector_app(settings, publisher, lambda: NOW_MS, lambda: now[0])

    async def main() -> None:
        server = TestServer(app)
        await server.start_server(**RUNNER_OPTIONS)  # TestServer(app, **options) ignores them
        async with TestClient(server) as client:
            await scenario(client, publisher)

    asyncio.run(main())
    return publisher


def test_track_with_basic_auth_is_stored_and_stamped() -> None:
    async def scenario(client: Client, publisher: MemoryPublisher) -> None:
        response = await client.post("/v1/track", json=EVENT, headers=AUTH)
        assert response.status == 200
        assert await response.json() == {"success": True}

    [record] = _run(scenario).records
    assert record.key == b"u1"
    assert orjson.loads(record.value)["receivedAt"] == "2024-05-01T12:00:00.000Z"


def test_short_routes_and_the_body_write_key() -> None:
    async def scenario(client: Client, publisher: MemoryPublisher) -> None:
        for route in ("t", "p", "s", "i", "a", "g"):
            body = {**EVENT, "writeKey": "other", "previousId": "x"}
            response = await client.post(f"/v1/{route}", data=orjson.dumps(body))
            assert response.status == 200, route

    types = [orjson.loads(r.value)["type"] for r in _run(scenario).records]
    assert types == ["track", "page", "screen", "identify", "alias", "group"]


def test_gzip_labelled_as_text_or_form_is_accepted() -> None:
    body = gzip.compress(orjson.dumps({"batch": [{**EVENT, "type": "track"}] * 3}))

    async def scenario(client: Client, publisher: MemoryPublisher) -> None:
        for content_type in ("text/plain", "application/x-www-form-urlencoded"):
            headers = {**AUTH, "Content-Type": content_type}
            assert (await client.post("/v1/batch", data=body, headers=headers)).status == 200
        headers = {**AUTH, "Content-Encoding": "gzip", "Content-Type": "application/json"}
        assert (await client.post("/v1/b", data=body, headers=headers)).status == 200

    assert len(_run(scenario).records) == 9


def test_without_a_valid_key_401_and_nothing_stored() -> None:
    async def scenario(client: Client, publisher: MemoryPublisher) -> None:
        bad = {"Authorization": "Basic " + base64.b64encode(b"nope:").decode()}
        for headers, body in [({}, EVENT), (bad, EVENT), ({}, {**EVENT, "writeKey": "nope"})]:
            response = await client.post("/v1/track", json=body, headers=headers)
            assert response.status == 401
            assert (await response.json())["code"] == "unauthorized"

    assert _run(scenario).records == []


def test_limits_answer_400_with_a_reason() -> None:
    big = {**EVENT, "properties": {"blob": "x" * 40_000}}
    bomb = gzip.compress(b" " * 5_000_000)

    async def scenario(client: Client, publisher: MemoryPublisher) -> None:
        for route, data in [
            ("/v1/track", orjson.dumps(big)),
            ("/v1/batch", orjson.dumps({"batch": [EVENT] * 10_000})),
            ("/v1/batch", bomb),
            ("/v1/batch", b"{not json"),
        ]:
            response = await client.post(route, data=data, headers=AUTH)
            assert response.status == 400
            assert (await response.json())["code"] in {
                "event_too_large",
                "batch_too_large",
                "malformed_json",
            }

    assert _run(scenario).records == []


def test_over_the_rate_429_with_retry_after() -> None:
    clock = [0.0]

    async def scenario(client: Client, publisher: MemoryPublisher) -> None:
        batch = orjson.dumps({"batch": [{**EVENT, "type": "track"}] * 10})
        assert (await client.post("/v1/batch", data=batch, headers=AUTH)).status == 200
        limited = await client.post("/v1/track", json=EVENT, headers=AUTH)
        assert limited.status == 429
        assert limited.headers["Retry-After"] == "1"
        clock[0] = 0.5  # 5 tokens back
        assert (await client.post("/v1/track", json=EVENT, headers=AUTH)).status == 200

    assert len(_run(scenario, clock, rate_per_s=10.0, burst=10).records) == 11


def test_broker_unavailable_503_with_retry_after() -> None:
    async def scenario(client: Client, publisher: MemoryPublisher) -> None:
        publisher.available = False
        response = await client.post("/v1/track", json=EVENT, headers=AUTH)
        assert response.status == 503
        assert response.headers["Retry-After"] == "5"
        assert (await client.get("/health")).status == 503
        publisher.available = True
        assert (await client.get("/health")).status == 200

    assert _run(scenario).records == []


def test_cors_preflight_and_headers() -> None:
    async def scenario(client: Client, publisher: MemoryPublisher) -> None:
        origin = {"Origin": "https://shop.example"}
        preflight = await client.options(
            "/v1/t", headers={**origin, "Access-Control-Request-Method": "POST"}
        )
        assert preflight.status == 204
        assert preflight.headers["Access-Control-Allow-Origin"] == "https://shop.example"
        assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
        response = await client.post("/v1/t", json={**EVENT, "writeKey": "wk"}, headers=origin)
        assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"

    _run(scenario)


def test_the_collector_will_not_start_without_a_write_key() -> None:
    from agents.collector.main import run_collector
    from agents.settings import Settings

    assert run_collector(Settings(), CollectorSettings(write_keys=" , ")) == 2


def test_run_sends_whole_users_through_the_collector() -> None:
    from scripts.load import Prepared
    from scripts.run import _split

    events = [Prepared(f"m{i}", f"user-{i % 40}".encode(), b"{}", 0) for i in range(400)]
    direct, via_http = _split(events, 0.5)
    assert len(direct) + len(via_http) == 400 and direct and via_http
    assert not {e.key for e in direct} & {e.key for e in via_http}
    assert _split(events, 0.0)[1] == [] and _split(events, 1.0)[0] == []

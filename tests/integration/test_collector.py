"""The HTTP collector on the real embedded broker, driven by the official Segment SDK."""

from __future__ import annotations

import base64
import gzip
import os
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer
from segment.analytics.client import Client
from segment.analytics.request import APIError

from agents.admin import ensure_topics
from agents.settings import Settings
from scripts.broker import EmbeddedBroker
from scripts.kafkaio import consume
from scripts.load import partition_for
from scripts.procs import free_port
from tests.integration.conftest import CollectorFactory, WorkerFactory

pytestmark = pytest.mark.broker

KEY = "wk-test"


def _post(
    url: str, body: bytes, headers: dict[str, str] | None = None, key: str | None = KEY
) -> tuple[int, dict[str, object], dict[str, str]]:
    """POST with urllib; (status, JSON body, headers), whatever the status."""
    headers = dict(headers or {})
    if key is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, orjson.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        with error:  # an unclosed error response leaks its socket
            return error.code, orjson.loads(error.read()), dict(error.headers)


def _event(user: str, n: int) -> dict[str, object]:
    return {"type": "track", "userId": user, "event": "Product Viewed", "messageId": f"{user}-{n}",
            "properties": {"product_id": f"p{n}", "category": "books", "price": 9.5}}  # fmt: skip


def _stored(
    bootstrap: str, topic: str, expected: int | None = None
) -> list[tuple[bytes | None, dict[str, Any]]]:
    """(key, event) of every record of the events topic."""
    records = consume(bootstrap, topic, expected, idle_s=3.0, timeout_s=60.0, linger_s=1.0)
    return [(key, orjson.loads(value)) for key, value in records]


def test_sdk_events_reach_the_events_topic_and_produce_decisions(
    settings: Settings, start_collector: CollectorFactory, start_worker: WorkerFactory
) -> None:
    collector = start_collector()
    start_worker()
    users = [f"sdk-user-{i}" for i in range(8)]
    synchronous = Client(KEY, host=collector.url, sync_mode=True)
    for n, user in enumerate(users):  # one request per call, answered after the broker acked
        synchronous.track(user_id=user, event="Product Viewed", properties={"category": "books"})
        synchronous.page(anonymous_id=f"anon-{n}", name="Home")
    batched = Client(KEY, host=collector.url, gzip=True, upload_size=50, on_error=_fail)
    for n in range(200):
        properties = {"category": "games", "price": 20.0, "product_id": f"p{n}"}
        batched.track(user_id=users[n % 8], event="Product Added", properties=properties)
    batched.identify(user_id=users[0], traits={"plan": "gold"})
    batched.flush()
    batched.join()
    expected = 2 * len(users) + 201

    stored = _stored(settings.bootstrap_servers, settings.names.events, expected)
    assert len(stored) == expected
    for key, event in stored:
        assert key == str(event.get("userId") or event.get("anonymousId")).encode()
        assert "receivedAt" in event and "writeKey" not in event
        assert event["context"]["library"]["name"] == "analytics-python"
    assert {e["type"] for _, e in stored} == {"track", "page", "identify"}

    decisions = list(consume(settings.bootstrap_servers, settings.names.decisions, expected,
                             idle_s=30.0, timeout_s=120.0))  # fmt: skip
    message_ids = {orjson.loads(v)["event"]["message_id"] for _, v in decisions}
    assert message_ids == {e["messageId"] for _, e in stored}


def _fail(error: Exception, items: object) -> None:
    raise AssertionError(f"SDK upload failed: {error}")


def test_events_land_on_their_users_partition(
    settings: Settings, start_collector: CollectorFactory
) -> None:
    collector = start_collector()
    batch = [_event(f"p-user-{i}", i) for i in range(60)]
    status, _, _ = _post(f"{collector.url}/v1/batch", orjson.dumps({"batch": batch}))
    assert status == 200
    consumer = KafkaConsumer(settings.names.events, bootstrap_servers=settings.bootstrap_servers,
                             auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip
    seen: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + 30
    while len(seen) < 60 and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            seen.extend((r.partition, r.key) for r in records)
    consumer.close()
    assert len(seen) == 60
    assert all(part == partition_for(key, settings.partitions) for part, key in seen)


def test_the_http_edge_answers(settings: Settings, start_collector: CollectorFactory) -> None:
    collector = start_collector(collector_rate_per_s=1, collector_burst=20)
    url = f"{collector.url}/v1/batch"
    body = orjson.dumps({"batch": [_event("edge-user", n) for n in range(5)]})

    status, reply, _ = _post(url, gzip.compress(body), {"Content-Type": "text/plain"})
    assert (status, reply) == (200, {"success": True})
    assert _post(url, body, key=None)[0] == 401
    assert _post(url, body, key="wrong")[0] == 401
    huge = orjson.dumps({"batch": [{**_event("edge-user", 99), "properties": {"x": "y" * 33_000}}]})
    status, reply, _ = _post(url, huge)
    assert (status, reply["code"]) == (400, "event_too_large")
    status, reply, headers = _post(url, orjson.dumps({"batch": [_event("edge-user", 7)] * 30}))
    assert (status, reply["code"]) == (429, "rate_limited")
    assert int(headers["Retry-After"]) >= 1

    stored = _stored(settings.bootstrap_servers, settings.names.events)
    assert sorted(e["messageId"] for _, e in stored) == [f"edge-user-{n}" for n in range(5)]


def test_503_when_the_broker_is_unreachable(start_collector: CollectorFactory) -> None:
    collector = start_collector(wait_connected=False, bootstrap_servers=f"127.0.0.1:{free_port()}")
    client = Client(KEY, host=collector.url, sync_mode=True)
    with pytest.raises(APIError) as error:
        client.track(user_id="u", event="Product Viewed")
    assert error.value.status == 503
    status, reply, headers = _post(f"{collector.url}/v1/t", orjson.dumps(_event("u", 1)))
    assert (status, reply["code"], headers["Retry-After"]) == (503, "unavailable", "5")
    health = urllib.request.Request(f"{collector.url}/health")
    with pytest.raises(urllib.error.HTTPError) as unhealthy:
        urllib.request.urlopen(health, timeout=10)
    assert unhealthy.value.code == 503
    unhealthy.value.close()


def test_nothing_acknowledged_is_lost_while_the_broker_stalls(
    tmp_path: Path, start_collector: CollectorFactory
) -> None:
    """The broker is frozen (SIGSTOP) mid-stream: requests get 503 after the send timeout, and
    every request answered 200 before, during or after is in the topic."""
    own = EmbeddedBroker(port=free_port(), run_dir=tmp_path / "stalling").start()
    try:
        stalling = Settings(bootstrap_servers=own.bootstrap, prefix="stall", partitions=4)
        ensure_topics(stalling)
        collector = start_collector(
            bootstrap_servers=own.bootstrap, prefix="stall", collector_send_timeout_s=1.5
        )
        acked, statuses, stop, sender = _send_in_background(collector.url)
        time.sleep(1.0)
        assert own.process is not None
        pid = own.process.pid
        os.kill(pid, signal.SIGSTOP)
        time.sleep(4.0)
        os.kill(pid, signal.SIGCONT)
        time.sleep(3.0)
        stop.set()
        sender.join(timeout=40.0)
        stored = {e["messageId"] for _, e in _stored(own.bootstrap, stalling.names.events)}
        assert 503 in statuses and statuses[-1] == 200  # it failed, and it recovered
        assert acked and acked <= stored
    finally:
        own.stop()


def _send_in_background(url: str) -> tuple[set[str], list[int], threading.Event, threading.Thread]:
    acked: set[str] = set()
    statuses: list[int] = []
    stop = threading.Event()

    def send() -> None:
        while not stop.is_set():
            batch = [_event("stall-user", n) | {"messageId": str(uuid.uuid4())} for n in range(10)]
            status = _post(f"{url}/v1/batch", orjson.dumps({"batch": batch}))[0]
            statuses.append(status)
            if status == 200:
                acked.update(str(e["messageId"]) for e in batch)
            time.sleep(0.02)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    return acked, statuses, stop, sender

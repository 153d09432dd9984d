"""Send prepared events through the HTTP collector, as an SDK would: ``/v1/batch`` requests of
up to ``batch`` events over one keep-alive connection, Basic auth with the write key.

Requests answered 429 or 503 are retried after ``Retry-After`` (as Segment's SDKs do); any other
refusal stops the sender with :class:`CollectorRefused`.
"""

from __future__ import annotations

import base64
import http.client
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from scripts.load import Prepared
from scripts.pipeline import now_ms

__all__ = ["CollectorRefused", "post_batches"]

_RETRIED = frozenset({429, 503})


class CollectorRefused(RuntimeError):
    """The collector refused a request for good (not a 429 or a 503)."""


def post_batches(
    url: str,
    write_key: str,
    events: Iterable[Prepared],
    sent_ms: dict[str, int],
    batch: int = 100,
    rate_per_s: float | None = None,
    on_sent: Callable[[int], None] | None = None,
    max_retries: int = 20,
) -> int:
    """Post every event in ``/v1/batch`` requests; return how many the collector acknowledged.

    ``rate_per_s`` paces by schedule (a request is due when its first event is), None: at once.
    """
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    headers = {"Authorization": auth, "Content-Type": "application/json"}
    sent, start = 0, time.monotonic()
    try:
        for chunk in _chunks(events, batch):
            if rate_per_s:
                time.sleep(max(0.0, start + sent / rate_per_s - time.monotonic()))
            body = b'{"batch":[' + b",".join(e.value for e in chunk) + b"]}"
            stamp = now_ms()
            for event in chunk:
                sent_ms[event.message_id] = stamp
            _post(connection, body, headers, max_retries)
            sent += len(chunk)
            if on_sent is not None:
                on_sent(len(chunk))
    finally:
        connection.close()
    return sent


def _chunks(events: Iterable[Prepared], size: int) -> Iterator[list[Prepared]]:
    iterator = iter(events)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _post(
    connection: http.client.HTTPConnection, body: bytes, headers: dict[str, str], retries: int
) -> None:
    for _ in range(retries + 1):
        connection.request("POST", "/v1/batch", body=body, headers=headers)
        response = connection.getresponse()
        reply = response.read()
        if response.status == 200:
            return
        if response.status not in _RETRIED:
            raise CollectorRefused(f"collector answered {response.status}: {reply[:300]!r}")
        time.sleep(float(response.headers.get("Retry-After") or 1))
    raise CollectorRefused(f"collector still answering {response.status} after {retries} retries")

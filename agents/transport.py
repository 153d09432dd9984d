"""A Faust transport for the embedded broker (Tansu) that reads high-waters from a Fetch.

Why: Tansu answers ListOffsets(latest) with the newest *batch's* base offset + 1, so for a
changelog written in batches ``end_offsets()`` is too low. Faust's table recovery trusts that
number, stops early and silently loses updates (or fails its consistency check). The high
watermark in a Fetch response is right, so for each partition with data we fetch from
``listed - 1`` and take the response's high watermark.

Second quirk: Tansu does not answer a pending Fetch early when new records arrive; it holds it
for the whole ``fetch_max_wait_ms``. Faust hard-codes 1,500 ms, which put ~0.5-1.5 s of latency
on every event at low load (measured: aiokafka consumer, 552 ms median at 1,500 ms, 5 ms at
100 ms). The worker's consumer here waits at most :data:`FETCH_MAX_WAIT_MS`.

This is registered under its own URL scheme (``tansu://``) and used only by the ``embedded``
broker profile; the ``kafka`` profile uses Faust's stock aiokafka transport.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

import aiokafka
from faust.transport.drivers import TRANSPORTS
from faust.transport.drivers.aiokafka import (
    AIOKafkaConsumerThread,
    Consumer,
    Transport,
    server_list,
)
from faust.types import TP

__all__ = [
    "FETCH_MAX_WAIT_MS",
    "SCHEME",
    "FetchHighwaterTransport",
    "HighwaterProbeError",
    "register",
]

SCHEME = "tansu"
#: Upper bound on a Fetch's wait: a bound on added latency, at the price of idle polling.
FETCH_MAX_WAIT_MS = 10
_PROBE_TIMEOUT_MS = 5_000


class HighwaterProbeError(RuntimeError):
    """The Fetch probe got no high watermark for some changelog partitions in time."""


class _FetchHighwaterConsumerThread(AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Transport) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # Read by the consumer's start() when it builds its fetcher; there is no public setter.
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer

    async def _highwaters(self, partitions: list[TP]) -> Mapping[TP, int]:
        listed: Mapping[TP, int] = await super()._highwaters(partitions)
        with_data = {tp: offset for tp, offset in listed.items() if offset}
        if not with_data or self.consumer.in_transaction:
            return listed
        fetched = await self._fetch_highwaters(with_data)
        return {tp: max(offset, fetched.get(tp, offset)) for tp, offset in listed.items()}

    async def _fetch_highwaters(self, listed: Mapping[TP, int]) -> dict[TP, int]:
        transport = cast(Transport, self.transport)
        probe = aiokafka.AIOKafkaConsumer(
            bootstrap_servers=server_list(transport.url, transport.default_port),
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
        )
        await probe.start()
        try:
            return await _probe_highwaters(probe, listed)
        finally:
            await probe.stop()


async def _probe_highwaters(probe: Any, listed: Mapping[TP, int]) -> dict[TP, int]:
    partitions = [aiokafka.TopicPartition(tp.topic, tp.partition) for tp in listed]
    probe.assign(partitions)
    for tp, offset in listed.items():
        probe.seek(aiokafka.TopicPartition(tp.topic, tp.partition), offset - 1)
    pending = set(partitions)
    result: dict[TP, int] = {}
    for _ in range(20):
        await probe.getmany(*pending, timeout_ms=_PROBE_TIMEOUT_MS // 20)
        _collect(probe, pending, result)
        if not pending:
            return result
    # Falling back to ListOffsets would silently recover too little: fail, and let Faust retry.
    raise HighwaterProbeError(f"no Fetch answer with a high watermark for {sorted(pending)}")


def _collect(probe: Any, pending: set[Any], result: dict[TP, int]) -> None:
    for tp in list(pending):
        highwater = probe.highwater(tp)
        if highwater is not None:
            result[TP(tp.topic, tp.partition)] = highwater
            pending.discard(tp)


class _FetchHighwaterConsumer(Consumer):
    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return _FetchHighwaterConsumerThread(self, loop=self.loop, beacon=self.beacon)


class FetchHighwaterTransport(Transport):
    """Faust's aiokafka transport, with high-waters taken from Fetch responses."""

    Consumer = _FetchHighwaterConsumer


def register(schemes: Iterable[str] = (SCHEME,)) -> None:
    """Make ``tansu://host:port`` broker URLs use :class:`FetchHighwaterTransport`."""
    for scheme in schemes:
        TRANSPORTS.aliases[scheme] = f"{__name__}:FetchHighwaterTransport"

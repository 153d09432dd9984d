"""Where accepted events go: a :class:`Publisher` that returns only once the broker acknowledged
every record, or raises :class:`~agents.collector.errors.Unavailable`.

:class:`KafkaPublisher` is the aiokafka one (``acks=all``; idempotent on the ``kafka`` profile,
not on the embedded broker, which refuses aiokafka's idempotent producer); it connects in the
background, so the collector serves (503s) while the broker is down and recovers when it is back.
:class:`MemoryPublisher` keeps records in a list, for tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from agents.collector.errors import Unavailable
from agents.collector.request import Record
from agents.settings import BrokerProfile, Settings

__all__ = ["KafkaPublisher", "MemoryPublisher", "Publisher"]

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """Stores records durably, or says it did not."""

    @property
    def ready(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, records: Sequence[Record]) -> None:
        """Return once every record is acknowledged; raise ``Unavailable`` otherwise."""
        ...


class MemoryPublisher:
    """Appends to ``records``; ``available = False`` makes it fail like a dead broker."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.available = True

    @property
    def ready(self) -> bool:
        return self.available

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, records: Sequence[Record]) -> None:
        if not self.available:
            raise Unavailable("memory publisher switched off")
        self.records.extend(records)


class KafkaPublisher:
    """Produces to the events topic (the ingest topic when identities are stitched: see
    ``Settings.ingress_topic``) with aiokafka, keyed by user key (the default partitioner
    is murmur2, as Java's: the same partition as every other producer of the project)."""

    def __init__(self, settings: Settings, timeout_s: float, reconnect_s: float = 5.0) -> None:
        self.settings = settings
        self.topic = settings.ingress_topic
        self.timeout_s = timeout_s
        self.reconnect_s = reconnect_s  # the longest wait between two connection attempts
        self._producer: AIOKafkaProducer | None = None
        self._connecting: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self._producer is not None

    async def start(self) -> None:
        self._connecting = asyncio.create_task(self._connect(), name="kafka-connect")

    async def _connect(self) -> None:
        delay_s = 0.25
        while self._producer is None:
            producer = AIOKafkaProducer(**self._options())
            try:
                await producer.start()
            except (KafkaError, OSError) as exc:
                log.warning("broker %s unreachable (%s)", self.settings.bootstrap_servers, exc)
                with contextlib.suppress(Exception):
                    await producer.stop()
                await asyncio.sleep(delay_s)
                delay_s = min(2 * delay_s, self.reconnect_s)
            else:
                self._producer = producer
                log.info("connected to %s", self.settings.bootstrap_servers)

    def _options(self) -> dict[str, Any]:
        return {
            "bootstrap_servers": self.settings.bootstrap_servers.split(","),
            "acks": "all",
            "enable_idempotence": self.settings.broker_profile is BrokerProfile.KAFKA,
            "linger_ms": 2,
            "max_batch_size": 512 * 1024,
            "max_request_size": 4 * 1024 * 1024,
            "request_timeout_ms": int(self.timeout_s * 1000),
            "client_id": "liveprofiles-collector",
        }

    async def stop(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        if self._producer is not None:
            await self._producer.stop()  # flushes what is in flight
            self._producer = None

    async def publish(self, records: Sequence[Record]) -> None:
        producer = self._producer
        if producer is None:
            raise Unavailable(f"not connected to {self.settings.bootstrap_servers}")
        try:
            await asyncio.wait_for(self._send_all(producer, records), self.timeout_s)
        except (KafkaError, OSError, TimeoutError) as exc:
            raise Unavailable(f"{type(exc).__name__}: {exc}") from exc

    async def _send_all(self, producer: AIOKafkaProducer, records: Sequence[Record]) -> None:
        acks = [await producer.send(self.topic, value=r.value, key=r.key) for r in records]
        await asyncio.gather(*acks)

"""The identity stage in the worker (stream.router): its topics, tables and two agents.

* ``route-identities`` reads the one-partition ingest topic in order, routes each record
  (:func:`stream.router.route_event`) and sends, in that order, the link control records and
  the event to the events topic. A link is recorded in the ``identities`` table only once the
  broker acknowledged what it sent: a crash in between sends the links again (both halves are
  idempotent) instead of recording a link whose merge was never asked for. A record that is not
  a valid event goes on as it came, for the events agent to dead-letter as a replay would.
* ``receive-handoffs`` keeps each handoff (what a key's partition handed over) in the
  ``handoffs`` table of the person's partition until the person's await takes it over.

Control records carry a header that only this stage sets (:data:`CONTROL_HEADER`); the stage
never forwards a producer's headers, so an event that looks like a control record stays an event.
In the ingest topic the header marks an erasure's unlink (:meth:`IdentityStage.unlink`): a
producer that sets it can make the stage forget links, nothing more (it reads no other kind).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import faust
from faust.types import TP, EventT, StreamT

from agents.guard import handle_or_exit
from agents.settings import Settings
from agents.topics import raw_table, raw_topic
from stream import DeadLetter, decode_event
from stream.erasure import Suppression, subject_of
from stream.exceptions import SnapshotError
from stream.identity import Handoff
from stream.router import LINK_SCHEMA, Link, Unlink, route_event

__all__ = ["CONTROL_HEADER", "IdentityStage", "is_control"]

log = logging.getLogger(__name__)

#: The header that marks an identity control record in the events topic.
CONTROL_HEADER = "liveprofiles-control"
_CONTROL_HEADERS = [(CONTROL_HEADER, LINK_SCHEMA.encode())]


def is_control(headers: Any) -> bool:
    """Whether a record's headers (Faust gives a list of pairs or a mapping) mark it as an
    identity control record."""
    if not headers:
        return False
    pairs = headers.items() if isinstance(headers, dict) else headers
    return any(key == CONTROL_HEADER for key, _ in pairs)


def _table_key(key: str, person: str, at_ms: int) -> bytes:
    return f"{key}\x1f{person}\x1f{at_ms}".encode()


class IdentityStage:
    """Topics, tables and agents of identity stitching for one app (built by the factory)."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        in_partition_of: Any,
        clock: Callable[[], int],
    ) -> None:
        names = settings.names
        self._names, self._app, self._in_partition_of = names, app, in_partition_of
        self._secret = settings.privacy_secret.encode()
        self._clock, self._timeout_ms = clock, int(settings.identity_handoff_timeout_s * 1000)
        #: Processing time each await started waiting (agents.batch stops at it).
        self._waiting_since: dict[bytes, int] = {}
        #: Events partitions paused at an await: partition -> (its offset, the link).
        self._paused: dict[int, tuple[int, Link]] = {}
        #: The erasure in force for a key (agents.erasure; set once the eraser is built): a
        #: handoff for an erased person arriving after their erasure is not kept.
        self.suppression_of: Callable[[str], Suppression | None] = lambda _key: None
        ingest = raw_topic(app, names.ingest, 1)
        handoffs = raw_topic(app, names.handoffs, settings.partitions)
        self.identities = raw_table(app, names.identities_table, 1)
        self.handoffs = raw_table(app, names.handoffs_table, settings.partitions)

        @app.agent(ingest, name="route-identities")
        async def route_identities(stream: StreamT[Any]) -> None:
            batches = cast(faust.Stream[bytes], stream).take_events(
                settings.batch_max, within=settings.batch_within_s
            )
            async for batch in batches:
                await handle_or_exit(self._route, batch)

        @app.agent(handoffs, name="receive-handoffs")
        async def receive_handoffs(stream: StreamT[Any]) -> None:
            async for record in stream.events():
                await handle_or_exit(self._receive, record)

    async def _route(self, batch: Sequence[EventT[bytes]]) -> None:
        links: dict[str, str] = {}  # made in this batch, recorded once sent
        unlinked: set[str] = set()  # erased in this batch
        erased: dict[bytes, int] = {}  # erasure markers made in this batch
        identities = self.identities

        def linkable(key: str, at_ms: int) -> bool:
            marker = self._erased_marker(key)
            until = erased.get(marker)
            if until is None:
                with self._in_partition_of(batch[0]):
                    stored = identities.get(marker)
                until = None if stored is None else int(bytes(stored))
            return until is None or at_ms > until

        def person_of(key: str) -> str | None:
            if key in links:
                return links[key]
            if key in unlinked:
                return None
            with self._in_partition_of(batch[0]):
                stored = identities.get(key.encode())
            return None if stored is None else bytes(stored).decode()

        def link(key: str, person: str) -> None:
            links[key] = person
            unlinked.discard(key)

        out: list[tuple[bytes | None, bytes, bool]] = []
        for record in batch:
            value = record.message.value or b""
            if is_control(record.message.headers):
                try:
                    unlink = Unlink.from_bytes(value)
                except SnapshotError:
                    log.exception("unreadable identity control record in the ingest topic")
                    continue
                for key in unlink.keys:
                    links.pop(key, None)
                    unlinked.add(key)
                    erased[self._erased_marker(key)] = unlink.until_ms
                continue
            decoded = decode_event(value, None, record.message.key)
            if isinstance(decoded, DeadLetter):
                out.append((record.message.key, value, False))
                continue
            routing = route_event(decoded, person_of, link, linkable)
            out.extend((link.record_key.encode(), link.to_bytes(), True) for link in routing.links)
            out.append((routing.person.encode(), value, False))
        producer, topic = self._app.producer, self._names.events
        pending = [
            await producer.send(
                topic, key, value, None, None, _CONTROL_HEADERS if control else None
            )
            for key, value, control in out
        ]
        await producer.flush()
        await asyncio.gather(*pending)
        with self._in_partition_of(batch[0]):
            for key, person in links.items():
                identities[key.encode()] = person.encode()
            for key in unlinked:
                # Deleting writes the tombstone even when nothing was stored.
                del identities[key.encode()]
            for marker, until in erased.items():
                identities[marker] = str(until).encode()

    def _erased_marker(self, key: str) -> bytes:
        """Where the stage notes that ``key`` was erased: under its pseudonym, never the key
        (stream.erasure.subject_of), after a byte no key starts with in practice."""
        return b"\x00erased\x1f" + subject_of(key, self._secret).encode()

    async def unlink(self, key: str, until_ms: int) -> None:
        """Ask the stage to forget ``key``'s links, and to link it again from no event up to
        ``until_ms`` (an erasure and its suppression); returns once acknowledged."""
        record = Unlink((key,), until_ms).to_bytes()
        await self._app.producer.send_and_wait(
            self._names.ingest, key.encode(), record, None, None, _CONTROL_HEADERS
        )

    def drop_handoffs_to(self, person: str, until_ms: int) -> int:
        """Remove the handoffs waiting for ``person`` from links up to ``until_ms`` (an erasure
        and its suppression; in the person's partition's context); how many there were."""
        mine = []
        for stored in list(self.handoffs.keys()):
            key = bytes(stored)
            fields = key.split(b"\x1f")
            if len(fields) == 3 and fields[1] == person.encode() and int(fields[2]) <= until_ms:
                mine.append(key)
        for key in mine:
            del self.handoffs[key]
        return len(mine)

    async def _receive(self, record: EventT[bytes]) -> None:
        try:
            handoff = Handoff.from_bytes(record.message.value or b"")
        except SnapshotError:
            log.exception("unreadable identity handoff at offset %d", record.message.offset)
            return
        suppression = self.suppression_of(handoff.person)
        if suppression is not None and suppression.covers(handoff.at_ms):
            return  # the person was erased: their await will not wait for it
        self.handoffs[_table_key(handoff.key, handoff.person, handoff.at_ms)] = record.message.value
        waiting = self._paused.get(record.message.partition)
        if waiting is not None and (waiting[1].key, waiting[1].person) == (
            handoff.key,
            handoff.person,
        ):
            await self._resume(record.message.partition)

    def forget_partition(self, partition: int) -> None:
        """The events partition was revoked: it waits no more here (its new owner processes
        it from the committed offset, the await included)."""
        self._paused.pop(partition, None)

    def is_waiting(self, partition: int) -> bool:
        """Whether the events partition is paused at an await (its records are held)."""
        return partition in self._paused

    async def wait(self, partition: int, offset: int, link: Link) -> None:
        """Pause the events partition at the await at ``offset`` until its handoff arrives:
        no fetching while it waits (the handoff agent resumes it, or :meth:`retry_waiting`)."""
        consumer = self._app.consumer
        tp = TP(self._names.events, partition)
        await consumer.seek_wait({tp: offset})
        consumer.pause_partitions([tp])
        self._paused[partition] = (offset, link)
        if self.handoffs.get(_table_key(link.key, link.person, link.at_ms)) is not None:
            await self._resume(partition)  # it arrived in the meantime

    async def _resume(self, partition: int) -> None:
        paused = self._paused.pop(partition, None)
        if paused is None:
            return
        consumer = self._app.consumer
        tp = TP(self._names.events, partition)
        # From the await again: records fetched before the pause were held, not processed.
        await consumer.seek_wait({tp: paused[0]})
        consumer.resume_partitions([tp])

    async def retry_waiting(self) -> None:
        """Fetch every waiting partition again (a timer): an await whose handoff never comes
        must reach its timeout (:meth:`handoff_of`)."""
        for partition in list(self._paused):
            await self._resume(partition)

    def handoff_of(self, link: Link) -> Handoff | None:
        """The handoff an await waits for, if it has arrived (read in the await's partition).

        A handoff normally arrives within a round trip. One that has not after
        ``identity_handoff_timeout_s`` (processing time) is given up on: the link is recorded
        with nothing merged, logged, and the partition goes on. Liveness over exactness, for
        failures only (a record Faust dropped, a crash between two changelogs' writes)."""
        table_key = _table_key(link.key, link.person, link.at_ms)
        stored = self.handoffs.get(table_key)
        if stored is not None:
            self._waiting_since.pop(table_key, None)
            return Handoff.from_bytes(bytes(stored))
        now = self._clock()
        since = self._waiting_since.setdefault(table_key, now)
        if now - since < self._timeout_ms:
            return None
        del self._waiting_since[table_key]
        log.warning(
            "identity link %s -> %s: no handoff after %d ms, linked without merging",
            link.key,
            link.person,
            now - since,
            extra={"link_at_ms": link.at_ms},
        )
        return Handoff(link.key, link.person, link.at_ms, link.at_ms, None)

    def drop_taken(self, taken: Iterable[Link]) -> None:
        """Remove the handoffs these awaits took over (in their partition's context)."""
        for link in taken:
            key = _table_key(link.key, link.person, link.at_ms)
            if key in self.handoffs:
                del self.handoffs[key]

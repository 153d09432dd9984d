"""Replay a recorded Segment NDJSON log (optionally gzip), offline or through Kafka.

    python -m scripts.replay events.ndjson.gz --offline --out decisions.ndjson
    python -m scripts.replay events.ndjson.gz --bootstrap 127.0.0.1:9092 --out decisions.ndjson
    python -m scripts.replay events.ndjson.gz --offline --check golden.decisions.ndjson.gz

``--offline`` runs the pure step in this process (no broker). Otherwise each line is sent to
the events topic as-is, keyed by its user key (``userId``, else ``anonymousId``) so one user's
events keep their order on one partition, and, with ``--out`` or ``--check``, the decisions a
running worker publishes are collected. Either way the decisions are written in canonical form
(no ``processing`` block), one per line, in the order of the log: the two modes give the same
bytes. Lines that are not valid events produce no decision (the worker dead-letters them).

Exit codes: 0 done (and equal, with ``--check``), 1 ``--check`` found a difference,
2 bad arguments, unreadable file, or broker unreachable.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
from kafka import KafkaConsumer
from kafka.errors import KafkaError
from tqdm import tqdm

from agents.names import DEFAULT_PREFIX, Names
from scripts.golden import first_difference
from scripts.kafkaio import new_producer, produce_events
from stream import Decision, StepConfig, canonical_bytes
from stream.replay import replay_outputs

__all__ = ["kafka_decisions", "main", "offline_decisions", "read_lines"]


def read_lines(path: Path) -> Iterator[bytes]:
    """Non-empty lines of an NDJSON file, gunzipped when the name ends in ``.gz``."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        for line in handle:
            stripped = line.strip()
            if stripped:
                yield stripped


def offline_decisions(lines: list[bytes], config: StepConfig | None = None) -> bytes:
    """The log's distinct decisions from the pure step, canonical, one per line, in log order.

    Distinct by decision id, first one kept, as a consumer dropping duplicates sees them: an
    event repeated beyond the dedupe window is applied again under the same decision id.
    """
    seen: set[str] = set()
    out = []
    for output in replay_outputs(lines, config or StepConfig()):
        if isinstance(output, Decision) and output.decision_id not in seen:
            seen.add(output.decision_id)
            out.append(output.to_bytes() + b"\n")
    return b"".join(out)


def kafka_decisions(
    lines: list[bytes], bootstrap: str, names: Names, idle_s: float = 10.0, timeout_s: float = 300.0
) -> bytes:
    """Send the log to the events topic and collect what a running worker decides.

    Decisions are matched to the log by their event's message id and written in log order,
    the first one per decision id (redeliveries repeat ids), so the result can be compared
    byte for byte with :func:`offline_decisions`. Collection stops
    when no new decision for this log arrived for ``idle_s`` seconds (or at ``timeout_s``).
    """
    order = _first_line_of_event(lines)
    producer = new_producer(bootstrap)
    try:
        produce_events(producer, names.events, lines)
    finally:
        producer.close()
    return b"".join(_collect(bootstrap, names.decisions, order, idle_s, timeout_s))


def _first_line_of_event(lines: list[bytes]) -> dict[tuple[str, str], int]:
    """(message id, user key) -> the index of its first line: decisions are ordered by it."""
    order: dict[tuple[str, str], int] = {}
    for index, raw in enumerate(lines):
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(doc, dict):
            continue
        message_id, user = doc.get("messageId"), doc.get("userId") or doc.get("anonymousId")
        if isinstance(message_id, str) and user is not None:
            order.setdefault((message_id, str(user)), index)
    return order


def _collect(
    bootstrap: str, topic: str, order: dict[tuple[str, str], int], idle_s: float, timeout_s: float
) -> list[bytes]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    found: dict[str, tuple[int, bytes]] = {}  # decision id -> (line of its event, decision)
    deadline = time.monotonic() + timeout_s
    last_new = time.monotonic()
    try:
        while time.monotonic() < deadline and time.monotonic() - last_new < idle_s:
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    doc = orjson.loads(record.value)
                    index = order.get((str(doc["event"]["message_id"]), str(doc["user"]["key"])))
                    if index is not None and doc["decision_id"] not in found:
                        found[doc["decision_id"]] = (index, canonical_bytes(record.value) + b"\n")
                        last_new = time.monotonic()
    finally:
        consumer.close()
    return [line for _, line in sorted(found.values())]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("log", type=Path, help="Segment NDJSON file (.ndjson or .ndjson.gz)")
    parser.add_argument("--offline", action="store_true", help="pure step, no broker")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="broker host:port")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="topic name prefix")
    parser.add_argument("--out", type=Path, help="write the decisions (NDJSON) here")
    parser.add_argument("--check", type=Path, help="compare the decisions with this file")
    parser.add_argument(
        "--idle",
        type=float,
        default=10.0,
        help="through Kafka: stop collecting after this many idle seconds",
    )
    args = parser.parse_args(argv)
    if not args.log.is_file():
        parser.error(f"{args.log}: no such file")
    if args.check is not None and not args.check.is_file():
        parser.error(f"{args.check}: no such file")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        lines = list(
            tqdm(read_lines(args.log), unit="ev", desc="read", file=sys.stderr, disable=None)
        )
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        print(f"cannot read {args.log}: {exc}", file=sys.stderr)
        return 2
    wants_decisions = args.offline or args.out is not None or args.check is not None
    try:
        decisions = (
            offline_decisions(lines)
            if args.offline
            else _through_kafka(args, lines, wants_decisions)
        )
    except KafkaError as exc:
        print(f"cannot reach the broker at {args.bootstrap}: {exc}", file=sys.stderr)
        return 2
    return _report(args, decisions)


def _through_kafka(args: argparse.Namespace, lines: list[bytes], collect: bool) -> bytes:
    names = Names(args.prefix)
    if collect:
        return kafka_decisions(lines, args.bootstrap, names, idle_s=args.idle)
    producer = new_producer(args.bootstrap)
    try:
        produce_events(producer, names.events, lines)
    finally:
        producer.close()
    print(f"sent {len(lines):,} events to {names.events}")
    return b""


def _report(args: argparse.Namespace, decisions: bytes) -> int:
    count = decisions.count(b"\n")
    if args.out is not None:
        args.out.write_bytes(decisions)
        print(f"wrote {count:,} decisions to {args.out}")
    if args.check is None:
        return 0
    expected = read_bytes(args.check)
    difference = first_difference(expected, decisions)
    print(f"{args.check}: {'same decisions' if difference is None else 'DIFFERENT ' + difference}")
    return 0 if difference is None else 1


def read_bytes(path: Path) -> bytes:
    """A file's bytes, gunzipped when the name ends in ``.gz``."""
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


if __name__ == "__main__":
    raise SystemExit(main())

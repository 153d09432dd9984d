"""Replay a recorded Segment NDJSON log (optionally gzip), offline or through Kafka.

    python -m scripts.replay events.ndjson.gz --offline --out decisions.ndjson
    python -m scripts.replay events.ndjson.gz --bootstrap 127.0.0.1:9092 --out decisions.ndjson
    python -m scripts.replay events.ndjson.gz --bootstrap 127.0.0.1:9092 --pace 10x
    python -m scripts.replay events.ndjson.gz --offline --check golden.decisions.ndjson.gz
    python -m scripts.replay events.ndjson.gz --offline --out d.ndjson --rewards r.ndjson \
        --policy my-policy.json

``--offline`` runs the pure step in this process (no broker). Otherwise each line is sent to
the events topic as-is, keyed by its user key (``userId``, else ``anonymousId``) so one user's
events keep their order on one partition, and, with ``--out`` or ``--check``, the decisions a
running worker publishes are collected. Either way the decisions are written in canonical form
(no ``processing`` block), one per line, in the order of the log: the two modes give the same
bytes. Lines that are not valid events produce no decision (the worker dead-letters them).

``--pace`` sets how fast lines go to the broker: ``fast`` (the default: as fast as possible),
``realtime``, or ``Nx`` (e.g. ``10x``: N times faster than real time), by event time
(``timestamp``, else ``originalTimestamp``, else ``receivedAt``); see :mod:`scripts.pacing`.
Paced or not, the decisions are the same: only the wall-clock spacing of the sends changes.

Offline, ``--rewards`` writes what each decision earned (``reward.v1``) for off-policy
evaluation (``python -m scripts.ope d.ndjson r.ndjson --policy greedy``), ``--policy`` replays
under another policy file, and ``--stored-properties`` under another allow-list of the event
properties profiles keep (e.g. ``product_id,category,price``), and ``--stitch-identities`` with
identity stitching (stream.identity); through Kafka the worker's own settings decide
(``LIVEPROFILES_POLICY_FILE``, ``LIVEPROFILES_STORED_PROPERTIES``,
``LIVEPROFILES_STITCH_IDENTITIES``: then give ``--stitch-identities`` too, so the log goes to
the ingest topic) and its rewards go to the rewards topic.

Exit codes: 0 done (and equal, with ``--check``), 1 ``--check`` found a difference,
2 bad arguments, unreadable file (the message names the line), or broker unreachable,
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import gzip
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import orjson
from kafka import KafkaConsumer
from kafka.errors import KafkaError
from tqdm import tqdm

from agents.names import DEFAULT_PREFIX, Names
from scripts.golden import decisions_file, first_difference
from scripts.kafkaio import new_producer, produce_events, user_key_of
from scripts.pacing import SYSTEM_CLOCK, Clock, Plan, follow, parse_pace, plan
from stream import Decision, StepConfig, canonical_bytes
from stream.config import DEFAULT_STORED_PROPERTIES, parse_properties
from stream.exceptions import ConfigError
from stream.policyconfig import DEFAULT_POLICY, load_policy
from stream.replay import DEFAULT_PARTITIONS, replay_outputs
from stream.rewards import Reward

__all__ = [
    "LogError",
    "collect_decisions",
    "kafka_decisions",
    "main",
    "offline_decisions",
    "read_lines",
    "read_numbered",
    "send_log",
]


class LogError(Exception):
    """A log that cannot be read; the message names the file and the line reading stopped at."""


def read_numbered(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line) for the non-empty lines of an NDJSON file, gunzipped when the name
    ends in ``.gz``; :class:`LogError` when the file cannot be read, e.g. a truncated gzip."""
    opener = gzip.open if path.suffix == ".gz" else open
    number = 0
    try:
        with opener(path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                stripped = line.strip()
                if stripped:
                    yield number, stripped
    except (OSError, EOFError, zlib.error) as exc:
        raise LogError(f"{path}: line {number + 1}: {exc}") from exc


def read_lines(path: Path) -> Iterator[bytes]:
    """Non-empty lines of an NDJSON file, gunzipped when the name ends in ``.gz``."""
    return (line for _, line in read_numbered(path))


def offline_decisions(
    lines: list[bytes], config: StepConfig | None = None, partitions: int = DEFAULT_PARTITIONS
) -> bytes:
    """The log's decisions from the pure step, as a decisions file (:func:`decisions_file`).

    ``partitions`` must be the events topic's partition count for the decisions to match a run
    through Kafka: each partition has its own models (stream.partition).
    """
    return offline_outputs(lines, config, partitions)[0]


NEWLINE = b"\n"


def offline_outputs(
    lines: list[bytes], config: StepConfig | None = None, partitions: int = DEFAULT_PARTITIONS
) -> tuple[bytes, bytes]:
    """The log's decisions file and its settled rewards (``reward.v1`` NDJSON, in order)."""
    decisions: list[Decision] = []
    rewards: list[bytes] = []
    for output in replay_outputs(lines, config or StepConfig(), partitions=partitions):
        if isinstance(output, Decision):
            decisions.append(output)
        elif isinstance(output, Reward):
            rewards.append(output.to_bytes() + b"\n")
    return decisions_file(decisions), b"".join(rewards)


def kafka_decisions(
    lines: list[bytes],
    bootstrap: str,
    names: Names,
    idle_s: float = 10.0,
    timeout_s: float = 300.0,
    pace: float | None = None,
    stitching: bool = False,
) -> bytes:
    """Send the log to the events topic (at ``pace``, see :func:`send_log`; the ingest topic
    when the worker stitches identities) and collect what a running worker decides
    (:func:`collect_decisions`)."""
    topic = names.ingest if stitching else names.events
    send_log(lines, bootstrap, topic, _plan_for(lines, pace))
    return collect_decisions(lines, bootstrap, names.decisions, idle_s, timeout_s)


def send_log(
    lines: Sequence[bytes],
    bootstrap: str,
    topic: str,
    schedule: Plan | None = None,
    on_sent: Callable[[], None] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> float:
    """Send each line keyed by its user key, as fast as possible or when ``schedule`` says;
    return the furthest behind schedule a line was sent (seconds)."""
    producer = new_producer(bootstrap)

    def send(raw: bytes) -> None:
        producer.send(topic, key=user_key_of(raw), value=raw)
        if on_sent is not None:
            on_sent()

    try:
        if schedule is None:
            tick = None if on_sent is None else (lambda _sent: on_sent())
            produce_events(producer, topic, lines, tick)
            return 0.0
        return follow(schedule.due_s, lines, send, producer.flush, clock)
    finally:
        producer.close()


def collect_decisions(
    lines: list[bytes], bootstrap: str, topic: str, idle_s: float = 10.0, timeout_s: float = 300.0
) -> bytes:
    """The decisions a worker published for the log's events, from the start of ``topic``.

    Decisions are matched to the log by their event's message id and written in log order,
    the first one per decision id (redeliveries repeat ids), so the result can be compared
    byte for byte with :func:`offline_decisions`. Collection stops
    when no new decision for this log arrived for ``idle_s`` seconds (or at ``timeout_s``).
    """
    order = _first_line_of_event(lines)
    return b"".join(_collect(bootstrap, topic, order, idle_s, timeout_s))


def _plan_for(lines: Sequence[bytes], pace: float | None) -> Plan | None:
    return None if pace is None else plan(lines, range(1, len(lines) + 1), pace)


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
            # A stitched identity's decision is the person's, not the line's key's
            # (stream.identity): found by the message id alone.
            order.setdefault((message_id, ""), index)
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
                    message_id = str(doc["event"]["message_id"])
                    index = order.get((message_id, str(doc["user"]["key"])))
                    if index is None:
                        index = order.get((message_id, ""))
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
    parser.add_argument(
        "--partitions",
        type=int,
        default=DEFAULT_PARTITIONS,
        help="offline: split users into this many partitions, as the events topic does (each "
        "partition has its own models); must match the topic for byte-identical decisions",
    )
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="broker host:port")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="topic name prefix")
    parser.add_argument("--out", type=Path, help="write the decisions (NDJSON) here")
    parser.add_argument("--check", type=Path, help="compare the decisions with this file")
    parser.add_argument(
        "--rewards",
        type=Path,
        help="offline: write the settled rewards (reward.v1 NDJSON) here (for scripts.ope)",
    )
    parser.add_argument(
        "--policy",
        type=Path,
        help="the policy file (catalog, variants, rewards; JSON); default: the built-in policy",
    )
    parser.add_argument(
        "--stored-properties",
        type=parse_properties,
        metavar="NAME,...",
        help="the event properties profiles may keep, comma-separated (empty: none); default: "
        "every property the features read",
    )
    parser.add_argument(
        "--stitch-identities",
        action="store_true",
        help="merge the keys events link (userId with anonymousId, alias) into one profile; "
        "through Kafka: send to the ingest topic, for a worker with "
        "LIVEPROFILES_STITCH_IDENTITIES=true",
    )
    parser.add_argument(
        "--pace",
        type=parse_pace,
        default="fast",
        metavar="fast|realtime|Nx",
        help="through Kafka: as fast as possible (default), in real time, or N times faster "
        "(e.g. 10x), by event time",
    )
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
    if args.partitions < 1:
        parser.error("--partitions must be >= 1")
    if args.offline and args.pace is not None:
        parser.error("--pace paces the sends to the broker: it does not go with --offline")
    if (args.rewards is not None or args.policy is not None) and not args.offline:
        parser.error(
            "--rewards and --policy go with --offline: through Kafka the worker's policy"
            " decides (LIVEPROFILES_POLICY_FILE) and it publishes rewards to its rewards topic"
        )
    if args.stored_properties is not None and not args.offline:
        parser.error(
            "--stored-properties goes with --offline: through Kafka the worker's allow-list"
            " applies (LIVEPROFILES_STORED_PROPERTIES)"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:  # before reading the log: a typo should not wait for a long read
        config = StepConfig(
            policy=DEFAULT_POLICY if args.policy is None else load_policy(args.policy),
            stored_properties=(
                DEFAULT_STORED_PROPERTIES
                if args.stored_properties is None
                else args.stored_properties
            ),
            stitch_identities=args.stitch_identities,
        )
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    try:
        numbered = list(
            tqdm(read_numbered(args.log), unit="ev", desc="read", file=sys.stderr, disable=None)
        )
    except LogError as exc:
        print(f"cannot read {exc}", file=sys.stderr)
        return 2
    wants_decisions = args.offline or args.out is not None or args.check is not None
    try:
        if args.offline:
            lines = [line for _, line in numbered]
            decisions, rewards = offline_outputs(lines, config, args.partitions)
            if args.rewards is not None:
                args.rewards.write_bytes(rewards)
                print(f"wrote {rewards.count(NEWLINE):,} rewards to {args.rewards}")
        else:
            decisions = _through_kafka(args, numbered, wants_decisions)
    except KafkaError as exc:
        print(f"cannot reach the broker at {args.bootstrap}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return _report(args, decisions)


def _through_kafka(
    args: argparse.Namespace, numbered: list[tuple[int, bytes]], collect: bool
) -> bytes:
    names = Names(args.prefix)
    lines = [line for _, line in numbered]
    schedule = None
    if args.pace is not None:
        schedule = _announce(args.pace, plan(lines, [n for n, _ in numbered], args.pace))
    topic = names.ingest if args.stitch_identities else names.events
    with tqdm(total=len(lines), unit="ev", desc="send", file=sys.stderr, disable=None) as bar:
        late_s = send_log(lines, args.bootstrap, topic, schedule, bar.update)
    behind = f", at most {late_s:.2f} s behind schedule" if schedule is not None else ""
    print(f"sent {len(lines):,} events to {topic}{behind}")
    if not collect:
        return b""
    return collect_decisions(lines, args.bootstrap, names.decisions, idle_s=args.idle)


def _announce(pace: float, schedule: Plan) -> Plan:
    """Say how long a paced replay will take, and which lines have no event time."""
    span = _duration(schedule.duration_s * pace)
    print(f"pace {pace:g}x: {span} of event time in about {_duration(schedule.duration_s)}")
    untimed = schedule.untimed_lines
    if untimed:
        shown = ", ".join(map(str, untimed[:5])) + (", ..." if len(untimed) > 5 else "")
        many = len(untimed) > 1
        print(
            f"{len(untimed):,} {'lines' if many else 'line'} without a readable event time "
            f"{'are' if many else 'is'} sent without waiting (line{'s' if many else ''} {shown})"
        )
    return schedule


def _duration(seconds: float) -> str:
    """``3.2 s``, ``2 min 05 s``, ``3 h 07 min``, ``2 d 04 h``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, hours, days = int(seconds // 60), int(seconds // 3600), int(seconds // 86400)
    if hours == 0:
        return f"{minutes} min {int(seconds) % 60:02d} s"
    return f"{hours} h {minutes % 60:02d} min" if days == 0 else f"{days} d {hours % 24:02d} h"


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

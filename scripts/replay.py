"""Replay a recorded Segment NDJSON log (optionally gzip) into the events topic.

    python -m scripts.replay events.ndjson.gz --bootstrap 127.0.0.1:9092

Each line is sent as-is, keyed by its user key (``userId``, else ``anonymousId``) so one user's
events keep their order on one partition. Lines that are not valid events are still sent: the
worker dead-letters them with a reason, which is what a replay of a real log should show.
Exit codes: 0 done, 2 bad arguments or unreadable file.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections.abc import Iterator
from pathlib import Path

from kafka.errors import KafkaError
from tqdm import tqdm

from agents.names import DEFAULT_PREFIX, Names
from scripts.kafkaio import new_producer, produce_events

__all__ = ["main", "read_lines"]


def read_lines(path: Path) -> Iterator[bytes]:
    """Non-empty lines of an NDJSON file, gunzipped when the name ends in ``.gz``."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        for line in handle:
            stripped = line.strip()
            if stripped:
                yield stripped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("log", type=Path, help="Segment NDJSON file (.ndjson or .ndjson.gz)")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="broker host:port")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="topic name prefix")
    parser.add_argument("--topic", default=None, help="override the events topic name")
    args = parser.parse_args(argv)
    if not args.log.is_file():
        parser.error(f"{args.log}: no such file")
    topic = args.topic or Names(args.prefix).events
    try:
        producer = new_producer(args.bootstrap)
    except KafkaError as exc:
        print(f"cannot reach the broker at {args.bootstrap}: {exc}", file=sys.stderr)
        return 2
    try:
        with tqdm(unit="ev", desc=f"-> {topic}", file=sys.stderr, disable=None) as bar:
            sent = produce_events(
                producer, topic, read_lines(args.log), on_sent=lambda _: bar.update(1)
            )
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        print(f"cannot read {args.log}: {exc}", file=sys.stderr)
        return 2
    finally:
        producer.close()
    print(f"sent {sent:,} events to {topic}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

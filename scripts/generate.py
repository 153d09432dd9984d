"""Write a seeded synthetic Segment clickstream as NDJSON (gzip when the name ends in ``.gz``).

Usage::

    python -m scripts.generate --users 500 --days 2 --seed 7 --out events.ndjson.gz [--limit N]

The output is byte-identical for identical arguments (gzip output uses a zero mtime and no file
name in its header). Progress goes to stderr; a one-line summary goes to stdout.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from itertools import islice
from typing import Any

from tqdm import tqdm

from scripts.ndjson import Sink, open_sink
from stream.synthetic import GeneratorConfig, encode_ndjson, generate_events

_CHUNK = 2_000  # lines per write / progress update


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``generate`` command."""
    defaults = GeneratorConfig()
    p = argparse.ArgumentParser(
        prog="python -m scripts.generate",
        description="Generate a seeded synthetic Segment-spec clickstream as NDJSON.",
    )
    p.add_argument("--out", required=True, help="output path ('.gz' => gzip; '-' => stdout)")
    p.add_argument("--users", type=_positive_int, default=defaults.users)
    p.add_argument("--days", type=_positive_float, default=defaults.days)
    p.add_argument("--seed", type=_int, default=defaults.seed)
    p.add_argument("--start-ms", type=_int, default=defaults.start_ms, help="epoch ms start")
    p.add_argument(
        "--sessions-per-day",
        type=_positive_float,
        default=defaults.sessions_per_user_per_day,
        help="mean sessions per user per day",
    )
    p.add_argument("--limit", type=_positive_int, default=None, help="stop after N events")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def write_ndjson(
    sink: Sink, events: Iterable[dict[str, Any]], progress: tqdm | None = None
) -> Counter[str]:
    """Write ``events`` to ``sink`` as NDJSON and return counts by type / track event name."""
    counts: Counter[str] = Counter()
    batch: list[bytes] = []
    for line in encode_ndjson(_tally(events, counts)):
        batch.append(line)
        if len(batch) >= _CHUNK:
            sink.writelines(batch)
            if progress is not None:
                progress.update(len(batch))
            batch.clear()
    sink.writelines(batch)
    if progress is not None:
        progress.update(len(batch))
    return counts


def _tally(events: Iterable[dict[str, Any]], counts: Counter[str]) -> Iterator[dict[str, Any]]:
    for event in events:
        counts[event.get("event") or event["type"]] += 1
        yield event


def _summary(counts: Counter[str], config: GeneratorConfig, out: str) -> str:
    total = sum(counts.values())
    parts = ", ".join(f"{name}={n}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    return (
        f"wrote {total} events to {out} (users={config.users}, days={config.days:g}, "
        f"seed={config.seed}): {parts}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = GeneratorConfig(
            seed=args.seed,
            users=args.users,
            days=args.days,
            start_ms=args.start_ms,
            sessions_per_user_per_day=args.sessions_per_day,
        )
    except ValueError as exc:
        parser.error(str(exc))
    events = islice(generate_events(config), args.limit)
    bar = tqdm(
        total=args.limit,
        unit="ev",
        unit_scale=True,
        file=sys.stderr,
        disable=args.no_progress,
        desc="generate",
    )
    try:
        with ExitStack() as stack, bar:
            counts = write_ndjson(open_sink(stack, args.out), events, bar)
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc}", file=sys.stderr)
        return 1
    print(_summary(counts, config, args.out), file=sys.stderr if args.out == "-" else sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

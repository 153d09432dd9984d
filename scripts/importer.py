"""Import a real clickstream log (REES46 or Taobao UserBehavior CSV) as Segment NDJSON.

Usage::

    python -m scripts.importer rees46 events.csv --out rees46.ndjson.gz
    python -m scripts.importer taobao user_behavior.csv --out taobao.ndjson [--no-sort]

Events are sorted by event time (stable) by default, so a replay sees them in event time as a
live stream would: the Taobao file is grouped by user, not by time. ``--no-sort`` keeps the
file's order and streams without holding the log in memory. Rows that cannot become an event
are skipped and counted (see :mod:`stream.importers`). Output is byte-identical for the same
input (gzip with a zero mtime and no file name). Without ``--out`` the NDJSON goes to stdout and
the summary to stderr.

Exit codes: 0 done; 2 a usage error, an unreadable or unwritable file, or a file that is not in
the named format (the message names the line).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import orjson

from scripts.ndjson import open_sink
from stream.importers import (
    REES46_COLUMNS,
    TAOBAO_COLUMNS,
    TAOBAO_EVENTS,
    ImportStats,
    rees46_events,
    sort_by_time,
    taobao_events,
)

__all__ = ["FormatError", "encode_events", "import_file", "main", "read_rees46", "read_taobao"]


class FormatError(ValueError):
    """The input is not readable as the named format; the message starts with the line number."""


def read_rees46(path: Path, stats: ImportStats | None = None) -> Iterator[dict[str, Any]]:
    """Segment events from a REES46 CSV file (header line first), in file order."""
    return _read(path, _rees46_rows, rees46_events, stats)


def read_taobao(path: Path, stats: ImportStats | None = None) -> Iterator[dict[str, Any]]:
    """Segment events from a Taobao UserBehavior CSV file (no header), in file order."""
    return _read(path, _taobao_rows, taobao_events, stats)


_Rows = Callable[[Iterator[list[str]]], Iterator[Any]]
_Mapper = Callable[..., Iterator[dict[str, Any]]]


def _read(
    path: Path, to_rows: _Rows, to_events: _Mapper, stats: ImportStats | None
) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as handle:
        reader = csv.reader(_text_lines(handle))
        try:
            yield from to_events(to_rows(reader), stats=stats)
        except csv.Error as exc:
            raise FormatError(f"line {reader.line_num}: {exc}") from None


def _text_lines(handle: Iterable[bytes]) -> Iterator[str]:
    # Decoded line by line (not by the text layer's 8 KiB blocks) so an error names its line;
    # utf-8-sig on the first line drops a byte-order mark that would spoil the header.
    for number, raw in enumerate(handle, start=1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"line {number}: not UTF-8 text") from None


def _rees46_rows(reader: Iterator[list[str]]) -> Iterator[dict[str, str]]:
    header = next(reader, None)
    if header is None or tuple(header) != REES46_COLUMNS:
        found = ",".join(header or [])[:60]
        raise FormatError(f"line 1: {found!r} is not the REES46 header {','.join(REES46_COLUMNS)}")
    for fields in reader:
        row = dict(zip(header, fields, strict=False))
        if len(fields) != len(header):
            row["_extra"] = ""  # a key set that is not the columns: counted as wrong_columns
        yield row


def _taobao_rows(reader: Iterator[list[str]]) -> Iterator[list[str]]:
    first = next(reader, None)
    if first is not None:
        _check_taobao_row(first)
        yield first
    yield from reader


def _check_taobao_row(fields: list[str]) -> None:
    """The first row decides whether this is a Taobao file at all (e.g. not a REES46 one)."""
    expected = f"{','.join(TAOBAO_COLUMNS)} (no header)"
    if len(fields) != len(TAOBAO_COLUMNS):
        hint = " (a REES46 file?)" if tuple(fields) == REES46_COLUMNS else ""
        raise FormatError(f"line 1: {len(fields)} columns{hint}, expected {expected}")
    if fields[3] not in TAOBAO_EVENTS or not fields[4].isdigit():
        raise FormatError(f"line 1: {','.join(fields)[:80]!r} is not a row of {expected}")


def import_file(fmt: str, path: Path, sort: bool, stats: ImportStats) -> Iterable[dict[str, Any]]:
    """The events of one file, sorted by event time unless ``sort`` is false."""
    events = (read_rees46 if fmt == "rees46" else read_taobao)(path, stats)
    return sort_by_time(events) if sort else events


def encode_events(events: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """One NDJSON line (with its newline) per event."""
    for event in events:
        yield orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE)


def _summary(stats: ImportStats, out: str) -> str:
    total = sum(stats.events.values())
    by_name = ", ".join(f"{name}={n}" for name, n in stats.events.most_common())
    skipped = ", ".join(f"{reason}={n}" for reason, n in sorted(stats.skipped.items()))
    text = f"wrote {total} events to {out}: {by_name or 'none'}; skipped {stats.rows_skipped} rows"
    if stats.problems:
        line, problem = stats.problems[0]
        text += f" ({skipped}; first at line {line}: {problem})"
    return text


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``importer`` command."""
    p = argparse.ArgumentParser(
        prog="python -m scripts.importer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("format", choices=("rees46", "taobao"), help="the input's format")
    p.add_argument("input", type=Path, help="the CSV file")
    p.add_argument("--out", default="-", help="output path ('.gz' => gzip; '-' => stdout)")
    p.add_argument("--no-sort", action="store_true", help="keep file order (streams)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit status."""
    args = build_parser().parse_args(argv)
    stats = ImportStats()
    try:
        events = import_file(args.format, args.input, not args.no_sort, stats)
        with ExitStack() as stack:
            open_sink(stack, args.out).writelines(encode_events(events))
    except FormatError as exc:
        return _fail(f"{args.input}: {exc}", args.out)
    except OSError as exc:
        return _fail(f"{exc.filename or args.input}: {exc.strerror or exc}", args.out)
    if stats.rows_skipped and not stats.events:
        line, problem = stats.problems[0]
        message = f"{args.input}: no valid {args.format} rows (line {line}: {problem})"
        return _fail(message, args.out)
    print(_summary(stats, args.out), file=sys.stderr if args.out == "-" else sys.stdout)
    return 0


def _fail(message: str, out: str) -> int:
    # A failed import leaves no partial output that could be mistaken for a whole log.
    if out != "-":
        with suppress(OSError):
            Path(out).unlink(missing_ok=True)
    print(f"error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())

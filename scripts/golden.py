"""Golden replays: the decisions and feature vectors of the real samples, pinned byte for byte.

    python -m scripts.golden --check    # exit 1, with the first differing line, on a mismatch
    python -m scripts.golden --update   # rewrite tests/golden/*.{decisions,features}.ndjson.gz

Each sample (``/work/shared/data``, i.e. ``../shared/data`` from the repository) is imported as
``scripts.importer`` does by default (sorted by event time) and replayed offline with the
default :class:`~stream.config.StepConfig`. Two files per sample:

* ``decisions``: every decision in canonical form (no ``processing`` block), one per line;
* ``features``: every user's final feature vector (all features, as of the user's latest event),
  one user per line in key order, keys sorted.

A change in features or policy changes these files on purpose: review the diff, then
``--update``.

Exit codes: 0 match (or updated); 1 mismatch or missing golden file; 2 sample data not found.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from scripts.importer import encode_events, read_rees46, read_taobao
from stream.config import StepConfig
from stream.decision import Decision
from stream.features import feature_vector
from stream.importers import sort_by_time
from stream.replay import replay

__all__ = [
    "DATA_DIR",
    "GOLDEN_DIR",
    "KINDS",
    "SAMPLES",
    "first_difference",
    "golden_bytes",
    "main",
    "read_golden",
    "write_golden",
]

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO.parent / "shared" / "data"
GOLDEN_DIR = REPO / "tests" / "golden"
_Reader = Callable[[Path], Iterator[dict[str, Any]]]
#: golden name -> (sample file under the data directory, its reader)
SAMPLES: dict[str, tuple[str, _Reader]] = {
    "rees46": ("rees46/events.csv", read_rees46),
    "taobao": ("taobao/user_behavior.csv", read_taobao),
}
_SHOWN = 160  # characters of each differing line in a report
_CONTEXT = 60  # of which this many before the first differing character


#: What each sample's golden files pin.
KINDS = ("decisions", "features")


def golden_bytes(name: str, data_dir: Path = DATA_DIR) -> dict[str, bytes]:
    """What the golden files of one sample hold, by kind, from one replay."""
    relative, read = SAMPLES[name]
    events = sort_by_time(read(data_dir / relative))
    config = StepConfig()
    result = replay((line.rstrip(b"\n") for line in encode_events(events)), config)
    features = (
        orjson.dumps(
            {"user": key, "features": dict(feature_vector(result.profiles[key], config))},
            option=orjson.OPT_SORT_KEYS,
        )
        for key in sorted(result.profiles)
    )
    return {
        "decisions": decisions_file(result.decisions),
        "features": b"".join(line + b"\n" for line in features),
    }


def decisions_file(decisions: Iterable[Decision]) -> bytes:
    """A log's decisions as a decisions file: canonical, one per line, in log order, distinct by
    decision id with the first kept, as a consumer dropping duplicates sees them (an event
    repeated beyond the dedupe window is applied again under the same decision id). Golden files
    and ``replay --offline`` both write this, so ``--check`` compares like with like.
    """
    seen: set[str] = set()
    out = []
    for decision in decisions:
        if decision.decision_id not in seen:
            seen.add(decision.decision_id)
            out.append(decision.to_bytes() + b"\n")
    return b"".join(out)


def first_difference(expected: bytes, actual: bytes) -> str | None:
    """``None`` when equal, else where they first differ: line, column and both lines, cut to a
    window around the first differing character (decisions are long lines).

    >>> first_difference(b"a\\nb\\n", b"a\\nb\\n") is None
    True
    >>> print(first_difference(b"a\\nbxc\\n", b"a\\nbyc\\n"))
    line 2, column 2 differs
      golden: bxc
      replay: byc
    >>> print(first_difference(b"a\\n", b"a\\nb\\n"))
    line 2, column 1 differs (golden has 1 lines, replay 2)
      golden: <end of file>
      replay: b
    """
    if expected == actual:
        return None
    old, new = expected.splitlines(), actual.splitlines()
    row = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), None)
    row = min(len(old), len(new)) if row is None else row
    a, b = _line(old, row), _line(new, row)
    column = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
    column = min(len(a), len(b)) if column is None else column
    counts = f" (golden has {len(old)} lines, replay {len(new)})" if len(old) != len(new) else ""
    return (
        f"line {row + 1}, column {column + 1} differs{counts}\n"
        f"  golden: {_window(a, column) if row < len(old) else '<end of file>'}\n"
        f"  replay: {_window(b, column) if row < len(new) else '<end of file>'}"
    )


def _line(lines: list[bytes], row: int) -> str:
    return lines[row].decode("utf-8", errors="replace") if row < len(lines) else ""


def _window(text: str, column: int) -> str:
    start = max(0, column - _CONTEXT)
    end = start + _SHOWN
    return ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")


def golden_path(name: str, golden_dir: Path = GOLDEN_DIR, kind: str = "decisions") -> Path:
    """Where one golden file of a sample lives (gzip: ~15x smaller in the repository)."""
    return golden_dir / f"{name}.{kind}.ndjson.gz"


def read_golden(path: Path) -> bytes:
    """The decisions a golden file holds, uncompressed."""
    return gzip.decompress(path.read_bytes())


def write_golden(path: Path, content: bytes) -> None:
    """Write a golden file; ``mtime=0`` keeps the bytes identical for identical content."""
    path.write_bytes(gzip.compress(content, compresslevel=9, mtime=0))


def check(data_dir: Path, golden_dir: Path) -> int:
    """Compare every sample's replay with its golden file; print a report; return the status."""
    status = 0
    for name in SAMPLES:
        replayed = golden_bytes(name, data_dir)
        for kind in KINDS:
            path = golden_path(name, golden_dir, kind)
            if not path.is_file():
                print(f"{name} {kind}: {path} is missing (run --update)")
                status = 1
                continue
            difference = first_difference(read_golden(path), replayed[kind])
            print(f"{name} {kind}: {'ok' if difference is None else 'MISMATCH ' + difference}")
            status = status or int(difference is not None)
    return status


def update(data_dir: Path, golden_dir: Path) -> int:
    """Rewrite every golden file from a fresh replay."""
    golden_dir.mkdir(parents=True, exist_ok=True)
    for name in SAMPLES:
        replayed = golden_bytes(name, data_dir)
        for kind in KINDS:
            path = golden_path(name, golden_dir, kind)
            write_golden(path, replayed[kind])
            print(f"{name} {kind}: wrote {len(replayed[kind].splitlines())} lines to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.golden",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="compare replays with golden files")
    mode.add_argument("--update", action="store_true", help="rewrite the golden files")
    parser.add_argument("--data", type=Path, default=DATA_DIR, help="sample data directory")
    parser.add_argument("--golden", type=Path, default=GOLDEN_DIR, help="golden files directory")
    args = parser.parse_args(argv)
    missing = [rel for rel, _ in SAMPLES.values() if not (args.data / rel).is_file()]
    if missing:
        print(
            f"error: sample data not found under {args.data}: {', '.join(missing)}", file=sys.stderr
        )
        return 2
    return update(args.data, args.golden) if args.update else check(args.data, args.golden)


if __name__ == "__main__":
    raise SystemExit(main())

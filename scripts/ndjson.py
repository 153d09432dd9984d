"""NDJSON files for the operator scripts: where lines go (file, gzip, stdout)."""

from __future__ import annotations

import gzip
import sys
from collections.abc import Iterable
from contextlib import ExitStack
from typing import Protocol

__all__ = ["Sink", "open_sink"]


class Sink(Protocol):
    """Anything NDJSON lines can be written to (a binary file, a GzipFile, stdout)."""

    def writelines(self, lines: Iterable[bytes], /) -> None: ...


def open_sink(stack: ExitStack, out: str) -> Sink:
    """``-`` is stdout; a name ending in ``.gz`` is gzip; the stack closes what it opened."""
    if out == "-":
        return sys.stdout.buffer
    raw = stack.enter_context(open(out, "wb"))  # noqa: SIM115 - closed by the ExitStack
    if not out.endswith(".gz"):
        return raw
    # filename="" and mtime=0 keep the gzip header, hence the bytes, reproducible
    gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0)
    stack.callback(gz.close)
    return gz

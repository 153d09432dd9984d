"""What operator commands share about failing: one-line errors and exit codes, no tracebacks.

A command's body raises :class:`InputError` for input the user can fix (a missing file, a bad
line); :func:`run_reporting` turns that, and any :class:`OSError` (unwritable output, ...), into
one line on stderr and exit code 2, and Ctrl-C into exit code 130.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = ["InputError", "run_reporting"]


class InputError(Exception):
    """Input the user can fix (missing file, wrong format, bad line): one line, exit 2."""


def run_reporting(body: Callable[[], int]) -> int:
    """``body()``'s exit code; 2 after an :class:`InputError` or :class:`OSError`, 130 after
    Ctrl-C, each with its one-line message on stderr."""
    try:
        return body()
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

"""Reading the project's small versioned JSON records (``{"schema": ..., ...}``).

One place for the pattern every control record and handoff shares: parse, check the schema,
build, and turn any way the bytes fail into :class:`~stream.exceptions.SnapshotError` naming
what was read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from stream.exceptions import SnapshotError

__all__ = ["read_record"]

T = TypeVar("T")


def read_record(data: bytes, schema: str, what: str, build: Callable[[dict[str, Any]], T]) -> T:
    """``build(doc)`` for the JSON object ``data`` if its ``schema`` is ``schema``; raises
    :class:`SnapshotError` otherwise, or when ``build`` finds a field missing or malformed.

    >>> read_record(b'{"schema": "x.v1", "n": 2}', "x.v1", "an x", lambda doc: doc["n"])
    2
    >>> read_record(b'{"schema": "x.v2"}', "x.v1", "an x", lambda doc: doc)
    Traceback (most recent call last):
    ...
    stream.exceptions.SnapshotError: cannot read an x: schema 'x.v2'
    """
    try:
        doc = orjson.loads(data)
        if not isinstance(doc, dict) or doc.get("schema") != schema:
            found = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
            raise SnapshotError(f"schema {found!r}")
        return build(doc)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotError(f"cannot read {what}: {exc}") from exc

"""Declaring the project's topics and tables in a Faust app: bytes in, bytes out.

Bytes keys and values make Faust use the "raw" codec: the project owns the serialization
(orjson, versioned schemas), and Faust never guesses a codec from a record.
"""

from __future__ import annotations

from typing import Any

import faust

__all__ = ["raw_table", "raw_topic"]


def raw_topic(app: faust.App, name: str, partitions: int) -> Any:
    """A topic of raw bytes keys and values with ``partitions`` partitions."""
    return app.topic(
        name,
        value_type=bytes,
        value_serializer="raw",
        key_type=bytes,
        key_serializer="raw",
        partitions=partitions,
    )


def raw_table(app: faust.App, name: str, partitions: int) -> Any:
    """A table (RocksDB store + changelog) of raw bytes keys and values."""
    return app.Table(name, partitions=partitions, key_type=bytes, value_type=bytes)

"""Errors raised by the pure core.

Bad *input* is never an exception: it becomes a :class:`~stream.deadletter.DeadLetter`.
Exceptions here mean a programming or configuration mistake::

    StreamError
    ├── ConfigError          invalid StepConfig or policy configuration
    └── SnapshotError        state bytes that cannot be restored (wrong version, corrupt)
"""

from __future__ import annotations

__all__ = ["ConfigError", "SnapshotError", "StreamError"]


class StreamError(Exception):
    """Root of every error raised by :mod:`stream`."""


class ConfigError(StreamError, ValueError):
    """A configuration value is out of range or inconsistent."""


class SnapshotError(StreamError, ValueError):
    """Serialized state cannot be restored."""

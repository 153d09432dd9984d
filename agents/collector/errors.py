"""The collector's errors, one root.

::

    CollectorError
    ├── Refused       the request is answered with a 4xx (status, code, message)
    └── Unavailable   Kafka did not acknowledge every event in time: answered with 503
"""

from __future__ import annotations

__all__ = ["CollectorError", "Refused", "Unavailable"]


class CollectorError(Exception):
    """Root of the collector's errors."""


class Refused(CollectorError):
    """A request the collector will not take; ``code`` is a stable machine-readable reason."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class Unavailable(CollectorError):
    """The broker is unreachable, or a send failed or timed out: nothing may be claimed stored."""

"""Logging for the worker and the collector: one JSON object per line, or plain text.

Every JSON line has the same fields, so a log pipeline can index them without guessing:
``ts`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``msg`` (the formatted
message), ``worker`` (the worker id) and ``pid``; then whatever the call site passed in
``extra=`` (e.g. ``partition``, ``counters``); ``exc`` holds a traceback when there is one.

>>> import logging
>>> record = logging.LogRecord("agents.app", logging.INFO, "app.py", 1, "batch of %d", (3,), None)
>>> record.partition = 2
>>> line = JsonFormatter(worker_id="w1").format(record)
>>> import json; parsed = json.loads(line)
>>> parsed["msg"], parsed["level"], parsed["logger"], parsed["worker"], parsed["partition"]
('batch of 3', 'info', 'agents.app', 'w1', 2)
"""

from __future__ import annotations

import logging
import logging.config
import os
import socket
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

__all__ = ["JsonFormatter", "LogFormat", "configure", "default_worker_id", "logging_config"]

LogFormat = Literal["json", "text"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

#: Attributes every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


def default_worker_id() -> str:
    """``host:pid``: unique among the workers of one machine, readable in logs and dashboards."""
    return f"{socket.gethostname()}:{os.getpid()}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the fields listed in the module docstring."""

    def __init__(self, worker_id: str = "") -> None:
        super().__init__()
        self.worker_id = worker_id

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "worker": self.worker_id,
            "pid": record.process,
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.stack_info:
            line["exc"] = record.stack_info
        try:
            return _dumps(line)
        except TypeError:  # e.g. a dict keyed by tuples in an extra: that value as text
            return _dumps({key: _encodable(value) for key, value in line.items()})


def _dumps(line: dict[str, Any]) -> str:
    return orjson.dumps(line, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _encodable(value: Any) -> Any:
    try:
        _dumps({"v": value})
    except TypeError:
        return str(value)
    return value


def logging_config(level: str, fmt: LogFormat, worker_id: str) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` for the process: root to stdout in ``fmt``.

    Faust's worker takes it as ``logging_config`` (it replaces the root's handlers with its own
    otherwise), and :func:`configure` applies it where no Faust worker runs.
    """
    formatter: dict[str, Any] = (
        {"()": JsonFormatter, "worker_id": worker_id} if fmt == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
    }


def configure(level: str, fmt: LogFormat, worker_id: str) -> None:
    """Configure the root logger of a process that has no Faust worker (the collector)."""
    logging.config.dictConfig(logging_config(level, fmt, worker_id))

"""agents.logs: every line a JSON object with the same fields, or plain text when asked."""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Iterator

import pytest

from agents.logs import logging_config

FIELDS = {"ts", "level", "logger", "msg", "worker", "pid"}


class Captured:
    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    def getvalue(self) -> str:
        return self._capsys.readouterr().out


@pytest.fixture
def captured(capsys: pytest.CaptureFixture[str]) -> Iterator[Captured]:
    """What the configured root logger writes to stdout (pytest's capture, set before the test)."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield Captured(capsys)
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_json_lines_have_consistent_fields_and_the_extras(captured: Captured) -> None:
    logging.config.dictConfig(logging_config("info", "json", "host:42"))
    log = logging.getLogger("agents.app")
    log.info("worker stats %s", {"events_in": 3}, extra={"counters": {"events_in": 3}})
    log.warning("partition %d lags", 2, extra={"partition": 2, "lag": 1500})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("batch failed")
    log.debug("not shown at info")

    lines = [json.loads(line) for line in captured.getvalue().splitlines()]

    assert len(lines) == 3
    assert all(line.keys() >= FIELDS for line in lines)
    assert {line["worker"] for line in lines} == {"host:42"}
    assert [line["level"] for line in lines] == ["info", "warning", "error"]
    assert lines[0]["msg"] == "worker stats {'events_in': 3}"
    assert lines[0]["counters"] == {"events_in": 3}
    assert (lines[1]["partition"], lines[1]["lag"]) == (2, 1500)
    assert lines[2]["logger"] == "agents.app" and "ValueError: boom" in lines[2]["exc"]
    assert lines[0]["ts"].endswith("+00:00") and "T" in lines[0]["ts"]


def test_values_json_cannot_encode_are_written_as_text(captured: Captured) -> None:
    logging.config.dictConfig(logging_config("info", "json", "w"))
    logging.getLogger("x").info("odd", extra={"thing": object(), "tp": {("events", 1): 2}})

    line = json.loads(captured.getvalue())
    assert line["thing"].startswith("<object object")
    assert line["tp"] == "{('events', 1): 2}"


def test_text_format_is_for_humans(captured: Captured) -> None:
    logging.config.dictConfig(logging_config("info", "text", "w"))
    logging.getLogger("agents.app").info("ready")

    assert captured.getvalue().rstrip().endswith("INFO agents.app ready")

"""Replay pacing: send a log as fast as possible, in real time, or N times faster, by event time.

The schedule is a pure function of the log's event times (epoch ms) and the speed:

>>> schedule_s([0, 1_000, None, 3_000, 2_500, 4_000], speed=2.0)
[0.0, 0.5, 0.5, 1.5, 1.5, 2.0]

Each line is due at ``(latest event time so far - first event time) / speed`` seconds after the
start. For a log in event-time order that is exactly "wait each gap between consecutive events,
divided by N"; an event older than one before it (a late arrival) is sent without waiting, and
the next gap is measured from the latest time seen, so the replay lasts the log's event-time
span divided by N. A line without a readable time is sent without waiting, and counted.

Sending follows the schedule relative to the start on a monotonic :class:`Clock`, never by
sleeping each gap: a slow send or an oversleep is caught up at the next line instead of piling
up as drift. Tests inject a fake clock.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import orjson

from stream.timeutil import iso_to_ms

__all__ = [
    "SYSTEM_CLOCK",
    "Clock",
    "Plan",
    "event_time_of",
    "follow",
    "parse_pace",
    "plan",
    "schedule_s",
]

#: Waits shorter than this are not slept (the OS would oversleep them anyway).
_TICK_S = 0.001
_SPEED = re.compile(r"(\d+(?:\.\d*)?|\.\d+)x")
_TIME_FIELDS = ("timestamp", "originalTimestamp", "receivedAt")


class Clock(Protocol):
    """Monotonic seconds and a way to wait: time.monotonic/time.sleep, or a fake in tests."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class _SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK: Clock = _SystemClock()


def parse_pace(text: str) -> float | None:
    """``fast`` -> None (no pacing), ``realtime`` -> 1.0, ``Nx`` -> N (any positive number).

    >>> parse_pace("fast"), parse_pace("realtime"), parse_pace("10x"), parse_pace("0.5x")
    (None, 1.0, 10.0, 0.5)
    """
    if text == "fast":
        return None
    if text == "realtime":
        return 1.0
    match = _SPEED.fullmatch(text)
    if match is None or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected fast, realtime, or a positive speed-up such as 10x"
        )
    return float(match.group(1))


def event_time_of(raw: bytes) -> int | None:
    """A line's event time in epoch ms: ``timestamp``, else ``originalTimestamp``, else
    ``receivedAt`` (the first present decides), or None when it is missing or unreadable.

    The device's clock is not corrected here: pacing needs the gaps, not the exact instants.

    >>> event_time_of(b'{"timestamp": "2019-10-01T00:00:01Z", "receivedAt": "2024-01-01"}')
    1569888001000
    >>> event_time_of(b'{"originalTimestamp": 12}'), event_time_of(b"not json")
    (None, None)
    """
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    value = next((doc[name] for name in _TIME_FIELDS if doc.get(name) is not None), None)
    if not isinstance(value, str):
        return None
    try:
        return iso_to_ms(value)
    except (ValueError, OverflowError):
        return None


def schedule_s(times: Sequence[int | None], speed: float) -> list[float]:
    """Seconds after the start at which each line is due (see the module docstring)."""
    due: list[float] = []
    first: int | None = None
    latest: int | None = None
    for when in times:
        if when is not None:
            first = when if first is None else first
            latest = when if latest is None else max(latest, when)
        due.append(0.0 if first is None or latest is None else (latest - first) / 1000 / speed)
    return due


@dataclass(frozen=True)
class Plan:
    """When each line of a log is due (seconds after the start), and the line numbers of those
    without a readable event time (sent without waiting)."""

    due_s: list[float]
    untimed_lines: list[int]

    @property
    def duration_s(self) -> float:
        """How long following the plan takes, at the least."""
        return self.due_s[-1] if self.due_s else 0.0


def plan(lines: Sequence[bytes], line_numbers: Sequence[int], speed: float) -> Plan:
    """The schedule of ``lines`` at ``speed`` times real time (``line_numbers`` for reports)."""
    times = [event_time_of(raw) for raw in lines]
    untimed = [n for n, when in zip(line_numbers, times, strict=True) if when is None]
    return Plan(schedule_s(times, speed), untimed)


def follow(
    due_s: Sequence[float],
    lines: Sequence[bytes],
    send: Callable[[bytes], None],
    flush: Callable[[], None],
    clock: Clock = SYSTEM_CLOCK,
) -> float:
    """Call ``send`` for each line when it is due; return the furthest behind schedule any
    line was sent, in seconds.

    ``flush`` is called before each wait, so that what was already sent is not held back by the
    producer's linger while we sleep, and once at the end.
    """
    start, late = clock.monotonic(), 0.0
    for due, raw in zip(due_s, lines, strict=True):
        if start + due - clock.monotonic() > _TICK_S:
            flush()  # takes a while: measure what is left after it
            clock.sleep(max(0.0, start + due - clock.monotonic()))
        late = max(late, clock.monotonic() - start - due)
        send(raw)
    flush()
    return late

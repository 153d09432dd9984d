"""When an event happened: Segment's clock-skew correction, and the times refused.

Client-side libraries stamp events with the device's clock, which can be off by minutes or
years (a phone whose clock was reset to 1970). They also send ``sentAt``, the device's clock
when the batch left; the collector stamps ``receivedAt`` with its own. The device's error is the
same in both of its readings, so Segment corrects (all in epoch milliseconds)::

    event time = receivedAt - (sentAt - device time)

keeping how long before sending the event happened and only losing the network delay.

The rule, as :func:`event_time_ms` applies it:

* the device time is ``timestamp``, else ``originalTimestamp``; it is corrected only when
  ``sentAt`` and ``receivedAt`` are both present. Events without ``sentAt`` (server-side
  sources, imports, replays of the generator's logs) or without ``receivedAt`` (nothing
  stamped them on arrival) are taken as they are;
* an event carrying both ``timestamp`` and ``originalTimestamp`` has been through Segment
  already, and its ``timestamp`` is Segment's corrected time: correcting it again would apply
  the skew twice, so it is taken as it is;
* an event with neither falls back to ``receivedAt``, the collector's clock: nothing to correct.

Then :func:`time_problem` refuses, as dead letters:

* ``implausible_timestamp``: an event time (after correction: the correction is what rescues
  the phone in 1970) or a ``receivedAt`` before 2000-01-01 or after 2100-01-01, whatever the
  other fields say. Such times are broken clocks or unit mix-ups, never events, and would
  stretch windows and sessions over decades;
* ``future_timestamp``: an event time more than ``max_future_ms`` after ``receivedAt`` (when
  there is one). After correction a client event lands at or just before ``receivedAt``, so
  this catches uncorrected clocks running ahead and events stamped after they were sent.

>>> t = 1_700_000_000_000  # by a device whose clock is an hour slow; sent 2 s later
>>> event_time_ms(timestamp=t, original=None, sent=t + 2_000, received=t + 3_603_000) - t
3601000
>>> time_problem(t, received_ms=t - 600_000, max_future_ms=MAX_FUTURE_MS)[1]
'event time is 600000 ms after receivedAt (at most 300000 ms)'
>>> time_problem(0, received_ms=None, max_future_ms=MAX_FUTURE_MS)[0].value
'implausible_timestamp'
"""

from __future__ import annotations

from typing import Final

from stream.deadletter import DeadLetterReason

__all__ = [
    "MAX_FUTURE_MS",
    "MAX_PLAUSIBLE_MS",
    "MIN_PLAUSIBLE_MS",
    "event_time_ms",
    "time_problem",
]

#: 2000-01-01T00:00:00Z and 2100-01-01T00:00:00Z: event times outside are refused (inclusive).
MIN_PLAUSIBLE_MS: Final = 946_684_800_000
MAX_PLAUSIBLE_MS: Final = 4_102_444_800_000
#: How far after ``receivedAt`` an event time may be. Corrected client times are not ahead of
#: it at all; what is left is servers' clocks, which NTP keeps within well under a second of
#: ours. Five minutes forgives a badly synced host, yet an event cannot move a user's clock
#: (sessions, the late-event horizon) further ahead than that.
MAX_FUTURE_MS: Final = 5 * 60_000


def event_time_ms(
    timestamp: int | None, original: int | None, sent: int | None, received: int | None
) -> int | None:
    """The event time from the wire's four times (epoch ms), corrected as the module says."""
    if timestamp is not None and original is not None:
        return timestamp  # corrected by Segment already
    device = timestamp if timestamp is not None else original
    if device is None:
        return received
    if sent is None or received is None:
        return device
    return received - (sent - device)


def time_problem(
    event_ms: int, received_ms: int | None, max_future_ms: int
) -> tuple[DeadLetterReason, str] | None:
    """Why the (corrected) event time is refused, or ``None``."""
    if received_ms is not None and not MIN_PLAUSIBLE_MS <= received_ms <= MAX_PLAUSIBLE_MS:
        return DeadLetterReason.IMPLAUSIBLE_TIMESTAMP, f"receivedAt {_outside(received_ms)}"
    if not MIN_PLAUSIBLE_MS <= event_ms <= MAX_PLAUSIBLE_MS:
        return DeadLetterReason.IMPLAUSIBLE_TIMESTAMP, f"event time {_outside(event_ms)}"
    if received_ms is not None and event_ms - received_ms > max_future_ms:
        ahead = event_ms - received_ms
        message = f"event time is {ahead} ms after receivedAt (at most {max_future_ms} ms)"
        return DeadLetterReason.FUTURE_TIMESTAMP, message
    return None


def _outside(ms: int) -> str:
    # In ms, not ISO: the time may be out of `datetime`'s range.
    return f"{ms} ms is outside 2000-01-01..2100-01-01 ({MIN_PLAUSIBLE_MS}..{MAX_PLAUSIBLE_MS})"

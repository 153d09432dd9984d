"""Offline replay: the same :func:`~stream.step.step` over a recorded log, with no broker.

Profiles live in a dict; outputs come back in log order. This is what the Kafka path must
reproduce: the same log gives the same decisions, byte for byte (canonical form).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from stream.config import StepConfig
from stream.deadletter import DeadLetter
from stream.decision import Decision
from stream.decode import decode_event
from stream.profile import Profile
from stream.step import step

__all__ = ["ReplayResult", "replay", "replay_outputs"]


@dataclass(slots=True)
class ReplayResult:
    """Final profiles by user key, and every decision and dead letter in log order."""

    profiles: dict[str, Profile] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)


def replay_outputs(
    lines: Iterable[bytes], config: StepConfig, profiles: dict[str, Profile] | None = None
) -> Iterator[Decision | DeadLetter]:
    """Yield each line's outputs in order; ``profiles`` (updated in place) holds the state."""
    state = profiles if profiles is not None else {}
    for raw in lines:
        decoded = decode_event(raw.rstrip(b"\r\n"))
        if isinstance(decoded, DeadLetter):
            yield decoded
            continue
        updated, outputs = step(state.get(decoded.user_key), decoded, config)
        state[decoded.user_key] = updated
        yield from outputs.decisions


def replay(lines: Iterable[bytes], config: StepConfig | None = None) -> ReplayResult:
    """Replay a whole log and collect the result."""
    result = ReplayResult()
    for output in replay_outputs(lines, config or StepConfig(), result.profiles):
        if isinstance(output, Decision):
            result.decisions.append(output)
        else:
            result.deadletters.append(output)
    return result

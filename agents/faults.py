"""Fault injection for tests: make the agent lose records in transit, as Faust was seen to.

Around a rebalance Faust (0.15.3) can fail to hand some records to the stream and never hand them
over again (see agents.sequencer). That race is rare and timing-bound, so a test cannot count on
it; with ``LIVEPROFILES_FAULT_LOSE_EVERY=N`` the agent itself drops the *first* delivery of every
record whose offset is a multiple of ``N``, as if it never arrived, and the test checks that the
sequencer notices the hole, seeks back and that nothing is lost. Off (0) outside tests.
"""

from __future__ import annotations

from collections.abc import Sequence

from faust.types import EventT

__all__ = ["FirstDeliveryLoss"]


class FirstDeliveryLoss:
    """Drops the first delivery of every record whose offset is a multiple of ``every``."""

    def __init__(self, every: int) -> None:
        if every < 1:
            raise ValueError(f"every must be at least 1, not {every}")
        self.every = every
        self._lost: set[tuple[str, int, int]] = set()

    def __call__(self, batch: Sequence[EventT[bytes]]) -> list[EventT[bytes]]:
        kept = []
        for event in batch:
            message = event.message
            key = (message.topic, message.partition, message.offset)
            if message.offset % self.every == 0 and key not in self._lost:
                self._lost.add(key)
                # Never delivered, so never acknowledged either: Faust must not commit it.
                message.acked = True
            else:
                kept.append(event)
        return kept

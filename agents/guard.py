"""What the agent does when a micro-batch cannot be handled: retry it, then die loudly.

Faust's ``take_events`` acknowledges a batch's events when the agent moves past it, *also when
the agent's body raised* (the generator's ``finally`` runs on close), and acknowledged offsets
get committed. An exception escaping the agent would therefore lose the batch: no state, maybe
no decisions, offsets committed. So a failed batch is retried (handling is idempotent: the same
decision ids, the same profile bytes, already-applied records skipped), and when it keeps
failing the process exits at once, without returning to Faust, so nothing is acknowledged and
the batch is redelivered to whichever worker takes the partitions next.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["EXIT_BATCH_FAILED", "handle_or_exit"]

log = logging.getLogger(__name__)

#: Process exit status when a batch failed every attempt (EX_SOFTWARE).
EXIT_BATCH_FAILED = 70

Batch = TypeVar("Batch")


async def handle_or_exit(
    handle: Callable[[Batch], Awaitable[None]],
    batch: Batch,
    *,
    attempts: int = 3,
    first_delay_s: float = 0.5,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    exit_process: Callable[[int], object] = os._exit,
) -> None:
    """Run ``handle(batch)``; retry with exponential backoff; exit the process if all fail."""
    for attempt in range(1, attempts + 1):
        try:
            await handle(batch)
            return
        except Exception:
            log.exception("batch failed (attempt %d of %d)", attempt, attempts)
        if attempt < attempts:
            await sleep(first_delay_s * 2 ** (attempt - 1))
    log.critical("batch failed %d times: exiting without acknowledging it", attempts)
    logging.shutdown()
    exit_process(EXIT_BATCH_FAILED)

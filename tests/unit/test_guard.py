"""agents.guard: a failing batch is retried, then the process exits without acknowledging it."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from agents.guard import EXIT_BATCH_FAILED, handle_or_exit


class Exited(Exception):
    pass


def _run(failures: int, attempts: int = 3) -> tuple[list[int], list[float], list[int]]:
    calls: list[int] = []
    sleeps: list[float] = []
    exits: list[int] = []

    async def handle(batch: int) -> None:
        calls.append(batch)
        if len(calls) <= failures:
            raise ConnectionError("broker went away")

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    def exit_process(code: int) -> None:
        exits.append(code)
        raise Exited

    async def main() -> None:
        await handle_or_exit(
            handle, 7, attempts=attempts, first_delay_s=0.5, sleep=sleep, exit_process=exit_process
        )

    with contextlib.suppress(Exited):
        asyncio.run(main())
    return calls, sleeps, exits


def test_a_batch_that_succeeds_runs_once() -> None:
    assert _run(failures=0) == ([7], [], [])


def test_a_transient_failure_is_retried_with_backoff() -> None:
    calls, sleeps, exits = _run(failures=2)
    assert calls == [7, 7, 7]
    assert sleeps == [0.5, 1.0]
    assert exits == []


def test_a_persistent_failure_exits_the_process_without_returning() -> None:
    calls, sleeps, exits = _run(failures=10)
    assert sleeps == [0.5, 1.0], "no sleep after the last attempt"
    assert calls == [7, 7, 7]
    assert exits == [EXIT_BATCH_FAILED]


def test_cancellation_is_not_swallowed() -> None:
    async def handle(batch: int) -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(handle_or_exit(handle, 1))

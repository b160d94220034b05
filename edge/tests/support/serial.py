"""Helpers for the serial tests: an in-memory ReadingSink and a way to run a source.

(Named test_* so that it lives among the serial tests; it holds no test itself.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable

from edge.sources.serial import SerialSource
from protocols.reading import Reading


class MemorySink:
    """A real ReadingSink that keeps everything in memory (bounded) for assertions."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self.readings: list[Reading] = []
        self.errors: Counter[tuple[str, str]] = Counter()
        self.details: list[tuple[str, str, str]] = []
        self.states: list[tuple[str, str, str]] = []
        self._changed = asyncio.Event()

    async def put(self, reading: Reading) -> None:
        if len(self.readings) >= self.limit:
            raise AssertionError("more readings than a test should ever make")
        self.readings.append(reading)
        self._changed.set()

    def count_error(self, sensor: str, reason: str, detail: str = "") -> None:
        self.errors[(sensor, reason)] += 1
        self.details.append((sensor, reason, detail))
        self._changed.set()

    def set_state(self, source: str, state: str, detail: str = "") -> None:
        self.states.append((source, state, detail))
        self._changed.set()

    # -- assertions ------------------------------------------------------------------------

    def values(self, sensor: str, quantity: str) -> list[object]:
        return [r.value for r in self.readings if r.sensor == sensor and r.quantity == quantity]

    def quantities(self, sensor: str) -> set[str]:
        return {r.quantity for r in self.readings if r.sensor == sensor}

    def errors_for(self, reason: str) -> int:
        return sum(n for (_, r), n in self.errors.items() if r == reason)

    @property
    def state(self) -> str | None:
        return self.states[-1][1] if self.states else None

    async def wait_for(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what}; "
                    f"errors={dict(self.errors)} states={self.states[-5:]} "
                    f"readings={len(self.readings)} details={self.details[-5:]}"
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.2)):
                    await self._changed.wait()


@contextlib.asynccontextmanager
async def running(source: SerialSource, sink: MemorySink) -> AsyncIterator[asyncio.Task[None]]:
    """Run `source` as a named task for the duration of the block; surface its crash."""
    task = asyncio.create_task(source.run(sink), name=f"test:{source.name}")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if not task.cancelled() and task.exception() is not None:
            raise AssertionError("the source crashed") from task.exception()

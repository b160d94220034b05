"""One supervised task per source (and for the uplink), each isolated from the others.

A source's `run` should only return when cancelled; one that raises (or returns) is a bug or
an unforeseen failure: it is logged with its traceback, counted in the health registry, and
started again after a backoff that doubles from `restart_min_s` to `restart_max_s` (back to
the minimum once a run lasted `healthy_after_s`). Nothing a source does stops another one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from edge.health import HealthRegistry

log = logging.getLogger("estran.edge.daemon")

Runner = Callable[[], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A supervised task: `name` (unique), `key` (its configuration: the task is restarted on
    reload when the key changes), `runner` (makes a fresh coroutine for each start), and
    `sensors`: those it reads that the configuration file does not list under a port (a
    source the wiring adds), for the health registry."""

    name: str
    key: object
    runner: Runner
    sensors: tuple[str, ...] = ()


class Supervisor:
    def __init__(
        self,
        health: HealthRegistry,
        restart_min_s: float = 1.0,
        restart_max_s: float = 60.0,
        healthy_after_s: float = 60.0,
    ) -> None:
        self.health = health
        self.restart_min_s = restart_min_s
        self.restart_max_s = restart_max_s
        self.healthy_after_s = healthy_after_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.specs: dict[str, TaskSpec] = {}
        self.starts: dict[str, int] = {}

    @property
    def names(self) -> list[str]:
        return list(self.specs)

    def start(self, spec: TaskSpec) -> None:
        if spec.name in self._tasks:
            raise ValueError(f"{spec.name} is already running")
        self.specs[spec.name] = spec
        self._tasks[spec.name] = asyncio.get_running_loop().create_task(
            self._supervise(spec), name=spec.name
        )

    async def stop(self, name: str, timeout: float) -> bool:
        """Cancel `name` and wait up to `timeout` for it to finish; False if it did not."""
        task = self._tasks.pop(name, None)
        self.specs.pop(name, None)
        if task is None:
            return True
        return not await _cancel({task}, timeout)

    async def stop_all(self, timeout: float) -> None:
        tasks = set(self._tasks.values())
        self._tasks.clear()
        self.specs.clear()
        await _cancel(tasks, timeout)

    async def _supervise(self, spec: TaskSpec) -> None:
        loop = asyncio.get_running_loop()
        delay = self.restart_min_s
        while True:
            started = loop.time()
            self.starts[spec.name] = self.starts.get(spec.name, 0) + 1
            try:
                await spec.runner()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                error = f"{type(e).__name__}: {e}"
                log.error("%s crashed: %s", spec.name, error, exc_info=True)
            else:
                error = "run() returned"
                log.error("%s stopped on its own (run() returned)", spec.name)
            if loop.time() - started >= self.healthy_after_s:
                delay = self.restart_min_s
            self.health.crashed(spec.name, error, delay)
            log.info("%s: restart in %.1f s", spec.name, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.restart_max_s)

    def running(self, name: str) -> bool:
        task = self._tasks.get(name)
        return task is not None and not task.done()

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    async def __aenter__(self) -> Supervisor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            await self.stop_all(5.0)


async def _cancel(tasks: set[asyncio.Task[None]], timeout: float) -> set[asyncio.Task[None]]:
    """Cancel and wait up to `timeout`; returns those still running. The cancel is repeated:
    a task may swallow one (asyncio.wait_for in 3.11 does when its awaited result is ready)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(remaining, 0.5))
    for task in pending:
        log.error("%s did not stop within %.1f s", task.get_name(), timeout)
    return pending


__all__ = ["Runner", "Supervisor", "TaskSpec"]

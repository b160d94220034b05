"""The buffer writer: drains the bounded queue into the buffer and group-commits it.

One task owns the appends, and the writer is the one owner of commits: nothing else commits
the buffer while the daemon runs (the uplink reads committed blocks and acknowledges them; it
learns where the committed part ends from `durable_seq`). Commits are the buffer's flash
wear, so their policy (an interval, a count, alarms at once) lives in one place; and since
blocks are read only once committed, what the hub receives has always survived a power cut
on the gateway first.

It takes whatever the queue holds (up to `batch_max`) in one
`append_many`, and calls `commit()` every `commit_interval_s` when something was appended
(the buffer also commits on its own once `commit_readings` are pending), and at once when
an alarm reading came: alarms never wait for the interval. Nothing appended: no commit, no
write at all.

`commit()` ends in an fsync, which blocks. It runs on the event loop, not in a thread:
- the buffer is not thread-safe, and the uplink reads and acks it from the loop at any time;
  a commit in an executor would race with `read_blocks`/`ack` (and with the next append);
- what it costs is measured, not guessed: `estran bench edge` (50 sensors, ~100 readings/s,
  one commit a second) gives a mean of 1.4 to 6.7 ms and a worst case of 6 to 132 ms on the
  development machine, the worst while other test suites hammered the same disk; the status
  shows `commit_mean_ms`/`commit_max_ms` of every gateway. A stall of that order only delays
  work the kernel buffers meanwhile (a serial tty holds 4 KiB: 4 s of a 9600-baud line;
  BLE advertisements queue in the D-Bus socket), and is well below a master's response
  timeout (1 s by default), so it costs no false `timeout` errors.
If field figures from SD cards ever show commits of several hundred milliseconds, the fix is
in the buffer (an fsync of the segment's file descriptor alone, safe to hand to a thread
while appends go to the next block), not a thread around `commit()`. And if a disk makes it
hang, the watchdog (fed only while the writer makes progress) lets systemd restart us.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from edge.buffer import BufferDiskError, BufferFailure, BufferFull, ReadingLog
from edge.health import HealthRegistry
from protocols.reading import FLAG_ALARM, Reading

log = logging.getLogger("estran.edge.daemon")

ERROR_LOG_INTERVAL_S = 30.0


@dataclass(frozen=True, slots=True)
class WriterStats:
    """What the buffer writer did since the daemon started (the status' `buffer` section)."""

    appended: int
    commits: int
    commit_max_ms: float
    commit_mean_ms: float | None  # None before the first commit
    refused: dict[str, int]  # readings the buffer refused, by reason
    errors: int
    last_error: str | None


class BufferWriter:
    def __init__(
        self,
        log_: ReadingLog,
        queue: asyncio.Queue[Reading],
        health: HealthRegistry,
        commit_interval_s: float,
        batch_max: int = 1024,
    ) -> None:
        self.log = log_
        self.queue = queue
        self.health = health
        self.commit_interval_s = commit_interval_s
        self.batch_max = batch_max
        self.last_progress = time.monotonic()
        self.appended = 0
        self.commits = 0
        self.commit_total_s = 0.0
        self.commit_max_s = 0.0
        self.dropped: Counter[str] = Counter()  # readings the buffer refused, by reason
        self.errors = 0
        self.last_error: str | None = None
        self._dirty = False
        self._stopping = False
        # told after each commit (the uplink's `committed`: it sends what was committed at
        # once instead of finding it at its next poll)
        self.on_commit: Callable[[], None] | None = None
        self._last_error_log = 0.0

    def stop(self) -> None:
        """`run` returns within one commit interval (what is queued stays for `drain`)."""
        self._stopping = True

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_commit = loop.time() + self.commit_interval_s
        while not self._stopping:
            timeout = max(0.0, next_commit - loop.time())
            first: Reading | None = None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    first = await self.queue.get()
            alarm = False
            if first is not None:
                batch = self._take(first)
                self.append(batch)
                alarm = any(r.flags & FLAG_ALARM for r in batch)
            if alarm or loop.time() >= next_commit:
                self.commit()
                next_commit = loop.time() + self.commit_interval_s
            self.last_progress = time.monotonic()

    def _take(self, first: Reading) -> list[Reading]:
        batch = [first]
        queue = self.queue
        while len(batch) < self.batch_max:
            try:
                batch.append(queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return batch

    def append(self, batch: list[Reading]) -> None:
        try:
            self.log.append_many(batch)
        except BufferFull as e:
            self._refused(batch[e.accepted :], "buffer_full", str(e))
            self._dirty = self._dirty or e.accepted > 0
            return
        except BufferDiskError as e:
            # What it accepted stays in memory and is written by the next commit that works.
            reason = "disk_full" if e.no_space else "disk_error"
            self._refused(batch[e.accepted :], reason, str(e))
            self._dirty = True
            return
        except BufferFailure as e:
            self._refused(batch, "buffer_error", str(e))
            return
        self.appended += len(batch)
        self._dirty = True

    def commit(self) -> None:
        if not self._dirty:
            return
        started = time.perf_counter()
        try:
            self.log.commit()
        except BufferFailure as e:
            self._error(f"commit failed: {e}")
            return
        finally:
            elapsed = time.perf_counter() - started
            self.commits += 1
            self.commit_total_s += elapsed
            self.commit_max_s = max(self.commit_max_s, elapsed)
        self._dirty = False
        if self.on_commit is not None:
            self.on_commit()

    def drain(self) -> int:
        """Everything still queued into the buffer, then commit (on stop). Returns the count."""
        count = 0
        while True:
            batch: list[Reading] = []
            while len(batch) < self.batch_max:
                try:
                    batch.append(self.queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            if not batch:
                break
            self.append(batch)
            count += len(batch)
        self.commit()
        return count

    def stats(self) -> WriterStats:
        return WriterStats(
            appended=self.appended,
            commits=self.commits,
            commit_max_ms=round(self.commit_max_s * 1000, 2),
            commit_mean_ms=(
                round(self.commit_total_s * 1000 / self.commits, 2) if self.commits else None
            ),
            refused=dict(self.dropped),
            errors=self.errors,
            last_error=self.last_error,
        )

    def _refused(self, readings: list[Reading], reason: str, detail: str) -> None:
        self.dropped[reason] += len(readings)
        for reading in readings:
            self.health.count_error(reading.sensor, reason, detail)
        self._error(f"{len(readings)} readings refused ({reason}): {detail}")

    def _error(self, message: str) -> None:
        self.errors += 1
        self.last_error = message
        now = time.monotonic()
        if now - self._last_error_log >= ERROR_LOG_INTERVAL_S:
            self._last_error_log = now
            log.error("buffer: %s", message)


__all__ = ["BufferWriter", "WriterStats"]

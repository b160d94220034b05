"""The buffer as its two users see it: one object (`SegmentLog`), two sides.

- `ReadingLog`, the writer's side: append readings, commit them. The daemon's buffer writer
  (edge.daemon.BufferWriter) is the one owner of commits while the daemon runs: commits are
  the buffer's flash wear, so their policy (an interval, a count, alarms at once) lives in one
  place, and a block is readable only once committed, so what goes to the hub has always been
  made durable on the gateway first.
- `BlockLog`, the uplink's side: read committed blocks, acknowledge what the hub committed.
  It has no `commit`: `durable_seq` says where the committed part ends.
- `Buffer`: both, what the daemon opens and hands to each (no cast between them).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Protocol

from edge.buffer._segment import StoredBlock
from edge.buffer._stats import BufferStats
from protocols.reading import Reading


class ReadingLog(Protocol):
    """The writer's side of the buffer."""

    def append_many(self, readings: Iterable[Reading]) -> int:
        """Accept readings in order; the sequence number of the last one."""

    def commit(self) -> int:
        """Write the pending readings as one block and sync; the highest durable seq."""

    def stats(self) -> BufferStats: ...

    def close(self) -> None:
        """Commit and close (the daemon's stop)."""


class BlockLog(Protocol):
    """The uplink's side of the buffer: it reads and acknowledges, it never commits."""

    def read_blocks(
        self,
        after_seq: int,
        max_readings: int,
        *,
        alarms_first: bool = True,
        skip: Collection[int] = (),
    ) -> Sequence[StoredBlock]:
        """Committed blocks not yet acknowledged (see SegmentLog.read_blocks)."""

    def ack(self, ranges: Iterable[tuple[int, int]]) -> None:
        """The hub committed these inclusive seq ranges: free what they complete."""

    @property
    def durable_seq(self) -> int:
        """The highest committed sequence number."""

    def stats(self) -> BufferStats: ...


class Buffer(ReadingLog, BlockLog, Protocol):
    """Both sides: what the daemon opens (edge.buffer.SegmentLog)."""


__all__ = ["BlockLog", "Buffer", "ReadingLog"]

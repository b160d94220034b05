"""Segment: one segment file as the log knows it in memory: its summary always, its block
index (7 int64 per block) while it is open or being read, loaded from the footer on demand
for a sealed one (so that memory does not grow with the quota)."""

from __future__ import annotations

from array import array
from dataclasses import dataclass

from edge.buffer._format import (
    INDEX_FIELDS,
    Footer,
    footer_payload,
    frame,
    trailer,
)
from protocols.block import BlockHeader
from protocols.reading import FLAG_ALARM

OFFSET, LENGTH, FIRST_SEQ, COUNT, FLAGS, T_MIN, T_MAX = range(INDEX_FIELDS)


@dataclass(frozen=True, slots=True)
class StoredBlock:
    """A block as stored: `payload` is the protocols.block encoding, sent as is."""

    first_seq: int
    last_seq: int
    count: int
    payload: bytes
    has_alarm: bool


@dataclass(frozen=True, slots=True)
class BlockRef:
    """Where a block is: its segment and record, and what it holds."""

    segment_first_seq: int
    offset: int
    length: int
    first_seq: int
    count: int
    flags: int

    @property
    def last_seq(self) -> int:
        return self.first_seq + self.count - 1

    @property
    def has_alarm(self) -> bool:
        return bool(self.flags & FLAG_ALARM)


class Segment:
    __slots__ = (
        "alarms",
        "capacity",
        "count",
        "first_seq",
        "index",
        "last_seq",
        "lo",
        "n_blocks",
        "path",
        "sealed",
        "sensors",
        "size",
        "t_max",
        "t_min",
    )

    def __init__(self, path: str, first_seq: int) -> None:
        self.path = path
        self.first_seq = first_seq  # from the name and the header
        self.size = 0  # where the records end (the next one goes here)
        self.capacity = 0  # the file's size when preallocated (0: the file ends at `size`)
        self.sealed = False
        self.lo = first_seq  # first seq of its first block (above first_seq after a repair)
        self.last_seq = first_seq - 1  # of the last block
        self.count = 0  # readings
        self.n_blocks = 0
        self.t_min = 0
        self.t_max = 0
        self.index: array[int] | None = array("q")
        self.sensors: dict[str, int] | None = {}
        self.alarms: list[BlockRef] = []

    def add_block(
        self, offset: int, length: int, header: BlockHeader, sensors: dict[str, int] | None
    ) -> None:
        assert self.index is not None
        self.index.extend(
            (
                offset,
                length,
                header.first_seq,
                header.count,
                header.flags,
                header.t_min,
                header.t_max,
            )
        )
        if self.n_blocks == 0:
            self.lo = header.first_seq
            self.t_min, self.t_max = header.t_min, header.t_max
        else:
            self.t_min = min(self.t_min, header.t_min)
            self.t_max = max(self.t_max, header.t_max)
        self.n_blocks += 1
        self.count += header.count
        self.last_seq = header.first_seq + header.count - 1
        if sensors is not None and self.sensors is not None:
            merged = self.sensors
            for k, v in sensors.items():
                merged[k] = merged.get(k, 0) + v
        else:
            self.sensors = None  # unknown: counted from the blocks when needed
        if header.flags & FLAG_ALARM:
            self.alarms.append(
                BlockRef(
                    self.first_seq, offset, length, header.first_seq, header.count, header.flags
                )
            )

    def entry(self, k: int) -> tuple[int, ...]:
        assert self.index is not None
        base = k * INDEX_FIELDS
        return tuple(self.index[base : base + INDEX_FIELDS])

    def ref(self, k: int) -> BlockRef:
        e = self.entry(k)
        return BlockRef(self.first_seq, e[OFFSET], e[LENGTH], e[FIRST_SEQ], e[COUNT], e[FLAGS])

    def first_block_after(self, after_seq: int) -> int:
        """Index of the first block whose first_seq > after_seq (binary search)."""
        assert self.index is not None
        index = self.index
        lo, hi = 0, self.n_blocks
        while lo < hi:
            mid = (lo + hi) // 2
            if index[mid * INDEX_FIELDS + FIRST_SEQ] > after_seq:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def seal_bytes(self) -> bytes:
        """Footer record and trailer, to append at `self.size`. Per-sensor counts that are
        not known are written empty (their sum then differs from `count`: a reader counts)."""
        assert self.index is not None
        alarms = array("q")
        for k in range(self.n_blocks):
            e = self.entry(k)
            if e[FLAGS] & FLAG_ALARM:
                alarms.extend(e)
        footer = Footer(
            first_seq=self.lo,
            last_seq=self.last_seq,
            count=self.count,
            t_min=self.t_min,
            t_max=self.t_max,
            sensors=self.sensors if self.sensors is not None else {},
            index=self.index,
            alarms=alarms,
        )
        return frame(footer_payload(footer)) + trailer(self.size)

    @classmethod
    def from_footer(cls, path: str, first_seq: int, size: int, footer: Footer) -> Segment:
        seg = cls(path, first_seq)
        seg.size = size
        seg.sealed = True
        seg.count = footer.count
        seg.lo = footer.first_seq
        seg.last_seq = footer.last_seq
        seg.t_min, seg.t_max = footer.t_min, footer.t_max
        seg.n_blocks = len(footer.index) // INDEX_FIELDS
        seg.index = footer.index
        seg.sensors = footer.sensors
        a = footer.alarms
        seg.alarms = [
            BlockRef(
                first_seq,
                a[i + OFFSET],
                a[i + LENGTH],
                a[i + FIRST_SEQ],
                a[i + COUNT],
                a[i + FLAGS],
            )
            for i in range(0, len(a), INDEX_FIELDS)
        ]
        return seg


__all__ = ["BlockRef", "Segment", "StoredBlock"]

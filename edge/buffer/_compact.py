"""Compaction at seal: a segment of many small blocks (a gateway committing a few readings
every 100 ms) rewritten as one of large blocks, the same readings and numbers in a few
bytes each instead of tens. What to compact and the new file; SegmentLog._compact reads
the old blocks and puts the new file in place."""

from __future__ import annotations

from edge.buffer._format import HEADER_LEN, frame, segment_header
from edge.buffer._segment import Segment
from protocols.block import BlockEncoder, read_block_header
from protocols.reading import FLAG_ALARM, Reading

COMPACT_BELOW = 256  # readings per block on average: below, a segment is compacted at seal
_MIN_BLOCKS = 8


def worth_compacting(seg: Segment) -> bool:
    """Enough blocks, small on average."""
    return seg.n_blocks >= _MIN_BLOCKS and seg.count < COMPACT_BELOW * seg.n_blocks


def compacted(
    seg: Segment, readings: list[Reading], encoder: BlockEncoder, block_readings: int
) -> tuple[Segment, bytes]:
    """The sealed segment (same path and numbers) holding `readings`, all of `seg`'s in
    order, in blocks of up to `block_readings`; and the bytes of its file."""
    fresh = Segment(seg.path, seg.first_seq)
    parts = [segment_header(seg.first_seq)]
    fresh.size = HEADER_LEN
    i = 0
    while i < len(readings):
        # alarm runs keep blocks of their own, so that they still go first, alone
        alarm = readings[i].flags & FLAG_ALARM
        j = i + 1
        while (
            j < len(readings)
            and j - i < block_readings
            and (readings[j].flags & FLAG_ALARM) == alarm
        ):
            j += 1
        data = encoder.encode(seg.lo + i, readings[i:j])
        record = frame(data)
        fresh.add_block(fresh.size, len(record), read_block_header(data), None)
        fresh.size += len(record)
        parts.append(record)
        i = j
    fresh.sensors = seg.sensors
    parts.append(fresh.seal_bytes())
    content = b"".join(parts)
    fresh.size = len(content)
    fresh.sealed = True
    return fresh, content


__all__ = ["COMPACT_BELOW", "compacted", "worth_compacting"]

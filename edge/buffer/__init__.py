"""The gateway's durable, compact, bounded buffer of readings (DESIGN.md: "The buffer").

    from edge.buffer import BufferConfig, SegmentLog

    with SegmentLog.open(BufferConfig("/var/lib/estran/buffer")) as log:
        seq = log.append(reading)          # group-committed: every 100 ms or 2,000 readings
        log.commit()                       # on a timer too; returns the highest durable seq
                                           # (in the daemon, its buffer writer alone commits)
        for block in log.read_blocks(after_seq=0, max_readings=5000):
            ...                            # block.payload: protocols.block bytes, sent as is
        log.ack([(first, last)])           # what the hub committed: freed segment by segment

The file format is in docs/buffer-format.md; `estran edge buffer dump|verify|stats` inspect.
"""

from edge.buffer._config import POLICIES, BufferConfig, Policy
from edge.buffer._errors import (
    BufferClosed,
    BufferDiskError,
    BufferFailure,
    BufferFull,
    BufferLocked,
)
from edge.buffer._fs import FileLayer, OsFileLayer, ReadHandle, WriteHandle
from edge.buffer._log import SegmentLog
from edge.buffer._protocols import BlockLog, Buffer, ReadingLog
from edge.buffer._segment import StoredBlock
from edge.buffer._stats import BufferStats
from edge.buffer._verify import VerifyReport, verify_buffer

__all__ = [
    "POLICIES",
    "BlockLog",
    "Buffer",
    "BufferClosed",
    "BufferConfig",
    "BufferDiskError",
    "BufferFailure",
    "BufferFull",
    "BufferLocked",
    "BufferStats",
    "FileLayer",
    "OsFileLayer",
    "Policy",
    "ReadHandle",
    "ReadingLog",
    "SegmentLog",
    "StoredBlock",
    "VerifyReport",
    "WriteHandle",
    "verify_buffer",
]

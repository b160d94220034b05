"""A connected gateway's buffer stays at one preallocation, on disk and in memory (issue 14's
soak): the open segment is kept while acknowledged (no file per commit, test_buffer_flash),
but once its room written ahead is used up it goes instead of growing, with its block
index, up to the segment size (4 MiB: hours of a demo gateway committing every second,
about 56 bytes of index in memory per commit)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.buffer import BufferConfig, SegmentLog
from edge.buffer._format import HEADER_LEN, PAGE
from edge.buffer._log import PREALLOCATE_BYTES
from edge.tests.support.buffer import reading

PER_COMMIT = 1000


@pytest.fixture
def where(tmp_path: Path) -> Iterator[Path]:
    """tmpfs when there is one: hundreds of commits, each an fdatasync (free on tmpfs)."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=shm, prefix="estran-test-") as d:
        yield Path(d)


def _segment_files(cfg: BufferConfig) -> list[Path]:
    return sorted(Path(cfg.segments_dir).iterdir())


def _fill(log: SegmentLog, first: int, commits: int, *, ack: bool) -> int:
    n = first
    for _ in range(commits):
        for _ in range(PER_COMMIT):
            log.append(reading(n := n + 1))
        log.commit()
        if ack:
            log.ack([(1, log.durable_seq)])  # the hub committed it all
    return n


def test_an_acknowledged_open_segment_is_replaced_when_its_room_is_used(where: Path) -> None:
    cfg = BufferConfig(where / "buffer", preallocate=True, commit_interval_s=60.0)
    bound = HEADER_LEN + PREALLOCATE_BYTES + PAGE
    with SegmentLog.open(cfg) as log:
        n = _fill(log, 0, 20, ack=True)
        per_commit = log.stats().bytes / 20
        commits = int(4 * PREALLOCATE_BYTES / per_commit)  # four preallocations' worth
        names: set[str] = set()
        blocks: list[int] = []
        for _ in range(8):
            n = _fill(log, n, commits // 8, ack=True)
            files = _segment_files(cfg)
            names.update(p.name for p in files)
            assert len(files) == 1, files
            assert os.path.getsize(files[0]) <= bound
            stats = log.stats()
            assert stats.segments == 1 and stats.bytes <= bound and stats.depth == 0
            blocks.append(log._open.n_blocks if log._open else 0)  # the index in memory
        assert len(names) >= 3  # replaced, not grown
        assert max(blocks) <= PREALLOCATE_BYTES // int(per_commit) + 1


def test_unacknowledged_readings_still_fill_the_segment(where: Path) -> None:
    """Only acknowledged readings go: a gateway cut from its hub keeps everything."""
    cfg = BufferConfig(where / "buffer", preallocate=True, commit_interval_s=60.0)
    with SegmentLog.open(cfg) as log:
        n = _fill(log, 0, 20, ack=False)
        per_commit = log.stats().bytes / 20
        n = _fill(log, n, int(2 * PREALLOCATE_BYTES / per_commit), ack=False)
        (one,) = _segment_files(cfg)
        assert os.path.getsize(one) > 2 * PREALLOCATE_BYTES
        assert log.stats().depth == n

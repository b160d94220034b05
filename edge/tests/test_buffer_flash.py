"""Flash wear at a real gateway's rate (issue 9): a commit into the open segment changes no
file size, no allocation and no other file (it writes in place over zeros written ahead);
a hub that acknowledges everything does not make the buffer delete and recreate its open
segment nor rewrite its state file at every ack; the daemon commits every 10 s (the loss
window) but an alarm at once. Checked on the files, as `ls -l` and `stat` show them; the
bytes per reading are `estran bench edge`'s figures (docs/benchmarks.md)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from edge.buffer import BufferConfig, SegmentLog
from edge.config import BufferSection
from edge.daemon._writer import BufferWriter
from edge.health import HealthRegistry
from edge.tests.support.buffer import reading


def _segments(cfg: BufferConfig) -> list[Path]:
    return sorted(Path(cfg.segments_dir).iterdir())


def test_commits_write_in_place_and_acks_keep_the_open_segment(tmp_path: Path) -> None:
    cfg = BufferConfig(tmp_path / "buffer", preallocate=True, commit_interval_s=10.0)
    log = SegmentLog.open(cfg)
    n = 0
    try:
        for _ in range(10):
            log.append(reading(n := n + 1))
        log.commit()
        (path,) = _segments(cfg)
        first = os.stat(path)
        assert first.st_size > 64 * 1024  # room written ahead, as zeros
        state_before = (
            os.stat(cfg.state_path).st_mtime_ns if os.path.exists(cfg.state_path) else None
        )
        for _ in range(30):  # five minutes of a 1-reading-a-second gateway
            for _ in range(10):
                log.append(reading(n := n + 1))
            log.commit()
            log.ack([(1, log.durable_seq)])  # the hub committed it all
            now = os.stat(path)
            # the same file, the same size and blocks: no allocation, no size change
            assert (now.st_ino, now.st_size, now.st_blocks) == (
                first.st_ino,
                first.st_size,
                first.st_blocks,
            )
        assert _segments(cfg) == [path]
        state_after = (
            os.stat(cfg.state_path).st_mtime_ns if os.path.exists(cfg.state_path) else None
        )
        assert state_after == state_before  # acks kept in memory, saved every few minutes
        assert log.stats().depth == 0  # type: ignore[attr-defined]
    finally:
        log.close()
    # closed: the acknowledged open segment goes; reopened, nothing is sent again
    with SegmentLog.open(cfg) as again:
        assert again.stats().depth == 0  # type: ignore[attr-defined]
        assert _segments(cfg) == []


def test_the_first_release_policy_recreated_a_file_per_commit(tmp_path: Path) -> None:
    """The anchor of the bench, kept as a knob: what the default no longer does."""
    cfg = BufferConfig(tmp_path / "buffer", keep_acked_open=False)
    with SegmentLog.open(cfg) as log:
        names = set()
        for k in range(3):
            log.append(reading(k + 1))
            log.commit()
            names.update(p.name for p in _segments(cfg))
            log.ack([(1, log.durable_seq)])
        assert len(names) == 3 and _segments(cfg) == []


async def test_the_daemon_commits_every_10_s_and_an_alarm_at_once(tmp_path: Path) -> None:
    assert BufferSection().commit_interval_s == 10.0  # the loss window, docs/configuration.md
    cfg = BufferConfig(tmp_path / "buffer", preallocate=True)
    log = SegmentLog.open(cfg)
    queue: asyncio.Queue = asyncio.Queue()  # type: ignore[type-arg]
    writer = BufferWriter(log, queue, HealthRegistry("gw"), commit_interval_s=10.0)
    task = asyncio.create_task(writer.run(), name="writer")
    try:
        for k in range(5):
            await queue.put(reading(k + 1))
        await asyncio.sleep(0.5)
        assert log.durable_seq == 0 and writer.commits == 0  # waiting for the interval
        await queue.put(reading(6, alarm=True))
        async with asyncio.timeout(2):
            while log.durable_seq < 6:
                await asyncio.sleep(0.02)
        assert writer.commits == 1
    finally:
        task.cancel()  # as the daemon stops it
        with contextlib.suppress(asyncio.CancelledError):
            await task
        log.close()


async def test_the_writer_tells_the_uplink_of_each_commit(tmp_path: Path) -> None:
    """The daemon's uplink sends what a commit made durable when told (`on_commit`), not at
    its next poll; a commit with nothing new says nothing."""
    log = SegmentLog.open(BufferConfig(tmp_path / "buffer"))
    queue: asyncio.Queue = asyncio.Queue()  # type: ignore[type-arg]
    writer = BufferWriter(log, queue, HealthRegistry("gw"), commit_interval_s=10.0)
    told: list[int] = []
    writer.on_commit = lambda: told.append(log.durable_seq)
    try:
        writer.append([reading(1), reading(2)])
        writer.commit()
        assert told == [2]
        writer.commit()  # nothing new
        assert told == [2]
        await queue.put(reading(3, alarm=True))  # an alarm: committed at once, and said
        task = asyncio.create_task(writer.run(), name="writer")
        try:
            async with asyncio.timeout(2):
                while told != [2, 3]:
                    await asyncio.sleep(0.02)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        log.close()

"""Disk errors (ENOSPC, EIO, a read-only file system) surface as BufferDiskError; the buffer
stays consistent (what was committed is intact, nothing half-written is ever read back,
memory stays bounded) and picks up again when the disk does."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.buffer import BufferConfig, BufferDiskError, SegmentLog, verify_buffer
from edge.tests.support.buffer import FakeClock, exact, reading
from edge.tests.support.memfs import MemoryFileLayer


def open_log(layer: MemoryFileLayer, **kw: object) -> SegmentLog:
    options: dict[str, object] = {"commit_readings": 20, "segment_bytes": 4096, **kw}
    cfg = BufferConfig("/buf", **options)  # type: ignore[arg-type]
    return SegmentLog.open(cfg, layer=layer, clock=FakeClock())


def check_all(layer: MemoryFileLayer, n: int) -> None:
    log = open_log(layer.clone())
    got = dict(log.iter_readings())
    assert sorted(got) == list(range(1, n + 1))
    assert all(exact(r, reading(s)) for s, r in got.items())
    assert log.recovery.problems == []


def test_no_space_left_is_a_typed_error_and_the_buffer_recovers_when_space_returns() -> None:
    layer = MemoryFileLayer()
    log = open_log(layer)
    layer.capacity = 12_000
    accepted = 0
    with pytest.raises(BufferDiskError) as e:
        for i in range(1, 100_000):
            assert log.append(reading(i)) == i
            accepted = i
    assert e.value.no_space and e.value.errno == errno.ENOSPC
    assert log.next_seq == accepted + 1  # the reading that met the error was not taken
    assert log.pending <= 20  # bounded: no queue grows in front of a full disk
    durable = log.durable_seq
    # what was committed is intact, and nothing half-written is ever read back
    check_all(layer, durable)
    # still full: every further try fails the same way, without taking the reading
    for _ in range(3):
        with pytest.raises(BufferDiskError):
            log.append(reading(accepted + 1))
    assert log.next_seq == accepted + 1
    layer.capacity = None  # space is back
    assert log.append(reading(accepted + 1)) == accepted + 1
    log.close()
    check_all(layer, accepted + 1)


def test_append_many_says_how_many_it_took() -> None:
    layer = MemoryFileLayer()
    log = open_log(layer)
    layer.capacity = 9_000
    with pytest.raises(BufferDiskError) as e:
        log.append_many(reading(i) for i in range(1, 10_000))
    taken = e.value.accepted
    assert taken > 0 and log.next_seq == taken + 1
    layer.capacity = None
    log.close()
    check_all(layer, taken)


def test_an_io_error_on_sync_leaves_nothing_half_committed() -> None:
    layer = MemoryFileLayer()
    log = open_log(layer)
    log.append_many(reading(i) for i in range(1, 101))
    log.commit()
    failing = {"on": True}

    def fault(op: str, path: str) -> int | None:
        return errno.EIO if failing["on"] and op == "sync" and "/segments/" in path else None

    layer.fault = fault
    log.append_many(reading(i) for i in range(101, 111))
    with pytest.raises(BufferDiskError) as e:
        log.commit()
    assert e.value.errno == errno.EIO
    assert log.durable_seq == 100 and log.pending == 10
    assert [s for s, _ in log.iter_readings()][-1] == 100  # the failed write is not visible
    failing["on"] = False
    assert log.commit() == 110
    log.close()
    check_all(layer, 110)


def test_a_read_only_file_system() -> None:
    layer = MemoryFileLayer()
    log = open_log(layer)
    log.append_many(reading(i) for i in range(1, 51))
    log.commit()
    layer.fault = lambda op, path: (
        errno.EROFS if op in ("open", "write", "rename", "truncate") else None
    )
    log.append_many(reading(i) for i in range(51, 61))
    with pytest.raises(BufferDiskError) as e:
        log.commit()
    assert e.value.read_only
    layer.fault = None  # remounted read-write
    log.close()
    check_all(layer, 60)


def test_errors_while_sealing_and_creating_segments() -> None:
    """An EIO at each operation on the segments in turn (writes, syncs, creating, sealing)."""
    for k in range(1, 400, 3):
        layer = MemoryFileLayer()
        log = open_log(layer)
        count = {"ops": 0}

        def fault(op: str, path: str, k: int = k, count: dict[str, int] = count) -> int | None:
            if "/segments/" not in path or op not in (
                "open",
                "write",
                "sync",
                "syncdir",
                "truncate",
            ):
                return None
            count["ops"] += 1
            return errno.EIO if k <= count["ops"] < k + 2 else None

        layer.fault = fault
        i = 0
        errors = 0
        while i < 600:
            try:
                log.append(reading(i + 1))
                i += 1
            except BufferDiskError:
                errors += 1
                assert errors < 10
        layer.fault = None
        log.close()
        assert errors > 0 or count["ops"] < k
        check_all(layer, 600)
        assert verify_buffer(log.config, layer).ok


# ---------------------------------------------------------------- a real full disk (tmpfs)


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, if this machine lets us mount one (root, not in a locked container)."""
    mnt = tmp_path / f"tmpfs-{uuid.uuid4().hex[:8]}"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
        capture_output=True,
        timeout=10,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=10)


def test_enospc_on_a_real_small_tmpfs(small_tmpfs: Path) -> None:
    cfg = BufferConfig(
        small_tmpfs / "buf", quota_bytes=64 << 20, segment_bytes=64 * 1024, commit_readings=500
    )
    filler = small_tmpfs / "filler"
    filler.write_bytes(b"\0" * (700 * 1024))
    log = SegmentLog.open(cfg)
    taken = 0
    with pytest.raises(BufferDiskError) as e:
        for i in range(1, 1_000_000):
            log.append(reading(i))
            taken = i
    assert e.value.no_space
    durable = log.durable_seq
    assert durable > 0
    ro = SegmentLog.open(cfg, read_only=True)
    assert [s for s, _ in ro.iter_readings()] == list(range(1, durable + 1))
    ro.close()
    filler.unlink()  # space again
    log.close()
    with SegmentLog.open(cfg) as log:
        got = dict(log.iter_readings())
        assert sorted(got) == list(range(1, taken + 1))
        assert all(exact(r, reading(s)) for s, r in got.items())
    assert verify_buffer(cfg).ok


@pytest.mark.parametrize("op", ["open", "write", "sync", "rename", "syncdir"])
def test_a_failure_while_compacting_a_segment(op: str) -> None:
    """Compaction writes a new file beside the segment and renames it over: whichever step
    fails, the segment ends up sealed (compacted or not) and every reading is there."""
    layer = MemoryFileLayer()
    log = open_log(layer, commit_readings=2)
    state = {"armed": False, "hit": 0}

    def fault(o: str, path: str) -> int | None:
        if state["armed"] and o == op and (path.endswith(".tmp") or o in ("rename", "syncdir")):
            state["hit"] += 1
            state["armed"] = False  # once
            return errno.EIO
        return None

    layer.fault = fault
    i = 1
    while i <= 2000:
        if i == 1000:
            state["armed"] = True
        try:
            log.append(reading(i))
        except BufferDiskError:
            continue  # the commit that met the fault: the reading was not taken, again
        i += 1
    layer.fault = None
    log.close()
    assert state["hit"] > 0
    check_all(layer, 2000)
    assert verify_buffer(log.config, layer).ok

"""edge.buffer.SegmentLog: sequence numbers, group commit, reading back, acks, alarms first,
bounded memory, stats, locking, read-only inspection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge.buffer import (
    BufferClosed,
    BufferConfig,
    BufferLocked,
    SegmentLog,
    verify_buffer,
)
from edge.tests.support.buffer import T0, FakeClock, exact, reading, workload
from edge.tests.support.memfs import MemoryFileLayer
from protocols.block import decode_block
from protocols.errors import LocalProtocolError
from protocols.reading import FLAG_ALARM, Reading


def mem_log(
    layer: MemoryFileLayer | None = None, clock: FakeClock | None = None, **kw: object
) -> SegmentLog:
    cfg = BufferConfig("/buf", **kw)  # type: ignore[arg-type]
    return SegmentLog.open(cfg, layer=layer or MemoryFileLayer(), clock=clock or FakeClock())


def drain(log: SegmentLog, max_readings: int = 1000) -> list[tuple[int, Reading]]:
    out = []
    after = 0
    while blocks := log.read_blocks(after, max_readings, alarms_first=False):
        for b in blocks:
            seq, readings = decode_block(b.payload)
            assert (seq, len(readings)) == (b.first_seq, b.count)
            assert b.last_seq == b.first_seq + b.count - 1
            out.extend((seq + i, r) for i, r in enumerate(readings))
        after = blocks[-1].last_seq
    return out


def test_in_a_fresh_directory_the_kth_reading_gets_number_k(tmp_path: Path) -> None:
    with SegmentLog.open(BufferConfig(tmp_path / "buf")) as log:
        assert [log.append(reading(i)) for i in range(1, 6)] == [1, 2, 3, 4, 5]
        assert log.append_many(reading(i) for i in range(6, 101)) == 100
        assert log.durable_seq == 0  # nothing committed yet
        assert log.commit() == 100
        got = drain(log)
    assert [s for s, _ in got] == list(range(1, 101))
    assert all(exact(r, reading(s)) for s, r in got)


def test_sequence_numbers_go_on_across_a_restart(tmp_path: Path) -> None:
    cfg = BufferConfig(tmp_path / "buf")
    with SegmentLog.open(cfg) as log:
        log.append_many(reading(i) for i in range(10))
    with SegmentLog.open(cfg) as log:
        assert log.append(reading(10)) == 11  # a clean restart leaves no gap
        log.commit()
        assert [s for s, _ in log.iter_readings()] == list(range(1, 12))


def test_sequence_numbers_are_never_reused_after_a_crash() -> None:
    layer = MemoryFileLayer()
    cfg = BufferConfig("/buf", seq_reserve=100)
    log = SegmentLog.open(cfg, layer=layer, clock=FakeClock())
    for i in range(30):
        log.append(reading(i))  # handed out, never committed
    # the power goes: nothing was committed, but 30 numbers were handed out
    disk = layer.after_crash(__import__("random").Random(1))
    log2 = SegmentLog.open(cfg, layer=disk, clock=FakeClock())
    assert log2.append(reading(99)) > 30


def test_sequence_numbers_are_never_reused_after_a_wipe(tmp_path: Path) -> None:
    cfg = BufferConfig(tmp_path / "buf")
    with SegmentLog.open(cfg) as log:
        log.append_many(reading(i) for i in range(50))
        log.commit()
        log.wipe()
        assert log.stats().depth == 0
        assert list(log.iter_readings()) == []
        assert log.append(reading(50)) == 51
    # a wipe by hand: the segments deleted, the mark kept (docs/buffer-format.md)
    for name in os.listdir(cfg.segments_dir):
        os.unlink(os.path.join(cfg.segments_dir, name))
    os.unlink(cfg.state_path)
    with SegmentLog.open(cfg) as log:
        assert log.append(reading(0)) == 52


def test_a_mark_kept_outside_survives_deleting_the_whole_directory(tmp_path: Path) -> None:
    mark = tmp_path / "state" / "seq.cbor"
    mark.parent.mkdir()
    cfg = BufferConfig(tmp_path / "buf", seq_path=mark)
    with SegmentLog.open(cfg) as log:
        log.append_many(reading(i) for i in range(20))
    import shutil

    shutil.rmtree(tmp_path / "buf")
    with SegmentLog.open(cfg) as log:
        assert log.append(reading(0)) == 21


def test_group_commit_by_count_and_by_interval() -> None:
    layer = MemoryFileLayer()
    clock = FakeClock()
    log = mem_log(layer, clock, commit_readings=10, commit_interval_s=0.1)
    for i in range(10):
        log.append(reading(i))
    assert log.durable_seq == 0 and log.pending == 10
    log.append(reading(10))  # the 11th: the 10 before are committed first
    assert log.durable_seq == 10 and log.pending == 1
    clock.advance(0.05)
    log.append(reading(11))
    assert log.durable_seq == 10
    clock.advance(0.06)  # the oldest pending has waited 0.11 s
    log.append(reading(12))
    assert log.durable_seq == 12
    syncs = layer.syncs
    assert log.commit() == 13
    assert log.commit() == 13  # nothing pending: no write, no sync
    assert layer.syncs == syncs + 1


def test_memory_is_bounded_by_the_commit_size() -> None:
    log = mem_log(commit_readings=50)
    peak = 0
    for i in range(2000):
        log.append(reading(i))
        peak = max(peak, log.pending)
    assert peak == 50
    log.append_many(reading(i) for i in range(5000))
    assert log.pending <= 50


def test_bad_readings_are_refused_and_not_numbered() -> None:
    log = mem_log()
    log.append(reading(1))
    for bad in (
        Reading("", "q", "u", 1, T0),
        Reading("s", "q", "u", [1], T0),
        Reading("s", "q", "u", 1, 1.5),  # type: ignore[arg-type]
        Reading("s" * 300, "q", "u", 1, T0),
        "not a reading",
    ):
        with pytest.raises(LocalProtocolError):
            log.append(bad)  # type: ignore[arg-type]
    assert log.next_seq == 2
    with pytest.raises(LocalProtocolError) as e:
        log.append_many([reading(2), reading(3), Reading("s", "q", "u", {}, T0), reading(4)])
    assert log.next_seq == 4  # the two before the bad one were taken
    assert e.value.accepted == 2  # type: ignore[attr-defined]
    log.commit()
    assert [s for s, _ in log.iter_readings()] == [1, 2, 3]


def test_acknowledged_segments_are_deleted_whole(tmp_path: Path) -> None:
    cfg = BufferConfig(tmp_path / "buf", segment_bytes=4096, commit_readings=20)
    with SegmentLog.open(cfg) as log:
        log.append_many(reading(i) for i in range(1, 1001))
        log.commit()
        segments = sorted(os.listdir(cfg.segments_dir))
        assert len(segments) > 3
        first = log._segments[0]
        log.ack([(1, first.last_seq - 1)])  # all but one reading of the first segment
        assert sorted(os.listdir(cfg.segments_dir)) == segments
        log.ack([(first.last_seq, first.last_seq)])
        assert sorted(os.listdir(cfg.segments_dir)) == segments[1:]
        depth = log.stats().depth
        assert depth == 1000 - first.last_seq
    with SegmentLog.open(cfg) as log:  # the acks were persisted
        got = [s for s, _ in drain(log)]
        assert got[0] == first.last_seq + 1 and len(got) == depth


def test_acks_out_of_order_and_overlapping() -> None:
    log = mem_log(commit_readings=10)
    log.append_many(reading(i) for i in range(1, 101))
    log.commit()
    log.ack([(41, 60), (1, 10), (55, 70), (200, 300)])  # beyond durable_seq: ignored
    got = [s for s, _ in drain(log)]
    assert got == list(range(11, 41)) + list(range(71, 101))
    assert log.stats().depth == 60
    with pytest.raises(ValueError):
        log.ack([(5, 4)])


def test_alarms_drain_before_the_backlog() -> None:
    log = mem_log(commit_readings=100)
    log.append_many(reading(i) for i in range(1, 501))  # bulk backlog
    log.commit()
    alarm = reading(1000, alarm=True)
    seq = log.append(alarm)
    log.commit()
    log.append_many(reading(i) for i in range(2000, 2100))
    log.commit()
    blocks = log.read_blocks(0, 200)
    assert blocks[0].has_alarm and blocks[0].first_seq == seq
    assert exact(decode_block(blocks[0].payload)[1][0], alarm)
    assert blocks[1].first_seq == 1  # then the backlog, oldest first
    # the caller has the alarm block in flight: skip it
    again = log.read_blocks(0, 200, skip={seq})
    assert again[0].first_seq == 1
    # in seq order when asked
    plain = log.read_blocks(0, 10_000, alarms_first=False)
    assert [b.first_seq for b in plain] == sorted(b.first_seq for b in plain)
    log.ack([(seq, seq)])
    assert not log.read_blocks(0, 200)[0].has_alarm


def test_read_blocks_respects_its_bounds() -> None:
    log = mem_log(commit_readings=100)
    log.append_many(reading(i) for i in range(1, 1001))
    log.commit()
    blocks = log.read_blocks(0, 250)
    assert sum(b.count for b in blocks) <= 250 and len(blocks) == 2
    assert log.read_blocks(0, 1)[0].count == 100  # at least one block
    assert [b.first_seq for b in log.read_blocks(500, 150)] == [501]
    assert log.read_blocks(1000, 100) == []


def test_pending_readings_are_not_read_before_they_are_committed() -> None:
    log = mem_log()
    log.append(reading(1))
    assert log.read_blocks(0, 100) == []
    log.commit()
    assert len(log.read_blocks(0, 100)) == 1


def test_the_reference_workload_round_trips_exactly_and_compactly(tmp_path: Path) -> None:
    readings = workload(20_000)
    cfg = BufferConfig(tmp_path / "buf")
    with SegmentLog.open(cfg) as log:
        log.append_many(readings)
    size = sum(f.stat().st_size for f in (tmp_path / "buf").rglob("*") if f.is_file())
    assert size / len(readings) < 8.0, size / len(readings)
    with SegmentLog.open(cfg) as log:
        got = list(log.iter_readings())
    assert len(got) == len(readings)
    assert all(exact(a, b) for (_s, a), b in zip(got, readings, strict=True))
    assert verify_buffer(cfg).ok


def test_stats() -> None:
    clock = FakeClock()
    log = mem_log(None, clock, commit_readings=10)
    assert log.stats().depth == 0 and log.stats().oldest_ts_ms is None
    log.append_many(reading(i) for i in range(1, 26))
    st = log.stats()
    assert (st.depth, st.pending, st.durable_seq, st.next_seq) == (25, 5, 20, 26)
    assert st.oldest_ts_ms == reading(1).ts_ms
    assert st.bytes > 0 and st.segments == 1
    log.ack([(1, 10)])
    st = log.stats()
    assert st.depth == 15
    assert st.oldest_ts_ms == reading(11).ts_ms  # the oldest unacknowledged, not the segment's
    d = st.as_dict(now_ms=reading(11).ts_ms + 60_000)
    assert d["oldest_age_s"] == 60.0


def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    cfg = BufferConfig(tmp_path / "buf")
    with SegmentLog.open(cfg) as log:
        with pytest.raises(BufferLocked):
            SegmentLog.open(cfg)
        log.append(reading(1))
        log.commit()
        # inspection is allowed while the daemon runs, and changes nothing
        ro = SegmentLog.open(cfg, read_only=True)
        assert [s for s, _ in ro.iter_readings()] == [1]
        with pytest.raises(BufferClosed):
            ro.append(reading(2))
        ro.close()
    SegmentLog.open(cfg).close()  # the lock went with the first


def test_closed_log_refuses_work() -> None:
    log = mem_log()
    log.close()
    with pytest.raises(BufferClosed):
        log.append(reading(1))
    with pytest.raises(BufferClosed):
        log.read_blocks(0, 10)
    log.close()  # twice is fine


def test_alarm_flag_survives_and_other_flags_too() -> None:
    log = mem_log()
    rs = [reading(1), reading(2, alarm=True), Reading("s", "q", "u", 1, T0, 4), reading(3)]
    log.append_many(rs)
    log.commit()
    got = [r for _s, r in log.iter_readings()]
    assert [r.flags for r in got] == [0, FLAG_ALARM, 4, 0]


def test_small_commits_are_compacted_when_a_segment_is_sealed(tmp_path: Path) -> None:
    """A gateway at a few readings per second commits a block or two of readings every
    100 ms; sealing rewrites them in large blocks: a few bytes per reading at any rate."""
    readings = workload(20_000)
    readings[5000] = Reading("bin-007", "fire", None, True, readings[5000].ts_ms, FLAG_ALARM)
    cfg = BufferConfig(tmp_path / "buf", commit_readings=2, segment_bytes=256 * 1024)
    log = SegmentLog.open(cfg)
    for r in readings:
        log.append(r)
    log.commit()
    sealed = [s for s in log._segments if s.sealed]
    assert sealed, "at least one segment was sealed"
    per_reading = sum(s.size for s in sealed) / sum(s.count for s in sealed)
    open_seg = log._segments[-1]
    small = open_seg.size / open_seg.count
    assert per_reading < 8.0 < small, (per_reading, small)
    # the alarm still goes first, in a block of its own
    first = log.read_blocks(0, 10)[0]
    assert first.has_alarm and first.count == 1 and first.first_seq == 5001
    log.close()
    with SegmentLog.open(cfg) as log:
        got = list(log.iter_readings())
    assert [s for s, _ in got] == list(range(1, 20_001))
    assert all(exact(a, b) for (_s, a), b in zip(got, readings, strict=True))
    assert verify_buffer(cfg).ok

"""Recovery on the real file system: a torn tail is cut, a corrupt segment in the middle is
quarantined with a count (never a crash, never a silent skip), damaged state files are
reported, and verify tells a sound buffer from an unsound one."""

from __future__ import annotations

import os
from pathlib import Path

from edge.buffer import BufferConfig, SegmentLog, verify_buffer
from edge.buffer._format import FRAME_LEN, HEADER_LEN
from edge.tests.support.buffer import exact, reading


def fill(cfg: BufferConfig, n: int, close: bool = True) -> SegmentLog:
    log = SegmentLog.open(cfg)
    log.append_many(reading(i) for i in range(1, n + 1))
    log.commit()
    if close:
        log.close()
    return log


def segments(cfg: BufferConfig) -> list[str]:
    return sorted(os.path.join(cfg.segments_dir, n) for n in os.listdir(cfg.segments_dir))


def crash(log: SegmentLog) -> None:
    """Stop without closing (no seal, no final mark): what kill -9 leaves."""
    log._release()
    log._closed = True


def test_a_torn_tail_is_cut_and_everything_before_it_kept(tmp_path: Path) -> None:
    cfg = BufferConfig(tmp_path / "b", commit_readings=100)
    log = fill(cfg, 1000, close=False)
    crash(log)
    last = segments(cfg)[-1]
    size = os.path.getsize(last)
    with open(last, "ab") as f:  # a commit that was under way: half a record
        f.write(b"\x82\x1a\x01\x02\x03\x04\x5a\x00\x00\x10\x00" + b"\x8d\x01" * 40)
    report = verify_buffer(cfg)
    assert report.ok and any("torn tail" in n for n in report.notes)
    with SegmentLog.open(cfg) as log:
        assert log.recovery.problems == [] and log.recovery.torn_bytes > 0
        got = dict(log.iter_readings())
        assert sorted(got) == list(range(1, 1001))
        assert all(exact(r, reading(s)) for s, r in got.items())
        assert log.append(reading(1001)) > 1000
    assert os.path.exists(last) and size > 0
    assert verify_buffer(cfg).ok and not verify_buffer(cfg).notes


def test_a_record_cut_in_the_middle_of_the_last_block(tmp_path: Path) -> None:
    cfg = BufferConfig(tmp_path / "b", commit_readings=100)
    log = fill(cfg, 1000, close=False)
    crash(log)
    last = segments(cfg)[-1]
    with open(last, "r+b") as f:
        f.truncate(os.path.getsize(last) - 7)  # the last block's record, torn
    with SegmentLog.open(cfg) as log:
        assert sorted(dict(log.iter_readings())) == list(range(1, 901))
        assert log.recovery.lost == 0


def corrupt_middle_block(path: str) -> None:
    """Flip a byte inside the payload of the second block record of a segment."""
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        first_len = int.from_bytes(data[HEADER_LEN + 7 : HEADER_LEN + 11], "big")
        second = HEADER_LEN + FRAME_LEN + first_len
        data[second + FRAME_LEN + 20] ^= 0x40
        f.seek(0)
        f.write(data)


def test_a_corrupt_segment_in_the_middle_is_quarantined_with_a_count(tmp_path: Path) -> None:
    cfg = BufferConfig(tmp_path / "b", commit_readings=100, segment_bytes=4096)
    fill(cfg, 3000)
    paths = segments(cfg)
    assert len(paths) >= 4
    victim = paths[1]
    corrupt_middle_block(victim)
    report = verify_buffer(cfg)
    assert not report.ok and any(os.path.basename(victim) in p for p in report.problems)
    with SegmentLog.open(cfg) as log:
        # sealed: trusted by its footer at open, so the damage is found when it is read
        got = dict(log.iter_readings())
        st = log.stats()
        assert st.quarantined_readings == 100 and st.quarantined_files == 1
        assert len(got) == 3000 - 100
        assert all(exact(r, reading(s)) for s, r in got.items())
        assert any("corrupt" in p for p in log.recovery.problems)
    assert len(os.listdir(cfg.quarantine_dir)) == 1
    report = verify_buffer(cfg)
    assert report.ok, report.problems  # sound again; the notes tell of the gap and quarantine
    assert any("quarantine" in n for n in report.notes)
    with SegmentLog.open(cfg) as log:  # counted once, not again on every start
        assert log.stats().quarantined_readings == 100


def test_a_corrupt_unsealed_segment_is_quarantined_at_open(tmp_path: Path) -> None:
    cfg = BufferConfig(tmp_path / "b", commit_readings=100)
    log = fill(cfg, 1000, close=False)
    crash(log)
    path = segments(cfg)[-1]
    corrupt_middle_block(path)
    with SegmentLog.open(cfg) as log:
        assert log.recovery.lost == 100 and log.recovery.quarantined_files == 1
        assert len(dict(log.iter_readings())) == 900
        assert log.stats().quarantined_readings == 100
        assert log.append(reading(5)) > 1000  # after a crash, past the reserved numbers


def test_a_broken_footer_costs_nothing(tmp_path: Path) -> None:
    cfg = BufferConfig(tmp_path / "b", commit_readings=100, segment_bytes=4096)
    fill(cfg, 2000)
    victim = segments(cfg)[0]
    with open(victim, "r+b") as f:
        f.seek(-30, os.SEEK_END)
        f.write(b"\xff" * 5)  # the footer's record, near its end
    with SegmentLog.open(cfg) as log:
        assert log.recovery.problems == [] and log.recovery.lost == 0
        assert sorted(dict(log.iter_readings())) == list(range(1, 2001))
    assert verify_buffer(cfg).ok


def test_garbage_files_and_leftover_temporaries(tmp_path: Path) -> None:
    cfg = BufferConfig(tmp_path / "b")
    fill(cfg, 10)
    Path(cfg.segments_dir, "README").write_text("hello")
    Path(cfg.segments_dir, "seg-00000000000000000099.cborseq.tmp").write_bytes(b"junk")
    with SegmentLog.open(cfg) as log:
        assert any("README" in n for n in log.recovery.notes)
        assert len(dict(log.iter_readings())) == 10
    assert not Path(cfg.segments_dir, "seg-00000000000000000099.cborseq.tmp").exists()


def test_an_unreadable_state_file_is_reported_and_nothing_is_lost(tmp_path: Path) -> None:
    cfg = BufferConfig(tmp_path / "b")
    with SegmentLog.open(cfg) as log:
        log.append_many(reading(i) for i in range(1, 101))
        log.commit()
        log.ack([(1, 50)])
    Path(cfg.state_path).write_bytes(b"\xff\x00garbage")
    assert not verify_buffer(cfg).ok
    with SegmentLog.open(cfg) as log:
        assert any("state.cbor" in p for p in log.recovery.problems)
        # acknowledgements forgotten: those readings are sent again (the hub dedups)
        assert sorted(dict(log.iter_readings())) == list(range(1, 101))
        assert log.append(reading(0)) == 101
    assert verify_buffer(cfg).ok


def test_an_unreadable_mark_moves_numbering_far_ahead(tmp_path: Path) -> None:
    cfg = BufferConfig(tmp_path / "b")
    fill(cfg, 100)
    Path(cfg.seq_file).write_bytes(b"\x00")
    with SegmentLog.open(cfg) as log:
        assert any("seq.cbor" in p for p in log.recovery.problems)
        assert log.append(reading(0)) > 100 + (1 << 20)


def test_a_crash_before_the_first_record_leaves_no_segment(tmp_path: Path) -> None:
    cfg = BufferConfig(tmp_path / "b")
    os.makedirs(cfg.segments_dir)
    Path(cfg.segments_dir, "seg-00000000000000000001.cborseq").write_bytes(b"\x83\x6destr")
    with SegmentLog.open(cfg) as log:
        assert log.recovery.problems == []
        assert log.append(reading(1)) == 1
        log.commit()
        assert [s for s, _ in log.iter_readings()] == [1]

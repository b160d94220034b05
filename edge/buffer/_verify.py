"""verify_buffer: read every byte of a buffer and check it, without changing anything.

Problems (the buffer is not sound): a record that fails its CRC with sound records after it,
a block that does not decode, a header that does not match its file name, a footer that
disagrees with the records, segments that overlap, a high-water mark below a stored seq,
unreadable state files. Notes (sound, but worth knowing): a torn tail on the last segment
(cut on the next open: those writes never completed a commit), an unfinished seal, gaps
left by an earlier quarantine, files in quarantine/.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from edge.buffer._config import BufferConfig
from edge.buffer._format import (
    FRAME_LEN,
    INDEX_FIELDS,
    TRAILER_LEN,
    frame_at,
    parse_footer,
    parse_segment_name,
    parse_trailer,
)
from edge.buffer._fs import FileLayer, OsFileLayer
from edge.buffer._recovery import scan_segment
from edge.buffer._state import load_seq_mark, load_state
from protocols.block import BlockHeader, decode_block
from protocols.errors import RemoteProtocolError


@dataclass(slots=True)
class VerifyReport:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    segments: int = 0
    blocks: int = 0
    readings: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_buffer(config: BufferConfig, layer: FileLayer | None = None) -> VerifyReport:
    layer = layer or OsFileLayer()
    report = VerifyReport()
    if not layer.exists(config.path):
        report.problems.append(f"no buffer directory at {config.path}")
        return report
    mark = load_seq_mark(layer, config.seq_file)
    if mark is None:
        report.problems.append(f"{config.seq_file}: unreadable sequence high-water mark")
    if load_state(layer, config.state_path).unreadable:
        report.problems.append("state.cbor: unreadable")
    names = []
    if layer.exists(config.segments_dir):
        for name in layer.listdir(config.segments_dir):
            seq = parse_segment_name(name)
            if seq is None:
                if not name.endswith(".tmp"):
                    report.notes.append(f"segments/{name}: not a segment file, ignored")
                continue
            names.append((seq, name))
    names.sort()
    prev_last = 0
    for i, (first_seq, name) in enumerate(names):
        is_last = i == len(names) - 1
        data = layer.read_file(os.path.join(config.segments_dir, name))
        prev_last = _verify_segment(report, name, first_seq, data, is_last, prev_last)
    if mark is not None and prev_last > mark:
        report.problems.append(f"seq.cbor reserves up to {mark} but segments hold seq {prev_last}")
    if layer.exists(config.quarantine_dir):
        q = layer.listdir(config.quarantine_dir)
        if q:
            report.notes.append(f"quarantine/ holds {len(q)} file(s) set aside by recovery")
    return report


def _verify_segment(
    report: VerifyReport, name: str, first_seq: int, data: bytes, is_last: bool, prev_last: int
) -> int:
    report.segments += 1
    scan = scan_segment(data, first_seq, count_by_sensor=False)
    if not scan.header_ok:
        report.problems.append(f"{name}: header missing or does not match the file name")
    for start, end in scan.garbage:
        report.problems.append(
            f"{name}: {end - start} unsound bytes at offset {start}, sound records after"
        )
    if scan.torn_at is not None:
        what = f"{name}: {len(data) - scan.torn_at} bytes of torn tail at offset {scan.torn_at}"
        if is_last:
            report.notes.append(what + " (an interrupted commit: cut on the next open)")
        else:
            report.problems.append(what + " in a segment that is not the last")
    if scan.gaps:
        report.notes.append(f"{name}: {scan.gaps} sequence numbers missing (an earlier repair)")
    if scan.blocks and scan.blocks[0][2].first_seq <= prev_last:
        report.problems.append(f"{name}: overlaps the previous segment")
    for offset, length, header in scan.blocks:
        report.blocks += 1
        report.readings += header.count
        try:
            seq, readings = decode_block(data[offset + FRAME_LEN : offset + length])
        except RemoteProtocolError as e:
            report.problems.append(f"{name}: block at offset {offset} does not decode: {e}")
            continue
        if seq != header.first_seq or len(readings) != header.count:
            report.problems.append(f"{name}: block at offset {offset} disagrees with its header")
    if scan.footer_at is not None:
        _verify_seal(report, name, data, scan.footer_at, scan.blocks)
    elif not is_last and scan.blocks:
        report.notes.append(f"{name}: not sealed (sealed on the next open)")
    return scan.blocks[-1][2].last_seq if scan.blocks else prev_last


def _verify_seal(
    report: VerifyReport,
    name: str,
    data: bytes,
    at: int,
    blocks: list[tuple[int, int, BlockHeader]],
) -> None:
    fr = frame_at(data, at)
    assert fr is not None
    try:
        footer = parse_footer(data[fr[0] : fr[1]])
    except ValueError as e:
        report.problems.append(f"{name}: footer does not parse: {e}")
        return
    if fr[1] + TRAILER_LEN != len(data) or parse_trailer(data[fr[1] :]) != at:
        report.notes.append(
            f"{name}: footer without its trailer (an unfinished seal, redone on open)"
        )
    expected: list[int] = []
    for offset, length, h in blocks:
        expected.extend((offset, length, h.first_seq, h.count, h.flags, h.t_min, h.t_max))
    if list(footer.index) != expected:
        report.problems.append(f"{name}: footer index disagrees with the records")
    count = sum(h.count for _o, _l, h in blocks)
    if footer.count != count or len(footer.index) != INDEX_FIELDS * len(blocks):
        report.problems.append(f"{name}: footer counts disagree with the records")
    if footer.sensors and sum(footer.sensors.values()) != footer.count:
        report.problems.append(f"{name}: footer per-sensor counts do not add up")


__all__ = ["VerifyReport", "verify_buffer"]

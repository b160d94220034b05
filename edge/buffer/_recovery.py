"""Recovery: from the files in `segments/` to the segments the log can trust.

- A sealed segment (trailer, footer record whose CRC and length hold, header that matches
  its name) is trusted by its footer: nothing else of it is read.
- Any other segment is scanned record by record (CRC of each). A torn tail, unsound bytes
  with nothing sound after them, is cut off: those writes never completed a commit.
- Unsound bytes *followed* by sound records, a bad header, or blocks missing from a segment
  that is not the last are corruption: the file is copied to `quarantine/`, the segment is
  rewritten with its sound records only, and the readings lost are counted (from the
  sequence gaps, less what the hub had acknowledged). Never a crash, never a silent skip.
- Unsealed segments that are not the last (a crash while rotating) are sealed.

In read-only mode (the inspection commands, while the daemon may run) nothing is written:
the same findings are reported instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from edge.buffer._acks import AckedRanges
from edge.buffer._format import (
    FRAME_LEN,
    HEADER_LEN,
    PAD_HEAD_LEN,
    TRAILER_LEN,
    frame_at,
    frame_head,
    is_footer_payload,
    padding_at,
    padding_head,
    parse_footer,
    parse_segment_header,
    parse_segment_name,
    parse_trailer,
    segment_header,
)
from edge.buffer._fs import FileLayer
from edge.buffer._segment import Segment
from protocols.block import BlockHeader, count_sensors, read_block_header
from protocols.errors import RemoteProtocolError


@dataclass(slots=True)
class ScanResult:
    header_ok: bool
    blocks: list[tuple[int, int, BlockHeader]] = field(default_factory=list)  # offset, length
    sensors: dict[str, int] | None = field(default_factory=dict)
    valid_end: int = HEADER_LEN  # just past the last sound block record
    garbage: list[tuple[int, int]] = field(default_factory=list)  # unsound, sound after
    torn_at: int | None = None  # unsound from here to the end of the file
    footer_at: int | None = None  # a footer record starts here
    padded_at: int | None = None  # the padding item of a preallocated file starts here
    gaps: int = 0  # readings missing between sound blocks


def scan_segment(data: bytes, first_seq: int, count_by_sensor: bool = True) -> ScanResult:
    """Walk every record of a segment file's bytes."""
    header_ok = parse_segment_header(data) == first_seq
    result = ScanResult(header_ok=header_ok)
    view = memoryview(data)
    pos = HEADER_LEN
    end = len(data)
    last_seq = first_seq - 1
    while pos < end:
        fr = frame_at(view, pos)
        header: BlockHeader | None = None
        if fr is not None:
            start, stop = fr
            payload = data[start:stop]
            if is_footer_payload(payload):
                result.footer_at = pos
                return result
            try:
                header = read_block_header(payload)
            except RemoteProtocolError:
                header = None
            if header is not None and header.first_seq <= last_seq:
                header = None  # overlaps what came before: not ours to keep
        if header is None:
            if padding_at(view, pos):
                result.padded_at = pos
                return result
            nxt = _next_sound_record(view, data, pos + 1, last_seq)
            if nxt is None:
                result.torn_at = pos
                return result
            result.garbage.append((pos, nxt))
            pos = nxt
            continue
        assert fr is not None
        start, stop = fr
        if header.first_seq != last_seq + 1:
            result.gaps += header.first_seq - last_seq - 1
        if count_by_sensor and result.sensors is not None:
            try:
                counts = count_sensors(data[start:stop])
            except RemoteProtocolError:
                counts = None
            if counts is None:
                result.sensors = None
            else:
                merged = result.sensors
                for k, v in counts.items():
                    merged[k] = merged.get(k, 0) + v
        result.blocks.append((pos, stop - pos, header))
        last_seq = header.last_seq
        result.valid_end = stop
        pos = stop
    return result


def _next_sound_record(view: memoryview, data: bytes, pos: int, last_seq: int) -> int | None:
    while True:
        pos = data.find(b"\x82\x1a", pos)
        if pos < 0:
            return None
        fr = frame_at(view, pos)
        if fr is not None:
            payload = data[fr[0] : fr[1]]
            if is_footer_payload(payload):
                return pos
            try:
                if read_block_header(payload).first_seq > last_seq:
                    return pos
            except RemoteProtocolError:
                pass
        pos += 1


def read_sealed(layer: FileLayer, path: str, first_seq: int) -> Segment | None:
    """The segment from its footer, if it is sealed and the seal holds; else None."""
    try:
        size = layer.size(path)
        if size < HEADER_LEN + FRAME_LEN + TRAILER_LEN:
            return None
        h = layer.open_read(path)
        try:
            offset = parse_trailer(h.pread(size - TRAILER_LEN, TRAILER_LEN))
            if offset is None or not HEADER_LEN <= offset < size - TRAILER_LEN:
                return None
            fh = frame_head(h.pread(offset, FRAME_LEN))
            if fh is None or offset + FRAME_LEN + fh[1] != size - TRAILER_LEN:
                return None
            record = h.pread(offset, FRAME_LEN + fh[1])
            fr = frame_at(record, 0)
            if fr is None:
                return None
            if parse_segment_header(h.pread(0, HEADER_LEN)) != first_seq:
                return None
        finally:
            h.close()
        footer = parse_footer(record[fr[0] : fr[1]])
    except (OSError, ValueError):
        return None
    if not footer.index or footer.first_seq < first_seq or footer.last_seq < footer.first_seq:
        return None
    seg = Segment.from_footer(path, first_seq, size, footer)
    if (
        seg.n_blocks == 0
        or seg.entry(0)[0] != HEADER_LEN
        or seg.entry(seg.n_blocks - 1)[0] >= offset
    ):
        return None
    return seg


def segment_from_scan(path: str, first_seq: int, scan: ScanResult, size: int) -> Segment:
    seg = Segment(path, first_seq)
    for offset, length, header in scan.blocks:
        seg.add_block(offset, length, header, None)
    seg.sensors = dict(scan.sensors) if scan.sensors is not None else None
    seg.size = size
    return seg


@dataclass(slots=True)
class Recovered:
    segments: list[Segment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what recovery did or found, benign
    problems: list[str] = field(default_factory=list)  # corruption (verify exits 1 on these)
    lost: int = 0  # readings missing through corruption, found this time
    quarantined_files: int = 0
    torn_bytes: int = 0


def recover(
    layer: FileLayer,
    segments_dir: str,
    quarantine_dir: str,
    acked: AckedRanges,
    dropped_upto: int,
    read_only: bool,
    preallocate: bool = False,
) -> Recovered:
    out = Recovered()
    if not layer.exists(segments_dir):
        return out
    names: list[tuple[int, str]] = []
    for name in layer.listdir(segments_dir):
        path = os.path.join(segments_dir, name)
        seq = parse_segment_name(name)
        if seq is None:
            if name.endswith(".tmp") and not read_only:
                layer.unlink(path)  # an atomic replace that did not finish
            elif not name.endswith(".tmp"):
                out.notes.append(f"ignored {name}: not a segment name")
            continue
        names.append((seq, name))
    names.sort()
    for i, (first_seq, name) in enumerate(names):
        path = os.path.join(segments_dir, name)
        is_last = i == len(names) - 1
        next_first = names[i + 1][0] if not is_last else None
        prev_last = out.segments[-1].last_seq if out.segments else 0
        seg = read_sealed(layer, path, first_seq)
        if seg is not None and seg.lo > prev_last:
            seg.index = None  # loaded again from the footer when read: memory stays flat
            out.segments.append(seg)
            continue
        data = layer.read_file(path)
        scan = scan_segment(data, first_seq)
        # blocks at or below what an earlier segment holds cannot both be right: keep the first
        if scan.blocks and scan.blocks[0][2].first_seq <= prev_last:
            keep = [b for b in scan.blocks if b[2].first_seq > prev_last]
            out.problems.append(
                f"{name}: {len(scan.blocks) - len(keep)} blocks overlap the previous segment"
            )
            scan.garbage.append((HEADER_LEN, HEADER_LEN))
            scan.blocks = keep
            scan.sensors = None
        corrupt = bool(scan.garbage) or not scan.header_ok or scan.gaps > 0
        missing = 0
        if scan.blocks:
            lo = scan.blocks[0][2].first_seq
            missing += _unacked(acked, max(first_seq, dropped_upto + 1), lo - 1)
            missing += _unacked_gaps(acked, scan)
            hi = scan.blocks[-1][2].last_seq
        else:
            hi = first_seq - 1
        if next_first is not None and (scan.torn_at is not None or not scan.blocks):
            # a segment before another one lost its end: committed readings are missing
            missing += _unacked(acked, max(hi + 1, dropped_upto + 1), next_first - 1)
            if missing:
                corrupt = True
        if not scan.blocks and is_last and not missing and not scan.garbage:
            # a segment created by a commit that never completed: nothing in it was durable
            out.notes.append(f"{name}: no complete record (an interrupted commit); removed")
            out.torn_bytes += len(data)
            if not read_only:
                layer.unlink(path)
            continue
        if corrupt:
            out.problems.append(
                f"{name}: corrupt ({len(scan.garbage)} unsound ranges"
                f"{', bad header' if not scan.header_ok else ''}"
                f"{', torn end' if scan.torn_at is not None else ''}); "
                f"{missing} unacknowledged readings lost, {len(scan.blocks)} sound blocks kept"
            )
            out.lost += missing
            out.quarantined_files += 1
            if read_only:
                if scan.blocks:
                    out.segments.append(segment_from_scan(path, first_seq, scan, len(data)))
                continue
            layer.makedirs(quarantine_dir)
            layer.write_atomic(quarantine_path(layer, quarantine_dir, name), data)
            if not scan.blocks:
                layer.unlink(path)
                layer.sync_dir(segments_dir)
                continue
            # sealed even if it is the last: its gaps are accounted for now, and a sealed
            # segment is trusted by its footer, never scanned (nor counted) again
            out.segments.append(rewrite_sound(layer, path, first_seq, data, scan))
            continue
        # sound records only; at most a torn tail or an unfinished seal
        end = scan.valid_end
        if scan.torn_at is not None:
            out.torn_bytes += len(data) - end
            out.notes.append(f"{name}: cut a torn tail of {len(data) - end} bytes at offset {end}")
        elif scan.footer_at is not None:
            out.notes.append(f"{name}: the seal was not complete; sealed again")
        seg = segment_from_scan(path, first_seq, scan, end)
        # the open segment of a preallocated buffer keeps its room: a torn tail becomes
        # padding again (written over, not cut off)
        keep_room = is_last and (scan.padded_at is not None or preallocate)
        if keep_room and len(data) - end >= PAD_HEAD_LEN:
            seg.capacity = len(data)
        if not read_only:
            if seg.capacity and scan.padded_at is None:
                h = layer.open_append(path)
                try:
                    h.pwrite(padding_head(len(data) - end - PAD_HEAD_LEN), end)
                    h.sync()
                finally:
                    h.close()
            elif end != len(data) and not seg.capacity:
                h = layer.open_append(path)
                try:
                    h.truncate(end)
                    h.sync()
                finally:
                    h.close()
            if not is_last:
                _seal_in_place(layer, seg)
        out.segments.append(seg)
    return out


def _unacked(acked: AckedRanges, a: int, b: int) -> int:
    if b < a:
        return 0
    return (b - a + 1) - acked.count_in(a, b)


def _unacked_gaps(acked: AckedRanges, scan: ScanResult) -> int:
    total = 0
    prev = None
    for _offset, _length, header in scan.blocks:
        if prev is not None and header.first_seq > prev + 1:
            total += _unacked(acked, prev + 1, header.first_seq - 1)
        prev = header.last_seq
    return total


def quarantine_path(layer: FileLayer, quarantine_dir: str, name: str) -> str:
    k = 1
    while layer.exists(os.path.join(quarantine_dir, f"{name}.{k}")):
        k += 1
    return os.path.join(quarantine_dir, f"{name}.{k}")


def rewrite_sound(
    layer: FileLayer, path: str, first_seq: int, data: bytes, scan: ScanResult
) -> Segment:
    """The segment again with its sound block records only, sealed."""
    seg = Segment(path, first_seq)
    parts = [segment_header(first_seq)]
    pos = HEADER_LEN
    for offset, length, header in scan.blocks:
        record = data[offset : offset + length]
        try:
            counts: dict[str, int] | None = count_sensors(record[FRAME_LEN:])
        except RemoteProtocolError:
            counts = None
        seg.add_block(pos, length, header, counts)  # one unknown count: seg.sensors None
        parts.append(record)
        pos += length
    seg.size = pos
    parts.append(seg.seal_bytes())
    seg.sealed = True
    content = b"".join(parts)
    layer.write_atomic(path, content)
    seg.size = len(content)
    return seg


def _seal_in_place(layer: FileLayer, seg: Segment) -> None:
    tail = seg.seal_bytes()
    h = layer.open_append(seg.path)
    try:
        h.truncate(seg.size)
        h.write(tail)
        h.sync()
    finally:
        h.close()
    seg.size += len(tail)
    seg.sealed = True


__all__ = [
    "Recovered",
    "ScanResult",
    "quarantine_path",
    "read_sealed",
    "recover",
    "rewrite_sound",
    "scan_segment",
    "segment_from_scan",
]

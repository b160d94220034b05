"""SegmentLog: the durable, compact, bounded buffer of readings (DESIGN.md, "The buffer").

Append-only segment files (a CBOR sequence each, docs/buffer-format.md); readings are
grouped in blocks (protocols.block) and group-committed; sequence numbers never repeat;
acknowledged segments are deleted whole; a quota bounds the disk with an explicit policy.

Synchronous by design: a commit is a write and an fdatasync. An asyncio daemon calls it
from its own executor task, or accepts the short block (a commit is ~1 ms on flash).
"""

from __future__ import annotations

import contextlib
import errno as errno_
import os
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from itertools import islice

from edge.buffer._acks import AckedRanges
from edge.buffer._compact import compacted, worth_compacting
from edge.buffer._config import BufferConfig
from edge.buffer._errors import (
    BufferClosed,
    BufferDiskError,
    BufferFailure,
    BufferFull,
    BufferLocked,
)
from edge.buffer._format import (
    FRAME_LEN,
    HEADER_LEN,
    PAD_HEAD_LEN,
    PAGE,
    frame,
    frame_at,
    padding_head,
    segment_header,
    segment_name,
)
from edge.buffer._fs import FileLayer, OsFileLayer, ReadHandle, WriteHandle
from edge.buffer._recovery import (
    Recovered,
    quarantine_path,
    read_sealed,
    recover,
    rewrite_sound,
    scan_segment,
)
from edge.buffer._segment import (
    COUNT,
    FIRST_SEQ,
    FLAGS,
    LENGTH,
    OFFSET,
    T_MIN,
    BlockRef,
    Segment,
    StoredBlock,
)
from edge.buffer._state import BufferState, load_seq_mark, load_state, save_seq_mark, save_state
from edge.buffer._stats import BufferStats
from protocols.block import (
    BlockEncoder,
    BlockHeader,
    check_reading,
    count_sensors,
    decode_block,
    read_block_header,
)
from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.reading import FLAG_ALARM, Reading

_LOADED_INDEXES = 4  # sealed segments whose block index stays in memory
PREALLOCATE_BYTES = 256 * 1024  # zeros written ahead of the open segment, at a time
_ZERO_PAGE = bytes(PAGE)
_UNKNOWN_MARK_MARGIN = 1 << 24  # when seq.cbor is unreadable, skip this far past the evidence


class _Corrupt(Exception):
    """A record of a trusted (sealed) segment failed its check when read."""

    def __init__(self, seg: Segment) -> None:
        super().__init__(seg.path)
        self.segment = seg


def _disk_error(what: str, e: OSError, accepted: int = 0) -> BufferDiskError:
    name = errno_.errorcode.get(e.errno or 0, "?")
    return BufferDiskError(f"{what}: [{name}] {e.strerror or e}", e.errno, accepted)


class SegmentLog:
    """The buffer. Create with `SegmentLog.open(config)`; use as a context manager."""

    def __init__(
        self,
        config: BufferConfig,
        layer: FileLayer,
        read_only: bool,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ) -> None:
        self.config = config
        self._layer = layer
        self._read_only = read_only
        self._clock = clock
        self._wall = wall_clock
        self._closed = False
        self._lock: object | None = None
        self._segments: list[Segment] = []
        self._open: Segment | None = None
        self._writer: WriteHandle | None = None
        self._writer_broken = False
        self._pending: list[Reading] = []
        self._pending_since = 0.0
        self._next_seq = 1
        self._durable_seq = 0
        self._reserved = 0
        self._acked = AckedRanges()
        self._state = BufferState()
        self._state_dirty = False
        self._state_saved_at = clock()  # acks are first saved an interval after opening
        self._slack = 0  # preallocated room of the open segment not yet written
        self._encoder = BlockEncoder()
        self._alarms: list[BlockRef] = []
        self._bytes = 0
        self._bytes_per_reading = 16.0  # refuse_new's estimate of what pending readings will take
        self._readers: dict[str, ReadHandle] = {}
        self._loaded: list[Segment] = []  # sealed segments with their index in memory, LRU
        self._segment_bytes = config.effective_segment_bytes
        self._age_checked_at = 0.0
        self.recovery = Recovered()

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        config: BufferConfig,
        *,
        layer: FileLayer | None = None,
        read_only: bool = False,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> SegmentLog:
        """Open (creating it if needed) and recover the buffer in `config.directory`.

        Recovery cuts a torn tail, quarantines corrupt segments (counting what was lost)
        and seals segments left unsealed by a crash. `read_only` (the inspection commands)
        takes no lock and writes nothing: it reports what recovery would do instead."""
        log = cls(config, layer or OsFileLayer(), read_only, clock, wall_clock)
        try:
            log._open_files()
        except OSError as e:
            log._release()
            raise _disk_error(f"cannot open the buffer in {config.path}", e) from e
        except BaseException:
            log._release()
            raise
        return log

    def _open_files(self) -> None:
        cfg, layer = self.config, self._layer
        if self._read_only:
            if not layer.exists(cfg.path):
                raise BufferFailure(f"no buffer in {cfg.path}")
        else:
            layer.makedirs(cfg.segments_dir)
            self._lock = layer.lock(cfg.lock_path)
            if self._lock is None:
                raise BufferLocked(f"{cfg.path} is open in another process")
        state = load_state(layer, cfg.state_path)
        problems: list[str] = []
        if state.unreadable:
            problems.append(
                "state.cbor unreadable: acknowledgements forgotten (those readings will be sent "
                "again) and drop counters reset"
            )
        mark = load_seq_mark(layer, cfg.seq_file)
        self._acked = AckedRanges(state.acked)
        rec = recover(
            layer,
            cfg.segments_dir,
            cfg.quarantine_dir,
            self._acked,
            state.dropped_upto,
            self._read_only,
            cfg.preallocate,
        )
        rec.problems[:0] = problems
        self.recovery = rec
        self._state = state
        self._segments = rec.segments
        evidence = max(
            [state.dropped_upto, state.reserved, self._acked.highest()]
            + [s.last_seq for s in self._segments]
        )
        if mark is None:
            rec.problems.append(
                f"seq.cbor unreadable: numbering resumes {_UNKNOWN_MARK_MARGIN} past the evidence"
            )
            reserved = evidence + _UNKNOWN_MARK_MARGIN
        else:
            reserved = max(mark, evidence)
        self._reserved = reserved
        self._next_seq = reserved + 1
        self._durable_seq = max([s.last_seq for s in self._segments], default=0)
        if rec.lost or rec.quarantined_files:
            state.quarantined_readings += rec.lost
            state.quarantined_files += rec.quarantined_files
        # segments that were dropped or acknowledged but not yet deleted when we stopped
        doomed = [
            s
            for s in self._segments
            if s.last_seq <= state.dropped_upto or self._acked.covers(s.lo, s.last_seq)
        ]
        for seg in doomed:
            self._segments.remove(seg)
            if not self._read_only:
                self._unlink(seg.path)
        for seg in self._segments:
            self._bytes += seg.size
            self._alarms.extend(seg.alarms)
        self._alarms.sort(key=lambda r: r.first_seq)
        self._prune_acked()
        if self._read_only:
            return
        if mark is None or reserved != mark:
            save_seq_mark(layer, cfg.seq_file, reserved)
        state.reserved = reserved
        if rec.lost or rec.quarantined_files or doomed or state.unreadable:
            state.unreadable = False
            self._save_state()
        last = self._segments[-1] if self._segments else None
        if last is not None and not last.sealed:
            self._open = last
            self._writer = layer.open_append(last.path)
            self._slack = max(0, last.capacity - last.size)
        for seg in self._segments:
            if seg.sealed and seg is not last:
                seg.index = None  # loaded again from the footer when read
        self._apply_age_limit()

    # ------------------------------------------------------------------ appending

    @property
    def durable_seq(self) -> int:
        """The highest sequence number committed (0 before the first commit)."""
        return self._durable_seq

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def pending(self) -> int:
        return len(self._pending)

    def append(self, reading: Reading) -> int:
        """Accept one reading and return its sequence number, or raise without accepting it:
        BufferFull (refuse_new and the quota is reached), BufferDiskError (a group commit that
        had to run first failed), LocalProtocolError (a reading a block cannot hold)."""
        self._check_writable()
        if self._commit_due():
            self.commit()
        pending = self._pending
        check_reading(reading)
        if self.config.policy == "refuse_new" and self._over_quota(len(pending) + 1):
            raise self._full(0)
        seq = self._next_seq
        if seq > self._reserved:
            self._reserve(seq)
        if not pending:
            self._pending_since = self._clock()
        pending.append(reading)
        self._next_seq = seq + 1
        return seq

    def append_many(self, readings: Iterable[Reading]) -> int:
        """Accept readings in order; return the sequence number of the last (durable_seq if
        there were none). On an error, `error.accepted` says how many were taken."""
        self._check_writable()
        cfg = self.config
        it = iter(readings)
        accepted = 0
        pending = self._pending
        while True:
            if self._commit_due():
                try:
                    self.commit()
                except BufferDiskError as e:
                    e.accepted = accepted
                    raise
                pending = self._pending
            chunk = list(islice(it, cfg.commit_readings - len(pending)))
            if not chunk:
                return self._next_seq - 1
            try:
                for r in chunk:
                    check_reading(r)
            except LocalProtocolError as e:
                good = 0
                for r in chunk:
                    try:
                        check_reading(r)
                    except LocalProtocolError:
                        break
                    good += 1
                accepted += self._take(chunk[:good], accepted)
                e.accepted = accepted  # type: ignore[attr-defined]
                raise
            accepted += self._take(chunk, accepted)

    def _commit_due(self) -> bool:
        """Pending readings wait for a group commit: enough of them, or for long enough."""
        pending = self._pending
        return bool(pending) and (
            len(pending) >= self.config.commit_readings
            or self._clock() - self._pending_since >= self.config.commit_interval_s
        )

    def _full(self, accepted: int) -> BufferFull:
        return BufferFull(
            f"quota of {self.config.quota_bytes} bytes reached (policy refuse_new)", accepted
        )

    def _take(self, chunk: list[Reading], accepted: int) -> int:
        if not chunk:
            return 0
        pending = self._pending
        if self.config.policy == "refuse_new" and self._over_quota(len(pending) + len(chunk)):
            room = 0
            while room < len(chunk) and not self._over_quota(len(pending) + room + 1):
                room += 1
            self._take(chunk[:room], accepted)
            raise self._full(accepted + room)
        last = self._next_seq + len(chunk) - 1
        if last > self._reserved:
            try:
                self._reserve(last)
            except BufferDiskError as e:
                e.accepted = accepted
                raise
        if not pending:
            self._pending_since = self._clock()
        pending.extend(chunk)
        self._next_seq = last + 1
        return len(chunk)

    def commit(self) -> int:
        """Write the pending readings as one block and sync; return the highest durable seq.

        BufferDiskError leaves the pending readings pending (they are written by the next
        commit that succeeds) and the files as they were."""
        self._check_writable()
        pending = self._pending
        if pending:
            first = self._next_seq - len(pending)
            data = self._encoder.encode(first, pending)
            header = read_block_header(data)
            self._write_record(frame(data), header, self._encoder.sensor_counts())
            self._pending = []
            self._durable_seq = header.last_seq
            self._bytes_per_reading = max(
                self._bytes_per_reading * 0.9, (len(data) + FRAME_LEN) / header.count
            )
        if (
            self._state_dirty
            and self._clock() - self._state_saved_at >= self.config.ack_save_interval_s
        ):
            self._save_state_quietly()
        if self.config.max_age_s is not None and self._clock() - self._age_checked_at >= 1.0:
            self._apply_age_limit()
        return self._durable_seq

    def _check_writable(self) -> None:
        if self._closed:
            raise BufferClosed("the buffer is closed")
        if self._read_only:
            raise BufferClosed("the buffer is open read-only")

    def _reserve(self, seq: int) -> None:
        reserved = seq + self.config.seq_reserve - 1
        self._save_seq_mark(reserved)
        self._state.reserved = reserved

    def _save_seq_mark(self, reserved: int) -> None:
        try:
            save_seq_mark(self._layer, self.config.seq_file, reserved)
        except OSError as e:
            raise _disk_error("cannot persist the sequence high-water mark", e) from e
        self._reserved = reserved

    def _over_quota(self, pending_count: int) -> bool:
        estimate = pending_count * self._bytes_per_reading * 1.5 + 4096
        used = self._bytes + self._slack + self._seal_estimate()
        return used + estimate > self.config.quota_bytes

    def _seal_estimate(self) -> int:
        seg = self._open
        if seg is None:
            return 0
        return 128 + 56 * seg.n_blocks + 24 * len(seg.sensors or ())

    def _write_record(self, record: bytes, header: BlockHeader, sensors: dict[str, int]) -> None:
        seg = self._open
        if (
            seg is not None
            and seg.n_blocks
            and (
                seg.size + len(record) > self._segment_bytes or header.first_seq != seg.last_seq + 1
            )
        ):
            # full, or numbering jumped (past a reservation lost in a crash): a segment
            # holds consecutive seqs only, so that a gap inside one always means damage
            self._seal_open()
            seg = None
        elif seg is not None and seg.n_blocks and self._acked_and_out_of_room(seg, len(record)):
            # kept open while acknowledged (keep_acked_open), and its room written ahead is
            # used up: rather than grow a file of acknowledged readings (and their block
            # index in memory) up to the segment size, it goes (sealing an acknowledged
            # segment deletes it) and the record starts a new one. A connected gateway
            # then holds one preallocation's worth on disk and in memory, at any rate.
            self._seal_open()
            seg = None
        if self.config.policy == "drop_oldest":
            grow = self._growth(seg, len(record))
            self._make_room(len(record) + grow + (HEADER_LEN if seg is None else 0))
            seg = self._open  # dropping may have taken the open segment too
        if self._writer_broken and seg is not None:
            self._repair_writer(seg)
        if seg is None:
            self._new_segment(record, header, sensors)
        else:
            offset = seg.size
            if seg.capacity:
                self._write_in_place(seg, record)
            else:
                self._append_synced(seg, record, "cannot write to")
            seg.add_block(offset, len(record), header, sensors)
            seg.size += len(record)
            self._bytes += len(record)
        if header.flags & FLAG_ALARM:
            self._alarms.append(self._open.alarms[-1])  # type: ignore[union-attr]

    def _acked_and_out_of_room(self, seg: Segment, record: int) -> bool:
        return (
            self.config.preallocate
            and bool(seg.capacity)
            and self._growth(seg, record) > 0
            and self._acked.covers(seg.lo, seg.last_seq)
        )

    def _growth(self, seg: Segment | None, record: int) -> int:
        """Bytes of zeros to write ahead so that `record` (and the padding head after it)
        fits in the open segment's file (`seg` None: a new one after its header): 0 when it
        fits or the buffer does not preallocate; whole pages, PREALLOCATE_BYTES at least
        (at most the segment size)."""
        if not self.config.preallocate:
            return 0
        if seg is not None and not seg.capacity:
            return 0  # a segment written before preallocation: it grows as it did
        room = seg.capacity - seg.size - PAD_HEAD_LEN if seg is not None else -HEADER_LEN
        short = record - room
        if short <= 0:
            return 0
        ahead = max(short, min(PREALLOCATE_BYTES, self._segment_bytes))
        return -(-ahead // PAGE) * PAGE

    def _zeros(self, writer: WriteHandle, count: int) -> None:
        """`count` zero bytes at the writer's position, a page per write: the page cache
        then keeps small pages for them, so that a commit later dirties (and writes back)
        one page, not a large folio."""
        full, rest = divmod(count, PAGE)
        for _ in range(full):
            writer.write(_ZERO_PAGE)
        if rest:
            writer.write(_ZERO_PAGE[:rest])

    def _new_segment(self, record: bytes, header: BlockHeader, sensors: dict[str, int]) -> None:
        layer = self._layer
        path = os.path.join(self.config.segments_dir, segment_name(header.first_seq))
        new = Segment(path, header.first_seq)
        writer: WriteHandle | None = None
        capacity = 0
        try:
            # the header is durable before any record: a torn header then only ever
            # means a segment that never held a commit
            writer = layer.open_append(path)
            writer.truncate(0)
            if self.config.preallocate:
                capacity = HEADER_LEN + self._growth(None, len(record))
                room = capacity - HEADER_LEN - PAD_HEAD_LEN
                writer.write(segment_header(header.first_seq) + padding_head(room))
                self._zeros(writer, room)
            else:
                writer.write(segment_header(header.first_seq))
            writer.sync()
            layer.sync_dir(self.config.segments_dir)
            if capacity:
                after = capacity - HEADER_LEN - len(record) - PAD_HEAD_LEN
                writer.pwrite(record + padding_head(after), HEADER_LEN)
            else:
                writer.write(record)
            writer.sync()
        except OSError as e:
            self._abandon_new(path, writer)
            raise _disk_error(f"cannot create {path}", e) from e
        new.size = HEADER_LEN
        new.capacity = capacity
        new.add_block(HEADER_LEN, len(record), header, sensors)
        new.size += len(record)
        self._segments.append(new)
        self._open, self._writer = new, writer
        self._bytes += new.size
        self._slack = max(0, capacity - new.size)

    def _write_in_place(self, seg: Segment, record: bytes) -> None:
        """A commit into a preallocated segment: the record and the padding head after it,
        over zeros already written (writing more zeros first when there is no room left)."""
        writer = self._writer
        assert writer is not None
        grow = self._growth(seg, len(record))
        try:
            if grow:
                # zeros first, durable: the one size change, a journal commit every
                # PREALLOCATE_BYTES, not every commit. The old padding head no longer
                # reaches the end meanwhile: recovery takes that for a torn tail, and pads.
                writer.truncate(seg.capacity)
                self._zeros(writer, grow)
                writer.sync()
                seg.capacity += grow
                self._slack += grow
            after = seg.capacity - seg.size - len(record) - PAD_HEAD_LEN
            writer.pwrite(record + padding_head(after), seg.size)
            writer.sync()
        except OSError as e:
            self._roll_back(seg)
            raise _disk_error(f"cannot write to {seg.path}", e) from e
        self._slack -= len(record)

    def _abandon_new(self, path: str, writer: WriteHandle | None) -> None:
        try:
            if writer is not None:
                writer.close()
            self._layer.unlink(path)
        except OSError:
            pass  # a segment with no sound record: recovery removes it

    def _append_synced(self, seg: Segment, data: bytes, failure: str) -> None:
        """Append `data` to the open segment and sync; on failure cut the file back to
        what was committed and raise BufferDiskError ("<failure> <path>: ...")."""
        assert self._writer is not None
        try:
            self._writer.write(data)
            self._writer.sync()
        except OSError as e:
            self._roll_back(seg)
            raise _disk_error(f"{failure} {seg.path}", e) from e

    def _cut_back(self, writer: WriteHandle, seg: Segment) -> None:
        """The file back to what was committed: cut at the records' end, or for a
        preallocated one the padding head written there again."""
        if seg.capacity:
            writer.pwrite(padding_head(seg.capacity - seg.size - PAD_HEAD_LEN), seg.size)
        else:
            writer.truncate(seg.size)
        writer.sync()

    def _roll_back(self, seg: Segment) -> None:
        """After a failed write or sync: cut the file back to what was committed."""
        try:
            assert self._writer is not None
            self._cut_back(self._writer, seg)
        except OSError:
            self._writer_broken = True

    def _repair_writer(self, seg: Segment) -> None:
        try:
            if self._writer is not None:
                with contextlib.suppress(OSError):
                    self._writer.close()
            self._writer = self._layer.open_append(seg.path)
            self._cut_back(self._writer, seg)
        except OSError as e:
            raise _disk_error(f"cannot repair {seg.path}", e) from e
        self._writer_broken = False

    def _seal_open(self) -> None:
        seg = self._open
        assert seg is not None and self._writer is not None
        if seg.n_blocks and self._acked.covers(seg.lo, seg.last_seq):
            # all acknowledged already: nothing to seal or compact, it goes
            self._prune_acked(exclude=[seg])
            self._save_state()
            self._delete(seg)
            return
        if self._writer_broken:
            self._repair_writer(seg)
        if self.config.compact and worth_compacting(seg):
            try:
                self._compact(seg)
                return
            except (OSError, BufferFailure, RemoteProtocolError, LocalProtocolError):
                pass  # sealed as it is, below: compaction only saves room
        if seg.capacity:
            # the room ahead goes: a sealed file ends with its footer and trailer
            try:
                self._writer.truncate(seg.size)
            except OSError as e:
                raise _disk_error(f"cannot seal {seg.path}", e) from e
            seg.capacity = 0
            self._slack = 0
        tail = seg.seal_bytes()
        self._append_synced(seg, tail, "cannot seal")
        with contextlib.suppress(OSError):
            self._writer.close()
        seg.size += len(tail)
        seg.sealed = True
        self._bytes += len(tail)
        self._open, self._writer = None, None

    def _compact(self, seg: Segment) -> None:
        """Seal a segment of small blocks as one of large blocks (see _compact.py). Written
        beside it and renamed over it: a crash leaves one or the other."""
        index = seg.index
        assert index is not None
        readings: list[Reading] = []
        for k in range(seg.n_blocks):
            e = seg.entry(k)
            first, got = decode_block(self._read_payload(seg, e[OFFSET], e[LENGTH]))
            if first != seg.lo + len(readings):
                raise BufferFailure("not consecutive")  # never so in an open segment
            readings.extend(got)
        size = self.config.commit_readings if self.config.commit_readings >= 500 else 2000
        fresh, content = compacted(seg, readings, self._encoder, size)
        try:
            self._layer.write_atomic(seg.path, content)
        except OSError:
            # renamed already (only the directory sync failed)? then go on with the new
            # file; otherwise the old one is intact and is sealed as it is by the caller
            try:
                replaced = self._layer.size(seg.path) == len(content) != seg.size
            except OSError:
                replaced = False
            if not replaced:
                raise
        position = self._segments.index(seg)
        self._forget(seg)  # closes the writer and any reader of the old file
        self._segments.insert(position, fresh)
        self._bytes += fresh.size
        self._add_alarms(fresh.alarms)

    # ------------------------------------------------------------------ quota and age

    def _make_room(self, need: int) -> None:
        quota = self.config.quota_bytes
        while self._segments and self._bytes + self._slack + self._seal_estimate() + need > quota:
            oldest = self._segments[0]
            if oldest is self._open:
                self._seal_open()
            if oldest in self._segments:  # sealing an acknowledged one deletes it
                self._drop(oldest, "quota")

    def _apply_age_limit(self) -> None:
        max_age = self.config.max_age_s
        self._age_checked_at = self._clock()
        if max_age is None or self._read_only:
            return
        limit_ms = int((self._wall() - max_age) * 1000)
        for seg in [s for s in self._segments if s.sealed and s.t_max < limit_ms]:
            self._drop(seg, "age")

    def _drop(self, seg: Segment, reason: str) -> None:
        """Delete a whole segment, counting its unacknowledged readings per sensor first."""
        acked = self._acked.count_in(seg.lo, seg.last_seq)
        sensors = seg.sensors
        if acked or sensors is None or sum(sensors.values()) != seg.count:
            sensors = self._count_unacked(seg)
        state = self._state
        for sensor, n in sensors.items():
            if n:
                state.dropped[sensor] = state.dropped.get(sensor, 0) + n
        state.dropped_upto = max(state.dropped_upto, seg.last_seq)
        try:
            self._save_state()  # durable before the file goes: a drop is never uncounted
        except BufferDiskError:
            # the disk is full or failing: free the space anyway (the counts are kept in
            # memory) and try once more, so that a full disk cannot wedge the buffer
            self._delete(seg)
            self._save_state()
            return
        self._delete(seg)

    def _count_unacked(self, seg: Segment) -> dict[str, int]:
        counts: dict[str, int] = {}
        for k in range(self._index(seg).n_blocks):
            e = seg.entry(k)
            first, count = e[FIRST_SEQ], e[COUNT]
            if self._acked.covers(first, first + count - 1):
                continue
            try:
                payload = self._read_payload(seg, e[OFFSET], e[LENGTH])
            except (OSError, _Corrupt):
                counts["?"] = (
                    counts.get("?", 0) + count - self._acked.count_in(first, first + count - 1)
                )
                continue
            if self._acked.count_in(first, first + count - 1) == 0:
                block_counts = count_sensors(payload)
            else:
                _seq, readings = decode_block(payload)
                block_counts = {}
                for i, r in enumerate(readings):
                    if not self._acked.contains(first + i):
                        block_counts[r.sensor] = block_counts.get(r.sensor, 0) + 1
            for s, n in block_counts.items():
                counts[s] = counts.get(s, 0) + n
        return counts

    def _add_alarms(self, refs: list[BlockRef]) -> None:
        """Merge a segment's alarm blocks into the list read first, in seq order."""
        if refs:
            self._alarms = sorted(self._alarms + refs, key=lambda r: r.first_seq)

    def _forget(self, seg: Segment) -> None:
        self._segments.remove(seg)
        self._bytes -= seg.size
        if seg.alarms:
            gone = {id(r) for r in seg.alarms}
            self._alarms = [r for r in self._alarms if id(r) not in gone]
        if seg in self._loaded:
            self._loaded.remove(seg)
        reader = self._readers.pop(seg.path, None)
        if reader is not None:
            reader.close()
        if seg is self._open:
            if self._writer is not None:
                with contextlib.suppress(OSError):
                    self._writer.close()
            self._open, self._writer = None, None
            self._slack = 0

    def _delete(self, seg: Segment) -> None:
        self._forget(seg)
        self._unlink(seg.path)

    def _unlink(self, path: str) -> None:
        # already gone, or the disk refused: gone from the index either way, and recovery
        # deletes a leftover (dropped_upto / acked) next time
        with contextlib.suppress(OSError):
            self._layer.unlink(path)

    # ------------------------------------------------------------------ reading and acks

    def read_blocks(
        self,
        after_seq: int,
        max_readings: int,
        *,
        alarms_first: bool = True,
        skip: Collection[int] = (),
    ) -> list[StoredBlock]:
        """Committed blocks not yet acknowledged, as stored (payload = protocols.block bytes).

        - alarms_first: first every unacknowledged block holding an alarm (whatever
          after_seq), then the other blocks with first_seq > after_seq, in seq order.
          Otherwise all blocks with first_seq > after_seq in seq order.
        - skip: first_seqs of blocks to leave out (those the caller has in flight).
        - At most max_readings readings, but always at least one block if there is one.
        """
        if self._closed:
            raise BufferClosed("the buffer is closed")
        for _attempt in range(len(self._segments) + 1):
            try:
                return self._read_blocks(after_seq, max_readings, alarms_first, skip)
            except _Corrupt as e:
                self._repair(e.segment)
        return self._read_blocks(after_seq, max_readings, alarms_first, skip)

    def _read_blocks(
        self, after_seq: int, max_readings: int, alarms_first: bool, skip: Collection[int]
    ) -> list[StoredBlock]:
        out: list[StoredBlock] = []
        total = 0
        acked = self._acked
        if alarms_first:
            for ref in self._alarms:
                if ref.first_seq in skip or acked.covers(ref.first_seq, ref.last_seq):
                    continue
                if out and total + ref.count > max_readings:
                    return out
                seg = self._segment_of(ref.segment_first_seq)
                if seg is None:
                    continue
                payload = self._read_payload(seg, ref.offset, ref.length)
                out.append(StoredBlock(ref.first_seq, ref.last_seq, ref.count, payload, True))
                total += ref.count
        for seg in self._segments:
            if seg.last_seq <= after_seq or acked.covers(seg.lo, seg.last_seq):
                continue
            self._index(seg)
            for k in range(seg.first_block_after(after_seq), seg.n_blocks):
                e = seg.entry(k)
                first, count, flags = e[FIRST_SEQ], e[COUNT], e[FLAGS]
                if (alarms_first and flags & FLAG_ALARM) or first in skip:
                    continue
                last = first + count - 1
                if acked.covers(first, last):
                    continue
                if out and total + count > max_readings:
                    return out
                payload = self._read_payload(seg, e[OFFSET], e[LENGTH])
                out.append(StoredBlock(first, last, count, payload, bool(flags & FLAG_ALARM)))
                total += count
        return out

    def ack(self, ranges: Iterable[tuple[int, int]]) -> None:
        """The hub committed these inclusive seq ranges. Segments whose readings are all
        acknowledged are deleted; the acknowledged ranges are persisted atomically (at once
        when a segment goes, otherwise at most every `ack_save_interval_s`: an ack lost in
        a crash only means those readings are sent again, and the hub inserts
        idempotently). The open segment stays even when all of it is acknowledged
        (`keep_acked_open`): the next commits go on into it, and it goes when sealed."""
        if self._closed or self._read_only:
            raise BufferClosed("the buffer is closed or read-only")
        acked = self._acked
        changed = False
        for a, b in ranges:
            if type(a) is not int or type(b) is not int or a > b:
                raise ValueError(f"not a seq range: ({a!r}, {b!r})")
            b = min(b, self._durable_seq)
            a = max(a, 1)
            if a <= b:
                acked.add(a, b)
                changed = True
        if not changed:
            return
        keep = self._open if self.config.keep_acked_open else None
        done = [s for s in self._segments if s is not keep and acked.covers(s.lo, s.last_seq)]
        if done:
            self._prune_acked(exclude=done)
            self._save_state()
            for seg in done:
                self._delete(seg)
        else:
            self._state_dirty = True
            if self._clock() - self._state_saved_at >= self.config.ack_save_interval_s:
                self._save_state_quietly()

    def _prune_acked(self, exclude: Collection[Segment] = ()) -> None:
        live = [s for s in self._segments if s not in exclude]
        floor = live[0].lo if live else self._durable_seq + 1
        self._acked.prune_below(floor)
        self._state.acked = self._acked.pairs()

    def _save_state(self) -> None:
        self._state.acked = self._acked.pairs()
        try:
            save_state(self._layer, self.config.state_path, self._state)
        except OSError as e:
            raise _disk_error("cannot write state.cbor", e) from e
        self._state_dirty = False
        self._state_saved_at = self._clock()

    def _save_state_quietly(self) -> None:
        """Acks only: if the disk refuses, they are kept in memory and written later."""
        with contextlib.suppress(BufferDiskError):
            self._save_state()

    def _segment_of(self, first_seq: int) -> Segment | None:
        for seg in self._segments:
            if seg.first_seq == first_seq:
                return seg
        return None

    def _index(self, seg: Segment) -> Segment:
        """The segment with its block index in memory (loaded from its footer if sealed)."""
        if seg.index is None:
            again = read_sealed(self._layer, seg.path, seg.first_seq)
            if again is None:
                raise BufferFailure(
                    f"{seg.path}: the footer no longer reads (corrupt after recovery)"
                )
            seg.index = again.index
        if seg.sealed and seg is not self._open:
            if seg in self._loaded:
                self._loaded.remove(seg)
            self._loaded.append(seg)
            while len(self._loaded) > _LOADED_INDEXES:
                self._loaded.pop(0).index = None
        return seg

    def _read_payload(self, seg: Segment, offset: int, length: int) -> bytes:
        reader = self._readers.get(seg.path)
        if reader is None:
            if len(self._readers) >= 4:
                _path, old = self._readers.popitem()
                old.close()
            reader = self._readers[seg.path] = self._layer.open_read(seg.path)
        record = reader.pread(offset, length)
        fr = frame_at(record, 0)
        if fr is None or fr[1] != length:
            raise _Corrupt(seg)
        return record[FRAME_LEN:]

    def _repair(self, seg: Segment) -> None:
        """A segment whose record failed its check when read: quarantine a copy, keep its
        sound records (sealed), count the unacknowledged readings lost."""
        if self._read_only:
            raise BufferFailure(
                f"{seg.path}: a record fails its check (corrupt); open read-write to repair"
            )
        layer, cfg = self._layer, self.config
        try:
            data = layer.read_file(seg.path)
            scan = scan_segment(data, seg.first_seq)
            sound = {h.first_seq for _o, _l, h in scan.blocks}
            lost = 0
            self._index(seg)
            for k in range(seg.n_blocks):
                e = seg.entry(k)
                if e[FIRST_SEQ] not in sound:
                    first, count = e[FIRST_SEQ], e[COUNT]
                    lost += count - self._acked.count_in(first, first + count - 1)
            layer.makedirs(cfg.quarantine_dir)
            layer.write_atomic(
                quarantine_path(layer, cfg.quarantine_dir, os.path.basename(seg.path)), data
            )
            position = self._segments.index(seg)
            self._forget(seg)
            if scan.blocks:
                fresh = rewrite_sound(layer, seg.path, seg.first_seq, data, scan)
                self._segments.insert(position, fresh)
                self._bytes += fresh.size
                self._add_alarms(fresh.alarms)
            else:
                self._unlink(seg.path)
        except OSError as e:
            raise _disk_error(f"cannot repair {seg.path}", e) from e
        self._state.quarantined_readings += lost
        self._state.quarantined_files += 1
        self.recovery.problems.append(
            f"{os.path.basename(seg.path)}: corrupt when read; {lost} unacknowledged readings lost, "
            f"{len(scan.blocks)} sound blocks kept (a copy is in quarantine/)"
        )
        self._save_state()

    def iter_readings(self, include_acked: bool = False) -> Iterator[tuple[int, Reading]]:
        """(seq, reading) for every committed reading still in the buffer, in seq order."""
        done = 0  # every seq up to this was yielded (or skipped)
        while True:
            try:
                for seg in list(self._segments):
                    if seg.last_seq <= done:
                        continue
                    self._index(seg)
                    for k in range(seg.first_block_after(done), seg.n_blocks):
                        e = seg.entry(k)
                        first, count = e[FIRST_SEQ], e[COUNT]
                        if include_acked or not self._acked.covers(first, first + count - 1):
                            payload = self._read_payload(seg, e[OFFSET], e[LENGTH])
                            seq, readings = decode_block(payload)
                            for i, r in enumerate(readings):
                                if include_acked or not self._acked.contains(seq + i):
                                    yield seq + i, r
                        done = first + count - 1
                return
            except _Corrupt as e:
                self._repair(e.segment)

    # ------------------------------------------------------------------ state

    def stats(self) -> BufferStats:
        acked = self._acked
        depth = len(self._pending)
        oldest: int | None = None
        first_found = False
        for seg in self._segments:
            unacked = seg.count - acked.count_in(seg.lo, seg.last_seq)
            depth += unacked
            if not unacked:
                continue
            t_min = seg.t_min
            if not first_found:  # the oldest unacknowledged block, not its segment
                first_found = True
                try:
                    self._index(seg)
                    for k in range(seg.n_blocks):
                        e = seg.entry(k)
                        if not acked.covers(e[FIRST_SEQ], e[FIRST_SEQ] + e[COUNT] - 1):
                            t_min = min(seg.entry(j)[T_MIN] for j in range(k, seg.n_blocks))
                            break
                except BufferFailure:
                    pass
            if oldest is None or t_min < oldest:
                oldest = t_min
        if oldest is None and self._pending:
            oldest = min(r.ts_ms for r in self._pending)
        st = self._state
        return BufferStats(
            depth=depth,
            pending=len(self._pending),
            oldest_ts_ms=oldest,
            bytes=self._bytes,
            segments=len(self._segments),
            quota_bytes=self.config.quota_bytes,
            policy=self.config.policy,
            durable_seq=self._durable_seq,
            next_seq=self._next_seq,
            acked_ranges=len(acked),
            dropped_by_sensor=dict(st.dropped),
            dropped_total=sum(st.dropped.values()),
            quarantined_readings=st.quarantined_readings,
            quarantined_files=st.quarantined_files,
        )

    def wipe(self) -> None:
        """Delete every reading (segments, pending, quarantine, acknowledgements, drop
        counters). Sequence numbering goes on: seq.cbor is kept and moved past every
        number handed out."""
        self._check_writable()
        reserved = max(self._reserved, self._next_seq - 1)
        self._save_seq_mark(reserved)
        for seg in list(self._segments):
            self._delete(seg)
        qdir = self.config.quarantine_dir
        if self._layer.exists(qdir):
            for name in self._layer.listdir(qdir):
                self._unlink(os.path.join(qdir, name))
        self._pending = []
        self._alarms = []
        self._acked = AckedRanges()
        self._durable_seq = self._next_seq - 1
        self._state = BufferState(reserved=reserved)
        self._save_state()

    def close(self) -> None:
        """Commit, seal the open segment, record the exact high-water mark, unlock."""
        if self._closed:
            return
        error: BaseException | None = None
        if not self._read_only:
            try:
                self.commit()
            except BufferFailure as e:
                error = e
            try:
                if self._open is not None and not self._writer_broken:
                    self._seal_open()
                # the exact mark: a clean restart continues without a gap
                exact = self._next_seq - 1
                self._state.reserved = exact
                self._save_state()
                save_seq_mark(self._layer, self.config.seq_file, exact)
            except (OSError, BufferFailure) as e:
                error = error or e
        self._release()
        self._closed = True
        if error is not None:
            raise error

    def _release(self) -> None:
        for reader in self._readers.values():
            with contextlib.suppress(OSError):
                reader.close()
        self._readers.clear()
        if self._writer is not None:
            with contextlib.suppress(OSError):
                self._writer.close()
            self._writer = None
        if self._lock is not None:
            self._layer.unlock(self._lock)
            self._lock = None

    def __enter__(self) -> SegmentLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["SegmentLog"]

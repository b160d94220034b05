"""BufferConfig: where the buffer lives, how big it may grow, how often it commits."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from protocols import settings
from protocols.block import MAX_READINGS

Policy = Literal["drop_oldest", "refuse_new"]
POLICIES: tuple[Policy, ...] = ("drop_oldest", "refuse_new")

MIB = 1 << 20
# The defaults of what the configuration file sets are the schema's (`[buffer]`,
# protocols.settings): one default for the daemon, the tools and the tests. The checks below
# are the buffer's own range, wider than the file's (tests run 64 KiB quotas).
_SCHEMA: dict[str, Any] = settings.defaults("buffer")


@dataclass(frozen=True, slots=True)
class BufferConfig:
    """Configuration of a SegmentLog.

    - directory: holds `segments/`, `quarantine/`, `state.cbor`, `seq.cbor`, `lock`.
    - quota_bytes: bound on the segment files; when reached, `policy` decides:
      "drop_oldest" (default) deletes the oldest segments, counting every unacknowledged
      reading dropped per sensor; "refuse_new" makes append raise BufferFull.
    - max_age_s: optional: sealed segments whose newest reading is older are dropped
      (counted the same way).
    - commit_interval_s / commit_readings: group commit. Pending readings are written and
      synced once there are commit_readings of them or the oldest has waited
      commit_interval_s (checked on append; call commit() on a timer as well). The interval
      is the loss window: what a power cut may take of the readings accepted.
    - ack_save_interval_s: acknowledged ranges are written to state.cbor when a segment is
      deleted, on close, and otherwise at most this often (an atomic rewrite costs a few
      flash pages and journal writes: not one per ack). An ack lost in a crash only means
      those readings are sent again; the hub inserts idempotently.
    - preallocate: the open segment's file is preallocated (zeros written ahead, 256 KiB at
      a time) and commits write into it in place: a commit then changes no file size and no
      allocation, so it costs one flash page and no file-system journal write (growing a
      file costs a journal commit on every fdatasync). The room not yet used is a padding
      item at the end of the open segment (docs/buffer-format.md); the quota counts it.
    - keep_acked_open: an open segment whose readings are all acknowledged stays open and
      the next commits go on into it; False is the first release's behaviour (deleted at
      once, a new file for the next commit: a create, a header and directory syncs per
      commit at low rates), kept as the anchor of `estran bench edge`.
    - segment_bytes: size at which a segment is sealed and a new one started (capped at a
      quarter of the quota, so that dropping the oldest frees room in steps).
    - seq_path: the sequence high-water mark, by default `directory/seq.cbor`. Wiping the
      buffer never removes it; keep it elsewhere (the gateway state directory) if the whole
      buffer directory may be deleted.
    - seq_reserve: sequence numbers are reserved on disk this many at a time, so that none
      is ever handed out twice even after a crash (a crash leaves a gap instead).
    - compact: a segment of small blocks (fewer than 256 readings each on average: a
      gateway committing a few readings every 100 ms) is rewritten in large blocks when it
      is sealed, so that a reading costs a few bytes at any rate.
    """

    directory: str | os.PathLike[str]
    quota_bytes: int = _SCHEMA["quota"]
    max_age_s: float | None = _SCHEMA["max_age"]
    policy: Policy = _SCHEMA["policy"]
    commit_interval_s: float = _SCHEMA["commit_interval"]
    commit_readings: int = _SCHEMA["commit_readings"]
    ack_save_interval_s: float = 300.0
    preallocate: bool = False
    keep_acked_open: bool = True
    segment_bytes: int = _SCHEMA["segment_size"]
    seq_path: str | os.PathLike[str] | None = None
    seq_reserve: int = 1 << 16
    compact: bool = True

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, not {self.policy!r}")
        if self.quota_bytes < 64 * 1024:
            raise ValueError("quota_bytes must be at least 64 KiB")
        if self.max_age_s is not None and self.max_age_s <= 0:
            raise ValueError("max_age_s must be positive")
        if not 0 <= self.commit_interval_s <= 3600:
            raise ValueError("commit_interval_s must be within 0 .. 3600")
        if not 0 <= self.ack_save_interval_s <= 86400:
            raise ValueError("ack_save_interval_s must be within 0 .. 86400")
        if not 1 <= self.commit_readings <= MAX_READINGS:
            raise ValueError(f"commit_readings must be within 1 .. {MAX_READINGS}")
        if self.segment_bytes < 4096:
            raise ValueError("segment_bytes must be at least 4 KiB")
        if self.seq_reserve < 1:
            raise ValueError("seq_reserve must be positive")

    @property
    def path(self) -> str:
        return os.fspath(self.directory)

    @property
    def segments_dir(self) -> str:
        return os.path.join(self.path, "segments")

    @property
    def quarantine_dir(self) -> str:
        return os.path.join(self.path, "quarantine")

    @property
    def state_path(self) -> str:
        return os.path.join(self.path, "state.cbor")

    @property
    def lock_path(self) -> str:
        return os.path.join(self.path, "lock")

    @property
    def seq_file(self) -> str:
        return (
            os.fspath(self.seq_path)
            if self.seq_path is not None
            else os.path.join(self.path, "seq.cbor")
        )

    @property
    def effective_segment_bytes(self) -> int:
        return max(4096, min(self.segment_bytes, self.quota_bytes // 4))


__all__ = ["POLICIES", "BufferConfig", "Policy"]

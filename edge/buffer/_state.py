"""The small files beside the segments, each replaced atomically (temporary file, sync,
rename, sync of the directory):

- `seq.cbor`, the sequence high-water mark: every seq up to `reserved` may have been handed
  out, so the next one after a restart is `reserved + 1`. A wipe never removes it.
- `state.cbor`: acknowledged ranges, dropped and quarantined counts, a copy of the mark.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cbor2

from edge.buffer._fs import FileLayer


@dataclass(slots=True)
class BufferState:
    acked: list[tuple[int, int]] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)  # per sensor, since the last wipe
    dropped_upto: int = 0  # every seq up to this was dropped or acknowledged
    quarantined_readings: int = 0
    quarantined_files: int = 0
    reserved: int = 0  # copy of the high-water mark: evidence if seq.cbor is lost
    unreadable: bool = False  # the file existed but did not decode

    def to_bytes(self) -> bytes:
        flat = [x for pair in self.acked for x in pair]
        return cbor2.dumps(
            {
                "v": 1,
                "acked": flat,
                "dropped": self.dropped,
                "dropped_upto": self.dropped_upto,
                "quarantined_readings": self.quarantined_readings,
                "quarantined_files": self.quarantined_files,
                "reserved": self.reserved,
            }
        )


def load_state(layer: FileLayer, path: str) -> BufferState:
    if not layer.exists(path):
        return BufferState()
    try:
        m = cbor2.loads(layer.read_file(path))
        flat = [int(x) for x in m["acked"]]
        if len(flat) % 2:
            raise ValueError("odd acked list")
        return BufferState(
            acked=[(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)],
            dropped={str(k): int(v) for k, v in m["dropped"].items()},
            dropped_upto=int(m["dropped_upto"]),
            quarantined_readings=int(m["quarantined_readings"]),
            quarantined_files=int(m["quarantined_files"]),
            reserved=int(m["reserved"]),
        )
    except Exception:
        return BufferState(unreadable=True)


def save_state(layer: FileLayer, path: str, state: BufferState) -> None:
    layer.write_atomic(path, state.to_bytes())


def load_seq_mark(layer: FileLayer, path: str) -> int | None:
    """The reserved high-water mark; 0 if there is no file yet; None if it is unreadable."""
    if not layer.exists(path):
        return 0
    try:
        m = cbor2.loads(layer.read_file(path))
        reserved = int(m["reserved"])
        if reserved < 0:
            raise ValueError("negative")
        return reserved
    except Exception:
        return None


def save_seq_mark(layer: FileLayer, path: str, reserved: int) -> None:
    layer.write_atomic(path, cbor2.dumps({"v": 1, "reserved": reserved}))


__all__ = ["BufferState", "load_seq_mark", "load_state", "save_seq_mark", "save_state"]

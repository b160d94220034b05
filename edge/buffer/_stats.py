"""BufferStats: what the daemon reports about its buffer (and `estran edge buffer stats`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True, slots=True)
class BufferStats:
    depth: int  # readings not yet acknowledged (pending in memory included)
    pending: int  # accepted, not yet committed
    oldest_ts_ms: int | None  # earliest timestamp among segments holding unacknowledged readings
    bytes: int  # segment files on disk
    segments: int
    quota_bytes: int
    policy: str
    durable_seq: int  # highest committed sequence number
    next_seq: int  # the number the next reading will get
    acked_ranges: int  # acknowledged ranges still tracked
    dropped_by_sensor: dict[str, int] = field(default_factory=dict)
    dropped_total: int = 0
    quarantined_readings: int = 0
    quarantined_files: int = 0

    def oldest_age_s(self, now_ms: int) -> float | None:
        return None if self.oldest_ts_ms is None else max(0.0, (now_ms - self.oldest_ts_ms) / 1000)

    def as_dict(self, now_ms: int | None = None) -> dict[str, object]:
        d = asdict(self)
        if now_ms is not None:
            d["oldest_age_s"] = self.oldest_age_s(now_ms)
        return d


__all__ = ["BufferStats"]

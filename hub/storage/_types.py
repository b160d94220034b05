"""Value types crossing the storage interface: what ingest writes and what the API reads."""

from __future__ import annotations

from dataclasses import dataclass, field

# A series is one quantity of one sensor: (sensor, quantity, unit or None).
SeriesKey = tuple[str, str, str | None]
Value = int | float | str | bool | None
Footprint = dict[str, int | float]  # a gateway's figures by name (protocols.wire State)


@dataclass(slots=True)
class IngestBatch:
    """One decoded data message, columnar: reading i is (seqs[i], series[series_index[i]], ...).

    `ranges` are the inclusive sequence ranges the message covers (one per block): once the
    batch is committed, they are what the hub acknowledges.
    """

    gateway: str
    session: int
    batch_no: int
    historical: bool
    backlog: int | None
    ranges: list[tuple[int, int]]
    series: list[SeriesKey]
    series_index: list[int]
    seqs: list[int]
    ts_ms: list[int]
    values: list[Value]
    flags: list[int]
    has_text: bool = False

    def __len__(self) -> int:
        return len(self.seqs)


@dataclass(frozen=True, slots=True)
class IngestResult:
    inserted: int
    duplicates: int
    erased: int = 0  # resent readings of a range deleted on request, dropped


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """One source of a gateway as its latest state message reported it (protocols.wire
    SourceHealth): `status` is "ok", "degraded" or "down"; `last_reading_ms` the time of its
    latest reading (None: none yet); `errors` counts by reason since the daemon started;
    `detail` why it is not ok, when the gateway said."""

    name: str
    status: str
    last_reading_ms: int | None = None
    errors: dict[str, int] = field(default_factory=dict)
    detail: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "status": self.status,
            "last_reading_ms": self.last_reading_ms,
            "errors": dict(self.errors),
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class GatewayState:
    """A state message: birth (online) or death (offline, the MQTT Will). `footprint`: the
    gateway's figures when the message carries them (None keeps the last ones)."""

    online: bool
    session: int
    ts_ms: int
    backlog: int | None = None
    info: dict[str, object] = field(default_factory=dict)
    footprint: Footprint | None = None
    sources: tuple[SourceStatus, ...] | None = None  # None keeps the last ones
    restart_pending: tuple[str, ...] | None = None  # None keeps the last ones


@dataclass(frozen=True, slots=True)
class GatewayInfo:
    gateway: str
    state: str  # "online" | "offline" | "unknown"
    session: int | None
    last_seen_ms: int | None
    backlog: int | None
    batches: int
    rejected: dict[str, int]
    last_error: str | None
    last_error_ms: int | None
    readings: int = 0  # readings the hub holds for the gateway
    footprint: Footprint | None = None  # the latest the gateway reported
    sources: tuple[SourceStatus, ...] | None = None  # the latest the gateway reported
    restart_pending: tuple[str, ...] = ()  # settings applied that wait for a restart


@dataclass(frozen=True, slots=True)
class SensorLatest:
    sensor: str
    quantity: str
    unit: str | None
    ts_ms: int
    value: Value | None
    flags: int
    gateway: str


@dataclass(frozen=True, slots=True)
class ReadingRow:
    gateway: str
    seq: int
    sensor: str
    quantity: str
    unit: str | None
    ts_ms: int
    value: Value | None
    flags: int


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """One series as stored: its id (stable, never reused), sensor, quantity, unit."""

    id: int
    sensor: str
    quantity: str
    unit: str | None


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One bucket of a downsampled series: [start_ms, start_ms + bucket) of numbers (text
    values are not counted)."""

    start_ms: int
    min: int | float | None
    max: int | float | None
    mean: float | None
    count: int


@dataclass(frozen=True, slots=True)
class Downsampled:
    series: SeriesInfo
    from_ms: int
    to_ms: int
    bucket_ms: int
    points: list[SeriesPoint]


@dataclass(frozen=True, slots=True)
class Observation:
    """A reading addressed by series id (SensorThings' Observations)."""

    series_id: int
    gateway_id: int
    seq: int
    ts_ms: int
    value: Value | None
    flags: int


__all__ = [
    "Downsampled",
    "Footprint",
    "GatewayInfo",
    "GatewayState",
    "IngestBatch",
    "IngestResult",
    "Observation",
    "ReadingRow",
    "SensorLatest",
    "SeriesInfo",
    "SeriesKey",
    "SeriesPoint",
    "SourceStatus",
    "Value",
]

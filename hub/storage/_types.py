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


__all__ = [
    "Footprint",
    "GatewayInfo",
    "GatewayState",
    "IngestBatch",
    "IngestResult",
    "ReadingRow",
    "SensorLatest",
    "SeriesKey",
    "Value",
]

"""The typed configuration of a gateway daemon (what `load_config` returns)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

ReportMode = Literal["every", "change", "aggregate"]
Aggregate = Literal["min", "max", "mean", "last", "count"]
AGGREGATES: tuple[Aggregate, ...] = ("min", "max", "mean", "last", "count")
BufferPolicy = Literal["drop_oldest", "refuse_new"]


@dataclass(frozen=True, slots=True)
class GatewaySection:
    id: str
    data_dir: Path
    log_level: str = "info"

    @property
    def status_socket(self) -> Path:
        return self.data_dir / "status.sock"

    @property
    def buffer_dir(self) -> Path:
        return self.data_dir / "buffer"

    @property
    def buffer_seq_file(self) -> Path:
        """The buffer's sequence high-water mark: beside the buffer, not in it, so that
        wiping the buffer never reuses a sequence number (the one name, docs/operations.md)."""
        return self.data_dir / "buffer-seq.cbor"


@dataclass(frozen=True, slots=True)
class BufferSection:
    quota_bytes: int = 256 * 1024 * 1024
    policy: BufferPolicy = "drop_oldest"
    # the loss window: a power cut may take what was read since the last commit (alarms are
    # committed at once); long enough that a commit holds several readings at low rates
    commit_interval_s: float = 10.0
    commit_readings: int = 2000
    max_age_s: float | None = None
    segment_bytes: int = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class UplinkSection:
    broker: str  # mqtt://host:port, or mqtts://host:port (TLS, port 8883 by default)
    credentials_file: Path | None = None  # "username:password" on one line, mode 0600
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    backlog_rate: float = 2000.0  # readings/s when draining the backlog (0: unlimited)
    backlog_burst: int = 8192
    state_interval_s: float = 60.0
    keepalive_s: int = 30
    compress: int = 6
    ca_file: Path | None = None  # mqtts://: the hub's CA; None: the one enrollment kept

    @property
    def tls(self) -> bool:
        return self.broker.startswith(("mqtts://", "ssl://"))


@dataclass(frozen=True, slots=True)
class DaemonSection:
    """Tuning of the daemon itself; the defaults suit a Raspberry Pi."""

    queue_size: int = 2048  # readings between the sources and the buffer writer
    put_timeout_s: float = 10.0  # a source waits this long on a full queue, then drops
    restart_min_s: float = 1.0  # backoff of a crashed source: from this ...
    restart_max_s: float = 60.0  # ... doubling to this
    stop_timeout_s: float = 10.0  # a clean stop drains and commits within this


@dataclass(frozen=True, slots=True)
class ReportStrategy:
    """How a sensor's samples become readings (see edge.daemon.strategy)."""

    mode: ReportMode = "every"
    deadband: float | None = None  # change: for every quantity not in `deadbands`
    deadbands: Mapping[str, float] = field(default_factory=dict)
    heartbeat_s: float = 900.0  # change: report at least this often even when steady
    window_s: float = 60.0  # aggregate: window length, aligned on the clock
    aggregates: tuple[Aggregate, ...] = ("mean", "min", "max", "last")

    def deadband_for(self, quantity: str) -> float:
        return self.deadbands.get(quantity, self.deadband or 0.0)


@dataclass(frozen=True, slots=True)
class Location:
    name: str | None = None
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True, slots=True)
class SensorConfig:
    """What the gateway knows of one sensor id beyond what its source reads."""

    id: str
    dataset: Literal["open", "closed"] = "closed"
    location: Location | None = None
    description: str | None = None
    rename: Mapping[str, str] = field(default_factory=dict)  # codec quantity -> published name
    units: Mapping[str, str] = field(default_factory=dict)  # published name -> unit
    ignore: frozenset[str] = frozenset()  # codec quantities never published
    report: ReportStrategy = field(default_factory=ReportStrategy)


__all__ = [
    "AGGREGATES",
    "Aggregate",
    "BufferPolicy",
    "BufferSection",
    "DaemonSection",
    "GatewaySection",
    "Location",
    "ReportMode",
    "ReportStrategy",
    "SensorConfig",
    "UplinkSection",
]

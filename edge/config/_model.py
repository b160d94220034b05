"""The typed configuration of a gateway daemon (what `load_config` returns).

Defaults are the schema's (`protocols.settings`): declared once, for the hub and the gateway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from protocols import settings

ReportMode = Literal["every", "change", "aggregate"]
Aggregate = Literal["min", "max", "mean", "last", "count"]
AGGREGATES: tuple[Aggregate, ...] = settings.AGGREGATES  # type: ignore[assignment]
BufferPolicy = Literal["drop_oldest", "refuse_new"]


_GATEWAY: dict[str, Any] = settings.defaults("gateway")
_BUFFER: dict[str, Any] = settings.defaults("buffer")
_UPLINK: dict[str, Any] = settings.defaults("uplink")
_DAEMON: dict[str, Any] = settings.defaults("daemon")
_REPORT: dict[str, Any] = settings.defaults("sensors.report")


@dataclass(frozen=True, slots=True)
class GatewaySection:
    id: str
    data_dir: Path
    log_level: str = _GATEWAY["log_level"]

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
    quota_bytes: int = _BUFFER["quota"]
    policy: BufferPolicy = _BUFFER["policy"]
    # the loss window: a power cut may take what was read since the last commit (alarms are
    # committed at once); long enough that a commit holds several readings at low rates
    commit_interval_s: float = _BUFFER["commit_interval"]
    commit_readings: int = _BUFFER["commit_readings"]
    max_age_s: float | None = _BUFFER["max_age"]
    segment_bytes: int = _BUFFER["segment_size"]


@dataclass(frozen=True, slots=True)
class UplinkSection:
    broker: str  # mqtt://host:port, or mqtts://host:port (TLS, port 8883 by default)
    credentials_file: Path | None = None  # "username:password" on one line, mode 0600
    protocol: Literal["auto", "5", "3.1.1"] = _UPLINK["protocol"]
    backlog_rate: float = _UPLINK["backlog_rate"]  # readings/s draining a backlog (0: unlimited)
    backlog_burst: int = _UPLINK["backlog_burst"]
    state_interval_s: float = _UPLINK["state_interval"]
    keepalive_s: int = _UPLINK["keepalive"]
    compress: int = _UPLINK["compress"]
    ca_file: Path | None = None  # mqtts://: the hub's CA; None: the one enrollment kept

    @property
    def tls(self) -> bool:
        return self.broker.startswith(("mqtts://", "ssl://"))


@dataclass(frozen=True, slots=True)
class DaemonSection:
    """Tuning of the daemon itself; the defaults suit a Raspberry Pi."""

    queue_size: int = _DAEMON["queue_size"]  # readings between the sources and the writer
    put_timeout_s: float = _DAEMON["put_timeout"]  # a source waits on a full queue, then drops
    restart_min_s: float = _DAEMON["restart_min"]  # backoff of a crashed source: from this ...
    restart_max_s: float = _DAEMON["restart_max"]  # ... doubling to this
    stop_timeout_s: float = _DAEMON["stop_timeout"]  # a clean stop drains and commits within


@dataclass(frozen=True, slots=True)
class ReportStrategy:
    """How a sensor's samples become readings (see edge.daemon.strategy)."""

    mode: ReportMode = _REPORT["mode"]
    deadband: float | None = None  # change: for every quantity not in `deadbands`
    deadbands: Mapping[str, float] = field(default_factory=dict)
    heartbeat_s: float = _REPORT["heartbeat"]  # change: at least this often even when steady
    window_s: float = _REPORT["window"]  # aggregate: window length, aligned on the clock
    aggregates: tuple[Aggregate, ...] = tuple(_REPORT["aggregates"])

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

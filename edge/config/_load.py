"""Read the gateway's TOML configuration into typed sections, or say everything wrong with it.

Why TOML: it is in the standard library (`tomllib`, nothing to install on a gateway), it has
no implicit typing surprises (YAML's `no` → false, `0755` → octal, `1e3` → string or float
depending on the parser), comments are first-class for the technician, and
`[[serial]]`/`[[serial.devices]]` arrays of tables read naturally for ports and their devices.

What is valid is `protocols.settings`, the one schema the hub validates with too: this module
only turns its checked, default-filled values into the typed sections the daemon runs
(relative paths taken from the file's directory).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from edge.config._errors import ConfigError, ConfigIssue
from edge.config._model import (
    Aggregate,
    BufferPolicy,
    BufferSection,
    DaemonSection,
    GatewaySection,
    Location,
    ReportMode,
    ReportStrategy,
    SensorConfig,
    UplinkSection,
)
from edge.sources.ble import BackendSpec, BleConfigError, BleDeviceConfig, BleOptions
from edge.sources.serial import SerialConfigError, SerialPortConfig
from protocols import settings

DEFAULT_CONFIG = Path("/etc/estran/edge.toml")
DEFAULT_DATA_DIR = Path(settings.DEFAULT_DATA_DIR)


@dataclass(frozen=True, slots=True)
class BleSection:
    """The BLE source: which backend (edge.sources.ble.BackendSpec: BlueZ and its adapter, or bumble
    on an HCI transport), its timings, its devices."""

    backend: BackendSpec = field(default_factory=lambda: BackendSpec("bluez"))
    options: BleOptions = field(default_factory=BleOptions)
    devices: tuple[BleDeviceConfig, ...] = ()

    @property
    def source_name(self) -> str:
        return f"ble:{self.backend.target or self.backend.kind}"


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    """The whole gateway configuration."""

    gateway: GatewaySection
    buffer: BufferSection = field(default_factory=BufferSection)
    uplink: UplinkSection | None = None
    serial: tuple[SerialPortConfig, ...] = ()
    ble: BleSection | None = None
    sensors: Mapping[str, SensorConfig] = field(default_factory=dict)
    daemon: DaemonSection = field(default_factory=DaemonSection)
    path: Path | None = None

    def sensor(self, sensor_id: str) -> SensorConfig:
        """The sensor's settings (defaults when it has no [sensors] table)."""
        found = self.sensors.get(sensor_id)
        return found if found is not None else SensorConfig(sensor_id)

    def sensor_ids(self) -> list[str]:
        """Every sensor id a source reads, in file order."""
        ids = [d.sensor for port in self.serial for d in port.devices]
        if self.ble is not None:
            ids += [d.sensor for d in self.ble.devices]
        return ids


def load_config(path: str | Path) -> EdgeConfig:
    """Read and validate the file; `ConfigError` lists every problem, each with its field."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError as e:
        raise ConfigError([ConfigIssue("", f"no such file: {path}")], str(path)) from e
    except OSError as e:
        raise ConfigError([ConfigIssue("", f"cannot read: {e.strerror or e}")], str(path)) from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([ConfigIssue("", f"not valid TOML: {e}")], str(path)) from e
    except UnicodeDecodeError as e:
        raise ConfigError([ConfigIssue("", f"not UTF-8 text: {e}")], str(path)) from e
    return parse_config(data, source=str(path), path=path)


def parse_config(
    data: Mapping[str, object], source: str = "", path: Path | None = None
) -> EdgeConfig:
    """Validate parsed TOML data (also what a pushed configuration document holds)."""
    values, problems = settings.resolve(dict(data), settings.GATEWAY)
    issues = [ConfigIssue(i.path, i.message) for i in problems]
    if issues:
        raise ConfigError(issues, source)
    base = path.parent if path is not None else None
    v = cast(dict[str, Any], values)
    try:
        serial = tuple(SerialPortConfig.from_values(port) for port in v["serial"])
        ble = None if v["ble"] is None else _ble(v["ble"])
    except (SerialConfigError, BleConfigError) as e:  # the schema and a source disagree
        raise ConfigError([ConfigIssue(e.field, e.message)], source) from e
    return EdgeConfig(
        gateway=_gateway(v["gateway"], base),
        buffer=_buffer(v["buffer"]),
        uplink=None if v["uplink"] is None else _uplink(v["uplink"], base),
        serial=serial,
        ble=ble,
        sensors={name: _sensor(name, table) for name, table in v["sensors"].items()},
        daemon=_daemon(v["daemon"]),
        path=path,
    )


# -- sections: checked values -> typed sections ------------------------------------------


def _path(text: str | None, base: Path | None) -> Path | None:
    if text is None:
        return None
    value = Path(text)
    if not value.is_absolute() and base is not None:
        value = base / value
    return value


def _gateway(t: dict[str, Any], base: Path | None) -> GatewaySection:
    return GatewaySection(t["id"], _path(t["data_dir"], base) or Path(), t["log_level"])


def _buffer(t: dict[str, Any]) -> BufferSection:
    return BufferSection(
        quota_bytes=t["quota"],
        policy=cast(BufferPolicy, t["policy"]),
        commit_interval_s=t["commit_interval"],
        commit_readings=t["commit_readings"],
        max_age_s=t["max_age"],
        segment_bytes=t["segment_size"],
    )


def _uplink(t: dict[str, Any], base: Path | None) -> UplinkSection:
    return UplinkSection(
        broker=t["broker"],
        credentials_file=_path(t["credentials_file"], base),
        protocol=cast(Literal["auto", "5", "3.1.1"], t["protocol"]),
        backlog_rate=t["backlog_rate"],
        backlog_burst=t["backlog_burst"],
        state_interval_s=t["state_interval"],
        keepalive_s=t["keepalive"],
        compress=t["compress"],
        ca_file=_path(t["ca_file"], base),
    )


def _daemon(t: dict[str, Any]) -> DaemonSection:
    return DaemonSection(
        queue_size=t["queue_size"],
        put_timeout_s=t["put_timeout"],
        restart_min_s=t["restart_min"],
        restart_max_s=t["restart_max"],
        stop_timeout_s=t["stop_timeout"],
    )


def _ble(t: dict[str, Any]) -> BleSection:
    kind, target = settings.ble_backend(t["backend"], t["adapter"], t["transport"])
    return BleSection(
        BackendSpec("bumble" if kind == "bumble" else "bluez", target),
        BleOptions.from_values(t),
        tuple(BleDeviceConfig.from_values(d) for d in t["devices"]),
    )


def _location(value: object) -> Location | None:
    if value is None:
        return None
    if isinstance(value, str):
        return Location(name=value)
    t = cast(dict[str, Any], value)
    return Location(name=t["name"], lat=t["lat"], lon=t["lon"])


def _sensor(sensor_id: str, t: dict[str, Any]) -> SensorConfig:
    r = t["report"]
    deadband: float | None = None
    deadbands: dict[str, float] = {}
    if isinstance(r["deadband"], dict):
        deadbands = dict(r["deadband"])
        deadband = deadbands.pop("*", None)
    elif r["deadband"] is not None:
        deadband = r["deadband"]
    report = ReportStrategy(
        mode=cast(ReportMode, r["mode"]),
        deadband=deadband,
        deadbands=deadbands,
        heartbeat_s=r["heartbeat"],
        window_s=r["window"],
        aggregates=tuple(cast(Aggregate, a) for a in r["aggregates"]),
    )
    return SensorConfig(
        sensor_id,
        cast(Literal["open", "closed"], t["dataset"]),
        _location(t["location"]),
        t["description"],
        dict(t["rename"]),
        dict(t["units"]),
        frozenset(t["ignore"]),
        report,
    )


__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_DATA_DIR",
    "BleSection",
    "EdgeConfig",
    "load_config",
    "parse_config",
]

"""Read the gateway's TOML configuration into typed sections, or say everything wrong with it.

Why TOML: it is in the standard library (`tomllib`, nothing to install on a gateway), it has
no implicit typing surprises (YAML's `no` → false, `0755` → octal, `1e3` → string or float
depending on the parser), comments are first-class for the technician, and
`[[serial]]`/`[[serial.devices]]` arrays of tables read naturally for ports and their devices.

This module is the one place where the file's tables map onto the typed configurations of
the serial and BLE sources (`SerialPortConfig.from_mapping`, `BleDeviceConfig.from_mapping`):
they validate their own fields; this loader names the table they sit in.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

from edge.ble import BackendSpec, BleConfigError, BleDeviceConfig, BleOptions, backend_from_table
from edge.config._errors import ConfigError, ConfigIssue
from edge.config._fields import Fields, show
from edge.config._model import (
    AGGREGATES,
    Aggregate,
    BufferPolicy,
    BufferSection,
    DaemonSection,
    GatewaySection,
    Location,
    ReportStrategy,
    SensorConfig,
    UplinkSection,
)
from edge.serial import SerialConfigError, SerialPortConfig

DEFAULT_CONFIG = Path("/etc/estran/edge.toml")
DEFAULT_DATA_DIR = Path("/var/lib/estran")

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_QUANTITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_UNIT = re.compile(r"^[^\s]{1,16}$")


def _check_id(value: str) -> str | None:
    if _ID.match(value) and value not in (".", ".."):
        return None
    return (
        "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit; "
        f"got {show(value)}"
    )


def _check_quantity(value: str) -> str | None:
    if _QUANTITY.match(value):
        return None
    return f"must be a quantity name (letters, digits, '.', '_', '+', '-'), got {show(value)}"


def _check_unit(value: str) -> str | None:
    return (
        None if _UNIT.match(value) else f"must be a SenML unit such as W or Cel, got {show(value)}"
    )


@dataclass(frozen=True, slots=True)
class BleSection:
    """The BLE source: which backend (edge.ble.BackendSpec: BlueZ and its adapter, or bumble
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
    issues: list[ConfigIssue] = []
    root = Fields(data, "", issues)
    base = path.parent if path is not None else None

    gateway = _gateway(root.table("gateway"), base)
    buffer = _buffer(root.table("buffer"))
    uplink = _uplink(root.table("uplink"), base) if root.has("uplink") else None
    serial = _serial(root, issues)
    ble = _ble(root.table("ble"), issues) if root.has("ble") else None
    daemon = _daemon(root.table("daemon"))
    used = _sensor_ids(serial, ble, issues)
    sensors = _sensors(root, used)
    root.done()
    if issues:
        raise ConfigError(issues, source)
    return EdgeConfig(gateway, buffer, uplink, serial, ble, sensors, daemon, path)


# -- sections ----------------------------------------------------------------------------


def _path(f: Fields, key: str, default: Path | None, base: Path | None) -> Path:
    text = f.opt_text(key)
    if text is None:
        if default is None:
            f.error(key, "required")
            return Path()
        return default
    if not text:
        f.error(key, "must not be empty")
        return Path()
    value = Path(text)
    if not value.is_absolute() and base is not None:
        value = base / value
    return value


def _gateway(f: Fields, base: Path | None) -> GatewaySection:
    if not f.data:
        f.error(None, "required: the [gateway] table with at least `id`")
    gateway_id = f.text("id", check=_check_id)
    data_dir = _path(f, "data_dir", DEFAULT_DATA_DIR, base)
    level = f.text("log_level", "info", choices=("debug", "info", "warning", "error"))
    f.done()
    return GatewaySection(gateway_id, data_dir, level)


def _buffer(f: Fields) -> BufferSection:
    d = BufferSection()
    section = BufferSection(
        quota_bytes=f.size("quota", d.quota_bytes, lo=1024 * 1024),
        policy=cast(
            BufferPolicy, f.text("policy", d.policy, choices=("drop_oldest", "refuse_new"))
        ),
        commit_interval_s=f.duration("commit_interval", d.commit_interval_s, lo=0.01, hi=60.0),
        commit_readings=f.integer("commit_readings", d.commit_readings, lo=1, hi=1_000_000),
        max_age_s=f.opt_duration("max_age", lo=60.0),
        segment_bytes=f.size("segment_size", d.segment_bytes, lo=64 * 1024),
    )
    f.done()
    return section


def _uplink(f: Fields, base: Path | None) -> UplinkSection:
    d = UplinkSection("")
    broker = f.text("broker", check=_check_broker)
    credentials = _path(f, "credentials_file", None, base) if f.has("credentials_file") else None
    ca_file = _path(f, "ca_file", None, base) if f.has("ca_file") else None
    section = UplinkSection(
        broker=broker,
        credentials_file=credentials,
        protocol=cast(
            Literal["auto", "5", "3.1.1"],
            f.text("protocol", d.protocol, choices=("auto", "5", "3.1.1")),
        ),
        backlog_rate=f.number("backlog_rate", d.backlog_rate, lo=0.0),
        backlog_burst=f.integer("backlog_burst", d.backlog_burst, lo=1),
        state_interval_s=f.duration("state_interval", d.state_interval_s, lo=1.0),
        keepalive_s=f.integer("keepalive", d.keepalive_s, lo=5, hi=3600),
        compress=f.integer("compress", d.compress, lo=0, hi=9),
        ca_file=ca_file,
    )
    if ca_file is not None and broker and not section.tls:
        f.error("ca_file", "only for a TLS broker (mqtts://host:port)")
    f.done()
    return section


def _check_broker(value: str) -> str | None:
    match = re.match(r"^(?:(mqtts?|tcp)://)?([^/:\s]+)(?::(\d+))?/?$", value)
    if not match:
        return (
            'must be a broker address such as "mqtt://hub.example.org:1883" or '
            f'"mqtts://hub.example.org:8883", got {show(value)}'
        )
    port = match.group(3)
    if port is not None and not 0 < int(port) < 65536:
        return f"port must be 1..65535, got {port}"
    return None


def _daemon(f: Fields) -> DaemonSection:
    d = DaemonSection()
    section = DaemonSection(
        queue_size=f.integer("queue_size", d.queue_size, lo=16, hi=1_000_000),
        put_timeout_s=f.duration("put_timeout", d.put_timeout_s, lo=0.01),
        restart_min_s=f.duration("restart_min", d.restart_min_s, lo=0.01),
        restart_max_s=f.duration("restart_max", d.restart_max_s, lo=0.01),
        stop_timeout_s=f.duration("stop_timeout", d.stop_timeout_s, lo=0.1),
    )
    if section.restart_max_s < section.restart_min_s:
        f.error("restart_max", f"must be at least restart_min ({section.restart_min_s:g} s)")
    f.done()
    return section


def _serial(root: Fields, issues: list[ConfigIssue]) -> tuple[SerialPortConfig, ...]:
    ports: list[SerialPortConfig] = []
    paths: dict[str, str] = {}
    for index, table in enumerate(root.tables("serial")):
        where = f"serial[{index}]"
        try:
            port = SerialPortConfig.from_mapping(table.data, where)
        except SerialConfigError as e:
            issues.append(ConfigIssue(e.field, e.message))
            continue
        if port.path in paths:
            issues.append(ConfigIssue(f"{where}.path", f"{port.path} is also {paths[port.path]}"))
            continue
        paths[port.path] = where
        ports.append(port)
    return tuple(ports)


_BLE_OPTION_DURATIONS = (
    "absent_after",
    "connect_timeout",
    "poll_timeout",
    "retry_delay",
    "adapter_backoff",
    "adapter_backoff_max",
)


def _ble(f: Fields, issues: list[ConfigIssue]) -> BleSection:
    for key in ("backend", "adapter", "transport"):
        f.opt_text(key)
    backend = BackendSpec("bluez")
    try:
        backend = backend_from_table(f.data)
    except BleConfigError as e:
        issues.append(ConfigIssue(e.field, e.message))
    d = BleOptions()
    kwargs: dict[str, float] = {}
    for name in _BLE_OPTION_DURATIONS:
        kwargs[name] = f.duration(name, getattr(d, name))
    options = d
    try:
        options = BleOptions(
            passive=f.boolean("passive", d.passive),
            poll_attempts=f.integer("poll_attempts", d.poll_attempts, lo=1, hi=20),
            queue_size=f.integer("queue_size", d.queue_size, lo=1, hi=100_000),
            **kwargs,
        )
    except BleConfigError as e:
        issues.append(ConfigIssue(e.field, e.message))
    devices: list[BleDeviceConfig] = []
    addresses: dict[str, str] = {}
    for index, table in enumerate(f.tables("devices")):
        where = f"ble.devices[{index}]"
        try:
            device = BleDeviceConfig.from_mapping(table.data, where)
        except BleConfigError as e:
            issues.append(ConfigIssue(e.field, e.message))
            continue
        if device.address in addresses:
            issues.append(
                ConfigIssue(
                    f"{where}.address", f"{device.address} is also {addresses[device.address]}"
                )
            )
            continue
        addresses[device.address] = where
        devices.append(device)
    f.done()
    return BleSection(backend, options, tuple(devices))


def _sensor_ids(
    serial: tuple[SerialPortConfig, ...], ble: BleSection | None, issues: list[ConfigIssue]
) -> set[str]:
    """Every sensor id a device reads; an id read by two devices is an error."""
    where: dict[str, str] = {}
    for p, port in enumerate(serial):
        for d, device in enumerate(port.devices):
            _claim(where, device.sensor, f"serial[{p}].devices[{d}]", issues)
    if ble is not None:
        for d, bdevice in enumerate(ble.devices):
            _claim(where, bdevice.sensor, f"ble.devices[{d}]", issues)
    return set(where)


def _claim(where: dict[str, str], sensor: str, path: str, issues: list[ConfigIssue]) -> None:
    problem = _check_id(sensor)
    if problem:
        issues.append(ConfigIssue(f"{path}.sensor", problem))
    elif sensor in where:
        issues.append(ConfigIssue(f"{path}.sensor", f"{show(sensor)} is also {where[sensor]}"))
    else:
        where[sensor] = path


def _sensors(root: Fields, used: set[str]) -> dict[str, SensorConfig]:
    sensors: dict[str, SensorConfig] = {}
    for sensor_id, f in root.named_tables("sensors"):
        problem = _check_id(sensor_id)
        if problem:
            f.error(None, problem)
        elif sensor_id not in used:
            f.error(None, "no [[serial.devices]] or [[ble.devices]] reads this sensor id")
        sensors[sensor_id] = _sensor(sensor_id, f)
    return sensors


def _location(f: Fields) -> Location | None:
    if not f.has("location"):
        return None
    raw = f.data.get("location")
    if isinstance(raw, str):
        f.text("location")
        return Location(name=raw)
    sub = f.table("location")
    location = Location(
        name=sub.opt_text("name"),
        lat=sub.opt_number("lat", lo=-90.0, hi=90.0),
        lon=sub.opt_number("lon", lo=-180.0, hi=180.0),
    )
    if (location.lat is None) != (location.lon is None):
        sub.error(None, "give both lat and lon, or neither")
    sub.done()
    return location


def _sensor(sensor_id: str, f: Fields) -> SensorConfig:
    dataset = f.text("dataset", "closed", choices=("open", "closed"))
    location = _location(f)
    description = f.opt_text("description")
    rename = f.str_map("rename", check=_check_quantity)
    units = f.str_map("units", check=_check_unit)
    ignore = frozenset(f.str_list("ignore"))
    report = _report(f.table("report"))
    for name in rename:
        if name in ignore:
            f.error(f"rename.{name}", "is also in `ignore`")
    targets = list(rename.values())
    for target in set(targets):
        if targets.count(target) > 1:
            f.error("rename", f"two quantities renamed to {show(target)}")
    f.done()
    return SensorConfig(
        sensor_id,
        cast(Literal["open", "closed"], dataset),
        location,
        description,
        rename,
        units,
        ignore,
        report,
    )


def _report(f: Fields) -> ReportStrategy:
    d = ReportStrategy()
    mode = f.text("mode", d.mode, choices=("every", "change", "aggregate"))
    deadband: float | None = None
    deadbands: dict[str, float] = {}
    heartbeat = d.heartbeat_s
    window = d.window_s
    aggregates = d.aggregates
    if mode == "change":
        deadband, deadbands = f.number_or_map("deadband", lo=0.0)
        heartbeat = f.duration("heartbeat", d.heartbeat_s, lo=1.0)
    elif mode == "aggregate":
        window = f.duration("window", d.window_s, lo=1.0, hi=86400.0)
        names = f.str_list("aggregates")
        if f.has("aggregates"):
            bad = [n for n in names if n not in AGGREGATES]
            if bad:
                f.error(
                    "aggregates",
                    f"must be among {', '.join(AGGREGATES)}; got {', '.join(map(show, bad))}",
                )
            elif not names:
                f.error("aggregates", "must name at least one aggregate")
            else:
                aggregates = tuple(cast(Aggregate, n) for n in dict.fromkeys(names))
    for key in ("deadband", "heartbeat", "window", "aggregates"):
        if f.has(key) and not f.consumed(key):  # a setting of another mode
            f.reject(key, f"does not apply to mode = {show(mode)}")
    f.done()
    return ReportStrategy(
        mode=cast(Literal["every", "change", "aggregate"], mode),
        deadband=deadband,
        deadbands=deadbands,
        heartbeat_s=heartbeat,
        window_s=window,
        aggregates=aggregates,
    )


__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_DATA_DIR",
    "BleSection",
    "EdgeConfig",
    "load_config",
    "parse_config",
]

"""Typed configuration of a serial port and the devices on it.

Plain frozen dataclasses: the daemon builds them from its configuration file
(`SerialPortConfig.from_values` takes a `[[serial]]` table that `protocols.settings` checked
and filled in; `from_mapping` checks one itself and names the field in every error), the
probe suggests them (`SerialPortConfig.snippet`), tests build them directly.

What is valid is said once, by the schema (`protocols/settings`: the fields' types and
limits, and the rules by protocol in `protocols/settings/_serial.py`), which the hub checks
with too; these classes only hold the values and turn them into codec objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from edge.errors import EdgeError
from protocols import level, modbus, pms, sdi12, sds011, settings, sps30, tic, ultrasonic
from protocols.settings import serial as rules
from protocols.settings.serial import (
    LINK_MODES,
    MBUS,
    MODBUS,
    NMEA,
    PARITIES,
    PMS,
    PROTOCOLS,
    SDI12,
    SDS011,
    SINGLE_DEVICE,
    SPS30,
    STREAMS,
    TIC,
    ULTRASONIC,
    WAKE_METHODS,
    WMBUS,
    mbus_selection,
    wmbus_meter,
)
from protocols.wmbus import dongles


class SerialError(EdgeError):
    """Root of the errors of edge.sources.serial."""


class SerialConfigError(SerialError, ValueError):
    """A configuration value is wrong. `field` names it (``devices[1].address``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class LineSettings:
    """Speed and character format of a serial line (``9600 8N1``)."""

    baud: int
    bytesize: int = 8
    parity: str = "N"
    stopbits: int = 1

    @property
    def char_bits(self) -> int:
        """Bits one character takes on the wire: start, data, parity, stop."""
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits

    @property
    def char_time(self) -> float:
        """Seconds one character takes on the wire."""
        return self.char_bits / self.baud

    def transfer_time(self, nbytes: int) -> float:
        return nbytes * self.char_time

    def __str__(self) -> str:
        return f"{self.baud} {self.bytesize}{self.parity}{self.stopbits}"


# Each protocol's line when the configuration does not say.
DEFAULT_LINES: Final[dict[str, LineSettings]] = {
    TIC: LineSettings(tic.BAUDRATE[tic.HISTORIQUE], 7, "E", 1),
    MODBUS: LineSettings(9600, 8, "N", 1),
    MBUS: LineSettings(2400, 8, "E", 1),
    SDI12: LineSettings(sdi12.BAUD_RATE, 7, "E", 1),
    ULTRASONIC: LineSettings(9600, 8, "N", 1),
    NMEA: LineSettings(4800, 8, "N", 1),
    WMBUS: LineSettings(dongles.BAUD[dongles.IM871A], 8, "N", 1),  # by dongle: see `line`
    PMS: LineSettings(pms.BAUD_RATE, 8, "N", 1),
    SDS011: LineSettings(sds011.BAUD_RATE, 8, "N", 1),
    SPS30: LineSettings(sps30.BAUD_RATE, 8, "N", 1),
}

# Seconds without a frame before a passive stream counts a `silence` error.
DEFAULT_SILENCE: Final[dict[str, float]] = {
    TIC: 10.0,
    ULTRASONIC: 5.0,
    NMEA: 5.0,
    WMBUS: 300.0,
    PMS: 10.0,
    SDS011: 10.0,  # plus the working period when the sensor duty-cycles itself
}

_DEVICE: dict[str, Any] = settings.defaults("serial.devices")
_PORT: dict[str, Any] = settings.defaults("serial")


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """One sensor on a port (docs/configuration.md, `[[serial.devices]]`).

    - `sensor`: the stable, human-readable sensor id its readings carry.
    - `address`: Modbus 1..247; M-Bus primary 0..250 or secondary; SDI-12 one character;
      NMEA an optional talker filter; wireless M-Bus the meter's id; None otherwise.
    - `interval`: masters poll every `interval` seconds; passive streams hand over at most
      one frame's readings per `interval` (0: every frame).
    - `register_map`: Modbus map name (``sdm630``, ``soil``...) or a map built from
      configuration (`protocols.modbus.RegisterMap.from_dict`).
    - `key`: wireless M-Bus: the meter's AES-128 key (16 bytes). A secret: never in a repr,
      a log, a snippet or a report.
    - the others: see the schema's documentation of each field.
    """

    sensor: str
    address: int | str | None = None
    interval: float = _DEVICE["interval"]
    register_map: str | modbus.RegisterMap | None = None
    model: str | None = None
    empty_mm: float | None = None
    full_mm: float | None = None
    measurement: str = _DEVICE["measurement"]
    names: str | None = None
    max_telegrams: int = _DEVICE["max_telegrams"]
    key: bytes | None = field(default=None, repr=False)
    passive: bool = False
    sleep: bool = False
    duty_cycle: int | None = None
    datum: float | None = None
    level_from: str | None = None
    density: float = _DEVICE["density"]

    @classmethod
    def from_values(cls, d: Mapping[str, Any]) -> DeviceConfig:
        """From a `[[serial.devices]]` table the schema checked and filled in."""
        map_ = d["map"] if d["map"] is not None else d["register_map"]
        key = d["key"]
        return cls(
            sensor=d["sensor"],
            address=d["address"],
            interval=d["interval"],
            register_map=rules.register_map(map_, None) if isinstance(map_, dict) else map_,
            model=d["model"],
            empty_mm=d["empty_mm"],
            full_mm=d["full_mm"],
            measurement=d["measurement"],
            names=d["names"],
            max_telegrams=d["max_telegrams"],
            key=None if key is None else rules.key_bytes(key),
            passive=d["passive"],
            sleep=d["sleep"],
            duty_cycle=d["duty_cycle"],
            datum=d["datum"],
            level_from=d["level_from"],
            density=d["density"],
        )

    def resolved_map(self) -> modbus.RegisterMap:
        try:
            return rules.register_map(self.register_map, self.model)
        except rules.SettingError as e:
            raise SerialConfigError(e.field, e.message) from e

    def sdi12_names(self) -> str | None:
        """The SDI-12 value names: as configured, else the level model's."""
        return rules.sdi12_names(self.names, self.model)

    def level_datum(self) -> level.Datum | None:
        """The datum that turns this device's readings into a `level` (None: no datum)."""
        try:
            return rules.level_datum(
                self.datum, self.level_from, self.density, self.model, self.register_map
            )
        except rules.SettingError as e:
            raise SerialConfigError(e.field, e.message) from e

    def geometry(self) -> ultrasonic.BinGeometry | None:
        try:
            return rules.bin_geometry(self.empty_mm, self.full_mm, self.model)
        except rules.SettingError as e:
            raise SerialConfigError(e.field, e.message) from e


@dataclass(frozen=True, slots=True)
class SerialPortConfig:
    """One serial port: where, how fast, which protocol, which devices.

    `baud`, `bytesize`, `parity`, `stopbits` default to the protocol's usual line
    (`DEFAULT_LINES`; TIC standard mode: 9600). `mode` is the TIC mode (``historique`` or
    ``standard``). `response_timeout` bounds a master's wait for an answer; `silence_timeout`
    is how long a passive stream may stay quiet before a `silence` error is counted.
    `reconnect_min`/`reconnect_max` bound the backoff after the port disappears. `wake` is
    how SDI-12 sends its break: ``break`` (tcsendbreak), ``nul`` (a NUL character at 300
    baud: 30 ms of spacing, for adapters without break support, and pseudo-terminals),
    ``auto`` (break, except on a pseudo-terminal). `echo`: the RS-485 adapter hears its own
    transmission (Modbus).
    """

    path: str
    protocol: str
    devices: tuple[DeviceConfig, ...]
    baud: int | None = None
    bytesize: int | None = None
    parity: str | None = None
    stopbits: int | None = None
    mode: str | None = None
    name: str | None = None
    response_timeout: float = _PORT["response_timeout"]
    silence_timeout: float | None = None
    reconnect_min: float = _PORT["reconnect_min"]
    reconnect_max: float = _PORT["reconnect_max"]
    wake: str = _PORT["wake"]
    echo: bool = _PORT["echo"]
    dongle: str = _PORT["dongle"]
    link_mode: str = _PORT["link_mode"]
    rssi: bool = _PORT["rssi"]

    @property
    def source_name(self) -> str:
        return self.name or f"serial:{self.path}"

    @property
    def line(self) -> LineSettings:
        default = DEFAULT_LINES[self.protocol]
        if self.protocol == WMBUS:
            default = LineSettings(dongles.BAUD.get(self.dongle, default.baud), 8, "N", 1)
        if self.protocol == TIC and self.mode == tic.STANDARD and self.baud is None:
            default = LineSettings(tic.BAUDRATE[tic.STANDARD], 7, "E", 1)
        return LineSettings(
            self.baud if self.baud is not None else default.baud,
            self.bytesize if self.bytesize is not None else default.bytesize,
            self.parity if self.parity is not None else default.parity,
            self.stopbits if self.stopbits is not None else default.stopbits,
        )

    @property
    def tic_mode(self) -> str | None:
        """The TIC mode: as configured, else from the speed (9600: standard)."""
        if self.mode is not None:
            return self.mode
        if self.baud == tic.BAUDRATE[tic.STANDARD]:
            return tic.STANDARD
        if self.baud is None or self.baud == tic.BAUDRATE[tic.HISTORIQUE]:
            return tic.HISTORIQUE
        return None

    @property
    def silence(self) -> float:
        if self.silence_timeout is not None:
            return self.silence_timeout
        return DEFAULT_SILENCE.get(self.protocol, 30.0)

    @classmethod
    def from_values(cls, t: Mapping[str, Any]) -> SerialPortConfig:
        """From a `[[serial]]` table the schema checked and filled in."""
        return cls(
            path=t["path"],
            protocol=t["protocol"],
            devices=tuple(DeviceConfig.from_values(d) for d in t["devices"]),
            baud=t["baud"],
            bytesize=t["bytesize"],
            parity=t["parity"],
            stopbits=t["stopbits"],
            mode=t["mode"],
            name=t["name"],
            response_timeout=t["response_timeout"],
            silence_timeout=t["silence_timeout"],
            reconnect_min=t["reconnect_min"],
            reconnect_max=t["reconnect_max"],
            wake=t["wake"],
            echo=t["echo"],
            dongle=t["dongle"],
            link_mode=t["link_mode"],
            rssi=t["rssi"],
        )

    @classmethod
    def from_mapping(cls, data: Mapping[str, object], where: str = "serial") -> SerialPortConfig:
        """Check configuration data (a TOML table) with the schema and build; the error
        names the first wrong field (`where.devices[0].address`)."""
        values, issues = settings.resolve_table("serial", dict(data), where)
        if issues:
            raise SerialConfigError(issues[0].path, issues[0].message)
        return cls.from_values(values)

    def snippet(self) -> str:
        """This configuration as a TOML table to paste into the gateway configuration."""
        return _snippet(self)


def sdi12_command(text: str, where: str) -> tuple[bool, bool, int]:
    """(concurrent, crc, index) of M, MC, C, CC, M1..M9, MC1..MC9, C1.., CC1.."""
    try:
        return rules.sdi12_command(text)
    except ValueError as e:
        raise SerialConfigError(where, str(e)) from e


MbusSelection = tuple[str, str | None, int | None, int | None]


# -- snippets ----------------------------------------------------------------------------


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _snippet(config: SerialPortConfig) -> str:
    return config_snippet(
        config.path,
        config.protocol,
        config.line,
        config.tic_mode if config.protocol == TIC else None,
        config.devices,
        dongle=config.dongle if config.protocol == WMBUS else None,
    )


def _geometry_lines(device: DeviceConfig) -> list[str]:
    """The bin geometry a `fill` percentage needs; the probe cannot know it, so it is
    written commented out with what to measure, unless the device already has it."""
    if device.empty_mm is not None:
        out = [f"empty_mm = {device.empty_mm:g}"]
        if device.full_mm is not None:
            out.append(f"full_mm = {device.full_mm:g}")
        return out
    return [
        "# bin geometry, for a fill percentage: measure, then uncomment",
        "# empty_mm = 1100   # sensor to the empty bin's floor: 0 % full",
        "# full_mm = 250     # sensor to the contents when full: 100 % full",
    ]


def config_snippet(
    path: str,
    protocol: str,
    line: LineSettings,
    mode: str | None,
    devices: Sequence[DeviceConfig],
    dongle: str | None = None,
) -> str:
    """A ``[[serial]]`` TOML table for the gateway configuration. Not validated: a Modbus
    device whose register map is unknown gets a placeholder to fill in."""
    lines = ["[[serial]]", f"path = {_toml(path)}", f"protocol = {_toml(protocol)}"]
    if protocol == TIC and mode is not None:
        lines.append(f"mode = {_toml(mode)}")
    if protocol == WMBUS and dongle is not None:
        lines.append(f"dongle = {_toml(dongle)}")
    lines += [
        f"baud = {line.baud}",
        f"bytesize = {line.bytesize}",
        f'parity = "{line.parity}"',
        f"stopbits = {line.stopbits}",
    ]
    for device in devices:
        lines += ["", "[[serial.devices]]", f"sensor = {_toml(device.sensor)}"]
        if device.address is not None:
            lines.append(f"address = {_toml(device.address)}")
        if isinstance(device.register_map, str):
            lines.append(f"map = {_toml(device.register_map)}")
        elif protocol == MODBUS and device.register_map is None:
            lines.append('map = "CHANGE-ME"  # no known register map answered: describe it')
        if device.model is not None:
            lines.append(f"model = {_toml(device.model)}")
        if device.passive:
            lines.append("passive = true")
        if device.duty_cycle is not None:
            lines.append(f"duty_cycle = {device.duty_cycle}  # minutes: works 30 s, then sleeps")
        if device.datum is not None:
            lines.append(f"datum = {_toml(device.datum)}")
        elif device.model in level.MODELS or device.register_map in level.MODELS:
            lines.append("# datum = 0.0  # m above the reference datum: gives a `level` reading")
        if protocol == ULTRASONIC:
            lines += _geometry_lines(device)
        if protocol == WMBUS:  # the key is a secret: never written out
            lines.append('# key = "..."   # the meter\'s AES key (32 hex digits) if it encrypts')
        if protocol == SDI12:
            lines.append(f"measurement = {_toml(device.measurement)}")
            if device.names:
                lines.append(f"names = {_toml(device.names)}")
        lines.append(f"interval = {_toml(device.interval)}")
    return "\n".join(lines) + "\n"


__all__ = [
    "DEFAULT_LINES",
    "LINK_MODES",
    "MBUS",
    "MODBUS",
    "NMEA",
    "PARITIES",
    "PMS",
    "PROTOCOLS",
    "SDI12",
    "SDS011",
    "SINGLE_DEVICE",
    "SPS30",
    "STREAMS",
    "TIC",
    "ULTRASONIC",
    "WAKE_METHODS",
    "WMBUS",
    "DeviceConfig",
    "LineSettings",
    "MbusSelection",
    "SerialConfigError",
    "SerialError",
    "SerialPortConfig",
    "config_snippet",
    "mbus_selection",
    "sdi12_command",
    "wmbus_meter",
]

"""Typed configuration of a serial port and the devices on it.

Plain frozen dataclasses: the daemon builds them from its configuration file
(`SerialPortConfig.from_mapping` takes the mapping a TOML or YAML table gives and names the
field in every error), the probe suggests them (`SerialPortConfig.snippet`), tests build them
directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from edge.errors import EdgeError
from protocols import level, modbus, pms, sdi12, sds011, sps30, tic, ultrasonic
from protocols.errors import LocalProtocolError
from protocols.wmbus import dongles

TIC: Final = "tic"
MODBUS: Final = "modbus"
MBUS: Final = "mbus"
SDI12: Final = "sdi12"
ULTRASONIC: Final = "ultrasonic"
NMEA: Final = "nmea"
WMBUS: Final = "wmbus"
PMS: Final = "pms"
SDS011: Final = "sds011"
SPS30: Final = "sps30"
PROTOCOLS: Final = (TIC, MODBUS, MBUS, SDI12, ULTRASONIC, NMEA, WMBUS, PMS, SDS011, SPS30)
STREAMS: Final = (TIC, ULTRASONIC, NMEA, WMBUS)  # passive: the device talks, we listen
SINGLE_DEVICE: Final = (TIC, ULTRASONIC, PMS, SDS011, SPS30)  # one device per port
# Radio modes a wireless M-Bus dongle can be set to listen in.
LINK_MODES: Final = ("t1c1", "t1", "c1", "s1")

PARITIES: Final = ("N", "E", "O")
WAKE_METHODS: Final = ("auto", "break", "nul")


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

    def __post_init__(self) -> None:
        if not isinstance(self.baud, int) or isinstance(self.baud, bool) or self.baud <= 0:
            raise SerialConfigError("baud", f"a positive integer, not {self.baud!r}")
        if self.bytesize not in (7, 8):
            raise SerialConfigError("bytesize", f"7 or 8, not {self.bytesize!r}")
        if self.parity not in PARITIES:
            raise SerialConfigError("parity", f"one of N, E, O, not {self.parity!r}")
        if self.stopbits not in (1, 2):
            raise SerialConfigError("stopbits", f"1 or 2, not {self.stopbits!r}")

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


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    """One sensor on a port.

    - `sensor`: the stable, human-readable sensor id its readings carry.
    - `address`: Modbus 1..247; M-Bus primary 0..250 or secondary (8 hex digits: the
      identification; or 16: identification, manufacturer, version, medium, as libmbus
      prints them; F for any digit);
      SDI-12 one character; NMEA an optional talker filter ("II", "GP"); None otherwise.
    - `interval`: masters poll every `interval` seconds; passive streams hand over at most
      one frame's readings per `interval` (0: every frame).
    - `register_map`: Modbus map name (``sdm630``, ``soil``...) or a map built from
      configuration (`protocols.modbus.RegisterMap.from_dict`).
    - `model`, `empty_mm`, `full_mm`: ultrasonic model and bin geometry.
    - `measurement`: SDI-12 command to start a measurement: M, MC, C, CC, M1..M9...
    - `names`: SDI-12 value names and units, ``"moisture:%,temperature:Cel"``.
    - `max_telegrams`: M-Bus telegrams read per poll when the meter says more follow.
    - `key`: wireless M-Bus: the meter's AES-128 key (16 bytes; 32 hex digits in the
      configuration file). A secret: never in a repr, a log, a snippet or a report.
      Wireless M-Bus `address` is the meter's id (8 digits) or manufacturer and id
      (``DME-12345678``).
    - `passive`, `sleep`: PMS passive mode (read every `interval`), and sleeping between
      reads (woken `pms.WARMUP` seconds before each read) to spare its laser and fan.
    - `duty_cycle`: SDS011 working period in minutes (0: continuous; 1..30: the sensor
      works 30 s then sleeps), set when the port opens; None leaves the sensor as it is.
    - `datum`, `level_from`, `density`: water level above a reference datum (m) from a
      Modbus or SDI-12 level transmitter (`protocols.level`); `level_from` defaults to the
      model's (`distance`, `depth`, `pressure`). `model` names a level transmitter
      (`fmr20`, `keller30`, `ott_pls`, `vegapuls_c21`): its register map or SDI-12 names.
    """

    sensor: str
    address: int | str | None = None
    interval: float = 10.0
    register_map: str | modbus.RegisterMap | None = None
    model: str | None = None
    empty_mm: float | None = None
    full_mm: float | None = None
    measurement: str = "M"
    names: str | None = None
    max_telegrams: int = 8
    key: bytes | None = field(default=None, repr=False)
    passive: bool = False
    sleep: bool = False
    duty_cycle: int | None = None
    datum: float | None = None
    level_from: str | None = None
    density: float = level.FRESH_WATER

    def resolved_map(self) -> modbus.RegisterMap:
        if isinstance(self.register_map, modbus.RegisterMap):
            return self.register_map
        if self.register_map is None and self.model in level.MODELS:
            bus, how, _, _ = level.MODELS[self.model]
            if bus == MODBUS and isinstance(how, str):
                return modbus.get_map(how)
        if self.register_map is None:
            raise SerialConfigError("register_map", "a Modbus device needs a register map")
        try:
            return modbus.get_map(self.register_map)
        except LocalProtocolError as e:
            raise SerialConfigError("register_map", str(e)) from e

    def sdi12_names(self) -> str | None:
        """The SDI-12 value names: as configured, else the level model's."""
        if self.names is not None or self.model not in level.MODELS:
            return self.names
        bus, how, _, _ = level.MODELS[self.model]
        if bus == SDI12 and isinstance(how, tuple):
            return str(how[1])
        return None

    def level_datum(self) -> level.Datum | None:
        """The datum that turns this device's readings into a `level` (None: no datum)."""
        if self.datum is None:
            return None
        source = self.level_from
        if source is None:
            name = self.model
            if name is None and isinstance(self.register_map, str):
                name = self.register_map
            if name in level.MODELS:
                source = level.MODELS[name][2]
        if source is None:
            raise SerialConfigError(
                "level_from", "distance, depth or pressure (no known level model says which)"
            )
        try:
            return level.Datum(self.datum, source, self.density)
        except LocalProtocolError as e:
            raise SerialConfigError("datum", str(e)) from e

    def geometry(self) -> ultrasonic.BinGeometry | None:
        if self.empty_mm is None:
            return None
        full = self.full_mm
        if full is None:
            full = ultrasonic.blind_zone_mm(self.model) if self.model else 0
        try:
            return ultrasonic.BinGeometry(self.empty_mm, full)
        except LocalProtocolError as e:
            raise SerialConfigError("empty_mm", str(e)) from e


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
    response_timeout: float = 1.0
    silence_timeout: float | None = None
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    wake: str = "auto"
    echo: bool = False
    dongle: str = dongles.IM871A
    link_mode: str = "t1c1"
    rssi: bool = True

    def __post_init__(self) -> None:
        if not self.path:
            raise SerialConfigError("path", "empty")
        if self.protocol not in PROTOCOLS:
            raise SerialConfigError(
                "protocol", f"one of {', '.join(PROTOCOLS)}, not {self.protocol!r}"
            )
        if self.mode is not None and self.protocol == TIC and self.mode not in tic.MODES:
            raise SerialConfigError("mode", f"historique or standard, not {self.mode!r}")
        if self.protocol == WMBUS:
            if self.dongle not in dongles.DONGLES:
                raise SerialConfigError(
                    "dongle", f"one of {', '.join(dongles.DONGLES)}, not {self.dongle!r}"
                )
            if self.link_mode not in LINK_MODES:
                raise SerialConfigError(
                    "link_mode", f"one of {', '.join(LINK_MODES)}, not {self.link_mode!r}"
                )
        if self.wake not in WAKE_METHODS:
            raise SerialConfigError("wake", f"one of {', '.join(WAKE_METHODS)}, not {self.wake!r}")
        for label, value in (
            ("response_timeout", self.response_timeout),
            ("reconnect_min", self.reconnect_min),
            ("reconnect_max", self.reconnect_max),
        ):
            if not value > 0:
                raise SerialConfigError(label, f"a positive number of seconds, not {value!r}")
        if self.silence_timeout is not None and not self.silence_timeout > 0:
            raise SerialConfigError("silence_timeout", "a positive number of seconds")
        if not self.devices:
            raise SerialConfigError("devices", "at least one device")
        if self.protocol in SINGLE_DEVICE and len(self.devices) != 1:
            raise SerialConfigError("devices", f"a {self.protocol} port carries exactly one device")
        self.line  # noqa: B018 - validates the line settings
        seen: set[object] = set()
        for i, device in enumerate(self.devices):
            _check_device(self.protocol, device, f"devices[{i}]")
            key = device.address if self.protocol in (MODBUS, MBUS, SDI12, WMBUS) else device.sensor
            if self.protocol == WMBUS and isinstance(key, str):
                key = key.upper().rpartition("-")[2]  # one meter id once, with or without MAN-
            if key in seen:
                raise SerialConfigError(f"devices[{i}].address", f"{key!r} twice on one port")
            seen.add(key)

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
    def from_mapping(cls, data: Mapping[str, object], where: str = "serial") -> SerialPortConfig:
        """Build from configuration data (a TOML/YAML table); errors name the field."""
        return _port_from_mapping(data, where)

    def snippet(self) -> str:
        """This configuration as a TOML table to paste into the gateway configuration."""
        return _snippet(self)


def _check_device(protocol: str, device: DeviceConfig, where: str) -> None:
    if not isinstance(device.sensor, str) or not device.sensor:
        raise SerialConfigError(f"{where}.sensor", "a non-empty sensor id")
    if not device.interval >= 0:
        raise SerialConfigError(f"{where}.interval", "a number of seconds >= 0")
    address = device.address
    if protocol in (MODBUS, SDI12) and device.model is not None:
        if device.model not in level.MODELS:
            raise SerialConfigError(
                f"{where}.model", f"a level transmitter: {', '.join(sorted(level.MODELS))}"
            )
        if level.MODELS[device.model][0] != protocol:
            raise SerialConfigError(
                f"{where}.model", f"{device.model} is a {level.MODELS[device.model][0]} device"
            )
    if protocol in (MODBUS, MBUS, SDI12) and not device.interval > 0:
        raise SerialConfigError(f"{where}.interval", "a poll interval > 0 seconds")
    if protocol == MODBUS:
        if not isinstance(address, int) or isinstance(address, bool) or not 1 <= address <= 247:
            raise SerialConfigError(f"{where}.address", f"a Modbus address 1..247, not {address!r}")
        try:
            device.resolved_map()
        except SerialConfigError as e:
            raise SerialConfigError(f"{where}.{e.field}", e.message) from e
    elif protocol == MBUS:
        if isinstance(address, int) and not isinstance(address, bool):
            if not 0 <= address <= 250:
                raise SerialConfigError(f"{where}.address", "a primary address 0..250")
        elif isinstance(address, str):
            try:
                mbus_selection(address)
            except ValueError as e:
                raise SerialConfigError(f"{where}.address", str(e)) from e
        else:
            raise SerialConfigError(f"{where}.address", "an M-Bus primary or secondary address")
        if not 1 <= device.max_telegrams <= 32:
            raise SerialConfigError(f"{where}.max_telegrams", "1..32")
    elif protocol == SDI12:
        try:
            sdi12.acknowledge(address if isinstance(address, str) else "")
        except LocalProtocolError as e:
            raise SerialConfigError(f"{where}.address", f"an SDI-12 address: {e}") from e
        if address == "?":
            raise SerialConfigError(f"{where}.address", "'?' is not a sensor address")
        _sdi12_command(device.measurement, f"{where}.measurement")
        try:
            sdi12.parse_names(device.sdi12_names())
        except LocalProtocolError as e:
            raise SerialConfigError(f"{where}.names", str(e)) from e
    elif protocol == ULTRASONIC:
        if device.model is not None and device.model not in ultrasonic.MODELS:
            raise SerialConfigError(
                f"{where}.model", f"one of {', '.join(sorted(ultrasonic.MODELS))}"
            )
        try:
            device.geometry()
        except SerialConfigError as e:
            raise SerialConfigError(f"{where}.{e.field}", e.message) from e
    elif protocol == WMBUS:
        if not isinstance(address, str) or wmbus_meter(address) is None:
            raise SerialConfigError(
                f"{where}.address", "a meter id: 8 digits, or MAN-12345678 (manufacturer and id)"
            )
        if device.key is not None and len(device.key) != 16:
            raise SerialConfigError(f"{where}.key", "an AES-128 key: 32 hex digits")
    elif protocol == NMEA and (
        address is not None and (not isinstance(address, str) or len(address) not in (1, 2))
    ):
        raise SerialConfigError(f"{where}.address", "a talker id such as II or GP")
    elif protocol == PMS:
        if device.model is not None and device.model not in pms.MODELS:
            raise SerialConfigError(f"{where}.model", f"one of {', '.join(sorted(pms.MODELS))}")
        if device.sleep and not device.passive:
            raise SerialConfigError(f"{where}.sleep", "sleeping between reads needs passive = true")
        if device.passive and not device.interval > 0:
            raise SerialConfigError(f"{where}.interval", "a read interval > 0 seconds")
        if device.sleep and device.interval < 2 * pms.WARMUP:
            raise SerialConfigError(
                f"{where}.interval",
                f"at least {2 * pms.WARMUP:g} s with sleep = true (the fan needs {pms.WARMUP:g} s"
                " after waking)",
            )
    elif protocol == SPS30 and not device.interval >= 1:
        raise SerialConfigError(f"{where}.interval", "at least 1 s (a new value every second)")
    if device.duty_cycle is not None and (
        protocol != SDS011 or not 0 <= device.duty_cycle <= sds011.MAX_PERIOD
    ):
        raise SerialConfigError(
            f"{where}.duty_cycle",
            "SDS011 only: the working period, 0..30 minutes"
            if protocol == SDS011
            else "SDS011 only (the working period)",
        )
    if (device.passive or device.sleep) and protocol != PMS:
        raise SerialConfigError(f"{where}.passive", "PMS sensors only")
    if protocol not in (MODBUS, SDI12):
        if device.datum is not None or device.level_from is not None:
            raise SerialConfigError(
                f"{where}.datum", "a level datum needs a Modbus or SDI-12 level transmitter"
            )
        if device.model in level.MODELS:
            raise SerialConfigError(
                f"{where}.model", f"{device.model} is a {level.MODELS[device.model][0]} device"
            )
    else:
        if device.level_from is not None and device.level_from not in level.SOURCES:
            raise SerialConfigError(f"{where}.level_from", f"one of {', '.join(level.SOURCES)}")
        if device.level_from is not None and device.datum is None:
            raise SerialConfigError(f"{where}.datum", "level_from needs a datum")
        try:
            datum = device.level_datum()
        except SerialConfigError as e:
            raise SerialConfigError(f"{where}.{e.field}", e.message) from e
        given = _measured(protocol, device) if datum is not None else None
        if datum is not None and given is not None and datum.source not in given:
            field = "level_from" if device.level_from is not None else "datum"
            raise SerialConfigError(
                f"{where}.{field}",
                f"the level comes from a {datum.source} reading, which this device does not "
                f"give (it gives {', '.join(given) or 'value1, value2... : set names'})",
            )


def _measured(protocol: str, device: DeviceConfig) -> list[str] | None:
    """The reading names a Modbus or SDI-12 device gives (None: not known here)."""
    if protocol == MODBUS:
        return [register.name for register in device.resolved_map().registers]
    if protocol == SDI12:
        try:
            return [name for name, _ in sdi12.parse_names(device.sdi12_names())]
        except LocalProtocolError:
            return None
    return None


def wmbus_meter(address: str) -> tuple[str | None, str] | None:
    """(manufacturer or None, 8-digit id) of a wireless M-Bus meter address, or None."""
    text = address.strip().upper()
    manufacturer, _, ident = text.rpartition("-")
    if manufacturer and (len(manufacturer) != 3 or not manufacturer.isalpha()):
        return None
    if len(ident) != 8 or any(c not in "0123456789ABCDEF" for c in ident):
        return None
    return (manufacturer or None), ident


MbusSelection = tuple[str, str | None, int | None, int | None]


def mbus_selection(address: str) -> MbusSelection:
    """A secondary address as `protocols.mbus.select_secondary` takes it.

    ``IIIIIIII`` (the 8-digit identification, 'F' for wildcard digits) or the 16 hex digits
    libmbus and most tools print: identification, manufacturer (4 hex digits, FFFF for any),
    version and medium (2 each, FF for any).
    """
    text = address.upper()
    if len(text) not in (8, 16) or any(c not in "0123456789ABCDEF" for c in text):
        raise ValueError("a secondary address is 8 or 16 hex digits")
    ident = text[:8]
    if any(c not in "0123456789F" for c in ident):
        raise ValueError("the identification (first 8 digits) is decimal, F for any digit")
    if len(text) == 8:
        return ident, None, None, None
    man = int(text[8:12], 16)
    manufacturer = None
    if man != 0xFFFF:
        letters = "".join(chr(((man >> shift) & 0x1F) + 64) for shift in (10, 5, 0))
        if not letters.isalpha() or not letters.isupper():
            raise ValueError(f"manufacturer {text[8:12]} is not three letters")
        manufacturer = letters
    version = int(text[12:14], 16)
    medium = int(text[14:16], 16)
    return (
        ident,
        manufacturer,
        None if version == 0xFF else version,
        None if medium == 0xFF else medium,
    )


def _sdi12_command(text: str, where: str) -> tuple[bool, bool, int]:
    """(concurrent, crc, index) of M, MC, C, CC, M1..M9, MC1..MC9, C1.., CC1.."""
    body = text.upper()
    index = 0
    if body[-1:].isdigit():
        index = int(body[-1])
        body = body[:-1]
    if body not in ("M", "MC", "C", "CC"):
        raise SerialConfigError(where, f"M, MC, C or CC with an optional digit, not {text!r}")
    return body[0] == "C", body.endswith("C") and len(body) == 2, index


sdi12_command = _sdi12_command


# -- from configuration data -------------------------------------------------------------

_PORT_KEYS = {
    "path",
    "protocol",
    "devices",
    "baud",
    "bytesize",
    "parity",
    "stopbits",
    "mode",
    "name",
    "response_timeout",
    "silence_timeout",
    "reconnect_min",
    "reconnect_max",
    "wake",
    "echo",
    "dongle",
    "link_mode",
    "rssi",
}
_DEVICE_KEYS = {
    "sensor",
    "address",
    "interval",
    "map",
    "register_map",
    "model",
    "empty_mm",
    "full_mm",
    "measurement",
    "names",
    "max_telegrams",
    "key",
    "passive",
    "sleep",
    "duty_cycle",
    "datum",
    "level_from",
    "density",
}


def _get(data: Mapping[str, object], key: str, kind: type | tuple[type, ...], where: str) -> object:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) and kind is not bool:
        raise SerialConfigError(f"{where}.{key}", f"expected {_kind_name(kind)}, got {value!r}")
    if not isinstance(value, kind):
        raise SerialConfigError(f"{where}.{key}", f"expected {_kind_name(kind)}, got {value!r}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _number(data: Mapping[str, object], key: str, where: str, default: float) -> float:
    value = _get(data, key, (int, float), where)
    return default if value is None else float(value)  # type: ignore[arg-type]


def _optional_int(data: Mapping[str, object], key: str, where: str) -> int | None:
    value = _get(data, key, int, where)
    return value if isinstance(value, int) else None


def _optional_str(data: Mapping[str, object], key: str, where: str) -> str | None:
    value = _get(data, key, str, where)
    return value if isinstance(value, str) else None


def _device_from_mapping(data: object, where: str) -> DeviceConfig:
    if not isinstance(data, Mapping):
        raise SerialConfigError(where, "a table")
    unknown = set(data) - _DEVICE_KEYS
    if unknown:
        raise SerialConfigError(f"{where}.{sorted(unknown)[0]}", "unknown key")
    sensor = _optional_str(data, "sensor", where)
    if sensor is None:
        raise SerialConfigError(f"{where}.sensor", "missing")
    address = _get(data, "address", (int, str), where)
    register_map: str | modbus.RegisterMap | None = None
    raw_map = data.get("map", data.get("register_map"))
    if isinstance(raw_map, str):
        register_map = raw_map
    elif isinstance(raw_map, Mapping):
        try:
            register_map = modbus.RegisterMap.from_dict(dict(raw_map))
        except LocalProtocolError as e:
            raise SerialConfigError(f"{where}.map", str(e)) from e
    elif raw_map is not None:
        raise SerialConfigError(f"{where}.map", "a map name or a register map table")
    key: bytes | None = None
    key_text = data.get("key")
    if key_text is not None:
        if not isinstance(key_text, str):
            raise SerialConfigError(f"{where}.key", "an AES-128 key: 32 hex digits")
        try:
            key = bytes.fromhex(key_text.replace(" ", ""))
        except ValueError:
            key = b""  # the key is a secret: the error never echoes it
        if len(key) != 16:
            raise SerialConfigError(f"{where}.key", "an AES-128 key: 32 hex digits")
    empty = _get(data, "empty_mm", (int, float), where)
    full = _get(data, "full_mm", (int, float), where)
    datum = _get(data, "datum", (int, float), where)
    density = _get(data, "density", (int, float), where)
    return DeviceConfig(
        sensor=sensor,
        address=address if isinstance(address, (int, str)) else None,
        interval=_number(data, "interval", where, 10.0),
        register_map=register_map,
        model=_optional_str(data, "model", where),
        empty_mm=float(empty) if isinstance(empty, (int, float)) else None,
        full_mm=float(full) if isinstance(full, (int, float)) else None,
        measurement=_optional_str(data, "measurement", where) or "M",
        names=_optional_str(data, "names", where),
        max_telegrams=_optional_int(data, "max_telegrams", where) or 8,
        key=key,
        passive=bool(_get(data, "passive", bool, where)),
        sleep=bool(_get(data, "sleep", bool, where)),
        duty_cycle=_optional_int(data, "duty_cycle", where),
        datum=float(datum) if isinstance(datum, (int, float)) else None,
        level_from=_optional_str(data, "level_from", where),
        density=float(density) if isinstance(density, (int, float)) else level.FRESH_WATER,
    )


def _port_from_mapping(data: Mapping[str, object], where: str) -> SerialPortConfig:
    unknown = set(data) - _PORT_KEYS
    if unknown:
        raise SerialConfigError(f"{where}.{sorted(unknown)[0]}", "unknown key")
    path = _optional_str(data, "path", where)
    protocol = _optional_str(data, "protocol", where)
    if path is None:
        raise SerialConfigError(f"{where}.path", "missing")
    if protocol is None:
        raise SerialConfigError(f"{where}.protocol", "missing")
    raw_devices = data.get("devices")
    if not isinstance(raw_devices, (list, tuple)):
        raise SerialConfigError(f"{where}.devices", "a list of device tables")
    devices = tuple(
        _device_from_mapping(d, f"{where}.devices[{i}]") for i, d in enumerate(raw_devices)
    )
    echo = _get(data, "echo", bool, where)
    rssi = _get(data, "rssi", bool, where)
    try:
        return SerialPortConfig(
            path=path,
            protocol=protocol,
            devices=devices,
            baud=_optional_int(data, "baud", where),
            bytesize=_optional_int(data, "bytesize", where),
            parity=_optional_str(data, "parity", where),
            stopbits=_optional_int(data, "stopbits", where),
            mode=_optional_str(data, "mode", where),
            name=_optional_str(data, "name", where),
            response_timeout=_number(data, "response_timeout", where, 1.0),
            silence_timeout=(
                _number(data, "silence_timeout", where, 0.0)
                if data.get("silence_timeout") is not None
                else None
            ),
            reconnect_min=_number(data, "reconnect_min", where, 1.0),
            reconnect_max=_number(data, "reconnect_max", where, 60.0),
            wake=_optional_str(data, "wake", where) or "auto",
            echo=bool(echo),
            dongle=_optional_str(data, "dongle", where) or dongles.IM871A,
            link_mode=_optional_str(data, "link_mode", where) or "t1c1",
            rssi=True if rssi is None else bool(rssi),
        )
    except SerialConfigError as e:
        raise SerialConfigError(f"{where}.{e.field}", e.message) from e


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
    "MBUS",
    "MODBUS",
    "NMEA",
    "PMS",
    "PROTOCOLS",
    "SDI12",
    "SDS011",
    "SINGLE_DEVICE",
    "SPS30",
    "STREAMS",
    "TIC",
    "ULTRASONIC",
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

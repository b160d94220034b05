"""What a `[[serial]]` port and its devices must satisfy beyond each field's type: the rules
that read the protocol (a Modbus address is 1..247, an SDI-12 one a character, a level datum
needs a level transmitter...). They read only `protocols` (the codecs' own tables: register
maps, models, limits), so the hub checks them exactly as the gateway does.

The helpers that turn settings into codec objects (`register_map`, `level_datum`,
`bin_geometry`, `sdi12_names`) are the gateway's too (edge.sources.serial's `DeviceConfig`
calls them): one reading of a setting, not two.
"""

from protocols import level, modbus, pms, sdi12, sds011, tic, ultrasonic
from protocols.errors import LocalProtocolError
from protocols.settings._types import INVALID, Walk, show
from protocols.wmbus import dongles

TIC = "tic"
MODBUS = "modbus"
MBUS = "mbus"
SDI12 = "sdi12"
ULTRASONIC = "ultrasonic"
NMEA = "nmea"
WMBUS = "wmbus"
PMS = "pms"
SDS011 = "sds011"
SPS30 = "sps30"
PROTOCOLS = (TIC, MODBUS, MBUS, SDI12, ULTRASONIC, NMEA, WMBUS, PMS, SDS011, SPS30)
STREAMS = (TIC, ULTRASONIC, NMEA, WMBUS)  # passive: the device talks, we listen
SINGLE_DEVICE = (TIC, ULTRASONIC, PMS, SDS011, SPS30)  # one device per port
LINK_MODES = ("t1c1", "t1", "c1", "s1")  # radio modes a wireless M-Bus dongle listens in
PARITIES = ("N", "E", "O")
WAKE_METHODS = ("auto", "break", "nul")
DONGLES = dongles.DONGLES
TIC_MODES = tic.MODES


class SettingError(Exception):
    """A setting cannot become a codec object. `field` names it (``register_map``)."""

    def __init__(self, field: "str", message: "str") -> None:
        Exception.__init__(self, "%s: %s" % (field, message))
        self.field = field
        self.message = message


# -- settings -> codec objects (the gateway's sources use them too) ----------------------


def register_map(map_: "object", model: "str | None") -> "modbus.RegisterMap":
    """The Modbus register map of a device: its `map` (a name, a table, or a map already
    built), else its level model's. SettingError("register_map", ...) otherwise."""
    if isinstance(map_, modbus.RegisterMap):
        return map_
    if map_ is None and model in level.MODELS:
        bus, how, _, _ = level.MODELS[model]
        if bus == MODBUS and isinstance(how, str):
            return modbus.get_map(how)
    if map_ is None:
        raise SettingError("register_map", "a Modbus device needs a register map")
    try:
        if isinstance(map_, dict):
            return modbus.RegisterMap.from_dict(dict(map_))
        return modbus.get_map(map_)  # type: ignore[arg-type]
    except LocalProtocolError as e:
        raise SettingError("register_map", str(e)) from e


def sdi12_names(names: "str | None", model: "str | None") -> "str | None":
    """The SDI-12 value names: as configured, else the level model's."""
    if names is not None or model not in level.MODELS:
        return names
    bus, how, _, _ = level.MODELS[model]
    if bus == SDI12 and isinstance(how, tuple):
        return str(how[1])
    return None


def level_datum(
    datum: "float | None",
    level_from: "str | None",
    density: "float",
    model: "str | None",
    map_name: "object",
) -> "level.Datum | None":
    """The datum that turns a device's readings into a `level` (None: no datum)."""
    if datum is None:
        return None
    source = level_from
    if source is None:
        name = model
        if name is None and isinstance(map_name, str):
            name = map_name
        if name in level.MODELS:
            source = level.MODELS[name][2]
    if source is None:
        raise SettingError(
            "level_from", "distance, depth or pressure (no known level model says which)"
        )
    try:
        return level.Datum(datum, source, density)
    except LocalProtocolError as e:
        raise SettingError("datum", str(e)) from e


def bin_geometry(
    empty_mm: "float | None", full_mm: "float | None", model: "str | None"
) -> "ultrasonic.BinGeometry | None":
    if empty_mm is None:
        return None
    full = full_mm
    if full is None:
        full = ultrasonic.blind_zone_mm(model) if model else 0
    try:
        return ultrasonic.BinGeometry(empty_mm, full)
    except LocalProtocolError as e:
        raise SettingError("empty_mm", str(e)) from e


def wmbus_meter(address: "str") -> "tuple[str | None, str] | None":
    """(manufacturer or None, 8-digit id) of a wireless M-Bus meter address, or None."""
    text = address.strip().upper()
    manufacturer, _, ident = text.rpartition("-")
    if manufacturer and (len(manufacturer) != 3 or not manufacturer.isalpha()):
        return None
    if len(ident) != 8 or any(c not in "0123456789ABCDEF" for c in ident):
        return None
    return (manufacturer or None), ident


def mbus_selection(address: "str") -> "tuple[str, str | None, int | None, int | None]":
    """A secondary address as `protocols.mbus.select_secondary` takes it.

    ``IIIIIIII`` (the 8-digit identification, 'F' for wildcard digits) or the 16 hex digits
    libmbus and most tools print: identification, manufacturer (4 hex digits, FFFF for any),
    version and medium (2 each, FF for any). ValueError otherwise.
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
            raise ValueError("manufacturer %s is not three letters" % text[8:12])
        manufacturer = letters
    version = int(text[12:14], 16)
    medium = int(text[14:16], 16)
    return (
        ident,
        manufacturer,
        None if version == 0xFF else version,
        None if medium == 0xFF else medium,
    )


def sdi12_command(text: "str") -> "tuple[bool, bool, int]":
    """(concurrent, crc, index) of M, MC, C, CC, M1..M9, MC1..MC9, C1.., CC1..;
    ValueError otherwise."""
    body = text.upper()
    index = 0
    if body[-1:].isdigit():
        index = int(body[-1])
        body = body[:-1]
    if body not in ("M", "MC", "C", "CC"):
        raise ValueError("M, MC, C or CC with an optional digit, not %r" % text)
    return body[0] == "C", body.endswith("C") and len(body) == 2, index


def key_bytes(text: "str") -> "bytes | None":
    """A wireless M-Bus AES-128 key from 32 hex digits (spaces allowed), None if not one.
    The key is a secret: callers never echo it."""
    try:
        key = bytes.fromhex(text.replace(" ", ""))
    except ValueError:
        return None
    return key if len(key) == 16 else None


# -- the rules ---------------------------------------------------------------------------


def port_rule(walk: "Walk", path: "str", port: "dict[str, object]") -> None:
    """A whole `[[serial]]` table: its devices for its protocol."""
    protocol = port.get("protocol")
    devices = port.get("devices")
    if protocol is INVALID or protocol is None or not isinstance(devices, list):
        return
    if not devices:
        walk.error(path + ".devices", "at least one device")
        return
    if protocol in SINGLE_DEVICE and len(devices) != 1:
        walk.error(path + ".devices", "a %s port carries exactly one device" % protocol)
        return
    seen = {}  # type: dict[object, int]
    for index, device in enumerate(devices):
        if not isinstance(device, dict):
            continue
        where = "%s.devices[%d]" % (path, index)
        if device.get("map") is None:  # `register_map` is another name of `map`
            device["map"] = device.get("register_map")
        before = len(walk.issues)
        _device(walk, str(protocol), device, where)
        if len(walk.issues) > before:
            continue
        key = device.get("address") if protocol in (MODBUS, MBUS, SDI12, WMBUS) else None
        if protocol == WMBUS and isinstance(key, str):
            key = key.upper().rpartition("-")[2]  # one meter id once, with or without MAN-
        if protocol not in (MODBUS, MBUS, SDI12, WMBUS):
            key = device.get("sensor")
        if key in seen:
            walk.error(where + ".address", "%r twice on one port" % (key,))
        else:
            seen[key] = index


def _invalid(device: "dict[str, object]") -> "bool":
    return any(v is INVALID for v in device.values())


def _device(walk: "Walk", protocol: "str", d: "dict[str, object]", where: "str") -> None:
    if _invalid(d):
        return  # each wrong field is already named; the rules read valid fields only
    address = d["address"]
    interval = d["interval"]
    model = d["model"]
    if not isinstance(interval, float):
        return
    if isinstance(d["map"], dict):  # an inline map is built whatever the protocol
        try:
            register_map(d["map"], model)  # type: ignore[arg-type]
        except SettingError as e:
            walk.error(where + ".map", e.message)
            return
    if protocol in (MODBUS, SDI12) and model is not None:
        if model not in level.MODELS:
            walk.error(where + ".model", "a level transmitter: " + ", ".join(sorted(level.MODELS)))
            return
        if level.MODELS[model][0] != protocol:
            walk.error(where + ".model", "%s is a %s device" % (model, level.MODELS[model][0]))
            return
    if protocol in (MODBUS, MBUS, SDI12) and not interval > 0:
        walk.error(where + ".interval", "a poll interval > 0 seconds")
        return
    if protocol == MODBUS:
        if not isinstance(address, int) or not 1 <= address <= 247:
            walk.error(where + ".address", "a Modbus address 1..247, not %r" % (address,))
            return
        try:
            register_map(d["map"], model)  # type: ignore[arg-type]
        except SettingError as e:
            walk.error(where + ".map", e.message)
            return
    elif protocol == MBUS:
        if isinstance(address, int):
            if not 0 <= address <= 250:
                walk.error(where + ".address", "a primary address 0..250")
                return
        elif isinstance(address, str):
            try:
                mbus_selection(address)
            except ValueError as e:
                walk.error(where + ".address", str(e))
                return
        else:
            walk.error(where + ".address", "an M-Bus primary or secondary address")
            return
        telegrams = d["max_telegrams"]
        if not isinstance(telegrams, int) or not 1 <= telegrams <= 32:
            walk.error(where + ".max_telegrams", "1..32")
            return
    elif protocol == SDI12:
        try:
            sdi12.acknowledge(address if isinstance(address, str) else "")
        except LocalProtocolError as e:
            walk.error(where + ".address", "an SDI-12 address: %s" % e)
            return
        if address == "?":
            walk.error(where + ".address", "'?' is not a sensor address")
            return
        try:
            sdi12_command(str(d["measurement"]))
        except ValueError as e:
            walk.error(where + ".measurement", str(e))
            return
        try:
            sdi12.parse_names(sdi12_names(d["names"], model))  # type: ignore[arg-type]
        except LocalProtocolError as e:
            walk.error(where + ".names", str(e))
            return
    elif protocol == ULTRASONIC:
        if model is not None and model not in ultrasonic.MODELS:
            walk.error(where + ".model", "one of " + ", ".join(sorted(ultrasonic.MODELS)))
            return
        try:
            bin_geometry(d["empty_mm"], d["full_mm"], model)  # type: ignore[arg-type]
        except SettingError as e:
            walk.error(where + "." + e.field, e.message)
            return
    elif protocol == WMBUS:
        if not isinstance(address, str) or wmbus_meter(address) is None:
            walk.error(
                where + ".address", "a meter id: 8 digits, or MAN-12345678 (manufacturer and id)"
            )
            return
    elif protocol == NMEA and (
        address is not None and (not isinstance(address, str) or len(address) not in (1, 2))
    ):
        walk.error(where + ".address", "a talker id such as II or GP")
        return
    elif protocol == PMS:
        if model is not None and model not in pms.MODELS:
            walk.error(where + ".model", "one of " + ", ".join(sorted(pms.MODELS)))
            return
        if d["sleep"] and not d["passive"]:
            walk.error(where + ".sleep", "sleeping between reads needs passive = true")
            return
        if d["passive"] and not interval > 0:
            walk.error(where + ".interval", "a read interval > 0 seconds")
            return
        if d["sleep"] and interval < 2 * pms.WARMUP:
            walk.error(
                where + ".interval",
                "at least %g s with sleep = true (the fan needs %g s after waking)"
                % (2 * pms.WARMUP, pms.WARMUP),
            )
            return
    elif protocol == SPS30 and not interval >= 1:
        walk.error(where + ".interval", "at least 1 s (a new value every second)")
        return
    duty = d["duty_cycle"]
    if duty is not None and (
        protocol != SDS011 or not isinstance(duty, int) or not 0 <= duty <= sds011.MAX_PERIOD
    ):
        walk.error(
            where + ".duty_cycle",
            "SDS011 only: the working period, 0..30 minutes"
            if protocol == SDS011
            else "SDS011 only (the working period)",
        )
        return
    if (d["passive"] or d["sleep"]) and protocol != PMS:
        walk.error(where + ".passive", "PMS sensors only")
        return
    _level(walk, protocol, d, where)


def _level(walk: "Walk", protocol: "str", d: "dict[str, object]", where: "str") -> None:
    model = d["model"]
    if protocol not in (MODBUS, SDI12):
        if d["datum"] is not None or d["level_from"] is not None:
            walk.error(where + ".datum", "a level datum needs a Modbus or SDI-12 level transmitter")
        elif model in level.MODELS:
            walk.error(where + ".model", "%s is a %s device" % (model, level.MODELS[model][0]))
        return
    level_from = d["level_from"]
    if level_from is not None and level_from not in level.SOURCES:
        walk.error(where + ".level_from", "one of " + ", ".join(level.SOURCES))
        return
    if level_from is not None and d["datum"] is None:
        walk.error(where + ".datum", "level_from needs a datum")
        return
    try:
        datum = level_datum(d["datum"], level_from, d["density"], model, d["map"])  # type: ignore[arg-type]
    except SettingError as e:
        walk.error(where + "." + e.field, e.message)
        return
    if datum is None:
        return
    given = _measured(protocol, d)
    if given is not None and datum.source not in given:
        field = "level_from" if level_from is not None else "datum"
        walk.error(
            where + "." + field,
            "the level comes from a %s reading, which this device does not give (it gives %s)"
            % (datum.source, ", ".join(given) or "value1, value2... : set names"),
        )


def _measured(protocol: "str", d: "dict[str, object]") -> "list[str] | None":
    """The reading names a Modbus or SDI-12 device gives (None: not known here)."""
    if protocol == MODBUS:
        return [r.name for r in register_map(d["map"], d["model"]).registers]  # type: ignore[arg-type]
    if protocol == SDI12:
        try:
            return [name for name, _ in sdi12.parse_names(sdi12_names(d["names"], d["model"]))]  # type: ignore[arg-type]
        except LocalProtocolError:
            return None
    return None


def check_key(text: "str") -> "str | None":
    return None if key_bytes(text) is not None else "an AES-128 key: 32 hex digits"


def check_path_unique(walk: "Walk", path: "str", ports: "object") -> None:
    """Two `[[serial]]` tables for one port."""
    if not isinstance(ports, list):
        return
    seen = {}  # type: dict[str, str]
    for index, port in enumerate(ports):
        if not isinstance(port, dict) or not isinstance(port.get("path"), str):
            continue
        where = "%s[%d]" % (path, index)
        name = port["path"]
        if name in seen:
            walk.error(where + ".path", "%s is also %s" % (name, seen[name]))
        else:
            seen[name] = where


__all__ = [
    "DONGLES",
    "LINK_MODES",
    "PARITIES",
    "PROTOCOLS",
    "SINGLE_DEVICE",
    "STREAMS",
    "TIC_MODES",
    "WAKE_METHODS",
    "SettingError",
    "bin_geometry",
    "key_bytes",
    "level_datum",
    "mbus_selection",
    "port_rule",
    "register_map",
    "sdi12_command",
    "sdi12_names",
    "show",
    "wmbus_meter",
]

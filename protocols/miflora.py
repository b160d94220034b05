"""Xiaomi Mi Flora (HHCCJCY01): MiBeacon advertisements and the GATT reads.

MiBeacon service data (UUID 0xFE95), all little-endian::

    frame control (2) | product id (2) | frame counter (1) | [MAC, 6 bytes reversed]
    | [capability (1) [| IO capability (1)]] | objects: type (2), length (1), value...

Frame control: bit 3 encrypted, bit 4 MAC included, bit 5 capability included, bit 6
object included, bit 7 mesh, bits 12-15 the MiBeacon version (2..5 are in use). A Mi Flora
sends one object per advertisement (temperature, illuminance, moisture, conductivity or
battery, in turn), so a receiver merges them per MAC; `DeviceState` drops the repeats of
one advertisement (same frame counter). Objects carry their length, so unknown ones are
skipped (and listed), not fatal. Encrypted MiBeacons are ``unsupported`` (Mi Flora does
not encrypt; other Xiaomi devices do, with keys from the Xiaomi cloud).

GATT (the poller connects, writes `MODE_CHANGE` to handle 0x33, then reads):
- handle 0x35, 16 bytes: temperature s16 x0.1 °C, 1 unknown byte, illuminance u32 lx,
  moisture u8 %, conductivity u16 µS/cm, 6 unknown bytes (`decode_realtime`);
- handle 0x38: battery u8 %, one unknown byte, firmware version in ASCII (`decode_firmware`).

Units are SenML: Cel, lx, %, %RH, and conductivity in S/m (1 µS/cm = 0.0001 S/m).
"""

from protocols import _ble
from protocols._ble import (
    advertisement_service_data,
    fits,
    format_mac,
    hci_service_data,
    parse_mac,
    pow10,
    prefixed_service_data,
    sint_le,
    to_le,
    uint_le,
)
from protocols._typing import TYPE_CHECKING
from protocols.describe import result
from protocols.errors import (
    MALFORMED,
    OVERFLOW,
    TRUNCATED,
    UNSUPPORTED,
    LocalProtocolError,
    RemoteProtocolError,
)
from protocols.reading import Measurement

if TYPE_CHECKING:
    from typing import Union

    Number = Union[int, float]

UUID16 = 0xFE95
UUID_BYTES = b"\x95\xfe"  # as on air (little-endian)

FC_REQUEST_TIMING = 0x0001  # set by the Mi Flora; meaning varies with the version
FC_ENCRYPTED = 0x0008
FC_MAC_INCLUDED = 0x0010
FC_CAPABILITY_INCLUDED = 0x0020
FC_OBJECT_INCLUDED = 0x0040
FC_MESH = 0x0080
CAPABILITY_IO = 0x20  # an IO-capability byte follows the capability byte
MIBEACON_VERSIONS = (2, 3, 4, 5)

PRODUCT_MIFLORA = 0x0098
PRODUCTS = {
    0x0098: "HHCCJCY01 (Mi Flora)",
    0x015D: "HHCCPOT002 (Flower Pot)",
    0x03BC: "GCLS002 (Grow Care Garden)",
}

MAX_PAYLOAD = 254  # one AD structure at most

# MiBeacon object type -> (name, size, signed, power of ten, SenML unit); value = raw * pow10(power)
OBJECTS = {
    0x1004: ("temperature", 2, True, -1, "Cel"),
    0x1006: ("humidity", 2, False, -1, "%RH"),
    0x1007: ("illuminance", 3, False, 0, "lx"),
    0x1008: ("moisture", 1, False, 0, "%"),
    0x1009: ("conductivity", 2, False, -4, "S/m"),  # µS/cm
    0x100A: ("battery", 1, False, 0, "%"),
}
OBJECT_TEMPERATURE_HUMIDITY = 0x100D  # s16 x0.1 °C then u16 x0.1 %RH

# GATT (Mi Flora data service 0x1204).
DATA_SERVICE_UUID = "00001204-0000-1000-8000-00805f9b34fb"
MODE_CHANGE_CHAR_UUID = "00001a00-0000-1000-8000-00805f9b34fb"
REALTIME_CHAR_UUID = "00001a01-0000-1000-8000-00805f9b34fb"
FIRMWARE_CHAR_UUID = "00001a02-0000-1000-8000-00805f9b34fb"
HANDLE_NAME = 0x03
HANDLE_MODE_CHANGE = 0x33
HANDLE_REALTIME = 0x35
HANDLE_FIRMWARE = 0x38
MODE_CHANGE = b"\xa0\x1f"  # write to HANDLE_MODE_CHANGE before reading HANDLE_REALTIME
REALTIME_SIZE = 16
ROPOT_REALTIME_SIZE = 24  # HHCCPOT002: no light sensor, another layout

# describe() modes (options["source"], or options["map"] from `estran decode --map`).
SOURCE_MIBEACON = "mibeacon"
SOURCE_REALTIME = "gatt"
SOURCE_FIRMWARE = "firmware"


class MiBeacon:
    """A decoded MiBeacon advertisement."""

    __slots__ = (
        "capability",
        "encrypted",
        "frame_control",
        "frame_counter",
        "io_capability",
        "mac",
        "measurements",
        "product_id",
        "unknown_objects",
        "version",
    )

    def __init__(self, frame_control: "int", product_id: "int", frame_counter: "int") -> "None":
        self.frame_control = frame_control
        self.version = frame_control >> 12
        self.encrypted = bool(frame_control & FC_ENCRYPTED)
        self.product_id = product_id
        self.frame_counter = frame_counter
        self.mac = None  # type: str | None
        self.capability = None  # type: int | None
        self.io_capability = None  # type: int | None
        self.measurements = []  # type: list[Measurement]
        self.unknown_objects = []  # type: list[int]

    def fields(self) -> "dict[str, object]":
        f = {
            "source": SOURCE_MIBEACON,
            "frame_control": "0x%04x" % self.frame_control,
            "version": self.version,
            "encrypted": self.encrypted,
            "product_id": "0x%04x" % self.product_id,
            "product": PRODUCTS.get(self.product_id),
            "frame_counter": self.frame_counter,
            "mac": self.mac,
            "capability": None if self.capability is None else "0x%02x" % self.capability,
        }  # type: dict[str, object]
        if self.unknown_objects:
            f["unknown_objects"] = ["0x%04x" % t for t in self.unknown_objects]
        return f


class DeviceState:
    """Per-device (per MAC) memory: a Mi Flora repeats each advertisement several times
    with the same frame counter; `check` returns False for such a repeat."""

    __slots__ = ("frame_counter",)

    def __init__(self) -> "None":
        self.frame_counter = None  # type: int | None

    def check(self, beacon: "MiBeacon") -> "bool":
        new = beacon.frame_counter != self.frame_counter
        self.frame_counter = beacon.frame_counter
        return new


# -- helpers -------------------------------------------------------------------------------


def _scale(raw: "int", power: "int") -> "Number":
    # one division of exact integers: the nearest double to the decimal, no float noise
    return raw * pow10(power) if power >= 0 else raw / pow10(-power)


def _unscale(name: "str", value: "object", power: "int", size: "int", signed: "bool") -> "int":
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise LocalProtocolError("%s: expected a number, got %r" % (name, value))
    raw = round(value / pow10(power)) if power >= 0 else round(value * pow10(-power))
    if not fits(raw, size, signed):
        raise LocalProtocolError("%s: %r out of range" % (name, value))
    return raw


def strip_uuid(data: "bytes") -> "bytes":
    """Accept the service data value, or it prefixed by ``95 fe``, or the whole AD structure,
    or a whole advertisement (AD structures end to end), or an HCI LE advertising report
    as ``hcidump --raw`` and ble_monitor print it (see protocols/_ble.py).

    Unambiguous: ``95 fe`` as a frame control would be MiBeacon version 15, which does
    not exist; an HCI report must have all its lengths right, and a whole advertisement is
    only looked for when `data` is not a MiBeacon itself.
    """
    value = prefixed_service_data(data, UUID_BYTES)
    if value is not None:
        return value
    hci = hci_service_data(data, UUID_BYTES)
    if hci is not None:
        return hci[0]
    if not is_mibeacon(data):
        found = advertisement_service_data(data, UUID_BYTES)
        if found is not None:
            return found
    return data


def advertiser_mac(data: "bytes") -> "str | None":
    """The advertiser's MAC when `data` is an HCI advertising report, else None."""
    return _ble.advertiser_mac(data, UUID_BYTES)


def is_mibeacon(data: "bytes") -> "bool":
    """Whether `data` has a MiBeacon header (version 2..5, not mesh).

    A 16-byte GATT real-time read starts with the temperature (s16 x0.1 °C): its high
    nibble, where a MiBeacon has its version, is 0 above zero and 0xF below, so the two
    cannot be confused.
    """
    if len(data) < 2:
        return False
    fc = data[0] | data[1] << 8
    return fc >> 12 in MIBEACON_VERSIONS and not fc & FC_MESH


# -- MiBeacon ------------------------------------------------------------------------------


def _object(beacon: "MiBeacon", otype: "int", value: "bytes") -> "None":
    if otype == OBJECT_TEMPERATURE_HUMIDITY:
        if len(value) != 4:
            raise RemoteProtocolError(
                MALFORMED, "object 0x%04x has %d bytes, expected 4" % (otype, len(value))
            )
        beacon.measurements.append(Measurement("temperature", sint_le(value[0:2]) / 10, "Cel"))
        beacon.measurements.append(Measurement("humidity", uint_le(value[2:4]) / 10, "%RH"))
        return
    entry = OBJECTS.get(otype)
    if entry is None:
        beacon.unknown_objects.append(otype)
        return
    name, size, signed, power, unit = entry
    # A one-byte object (battery, moisture) is read by its first byte whatever its length,
    # as xiaomi-ble does: the Flower Pot (HHCCPOT002) sends its battery 0x100a with two
    # (``0a 10 02 64 00``: 100 %). Wider values must have their exact size.
    if size == 1 and len(value) > 1:
        value = value[:1]
    if len(value) != size:
        raise RemoteProtocolError(
            MALFORMED,
            "object 0x%04x (%s) has %d bytes, expected %d" % (otype, name, len(value), size),
        )
    raw = sint_le(value) if signed else uint_le(value)
    beacon.measurements.append(Measurement(name, _scale(raw, power), unit))


def _header(data: "bytes") -> "tuple[MiBeacon, int]":
    """Parse the header -> (beacon without objects, offset of the objects)."""
    if len(data) > MAX_PAYLOAD:
        raise RemoteProtocolError(OVERFLOW, "%d bytes is longer than any service data" % len(data))
    if len(data) < 5:
        raise RemoteProtocolError(TRUNCATED, "MiBeacon header needs 5 bytes, got %d" % len(data))
    fc = uint_le(data[0:2])
    beacon = MiBeacon(fc, uint_le(data[2:4]), data[4])
    if fc & FC_MESH:
        raise RemoteProtocolError(UNSUPPORTED, "mesh MiBeacon (frame control 0x%04x)" % fc)
    if beacon.version not in MIBEACON_VERSIONS:
        raise RemoteProtocolError(
            UNSUPPORTED, "MiBeacon version %d (frame control 0x%04x)" % (beacon.version, fc)
        )
    i = 5
    if fc & FC_MAC_INCLUDED:
        if len(data) < i + 6:
            raise RemoteProtocolError(TRUNCATED, "MAC cut short")
        beacon.mac = format_mac(bytes(reversed(data[i : i + 6])))
        i += 6
    if fc & FC_CAPABILITY_INCLUDED:
        if len(data) < i + 1:
            raise RemoteProtocolError(TRUNCATED, "capability byte missing")
        beacon.capability = data[i]
        i += 1
        if beacon.capability & CAPABILITY_IO:
            if len(data) < i + 1:
                raise RemoteProtocolError(TRUNCATED, "IO capability byte missing")
            beacon.io_capability = data[i]
            i += 1
    return beacon, i


def decode_mibeacon(data: "bytes", mac: "bytes | str | None" = None) -> "MiBeacon":
    """Decode MiBeacon service data (see `strip_uuid` for accepted prefixes).

    `mac`, the advertiser's address, if given, must match the MAC in the payload
    (``malformed`` otherwise) and fills `mac` when the payload has none.
    Raises RemoteProtocolError: ``truncated``, ``malformed``, ``overflow``, ``unsupported``
    (encrypted, mesh, version < 2).
    """
    if mac is None:
        mac = advertiser_mac(data)  # an HCI report carries the advertiser's address
    data = strip_uuid(bytes(data))
    mac_given = format_mac(parse_mac(mac)) if mac is not None else None
    beacon, i = _header(data)
    if mac_given is not None:
        if beacon.mac is None:
            beacon.mac = mac_given
        elif beacon.mac != mac_given:
            raise RemoteProtocolError(
                MALFORMED, "MAC in payload %s is not the advertiser's %s" % (beacon.mac, mac_given)
            )
    if beacon.encrypted:
        raise RemoteProtocolError(
            UNSUPPORTED, "encrypted MiBeacon (Mi Flora never encrypts; no key support)"
        )
    if not beacon.frame_control & FC_OBJECT_INCLUDED:
        if i != len(data):
            raise RemoteProtocolError(
                MALFORMED, "%d bytes after a header without objects" % (len(data) - i)
            )
        return beacon
    n = len(data)
    if i == n:
        raise RemoteProtocolError(TRUNCATED, "object flag set but no object")
    while i < n:
        if n - i < 3:
            raise RemoteProtocolError(TRUNCATED, "object header cut short at offset %d" % i)
        otype = uint_le(data[i : i + 2])
        length = data[i + 2]
        end = i + 3 + length
        if end > n:
            raise RemoteProtocolError(
                TRUNCATED,
                "object 0x%04x needs %d bytes, %d left" % (otype, length, n - i - 3),
            )
        _object(beacon, otype, data[i + 3 : end])
        i = end
    return beacon


def encode_mibeacon(
    objects: "list[tuple[int, object]]",
    mac: "bytes | str | None",
    frame_counter: "int" = 0,
    product_id: "int" = PRODUCT_MIFLORA,
    capability: "int | None" = 0x0D,
    version: "int" = 2,
) -> "bytes":
    """Build MiBeacon service data (without the UUID) as a Mi Flora sends it.

    `objects`: (type, value) with values as decoded (temperature in °C, conductivity in
    S/m...); 0x100D takes a (temperature, humidity) pair. A Mi Flora sends one object per
    advertisement. With the defaults and a MAC the frame control is 0x2071, as the
    device's.
    """
    if version not in MIBEACON_VERSIONS:
        raise LocalProtocolError("MiBeacon version must be 2..5")
    if not 0 <= frame_counter <= 255 or not 0 <= product_id <= 0xFFFF:
        raise LocalProtocolError("frame counter is 1 byte, product id 2 bytes")
    fc = version << 12 | FC_REQUEST_TIMING
    out = bytearray()
    if mac is not None:
        fc |= FC_MAC_INCLUDED
        out += bytes(reversed(parse_mac(mac)))
    if capability is not None:
        if capability & CAPABILITY_IO or not 0 <= capability <= 255:
            raise LocalProtocolError("capability: one byte without the IO bit")
        fc |= FC_CAPABILITY_INCLUDED
        out.append(capability)
    for otype, value in objects:
        fc |= FC_OBJECT_INCLUDED
        if otype == OBJECT_TEMPERATURE_HUMIDITY:
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                raise LocalProtocolError("0x100d takes (temperature, humidity)")
            body = to_le(_unscale("temperature", value[0], -1, 2, True), 2) + to_le(
                _unscale("humidity", value[1], -1, 2, False), 2
            )
        else:
            entry = OBJECTS.get(otype)
            if entry is None:
                raise LocalProtocolError("unknown MiBeacon object 0x%04x" % otype)
            name, size, signed, power, _unit = entry
            body = to_le(_unscale(name, value, power, size, signed), size)
        out += to_le(otype, 2) + bytes([len(body)]) + body
    return to_le(fc, 2) + to_le(product_id, 2) + bytes([frame_counter]) + bytes(out)


def ad_structure(payload: "bytes") -> "bytes":
    """The AD structure for an advertisement: length, 0x16, ``95 fe``, payload."""
    return _ble.ad_structure(UUID_BYTES, payload)


# -- GATT ----------------------------------------------------------------------------------


def decode_realtime(data: "bytes") -> "list[Measurement]":
    """Decode the real-time value read from handle 0x35 (16 bytes; 24 on the Flower Pot).

    Raises ``malformed`` for a read taken without the mode-change write (moisture over
    100 %, e.g. ``aa bb cc dd ee ff 99 88 77 66 ...``) or all zeros, ``truncated`` or
    ``malformed`` for other lengths.
    """
    data = bytes(data)
    if len(data) == REALTIME_SIZE:
        light = uint_le(data[3:7])  # type: int | None
        moisture = data[7]
        conductivity = uint_le(data[8:10])
    elif len(data) == ROPOT_REALTIME_SIZE:
        light = None
        moisture = data[7]
        conductivity = uint_le(data[8:10])
    elif len(data) < REALTIME_SIZE:
        raise RemoteProtocolError(
            TRUNCATED, "real-time read is %d bytes, expected %d" % (len(data), REALTIME_SIZE)
        )
    else:
        raise RemoteProtocolError(
            MALFORMED, "real-time read is %d bytes, expected %d" % (len(data), REALTIME_SIZE)
        )
    if not any(data):
        raise RemoteProtocolError(MALFORMED, "real-time read is all zeros")
    if moisture > 100:
        raise RemoteProtocolError(
            MALFORMED,
            "moisture %d %% > 100: not real-time data (was 0xa0 0x1f written to handle 0x33?)"
            % moisture,
        )
    out = [Measurement("temperature", sint_le(data[0:2]) / 10, "Cel")]
    if light is not None:
        out.append(Measurement("illuminance", light, "lx"))
    out.append(Measurement("moisture", moisture, "%"))
    out.append(Measurement("conductivity", conductivity / 10000, "S/m"))
    return out


def encode_realtime(
    temperature: "Number", illuminance: "int", moisture: "int", conductivity: "Number"
) -> "bytes":
    """The 16-byte real-time value a Mi Flora returns (for simulators); SenML units in."""
    return (
        to_le(_unscale("temperature", temperature, -1, 2, True), 2)
        + b"\x00"
        + to_le(_unscale("illuminance", illuminance, 0, 4, False), 4)
        + bytes([_unscale("moisture", moisture, 0, 1, False)])
        + to_le(_unscale("conductivity", conductivity, -4, 2, False), 2)
        + bytes(6)
    )


def decode_firmware(data: "bytes") -> "tuple[int, str]":
    """Decode the read of handle 0x38 -> (battery %, firmware version string)."""
    data = bytes(data)
    if len(data) < 3:
        raise RemoteProtocolError(TRUNCATED, "firmware read needs at least 3 bytes")
    if len(data) > 32:
        raise RemoteProtocolError(OVERFLOW, "firmware read of %d bytes" % len(data))
    battery = data[0]
    if battery > 100:
        raise RemoteProtocolError(MALFORMED, "battery %d %% > 100" % battery)
    text = data[2:]
    while text and text[-1] == 0:
        text = text[:-1]
    if not text or not all(0x20 < b < 0x7F for b in text):
        raise RemoteProtocolError(MALFORMED, "firmware version is not printable ASCII")
    return battery, text.decode()


def encode_firmware(battery: "int", firmware: "str", unknown: "int" = 0) -> "bytes":
    """The value of handle 0x38 (for simulators)."""
    if not 0 <= battery <= 100 or not 0 <= unknown <= 255:
        raise LocalProtocolError("battery is 0..100 %")
    text = firmware.encode()
    if not text or not all(0x20 < b < 0x7F for b in text):
        raise LocalProtocolError("firmware version must be printable ASCII")
    return bytes([battery, unknown]) + text


# -- estran decode -------------------------------------------------------------------------


def _source(data: "bytes", options: "dict[str, object]") -> "str":
    chosen = options.get("source") or options.get("map")
    if chosen:
        if chosen not in (SOURCE_MIBEACON, SOURCE_REALTIME, SOURCE_FIRMWARE):
            raise LocalProtocolError(
                "miflora source must be %s, %s or %s"
                % (SOURCE_MIBEACON, SOURCE_REALTIME, SOURCE_FIRMWARE)
            )
        return str(chosen)
    if len(data) == REALTIME_SIZE and not is_mibeacon(data):
        return SOURCE_REALTIME
    return SOURCE_MIBEACON


def describe(data: "bytes", options: "dict[str, object]") -> "list[dict[str, object]]":
    """One contract dict (see protocols/describe.py).

    `data` is MiBeacon service data (optionally prefixed by ``95 fe``, the whole AD
    structure or advertisement, or an HCI advertising report), or a GATT read: options ``source`` (or ``map``, as `estran decode --map`
    sets it) ``gatt`` for the real-time value, ``firmware`` for handle 0x38. Without it, a
    16-byte value without a MiBeacon header is taken as the real-time read. Option ``mac``
    is checked against the payload's. Bad options raise LocalProtocolError.
    """
    data = bytes(data)
    mac = options.get("mac")
    mac_text = format_mac(parse_mac(str(mac))) if mac else None
    source = _source(data, options)
    if source == SOURCE_REALTIME:
        fields = {"source": SOURCE_REALTIME, "mac": mac_text}  # type: dict[str, object]
        try:
            values = decode_realtime(data)
        except RemoteProtocolError as e:
            return [result("miflora", False, str(e), fields, [])]
        return [result("miflora", True, None, fields, [m.as_dict() for m in values])]
    if source == SOURCE_FIRMWARE:
        fields = {"source": SOURCE_FIRMWARE, "mac": mac_text}
        try:
            battery, firmware = decode_firmware(data)
        except RemoteProtocolError as e:
            return [result("miflora", False, str(e), fields, [])]
        fields["firmware_version"] = firmware
        reading = Measurement("battery", battery, "%").as_dict()
        return [result("miflora", True, None, fields, [reading])]
    if mac_text is None:
        mac_text = advertiser_mac(data)  # an HCI report carries the advertiser's address
    payload = strip_uuid(data)
    fields = {"source": SOURCE_MIBEACON}
    try:
        beacon, _offset = _header(payload)
        if beacon.mac is None:
            beacon.mac = mac_text
        fields = beacon.fields()
        beacon = decode_mibeacon(payload, mac_text)
    except RemoteProtocolError as e:
        return [result("miflora", False, str(e), fields, [])]
    readings = [m.as_dict() for m in beacon.measurements]
    return [result("miflora", True, None, beacon.fields(), readings)]


__all__ = [
    "DATA_SERVICE_UUID",
    "FIRMWARE_CHAR_UUID",
    "HANDLE_FIRMWARE",
    "HANDLE_MODE_CHANGE",
    "HANDLE_NAME",
    "HANDLE_REALTIME",
    "MODE_CHANGE",
    "MODE_CHANGE_CHAR_UUID",
    "OBJECTS",
    "PRODUCTS",
    "PRODUCT_MIFLORA",
    "REALTIME_CHAR_UUID",
    "UUID16",
    "DeviceState",
    "MiBeacon",
    "ad_structure",
    "advertiser_mac",
    "decode_firmware",
    "decode_mibeacon",
    "decode_realtime",
    "describe",
    "encode_firmware",
    "encode_mibeacon",
    "encode_realtime",
    "format_mac",
    "is_mibeacon",
    "parse_mac",
    "strip_uuid",
]

"""BTHome v2: BLE service data (UUID 0xFCD2) payloads, plain and AES-CCM encrypted.

Payload layout (the service data value, after the UUID ``d2 fc``)::

    info | [MAC, 6 bytes reversed] | objects...                      (plain)
    info | [MAC, 6 bytes reversed] | ciphertext | counter(4) | tag(4)  (encrypted)

The info byte: bit 0 encrypted, bit 1 MAC included (bthome-ble's reading of a bit the
spec marks reserved), bit 2 trigger-based device, bits 5-7 the BTHome version (must be 2).
Objects are an object id followed by a little-endian value whose size the id fixes (text
and raw carry a length byte), so an unknown id stops parsing: nothing after it can be
delimited. The spec tells receivers to keep what came before; `decode` raises
`UnknownObjectError` (reason ``unsupported``) carrying that partial packet.

Decoding is table-driven (`OBJECTS`: id -> name, size, sign, scale, SenML unit, kind).
Values are normalised to SenML units where the conversion is a power of ten (hPa -> Pa,
kWh -> Wh, mm -> m, mL -> l, µS/cm -> S/m), so they stay exact decimals; otherwise the
spec's unit is kept (lb, m3/h, ppm, ug/m3, deg/s). A name that occurs again in one
payload gets a suffix: temperature, temperature_2, temperature_3.

Encryption (bthome.io/encryption): AES-128-CCM, 4-byte tag, no associated data, nonce =
MAC (6 bytes, display order) + ``d2 fc`` + info byte + counter (4 bytes LE, sent in clear).
Decryption and encryption use `cryptography` and are CPython-only: under MicroPython they
raise ``unsupported``. Everything else runs on MicroPython.

`DeviceState` is the per-device (per MAC) memory a receiver keeps: the encryption counter
must increase (else ``replay``) and a repeated packet id marks the packet a duplicate.
`encode` builds payloads for the simulators.
"""

from protocols import _ble
from protocols._ble import (
    MAC_SIZE,
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
    DECRYPTION,
    MALFORMED,
    OVERFLOW,
    REPLAY,
    TRUNCATED,
    UNSUPPORTED,
    LocalProtocolError,
    RemoteProtocolError,
)
from protocols.reading import Measurement

if TYPE_CHECKING:
    from typing import Iterator, Union

    Value = Union[int, float, str, bool]

UUID16 = 0xFCD2
UUID_BYTES = b"\xd2\xfc"  # the UUID as it appears on air (little-endian)

INFO_ENCRYPTED = 0x01
INFO_MAC_INCLUDED = 0x02
INFO_TRIGGER_BASED = 0x04
VERSION = 2

KEY_SIZE = 16
TAG_SIZE = 4
COUNTER_SIZE = 4
# An AD structure's length byte caps its data at 254 bytes (extended advertising); legacy
# advertising allows far less. Anything longer is not a BTHome payload.
MAX_PAYLOAD = 254

# Object kinds.
NUMBER = 0
BINARY = 1
BUTTON = 2
DIMMER = 3
TEXT = 4
RAW = 5
PACKET_ID = 6
DEVICE_TYPE = 7
FIRMWARE = 8
COMMAND = 9

_VARIABLE = 0  # size 0 in the table: a length byte follows the object id

# id -> (name, size in bytes, signed, multiplier, power of ten, SenML unit, kind)
# value = raw * multiplier * 10**power, in `unit`.
OBJECTS = {
    0x00: ("packet_id", 1, False, 1, 0, None, PACKET_ID),
    0x01: ("battery", 1, False, 1, 0, "%", NUMBER),
    0x02: ("temperature", 2, True, 1, -2, "Cel", NUMBER),
    0x03: ("humidity", 2, False, 1, -2, "%RH", NUMBER),
    0x04: ("pressure", 3, False, 1, 0, "Pa", NUMBER),  # 0.01 hPa = 1 Pa
    0x05: ("illuminance", 3, False, 1, -2, "lx", NUMBER),
    0x06: ("mass", 2, False, 1, -2, "kg", NUMBER),
    0x07: ("mass", 2, False, 1, -2, "lb", NUMBER),
    0x08: ("dewpoint", 2, True, 1, -2, "Cel", NUMBER),
    0x09: ("count", 1, False, 1, 0, "count", NUMBER),
    0x0A: ("energy", 3, False, 1, 0, "Wh", NUMBER),  # 0.001 kWh = 1 Wh
    0x0B: ("power", 3, False, 1, -2, "W", NUMBER),
    0x0C: ("voltage", 2, False, 1, -3, "V", NUMBER),
    0x0D: ("pm25", 2, False, 1, 0, "ug/m3", NUMBER),
    0x0E: ("pm10", 2, False, 1, 0, "ug/m3", NUMBER),
    0x0F: ("generic", 1, False, 1, 0, None, BINARY),
    0x10: ("power_on", 1, False, 1, 0, None, BINARY),
    0x11: ("opening", 1, False, 1, 0, None, BINARY),
    0x12: ("co2", 2, False, 1, 0, "ppm", NUMBER),
    0x13: ("tvoc", 2, False, 1, 0, "ug/m3", NUMBER),
    0x14: ("moisture", 2, False, 1, -2, "%", NUMBER),
    0x15: ("battery_low", 1, False, 1, 0, None, BINARY),
    0x16: ("battery_charging", 1, False, 1, 0, None, BINARY),
    0x17: ("carbon_monoxide", 1, False, 1, 0, None, BINARY),
    0x18: ("cold", 1, False, 1, 0, None, BINARY),
    0x19: ("connectivity", 1, False, 1, 0, None, BINARY),
    0x1A: ("door", 1, False, 1, 0, None, BINARY),
    0x1B: ("garage_door", 1, False, 1, 0, None, BINARY),
    0x1C: ("gas_detected", 1, False, 1, 0, None, BINARY),
    0x1D: ("heat", 1, False, 1, 0, None, BINARY),
    0x1E: ("light", 1, False, 1, 0, None, BINARY),
    0x1F: ("unlocked", 1, False, 1, 0, None, BINARY),
    0x20: ("wet", 1, False, 1, 0, None, BINARY),
    0x21: ("motion", 1, False, 1, 0, None, BINARY),
    0x22: ("moving", 1, False, 1, 0, None, BINARY),
    0x23: ("occupancy", 1, False, 1, 0, None, BINARY),
    0x24: ("plug", 1, False, 1, 0, None, BINARY),
    0x25: ("presence", 1, False, 1, 0, None, BINARY),
    0x26: ("problem", 1, False, 1, 0, None, BINARY),
    0x27: ("running", 1, False, 1, 0, None, BINARY),
    0x28: ("safety", 1, False, 1, 0, None, BINARY),
    0x29: ("smoke", 1, False, 1, 0, None, BINARY),
    0x2A: ("sound", 1, False, 1, 0, None, BINARY),
    0x2B: ("tamper", 1, False, 1, 0, None, BINARY),
    0x2C: ("vibration", 1, False, 1, 0, None, BINARY),
    0x2D: ("window", 1, False, 1, 0, None, BINARY),
    0x2E: ("humidity", 1, False, 1, 0, "%RH", NUMBER),
    0x2F: ("moisture", 1, False, 1, 0, "%", NUMBER),
    0x3A: ("button", 1, False, 1, 0, None, BUTTON),
    0x3B: ("command", _VARIABLE, False, 1, 0, None, COMMAND),
    0x3C: ("dimmer", 2, False, 1, 0, None, DIMMER),
    0x3D: ("count", 2, False, 1, 0, "count", NUMBER),
    0x3E: ("count", 4, False, 1, 0, "count", NUMBER),
    0x3F: ("rotation", 2, True, 1, -1, "deg", NUMBER),
    0x40: ("distance", 2, False, 1, -3, "m", NUMBER),  # mm
    0x41: ("distance", 2, False, 1, -1, "m", NUMBER),
    0x42: ("duration", 3, False, 1, -3, "s", NUMBER),
    0x43: ("current", 2, False, 1, -3, "A", NUMBER),
    0x44: ("speed", 2, False, 1, -2, "m/s", NUMBER),
    0x45: ("temperature", 2, True, 1, -1, "Cel", NUMBER),
    0x46: ("uv_index", 1, False, 1, -1, None, NUMBER),
    0x47: ("volume", 2, False, 1, -1, "l", NUMBER),
    0x48: ("volume", 2, False, 1, -3, "l", NUMBER),  # mL
    0x49: ("volume_flow_rate", 2, False, 1, -3, "m3/h", NUMBER),
    0x4A: ("voltage", 2, False, 1, -1, "V", NUMBER),
    0x4B: ("gas", 3, False, 1, -3, "m3", NUMBER),
    0x4C: ("gas", 4, False, 1, -3, "m3", NUMBER),
    0x4D: ("energy", 4, False, 1, 0, "Wh", NUMBER),  # 0.001 kWh = 1 Wh
    0x4E: ("volume", 4, False, 1, -3, "l", NUMBER),
    0x4F: ("water", 4, False, 1, -3, "l", NUMBER),
    0x50: ("timestamp", 4, False, 1, 0, "s", NUMBER),  # seconds since 1970-01-01 UTC
    0x51: ("acceleration", 2, False, 1, -3, "m/s2", NUMBER),
    0x52: ("gyroscope", 2, False, 1, -3, "deg/s", NUMBER),
    0x53: ("text", _VARIABLE, False, 1, 0, None, TEXT),
    0x54: ("raw", _VARIABLE, False, 1, 0, None, RAW),
    0x55: ("volume_storage", 4, False, 1, -3, "l", NUMBER),
    0x56: ("conductivity", 2, False, 1, -4, "S/m", NUMBER),  # µS/cm
    0x57: ("temperature", 1, True, 1, 0, "Cel", NUMBER),
    0x58: ("temperature", 1, True, 35, -2, "Cel", NUMBER),  # factor 0.35
    0x59: ("count", 1, True, 1, 0, "count", NUMBER),
    0x5A: ("count", 2, True, 1, 0, "count", NUMBER),
    0x5B: ("count", 4, True, 1, 0, "count", NUMBER),
    0x5C: ("power", 4, True, 1, -2, "W", NUMBER),
    0x5D: ("current", 2, True, 1, -3, "A", NUMBER),
    0x5E: ("direction", 2, False, 1, -2, "deg", NUMBER),
    0x5F: ("precipitation", 2, False, 1, -4, "m", NUMBER),  # 0.1 mm
    0x60: ("channel", 1, False, 1, 0, None, NUMBER),
    0x61: ("rotational_speed", 2, False, 1, 0, "1/min", NUMBER),
    0x62: ("speed", 4, True, 1, -6, "m/s", NUMBER),
    0x63: ("acceleration", 4, True, 1, -6, "m/s2", NUMBER),
    0x64: ("light_level", 1, False, 1, 0, None, NUMBER),
    0x65: ("settings_revision", 1, False, 1, 0, None, NUMBER),
    0xF0: ("device_type_id", 2, False, 1, 0, None, DEVICE_TYPE),
    0xF1: ("firmware_version", 4, False, 1, 0, None, FIRMWARE),
    0xF2: ("firmware_version", 3, False, 1, 0, None, FIRMWARE),
}

BUTTON_EVENTS = {
    0x00: "none",
    0x01: "press",
    0x02: "double_press",
    0x03: "triple_press",
    0x04: "long_press",
    0x05: "long_double_press",
    0x06: "long_triple_press",
    0x80: "hold_press",
    0x81: "hold_release",
}
DIMMER_NONE = 0x00
DIMMER_LEFT = 0x01
DIMMER_RIGHT = 0x02
COMMAND_EVENTS = {0x00: "off", 0x01: "on", 0x02: "toggle", 0x03: "step_up", 0x04: "step_down"}

_BUTTON_CODES = {name: code for code, name in BUTTON_EVENTS.items()}
_COMMAND_CODES = {name: code for code, name in COMMAND_EVENTS.items()}


class UnknownObjectError(RemoteProtocolError):
    """An object id this codec does not know: parsing stopped there, as the spec says.

    Reason ``unsupported``. `packet` is what was decoded before the unknown id (set by
    `decode`; None when raised by `iter_objects`).
    """

    def __init__(self, message: "str", packet: "BTHomePacket | None" = None) -> "None":
        super().__init__(UNSUPPORTED, message)
        self.packet = packet


class BTHomeObject:
    """One decoded object: its id, its (suffixed) name, value, SenML unit and kind."""

    __slots__ = ("kind", "name", "object_id", "unit", "value")

    def __init__(
        self, object_id: "int", name: "str", value: "Value", unit: "str | None", kind: "int"
    ) -> "None":
        self.object_id = object_id
        self.name = name
        self.value = value
        self.unit = unit
        self.kind = kind

    def is_event(self) -> "bool":
        return self.kind in (BUTTON, DIMMER, COMMAND)

    def __eq__(self, other: "object") -> "bool":
        return (
            isinstance(other, BTHomeObject)
            and self.object_id == other.object_id
            and self.name == other.name
            and self.value == other.value
            and self.unit == other.unit
        )

    def __repr__(self) -> "str":
        return "BTHomeObject(0x%02x, %r, %r, %r)" % (
            self.object_id,
            self.name,
            self.value,
            self.unit,
        )


class BTHomePacket:
    """A decoded payload: header flags, counters, device info and the objects in order."""

    __slots__ = (
        "counter",
        "device_type_id",
        "duplicate",
        "encrypted",
        "firmware_version",
        "info",
        "mac",
        "mac_included",
        "objects",
        "ordered",
        "packet_id",
        "trigger_based",
        "version",
    )

    def __init__(self, info: "int") -> "None":
        self.info = info
        self.version = info >> 5
        self.encrypted = bool(info & INFO_ENCRYPTED)
        self.mac_included = bool(info & INFO_MAC_INCLUDED)
        self.trigger_based = bool(info & INFO_TRIGGER_BASED)
        self.mac = None  # type: str | None
        self.counter = None  # type: int | None
        self.packet_id = None  # type: int | None
        self.device_type_id = None  # type: int | None
        self.firmware_version = None  # type: str | None
        self.objects = []  # type: list[BTHomeObject]
        self.ordered = True  # object ids came in ascending order, as the spec asks
        self.duplicate = False  # set by DeviceState: same packet id (or same bytes) again

    def measurements(self) -> "list[Measurement]":
        """Sensor values, binary states and events, in payload order.

        Packet id and device information are header facts (attributes), not measurements;
        a button or dimmer "none" event (a placeholder for another button) is left out.
        """
        out = []
        for o in self.objects:
            if o.kind in (PACKET_ID, DEVICE_TYPE, FIRMWARE):
                continue
            if o.kind == BUTTON and (o.value == "none" or str(o.value).startswith("0x")):
                # "none" is a placeholder for another button; a code outside the spec's
                # list (Shelly BLU Button1 sends 0xfe) is no event (as bthome-ble).
                continue
            if o.kind == DIMMER and o.value == 0:
                continue
            out.append(Measurement(o.name, o.value, o.unit))
        return out

    def fields(self) -> "dict[str, object]":
        f = _header_fields(self.info, self.mac)
        f["counter"] = self.counter
        f["packet_id"] = self.packet_id
        f["ordered"] = self.ordered
        if self.device_type_id is not None:
            f["device_type_id"] = self.device_type_id
        if self.firmware_version is not None:
            f["firmware_version"] = self.firmware_version
        return f


class DeviceState:
    """What a receiver remembers of one device (one MAC) between payloads. Sans-IO.

    - Encrypted payloads: the counter must increase. A lower counter, or the same counter
      with other bytes, raises ``replay``. The very same bytes again (a device repeats each
      advertisement several times) are a duplicate, not an attack.
    - Packet id (object 0x00): the same id as the previous payload marks it a duplicate.

    After a device's battery change its counter may restart low: everything then raises
    ``replay`` until an operator calls `reset()` (deliberately: accepting low counters
    would reopen the replay window).
    """

    __slots__ = ("counter", "last_payload", "packet_id")

    def __init__(self) -> "None":
        self.counter = None  # type: int | None
        self.packet_id = None  # type: int | None
        self.last_payload = None  # type: bytes | None

    def reset(self) -> "None":
        self.counter = None
        self.packet_id = None
        self.last_payload = None

    def check(self, packet: "BTHomePacket", payload: "bytes") -> "bool":
        """Check `packet` (decoded from `payload`) against this state and record it.

        Returns True when the packet is new, False (and sets `packet.duplicate`) when it is
        a duplicate. Raises RemoteProtocolError(REPLAY) for a replayed counter; the state
        is then left unchanged.
        """
        duplicate = False
        if packet.counter is not None:
            if self.counter is not None:
                if packet.counter < self.counter:
                    raise RemoteProtocolError(
                        REPLAY,
                        "counter %d is below the last one seen (%d)"
                        % (packet.counter, self.counter),
                    )
                if packet.counter == self.counter:
                    if payload != self.last_payload:
                        raise RemoteProtocolError(
                            REPLAY, "counter %d reused with different data" % packet.counter
                        )
                    duplicate = True
            self.counter = packet.counter
            self.last_payload = bytes(payload)
        if packet.packet_id is not None:
            if packet.packet_id == self.packet_id:
                duplicate = True
            self.packet_id = packet.packet_id
        packet.duplicate = duplicate
        return not duplicate


# -- helpers -------------------------------------------------------------------------------


def _scale(raw: "int", mult: "int", power: "int") -> "int | float":
    # One division of two exact integers is correctly rounded: the float is the nearest
    # double to the exact decimal, so it prints without noise (CPython and MicroPython).
    if power >= 0:
        return raw * mult * pow10(power)
    return (raw * mult) / pow10(-power)


def _unscale(value: "object", mult: "int", power: "int") -> "int":
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise LocalProtocolError("expected a number, got %r" % (value,))
    if power >= 0:
        return round(value / (mult * pow10(power)))
    return round(value * pow10(-power) / mult)


def _is_number(value: "object") -> "bool":
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_key(key: "str | bytes") -> "bytes":
    """A bind key as 32 hex digits (or 16 bytes) -> 16 bytes."""
    if isinstance(key, (bytes, bytearray)):
        raw = bytes(key)
    else:
        try:
            raw = bytes.fromhex("".join(str(key).split()))
        except ValueError as e:
            raise LocalProtocolError("bind key is not hexadecimal") from e
    if len(raw) != KEY_SIZE:
        raise LocalProtocolError("bind key must be 16 bytes (32 hex digits), got %d" % len(raw))
    return raw


def strip_uuid(data: "bytes") -> "bytes":
    """Accept the service data value, or it prefixed by ``d2 fc``, or the whole AD structure,
    or a whole advertisement (several AD structures, one of them 0xFCD2 service data), or
    an HCI LE advertising report carrying one (see protocols/_ble.py).

    Unambiguous: a v2 info byte has version bits 010, so it is never 0xd2, and an AD length
    byte (< 0x20 for BTHome) followed by 0x16 d2 fc is not a valid info byte either; the
    other shapes start below 0x40, where no v2 info byte is.
    """
    value = prefixed_service_data(data, UUID_BYTES)
    if value is not None:
        return value
    # A v2 info byte is 0x40..0x5f; an HCI event starts 04 3e or 3e, an advertisement with
    # an AD length below 0x20 (31 bytes of legacy advertising).
    if data and data[0] < 0x40:
        hci = hci_service_data(data, UUID_BYTES)
        if hci is not None:
            return hci[0]
        found = advertisement_service_data(data, UUID_BYTES)
        if found is not None:
            return found
    return data


def advertiser_mac(data: "bytes") -> "str | None":
    """The advertiser's MAC when `data` is an HCI advertising report, else None."""
    return _ble.advertiser_mac(data, UUID_BYTES)


def _header_fields(info: "int", mac: "str | None") -> "dict[str, object]":
    return {
        "version": info >> 5,
        "encrypted": bool(info & INFO_ENCRYPTED),
        "trigger_based": bool(info & INFO_TRIGGER_BASED),
        "mac_included": bool(info & INFO_MAC_INCLUDED),
        "mac": mac,
    }


def _split(data: "bytes") -> "tuple[int, bytes | None, bytes]":
    """-> (info byte, included MAC in display order or None, the rest)."""
    if len(data) > MAX_PAYLOAD:
        raise RemoteProtocolError(
            OVERFLOW, "%d bytes is longer than any BLE service data" % len(data)
        )
    if not data:
        raise RemoteProtocolError(TRUNCATED, "empty payload")
    info = data[0]
    version = info >> 5
    if version != VERSION:
        raise RemoteProtocolError(
            UNSUPPORTED,
            "BTHome version %d (info byte 0x%02x): only v2 is supported" % (version, info),
        )
    rest = data[1:]
    mac = None  # type: bytes | None
    if info & INFO_MAC_INCLUDED:
        if len(rest) < MAC_SIZE:
            raise RemoteProtocolError(TRUNCATED, "MAC-included flag set but MAC cut short")
        mac = bytes(reversed(rest[:MAC_SIZE]))
        rest = rest[MAC_SIZE:]
    return info, mac, rest


def _aes_ccm(key: "bytes") -> "object":
    """The AES-CCM cipher. CPython-only: `cryptography` has no MicroPython port."""
    available = True
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESCCM
    except ImportError:  # MicroPython; not chained below: MicroPython only warns on `from`
        available = False
    if not available:
        raise RemoteProtocolError(
            UNSUPPORTED, "AES-CCM decryption needs CPython with the cryptography package"
        )
    return AESCCM(key, tag_length=TAG_SIZE)


def _nonce(mac: "bytes", info: "int", counter: "bytes") -> "bytes":
    return mac + UUID_BYTES + bytes([info]) + counter


def decrypt(info: "int", body: "bytes", key: "bytes", mac: "bytes") -> "tuple[bytes, int]":
    """Decrypt `body` (ciphertext | counter | tag) -> (plaintext objects, counter).

    CPython-only (needs `cryptography`); under MicroPython raises ``unsupported``.
    """
    if len(body) < COUNTER_SIZE + TAG_SIZE:
        raise RemoteProtocolError(
            TRUNCATED, "encrypted payload needs a 4-byte counter and a 4-byte tag"
        )
    ciphertext = body[: -COUNTER_SIZE - TAG_SIZE]
    counter_bytes = body[-COUNTER_SIZE - TAG_SIZE : -TAG_SIZE]
    tag = body[-TAG_SIZE:]
    cipher = _aes_ccm(key)
    try:
        plaintext = cipher.decrypt(  # type: ignore[attr-defined]
            _nonce(mac, info, counter_bytes), ciphertext + tag, None
        )
    except Exception as e:  # cryptography's InvalidTag: wrong key, wrong MAC or tampering
        raise RemoteProtocolError(
            DECRYPTION, "authentication failed (wrong bind key or MAC, or altered data)"
        ) from e
    return bytes(plaintext), uint_le(counter_bytes)


def _value(
    kind: "int", entry: "tuple[str, int, bool, int, int, str | None, int]", raw: "bytes"
) -> "Value":
    _name, _size, signed, mult, power, _unit, _kind = entry
    if kind == NUMBER:
        return _scale(sint_le(raw) if signed else uint_le(raw), mult, power)
    if kind == BINARY:
        return raw[0] != 0
    if kind in (PACKET_ID, DEVICE_TYPE):
        return uint_le(raw)
    if kind == FIRMWARE:
        return ".".join(str(b) for b in reversed(raw))
    if kind == BUTTON:
        return BUTTON_EVENTS.get(raw[0], "0x%02x" % raw[0])
    if kind == DIMMER:
        event, steps = raw[0], raw[1]
        if event == DIMMER_NONE:
            return 0
        if event == DIMMER_LEFT:
            return -steps
        if event == DIMMER_RIGHT:
            return steps
        raise RemoteProtocolError(MALFORMED, "dimmer event type 0x%02x" % event)
    if kind == TEXT:
        try:
            return bytes(raw).decode("utf-8")
        except (UnicodeError, ValueError) as e:
            raise RemoteProtocolError(MALFORMED, "text object is not UTF-8") from e
    if kind == RAW:
        return bytes(raw).hex()
    # COMMAND: opcode then arguments
    name = COMMAND_EVENTS.get(raw[0], "0x%02x" % raw[0])
    if len(raw) > 1:
        return name + " " + bytes(raw[1:]).hex()
    return name


def iter_objects(payload: "bytes") -> "Iterator[BTHomeObject]":
    """Yield the objects of a plaintext object list, in order, with suffixed names.

    Raises `UnknownObjectError` at an unknown id (after yielding what came before) and
    RemoteProtocolError(TRUNCATED) when an object runs past the end.
    """
    counts = {}  # type: dict[str, int]
    n = len(payload)
    i = 0
    while i < n:
        oid = payload[i]
        entry = OBJECTS.get(oid)
        if entry is None:
            raise UnknownObjectError("unknown object id 0x%02x at offset %d" % (oid, i))
        name, size, _signed, _mult, _power, unit, kind = entry
        start = i + 1
        if size == _VARIABLE:
            if start >= n:
                raise RemoteProtocolError(TRUNCATED, "object 0x%02x: length byte missing" % oid)
            size = 1 + (payload[start] & 0x1F) if kind == COMMAND else payload[start]
            start += 1
        end = start + size
        if end > n:
            raise RemoteProtocolError(
                TRUNCATED,
                "object 0x%02x at offset %d needs %d bytes, %d left" % (oid, i, size, n - start),
            )
        value = _value(kind, entry, payload[start:end])
        seen = counts.get(name, 0) + 1
        counts[name] = seen
        yield BTHomeObject(oid, name if seen == 1 else "%s_%d" % (name, seen), value, unit, kind)
        i = end


def _collect(packet: "BTHomePacket", objects: "bytes") -> "UnknownObjectError | None":
    last = -1
    try:
        for o in iter_objects(objects):
            if o.object_id < last:
                packet.ordered = False
            last = o.object_id
            packet.objects.append(o)
            if o.kind == PACKET_ID:
                packet.packet_id = o.value  # type: ignore[assignment]
            elif o.kind == DEVICE_TYPE:
                packet.device_type_id = o.value  # type: ignore[assignment]
            elif o.kind == FIRMWARE:
                packet.firmware_version = o.value  # type: ignore[assignment]
    except UnknownObjectError as e:
        return e
    return None


def decode(
    data: "bytes",
    key: "bytes | str | None" = None,
    mac: "bytes | str | None" = None,
    state: "DeviceState | None" = None,
) -> "BTHomePacket":
    """Decode one BTHome v2 service data payload (see `strip_uuid` for accepted prefixes).

    `key`: the 16-byte bind key of an encrypted device. With a key, a plaintext payload is
    refused (``decryption``: a downgrade). `mac`: the advertiser's address, needed for the
    nonce unless the payload includes it. `state`: the device's `DeviceState`, for the
    replay check and packet-id de-duplication (`packet.duplicate`).

    Raises RemoteProtocolError: ``truncated``, ``unsupported`` (other versions; unknown
    object ids as `UnknownObjectError` with the partial packet; decryption on MicroPython),
    ``malformed``, ``overflow``, ``decryption``, ``replay``. Bad `key`/`mac` arguments
    raise LocalProtocolError.
    """
    key_bytes = parse_key(key) if key is not None else None
    if mac is None:
        mac = advertiser_mac(data)  # an HCI report carries the advertiser's address
    mac_given = parse_mac(mac) if mac is not None else None
    return _decode(strip_uuid(bytes(data)), key_bytes, mac_given, state)


def _decode(
    data: "bytes",
    key_bytes: "bytes | None",
    mac_given: "bytes | None",
    state: "DeviceState | None",
) -> "BTHomePacket":
    info, mac_included, body = _split(data)
    packet = BTHomePacket(info)
    mac_bytes = mac_included if mac_included is not None else mac_given
    packet.mac = format_mac(mac_bytes) if mac_bytes is not None else None
    if packet.encrypted:
        if key_bytes is None:
            raise RemoteProtocolError(DECRYPTION, "encrypted payload: the bind key is needed")
        if mac_bytes is None:
            raise RemoteProtocolError(
                DECRYPTION, "encrypted payload: the device MAC is needed for the nonce"
            )
        objects, packet.counter = decrypt(info, body, key_bytes, mac_bytes)
    else:
        if key_bytes is not None:
            raise RemoteProtocolError(
                DECRYPTION, "plaintext payload from a device with a bind key (downgrade refused)"
            )
        objects = body
    unknown = _collect(packet, objects)
    if state is not None:
        state.check(packet, data)
    if unknown is not None:
        unknown.packet = packet
        raise unknown
    return packet


# -- building ------------------------------------------------------------------------------


def _encode_value(oid: "int", value: "object") -> "bytes":
    entry = OBJECTS.get(oid)
    if entry is None:
        raise LocalProtocolError("unknown object id 0x%02x" % oid)
    name, size, signed, mult, power, _unit, kind = entry
    if kind in (NUMBER, PACKET_ID, DEVICE_TYPE):
        raw = _unscale(value, mult, power) if kind == NUMBER else _unscale(value, 1, 0)
        if not fits(raw, size, signed):
            raise LocalProtocolError("%s: %r out of range for object 0x%02x" % (name, value, oid))
        return to_le(raw, size)
    if kind == BINARY:
        if value not in (True, False, 0, 1):
            raise LocalProtocolError("%s: expected a bool, got %r" % (name, value))
        return b"\x01" if value else b"\x00"
    if kind == FIRMWARE:
        try:
            parts = [int(p) for p in str(value).split(".")]
        except ValueError as e:
            raise LocalProtocolError("firmware version %r is not dotted numbers" % (value,)) from e
        if len(parts) != size or not all(0 <= p <= 255 for p in parts):
            raise LocalProtocolError("object 0x%02x needs a %d-part version" % (oid, size))
        return bytes(reversed(bytes(parts)))
    if kind == BUTTON:
        if isinstance(value, str) and value in _BUTTON_CODES:
            return bytes([_BUTTON_CODES[value]])
        if _is_number(value) and 0 <= value <= 255:  # type: ignore[operator]
            return bytes([int(value)])  # type: ignore[call-overload]
        raise LocalProtocolError("button: unknown event %r" % (value,))
    if kind == DIMMER:
        if not isinstance(value, int) or isinstance(value, bool) or not -255 <= value <= 255:
            raise LocalProtocolError("dimmer: steps must be an int in -255..255")
        if value == 0:
            return bytes([DIMMER_NONE, 0])
        return bytes([DIMMER_RIGHT, value]) if value > 0 else bytes([DIMMER_LEFT, -value])
    if kind == TEXT:
        if not isinstance(value, str):
            raise LocalProtocolError("text: expected a str")
        text = value.encode("utf-8")
        if len(text) > 255:
            raise LocalProtocolError("text: at most 255 bytes")
        return bytes([len(text)]) + text
    if kind == RAW:
        if isinstance(value, str):
            try:
                blob = bytes.fromhex(value)
            except ValueError as e:
                raise LocalProtocolError("raw: not hexadecimal") from e
        elif isinstance(value, (bytes, bytearray)):
            blob = bytes(value)
        else:
            raise LocalProtocolError("raw: expected bytes or hex")
        if len(blob) > 255:
            raise LocalProtocolError("raw: at most 255 bytes")
        return bytes([len(blob)]) + blob
    # COMMAND: "name" or "name hexargs"
    words = str(value).split(" ")
    opcode = _COMMAND_CODES.get(words[0])
    if opcode is None or len(words) > 2:
        raise LocalProtocolError("command: unknown %r" % (value,))
    try:
        args = bytes.fromhex(words[1]) if len(words) == 2 else b""
    except ValueError as e:
        raise LocalProtocolError("command: arguments are not hexadecimal") from e
    if len(args) > 0x1F:
        raise LocalProtocolError("command: at most 31 argument bytes")
    return bytes([len(args), opcode]) + args


def encode(
    objects: "list[tuple[int, object]]",
    key: "bytes | str | None" = None,
    mac: "bytes | str | None" = None,
    counter: "int" = 0,
    trigger_based: "bool" = False,
    include_mac: "bool" = False,
) -> "bytes":
    """Build a BTHome v2 service data payload (without the UUID) from (object id, value).

    Values are given as `decode` returns them (SenML units: 0x40 distance in m, 0x04
    pressure in Pa...; binary as bool; button as event name; dimmer as signed steps; raw
    as bytes or hex; firmware as "1.2.3"). Object ids must come in ascending order, as the
    spec requires. With `key` the payload is encrypted (CPython-only) with `counter`, and
    `mac` is required (for the nonce; `include_mac` also puts it in the payload).
    """
    info = VERSION << 5
    if trigger_based:
        info |= INFO_TRIGGER_BASED
    last = -1
    body = bytearray()
    for oid, value in objects:
        if oid < last:
            raise LocalProtocolError("object ids must be in ascending order (0x%02x)" % oid)
        last = oid
        body += bytes([oid]) + _encode_value(oid, value)
    mac_bytes = parse_mac(mac) if mac is not None else None
    if include_mac:
        if mac_bytes is None:
            raise LocalProtocolError("include_mac needs mac")
        info |= INFO_MAC_INCLUDED
    prefix = bytes(reversed(mac_bytes)) if include_mac and mac_bytes is not None else b""
    if key is None:
        out = bytes([info]) + prefix + bytes(body)
    else:
        if mac_bytes is None:
            raise LocalProtocolError("encryption needs the device MAC (nonce)")
        if not 0 <= counter <= 0xFFFFFFFF:
            raise LocalProtocolError("counter must fit in 4 bytes")
        info |= INFO_ENCRYPTED
        counter_bytes = to_le(counter, COUNTER_SIZE)
        try:
            cipher = _aes_ccm(parse_key(key))
        except RemoteProtocolError as e:
            raise LocalProtocolError(e.message) from e
        sealed = cipher.encrypt(  # type: ignore[attr-defined]
            _nonce(mac_bytes, info, counter_bytes), bytes(body), None
        )
        out = (
            bytes([info])
            + prefix
            + bytes(sealed[:-TAG_SIZE])
            + counter_bytes
            + bytes(sealed[-TAG_SIZE:])
        )
    if len(out) > MAX_PAYLOAD:
        raise LocalProtocolError("payload of %d bytes is too long" % len(out))
    return out


def ad_structure(payload: "bytes") -> "bytes":
    """The whole AD structure for an advertisement: length, 0x16, ``d2 fc``, payload."""
    return _ble.ad_structure(UUID_BYTES, payload)


# -- estran decode -------------------------------------------------------------------------


def describe(data: "bytes", options: "dict[str, object]") -> "list[dict[str, object]]":
    """One contract dict for one payload (see protocols/describe.py).

    `data`: the service data value, optionally prefixed by ``d2 fc`` or the whole AD
    structure. Options: ``key`` (bind key, hex) and ``mac`` (``AA:BB:..``) for encrypted
    payloads. Bad option values raise LocalProtocolError; bad bytes never raise.
    """
    key = options.get("key")
    mac = options.get("mac")
    key_bytes = parse_key(str(key)) if key else None
    if not mac:
        mac = advertiser_mac(data)  # an HCI report carries the advertiser's address
    mac_bytes = parse_mac(str(mac)) if mac else None
    payload = strip_uuid(bytes(data))
    fields = {}  # type: dict[str, object]
    try:
        info, included, _body = _split(payload)
        shown = included if included is not None else mac_bytes
        fields = _header_fields(info, format_mac(shown) if shown is not None else None)
        if info & INFO_ENCRYPTED and len(_body) >= COUNTER_SIZE + TAG_SIZE:
            fields["counter"] = uint_le(_body[-COUNTER_SIZE - TAG_SIZE : -TAG_SIZE])
        packet = _decode(payload, key_bytes, mac_bytes, None)
    except UnknownObjectError as e:
        readings = []  # type: list[dict[str, object]]
        if e.packet is not None:
            fields = e.packet.fields()
            readings = [m.as_dict() for m in e.packet.measurements()]
        return [result("bthome", False, str(e), fields, readings)]
    except RemoteProtocolError as e:
        return [result("bthome", False, str(e), fields, [])]
    readings = [m.as_dict() for m in packet.measurements()]
    return [result("bthome", True, None, packet.fields(), readings)]


__all__ = [
    "BUTTON_EVENTS",
    "COMMAND_EVENTS",
    "OBJECTS",
    "UUID16",
    "BTHomeObject",
    "BTHomePacket",
    "DeviceState",
    "UnknownObjectError",
    "ad_structure",
    "advertiser_mac",
    "decode",
    "decrypt",
    "describe",
    "encode",
    "format_mac",
    "iter_objects",
    "parse_key",
    "parse_mac",
    "strip_uuid",
]

"""Sensirion SPS30 particulate sensor over UART: SHDLC framing, 115200 8N1.

From the SPS30 datasheet (section 5, "UART interface"):

- host to sensor (MOSI): ``7E ADR CMD L DATA... CHK 7E``; sensor to host (MISO):
  ``7E ADR CMD STATE L DATA... CHK 7E``. ADR is 0. CHK is the bitwise inverse of the low
  byte of the sum of every byte between the start and stop bytes (before stuffing);
- byte stuffing between start and stop: 0x7E -> 7D 5E, 0x7D -> 7D 5D, 0x11 -> 7D 31,
  0x13 -> 7D 33;
- STATE: 0 no error, 0x01 wrong data length, 0x02 unknown command, 0x03 no access right,
  0x04 illegal parameter, 0x28 argument out of range, 0x43 not allowed in this state (bit 7:
  a device error flag is set in the status register);
- commands: 0x00 start measurement (data 01 03: big-endian IEEE754 floats; 01 05: uint16),
  0x01 stop, 0x03 read measured values (answer: 40 bytes of 10 floats, 20 bytes of 10
  uint16, or nothing when no new values since the last read), 0x10 sleep, 0x11 wake-up,
  0x56 start fan cleaning, 0x80 auto cleaning interval, 0xD0 device information,
  0xD1 version, 0xD2 status register, 0xD3 reset.

The 10 values: mass concentration PM1.0, PM2.5, PM4.0, PM10 (ug/m3), number concentration
PM0.5, PM1.0, PM2.5, PM4.0, PM10 (particles smaller than the size, per cm3), typical particle
size (um). A new value comes every second. `describe(data, options)` is the
`estran decode sps30` face; see docs/protocols/air-quality.md.
"""

import struct

from protocols._stream import NEED_DATA, FrameBuffer, NeedData
from protocols.describe import describe_stream, result
from protocols.errors import (
    CHECKSUM,
    EXCEPTION,
    MALFORMED,
    TRUNCATED,
    LocalProtocolError,
    RemoteProtocolError,
)
from protocols.reading import Measurement

BAUD_RATE = 115200
FLAG = 0x7E
ESCAPE = 0x7D
_STUFF = {0x7E: 0x5E, 0x7D: 0x5D, 0x11: 0x31, 0x13: 0x33}
_UNSTUFF = {v: k for k, v in _STUFF.items()}

START_MEASUREMENT = 0x00
STOP_MEASUREMENT = 0x01
READ_VALUES = 0x03
SLEEP = 0x10
WAKE_UP = 0x11
FAN_CLEANING = 0x56
AUTO_CLEANING = 0x80
DEVICE_INFO = 0xD0
VERSION = 0xD1
STATUS = 0xD2
RESET = 0xD3
COMMANDS = {
    START_MEASUREMENT: "start_measurement",
    STOP_MEASUREMENT: "stop_measurement",
    READ_VALUES: "read_measured_values",
    SLEEP: "sleep",
    WAKE_UP: "wake_up",
    FAN_CLEANING: "start_fan_cleaning",
    AUTO_CLEANING: "auto_cleaning_interval",
    DEVICE_INFO: "device_information",
    VERSION: "read_version",
    STATUS: "read_status_register",
    RESET: "reset",
}
FORMAT_FLOAT = 0x03
FORMAT_UINT16 = 0x05

STATES = {
    0x00: "no error",
    0x01: "wrong data length for this command",
    0x02: "unknown command",
    0x03: "no access right for command",
    0x04: "illegal command parameter or parameter out of range",
    0x28: "internal function argument out of range",
    0x43: "command not allowed in current state",
}

NAMES = (
    ("pm1", "ug/m3"),
    ("pm25", "ug/m3"),
    ("pm4", "ug/m3"),
    ("pm10", "ug/m3"),
    ("count_pm0_5", "/cm3"),
    ("count_pm1", "/cm3"),
    ("count_pm2_5", "/cm3"),
    ("count_pm4", "/cm3"),
    ("count_pm10", "/cm3"),
    ("typical_size", "um"),
)

MAX_DATA = 255
MAX_STUFFED = 2 * (5 + MAX_DATA + 1) + 2  # every byte stuffed, plus the two flags
DEFAULT_MAX_BUFFER = 1024
MISO = "miso"
MOSI = "mosi"


def frame_checksum(content: "bytes") -> "int":
    total = 0
    for b in content:
        total += b
    return (~total) & 0xFF


def stuff(data: "bytes") -> "bytes":
    out = bytearray()
    for b in data:
        s = _STUFF.get(b)
        if s is None:
            out.append(b)
        else:
            out.append(ESCAPE)
            out.append(s)
    return bytes(out)


def unstuff(data: "bytes") -> "bytes":
    """The bytes of a frame's content as sent before stuffing (RemoteProtocolError
    ``malformed`` for an escape not followed by one of 5E, 5D, 31, 33)."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        b = data[i]
        if b == ESCAPE:
            if i + 1 >= n or data[i + 1] not in _UNSTUFF:
                raise RemoteProtocolError(MALFORMED, "SHDLC escape 7D not followed by 5E/5D/31/33")
            out.append(_UNSTUFF[data[i + 1]])
            i += 2
        else:
            out.append(b)
            i += 1
    return bytes(out)


def mosi(cmd: "int", data: "bytes" = b"", address: "int" = 0) -> "bytes":
    """A host-to-sensor frame, stuffed and flagged."""
    if not 0 <= cmd <= 0xFF or not 0 <= address <= 0xFF:
        raise LocalProtocolError("SHDLC command and address are bytes")
    if len(data) > MAX_DATA:
        raise LocalProtocolError("SHDLC frames carry at most 255 data bytes")
    content = bytes((address, cmd, len(data))) + bytes(data)
    return bytes((FLAG,)) + stuff(content + bytes((frame_checksum(content),))) + bytes((FLAG,))


def miso(cmd: "int", state: "int", data: "bytes" = b"", address: "int" = 0) -> "bytes":
    """A sensor-to-host frame (simulator side), stuffed and flagged."""
    if len(data) > MAX_DATA:
        raise LocalProtocolError("SHDLC frames carry at most 255 data bytes")
    content = bytes((address, cmd, state, len(data))) + bytes(data)
    return bytes((FLAG,)) + stuff(content + bytes((frame_checksum(content),))) + bytes((FLAG,))


def start_measurement(floats: "bool" = True) -> "bytes":
    """Start measuring (``7E 00 00 02 01 03 F9 7E`` for floats)."""
    return mosi(START_MEASUREMENT, bytes((0x01, FORMAT_FLOAT if floats else FORMAT_UINT16)))


def stop_measurement() -> "bytes":
    return mosi(STOP_MEASUREMENT)


def read_values() -> "bytes":
    """``7E 00 03 00 FC 7E``."""
    return mosi(READ_VALUES)


def device_info(what: "int" = 0) -> "bytes":
    """0: product type, 3: serial number."""
    return mosi(DEVICE_INFO, bytes((what,)))


def read_version() -> "bytes":
    return mosi(VERSION)


def sleep() -> "bytes":
    return mosi(SLEEP)


def wake_up() -> "bytes":
    """The wake-up sequence: a 0xFF (the low pulse that wakes the UART) then the command."""
    return b"\xff" + mosi(WAKE_UP)


def encode_values(values: "list[float] | tuple[float, ...]", floats: "bool" = True) -> "bytes":
    """10 values as the read command answers them (simulator side)."""
    if len(values) != len(NAMES):
        raise LocalProtocolError("the SPS30 answers 10 values")
    if floats:
        return b"".join(struct.pack(">f", v) for v in values)
    out = b""
    for v in values:
        n = round(v)
        if not 0 <= n <= 0xFFFF:
            raise LocalProtocolError("uint16 values are 0..65535")
        out += struct.pack(">H", n)
    return out


class ShdlcFrame:
    """One frame: `direction` (MISO from the sensor, MOSI from the host), `address`,
    `command`, `state` (None for MOSI), `data` (unstuffed), `raw` (as on the wire)."""

    __slots__ = ("address", "command", "data", "direction", "raw", "skipped", "state")

    def __init__(
        self,
        direction: "str",
        address: "int",
        command: "int",
        state: "int | None",
        data: "bytes",
        raw: "bytes",
        skipped: "int" = 0,
    ) -> "None":
        self.direction = direction
        self.address = address
        self.command = command
        self.state = state
        self.data = data
        self.raw = raw
        self.skipped = skipped

    @property
    def error(self) -> "str | None":
        """The state's meaning when it is not 0 (MISO only)."""
        if not self.state:
            return None
        text = STATES.get(self.state & 0x7F, "state 0x%02X" % self.state)
        if self.state & 0x80:
            text += " (device error flag set: read the status register)"
        return text

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, ShdlcFrame) and self.raw == other.raw

    def __repr__(self) -> "str":
        return "ShdlcFrame(%r, 0x%02X, %r, %s)" % (
            self.direction,
            self.command,
            self.state,
            self.data.hex(),
        )


def parse_content(content: "bytes", direction: "str") -> "tuple[int, int, int | None, bytes]":
    """(address, command, state, data) of an unstuffed frame content (checksum included)."""
    header = 4 if direction == MISO else 3
    if len(content) < header + 1:
        raise RemoteProtocolError(MALFORMED, "SHDLC frame of %d bytes is too short" % len(content))
    length = content[header - 1]
    if len(content) != header + length + 1:
        raise RemoteProtocolError(
            MALFORMED,
            "SHDLC %s frame: length byte %d, but %d data bytes"
            % (direction.upper(), length, len(content) - header - 1),
        )
    expected = frame_checksum(content[:-1])
    if content[-1] != expected:
        raise RemoteProtocolError(
            CHECKSUM, "SHDLC frame: checksum 0x%02X, expected 0x%02X" % (content[-1], expected)
        )
    state = content[2] if direction == MISO else None
    return content[0], content[1], state, content[header:-1]


class ShdlcStream(FrameBuffer):
    """SHDLC frames from a byte stream fed in arbitrary pieces. `direction` MISO (what a
    host reads, the default), MOSI (what a sensor reads) or None (each frame as MISO, else
    as MOSI: a capture of both directions). A bad frame raises
    `RemoteProtocolError` and is dropped up to its closing flag (which may open the next
    frame); at most `max_buffer` bytes wait (``overflow``)."""

    __slots__ = ("direction",)

    def __init__(
        self, direction: "str | None" = MISO, max_buffer: "int" = DEFAULT_MAX_BUFFER
    ) -> "None":
        if direction not in (MISO, MOSI, None):
            raise LocalProtocolError("direction is 'miso' or 'mosi'")
        if max_buffer < MAX_STUFFED:
            raise LocalProtocolError("max_buffer must hold one frame (%d bytes)" % MAX_STUFFED)
        super().__init__(max_buffer)
        self.direction = direction

    def next_event(self) -> "ShdlcFrame | NeedData":
        while True:
            buf = self._buf
            start = buf.find(b"\x7e")
            if start < 0:
                self._skip(len(buf))
                return NEED_DATA
            if start:
                self._skip(start)
                buf = self._buf
            end = buf.find(b"\x7e", 1)
            if end < 0:
                if len(buf) > MAX_STUFFED:
                    self._buf = buf[1:]
                    self._pending_skip = 0
                    raise RemoteProtocolError(
                        MALFORMED, "SHDLC frame longer than %d bytes" % MAX_STUFFED
                    )
                return NEED_DATA
            if end == 1:  # 7E 7E: a stop flag then a start flag; the second opens
                self._skip(1)
                continue
            raw = buf[: end + 1]
            self._buf = buf[end:]  # keep the closing flag: it may open the next frame
            try:
                content = unstuff(raw[1:-1])
                direction = self.direction or MISO
                try:
                    address, cmd, state, data = parse_content(content, direction)
                    if self.direction is None and state and data:
                        # an error answer carries no data: this reads better as a command
                        raise RemoteProtocolError(MALFORMED, "error state with data")
                except RemoteProtocolError:
                    if self.direction is not None:
                        raise
                    direction = MOSI
                    address, cmd, state, data = parse_content(content, direction)
            except RemoteProtocolError:
                self._pending_skip = 0
                raise
            self._buf = buf[end + 1 :]
            skipped, self._pending_skip = self._pending_skip, 0
            self.frames_total += 1
            return ShdlcFrame(direction, address, cmd, state, data, raw, skipped)

    def finish(self) -> "None":
        """End of input: raise ``truncated`` if a frame was cut off (the buffer is emptied)."""
        rest = self._buf
        self._buf = b""
        self._pending_skip = 0
        if rest and rest != b"\x7e":
            raise RemoteProtocolError(
                TRUNCATED, "incomplete SHDLC frame at end of data: %s" % rest.hex()
            )


def values(frame: "ShdlcFrame") -> "list[Measurement]":
    """The readings of a read-measured-values answer: [] when the sensor had no new values.
    Raises ``exception`` for an error state, ``malformed`` for a length that is neither 0,
    20 (uint16) nor 40 (float)."""
    if frame.command != READ_VALUES:
        raise LocalProtocolError("values() reads the answer to command 0x03")
    if frame.state:
        raise RemoteProtocolError(EXCEPTION, "SPS30 read: %s" % frame.error)
    data = frame.data
    if not data:
        return []
    out = []
    if len(data) == 40:
        for i in range(10):
            (v,) = struct.unpack(">f", data[4 * i : 4 * i + 4])
            if v != v or v in (float("inf"), float("-inf")):
                raise RemoteProtocolError(MALFORMED, "SPS30 value %d is not a number" % (i + 1))
            name, unit = NAMES[i]
            out.append(Measurement(name, round(v, 4), unit))
    elif len(data) == 20:
        for i in range(10):
            (n,) = struct.unpack(">H", data[2 * i : 2 * i + 2])
            name, unit = NAMES[i]
            out.append(Measurement(name, n / 1000 if i == 9 else n, unit))  # size in nm
    else:
        raise RemoteProtocolError(
            MALFORMED, "SPS30 measured values of %d bytes (0, 20 or 40 expected)" % len(data)
        )
    return out


def _text(data: "bytes") -> "str":
    return data.split(b"\x00", 1)[0].decode("ascii", "replace")


def _describe_frame(frame: "ShdlcFrame") -> "dict[str, object]":
    cmd = frame.command
    fields = {
        "direction": frame.direction,
        "address": frame.address,
        "command": COMMANDS.get(cmd, "0x%02X" % cmd),
    }  # type: dict[str, object]
    if frame.direction == MOSI:
        fields["data"] = frame.data.hex()
        return result("sps30", True, None, fields, [])
    fields["state"] = frame.state
    if frame.state:
        return result("sps30", False, "%s: %s" % (EXCEPTION, frame.error), fields, [])
    readings = []  # type: list[dict[str, object]]
    data = frame.data
    if cmd == READ_VALUES:
        try:
            found = values(frame)
        except RemoteProtocolError as e:
            return result("sps30", False, str(e), fields, [])
        fields["new_values"] = bool(found)
        fields["format"] = "float" if len(data) == 40 else ("uint16" if data else None)
        readings = [m.as_dict() for m in found]
    elif cmd == DEVICE_INFO:
        fields["info"] = _text(data)
    elif cmd == VERSION and len(data) >= 7:
        fields["firmware"] = "%d.%d" % (data[0], data[1])
        fields["hardware"] = data[3]
        fields["shdlc"] = "%d.%d" % (data[5], data[6])
    elif cmd == STATUS and len(data) >= 4:
        register = data[0] << 24 | data[1] << 16 | data[2] << 8 | data[3]
        fields["status_register"] = "0x%08X" % register
        fields["fan_speed_warning"] = bool(register & (1 << 21))
        fields["laser_failure"] = bool(register & (1 << 5))
        fields["fan_failure"] = bool(register & (1 << 4))
    elif cmd == AUTO_CLEANING and len(data) == 4:
        fields["auto_cleaning_interval_s"] = struct.unpack(">I", data)[0]
    elif data:
        fields["data"] = data.hex()
    return result("sps30", True, None, fields, readings)


def describe(data: "bytes", options: "dict[str, object]") -> "list[dict[str, object]]":
    """One contract dict per SHDLC frame in `data`. Option ``direction``: ``miso`` (answers
    of the sensor), ``mosi`` (commands of the host); default: each frame is read as MISO,
    else as MOSI."""
    direction = options.get("direction")
    if direction is not None and direction not in (MISO, MOSI):
        raise LocalProtocolError("direction is 'miso' or 'mosi', not %r" % (direction,))
    stream = ShdlcStream(direction if isinstance(direction, str) else None)
    step = DEFAULT_MAX_BUFFER - MAX_STUFFED  # one partial frame and a step fit
    return describe_stream(stream, "sps30", data, _describe_frame, step)


__all__ = [
    "BAUD_RATE",
    "COMMANDS",
    "DEVICE_INFO",
    "MISO",
    "MOSI",
    "NAMES",
    "NEED_DATA",
    "READ_VALUES",
    "START_MEASUREMENT",
    "STATES",
    "STOP_MEASUREMENT",
    "NeedData",
    "ShdlcFrame",
    "ShdlcStream",
    "describe",
    "device_info",
    "encode_values",
    "frame_checksum",
    "miso",
    "mosi",
    "parse_content",
    "read_values",
    "read_version",
    "sleep",
    "start_measurement",
    "stop_measurement",
    "stuff",
    "unstuff",
    "values",
    "wake_up",
]

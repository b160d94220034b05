"""Nova Fitness SDS011 (and SDS018/SDS021) particulate sensor, UART 9600 8N1.

From the "Laser Dust Sensor Control Protocol V1.3" (Nova Fitness):

- the sensor sends 10-byte frames ``AA CMD D1..D6 CS AB`` with CS = (D1 + ... + D6) & 0xFF.
  ``CMD = C0``: a measurement, PM2.5 = (D2 * 256 + D1) / 10 and PM10 = (D4 * 256 + D3) / 10
  ug/m3, D5 D6 the device id; ``CMD = C5``: a reply to a command, D1 the command id;
- the host sends 19-byte commands ``AA B4 CMD D1..D12 IDL IDH CS AB`` with CS the sum of
  bytes 2..16 (& 0xFF) and device id FFFF for "any sensor". Commands: 2 data reporting mode
  (active: a frame every second; query: only on request), 4 query data, 5 set device id,
  6 sleep and work, 7 firmware version, 8 working period (0: continuous; 1..30: work 30 s,
  then sleep n x 60 - 30 s: the sensor's own duty cycle, which the datasheet recommends to
  spare the laser, rated about 8000 hours of continuous use).

Settings (mode, working period) stay in the sensor across power cuts. `describe(data, options)`
is the `estran decode sds011` face; see docs/protocols/air-quality.md.
"""

from protocols._stream import NEED_DATA, FrameBuffer, NeedData
from protocols.describe import describe_stream, result
from protocols.errors import (
    CHECKSUM,
    MALFORMED,
    TRUNCATED,
    LocalProtocolError,
    RemoteProtocolError,
)
from protocols.reading import Measurement

BAUD_RATE = 9600
HEAD = 0xAA
TAIL = 0xAB
DATA = 0xC0  # a measurement from the sensor
REPLY = 0xC5  # a reply from the sensor
COMMAND = 0xB4  # a command to the sensor
FRAME_LEN = 10
COMMAND_LEN = 19
ANY_DEVICE = 0xFFFF

REPORTING_MODE = 2
QUERY_DATA = 4
SET_DEVICE_ID = 5
SLEEP_WORK = 6
FIRMWARE = 7
WORKING_PERIOD = 8
COMMANDS = {
    REPORTING_MODE: "reporting_mode",
    QUERY_DATA: "query_data",
    SET_DEVICE_ID: "set_device_id",
    SLEEP_WORK: "sleep_work",
    FIRMWARE: "firmware",
    WORKING_PERIOD: "working_period",
}
MAX_PERIOD = 30  # minutes
WORK_SECONDS = 30  # a duty cycle's working time before the frame
DEFAULT_MAX_BUFFER = 256


def checksum(data: "bytes") -> "int":
    total = 0
    for b in data:
        total += b
    return total & 0xFF


def command(cmd: "int", data: "bytes" = b"", device_id: "int" = ANY_DEVICE) -> "bytes":
    """The 19-byte command `cmd` with up to 12 data bytes (zero-padded) for `device_id`."""
    if cmd not in COMMANDS:
        raise LocalProtocolError("unknown SDS011 command %r" % (cmd,))
    if len(data) > 12:
        raise LocalProtocolError("an SDS011 command carries at most 12 data bytes")
    if not isinstance(device_id, int) or not 0 <= device_id <= 0xFFFF:
        raise LocalProtocolError("device id must be 0..0xFFFF, got %r" % (device_id,))
    body = bytes((cmd,)) + bytes(data) + bytes(12 - len(data))
    body += bytes((device_id >> 8, device_id & 0xFF))
    return bytes((HEAD, COMMAND)) + body + bytes((checksum(body), TAIL))


def set_reporting_mode(query: "bool", device_id: "int" = ANY_DEVICE) -> "bytes":
    """Set active (False) or query (True) reporting."""
    return command(REPORTING_MODE, bytes((1, 1 if query else 0)), device_id)


def query_data(device_id: "int" = ANY_DEVICE) -> "bytes":
    """Ask for one measurement (answered by a C0 frame)."""
    return command(QUERY_DATA, b"", device_id)


def set_sleep(sleeping: "bool", device_id: "int" = ANY_DEVICE) -> "bytes":
    """Sleep (True: fan and laser off) or work (False)."""
    return command(SLEEP_WORK, bytes((1, 0 if sleeping else 1)), device_id)


def query_sleep(device_id: "int" = ANY_DEVICE) -> "bytes":
    """Ask whether the sensor sleeps or works."""
    return command(SLEEP_WORK, bytes((0, 0)), device_id)


def set_working_period(minutes: "int", device_id: "int" = ANY_DEVICE) -> "bytes":
    """0: continuous; 1..30: work 30 s, then sleep minutes x 60 - 30 s."""
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not 0 <= minutes <= MAX_PERIOD:
        raise LocalProtocolError("working period must be 0..30 minutes, got %r" % (minutes,))
    return command(WORKING_PERIOD, bytes((1, minutes)), device_id)


def query_working_period(device_id: "int" = ANY_DEVICE) -> "bytes":
    return command(WORKING_PERIOD, bytes((0, 0)), device_id)


def query_firmware(device_id: "int" = ANY_DEVICE) -> "bytes":
    return command(FIRMWARE, b"", device_id)


def build_frame(kind: "int", payload: "bytes", device_id: "int") -> "bytes":
    """A 10-byte frame from the sensor: `kind` DATA or REPLY, 4 payload bytes, then the
    device id as the datasheet writes it (id A160: D5 = A1, D6 = 60)."""
    if len(payload) != 4:
        raise LocalProtocolError("an SDS011 frame carries 4 bytes before its device id")
    body = bytes(payload) + bytes((device_id >> 8 & 0xFF, device_id & 0xFF))
    return bytes((HEAD, kind)) + body + bytes((checksum(body), TAIL))


def build_data(pm25_tenths: "int", pm10_tenths: "int", device_id: "int" = 0xA160) -> "bytes":
    """A measurement frame (values in tenths of ug/m3, 0..65535)."""
    for v in (pm25_tenths, pm10_tenths):
        if not isinstance(v, int) or not 0 <= v <= 0xFFFF:
            raise LocalProtocolError("SDS011 values are 0..65535 tenths of ug/m3, got %r" % (v,))
    payload = bytes((pm25_tenths & 0xFF, pm25_tenths >> 8, pm10_tenths & 0xFF, pm10_tenths >> 8))
    return build_frame(DATA, payload, device_id)


class SdsFrame:
    """A frame: `kind` (DATA, REPLY or COMMAND), `payload` (D1..D6 for frames from the
    sensor, CMD D1..D12 for commands), `device_id`, `data` (its bytes), `skipped`."""

    __slots__ = ("data", "device_id", "kind", "payload", "skipped")

    def __init__(
        self, kind: "int", payload: "bytes", device_id: "int", data: "bytes", skipped: "int" = 0
    ) -> "None":
        self.kind = kind
        self.payload = payload
        self.device_id = device_id
        self.data = data
        self.skipped = skipped

    @property
    def pm25(self) -> "float":
        return (self.payload[1] << 8 | self.payload[0]) / 10

    @property
    def pm10(self) -> "float":
        return (self.payload[3] << 8 | self.payload[2]) / 10

    @property
    def command(self) -> "int":
        """The command id of a reply or a command (0 for a measurement)."""
        return 0 if self.kind == DATA else self.payload[0]

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, SdsFrame) and self.data == other.data

    def __repr__(self) -> "str":
        return "SdsFrame(%s)" % self.data.hex()


class SdsStream(FrameBuffer):
    """SDS011 frames from a byte stream fed in arbitrary pieces. Frames from the sensor (C0,
    C5) always; with `commands=True` also host commands (B4; the simulator's side). A bad
    frame raises `RemoteProtocolError` after dropping its first byte; at most `max_buffer`
    bytes wait (``overflow`` beyond)."""

    __slots__ = ("commands",)

    def __init__(self, commands: "bool" = False, max_buffer: "int" = DEFAULT_MAX_BUFFER) -> "None":
        if max_buffer < COMMAND_LEN:
            raise LocalProtocolError("max_buffer must hold one command (%d bytes)" % COMMAND_LEN)
        super().__init__(max_buffer)
        self.commands = commands

    def _kinds(self) -> "tuple[int, ...]":
        return (DATA, REPLY, COMMAND) if self.commands else (DATA, REPLY)

    def _skip_to_start(self) -> "None":
        buf = self._buf
        kinds = self._kinds()
        i = 0
        n = len(buf)
        while i < n:
            if buf[i] == HEAD and (i + 1 == n or buf[i + 1] in kinds):
                break
            i += 1
        if i:
            self._skip(i)

    def next_event(self) -> "SdsFrame | NeedData":
        self._skip_to_start()
        buf = self._buf
        if len(buf) < 2:
            return NEED_DATA
        kind = buf[1]
        size = COMMAND_LEN if kind == COMMAND else FRAME_LEN
        if len(buf) < size:
            return NEED_DATA
        data = buf[:size]
        if data[-1] != TAIL:
            raise self._bad(
                MALFORMED, "SDS011 frame %s: tail 0x%02X, not AB" % (data.hex(), data[-1])
            )
        if kind == COMMAND:
            body = data[2:17]
            device_id = data[15] << 8 | data[16]
        else:
            body = data[2:8]
            device_id = data[6] << 8 | data[7]
        expected = checksum(body)
        if data[-2] != expected:
            raise self._bad(
                CHECKSUM,
                "SDS011 frame %s: checksum 0x%02X, expected 0x%02X"
                % (data.hex(), data[-2], expected),
            )
        self._buf = buf[size:]
        skipped, self._pending_skip = self._pending_skip, 0
        self.frames_total += 1
        payload = data[2:15] if kind == COMMAND else data[2:8]
        return SdsFrame(kind, payload, device_id, data, skipped)

    def finish(self) -> "None":
        """End of input: raise ``truncated`` if a frame was cut off (the buffer is emptied)."""
        self._skip_to_start()
        rest = self._buf
        self._buf = b""
        self._pending_skip = 0
        if rest and rest != bytes((HEAD,)):
            raise RemoteProtocolError(
                TRUNCATED, "incomplete SDS011 frame at end of data: %s" % rest.hex()
            )


def measurements(frame: "SdsFrame") -> "list[Measurement]":
    """pm25 and pm10 (ug/m3) of a measurement frame; nothing for other frames."""
    if frame.kind != DATA:
        return []
    return [Measurement("pm25", frame.pm25, "ug/m3"), Measurement("pm10", frame.pm10, "ug/m3")]


def reply_fields(frame: "SdsFrame") -> "dict[str, object]":
    """What a reply (or a command) says, by command id."""
    p = frame.payload
    cmd = p[0]
    name = COMMANDS.get(cmd)
    fields = {"command": name if name else "0x%02X" % cmd}  # type: dict[str, object]
    if cmd == FIRMWARE:
        fields["firmware"] = "20%02d-%02d-%02d" % (p[1], p[2], p[3])
        return fields
    if cmd in (REPORTING_MODE, SLEEP_WORK, WORKING_PERIOD):
        fields["set"] = p[1] == 1
        if cmd == REPORTING_MODE:
            fields["reporting_mode"] = "query" if p[2] else "active"
        elif cmd == SLEEP_WORK:
            fields["state"] = "working" if p[2] else "sleeping"
        else:
            fields["working_period_min"] = p[2]
    elif cmd == SET_DEVICE_ID and frame.kind == COMMAND:
        fields["new_device_id"] = "%04X" % (p[11] << 8 | p[12])
    return fields


def _describe(frame: "SdsFrame") -> "dict[str, object]":
    fields = {"device_id": "%04X" % frame.device_id}  # type: dict[str, object]
    if frame.kind == DATA:
        fields["kind"] = "data"
    elif frame.kind == REPLY:
        fields["kind"] = "reply"
        fields.update(reply_fields(frame))
    else:
        fields["kind"] = "command"
        fields.update(reply_fields(frame))
    fields["skipped_bytes"] = frame.skipped
    return result("sds011", True, None, fields, [m.as_dict() for m in measurements(frame)])


def describe(data: "bytes", options: "dict[str, object]") -> "list[dict[str, object]]":
    """One contract dict per frame in `data`: measurements, replies and host commands."""
    stream = SdsStream(commands=True)
    return describe_stream(stream, "sds011", data, _describe, DEFAULT_MAX_BUFFER // 2)


__all__ = [
    "ANY_DEVICE",
    "BAUD_RATE",
    "COMMAND",
    "DATA",
    "FIRMWARE",
    "MAX_PERIOD",
    "NEED_DATA",
    "QUERY_DATA",
    "REPLY",
    "REPORTING_MODE",
    "SET_DEVICE_ID",
    "SLEEP_WORK",
    "WORKING_PERIOD",
    "WORK_SECONDS",
    "NeedData",
    "SdsFrame",
    "SdsStream",
    "build_data",
    "build_frame",
    "checksum",
    "command",
    "describe",
    "measurements",
    "query_data",
    "query_firmware",
    "query_sleep",
    "query_working_period",
    "reply_fields",
    "set_reporting_mode",
    "set_sleep",
    "set_working_period",
]

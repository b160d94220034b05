"""Plantower PMS5003 / PMS7003 / PMS5003T / PMS5003ST particulate sensors (UART, 9600 8N1).

Frames from the sensor (Plantower data manuals, "transport protocol"):

- data: ``42 4D`` + frame length (big endian, 2 x data words + 2) + data words + checksum
  (big endian, the 16-bit sum of every byte before it). PMS5003, PMS7003 and PMS5003T send
  28 (13 words, 32-byte frames); PMS5003ST sends 36 (17 words, 40-byte frames);
- reply to a mode or sleep command: ``42 4D 00 04 CMD DATA`` + checksum (8 bytes).

Words 1-3: PM1.0, PM2.5, PM10 in ug/m3 at "CF=1, standard particle" (the factory's
calibration aerosol); words 4-6: the same "under atmospheric environment" (Plantower's own
conversion for ambient air; these are the readings). Words 7-12 count the particles above
0.3, 0.5, 1.0, 2.5, 5.0 and 10 um in 0.1 L of air. PMS5003T puts temperature (x10, signed)
and humidity (x10) in words 10-11 (no 5.0 and 10 um counts); PMS5003ST adds formaldehyde
(ug/m3), temperature and humidity after the counts. The last word holds the firmware
version (high byte) and an error code (low byte).

Commands to the sensor, 7 bytes: ``42 4D CMD DATAH DATAL`` + checksum: ``E2 00 00`` read in
passive mode, ``E1 00 0x`` change mode (0 passive, 1 active), ``E4 00 0x`` sleep (0) or
wake up (1). In active mode (the default at power-up) the sensor sends a frame every 200 to
2300 ms; in passive mode only when read.

No compensation is applied: see docs/protocols/air-quality.md ("temperature and humidity").
`describe(data, options)` is the `estran decode pms` face.
"""

from protocols._stream import NEED_DATA, FrameBuffer, NeedData
from protocols._typing import TYPE_CHECKING
from protocols.describe import describe_stream, result
from protocols.errors import (
    CHECKSUM,
    MALFORMED,
    TRUNCATED,
    UNSUPPORTED,
    LocalProtocolError,
    RemoteProtocolError,
)
from protocols.reading import Measurement

if TYPE_CHECKING:
    from typing import Union

    Event = Union["PmsFrame", "PmsReply"]

BAUD_RATE = 9600
START = b"BM"  # 0x42 0x4D

CMD_READ = 0xE2
CMD_MODE = 0xE1
CMD_SLEEP = 0xE4
COMMANDS = {CMD_READ: "read", CMD_MODE: "mode", CMD_SLEEP: "sleep"}
MODE_PASSIVE = 0
MODE_ACTIVE = 1
WARMUP = 30.0  # seconds after a wake-up before the values are stable (data manual)

PMS5003 = "pms5003"
PMS7003 = "pms7003"
PMS5003T = "pms5003t"
PMS5003ST = "pms5003st"
# model -> (frame length field, description)
MODELS = {
    PMS5003: (28, "Plantower PMS5003"),
    PMS7003: (28, "Plantower PMS7003 / PMSA003 (same frame as the PMS5003)"),
    PMS5003T: (28, "Plantower PMS5003T (temperature and humidity in words 10-11)"),
    PMS5003ST: (36, "Plantower PMS5003ST (formaldehyde, temperature, humidity)"),
}
_REPLY_LENGTH = 4
_LENGTHS = (_REPLY_LENGTH, 28, 36)
MAX_FRAME = 4 + 36
DEFAULT_MAX_BUFFER = 512

_SIZES = ("0_3", "0_5", "1_0", "2_5", "5_0", "10")


def checksum(data: "bytes") -> "int":
    """The 16-bit sum of `data` (every byte of a frame before its checksum)."""
    total = 0
    for b in data:
        total += b
    return total & 0xFFFF


def command(cmd: "int", data: "int" = 0) -> "bytes":
    """The 7-byte command frame ``42 4D CMD DATAH DATAL CHKH CHKL``."""
    if cmd not in COMMANDS:
        raise LocalProtocolError("unknown PMS command %r" % (cmd,))
    if not isinstance(data, int) or not 0 <= data <= 0xFFFF:
        raise LocalProtocolError("PMS command data must be 0..65535, got %r" % (data,))
    body = START + bytes((cmd, data >> 8, data & 0xFF))
    total = checksum(body)
    return body + bytes((total >> 8, total & 0xFF))


def read_passive() -> "bytes":
    """Ask for one frame in passive mode (``42 4D E2 00 00 01 71``)."""
    return command(CMD_READ, 0)


def set_mode(active: "bool") -> "bytes":
    """Change to active (True) or passive (False) mode."""
    return command(CMD_MODE, MODE_ACTIVE if active else MODE_PASSIVE)


def sleep() -> "bytes":
    """Stop the fan and the laser (``42 4D E4 00 00 01 73``); the UART stays on."""
    return command(CMD_SLEEP, 0)


def wake() -> "bytes":
    """Wake up (``42 4D E4 00 01 01 74``); stable data about 30 s later."""
    return command(CMD_SLEEP, 1)


def build_reply(cmd: "int", data: "int") -> "bytes":
    """The sensor's 8-byte reply to a mode or sleep command (simulator side)."""
    body = START + bytes((0, _REPLY_LENGTH, cmd & 0xFF, data & 0xFF))
    total = checksum(body)
    return body + bytes((total >> 8, total & 0xFF))


def build_frame(words: "list[int] | tuple[int, ...]") -> "bytes":
    """A data frame carrying `words` (13 or 17 16-bit words; simulator side)."""
    if len(words) not in (13, 17):
        raise LocalProtocolError("a PMS data frame has 13 or 17 words, not %d" % len(words))
    body = bytearray(START)
    length = 2 * len(words) + 2
    body += bytes((length >> 8, length & 0xFF))
    for w in words:
        if not isinstance(w, int) or not 0 <= w <= 0xFFFF:
            raise LocalProtocolError("PMS words are 0..65535, got %r" % (w,))
        body += bytes((w >> 8, w & 0xFF))
    total = checksum(bytes(body))
    body += bytes((total >> 8, total & 0xFF))
    return bytes(body)


class PmsFrame:
    """A data frame: `words` (13 or 17 data words, as sent), `data` its bytes, `skipped`
    the noise bytes discarded just before it."""

    __slots__ = ("data", "skipped", "words")

    def __init__(self, words: "tuple[int, ...]", data: "bytes", skipped: "int" = 0) -> "None":
        self.words = words
        self.data = data
        self.skipped = skipped

    @property
    def version(self) -> "int":
        return self.words[-1] >> 8

    @property
    def error_code(self) -> "int":
        return self.words[-1] & 0xFF

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, PmsFrame) and self.data == other.data

    def __repr__(self) -> "str":
        return "PmsFrame(%r)" % (self.words,)


class PmsReply:
    """The sensor's answer to a mode (0xE1) or sleep (0xE4) command: `command`, `value`."""

    __slots__ = ("command", "data", "skipped", "value")

    def __init__(self, command: "int", value: "int", data: "bytes", skipped: "int" = 0) -> "None":
        self.command = command
        self.value = value
        self.data = data
        self.skipped = skipped

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, PmsReply) and self.data == other.data

    def __repr__(self) -> "str":
        return "PmsReply(0x%02X, %d)" % (self.command, self.value)


class PmsStream(FrameBuffer):
    """PMS frames from a byte stream fed in arbitrary pieces (`receive_data`, then
    `next_event` until `NEED_DATA`). A bad frame raises `RemoteProtocolError` (``checksum``,
    ``malformed``, ``unsupported``) after dropping its first byte: catch, count, call again.
    At most `max_buffer` bytes wait; beyond that the oldest are dropped (``overflow``)."""

    __slots__ = ()

    def __init__(self, max_buffer: "int" = DEFAULT_MAX_BUFFER) -> "None":
        if max_buffer < MAX_FRAME:
            raise LocalProtocolError("max_buffer must hold one frame (%d bytes)" % MAX_FRAME)
        super().__init__(max_buffer)

    @property
    def buffered(self) -> "int":
        return len(self._buf)

    def _skip_to_start(self) -> "None":
        buf = self._buf
        i = buf.find(START)
        if i < 0:
            # keep a trailing 0x42: it may be the first half of the next start
            i = len(buf) - 1 if buf[-1:] == b"B" else len(buf)
        if i:
            self._skip(i)

    def next_event(self) -> "PmsFrame | PmsReply | NeedData":
        self._skip_to_start()
        buf = self._buf
        if len(buf) < 4:
            return NEED_DATA
        length = buf[2] << 8 | buf[3]
        if length not in _LENGTHS:
            if length == 20:
                raise self._bad(UNSUPPORTED, "PMS frame length 20 (PMS1003/PMS3003): not read")
            raise self._bad(MALFORMED, "PMS frame length %d (4, 28 or 36 expected)" % length)
        total = 4 + length
        if len(buf) < total:
            return NEED_DATA
        data = buf[:total]
        expected = checksum(data[:-2])
        sent = data[-2] << 8 | data[-1]
        if sent != expected:
            raise self._bad(
                CHECKSUM,
                "PMS frame %s: checksum 0x%04X, expected 0x%04X" % (data.hex(), sent, expected),
            )
        self._buf = buf[total:]
        skipped, self._pending_skip = self._pending_skip, 0
        self.frames_total += 1
        if length == _REPLY_LENGTH:
            return PmsReply(data[4], data[5], data, skipped)
        words = tuple(data[i] << 8 | data[i + 1] for i in range(4, total - 2, 2))
        return PmsFrame(words, data, skipped)

    def finish(self) -> "None":
        """End of input: raise ``truncated`` if a frame was cut off (the buffer is emptied)."""
        self._skip_to_start()
        rest = self._buf
        self._buf = b""
        self._pending_skip = 0
        if rest and rest != b"B":
            raise RemoteProtocolError(
                TRUNCATED, "incomplete PMS frame at end of data: %s" % rest.hex()
            )


def model_for(frame: "PmsFrame", model: "str | None" = None) -> "str":
    """The model that reads `frame`: `model` (checked against the frame's length), or the
    default for the length (28: pms5003, 36: pms5003st)."""
    n = len(frame.words)
    if model is None:
        return PMS5003ST if n == 17 else PMS5003
    spec = MODELS.get(model)
    if spec is None:
        raise LocalProtocolError(
            "unknown PMS model %r (known: %s)" % (model, ", ".join(sorted(MODELS)))
        )
    if spec[0] != 2 * n + 2:
        raise RemoteProtocolError(
            MALFORMED, "a %d-word frame cannot come from a %s (%s)" % (n, model, spec[1])
        )
    return model


def _signed(word: "int") -> "int":
    return word - 0x10000 if word & 0x8000 else word


def measurements(frame: "PmsFrame", model: "str | None" = None) -> "list[Measurement]":
    """The readings of a data frame: pm1, pm25, pm10 (atmospheric, ug/m3), particle counts
    per cm3 above each size, and the model's temperature, humidity, formaldehyde."""
    name = model_for(frame, model)
    w = frame.words
    out = [
        Measurement("pm1", w[3], "ug/m3"),
        Measurement("pm25", w[4], "ug/m3"),
        Measurement("pm10", w[5], "ug/m3"),
    ]
    counts = 4 if name == PMS5003T else 6
    for i in range(counts):
        # per 0.1 L = per 100 cm3
        out.append(Measurement("count_over_" + _SIZES[i] + "um", w[6 + i] / 100, "/cm3"))
    if name == PMS5003T:
        out.append(Measurement("temperature", _signed(w[10]) / 10, "Cel"))
        out.append(Measurement("humidity", w[11] / 10, "%RH"))
    elif name == PMS5003ST:
        out.append(Measurement("formaldehyde", w[12], "ug/m3"))  # mg/m3 x 1000
        out.append(Measurement("temperature", _signed(w[13]) / 10, "Cel"))
        out.append(Measurement("humidity", w[14] / 10, "%RH"))
    return out


def _describe_frame(frame: "PmsFrame | PmsReply", model: "str | None") -> "dict[str, object]":
    if isinstance(frame, PmsReply):
        fields = {
            "kind": "reply",
            "command": COMMANDS.get(frame.command, "0x%02X" % frame.command),
            "value": frame.value,
            "frame": frame.data.hex(),
        }  # type: dict[str, object]
        if frame.command == CMD_MODE:
            fields["mode"] = "active" if frame.value == MODE_ACTIVE else "passive"
        elif frame.command == CMD_SLEEP:
            fields["state"] = "awake" if frame.value else "asleep"
        return result("pms", True, None, fields, [])
    fields = {"kind": "data", "frame_length": 2 * len(frame.words) + 2}
    try:
        name = model_for(frame, model)
    except RemoteProtocolError as e:
        return result("pms", False, str(e), fields, [])
    w = frame.words
    fields["model"] = name
    fields["model_assumed"] = model is None
    fields["pm1_cf1"] = w[0]
    fields["pm25_cf1"] = w[1]
    fields["pm10_cf1"] = w[2]
    fields["version"] = frame.version
    fields["error_code"] = frame.error_code
    fields["skipped_bytes"] = frame.skipped
    readings = [m.as_dict() for m in measurements(frame, name)]
    return result("pms", True, None, fields, readings)


def _option_model(options: "dict[str, object]") -> "str | None":
    value = options.get("model")
    if value is None:
        return None
    name = str(value).lower()
    if name not in MODELS:
        raise LocalProtocolError(
            "unknown PMS model %r (known: %s)" % (value, ", ".join(sorted(MODELS)))
        )
    return name


def describe(data: "bytes", options: "dict[str, object]") -> "list[dict[str, object]]":
    """One contract dict per frame in `data` (protocols/describe.py). Option ``model``
    (pms5003, pms7003, pms5003t, pms5003st; default from the frame length, said in
    ``model_assumed``). A command sent to the sensor (7 bytes, 42 4D E1/E2/E4 ...) is
    described as ``kind: command``."""
    model = _option_model(options)
    data = bytes(data)
    if len(data) == 7 and data[:2] == START and data[2] in COMMANDS:
        # a command byte where a frame has its length's high byte (0): a frame cut after
        # 7 bytes goes to the stream and is reported truncated
        try:
            cmd, value = parse_command(data)
        except RemoteProtocolError as e:
            return [result("pms", False, str(e), {}, [])]
        fields = {"kind": "command", "command": COMMANDS[cmd], "value": value}
        return [result("pms", True, None, fields, [])]
    stream = PmsStream()

    def describe_event(event: "object") -> "dict[str, object]":
        assert isinstance(event, (PmsFrame, PmsReply))
        return _describe_frame(event, model)

    return describe_stream(stream, "pms", data, describe_event, DEFAULT_MAX_BUFFER // 2)


def parse_command(data: "bytes") -> "tuple[int, int]":
    """(command, data) of a 7-byte command frame (sensor side: the simulator)."""
    if len(data) != 7 or data[:2] != START:
        raise RemoteProtocolError(MALFORMED, "a PMS command is 7 bytes starting 42 4D")
    total = checksum(data[:5])
    if data[5] << 8 | data[6] != total:
        raise RemoteProtocolError(CHECKSUM, "PMS command %s: checksum" % data.hex())
    if data[2] not in COMMANDS:
        raise RemoteProtocolError(UNSUPPORTED, "PMS command 0x%02X" % data[2])
    return data[2], data[3] << 8 | data[4]


__all__ = [
    "BAUD_RATE",
    "CMD_MODE",
    "CMD_READ",
    "CMD_SLEEP",
    "MAX_FRAME",
    "MODELS",
    "MODE_ACTIVE",
    "MODE_PASSIVE",
    "NEED_DATA",
    "PMS5003",
    "PMS5003ST",
    "PMS5003T",
    "PMS7003",
    "WARMUP",
    "NeedData",
    "PmsFrame",
    "PmsReply",
    "PmsStream",
    "build_frame",
    "build_reply",
    "checksum",
    "command",
    "describe",
    "measurements",
    "model_for",
    "parse_command",
    "read_passive",
    "set_mode",
    "sleep",
    "wake",
]

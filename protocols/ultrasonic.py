"""Ultrasonic level sensors: MaxBotix ASCII and A02YYUW/ME007YS UART frames, bin fill level.

Two serial frame formats (both 9600 8N1, sent continuously by the sensor):

- MaxBotix ASCII (`MAXBOTIX`): ``R`` + 3 or 4 ASCII digits + CR (0x0D); some models (HRUSB)
  put one space before the CR. The unit depends on the model, not on the frame: 3 digits
  are inches on the LV-MaxSonar-EZ but centimetres on the XL-MaxSonar, 4 digits are
  millimetres on the HRLV/HRXL models but centimetres on the 10 m XL-MaxSonar-WRL. Each
  model reports its minimum range for anything closer and its maximum range ("R765",
  "R5000", "R9999") when it sees no target.
- DFRobot A02YYUW / ME007YS / SEN0311-SEN0313 binary (`A02YYUW`): ``0xFF, H, L, SUM`` with
  SUM = (0xFF + H + L) & 0xFF and distance = H * 256 + L, in millimetres (centimetres on the
  SEN0627).

`UltrasonicStream` parses frames from bytes fed in arbitrary pieces (h11 style:
`receive_data`, then `next_event` until `NEED_DATA`), skips line noise between frames,
resynchronises after a bad frame, and keeps its buffer bounded. `measure` turns a frame into
a distance for a given model (`MODELS`), with a `status` (``ok``, ``too_close``,
``no_target``), and `BinGeometry` turns a distance into a fill percentage. A no-target frame
has no distance and no fill: it is not an empty bin.

`describe(data, options)` is the `estran decode ultrasonic` face; see docs/protocols/ultrasonic.md.
"""

from protocols._stream import NEED_DATA, NeedData
from protocols._typing import TYPE_CHECKING
from protocols.describe import drain, result
from protocols.errors import (
    CHECKSUM,
    MALFORMED,
    OVERFLOW,
    TRUNCATED,
    LocalProtocolError,
    RemoteProtocolError,
)
from protocols.reading import Measurement

if TYPE_CHECKING:
    from typing import Union

    Number = Union[int, float]

MAXBOTIX = "maxbotix"
A02YYUW = "a02yyuw"
FORMATS = (MAXBOTIX, A02YYUW)

STATUS_OK = "ok"
STATUS_TOO_CLOSE = (
    "too_close"  # at or inside the sensor's minimum range: distance is an upper bound
)
STATUS_NO_TARGET = "no_target"  # the sensor's "nothing seen" value: no distance at all

_CR = 0x0D
_SP = 0x20
_HEADER = 0xFF
_A02_LEN = 4
_MAXBOTIX_MAX_LEN = 7  # R + 4 digits + space + CR

# Model table: name -> (format, unit of the raw value, MaxBotix digit count (0: binary),
# minimum raw value (anything closer reads this) or None, no-target raw value or None, label).
# Readings >= the no-target value mean "no target"; readings <= the minimum mean "too close".
MODELS = {
    "lv": (MAXBOTIX, "in", 3, 6, 254, "LV-MaxSonar-EZ (MB1000-MB1040), inches"),
    "xl": (
        MAXBOTIX,
        "cm",
        3,
        20,
        765,
        "XL-MaxSonar-EZ/-WR 7.65 m (MB1200-MB1340, MB7060-MB7092), cm",
    ),
    "xl10": (MAXBOTIX, "cm", 4, 25, 1068, "XL-MaxSonar-WRL 10 m (MB7066, MB7076), cm"),
    "hrlv": (MAXBOTIX, "mm", 4, 300, 5000, "HRLV-MaxSonar-EZ, HRXL-MaxSonar-WR 5 m, mm"),
    "hrxl10": (MAXBOTIX, "mm", 4, 300, 9999, "HRXL-MaxSonar-WR 10 m, mm"),
    "a02yyuw": (A02YYUW, "mm", 0, 30, None, "DFRobot A02YYUW (SEN0311), mm"),
    "me007ys": (A02YYUW, "mm", 0, None, None, "ME007YS (SEN0312) and same-frame sensors, mm"),
    "sen0627": (A02YYUW, "cm", 0, None, None, "DFRobot SEN0627, cm"),
}
# The model assumed when none is configured, by MaxBotix digit count (0: binary frame).
DEFAULT_MODELS = {3: "lv", 4: "hrlv", 0: "a02yyuw"}

# Raw unit -> (millimetres per unit as a fraction num/den, decimals of the value in metres).
_UNITS = {"mm": (1, 1, 3), "cm": (10, 1, 2), "in": (254, 10, 4)}

DEFAULT_MAX_BUFFER = 1024


class DistanceFrame:
    """One frame as sent: `raw` is the number on the wire, in the model's unit.

    `digits` is the MaxBotix digit count (0 for binary frames), `checksum` the A02YYUW SUM
    byte (None for MaxBotix), `data` the frame bytes, `skipped` the count of noise bytes
    discarded just before this frame.
    """

    __slots__ = ("checksum", "data", "digits", "format", "raw", "skipped")

    def __init__(
        self,
        format: "str",
        raw: "int",
        digits: "int",
        checksum: "int | None",
        data: "bytes",
        skipped: "int" = 0,
    ) -> "None":
        self.format = format
        self.raw = raw
        self.digits = digits
        self.checksum = checksum
        self.data = data
        self.skipped = skipped

    def __eq__(self, other: "object") -> "bool":
        return (
            isinstance(other, DistanceFrame)
            and self.format == other.format
            and self.raw == other.raw
            and self.digits == other.digits
            and self.checksum == other.checksum
            and self.data == other.data
        )

    def __repr__(self) -> "str":
        return "DistanceFrame(%r, %r, %r, %r, %r)" % (
            self.format,
            self.raw,
            self.digits,
            self.checksum,
            self.data,
        )


def a02_checksum(high: "int", low: "int") -> "int":
    """SUM byte of an A02YYUW frame: (0xFF + H + L) & 0xFF."""
    return (_HEADER + high + low) & 0xFF


def build_a02(raw: "int") -> "bytes":
    """The A02YYUW/ME007YS frame for a raw distance 0..65535 (sensor or simulator side)."""
    if not isinstance(raw, int) or raw < 0 or raw > 0xFFFF:
        raise LocalProtocolError("A02YYUW distance must be an int 0..65535, got %r" % (raw,))
    high = raw >> 8
    low = raw & 0xFF
    return bytes((_HEADER, high, low, a02_checksum(high, low)))


def build_maxbotix(raw: "int", digits: "int" = 4) -> "bytes":
    """The MaxBotix frame ``R`` + `digits` (3 or 4) digits + CR for a raw distance."""
    if digits not in (3, 4):
        raise LocalProtocolError("MaxBotix frames have 3 or 4 digits, not %r" % (digits,))
    if not isinstance(raw, int) or raw < 0 or raw >= 10**digits:
        raise LocalProtocolError("%r does not fit in %d digits" % (raw, digits))
    text = ("%04d" if digits == 4 else "%03d") % raw
    return b"R" + text.encode() + b"\r"


class UltrasonicStream:
    """Frames from a serial byte stream fed in arbitrary pieces.

    `format` is `MAXBOTIX`, `A02YYUW` or None (auto: both, for a technician's capture).
    `receive_data(bytes)` buffers; `next_event()` returns a `DistanceFrame` or `NEED_DATA`.
    A bad frame raises `RemoteProtocolError` (``checksum`` or ``malformed``) after dropping
    its first byte, so the next call resynchronises on the following bytes: catch, count,
    call again. Noise between frames is skipped and counted (`skipped_total`, and each
    frame's `skipped`). At most `max_buffer` bytes wait in the buffer: beyond that the oldest
    are dropped and ``overflow`` is raised (the newest bytes are kept; carry on reading).
    """

    __slots__ = (
        "_buf",
        "_pending_skip",
        "_pos",
        "format",
        "frames_total",
        "max_buffer",
        "skipped_total",
    )

    def __init__(
        self, format: "str | None" = None, max_buffer: "int" = DEFAULT_MAX_BUFFER
    ) -> "None":
        if format is not None and format not in FORMATS:
            raise LocalProtocolError("unknown ultrasonic format %r" % (format,))
        if max_buffer < _MAXBOTIX_MAX_LEN:
            raise LocalProtocolError(
                "max_buffer must hold one frame (%d bytes)" % _MAXBOTIX_MAX_LEN
            )
        self.format = format
        self.max_buffer = max_buffer
        self._buf = b""
        self._pos = 0
        self._pending_skip = 0
        self.skipped_total = 0
        self.frames_total = 0

    @property
    def buffered(self) -> "int":
        """Bytes received and not yet consumed."""
        return len(self._buf) - self._pos

    def receive_data(self, data: "bytes") -> "None":
        buf = self._buf[self._pos :] + bytes(data)
        self._pos = 0
        excess = len(buf) - self.max_buffer
        if excess > 0:
            self._buf = buf[excess:]
            self.skipped_total += excess
            raise RemoteProtocolError(
                OVERFLOW, "%d bytes dropped: more than %d bytes waiting" % (excess, self.max_buffer)
            )
        self._buf = buf

    def _find_start(self) -> "int":
        """Index of the next possible frame start at or after _pos, or len(buffer)."""
        buf = self._buf
        end = len(buf)
        found = end
        if self.format != A02YYUW:
            i = buf.find(b"R", self._pos)
            if i >= 0:
                found = i
        if self.format != MAXBOTIX:
            i = buf.find(b"\xff", self._pos, found)
            if i >= 0:
                found = i
        return found

    def _bad(self, start: "int", reason: "str", message: "str") -> "RemoteProtocolError":
        self._pos = start + 1  # drop the start byte only: a real frame may begin inside
        self._pending_skip = 0
        return RemoteProtocolError(reason, message)

    def next_event(self) -> "DistanceFrame | NeedData":
        start = self._find_start()
        skipped = start - self._pos
        self._pending_skip += skipped
        self.skipped_total += skipped
        self._pos = start
        buf = self._buf
        end = len(buf)
        if start >= end:
            return NEED_DATA
        if buf[start] == _HEADER:
            if end - start < _A02_LEN:
                return NEED_DATA
            high = buf[start + 1]
            low = buf[start + 2]
            total = buf[start + 3]
            expected = a02_checksum(high, low)
            data = buf[start : start + _A02_LEN]
            if total != expected:
                raise self._bad(
                    start,
                    CHECKSUM,
                    "A02YYUW frame %s: SUM 0x%02X, expected 0x%02X" % (data.hex(), total, expected),
                )
            frame = DistanceFrame(A02YYUW, high * 256 + low, 0, total, data, self._pending_skip)
            self._pos = start + _A02_LEN
        else:
            i = start + 1
            value = 0
            digits = 0
            while True:
                if i >= end:
                    return NEED_DATA
                c = buf[i]
                if 0x30 <= c <= 0x39:
                    digits += 1
                    if digits > 4:
                        raise self._bad(start, MALFORMED, "MaxBotix frame with more than 4 digits")
                    value = value * 10 + c - 0x30
                    i += 1
                    continue
                if c == _SP and digits:
                    if i + 1 >= end:
                        return NEED_DATA
                    i += 1
                    c = buf[i]
                if c == _CR:
                    break
                raise self._bad(
                    start,
                    MALFORMED,
                    "MaxBotix frame %r: byte 0x%02X where a digit or CR belongs"
                    % (bytes(buf[start : i + 1]), c),
                )
            if digits < 3:
                raise self._bad(
                    start,
                    MALFORMED,
                    "MaxBotix frame %r: 3 or 4 digits expected" % (buf[start : i + 1],),
                )
            frame = DistanceFrame(
                MAXBOTIX, value, digits, None, buf[start : i + 1], self._pending_skip
            )
            self._pos = i + 1
        self._pending_skip = 0
        self.frames_total += 1
        return frame

    def finish(self) -> "None":
        """End of input (call after `NEED_DATA`): raise ``truncated`` if a frame was cut off.

        The buffer is emptied either way; noise left at the end is only counted as skipped.
        """
        start = self._find_start()
        rest = self._buf[start:]
        self.skipped_total += start - self._pos
        self._buf = b""
        self._pos = 0
        self._pending_skip = 0
        if rest:
            raise RemoteProtocolError(TRUNCATED, "incomplete frame at end of data: %s" % rest.hex())


class BinGeometry:
    """Where the sensor sits in the bin, as distances from the sensor face, in millimetres.

    `empty_mm`: distance to the bin floor (0 % fill). `full_mm`: distance at 100 % fill,
    at least the sensor's blind zone (its minimum range). fill % =
    clamp((empty - d) / (empty - full) * 100, 0, 100), rounded to 0.1 %. A distance beyond
    the floor reads 0 % and one closer than `full_mm` reads 100 %; `fill` says when it
    clamped. A no-target frame has no distance, so it never reaches `fill`.
    """

    __slots__ = ("empty_mm", "full_mm")

    def __init__(self, empty_mm: "Number", full_mm: "Number" = 0) -> "None":
        for name, v in (("empty_mm", empty_mm), ("full_mm", full_mm)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v - v != 0:
                raise LocalProtocolError(
                    "%s must be a finite number of millimetres, got %r" % (name, v)
                )
        if not 0 <= full_mm < empty_mm:
            raise LocalProtocolError(
                "bin geometry needs 0 <= full_mm < empty_mm, got full_mm=%r empty_mm=%r"
                % (full_mm, empty_mm)
            )
        self.empty_mm = empty_mm
        self.full_mm = full_mm

    def fill(self, distance_mm: "Number") -> "tuple[float, bool]":
        """(fill percent rounded to 0.1, clamped) for a distance in millimetres."""
        percent = (self.empty_mm - distance_mm) * 100.0 / (self.empty_mm - self.full_mm)
        if percent < 0.0:
            return 0.0, True
        if percent > 100.0:
            return 100.0, True
        return round(percent, 1), False

    def __repr__(self) -> "str":
        return "BinGeometry(%r, %r)" % (self.empty_mm, self.full_mm)


class Level:
    """A frame read with its model: distance, status and (with a geometry) fill.

    `distance_mm` is None when `status` is ``no_target``; `fill` is None without a geometry
    or without a distance. `raw` and `unit` are the number on the wire and its unit.
    """

    __slots__ = ("distance_mm", "fill", "fill_clamped", "model", "raw", "status", "unit")

    def __init__(
        self,
        model: "str",
        unit: "str",
        raw: "int",
        distance_mm: "Number | None",
        status: "str",
        fill: "float | None" = None,
        fill_clamped: "bool" = False,
    ) -> "None":
        self.model = model
        self.unit = unit
        self.raw = raw
        self.distance_mm = distance_mm
        self.status = status
        self.fill = fill
        self.fill_clamped = fill_clamped

    def distance_m(self) -> "float | None":
        """The distance in metres, rounded to the resolution of the raw unit."""
        if self.distance_mm is None:
            return None
        num, den, decimals = _UNITS[self.unit]
        return round(self.raw * num / (den * 1000.0), decimals)

    def measurements(self) -> "list[Measurement]":
        """``distance`` (m) and ``fill`` (%), each only when known."""
        out = []
        m = self.distance_m()
        if m is not None:
            out.append(Measurement("distance", m, "m"))
        if self.fill is not None:
            out.append(Measurement("fill", self.fill, "%"))
        return out

    def __repr__(self) -> "str":
        return "Level(%r, %r, %r, %r, %r, %r)" % (
            self.model,
            self.unit,
            self.raw,
            self.distance_mm,
            self.status,
            self.fill,
        )


def to_mm(raw: "int", unit: "str") -> "Number":
    """A raw value in `unit` (mm, cm, in) as millimetres (int unless inches)."""
    num, den, _ = _UNITS[unit]
    if den == 1:
        return raw * num
    return round(raw * num / den, 1)


def model_for(frame: "DistanceFrame", model: "str | None" = None) -> "str":
    """The model that reads `frame`: `model`, or the default for the frame's shape.

    Raises `RemoteProtocolError` (``malformed``) when the frame cannot come from `model`.
    """
    if model is None:
        return DEFAULT_MODELS[frame.digits]
    spec = MODELS.get(model)
    if spec is None:
        raise LocalProtocolError(
            "unknown ultrasonic model %r (known: %s)" % (model, ", ".join(sorted(MODELS)))
        )
    if spec[0] != frame.format or spec[2] != frame.digits:
        raise RemoteProtocolError(
            MALFORMED,
            "%s frame %r cannot come from model %s (%s)"
            % (frame.format, frame.data, model, spec[5]),
        )
    return model


def blind_zone_mm(model: "str") -> "Number":
    """The model's minimum range in millimetres (0 when unknown)."""
    spec = MODELS[model]
    if spec[3] is None:
        return 0
    return to_mm(spec[3], spec[1])


def measure(
    frame: "DistanceFrame", model: "str | None" = None, geometry: "BinGeometry | None" = None
) -> "Level":
    """Read `frame` as sent by `model` (None: the default for its shape, see DEFAULT_MODELS)."""
    name = model_for(frame, model)
    _, unit, _, low, no_target, _ = MODELS[name]
    raw = frame.raw
    if no_target is not None and raw >= no_target:
        return Level(name, unit, raw, None, STATUS_NO_TARGET)
    status = STATUS_TOO_CLOSE if low is not None and raw <= low else STATUS_OK
    mm = to_mm(raw, unit)
    level = Level(name, unit, raw, mm, status)
    if geometry is not None:
        level.fill, level.fill_clamped = geometry.fill(mm)
    return level


def _option_mm(options: "dict[str, object]", key: "str") -> "Number | None":
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                pass
        raise LocalProtocolError("option %s must be millimetres, got %r" % (key, value))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise LocalProtocolError("option %s must be millimetres, got %r" % (key, value))
    return value


def _option_model(options: "dict[str, object]") -> "str | None":
    value = options.get("model")
    if value is None:
        return None
    name = str(value).lower()
    if name not in MODELS:
        raise LocalProtocolError(
            "unknown ultrasonic model %r (known: %s)" % (value, ", ".join(sorted(MODELS)))
        )
    return name


def _frame_text(frame: "DistanceFrame") -> "str":
    if frame.format == MAXBOTIX:
        return frame.data.decode().replace("\r", "\\r")
    return frame.data.hex()


def _describe_frame(
    frame: "DistanceFrame",
    model: "str | None",
    empty_mm: "Number | None",
    full_mm: "Number | None",
) -> "dict[str, object]":
    fields = {
        "format": frame.format,
        "frame": _frame_text(frame),
        "raw_distance": frame.raw,
    }  # type: dict[str, object]
    if frame.checksum is not None:
        fields["checksum"] = "0x%02X" % frame.checksum
    fields["skipped_bytes"] = frame.skipped
    try:
        name = model_for(frame, model)
    except RemoteProtocolError as e:
        return result("ultrasonic", False, str(e), fields, [])
    geometry = None
    if empty_mm is not None:
        if full_mm is None:
            full_mm = blind_zone_mm(name)
            if full_mm >= empty_mm:
                raise LocalProtocolError(
                    "empty_mm=%r is inside the blind zone of model %s (%r mm): the sensor "
                    "cannot see this floor" % (empty_mm, name, full_mm)
                )
        geometry = BinGeometry(empty_mm, full_mm)
    level = measure(frame, name, geometry)
    fields["model"] = name
    fields["model_assumed"] = model is None
    fields["raw_unit"] = level.unit
    fields["status"] = level.status
    if geometry is not None:
        fields["empty_mm"] = geometry.empty_mm
        fields["full_mm"] = geometry.full_mm
        if level.fill is not None:
            fields["fill_clamped"] = level.fill_clamped
    return result("ultrasonic", True, None, fields, [m.as_dict() for m in level.measurements()])


def describe(data: "bytes", options: "dict[str, object]") -> "list[dict[str, object]]":
    """One contract dict per frame in `data` (see protocols/describe.py).

    Options: ``model`` (a key of MODELS; default: guessed from the frame's shape and said so
    in ``model_assumed``), ``empty_mm`` and ``full_mm`` (bin geometry; ``full_mm`` defaults to
    the model's blind zone). Bad options raise `LocalProtocolError`; bad bytes never raise.
    """
    model = _option_model(options)
    empty_mm = _option_mm(options, "empty_mm")
    full_mm = _option_mm(options, "full_mm")
    if full_mm is not None and empty_mm is None:
        raise LocalProtocolError("option full_mm needs empty_mm (the distance to the bin floor)")
    if empty_mm is not None:
        BinGeometry(empty_mm, 0 if full_mm is None else full_mm)  # check it early
    stream = UltrasonicStream(MODELS[model][0] if model is not None else None)
    out = []  # type: list[dict[str, object]]

    def describe_frame(frame: "DistanceFrame") -> "dict[str, object]":
        return _describe_frame(frame, model, empty_mm, full_mm)

    step = DEFAULT_MAX_BUFFER // 2
    data = bytes(data)
    for offset in range(0, len(data), step):
        # the drained buffer keeps at most one partial frame, so this never overflows
        stream.receive_data(data[offset : offset + step])
        drain(stream, "ultrasonic", describe_frame, out)
    try:
        stream.finish()
    except RemoteProtocolError as e:
        out.append(result("ultrasonic", False, str(e), {}, []))
    if not out and data:
        out.append(
            result(
                "ultrasonic",
                False,
                "%s: no frame found in %d bytes" % (MALFORMED, len(data)),
                {"skipped_bytes": stream.skipped_total},
                [],
            )
        )
    return out


__all__ = [
    "A02YYUW",
    "DEFAULT_MODELS",
    "FORMATS",
    "MAXBOTIX",
    "MODELS",
    "NEED_DATA",
    "STATUS_NO_TARGET",
    "STATUS_OK",
    "STATUS_TOO_CLOSE",
    "BinGeometry",
    "DistanceFrame",
    "Level",
    "NeedData",
    "UltrasonicStream",
    "a02_checksum",
    "blind_zone_mm",
    "build_a02",
    "build_maxbotix",
    "describe",
    "measure",
    "model_for",
    "to_mm",
]

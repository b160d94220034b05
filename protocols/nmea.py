"""NMEA 0183: checksums, line framing, and the sentences a marina's instruments send.

A sentence is `$` (or `!` for encapsulated data such as AIS), an address (talker id of two
characters and a sentence type of three: `GPGGA`), comma-separated fields, `*` and two hex
digits, CR LF. The checksum is the XOR of every byte strictly between `$`/`!` and `*`.
The spec caps a sentence at 82 characters; real talkers exceed it (u-blox `$PUBX,03`
lists every satellite: 378 characters in pynmea2's test), so we accept up to MAX_LINE
(1024) and no more.

- `SentenceReader`: bytes fed in any pieces -> sentence lines (h11 style), resynchronising on
  `$`/`!` after garbage, bounded.
- `parse_sentence(line)`: framing and checksum -> `Sentence` (talker, type, raw fields).
  A sentence without `*hh` is accepted, with `checksum` None: some talkers omit it (the spec
  makes it optional for a few sentences), and a technician should still see the values;
  callers that must not trust unchecked data test `sentence.checksum is None`.
- `decode(sentence)`: typed fields and readings for GGA, RMC, GLL, VTG, MWV, MWD, XDR, DPT,
  DBT, MTW, VHW, HDG, HDT, HDM, ZDA. Proprietary (`$P...`), encapsulated (`!`) and other
  sentence types raise RemoteProtocolError(UNSUPPORTED) (`describe` shows them as valid
  frames it does not decode: framing and checksum are NMEA's even when the fields are a
  manufacturer's).

Readings use SenML units: latitude and longitude in decimal degrees as "lat" and "lon"
(south and west negative), speeds in "m/s" (knots, km/h and mph converted), depths and
altitudes in "m", temperatures in "Cel", pressures in "Pa", and angles (wind angle, headings,
courses, variation) in "deg" as the instrument sent them (registered SenML unit, RFC 8798).

Firmware-style: standard library only, the part MicroPython has.
"""

from protocols._stream import LineBuffer
from protocols._typing import TYPE_CHECKING
from protocols.describe import result
from protocols.errors import (
    CHECKSUM,
    MALFORMED,
    OVERFLOW,
    TRUNCATED,
    UNSUPPORTED,
    LocalProtocolError,
    RemoteProtocolError,
)
from protocols.reading import Measurement

if TYPE_CHECKING:
    from typing import Callable, Union

    Number = Union[int, float]

BAUD_RATE = 4800  # NMEA 0183; 38400 for NMEA 0183-HS (AIS)
SPEC_MAX_LINE = 82  # characters from $ to LF, per the spec
MAX_LINE = 1024  # what we accept: u-blox $PUBX,03 reaches several hundred characters

KNOT = 1852.0 / 3600.0  # m/s
KMH = 1.0 / 3.6  # m/s
MPH = 0.44704  # m/s (statute mile per hour)
FOOT = 0.3048  # m
FATHOM = 1.8288  # m

_HEX = "0123456789ABCDEF"
_ADDRESS_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def checksum(body: "bytes") -> "int":
    """XOR of the bytes between `$`/`!` and `*` (pass exactly those)."""
    c = 0
    for b in body:
        c ^= b
    return c


def format_sentence(
    address: "str", fields: "list[str]", with_checksum: "bool" = True, start: "str" = "$"
) -> "bytes":
    """Build a sentence line: format_sentence("IIMTW", ["17.5", "C"]) -> b"$IIMTW,17.5,C*hh\\r\\n"."""
    if start not in ("$", "!"):
        raise LocalProtocolError("a sentence starts with $ or !")
    body = ",".join([address] + [str(f) for f in fields])
    for ch in body:
        if not (" " <= ch <= "~") or ch in "$!*\\^~":
            raise LocalProtocolError("reserved or non-printable character %r in sentence" % ch)
    raw = body.encode()
    if with_checksum:
        raw += b"*%02X" % checksum(raw)
    line = start.encode() + raw + b"\r\n"
    if len(line) > MAX_LINE:
        raise LocalProtocolError("sentence longer than %d characters" % MAX_LINE)
    return line


class Sentence:
    """A framed, checksum-checked sentence. `talker` is "GP", "II"... ("P" for proprietary);
    `type` the sentence formatter ("GGA"; for proprietary, what follows the P); `data` the raw
    fields after the address; `checksum` the received (and verified) value, or None when the
    sentence had none; `start` "$" or "!"."""

    __slots__ = ("address", "checksum", "data", "start", "talker", "type")

    def __init__(
        self,
        start: "str",
        address: "str",
        data: "list[str]",
        checksum: "int | None",
    ) -> "None":
        self.start = start
        self.address = address
        self.data = data
        self.checksum = checksum
        if address[:1] == "P":
            self.talker = "P"
            self.type = address[1:]
        else:
            self.talker = address[:2]
            self.type = address[2:]

    @property
    def proprietary(self) -> "bool":
        return self.talker == "P"

    def base_fields(self) -> "dict[str, object]":
        fields: "dict[str, object]" = {"talker": self.talker, "type": self.type}
        if self.proprietary:
            fields["manufacturer"] = self.type[:3]
        return fields

    def checksum_text(self) -> "str | None":
        return None if self.checksum is None else "%02X" % self.checksum

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, Sentence) and (
            self.start,
            self.address,
            self.data,
            self.checksum,
        ) == (other.start, other.address, other.data, other.checksum)

    def __repr__(self) -> "str":
        return "Sentence(%r, %r, %r, %r)" % (self.start, self.address, self.data, self.checksum)


def parse_sentence(line: "bytes", require_checksum: "bool" = False) -> "Sentence":
    """One sentence, from `$`/`!` to the end (a trailing CR LF is allowed). Without `*hh`
    it is accepted with `checksum` None, unless `require_checksum` (then CHECKSUM)."""
    if not isinstance(line, (bytes, bytearray)):
        raise LocalProtocolError("line must be bytes")
    raw = bytes(line)
    while raw[-1:] in (b"\r", b"\n"):
        raw = raw[:-1]
    if not raw:
        raise RemoteProtocolError(TRUNCATED, "empty line")
    if raw[0] not in b"$!":
        raise RemoteProtocolError(MALFORMED, "a sentence starts with $ or !")
    if len(raw) + 2 > MAX_LINE:
        raise RemoteProtocolError(OVERFLOW, "sentence longer than %d characters" % MAX_LINE)
    for b in raw:
        if b < 0x20 or b > 0x7E:
            raise RemoteProtocolError(MALFORMED, "non-printable byte 0x%02X in sentence" % b)
    star = raw.find(b"*")
    received: "int | None" = None
    if star >= 0:
        hh = raw[star + 1 :].decode()
        if len(hh) != 2 or hh[0].upper() not in _HEX or hh[1].upper() not in _HEX:
            raise RemoteProtocolError(MALFORMED, "a checksum is * and two hex digits: %r" % hh)
        received = int(hh, 16)
        body = raw[1:star]
        computed = checksum(body)
        if computed != received:
            raise RemoteProtocolError(
                CHECKSUM, "sentence says %s, computed %02X" % (hh.upper(), computed)
            )
    elif require_checksum:
        raise RemoteProtocolError(CHECKSUM, "no checksum, and one is required")
    else:
        body = raw[1:]
    text = body.decode()
    for ch in "$!\\^":
        if ch in text:
            raise RemoteProtocolError(MALFORMED, "reserved character %r inside a sentence" % ch)
    parts = text.split(",")
    address = parts[0]
    if not address:
        raise RemoteProtocolError(MALFORMED, "no address field")
    for ch in address:
        if ch not in _ADDRESS_CHARS:
            raise RemoteProtocolError(MALFORMED, "bad address field %r" % address[:10])
    if address[0] != "P" and len(address) != 5:
        raise RemoteProtocolError(
            MALFORMED, "address is a 2-character talker and a 3-character type: %r" % address
        )
    return Sentence(chr(raw[0]), address, parts[1:], received)


class SentenceReader(LineBuffer):
    """Frames sentences from a byte stream, h11 style.

    `receive_data(data)` then `next_line()` (raw sentence bytes, without CR LF) or
    `next_sentence()` (parsed) until they return None (more data needed). Bytes before a
    `$` or `!` are skipped (garbage, TAG blocks, a stream joined mid-sentence). A sentence
    ends at CR or LF (both usual, either accepted). A `$`/`!` before the end means the
    sentence was cut: RemoteProtocolError(TRUNCATED), and reading goes on with the new one.
    More than MAX_LINE bytes without an end: RemoteProtocolError(OVERFLOW), and the rest is
    skipped up to the next `$`/`!`. `receive_data(b"")` marks the end of the stream: a last
    sentence without CR LF is then returned as it is. With `require_checksum`,
    `next_sentence()` refuses sentences without `*hh` (a corrupted `*` hides the checksum:
    set it for talkers known to send one)."""

    __slots__ = ("require_checksum",)

    def __init__(self, require_checksum: "bool" = False) -> "None":
        super().__init__()
        self.require_checksum = require_checksum

    def next_line(self) -> "bytes | None":
        buf = self._buf
        start = _first(buf, 0)
        if start < 0:
            buf[:] = b""
            return None
        if start:
            buf[:start] = b""
        cr = buf.find(b"\r")
        lf = buf.find(b"\n")
        end = cr if lf < 0 or 0 <= cr < lf else lf
        limit = end if end >= 0 else len(buf)
        cut = _first(buf, 1, limit)
        if cut > 0:
            buf[:cut] = b""
            raise RemoteProtocolError(TRUNCATED, "sentence cut by a new one")
        if end < 0:
            if len(buf) > MAX_LINE:
                buf[:] = b""  # the rest of it goes with the garbage before the next $
                raise RemoteProtocolError(OVERFLOW, "no line end in %d bytes" % MAX_LINE)
            if self._eof:
                line = bytes(buf)
                buf[:] = b""
                return line
            return None
        line = bytes(buf[:end])
        buf[: end + 1] = b""
        if len(line) + 2 > MAX_LINE:
            raise RemoteProtocolError(OVERFLOW, "sentence longer than %d bytes" % MAX_LINE)
        return line

    def next_sentence(self) -> "Sentence | None":
        line = self.next_line()
        return None if line is None else parse_sentence(line, self.require_checksum)


def _first(buf: "bytearray", start: "int", end: "int" = -1) -> "int":
    """Index of the first $ or ! in buf[start:end], or -1."""
    if end < 0:
        end = len(buf)
    a = buf.find(b"$", start, end)
    b = buf.find(b"!", start, end)
    if a < 0:
        return b
    if b < 0:
        return a
    return a if a < b else b


# -- field decoding -----------------------------------------------------------------------


def _number(text: "str", name: "str") -> "Number | None":
    """A field as written: '' -> None, '04' -> 4, '-33.9' -> -33.9."""
    if text == "":
        return None
    digits = 0
    points = 0
    for i, ch in enumerate(text):
        if "0" <= ch <= "9":
            digits += 1
        elif ch == ".":
            points += 1
        elif not (i == 0 and ch in "+-"):
            digits = -1
            break
    if digits <= 0 or points > 1:
        raise RemoteProtocolError(MALFORMED, "%s is not a number: %r" % (name, text[:20]))
    return float(text) if points else int(text)


def _decimals(text: "str") -> "int":
    dot = text.find(".")
    return 0 if dot < 0 else len(text) - dot - 1


def _scaled(text: "str", value: "Number", factor: "float", extra: "int") -> "Number":
    """value x factor, rounded to the decimals the input implies (its decimals + extra)."""
    if factor == 1:
        return value
    return round(value * factor, max(0, _decimals(text) + extra))


def _angle(text: "str", hemi: "str", name: "str", width: "int", top: "int") -> "float | None":
    """ddmm.mmmm (width 2) or dddmm.mmmm (width 3) with N/S or E/W -> signed degrees."""
    if text == "" and hemi == "":
        return None
    neg = "SW"[width - 2]
    pos = "NE"[width - 2]
    if hemi not in (pos, neg) or text == "":
        raise RemoteProtocolError(MALFORMED, "%s needs a value and %s/%s" % (name, pos, neg))
    dot = text.find(".")
    whole = text if dot < 0 else text[:dot]
    if len(whole) < 3 or any(not ("0" <= ch <= "9") for ch in whole):
        raise RemoteProtocolError(MALFORMED, "%s is not (d)ddmm.mmm: %r" % (name, text[:20]))
    minutes = _number(text[len(whole) - 2 :], name)
    degrees = int(whole[:-2])
    if minutes is None or minutes >= 60 or degrees + minutes / 60.0 > top:
        raise RemoteProtocolError(MALFORMED, "%s out of range: %r" % (name, text[:20]))
    # Not rounded: degrees + minutes / 60 is the exact conversion (the same double every
    # NMEA library computes); rounding would only move it away from theirs.
    value = degrees + minutes / 60.0
    return -value if hemi == neg else value


def _time(text: "str") -> "str | None":
    """hhmmss(.ss) -> 'hh:mm:ss(.ss)Z' (UTC)."""
    if text == "":
        return None
    ok = len(text) >= 6 and all("0" <= ch <= "9" for ch in text[:6])
    if ok and len(text) > 6:
        ok = text[6] == "." and all("0" <= ch <= "9" for ch in text[7:])
    if not ok or int(text[:2]) > 23 or int(text[2:4]) > 59 or int(text[4:6]) > 60:
        raise RemoteProtocolError(MALFORMED, "time is hhmmss.ss: %r" % text[:20])
    return "%s:%s:%sZ" % (text[:2], text[2:4], text[4:])


def _date(text: "str") -> "str | None":
    """ddmmyy -> 'YYYY-MM-DD' (yy 80..99 -> 19yy, else 20yy)."""
    if text == "":
        return None
    if len(text) != 6 or any(not ("0" <= ch <= "9") for ch in text):
        raise RemoteProtocolError(MALFORMED, "date is ddmmyy: %r" % text[:20])
    day, month, yy = int(text[:2]), int(text[2:4]), int(text[4:])
    if not (1 <= day <= 31 and 1 <= month <= 12):
        raise RemoteProtocolError(MALFORMED, "date out of range: %r" % text)
    return "%04d-%02d-%02d" % (1900 + yy if yy >= 80 else 2000 + yy, month, day)


# Field kinds: "s" string (None when empty), "n" number, "lat"/"lon" a value and its
# hemisphere field (two raw fields, giving `name` in signed degrees and `name_dir`),
# "time" hhmmss.ss, "date" ddmmyy.
_SPECS: "dict[str, list[tuple[str, str]]]" = {
    "GGA": [
        ("timestamp", "time"),
        ("lat", "lat"),
        ("lon", "lon"),
        ("gps_qual", "n"),
        ("num_sats", "n"),
        ("horizontal_dil", "n"),
        ("altitude", "n"),
        ("altitude_units", "s"),
        ("geo_sep", "n"),
        ("geo_sep_units", "s"),
        ("age_gps_data", "n"),
        ("ref_station_id", "s"),
    ],
    "RMC": [
        ("timestamp", "time"),
        ("status", "s"),
        ("lat", "lat"),
        ("lon", "lon"),
        ("spd_over_grnd", "n"),
        ("true_course", "n"),
        ("datestamp", "date"),
        ("mag_variation", "n"),
        ("mag_var_dir", "s"),
        ("mode_indicator", "s"),
        ("nav_status", "s"),
    ],
    "GLL": [
        ("lat", "lat"),
        ("lon", "lon"),
        ("timestamp", "time"),
        ("status", "s"),
        ("faa_mode", "s"),
    ],
    "VTG": [
        ("true_track", "n"),
        ("true_track_sym", "s"),
        ("mag_track", "n"),
        ("mag_track_sym", "s"),
        ("spd_over_grnd_kts", "n"),
        ("spd_over_grnd_kts_sym", "s"),
        ("spd_over_grnd_kmph", "n"),
        ("spd_over_grnd_kmph_sym", "s"),
        ("faa_mode", "s"),
    ],
    "MWV": [
        ("wind_angle", "n"),
        ("reference", "s"),
        ("wind_speed", "n"),
        ("wind_speed_units", "s"),
        ("status", "s"),
    ],
    "MWD": [
        ("direction_true", "n"),
        ("true", "s"),
        ("direction_magnetic", "n"),
        ("magnetic", "s"),
        ("wind_speed_knots", "n"),
        ("knots", "s"),
        ("wind_speed_meters", "n"),
        ("meters", "s"),
    ],
    "DPT": [("depth", "n"), ("offset", "n"), ("range", "n")],
    "DBT": [
        ("depth_feet", "n"),
        ("unit_feet", "s"),
        ("depth_meters", "n"),
        ("unit_meters", "s"),
        ("depth_fathoms", "n"),
        ("unit_fathoms", "s"),
    ],
    "MTW": [("temperature", "n"), ("units", "s")],
    "VHW": [
        ("heading_true", "n"),
        ("true", "s"),
        ("heading_magnetic", "n"),
        ("magnetic", "s"),
        ("water_speed_knots", "n"),
        ("knots", "s"),
        ("water_speed_km", "n"),
        ("kilometers", "s"),
    ],
    "HDG": [
        ("heading", "n"),
        ("deviation", "n"),
        ("dev_dir", "s"),
        ("variation", "n"),
        ("var_dir", "s"),
    ],
    "HDT": [("heading", "n"), ("hdg_true", "s")],
    "HDM": [("heading", "n"), ("magnetic", "s")],
    "ZDA": [
        ("timestamp", "time"),
        ("day", "n"),
        ("month", "n"),
        ("year", "n"),
        ("local_zone", "n"),
        ("local_zone_minutes", "n"),
    ],
}

# VTG before NMEA 2.3 had no unit letters: true track, magnetic track, knots, km/h.
_VTG_OLD = [
    ("true_track", "n"),
    ("mag_track", "n"),
    ("spd_over_grnd_kts", "n"),
    ("spd_over_grnd_kmph", "n"),
]


class _Fields:
    """Decoded fields plus the raw text of each (for rounding conversions)."""

    __slots__ = ("raw", "values")

    def __init__(self) -> "None":
        self.values: "dict[str, object]" = {}
        self.raw: "dict[str, str]" = {}

    def num(self, name: "str") -> "Number | None":
        v = self.values.get(name)
        return v if isinstance(v, (int, float)) else None

    def text(self, name: "str") -> "str":
        v = self.values.get(name)
        return v if isinstance(v, str) else ""


def _decode_fields(spec: "list[tuple[str, str]]", data: "list[str]") -> "_Fields":
    out = _Fields()
    i = 0
    for name, kind in spec:
        raw = data[i] if i < len(data) else ""
        if kind in ("lat", "lon"):
            hemi = data[i + 1] if i + 1 < len(data) else ""
            if kind == "lat":
                out.values[name] = _angle(raw, hemi, name, 2, 90)
            else:
                out.values[name] = _angle(raw, hemi, name, 3, 180)
            out.values[name + "_dir"] = hemi or None
            out.raw[name] = raw
            i += 2
            continue
        if kind == "n":
            out.values[name] = _number(raw, name)
        elif kind == "time":
            out.values[name] = _time(raw)
        elif kind == "date":
            out.values[name] = _date(raw)
        else:
            out.values[name] = raw or None
        out.raw[name] = raw
        i += 1
    return out


def _marked(f: "_Fields", name: "str", marker: "str", expected: "str") -> "Number | None":
    """The number in field `name` when the field `marker` after it is `expected` (or left
    empty): a wrong designator ("T" where "M" belongs, "n" for "N") makes the value's
    meaning unknown, so it gives no reading."""
    if f.text(marker) not in (expected, ""):
        return None
    return f.num(name)


def _marked_speed(f: "_Fields", name: "str", marker: "str", unit: "str") -> "Number | None":
    """`_speed` of field `name` when its designator field `marker` is `unit` (or empty)."""
    if f.text(marker) not in (unit, ""):
        return None
    return _speed(f, name, unit)


def _speed(f: "_Fields", name: "str", unit: "str") -> "Number | None":
    """A speed field in m/s given its unit letter (N knots, K km/h, M m/s, S mph)."""
    value = f.num(name)
    if value is None:
        return None
    factor = {"N": KNOT, "K": KMH, "M": 1.0, "S": MPH}.get(unit)
    if factor is None:
        return None
    return _scaled(f.raw[name], value, factor, 2)


def _signed(value: "Number | None", direction: "str") -> "Number | None":
    """Variation or deviation with E/W -> east positive, west negative."""
    if value is None or direction not in ("E", "W"):
        return None
    return -value if direction == "W" else value


def _add(out: "list[Measurement]", name: "str", value: "object", unit: "str | None") -> "None":
    if value is not None:
        out.append(Measurement(name, value, unit))


def _position(f: "_Fields", out: "list[Measurement]") -> "None":
    _add(out, "lat", f.values.get("lat"), "lat")
    _add(out, "lon", f.values.get("lon"), "lon")


def _gga(f: "_Fields") -> "list[Measurement]":
    out: "list[Measurement]" = []
    quality = f.num("gps_qual")
    if not quality:  # 0 or empty: no fix
        return out
    _position(f, out)
    if f.text("altitude_units") == "M":
        _add(out, "altitude", f.num("altitude"), "m")
    _add(out, "satellites", f.num("num_sats"), None)
    _add(out, "hdop", f.num("horizontal_dil"), None)
    return out


def _rmc(f: "_Fields") -> "list[Measurement]":
    out: "list[Measurement]" = []
    # status V, or (NMEA 2.3+) mode indicator N: the receiver says the data is not valid
    if f.text("status") != "A" or f.text("mode_indicator") == "N":
        return out
    _position(f, out)
    _add(out, "speed_over_ground", _speed(f, "spd_over_grnd", "N"), "m/s")
    _add(out, "course_over_ground", f.num("true_course"), "deg")
    variation = _signed(f.num("mag_variation"), f.text("mag_var_dir"))
    _add(out, "magnetic_variation", variation, "deg")
    return out


def _gll(f: "_Fields") -> "list[Measurement]":
    out: "list[Measurement]" = []
    if f.text("status") not in ("A", "") or f.text("faa_mode") == "N":
        return out
    _position(f, out)
    return out


def _vtg(f: "_Fields") -> "list[Measurement]":
    out: "list[Measurement]" = []
    if f.text("faa_mode") == "N":
        return out
    _add(out, "course_over_ground", _marked(f, "true_track", "true_track_sym", "T"), "deg")
    magnetic = _marked(f, "mag_track", "mag_track_sym", "M")
    _add(out, "course_over_ground_magnetic", magnetic, "deg")
    speed = _marked_speed(f, "spd_over_grnd_kts", "spd_over_grnd_kts_sym", "N")
    if speed is None:
        speed = _marked_speed(f, "spd_over_grnd_kmph", "spd_over_grnd_kmph_sym", "K")
    _add(out, "speed_over_ground", speed, "m/s")
    return out


def _mwv(f: "_Fields") -> "list[Measurement]":
    out: "list[Measurement]" = []
    reference = f.text("reference")
    if f.text("status") != "A" or reference not in ("R", "T"):
        return out
    prefix = "apparent_wind" if reference == "R" else "true_wind"
    _add(out, prefix + "_angle", f.num("wind_angle"), "deg")
    _add(out, prefix + "_speed", _speed(f, "wind_speed", f.text("wind_speed_units")), "m/s")
    return out


def _mwd(f: "_Fields") -> "list[Measurement]":
    out: "list[Measurement]" = []
    _add(out, "true_wind_direction", _marked(f, "direction_true", "true", "T"), "deg")
    magnetic = _marked(f, "direction_magnetic", "magnetic", "M")
    _add(out, "true_wind_direction_magnetic", magnetic, "deg")
    speed = _marked_speed(f, "wind_speed_meters", "meters", "M")
    if speed is None:
        speed = _marked_speed(f, "wind_speed_knots", "knots", "N")
    _add(out, "true_wind_speed", speed, "m/s")
    return out


def _dpt(f: "_Fields") -> "list[Measurement]":
    out: "list[Measurement]" = []
    depth = f.num("depth")
    offset = f.num("offset")
    _add(out, "depth", depth, "m")
    _add(out, "transducer_offset", offset, "m")
    if depth is not None and offset is not None:
        places = max(_decimals(f.raw["depth"]), _decimals(f.raw["offset"]))
        total = round(depth + offset, places)
        # positive offset: transducer to waterline; negative: transducer to keel
        _add(out, "depth_below_surface" if offset >= 0 else "depth_below_keel", total, "m")
    return out


def _dbt(f: "_Fields") -> "list[Measurement]":
    out: "list[Measurement]" = []
    metres = _marked(f, "depth_meters", "unit_meters", "M")
    feet = _marked(f, "depth_feet", "unit_feet", "f")
    fathoms = _marked(f, "depth_fathoms", "unit_fathoms", "F")
    if metres is None and feet is not None:
        metres = _scaled(f.raw["depth_feet"], feet, FOOT, 1)
    if metres is None and fathoms is not None:
        metres = _scaled(f.raw["depth_fathoms"], fathoms, FATHOM, 1)
    _add(out, "depth", metres, "m")
    return out


def _mtw(f: "_Fields") -> "list[Measurement]":
    out: "list[Measurement]" = []
    if f.text("units") == "C":
        _add(out, "water_temperature", f.num("temperature"), "Cel")
    return out


def _vhw(f: "_Fields") -> "list[Measurement]":
    out: "list[Measurement]" = []
    _add(out, "heading_true", _marked(f, "heading_true", "true", "T"), "deg")
    _add(out, "heading_magnetic", _marked(f, "heading_magnetic", "magnetic", "M"), "deg")
    speed = _marked_speed(f, "water_speed_knots", "knots", "N")
    if speed is None:
        speed = _marked_speed(f, "water_speed_km", "kilometers", "K")
    _add(out, "speed_through_water", speed, "m/s")
    return out


def _hdg(f: "_Fields") -> "list[Measurement]":
    out: "list[Measurement]" = []
    _add(out, "magnetic_sensor_heading", f.num("heading"), "deg")
    _add(out, "magnetic_deviation", _signed(f.num("deviation"), f.text("dev_dir")), "deg")
    _add(out, "magnetic_variation", _signed(f.num("variation"), f.text("var_dir")), "deg")
    return out


def _hdt(f: "_Fields") -> "list[Measurement]":
    out: "list[Measurement]" = []
    _add(out, "heading_true", _marked(f, "heading", "hdg_true", "T"), "deg")
    return out


def _hdm(f: "_Fields") -> "list[Measurement]":
    out: "list[Measurement]" = []
    _add(out, "heading_magnetic", _marked(f, "heading", "magnetic", "M"), "deg")
    return out


def _zda(f: "_Fields") -> "list[Measurement]":
    time = f.text("timestamp")
    day, month, year = f.num("day"), f.num("month"), f.num("year")
    if time and isinstance(day, int) and isinstance(month, int) and isinstance(year, int):
        if not (1 <= day <= 31 and 1 <= month <= 12 and 0 <= year <= 9999):
            raise RemoteProtocolError(MALFORMED, "ZDA date out of range")
        f.values["datetime"] = "%04d-%02d-%02dT%s" % (year, month, day, time)
    return []


_READINGS: "dict[str, Callable[[_Fields], list[Measurement]]]" = {
    "GGA": _gga,
    "RMC": _rmc,
    "GLL": _gll,
    "VTG": _vtg,
    "MWV": _mwv,
    "MWD": _mwd,
    "DPT": _dpt,
    "DBT": _dbt,
    "MTW": _mtw,
    "VHW": _vhw,
    "HDG": _hdg,
    "HDT": _hdt,
    "HDM": _hdm,
    "ZDA": _zda,
}

# XDR transducer type -> (quantity, {unit letter: (SenML unit, factor, extra decimals)})
_XDR: "dict[str, tuple[str, dict[str, tuple[str | None, float, int]]]]" = {
    "A": ("angle", {"D": ("deg", 1, 0)}),
    "C": ("temperature", {"C": ("Cel", 1, 0), "K": ("K", 1, 0)}),
    "D": ("displacement", {"M": ("m", 1, 0)}),
    "F": ("frequency", {"H": ("Hz", 1, 0)}),
    "N": ("force", {"N": ("N", 1, 0)}),
    "P": ("pressure", {"P": ("Pa", 1, 0), "B": ("Pa", 100000.0, -5)}),
    "R": ("flow", {"L": ("m3/s", 0.001, 3)}),
    "T": ("rotation", {"R": ("1/min", 1, 0)}),
    "H": ("humidity", {"P": ("%RH", 1, 0)}),
    "V": ("volume", {"M": ("m3", 1, 0)}),
    "I": ("current", {"A": ("A", 1, 0)}),
    "U": ("voltage", {"V": ("V", 1, 0)}),
    "G": ("generic", {"": (None, 1, 0)}),
    "S": ("switch", {"": (None, 1, 0)}),
}


def _xdr(data: "list[str]") -> "tuple[dict[str, object], list[Measurement]]":
    if len(data) % 4 == 3:
        # The last group without its (optional) id field, as some talkers send it:
        # SignalK's nmea0183-signalk test reads "$YXXDR,C,7,C*54" as 7 Cel.
        data = list(data)
        data.append("")
    if not data or len(data) % 4:
        raise RemoteProtocolError(
            MALFORMED, "XDR has groups of 4 fields (type, value, unit, id), got %d" % len(data)
        )
    transducers: "list[dict[str, object]]" = []
    out: "list[Measurement]" = []
    seen: "dict[str, int]" = {}
    for i in range(0, len(data), 4):
        kind, raw, unit, ident = data[i], data[i + 1], data[i + 2], data[i + 3]
        value = _number(raw, "XDR value")
        transducers.append({"type": kind, "value": value, "units": unit, "id": ident or None})
        entry = _XDR.get(kind)
        if value is None or entry is None or unit not in entry[1]:
            continue  # not in the table: left in fields, no reading with a guessed unit
        quantity, units = entry
        senml, factor, extra = units[unit]
        name = quantity + "_" + ident if ident else quantity
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = "%s_%d" % (name, seen[name])
        out.append(Measurement(name, _scaled(raw, value, factor, extra), senml))
    return {"transducers": transducers}, out


def decode(sentence: "Sentence") -> "tuple[dict[str, object], list[Measurement]]":
    """Typed fields (talker, type, the sentence's fields, checksum) and readings."""
    fields = sentence.base_fields()
    if sentence.start == "!":
        raise RemoteProtocolError(UNSUPPORTED, "encapsulated sentence %s" % sentence.address)
    if sentence.proprietary:
        raise RemoteProtocolError(UNSUPPORTED, "proprietary sentence %s" % sentence.address)
    kind = sentence.type
    if kind == "XDR":
        extra, found = _xdr(sentence.data)
        fields.update(extra)
    else:
        spec = _SPECS.get(kind)
        if spec is None:
            raise RemoteProtocolError(UNSUPPORTED, "sentence type %s" % kind)
        if kind == "VTG" and len(sentence.data) == 4 and sentence.data[1:2] != ["T"]:
            spec = _VTG_OLD
        decoded = _decode_fields(spec, sentence.data)
        found = _READINGS[kind](decoded)
        fields.update(decoded.values)
        if kind == "RMC" and decoded.values.get("datestamp") and decoded.values.get("timestamp"):
            fields["datetime"] = "%sT%s" % (
                decoded.values["datestamp"],
                decoded.values["timestamp"],
            )
    fields["checksum"] = sentence.checksum_text()
    return fields, found


# -- describe (estran decode nmea) ---------------------------------------------------------


def describe(data: "bytes", options: "dict[str, object]") -> "list[dict[str, object]]":
    """Every sentence in `data` (one or many, with or without CR LF) as a contract dict.

    Sentences of a type not decoded here (proprietary `$P...`, `!` encapsulated, other
    standard types) are valid frames when well framed and checksummed: `valid: true`,
    their raw fields in `fields.data`, a `fields.note`, no readings."""
    out: "list[dict[str, object]]" = []
    reader = SentenceReader()
    reader.receive_data(bytes(data))
    reader.receive_data(b"")
    while True:
        try:
            line = reader.next_line()
        except RemoteProtocolError as e:
            out.append(result("nmea", False, str(e), {}, []))
            continue
        if line is None:
            break
        try:
            sentence = parse_sentence(line)
        except RemoteProtocolError as e:
            out.append(result("nmea", False, str(e), {"raw": _show(line)}, []))
            continue
        try:
            fields, found = decode(sentence)
        except RemoteProtocolError as e:
            fields = sentence.base_fields()
            fields["data"] = list(sentence.data)
            fields["checksum"] = sentence.checksum_text()
            if e.reason == UNSUPPORTED:
                # a well-framed sentence we do not decode (GSV, AIS, $PGRME...): a valid frame
                fields["note"] = "not decoded: " + e.message
                out.append(result("nmea", True, None, fields, []))
            else:
                out.append(result("nmea", False, str(e), fields, []))
            continue
        out.append(result("nmea", True, None, fields, [m.as_dict() for m in found]))
    return out


def _show(line: "bytes") -> "str":
    return "".join(chr(b) if 0x20 <= b <= 0x7E else "\\x%02x" % b for b in line[:MAX_LINE])


__all__ = [
    "BAUD_RATE",
    "FATHOM",
    "FOOT",
    "KMH",
    "KNOT",
    "MAX_LINE",
    "MPH",
    "SPEC_MAX_LINE",
    "Sentence",
    "SentenceReader",
    "checksum",
    "decode",
    "describe",
    "format_sentence",
    "parse_sentence",
]

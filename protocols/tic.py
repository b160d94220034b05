"""Enedis TIC (télé-information client): Linky and the older electronic meters.

Two modes, both 7E1 on the wire (7 data bits, even parity, 1 stop bit):

- historique, 1200 baud: group ``LF label SP value SP chk CR``; the checksum covers
  ``label SP value`` (the SP before the checksum is not summed);
- standard, 9600 baud: group ``LF label HT [horodate HT] value HT chk CR``; the checksum
  covers everything from the label to the last HT included.

In both modes ``chk = (sum & 0x3F) + 0x20`` (it may itself be a space). A frame is
``STX (0x02) groups ETX (0x03)``; the meter ends a frame early with EOT (0x04) when it
is interrupted.

Sans-IO, h11 style::

    stream = TicStream()
    stream.receive_data(chunk)          # any pieces; parity bits may still be set
    while True:
        event = stream.next_event()     # a Frame, or NEED_DATA
        if event is NEED_DATA:
            break
        for m in event.measurements():  # protocols.reading.Measurement
            ...

Garbage between frames is skipped (counted in ``TicStream.discarded``); a frame cut short
(EOT, a new STX before ETX, end of input) comes out as a Frame whose ``end`` says why;
a group with a bad checksum or shape stays in its frame with ``valid`` false; a frame
longer than ``max_frame`` is dropped and ``next_event`` raises
``RemoteProtocolError(OVERFLOW)``. See docs/protocols/tic.md.
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
    ProtocolError,
    RemoteProtocolError,
)
from protocols.reading import Measurement

if TYPE_CHECKING:
    from typing import Iterable

HISTORIQUE = "historique"
STANDARD = "standard"
MODES = (HISTORIQUE, STANDARD)
BAUDRATE = {HISTORIQUE: 1200, STANDARD: 9600}  # both 7E1

STX = 0x02
ETX = 0x03
EOT = 0x04
HT = 0x09
LF = 0x0A
CR = 0x0D
SP = 0x20

# How a frame ended (Frame.end).
END_ETX = "ETX"  # complete
END_EOT = "EOT"  # interrupted by the meter
END_STX = "STX"  # a new frame started before ETX (ETX lost)
END_EOF = "EOF"  # the input ended before ETX (TicStream.end_of_data())

MAX_FRAME = 4096  # a full three-phase producer frame in standard mode is about 2.5 KiB
MAX_PENDING = 8  # frames decoded but not yet taken by next_event()

_END_MESSAGES = {
    END_EOT: "frame interrupted by EOT",
    END_STX: "frame cut short: STX before ETX",
    END_EOF: "input ends before ETX",
}

# --- labels -----------------------------------------------------------------------------
# label -> (SenML unit or None, factor to that unit). Values are leading-zero decimals.
# "VArh" (reactive energy) is not a SenML unit; kVA (PREF, PCOUP) is normalised to VA and
# minutes (PEJP) to seconds.


def _label_table() -> "dict[str, tuple[str | None, int]]":
    table: "dict[str, tuple[str | None, int]]" = {
        # historique (Enedis-NOI-CPT_02E, NOI-CPT_54E §6.1)
        "ISOUSC": ("A", 1),
        "BASE": ("Wh", 1),
        "HCHC": ("Wh", 1),
        "HCHP": ("Wh", 1),
        "EJPHN": ("Wh", 1),
        "EJPHPM": ("Wh", 1),
        "BBRHCJB": ("Wh", 1),
        "BBRHPJB": ("Wh", 1),
        "BBRHCJW": ("Wh", 1),
        "BBRHPJW": ("Wh", 1),
        "BBRHCJR": ("Wh", 1),
        "BBRHPJR": ("Wh", 1),
        "PEJP": ("s", 60),
        "IINST": ("A", 1),
        "ADPS": ("A", 1),
        "IMAX": ("A", 1),
        "PMAX": ("W", 1),
        "PAPP": ("VA", 1),
        # standard (NOI-CPT_54E §6.2.2)
        "EAST": ("Wh", 1),
        "EAIT": ("Wh", 1),
        "PREF": ("VA", 1000),
        "PCOUP": ("VA", 1000),
        "SINSTS": ("VA", 1),
        "SINSTI": ("VA", 1),
        "SMAXIN": ("VA", 1),
        "SMAXIN-1": ("VA", 1),
        "CCASN": ("W", 1),
        "CCASN-1": ("W", 1),
        "CCAIN": ("W", 1),
        "CCAIN-1": ("W", 1),
        "NTARF": (None, 1),
        "NJOURF": (None, 1),
        "NJOURF+1": (None, 1),
    }
    for n in range(1, 11):
        table["EASF%02d" % n] = ("Wh", 1)
    for n in range(1, 5):
        table["EASD%02d" % n] = ("Wh", 1)
        table["ERQ%d" % n] = ("VArh", 1)
    for p in ("", "1", "2", "3"):
        if p:
            table["IINST" + p] = ("A", 1)
            table["IMAX" + p] = ("A", 1)
            table["ADIR" + p] = ("A", 1)
            table["IRMS" + p] = ("A", 1)
            table["URMS" + p] = ("V", 1)
            table["UMOY" + p] = ("V", 1)
            table["SINSTS" + p] = ("VA", 1)
        # SMAXN* is the name early Linky documents and firmwares used for SMAXSN*.
        for stem in ("SMAXSN", "SMAXN"):
            table[stem + p] = ("VA", 1)
            table[stem + p + "-1"] = ("VA", 1)
    return table


LABELS = _label_table()

# STGE status register (NOI-CPT_54E §6.2.3.14): name -> (first bit, width). Raw codes.
STGE_FIELDS = (
    ("contact_sec", 0, 1),  # 0 closed, 1 open
    ("organe_coupure", 1, 3),  # 0 closed, 1..6 open (overpower, overvoltage, ...)
    ("cache_bornes", 4, 1),  # distributor terminal cover: 0 closed, 1 open
    ("surtension", 6, 1),
    ("depassement_pref", 7, 1),
    ("producteur", 8, 1),  # 0 consumer, 1 producer
    ("sens_energie_active_negative", 9, 1),
    ("tarif_fourniture_index0", 10, 4),  # supplier index in use, 0-based
    ("tarif_distributeur_index0", 14, 2),  # distributor index in use, 0-based
    ("horloge_degradee", 16, 1),
    ("mode_tic_standard", 17, 1),
    ("euridis", 19, 2),  # 0 off, 1 on without security, 3 on with security
    ("statut_cpl", 21, 2),  # 0 New/Unlock, 1 New/Lock, 2 Registered
    ("synchro_cpl", 23, 1),
    ("tempo_jour", 24, 2),  # 0 none, 1 blue, 2 white, 3 red
    ("tempo_demain", 26, 2),
    ("preavis_pm", 28, 2),  # 0 none, n: notice of mobile peak PMn
    ("pointe_mobile", 30, 2),  # 0 none, n: mobile peak PMn running
)

_HEX = "0123456789ABCDEFabcdef"
_DIGITS = "0123456789"
_SEASON_OFFSET = {"H": 60, "h": 60, "E": 120, "e": 120, " ": None}
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


# --- checksums and horodates ------------------------------------------------------------


def checksum(data: "bytes") -> "int":
    """The TIC checksum of the summed bytes: ``(sum & 0x3F) + 0x20`` (0x20..0x5F)."""
    return (sum(data) & 0x3F) + 0x20


class Horodate:
    """A TIC time stamp ``SAAMMJJhhmmss``: season, then local date and time.

    season: 'H' winter (UTC+1), 'E' summer (UTC+2), lower case when the meter's clock is
    degraded (lost its time), ' ' when no season applies (mobile peak start/end).
    """

    __slots__ = ("day", "hour", "minute", "month", "season", "second", "year")

    def __init__(
        self,
        season: "str",
        year: "int",
        month: "int",
        day: "int",
        hour: "int",
        minute: "int",
        second: "int",
    ) -> "None":
        self.season = season
        self.year = year
        self.month = month
        self.day = day
        self.hour = hour
        self.minute = minute
        self.second = second

    @property
    def raw(self) -> "str":
        return "%s%02d%02d%02d%02d%02d%02d" % (
            self.season,
            self.year % 100,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
        )

    @property
    def degraded(self) -> "bool":
        """True when the meter's real-time clock ran in degraded mode (lower-case season)."""
        return self.season in ("e", "h")

    @property
    def offset_minutes(self) -> "int | None":
        """UTC offset of the local time (60 winter, 120 summer), None when unknown."""
        return _SEASON_OFFSET.get(self.season)

    def isoformat(self) -> "str":
        """ISO 8601, with the UTC offset when the season is known."""
        text = "%04d-%02d-%02dT%02d:%02d:%02d" % (
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
        )
        offset = self.offset_minutes
        if offset is None:
            return text
        return text + "+%02d:%02d" % (offset // 60, offset % 60)

    def utc_ms(self) -> "int | None":
        """Milliseconds since 1970-01-01 UTC, or None when the season is unknown."""
        offset = self.offset_minutes
        if offset is None:
            return None
        days = _days_from_civil(self.year, self.month, self.day)
        seconds = ((days * 24 + self.hour) * 60 + self.minute) * 60 + self.second
        return (seconds - offset * 60) * 1000

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, Horodate) and self.raw == other.raw

    def __repr__(self) -> "str":
        return "Horodate(%r)" % self.raw


def _days_from_civil(year: "int", month: "int", day: "int") -> "int":
    # Howard Hinnant's algorithm: days since 1970-01-01 of a proleptic Gregorian date.
    y = year - 1 if month <= 2 else year
    era = y // 400
    yoe = y - era * 400
    mp = (month + 9) % 12
    doy = (153 * mp + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _is_digits(text: "str") -> "bool":
    """ASCII digits only: str.isdigit() also takes superscript and non-Latin digits, which
    int() refuses (a ValueError where RemoteProtocolError belongs)."""
    return text != "" and all(c in _DIGITS for c in text)


def parse_horodate(text: "str") -> "Horodate":
    """Parse ``SAAMMJJhhmmss``; raises RemoteProtocolError(MALFORMED) on anything else."""
    if len(text) != 13 or text[0] not in _SEASON_OFFSET or not _is_digits(text[1:]):
        raise RemoteProtocolError(MALFORMED, "bad horodate %r" % text)
    year = 2000 + int(text[1:3])
    month = int(text[3:5])
    day = int(text[5:7])
    hour = int(text[7:9])
    minute = int(text[9:11])
    second = int(text[11:13])
    if not 1 <= month <= 12:
        raise RemoteProtocolError(MALFORMED, "bad horodate %r: month" % text)
    last = _DAYS_IN_MONTH[month - 1]
    if month == 2 and year % 4 == 0:  # 2000..2099: every fourth year is a leap year
        last = 29
    if not 1 <= day <= last or hour > 23 or minute > 59 or second > 59:
        raise RemoteProtocolError(MALFORMED, "bad horodate %r" % text)
    return Horodate(text[0], year, month, day, hour, minute, second)


def decode_stge(value: "str") -> "dict[str, int]":
    """Decode the STGE status register (8 hex digits, most significant byte first)."""
    if len(value) != 8 or any(c not in _HEX for c in value):
        raise RemoteProtocolError(MALFORMED, "STGE must be 8 hex digits, got %r" % value)
    word = int(value, 16)
    return {name: (word >> shift) & ((1 << width) - 1) for name, shift, width in STGE_FIELDS}


def decode_relais(value: "str") -> "dict[int, int]":
    """RELAIS: relay number (1 real, 2..8 virtual) -> 1 closed / 0 open."""
    if len(value) != 3 or not _is_digits(value) or int(value) > 255:
        raise RemoteProtocolError(MALFORMED, "RELAIS must be 000..255, got %r" % value)
    word = int(value)
    return {n: (word >> (n - 1)) & 1 for n in range(1, 9)}


# --- groups -----------------------------------------------------------------------------


class Group:
    """One information group: label, value, optional horodate, checksum and validity.

    ``reason``/``message`` are None for a valid group; otherwise ``reason`` is CHECKSUM
    or MALFORMED (from protocols.errors) and ``message`` says what was wrong.
    """

    __slots__ = ("checksum", "horodate", "label", "message", "mode", "reason", "time", "value")

    def __init__(
        self,
        label: "str",
        value: "str",
        mode: "str | None",
        checksum: "str" = "",
        horodate: "str | None" = None,
        time: "Horodate | None" = None,
        reason: "str | None" = None,
        message: "str | None" = None,
    ) -> "None":
        self.label = label
        self.value = value
        self.mode = mode
        self.checksum = checksum
        self.horodate = horodate
        self.time = time
        self.reason = reason
        self.message = message

    @property
    def valid(self) -> "bool":
        return self.reason is None

    @property
    def error(self) -> "str | None":
        """``"reason: message"``, or None for a valid group."""
        if self.reason is None:
            return None
        return "%s: %s" % (self.reason, self.message)

    def measurements(self) -> "list[Measurement]":
        """The readings of a valid group (empty for text labels and invalid groups)."""
        if self.reason is not None:
            return []
        label = self.label
        value = self.value
        out: "list[Measurement]" = []
        spec = LABELS.get(label)
        if spec is not None and _is_digits(value):
            out.append(Measurement(label, int(value) * spec[1], spec[0]))
        elif label == "STGE":
            try:
                bits = decode_stge(value)
            except RemoteProtocolError:
                return []
            for name, _shift, _width in STGE_FIELDS:
                out.append(Measurement("STGE." + name, bits[name], None))
        elif label == "RELAIS":
            try:
                relays = decode_relais(value)
            except RemoteProtocolError:
                return []
            for n in range(1, 9):
                out.append(Measurement("RELAIS.%d" % n, relays[n], None))
        return out

    def _key(self) -> "tuple[object, ...]":
        return (
            self.label,
            self.value,
            self.mode,
            self.checksum,
            self.horodate,
            self.reason,
            self.message,
        )

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, Group) and self._key() == other._key()

    def __repr__(self) -> "str":
        text = "Group(%r, %r" % (self.label, self.value)
        if self.horodate is not None:
            text += ", horodate=%r" % self.horodate
        if self.reason is not None:
            text += ", error=%r" % self.error
        return text + ")"


def _bad(label: "str", mode: "str | None", reason: "str", text: "str") -> "Group":
    message = label + ": " + text if label else text
    return Group(label, "", mode, reason=reason, message=message)


def _guess_label(content: "bytes") -> "str":
    end = 0
    while end < len(content) and end < 16 and 0x20 < content[end] < 0x7F:
        end += 1
    return content[:end].decode()


def parse_group(content: "bytes", mode: "str | None" = None) -> "Group":
    """Parse the bytes between LF and CR of one group. Never raises for bad input: a bad
    group comes back with ``valid`` false. ``mode`` None detects it (HT => standard)."""
    detected = STANDARD if HT in content else HISTORIQUE
    label = _guess_label(content)
    for b in content:
        if (b < 0x20 and b != HT) or b > 0x7E:
            return _bad(label, detected, MALFORMED, "control byte 0x%02x" % b)
    if mode is not None and mode != detected:
        return _bad(label, mode, MALFORMED, "%s group in %s mode" % (detected, mode))
    sep = HT if detected == STANDARD else SP
    if len(content) < 4 or content[-2] != sep:
        return _bad(label, detected, MALFORMED, "no checksum field")
    if detected == STANDARD:
        summed = content[:-1]
        parts = content[:-2].split(b"\t")
        if len(parts) == 2:
            horodate_raw = None
        elif len(parts) == 3:
            horodate_raw = parts[1].decode()
        else:
            return _bad(label, detected, MALFORMED, "%d fields" % len(parts))
        label_b = parts[0]
        value_b = parts[-1]
    else:
        summed = content[:-2]
        split = summed.find(b" ")
        if split < 0:
            return _bad(label, detected, MALFORMED, "no value field")
        horodate_raw = None
        label_b = summed[:split]
        value_b = summed[split + 1 :]
    if not label_b or SP in label_b:
        return _bad("", detected, MALFORMED, "bad label %r" % label_b.decode())
    label = label_b.decode()
    value = value_b.decode()
    got = content[-1]
    expected = checksum(summed)
    group = Group(label, value, detected, chr(got), horodate_raw)
    if got != expected:
        group.reason = CHECKSUM
        group.message = "%s: got %r, expected %r" % (label, chr(got), chr(expected))
    elif horodate_raw is not None:
        try:
            group.time = parse_horodate(horodate_raw)
        except RemoteProtocolError as e:
            group.reason = e.reason
            group.message = label + ": " + e.message
    return group


def build_group(
    label: "str", value: "str", mode: "str" = HISTORIQUE, horodate: "str | None" = None
) -> "bytes":
    """One group ``LF ... CR`` with its checksum. Raises LocalProtocolError on values
    that the format cannot carry."""
    if mode not in MODES:
        raise LocalProtocolError("unknown TIC mode %r" % mode)
    if not label or any(not 0x20 < ord(c) < 0x7F for c in label):
        raise LocalProtocolError("bad TIC label %r" % label)
    if any(not 0x20 <= ord(c) < 0x7F for c in value):
        raise LocalProtocolError("bad TIC value %r: printable ASCII only" % value)
    if mode == HISTORIQUE:
        if horodate is not None:
            raise LocalProtocolError("historique groups carry no horodate")
        summed = (label + " " + value).encode()
        return b"\n" + summed + b" " + bytes((checksum(summed),)) + b"\r"
    text = label + "\t"
    if horodate is not None:
        try:
            parse_horodate(horodate)
        except RemoteProtocolError as e:
            raise LocalProtocolError(e.message) from e
        text += horodate + "\t"
    summed = (text + value + "\t").encode()
    return b"\n" + summed + bytes((checksum(summed),)) + b"\r"


def build_frame(groups: "Iterable[bytes]") -> "bytes":
    """``STX groups ETX`` from groups made by build_group."""
    return b"\x02" + b"".join(groups) + b"\x03"


# --- frames -----------------------------------------------------------------------------


class Frame:
    """A frame: its groups in order, its mode, and how it ended (``end``: END_ETX when
    complete; END_EOT, END_STX or END_EOF when cut short)."""

    __slots__ = ("end", "groups", "mode")

    def __init__(self, groups: "list[Group]", end: "str" = END_ETX) -> "None":
        self.groups = groups
        self.end = end
        mode = None
        for g in groups:
            if g.mode == STANDARD:
                mode = STANDARD
                break
            if g.mode == HISTORIQUE:
                mode = HISTORIQUE
        self.mode = mode

    @property
    def interrupted(self) -> "bool":
        return self.end != END_ETX

    @property
    def valid(self) -> "bool":
        """Complete, not empty, and every group well-formed with a good checksum."""
        if self.end != END_ETX or not self.groups:
            return False
        return all(g.reason is None for g in self.groups)

    def errors(self) -> "list[str]":
        """Every problem as ``"reason: message"``, in frame order."""
        out = [g.error for g in self.groups if g.error is not None]
        if self.end != END_ETX:
            out.append("%s: %s" % (TRUNCATED, _END_MESSAGES.get(self.end, self.end)))
        elif not self.groups:
            out.append("%s: frame without groups" % MALFORMED)
        return out

    @property
    def error(self) -> "str | None":
        errors = self.errors()
        return "; ".join(errors) if errors else None

    def get(self, label: "str") -> "str | None":
        """The value of the last valid group with this label."""
        found = None
        for g in self.groups:
            if g.label == label and g.reason is None:
                found = g.value
        return found

    @property
    def date(self) -> "Horodate | None":
        """The meter's clock (standard mode: the DATE group), None when absent or bad."""
        for g in self.groups:
            if g.label == "DATE" and g.reason is None and g.time is not None:
                return g.time
        return None

    def fields(self) -> "dict[str, str]":
        """Label -> raw value of every valid group; horodates as ``<label>_time`` (ISO)."""
        out: "dict[str, str]" = {}
        for g in self.groups:
            if g.reason is not None:
                continue
            out[g.label] = g.value
            if g.time is not None:
                out[g.label + "_time"] = g.time.isoformat()
        return out

    def measurements(self) -> "list[Measurement]":
        out: "list[Measurement]" = []
        for g in self.groups:
            out.extend(g.measurements())
        return out

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, Frame) and (self.end, self.groups) == (other.end, other.groups)

    def __repr__(self) -> "str":
        return "Frame(%s, %d groups, end=%s)" % (self.mode, len(self.groups), self.end)


def _is_blank(data: "bytes") -> "bool":
    return all(b in (SP, CR, LF) for b in data)


def _parse_body(body: "bytes", mode: "str | None", end: "str") -> "Frame":
    """The groups between STX and ETX (or the point where the frame was cut)."""
    groups: "list[Group]" = []
    pos = 0
    n = len(body)
    while pos < n:
        lf = body.find(b"\n", pos)
        stray = body[pos:] if lf < 0 else body[pos:lf]
        if not _is_blank(stray):
            label = _guess_label(stray)
            groups.append(
                _bad(label, mode, MALFORMED, "%d bytes outside a group (lost LF?)" % len(stray))
            )
        if lf < 0:
            break
        cr = body.find(b"\r", lf + 1)
        limit = n if cr < 0 else cr
        nxt = body.find(b"\n", lf + 1, limit)
        if nxt >= 0:  # the next group starts before this one ended
            part = body[lf + 1 : nxt]
            if not _is_blank(part):
                groups.append(_bad(_guess_label(part), mode, MALFORMED, "group without CR"))
            pos = nxt
            continue
        if cr < 0:
            part = body[lf + 1 :]
            # a cut frame's last group is expected to be partial
            if end == END_ETX and not _is_blank(part):
                groups.append(_bad(_guess_label(part), mode, MALFORMED, "group without CR"))
            break
        groups.append(parse_group(body[lf + 1 : cr], mode))
        pos = cr + 1
    return Frame(groups, end)


def _mask(data: "bytes") -> "bytes":
    """Clear the parity bit (7E1 read as 8 bits)."""
    if data and max(data) > 0x7F:
        return bytes(b & 0x7F for b in data)
    return bytes(data)


def parse_frame(data: "bytes", mode: "str | None" = None) -> "Frame":
    """Parse exactly one complete frame ``STX ... ETX``. Raises RemoteProtocolError when
    `data` is not one (TRUNCATED without ETX, MALFORMED otherwise)."""
    data = _mask(data)
    if not data or data[0] != STX:
        raise RemoteProtocolError(MALFORMED, "a TIC frame starts with STX")
    if len(data) > MAX_FRAME + 2:
        raise RemoteProtocolError(OVERFLOW, "frame longer than %d bytes" % MAX_FRAME)
    body = data[1:]
    if body and body[-1] == ETX:
        body = body[:-1]
    elif EOT in body:
        raise RemoteProtocolError(TRUNCATED, _END_MESSAGES[END_EOT])
    else:
        raise RemoteProtocolError(TRUNCATED, "no ETX")
    for c in (STX, ETX, EOT):
        if c in body:
            raise RemoteProtocolError(MALFORMED, "control byte 0x%02x inside the frame" % c)
    return _parse_body(body, mode, END_ETX)


def parse_lines(data: "bytes", mode: "str | None" = None) -> "Frame":
    """Bare groups without STX/ETX, one per line (LF...CR, or lines split on CR or LF):
    what a technician pastes. Returns a Frame (END_ETX) of every non-blank line."""
    data = _mask(data)
    groups = []
    for line in data.replace(b"\r", b"\n").split(b"\n"):
        if not _is_blank(line):
            groups.append(_pasted_group(line, mode))
    return Frame(groups, END_ETX)


def _pasted_group(line: "bytes", mode: "str | None") -> "Group":
    """A pasted line. A checksum that is a space is often lost with the separator before
    it (terminals and editors trim trailing blanks: hallard/teleinfo-test prints
    ``HCHC 000723392  ``): when the line fails as it is and its sum gives exactly that
    checksum, the trimmed separator and space are put back."""
    group = parse_group(line, mode)
    if group.reason is None:
        return group
    sep = b"\t" if HT in line else b" "
    if checksum(line + sep if sep == b"\t" else line) == SP:
        restored = parse_group(line + sep + b" ", mode)
        if restored.reason is None:
            return restored
    return group


# --- the stream -------------------------------------------------------------------------


_FRAME = "frame"  # pending-item kind; any other kind is an error reason


class TicStream:
    """Frames from a TIC byte stream fed in arbitrary pieces (sans-IO).

    ``receive_data(data)`` takes bytes; ``end_of_data()`` says the input ended (a partial
    frame then comes out with end END_EOF); ``next_event()`` returns the next Frame or
    NEED_DATA, and raises RemoteProtocolError(OVERFLOW) for a frame longer than
    ``max_frame`` (dropped) or when more than ``max_pending`` frames were waiting (the
    oldest dropped). The stream stays usable after an error. ``mode`` None accepts both
    modes; HISTORIQUE or STANDARD marks groups of the other mode malformed.
    """

    __slots__ = (
        "_buf",
        "_in_frame",
        "_lost",
        "_pending",
        "discarded",
        "max_frame",
        "max_pending",
        "mode",
    )

    def __init__(
        self,
        mode: "str | None" = None,
        max_frame: "int" = MAX_FRAME,
        max_pending: "int" = MAX_PENDING,
    ) -> "None":
        if mode is not None and mode not in MODES:
            raise LocalProtocolError("unknown TIC mode %r" % mode)
        if max_frame < 1 or max_pending < 1:
            raise LocalProtocolError("max_frame and max_pending must be positive")
        self.mode = mode
        self.max_frame = max_frame
        self.max_pending = max_pending
        self.discarded = 0  # bytes skipped outside frames (garbage, resynchronisation)
        self._buf = bytearray()
        self._in_frame = False
        self._pending: "list[tuple[str, bytes, str]]" = []
        self._lost = 0

    def _queue(self, kind: "str", body: "bytes", text: "str") -> "None":
        if len(self._pending) >= self.max_pending:
            self._pending.pop(0)
            self._lost += 1
        self._pending.append((kind, body, text))

    def _close(self, end: "str") -> "None":
        body = bytes(self._buf)
        self._buf = bytearray()
        self._in_frame = False
        if body:
            self._queue(_FRAME, body, end)

    def end_of_data(self) -> "None":
        """The input ended (a capture file, a closed port): a partial frame comes out with
        end END_EOF. The stream can be fed again afterwards."""
        if self._in_frame:
            self._close(END_EOF)

    def receive_data(self, data: "bytes") -> "None":
        """Feed bytes as they come (a serial read that timed out may pass b"")."""
        if not data:
            return
        data = _mask(data)
        n = len(data)
        pos = 0
        while pos < n:
            if not self._in_frame:
                start = data.find(b"\x02", pos)
                if start < 0:
                    self.discarded += n - pos
                    return
                self.discarded += start - pos
                self._in_frame = True
                pos = start + 1
                continue
            room = self.max_frame - len(self._buf)
            limit = min(n, pos + room + 1)
            stop = -1
            for control in (b"\x02", b"\x03", b"\x04"):
                i = data.find(control, pos, limit)
                if i >= 0 and (stop < 0 or i < stop):
                    stop = i
            if stop < 0:
                if limit - pos > room:  # no end in sight within max_frame: drop it
                    self.discarded += len(self._buf) + room
                    self._buf = bytearray()
                    self._in_frame = False
                    pos += room
                    self._queue(OVERFLOW, b"", "frame longer than %d bytes" % self.max_frame)
                    continue
                self._buf += data[pos:]
                return
            self._buf += data[pos:stop]
            c = data[stop]
            pos = stop + 1
            if c == ETX:
                self._close(END_ETX)
            elif c == EOT:
                self._close(END_EOT)
            else:  # STX: the previous frame lost its ETX; this one starts here
                self._close(END_STX)
                self._in_frame = True

    def next_event(self) -> "Frame | NeedData":
        if self._lost:
            lost = self._lost
            self._lost = 0
            raise RemoteProtocolError(
                OVERFLOW, "%d frames dropped: more than %d waiting" % (lost, self.max_pending)
            )
        if not self._pending:
            return NEED_DATA
        kind, body, text = self._pending.pop(0)
        if kind != _FRAME:
            raise RemoteProtocolError(kind, text)
        return _parse_body(body, self.mode, text)


# --- describe ---------------------------------------------------------------------------


def _frame_result(frame: "Frame") -> "dict[str, object]":
    fields: "dict[str, object]" = {}
    fields.update(frame.fields())
    readings = [m.as_dict() for m in frame.measurements()]
    return result("tic", frame.valid, frame.error, fields, readings)


def describe(data: "bytes", options: "dict[str, object]") -> "list[dict[str, object]]":
    """The `estran decode tic --json` contract: one dict per frame in `data`.

    `data` is raw bytes with STX..ETX frames (garbage around them skipped), or bare groups
    (LF...CR or one per line) without STX. Mode is detected per group (HT => standard);
    `options["mode"]` may force "historique" or "standard".
    """
    option = options.get("mode") if options else None
    mode = option if isinstance(option, str) and option in MODES else None
    try:
        data = _mask(data)
        if STX not in data:
            frame = parse_lines(data, mode)
            return [_frame_result(frame)] if frame.groups else []
        out: "list[dict[str, object]]" = []
        stream = TicStream(mode)
        step = 512
        for start in range(0, len(data), step):
            stream.receive_data(data[start : start + step])
            drain(stream, "tic", _frame_result, out)
        stream.end_of_data()
        drain(stream, "tic", _frame_result, out)
        return out
    except ProtocolError as e:  # defensive: describe never raises on input
        return [result("tic", False, str(e), {}, [])]


__all__ = [
    "BAUDRATE",
    "END_EOF",
    "END_EOT",
    "END_ETX",
    "END_STX",
    "HISTORIQUE",
    "LABELS",
    "MAX_FRAME",
    "MODES",
    "NEED_DATA",
    "STANDARD",
    "STGE_FIELDS",
    "Frame",
    "Group",
    "Horodate",
    "NeedData",
    "TicStream",
    "build_frame",
    "build_group",
    "checksum",
    "decode_relais",
    "decode_stge",
    "describe",
    "parse_frame",
    "parse_group",
    "parse_horodate",
    "parse_lines",
]

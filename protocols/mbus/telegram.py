"""EN 13757-3 application layer of a slave response: CI field, headers, data structures.

`decode_response(frame)` turns a RSP_UD frame into a `Telegram`:

- CI 0x72 variable data, long header (id, manufacturer, version, medium, access number,
  status, signature); 0x76 the same sent most significant byte first (mode 2);
- CI 0x7A variable data, short header (access number, status, signature);
- CI 0x78 variable data without header;
- CI 0x73 fixed data structure (0x77 mode 2): id, two counters with medium and units;
- CI 0x71 alarm status;
- CI 0x70 application error: raised as RemoteProtocolError(EXCEPTION).
"""

from protocols._typing import TYPE_CHECKING
from protocols.errors import EXCEPTION, MALFORMED, TRUNCATED, UNSUPPORTED, RemoteProtocolError
from protocols.mbus.frames import KIND_CONTROL, KIND_LONG, Frame
from protocols.mbus.records import (
    DIF_MORE_RECORDS,
    FUNCTION_MANUFACTURER,
    Record,
    bcd,
    fixed_counter,
    iter_records,
    manufacturer_code,
)
from protocols.mbus.vif_tables import (
    APPLICATION_ERRORS,
    FIXED_MEDIUM,
    MEDIUM,
    STATUS_APPLICATION,
    STATUS_FLAGS,
)

if TYPE_CHECKING:
    from protocols.reading import Measurement

CI_APPLICATION_RESET = 0x50
CI_DATA_SEND = 0x51
CI_SELECT = 0x52
CI_APPLICATION_ERROR = 0x70
CI_ALARM = 0x71
CI_VARIABLE_LONG = 0x72
CI_FIXED = 0x73
CI_VARIABLE_LONG_MSB = 0x76
CI_FIXED_MSB = 0x77
CI_VARIABLE_NONE = 0x78
CI_VARIABLE_SHORT = 0x7A

_MASTER_NAMES = {0x40: "SND_NKE", 0x53: "SND_UD", 0x5A: "REQ_UD1", 0x5B: "REQ_UD2"}


def medium_name(code: "int") -> "str":
    name = MEDIUM.get(code)
    return name if name is not None else "reserved (0x%02X)" % code


def status_flags(status: "int") -> "list[str]":
    """Names of the status bits set (application state, power low, errors)."""
    flags = []
    application = STATUS_APPLICATION[status & 0x03]
    if application is not None:
        flags.append(application)
    for bit, name in STATUS_FLAGS:
        if status & bit:
            flags.append(name)
    return flags


def _identification(data: "bytes", msb_first: "bool") -> "int | str":
    """The BCD identification number; hex digits as a string when not decimal."""
    value = bcd(data, msb_first)
    if isinstance(value, str):
        return value.lstrip("0") or "0"
    return value


class Telegram:
    """A decoded slave response. Fields absent from the header (short header, no header)
    are None. `records` holds the data records in frame order."""

    __slots__ = (
        "access_number",
        "address",
        "alarm",
        "ci",
        "control",
        "id",
        "manufacturer",
        "medium",
        "more_records_follow",
        "records",
        "signature",
        "status",
        "version",
    )

    def __init__(self, frame: "Frame | None" = None) -> "None":
        self.address = frame.address if frame is not None else 0
        self.control = frame.control if frame is not None else 0
        self.ci = frame.ci if frame is not None and frame.ci is not None else 0
        self.id: "int | str | None" = None
        self.manufacturer: "str | None" = None
        self.version: "int | None" = None
        self.medium: "int | None" = None
        self.access_number: "int | None" = None
        self.status: "int | None" = None
        self.signature: "int | None" = None
        self.alarm: "int | None" = None
        self.more_records_follow = False
        self.records: "list[Record]" = []

    @property
    def medium_name(self) -> "str | None":
        if self.medium is None:
            return None
        if self.ci in (CI_FIXED, CI_FIXED_MSB):
            name = FIXED_MEDIUM.get(self.medium)
            return name if name is not None else "reserved (0x%X)" % self.medium
        return medium_name(self.medium)

    def fields(self) -> "dict[str, object]":
        """The header as the `fields` of the `estran decode --json` contract."""
        out: "dict[str, object]" = {
            "id": self.id,
            "manufacturer": self.manufacturer,
            "version": self.version,
            "medium": self.medium_name,
            "access_number": self.access_number,
            "status": self.status,
        }
        if self.status is not None:
            out["status_flags"] = status_flags(self.status)
        out["medium_code"] = self.medium
        out["signature"] = self.signature
        out["address"] = self.address
        out["ci"] = self.ci
        out["more_records_follow"] = self.more_records_follow
        if self.alarm is not None:
            out["alarm"] = self.alarm
        return out

    def measurements(self) -> "list[Measurement]":
        return [r.measurement() for r in self.records]

    def __repr__(self) -> "str":
        return "Telegram(ci=0x%02X, id=%r, manufacturer=%r, records=%d)" % (
            self.ci,
            self.id,
            self.manufacturer,
            len(self.records),
        )


def check_response(frame: "Frame") -> "None":
    """Raise unless `frame` is a slave response carrying a CI field (RSP_UD)."""
    if frame.kind not in (KIND_LONG, KIND_CONTROL):
        if frame.kind == "ack":
            raise RemoteProtocolError(UNSUPPORTED, "an acknowledgement (E5) carries no data")
        name = _MASTER_NAMES.get(frame.control & 0xDF, "C=0x%02X" % frame.control)
        raise RemoteProtocolError(
            UNSUPPORTED,
            "short frame %s to address %d: a request, not a response" % (name, frame.address),
        )
    if frame.from_master:
        name = _MASTER_NAMES.get(frame.control & 0xDF, "C=0x%02X" % frame.control)
        raise RemoteProtocolError(
            UNSUPPORTED,
            "%s to address %d with CI 0x%02X: a request from the master, not a response"
            % (name, frame.address, frame.ci if frame.ci is not None else 0),
        )
    if frame.control & 0x0F != 0x08:
        raise RemoteProtocolError(UNSUPPORTED, "control field 0x%02X is not RSP_UD" % frame.control)


def decode_into(telegram: "Telegram", frame: "Frame") -> "None":
    """Decode `frame` into `telegram`, record by record, so that a caller catching the
    error keeps what was decoded before it."""
    check_response(frame)
    ci = frame.ci if frame.ci is not None else 0
    data = frame.data
    telegram.ci = ci
    if ci == CI_APPLICATION_ERROR:
        code = data[0] if data else 0
        text = APPLICATION_ERRORS.get(code, "unknown error")
        raise RemoteProtocolError(EXCEPTION, "application error 0x%02X: %s" % (code, text))
    if ci == CI_ALARM:
        telegram.alarm = data[0] if data else 0
        return
    if ci in (CI_FIXED, CI_FIXED_MSB):
        _fixed(telegram, data, ci == CI_FIXED_MSB)
        return
    msb_first = ci == CI_VARIABLE_LONG_MSB
    if ci in (CI_VARIABLE_LONG, CI_VARIABLE_LONG_MSB):
        if len(data) < 12:
            raise RemoteProtocolError(
                TRUNCATED, "variable data header needs 12 bytes, got %d" % len(data)
            )
        telegram.id = _identification(data[0:4], msb_first)
        if msb_first:
            telegram.manufacturer = manufacturer_code((data[4] << 8) | data[5])
            telegram.signature = (data[10] << 8) | data[11]
        else:
            telegram.manufacturer = manufacturer_code(data[4] | (data[5] << 8))
            telegram.signature = data[10] | (data[11] << 8)
        telegram.version = data[6]
        telegram.medium = data[7]
        telegram.access_number = data[8]
        telegram.status = data[9]
        body = data[12:]
    elif ci == CI_VARIABLE_SHORT:
        if len(data) < 4:
            raise RemoteProtocolError(TRUNCATED, "short header needs 4 bytes, got %d" % len(data))
        telegram.access_number = data[0]
        telegram.status = data[1]
        telegram.signature = data[2] | (data[3] << 8)
        body = data[4:]
    elif ci == CI_VARIABLE_NONE:
        body = data
    else:
        raise RemoteProtocolError(UNSUPPORTED, "CI 0x%02X is not a supported response" % ci)
    for record in iter_records(body, msb_first):
        telegram.records.append(record)
        if record.function == FUNCTION_MANUFACTURER and record.dif == DIF_MORE_RECORDS:
            telegram.more_records_follow = True


def _fixed(telegram: "Telegram", data: "bytes", msb_first: "bool") -> "None":
    if len(data) < 16:
        raise RemoteProtocolError(
            TRUNCATED, "fixed data structure needs 16 bytes, got %d" % len(data)
        )
    if len(data) > 16:
        raise RemoteProtocolError(
            MALFORMED, "fixed data structure has 16 bytes, got %d" % len(data)
        )
    telegram.id = _identification(data[0:4], msb_first)
    telegram.access_number = data[4]
    status = data[5]
    telegram.status = status
    type1 = data[6]
    type2 = data[7]
    telegram.medium = ((type1 >> 6) & 0x03) | (((type2 >> 6) & 0x03) << 2)
    bcd_coded = not status & 0x80
    first = fixed_counter(type1, data[8:12], bcd_coded, msb_first)
    second = fixed_counter(type2, data[12:16], bcd_coded, msb_first)
    if type2 & 0x3F == 0x3E:  # same unit as counter 1, but a historic value
        second = fixed_counter(type1, data[12:16], bcd_coded, msb_first)
        second.name = first.name + "_historic"
    elif second.name == first.name:
        second.name += "_counter2"
    if status & 0x40:  # stored values rather than actual ones
        first.name += "_stored"
        second.name += "_stored"
    telegram.records.append(first)
    telegram.records.append(second)


def decode_response(frame: "Frame") -> "Telegram":
    """The telegram of a slave response (RSP_UD). Raises RemoteProtocolError: EXCEPTION for
    an application error (CI 0x70), UNSUPPORTED for requests and unknown CI fields,
    TRUNCATED or MALFORMED for broken records."""
    telegram = Telegram(frame)
    decode_into(telegram, frame)
    return telegram


__all__ = [
    "CI_ALARM",
    "CI_APPLICATION_ERROR",
    "CI_APPLICATION_RESET",
    "CI_DATA_SEND",
    "CI_FIXED",
    "CI_FIXED_MSB",
    "CI_SELECT",
    "CI_VARIABLE_LONG",
    "CI_VARIABLE_LONG_MSB",
    "CI_VARIABLE_NONE",
    "CI_VARIABLE_SHORT",
    "Telegram",
    "check_response",
    "decode_into",
    "decode_response",
    "medium_name",
    "status_flags",
]

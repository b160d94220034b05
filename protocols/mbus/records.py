"""EN 13757-3 data records: DIB (DIF + DIFEs), VIB (VIF + VIFEs), data field, normalisation.

A record becomes a `Record` holding the raw value, the value normalised to base units
(value x 10^exponent, and seconds for time units), the unit and a reading name::

    <quantity>[<VIFE qualifiers>][_max|_min|_error_state][_storage<n>][_tariff<n>][_subunit<n>]

e.g. ``volume``, ``volume_storage1``, ``energy_tariff2_subunit1``,
``flow_temperature_last_end_max_tariff1`` (see docs/protocols/mbus.md).
"""

import struct

from protocols._typing import TYPE_CHECKING
from protocols.errors import MALFORMED, TRUNCATED, UNSUPPORTED, RemoteProtocolError
from protocols.mbus.vif_tables import (
    COMBINABLE,
    COMBINABLE_EXTENSION,
    FB_VIF,
    FD_VIF,
    FIXED_UNITS,
    KIND_CODE,
    KIND_MANUFACTURER,
    KIND_NUMBER,
    KIND_TIME,
    PRIMARY_VIF,
)
from protocols.reading import Measurement

if TYPE_CHECKING:
    from collections.abc import Iterator

    Description = tuple[str, str | None, int, int, int]

FUNCTIONS = ("instantaneous", "maximum", "minimum", "error")
FUNCTION_MANUFACTURER = "manufacturer"  # the manufacturer-specific block (DIF 0x0F / 0x1F)
_FUNCTION_SUFFIX = ("", "_max", "_min", "_error_state")

DIF_MANUFACTURER = 0x0F  # manufacturer-specific data up to the end of the telegram
DIF_MORE_RECORDS = 0x1F  # the same, and more records follow in the next telegram
DIF_IDLE_FILLER = 0x2F
MAX_DIFE = 10
MAX_VIFE = 10

# Data field (low nibble of the DIF) -> length in bytes; 0x0D is variable, 0x0F special.
_DATA_LENGTH = {
    0x0: 0,
    0x1: 1,
    0x2: 2,
    0x3: 3,
    0x4: 4,
    0x5: 4,
    0x6: 6,
    0x7: 8,
    0x8: 0,
    0x9: 1,
    0xA: 2,
    0xB: 3,
    0xC: 4,
    0xE: 6,
}
_INTEGER_FIELDS = (0x1, 0x2, 0x3, 0x4, 0x6, 0x7)
_BCD_FIELDS = (0x9, 0xA, 0xB, 0xC, 0xE)


class Record:
    """One decoded data record. `value` is normalised; `raw` is the data field's value."""

    __slots__ = (
        "data",
        "dif",
        "difes",
        "function",
        "name",
        "quantity",
        "raw",
        "storage",
        "subunit",
        "tariff",
        "text",
        "unit",
        "value",
        "vif",
        "vifes",
    )

    def __init__(self) -> "None":
        self.dif = 0
        self.difes: "list[int]" = []
        self.vif: "int | None" = None
        self.vifes: "list[int]" = []
        self.text: "str | None" = None  # plain-text VIF
        self.function = FUNCTIONS[0]
        self.storage = 0
        self.tariff = 0
        self.subunit = 0
        self.data = b""
        self.raw: "object" = None
        self.value: "object" = None
        self.unit: "str | None" = None
        self.quantity = ""
        self.name = ""

    def measurement(self) -> "Measurement":
        return Measurement(self.name, self.value, self.unit)

    def __repr__(self) -> "str":
        return "Record(%r, %r, %r)" % (self.name, self.value, self.unit)


def _error(reason: "str", message: "str", offset: "int") -> "RemoteProtocolError":
    return RemoteProtocolError(reason, "%s (record at offset %d)" % (message, offset))


def hex_string(data: "bytes") -> "str":
    """Bytes as upper-case hex pairs separated by spaces (the libmbus style)."""
    return " ".join(["%02X" % b for b in data])


def manufacturer_code(value: "int") -> "str":
    """The three letters of a manufacturer id: 5 bits each, 'A' = 1."""
    return "".join([chr(((value >> shift) & 0x1F) + 64) for shift in (10, 5, 0)])


def iter_records(data: "bytes", msb_first: "bool" = False) -> "Iterator[Record]":
    """Yield the records of a variable data structure; raise RemoteProtocolError on the
    first malformed one (records before it have been yielded)."""
    pos = 0
    end = len(data)
    while pos < end:
        start = pos
        dif = data[pos]
        pos += 1
        if dif == DIF_IDLE_FILLER:
            continue
        if dif in (DIF_MANUFACTURER, DIF_MORE_RECORDS):
            yield manufacturer_record(dif, data[pos:])
            return
        if dif & 0x0F == 0x0F:
            raise _error(UNSUPPORTED, "reserved special function DIF 0x%02X" % dif, start)
        difes: "list[int]" = []
        ext = dif & 0x80
        while ext:
            if pos >= end:
                raise _error(TRUNCATED, "premature end of record in the DIFEs", start)
            if len(difes) >= MAX_DIFE:
                raise _error(MALFORMED, "more than %d DIFEs" % MAX_DIFE, start)
            ext = data[pos] & 0x80
            difes.append(data[pos])
            pos += 1
        if pos >= end:
            raise _error(TRUNCATED, "premature end of record before the VIF", start)
        vif = data[pos]
        pos += 1
        text = None
        if vif & 0x7F == 0x7C:
            if pos >= end:
                raise _error(TRUNCATED, "premature end of record in the plain-text VIF", start)
            size = data[pos]
            pos += 1
            if size > 0xBF:
                raise _error(MALFORMED, "plain-text VIF length 0x%02X above 0xBF" % size, start)
            if pos + size > end:
                raise _error(
                    TRUNCATED,
                    "plain-text VIF of %d characters, %d bytes left" % (size, end - pos),
                    start,
                )
            text = _text(data[pos : pos + size])
            pos += size
        vifes: "list[int]" = []
        ext = vif & 0x80
        while ext:
            if pos >= end:
                raise _error(TRUNCATED, "premature end of record in the VIFEs", start)
            if len(vifes) >= MAX_VIFE:
                raise _error(MALFORMED, "more than %d VIFEs" % MAX_VIFE, start)
            ext = data[pos] & 0x80
            vifes.append(data[pos])
            pos += 1
        field = dif & 0x0F
        lvar = -1
        if field == 0x0D:
            if pos >= end:
                raise _error(TRUNCATED, "premature end of record before the LVAR byte", start)
            lvar = data[pos]
            pos += 1
            size = _lvar_size(lvar, start)
        else:
            size = _DATA_LENGTH[field]
        if pos + size > end:
            raise _error(
                TRUNCATED,
                "premature end of record: %d data bytes needed, %d left" % (size, end - pos),
                start,
            )
        record = Record()
        record.dif = dif
        record.difes = difes
        record.vif = vif
        record.vifes = vifes
        record.text = text
        record.data = data[pos : pos + size]
        pos += size
        _decode(record, field, lvar, msb_first, start)
        yield record


def manufacturer_record(dif: "int", data: "bytes") -> "Record":
    """The manufacturer-specific block that ends a telegram (DIF 0x0F or 0x1F)."""
    record = Record()
    record.dif = dif
    record.function = FUNCTION_MANUFACTURER
    record.data = bytes(data)
    record.raw = record.data
    record.value = hex_string(record.data)
    record.quantity = "manufacturer_data"
    record.name = "manufacturer_data"
    return record


def _lvar_size(lvar: "int", start: "int") -> "int":
    if lvar <= 0xBF:
        return lvar  # text
    if 0xC0 <= lvar <= 0xC9:
        return lvar - 0xC0  # positive BCD, 2 digits a byte
    if 0xD0 <= lvar <= 0xD9:
        return lvar - 0xD0  # negative BCD
    if 0xE0 <= lvar <= 0xEF:
        return lvar - 0xE0  # binary number
    if 0xF0 <= lvar <= 0xF4:
        return 4 * (lvar - 0xEC)  # binary number of 16 to 32 bytes
    raise _error(UNSUPPORTED, "reserved LVAR 0x%02X" % lvar, start)


def _text(data: "bytes") -> "str":
    """LVAR and plain-text VIF characters: sent last character first."""
    return "".join([chr(data[i]) for i in range(len(data) - 1, -1, -1)])


def _ordered(data: "bytes", msb_first: "bool") -> "bytes":
    """The bytes most significant first."""
    if msb_first:
        return data
    return bytes([data[i] for i in range(len(data) - 1, -1, -1)])


def _unsigned(data: "bytes", msb_first: "bool") -> "int":
    value = 0
    for b in _ordered(data, msb_first):
        value = (value << 8) | b
    return value


def _signed(data: "bytes", msb_first: "bool") -> "int":
    value = _unsigned(data, msb_first)
    bits = 8 * len(data)
    if bits and value >> (bits - 1):
        value -= 1 << bits
    return value


def bcd(data: "bytes", msb_first: "bool" = False) -> "int | str":
    """BCD digits (type A) to an int; 0xF in the top nibble means negative. Any other
    non-decimal digit gives the digits back as a hex string."""
    digits = "".join(["%02X" % b for b in _ordered(data, msb_first)])
    if not digits:
        return 0
    negative = digits[0] == "F"
    body = "0" + digits[1:] if negative else digits
    for c in body:
        if c not in "0123456789":
            return digits
    value = int(body)
    return -value if negative else value


def _float32(data: "bytes", msb_first: "bool") -> "str | None":
    """The shortest decimal text that reads back as the same IEEE 754 single; None for
    NaN and infinities."""
    fmt = ">f" if msb_first else "<f"
    value: "float" = struct.unpack(fmt, data)[0]
    if value != value or value in (float("inf"), float("-inf")):
        return None
    for digits in range(6, 10):
        text = ("%." + str(digits) + "g") % value
        if struct.unpack(fmt, struct.pack(fmt, float(text)))[0] == value:
            return text
    return "%.9g" % value


def scale(raw: "int | float | str", exponent: "int", factor: "int" = 1) -> "int | float":
    """raw * factor * 10**exponent without float noise: ints stay ints when exponent >= 0,
    decimals are read from their decimal text."""
    if isinstance(raw, int):
        mantissa = raw * factor
        if exponent >= 0:
            result: "int" = mantissa * 10**exponent
            return result
        return float("%de%d" % (mantissa, exponent))
    text = raw if isinstance(raw, str) else repr(raw)
    if factor != 1:
        text = "%.7g" % (float(text) * factor)
    mark = text.find("e")
    if mark >= 0:
        exponent += int(text[mark + 1 :])
        text = text[:mark]
    return float(text + "e" + str(exponent))


def _year(yy: "int", century: "int") -> "int":
    if century:
        return 1900 + 100 * century + yy
    return 2000 + yy if yy < 81 else 1900 + yy


def decode_time(data: "bytes", msb_first: "bool" = False) -> "str | None":
    """Data types G (date), J (time), F (date and time) and I (date and time with seconds)
    as ISO 8601 local time; None for an invalid or unset time."""
    if msb_first:
        data = _ordered(data, False)  # back to the least significant byte first
    n = len(data)
    if n == 2:  # type G
        day = data[0] & 0x1F
        month = data[1] & 0x0F
        year = _year(((data[0] & 0xE0) >> 5) | ((data[1] & 0xF0) >> 1), 0)
        if not (day >= 1 and 1 <= month <= 12):
            return None
        return "%04d-%02d-%02d" % (year, month, day)
    if n == 3:  # type J
        second = data[0] & 0x3F
        minute = data[1] & 0x3F
        hour = data[2] & 0x1F
        if second > 59 or minute > 59 or hour > 23:
            return None
        return "%02d:%02d:%02d" % (hour, minute, second)
    if n == 4:  # type F
        second = 0
        minute = data[0] & 0x3F
        invalid = data[0] & 0x80
        hour = data[1] & 0x1F
        century = (data[1] >> 5) & 0x03
        day = data[2] & 0x1F
        month = data[3] & 0x0F
        yy = ((data[2] & 0xE0) >> 5) | ((data[3] & 0xF0) >> 1)
    elif n == 6:  # type I
        second = data[0] & 0x3F
        minute = data[1] & 0x3F
        invalid = data[1] & 0x80
        hour = data[2] & 0x1F
        century = 0
        day = data[3] & 0x1F
        month = data[4] & 0x0F
        yy = ((data[3] & 0xE0) >> 5) | ((data[4] & 0xF0) >> 1)
    else:
        return None
    if invalid or not (day >= 1 and 1 <= month <= 12) or hour > 23 or minute > 59 or second > 59:
        return None
    return "%04d-%02d-%02dT%02d:%02d:%02d" % (
        _year(yy, century),
        month,
        day,
        hour,
        minute,
        second,
    )


def _snake(text: "str") -> "str":
    out = []
    for c in text.lower():
        if ("a" <= c <= "z") or ("0" <= c <= "9"):
            out.append(c)
        elif out and out[-1] != "_":
            out.append("_")
    name = "".join(out).strip("_")
    return name or "plain_text"


def _describe_vib(record: "Record", start: "int") -> "tuple[Description, str, str]":
    """(description, name suffix, unit suffix) of the record's VIF and VIFEs."""
    vif = record.vif if record.vif is not None else 0
    code = vif & 0x7F
    rest = record.vifes
    desc: "Description"
    if vif == 0xFD or vif == 0xFB:
        first = rest[0] & 0x7F
        rest = rest[1:]
        table = FD_VIF if vif == 0xFD else FB_VIF
        found = table.get(first)
        if found is None:
            prefix = "vif_fd" if vif == 0xFD else "vif_fb"
            found = (prefix + "%02x" % first, None, 0, 1, KIND_NUMBER)
        desc = found
    elif code == 0x7C:
        text = record.text or ""
        desc = (_snake(text), text or None, 0, 1, KIND_NUMBER)
    elif code == 0x7F:
        # Manufacturer-specific VIF: its VIFEs are manufacturer specific too.
        suffix = "_" + "".join(["%02x" % b for b in rest]) if rest else ""
        return PRIMARY_VIF[0x7F], suffix, ""
    else:
        found = PRIMARY_VIF.get(code)
        desc = found if found is not None else ("vif_%02x" % code, None, 0, 1, KIND_NUMBER)
    quantity, unit, exponent, factor, kind = desc
    suffix = ""
    unit_suffix = ""
    i = 0
    while i < len(rest):
        c = rest[i] & 0x7F
        i += 1
        if c == 0x00:
            continue
        if c == 0x7F:
            suffix += "_mfr" + "".join(["%02x" % b for b in rest[i:]])
            break
        if c == 0x7C:
            if i >= len(rest):
                raise _error(MALFORMED, "VIFE 0x7C without its extension code", start)
            e = rest[i] & 0x7F
            i += 1
            suffix += COMBINABLE_EXTENSION.get(e, "_vifx_%02x" % e)
            continue
        entry = COMBINABLE.get(c)
        if entry is None:
            suffix += "_vife_%02x" % c
            continue
        name, action, number, unit_text = entry
        suffix += name
        if action == "scale" or action == "offset":
            exponent += number
        elif action == "per":
            unit_suffix += unit_text
        elif action == "time":
            unit, exponent, factor, kind = None, 0, 1, KIND_TIME
        elif action == "count":
            unit, exponent, factor, kind = None, 0, 1, KIND_NUMBER
        elif action == "duration":
            unit, exponent, factor, kind = "s", 0, number, KIND_NUMBER
    return (quantity, unit, exponent, factor, kind), suffix, unit_suffix


def _decode(record: "Record", field: "int", lvar: "int", msb_first: "bool", start: "int") -> "None":
    dif = record.dif
    record.function = FUNCTIONS[(dif >> 4) & 0x03]
    storage = (dif >> 6) & 0x01
    tariff = 0
    subunit = 0
    for i, dife in enumerate(record.difes):
        storage |= (dife & 0x0F) << (1 + 4 * i)
        tariff |= ((dife >> 4) & 0x03) << (2 * i)
        subunit |= ((dife >> 6) & 0x01) << i
    record.storage = storage
    record.tariff = tariff
    record.subunit = subunit
    desc, suffix, unit_suffix = _describe_vib(record, start)
    quantity, unit, exponent, factor, kind = desc
    data = record.data
    raw: "object" = None
    numeric_text = None  # a float32 as its shortest decimal text
    if field in _INTEGER_FIELDS:
        if kind == KIND_TIME:
            raw = decode_time(data, msb_first)
        elif kind == KIND_MANUFACTURER and len(data) == 2:
            raw = manufacturer_code(_unsigned(data, msb_first))
        elif kind == KIND_CODE:
            raw = _unsigned(data, msb_first)
        else:
            raw = _signed(data, msb_first)
    elif field == 0x5:
        numeric_text = _float32(data, msb_first)
        raw = float(numeric_text) if numeric_text is not None else None
    elif field in _BCD_FIELDS:
        raw = bcd(data, msb_first)
    elif field == 0xD:
        if lvar <= 0xBF:
            raw = _text(data)
        elif lvar <= 0xC9:
            raw = bcd(data)
        elif lvar <= 0xD9:
            digits = bcd(data)
            raw = -digits if isinstance(digits, int) else "-" + digits
        elif lvar <= 0xEF and len(data) <= 8:
            raw = _unsigned(data, msb_first)
        else:
            raw = hex_string(data)
    record.raw = raw
    value: "object" = raw
    if kind == KIND_NUMBER and isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = scale(numeric_text if numeric_text is not None else raw, exponent, factor)
    record.value = value
    if isinstance(value, (int, float)) and unit is not None:
        record.unit = unit + unit_suffix
    else:
        record.unit = None
    record.quantity = quantity
    name = quantity + suffix + _FUNCTION_SUFFIX[(dif >> 4) & 0x03]
    if storage:
        name += "_storage%d" % storage
    if tariff:
        name += "_tariff%d" % tariff
    if subunit:
        name += "_subunit%d" % subunit
    record.name = name


def fixed_counter(
    unit_code: "int", data: "bytes", bcd_coded: "bool", msb_first: "bool" = False
) -> "Record":
    """One counter of the fixed data structure (CI 0x73 / 0x77)."""
    record = Record()
    record.data = bytes(data)
    found = FIXED_UNITS.get(unit_code & 0x3F)
    desc = found if found is not None else ("counter", None, 0, 1, KIND_NUMBER)
    quantity, unit, exponent, factor, kind = desc
    raw: "int | str" = bcd(data, msb_first) if bcd_coded else _signed(data, msb_first)
    record.raw = raw
    value: "object" = raw
    if kind == KIND_NUMBER and isinstance(raw, int):
        value = scale(raw, exponent, factor)
    record.value = value
    record.unit = unit if isinstance(value, (int, float)) else None
    record.quantity = quantity
    record.name = quantity
    return record


__all__ = [
    "DIF_IDLE_FILLER",
    "DIF_MANUFACTURER",
    "DIF_MORE_RECORDS",
    "FUNCTIONS",
    "FUNCTION_MANUFACTURER",
    "MAX_DIFE",
    "MAX_VIFE",
    "Record",
    "bcd",
    "decode_time",
    "fixed_counter",
    "hex_string",
    "iter_records",
    "manufacturer_code",
    "manufacturer_record",
    "scale",
]

"""SDI-12 responses: their types, parsing (`parse_response`) and formatting (sensor side).

Firmware-style: standard library only, the part MicroPython has.
"""

from protocols._typing import TYPE_CHECKING
from protocols.errors import (
    CHECKSUM,
    MALFORMED,
    TRUNCATED,
    UNSUPPORTED,
    LocalProtocolError,
    RemoteProtocolError,
)
from protocols.sdi12._commands import (
    _ADDRESS_CHARS,
    _DIGITS,
    ACKNOWLEDGE,
    CHANGE_ADDRESS,
    CONCURRENT,
    CONTINUOUS,
    DATA,
    IDENTIFY,
    MEASURE,
    VERIFY,
    Command,
    _ascii,
    _check_address,
    _is_crc,
    crc16,
    encode_crc,
    parse_command,
)

if TYPE_CHECKING:
    from typing import Union

    Value = Union[int, float]
    CommandLike = Union[Command, bytes, str, None]


# -- responses ----------------------------------------------------------------------------


class Acknowledge:
    """`a<CR><LF>`: answer to a!, ?! and aAb! (the new address), and the service request."""

    __slots__ = ("address",)
    kind = "acknowledge"

    def __init__(self, address: "str") -> "None":
        self.address = address

    def fields(self) -> "dict[str, object]":
        return {"address": self.address, "kind": self.kind}

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, Acknowledge) and other.address == self.address

    def __repr__(self) -> "str":
        return "Acknowledge(%r)" % self.address


class Identification:
    """`allccccccccmmmmmmvvvxxx...`: answer to aI!."""

    __slots__ = ("address", "extra", "model", "sdi12_version", "sensor_version", "vendor")
    kind = "identification"

    def __init__(
        self,
        address: "str",
        sdi12_version: "str",
        vendor: "str",
        model: "str",
        sensor_version: "str",
        extra: "str",
    ) -> "None":
        self.address = address
        self.sdi12_version = sdi12_version  # "1.3"
        self.vendor = vendor  # 8 characters, trailing spaces removed
        self.model = model  # 6 characters, trailing spaces removed
        self.sensor_version = sensor_version  # 3 characters
        self.extra = extra  # optional, serial number or other (spec: up to 13 characters)

    def fields(self) -> "dict[str, object]":
        return {
            "address": self.address,
            "kind": self.kind,
            "sdi12_version": self.sdi12_version,
            "vendor": self.vendor,
            "model": self.model,
            "sensor_version": self.sensor_version,
            "extra": self.extra,
        }

    def __repr__(self) -> "str":
        return "Identification(%r, %r, %r, %r, %r, %r)" % (
            self.address,
            self.sdi12_version,
            self.vendor,
            self.model,
            self.sensor_version,
            self.extra,
        )


class MeasurementStart:
    """`atttn` (M, MC, V) or `atttnn` (C, CC): values ready in `seconds`, `count` of them."""

    __slots__ = ("address", "concurrent", "count", "seconds")
    kind = "measurement"

    def __init__(self, address: "str", seconds: "int", count: "int", concurrent: "bool") -> "None":
        self.address = address
        self.seconds = seconds
        self.count = count
        self.concurrent = concurrent

    def fields(self) -> "dict[str, object]":
        return {
            "address": self.address,
            "kind": self.kind,
            "seconds": self.seconds,
            "count": self.count,
            "concurrent": self.concurrent,
        }

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, MeasurementStart) and (
            self.address,
            self.seconds,
            self.count,
            self.concurrent,
        ) == (other.address, other.seconds, other.count, other.concurrent)

    def __repr__(self) -> "str":
        return "MeasurementStart(%r, %r, %r, %r)" % (
            self.address,
            self.seconds,
            self.count,
            self.concurrent,
        )


class DataValues:
    """`a<values>[<CRC>]`: answer to aD0!..aD9! and aR0!..aR9!. `crc` is the (checked) CRC
    value when the response carried one, else None. No values: the sensor aborted."""

    __slots__ = ("address", "crc", "values")
    kind = "data"

    def __init__(self, address: "str", values: "list[Value]", crc: "int | None") -> "None":
        self.address = address
        self.values = values
        self.crc = crc

    def fields(self) -> "dict[str, object]":
        return {
            "address": self.address,
            "kind": self.kind,
            "values": list(self.values),
            "crc": None if self.crc is None else encode_crc(self.crc).decode(),
        }

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, DataValues) and (self.address, self.values, self.crc) == (
            other.address,
            other.values,
            other.crc,
        )

    def __repr__(self) -> "str":
        return "DataValues(%r, %r, %r)" % (self.address, self.values, self.crc)


class ExtendedResponse:
    """The answer to an extended command: the text after the address, as sent."""

    __slots__ = ("address", "text")
    kind = "extended"

    def __init__(self, address: "str", text: "str") -> "None":
        self.address = address
        self.text = text

    def fields(self) -> "dict[str, object]":
        return {"address": self.address, "kind": self.kind, "text": self.text}

    def __repr__(self) -> "str":
        return "ExtendedResponse(%r, %r)" % (self.address, self.text)


if TYPE_CHECKING:
    Response = Union[Acknowledge, Identification, MeasurementStart, DataValues, ExtendedResponse]


def parse_values(text: "str") -> "list[Value]":
    """`+3.14-2+0.5` -> [3.14, -2, 0.5]. Each value: sign, digits, at most one point."""
    values: "list[Value]" = []
    n = len(text)
    i = 0
    while i < n:
        if text[i] not in "+-":
            raise RemoteProtocolError(MALFORMED, "a value must start with + or -: %r" % text[i:])
        j = i + 1
        while j < n and text[j] not in "+-":
            j += 1
        token = text[i:j]
        digits = 0
        points = 0
        for ch in token[1:]:
            if ch in _DIGITS:
                digits += 1
            elif ch == ".":
                points += 1
            else:
                raise RemoteProtocolError(MALFORMED, "not a value: %r" % token)
        if digits == 0 or points > 1:
            raise RemoteProtocolError(MALFORMED, "not a value: %r" % token)
        values.append(float(token) if points else int(token))
        i = j
    return values


def format_value(value: "Value | str") -> "str":
    """One value as SDI-12 writes it: 3.14 -> '+3.14', -2 -> '-2'. Strings are checked."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        raise LocalProtocolError("not an SDI-12 value: %r" % (value,))
    elif isinstance(value, int):
        text = ("+" if value >= 0 else "") + str(value)
    elif isinstance(value, float):
        text = repr(value)
        if text[0] != "-":
            text = "+" + text
    else:
        raise LocalProtocolError("not an SDI-12 value: %r" % (value,))
    try:
        ok = len(parse_values(text)) == 1
    except RemoteProtocolError:
        ok = False
    digits = sum(1 for ch in text if ch in _DIGITS)
    if not ok or digits > 7:
        raise LocalProtocolError("not encodable as an SDI-12 value (sign, <= 7 digits): %r" % text)
    return text


def format_data(address: "str", values: "list[Value | str]", crc: "bool" = False) -> "bytes":
    """A data response line (what a sensor sends to aDn! or aRn!), with CRC if asked."""
    body = _check_address(address, wildcard=False) + "".join(format_value(v) for v in values)
    raw = body.encode()
    if crc:
        raw += encode_crc(crc16(raw))
    return raw + b"\r\n"


def format_measurement(
    address: "str", seconds: "int", count: "int", concurrent: "bool" = False
) -> "bytes":
    """`atttn` or `atttnn` (what a sensor answers to M/V or C)."""
    _check_address(address, wildcard=False)
    top = 99 if concurrent else 9
    if not 0 <= seconds <= 999 or not 0 <= count <= top:
        raise LocalProtocolError("seconds 0..999 and count 0..%d" % top)
    return ("%s%03d%0*d\r\n" % (address, seconds, 2 if concurrent else 1, count)).encode()


def format_identification(
    address: "str",
    vendor: "str",
    model: "str",
    sensor_version: "str",
    extra: "str" = "",
    sdi12_version: "str" = "1.3",
) -> "bytes":
    """`allccccccccmmmmmmvvvxxx...` (what a sensor answers to aI!)."""
    _check_address(address, wildcard=False)
    ll = sdi12_version.replace(".", "")
    if len(ll) != 2 or len(vendor) > 8 or len(model) > 6 or len(sensor_version) > 3:
        raise LocalProtocolError("field too long for aI! (ll, 8, 6, 3 characters)")
    if len(extra) > 13:
        raise LocalProtocolError("serial/extra field: at most 13 characters")
    text = "%s%s%-8s%-6s%-3s%s\r\n" % (address, ll, vendor, model, sensor_version, extra)
    _ascii(text[:-2].encode(), "identification")
    return text.encode()


def _data(address: "str", body: "str", crc: "bool | None") -> "DataValues":
    """Values with or without CRC. crc True: required, False: must be absent, None: detect.
    Value characters are all below 0x40 and CRC characters all 0x40 or above, so a CRC is
    told apart from values without knowing the command."""
    crc_value = None
    if crc is not False and _is_crc(body):
        received = body[-3:]
        body = body[:-3]
        crc_value = crc16((address + body).encode())
        if encode_crc(crc_value) != received.encode():
            raise RemoteProtocolError(
                CHECKSUM,
                "CRC %r, computed %r" % (received, encode_crc(crc_value).decode()),
            )
    elif crc:
        raise RemoteProtocolError(CHECKSUM, "CRC requested but absent")
    return DataValues(address, parse_values(body), crc_value)


def _measurement(address: "str", body: "str", concurrent: "bool") -> "MeasurementStart":
    want = 5 if concurrent else 4
    if len(body) != want or any(ch not in _DIGITS for ch in body):
        raise RemoteProtocolError(
            MALFORMED,
            "expected a%s (ttt seconds, %s values), got %r"
            % ("tttnn" if concurrent else "tttn", "nn" if concurrent else "n", address + body),
        )
    return MeasurementStart(address, int(body[:3]), int(body[3:]), concurrent)


def _identification(address: "str", body: "str") -> "Identification":
    if len(body) < 19 or body[0] not in _DIGITS or body[1] not in _DIGITS:
        raise RemoteProtocolError(
            MALFORMED, "identification is allccccccccmmmmmmvvv[xxx]: %r" % (address + body)
        )
    return Identification(
        address,
        body[0] + "." + body[1],
        body[2:10].rstrip(),
        body[10:16].rstrip(),
        body[16:19].rstrip(),
        body[19:].rstrip(),
    )


def _infer(address: "str", body: "str") -> "Response":
    """Recognise a basic response without knowing the command."""
    if body == "":
        return Acknowledge(address)
    if body[0] in "+-" or (len(body) == 3 and _is_crc(body)):
        return _data(address, body, None)
    if len(body) in (4, 5) and all(ch in _DIGITS for ch in body):
        return _measurement(address, body, len(body) == 5)
    if len(body) >= 19 and body[0] in _DIGITS and body[1] in _DIGITS:
        return _identification(address, body)
    raise RemoteProtocolError(
        UNSUPPORTED, "not a basic SDI-12 response (an extended command's?): %r" % body[:40]
    )


def _as_command(command: "CommandLike") -> "Command | None":
    if command is None or isinstance(command, Command):
        return command
    if isinstance(command, str):
        command = command.encode()
    try:
        return parse_command(command)
    except RemoteProtocolError as e:
        raise LocalProtocolError("not an SDI-12 command: %r" % (command,)) from e


def parse_response(
    line: "bytes", command: "CommandLike" = None, crc: "bool | None" = None
) -> "Response":
    """Parse one response line (`a...<CR><LF>`).

    `command` (a Command, or its bytes) says what the line answers and so what it must look
    like, and whose address it must carry; without it the basic responses are recognised by
    their shape. `crc` for data responses: True when the measurement was started with a CRC
    command (MC, CC; RC implies it), False when it must have none, None to accept both (a
    CRC present is always checked)."""
    if not isinstance(line, (bytes, bytearray)):
        raise LocalProtocolError("line must be bytes")
    if line[-2:] != b"\r\n":
        raise RemoteProtocolError(TRUNCATED, "a response ends with CR LF: %r" % bytes(line[-20:]))
    return parse_response_text(bytes(line[:-2]), command, crc)


def parse_response_text(
    text: "bytes", command: "CommandLike" = None, crc: "bool | None" = None
) -> "Response":
    """`parse_response` without the CR LF (for text that lost it)."""
    cmd = _as_command(command)
    body_text = _ascii(text, "response", allow_del=True)
    if not body_text:
        raise RemoteProtocolError(TRUNCATED, "empty response")
    address, body = body_text[0], body_text[1:]
    if address not in _ADDRESS_CHARS:
        raise RemoteProtocolError(MALFORMED, "not an SDI-12 address: %r" % address)
    if "\x7f" in body[:-2] or "!" in body:
        # DEL may only be a CRC's second or third character; '!' only ends commands.
        raise RemoteProtocolError(MALFORMED, "invalid character in response: %r" % body[:40])
    if cmd is None:
        return _infer(address, body)
    if cmd.kind == CHANGE_ADDRESS:
        if address not in (cmd.address, cmd.new_address):
            raise RemoteProtocolError(
                MALFORMED, "address change answered by %r, not %r" % (address, cmd.new_address)
            )
    elif cmd.address != "?" and address != cmd.address:
        raise RemoteProtocolError(
            MALFORMED, "response from %r to a command for %r" % (address, cmd.address)
        )
    kind = cmd.kind
    if kind in (ACKNOWLEDGE, CHANGE_ADDRESS):
        if body:
            raise RemoteProtocolError(MALFORMED, "expected the address alone, got %r" % body[:40])
        return Acknowledge(address)
    if kind == IDENTIFY:
        return _identification(address, body)
    if kind in (MEASURE, VERIFY):
        return _measurement(address, body, False)
    if kind == CONCURRENT:
        return _measurement(address, body, True)
    if kind == CONTINUOUS:
        return _data(address, body, True if cmd.crc else crc)
    if kind == DATA:
        return _data(address, body, crc)
    return ExtendedResponse(address, body)


__all__ = [
    "Acknowledge",
    "DataValues",
    "ExtendedResponse",
    "Identification",
    "MeasurementStart",
    "format_data",
    "format_identification",
    "format_measurement",
    "format_value",
    "parse_response",
    "parse_response_text",
    "parse_values",
]

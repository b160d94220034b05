"""SDI-12 v1.3: command builders, response parsing with CRC, and a sans-IO master sequence.

SDI-12 runs at 1200 baud, 7 data bits, even parity, 1 stop bit, on one half-duplex line.
A data recorder (us) wakes the sensors with a break, sends a command (`a...!`, the first
character an address) and reads one response line (`a...<CR><LF>`). This module moves no
bytes and keeps no clock: it builds the commands, frames and parses the responses, and its
`MeasureSequence` says what to send next, whether to send a break first, and how long to wait.

    >>> seq = MeasureSequence("0")
    >>> seq.start()            # Send(b'0M!', wake=True)
    >>> seq.receive(b"00053\\r\\n")   # Wait(5 s, service request expected)
    >>> seq.receive(b"0\\r\\n")       # the service request: Send(b'0D0!', wake=False)
    >>> seq.receive(b"0+3.14+2.718+1.414\\r\\n")   # Done([3.14, 2.718, 1.414])

Values are decoded as written: without a decimal point they are ints (`+345` -> 345),
otherwise floats (`+3.14` -> 3.14). SDI-12 carries no units: readings are named `value1` ..
`valueN` with unit None unless a mapping (`names`, from configuration) gives names and units.

Firmware-style: standard library only, the part MicroPython has.
"""

from protocols._stream import LineBuffer
from protocols._typing import TYPE_CHECKING
from protocols.describe import result
from protocols.errors import (
    CHECKSUM,
    EXCEPTION,
    MALFORMED,
    OVERFLOW,
    TRUNCATED,
    UNSUPPORTED,
    LocalProtocolError,
    RemoteProtocolError,
)
from protocols.reading import Measurement

if TYPE_CHECKING:
    from typing import Union

    Value = Union[int, float]
    CommandLike = Union["Command", bytes, str, None]

# -- line settings and timing (SDI-12 v1.3 sections 4.1 and 5) ----------------------------

BAUD_RATE = 1200
BYTE_FORMAT = "7E1"  # 7 data bits, even parity, 1 stop bit
CHAR_MS = 8.33  # one character (10 bits) at 1200 baud
CHAR_GAP_MS = 1.66  # max marking between two characters of a command or a response
BREAK_MS = 12.0  # a break: continuous spacing for at least 12 ms
MARKING_MS = 8.33  # marking after the break before the command's first character
RESPONSE_MS = 15.0  # a response starts within 15 ms after the command's last stop bit
RETRY_MIN_MS = 16.67  # no response after this long: retry (without a break)...
RETRY_MAX_MS = 87.0  # ...but no later than this, or a break is needed again
BREAK_AFTER_IDLE_MS = 87.0  # after this much marking the next command needs a break
SENSOR_WAKE_MS = 100.0  # a sensor may need 100 ms after the break to wake up
ADDRESS_CHANGE_MS = 1000.0  # after aAb! the sensor may ignore commands for one second
TRIES = 3  # transmissions per break: the first and at least two retries
WAKES = 3  # the whole sequence (break and retries) is tried at least three times

MAX_LINE = 200  # receive bound: the longest basic response is 81 characters
MAX_VALUES_M = 35  # <values> characters after M, MC, V
MAX_VALUES_C = 75  # <values> characters after C, CC and for R

_ADDRESS_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DIGITS = "0123456789"


def _check_address(address: "str", wildcard: "bool" = True) -> "str":
    if (
        not isinstance(address, str)
        or len(address) != 1
        or (address not in _ADDRESS_CHARS and not (wildcard and address == "?"))
    ):
        raise LocalProtocolError("not an SDI-12 address: %r" % (address,))
    return address


def _check_index(index: "int", low: "int" = 0) -> "int":
    if not isinstance(index, int) or isinstance(index, bool) or index < low or index > 9:
        raise LocalProtocolError("index must be %d..9, not %r" % (low, index))
    return index


# -- CRC (section 4.4.12) -----------------------------------------------------------------


def crc16(data: "bytes") -> "int":
    """CRC-16/ARC (init 0, reflected polynomial 0xA001) as SDI-12 computes it."""
    crc = 0
    for c in data:
        crc ^= c
        for _ in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ 0xA001
            else:
                crc >>= 1
    return crc


def encode_crc(crc: "int") -> "bytes":
    """The three CRC characters: 0x40|crc>>12, 0x40|(crc>>6 & 0x3F), 0x40|(crc & 0x3F)."""
    return bytes((0x40 | (crc >> 12) & 0x0F, 0x40 | ((crc >> 6) & 0x3F), 0x40 | (crc & 0x3F)))


def _is_crc(text: "str") -> "bool":
    """Whether the last three characters have the shape of encoded CRC characters."""
    if len(text) < 3:
        return False
    a, b, c = ord(text[-3]), ord(text[-2]), ord(text[-1])
    return 0x40 <= a <= 0x4F and 0x40 <= b <= 0x7F and 0x40 <= c <= 0x7F


# -- commands -----------------------------------------------------------------------------


def acknowledge(address: "str") -> "bytes":
    """`a!`: is the sensor at `address` there? (`?!` with address "?")."""
    return (_check_address(address) + "!").encode()


def query_address() -> "bytes":
    """`?!`: the only sensor on the bus answers with its address."""
    return b"?!"


def identify(address: "str") -> "bytes":
    """`aI!`: SDI-12 version, vendor, model, sensor version, serial."""
    return (_check_address(address) + "I!").encode()


def change_address(address: "str", new_address: "str") -> "bytes":
    """`aAb!`: move the sensor at `address` to `new_address`."""
    return (
        _check_address(address, wildcard=False) + "A" + _check_address(new_address, False) + "!"
    ).encode()


def start_measurement(address: "str", index: "int" = 0, crc: "bool" = False) -> "bytes":
    """`aM!`, `aM1!`..`aM9!`, with `crc` `aMC!`, `aMC1!`..`aMC9!`."""
    _check_address(address)
    return (address + "M" + ("C" if crc else "") + _suffix(index) + "!").encode()


def start_concurrent(address: "str", index: "int" = 0, crc: "bool" = False) -> "bytes":
    """`aC!`, `aC1!`..`aC9!`, with `crc` `aCC!`, `aCC1!`..`aCC9!`."""
    _check_address(address)
    return (address + "C" + ("C" if crc else "") + _suffix(index) + "!").encode()


def start_verification(address: "str") -> "bytes":
    """`aV!`: the sensor runs its self-test; results come with `aD0!`..."""
    return (_check_address(address) + "V!").encode()


def send_data(address: "str", index: "int" = 0) -> "bytes":
    """`aD0!`..`aD9!`: fetch the next group of values."""
    return (_check_address(address) + "D" + str(_check_index(index)) + "!").encode()


def continuous(address: "str", index: "int" = 0, crc: "bool" = False) -> "bytes":
    """`aR0!`..`aR9!`, with `crc` `aRC0!`..`aRC9!`: read a continuously measuring sensor."""
    _check_address(address)
    return (address + "R" + ("C" if crc else "") + str(_check_index(index)) + "!").encode()


def extended(address: "str", body: "str") -> "bytes":
    """An extended (manufacturer) command `a<body>!`, e.g. extended("0", "XRST") -> b"0XRST!".

    The spec recommends that `body` starts with "X" but does not require it."""
    _check_address(address)
    if not isinstance(body, str) or not body or len(body) > MAX_LINE - 2:
        raise LocalProtocolError("extended command body must be 1..%d characters" % (MAX_LINE - 2))
    for ch in body:
        if ch == "!" or not (" " <= ch <= "~"):
            raise LocalProtocolError("extended command body must be printable, without '!'")
    return (address + body + "!").encode()


def _suffix(index: "int") -> "str":
    _check_index(index)
    return str(index) if index else ""


# Command kinds
ACKNOWLEDGE = "acknowledge"  # a! and ?!
IDENTIFY = "identify"  # aI!
CHANGE_ADDRESS = "change_address"  # aAb!
MEASURE = "measure"  # aM!, aMn!, aMC!, aMCn!
CONCURRENT = "concurrent"  # aC!, aCn!, aCC!, aCCn!
VERIFY = "verify"  # aV!
DATA = "data"  # aD0!..aD9!
CONTINUOUS = "continuous"  # aR0!..aR9!, aRC0!..aRC9!
EXTENDED = "extended"  # anything else


class Command:
    """A parsed command. `index` is the digit of Mn/Cn/Dn/Rn (0 when absent); `crc` whether
    a CRC was requested; `new_address` for aAb!; `body` the text between address and '!'."""

    __slots__ = ("address", "body", "crc", "index", "kind", "new_address")

    def __init__(
        self,
        address: "str",
        kind: "str",
        index: "int" = 0,
        crc: "bool" = False,
        new_address: "str | None" = None,
        body: "str" = "",
    ) -> "None":
        self.address = address
        self.kind = kind
        self.index = index
        self.crc = crc
        self.new_address = new_address
        self.body = body

    def encode(self) -> "bytes":
        return (self.address + self.body + "!").encode()

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, Command) and self.encode() == other.encode()

    def __repr__(self) -> "str":
        return "Command(%r)" % self.encode()


def parse_command(data: "bytes") -> "Command":
    """Parse `a...!` (what a recorder sends, or the echo it reads back on a half-duplex line)."""
    text = _ascii(data, "command")
    if len(text) < 2 or text[-1] != "!":
        raise RemoteProtocolError(TRUNCATED, "a command ends with '!': %r" % text[:20])
    address, body = text[0], text[1:-1]
    if address not in _ADDRESS_CHARS and address != "?":
        raise RemoteProtocolError(MALFORMED, "not an SDI-12 address: %r" % address)
    if "!" in body:
        raise RemoteProtocolError(MALFORMED, "'!' inside a command")
    kind, index, crc, new = EXTENDED, 0, False, None
    n = len(body)
    last_digit = n > 0 and body[-1] in "123456789"
    if body == "":
        kind = ACKNOWLEDGE
    elif body == "I":
        kind = IDENTIFY
    elif body == "V":
        kind = VERIFY
    elif n == 2 and body[0] == "A" and body[1] in _ADDRESS_CHARS:
        kind, new = CHANGE_ADDRESS, body[1]
    elif n == 2 and body[0] == "D" and body[1] in _DIGITS:
        kind, index = DATA, int(body[1])
    elif n in (2, 3) and body[0] == "R" and body[-1] in _DIGITS and body[1:-1] in ("", "C"):
        kind, index, crc = CONTINUOUS, int(body[-1]), n == 3
    elif body[0] in "MC" and 1 <= n <= 3:
        rest = body[1:-1] if last_digit else body[1:]
        if rest in ("", "C"):
            kind = MEASURE if body[0] == "M" else CONCURRENT
            index = int(body[-1]) if last_digit else 0
            crc = rest == "C"
    return Command(address, kind, index, crc, new, body)


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


def _ascii(data: "bytes", what: "str", allow_del: "bool" = False) -> "str":
    """Bytes to str, refusing anything but printable ASCII (DEL only where CRCs may put it)."""
    if not isinstance(data, (bytes, bytearray)):
        raise LocalProtocolError("%s must be bytes" % what)
    top = 0x7F if allow_del else 0x7E
    for b in data:
        if b < 0x20 or b > top:
            hint = " (an 8N1 port? SDI-12 is 1200 7E1)" if b > 0x7F else ""
            raise RemoteProtocolError(
                MALFORMED, "%s has a non-printable byte 0x%02X%s" % (what, b, hint)
            )
    return bytes(data).decode()


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


# -- line framing -------------------------------------------------------------------------


class LineReader(LineBuffer):
    """Frames the bytes read from the bus into lines, h11 style.

    `receive_data(data)` then `next_line()` until it returns None (more data needed). A line
    is a response ending in CR LF, or a command ending in '!' (half-duplex adapters echo what
    we send; `MeasureSequence.receive` ignores the echo). Returned lines keep their
    terminator. NUL bytes before a line (a break as the UART sees it) are skipped.
    `receive_data(b"")` marks the end of the stream: a pending partial line is then returned
    as it is, without terminator, so that the parser can say what it lacks. A line longer
    than MAX_LINE raises RemoteProtocolError(OVERFLOW); its rest is skipped up to the next
    terminator."""

    __slots__ = ("_skipping",)

    def __init__(self) -> "None":
        super().__init__()
        self._skipping = False

    def next_line(self) -> "bytes | None":
        buf = self._buf
        while True:
            start = 0
            n = len(buf)
            while start < n and buf[start] == 0:
                start += 1
            if start:
                buf[:start] = b""
                n = len(buf)
            bang = buf.find(b"!")
            lf = buf.find(b"\n")
            if bang < 0 and lf < 0:
                end = -1
            elif bang < 0:
                end = lf
            elif lf < 0:
                end = bang
            else:
                end = bang if bang < lf else lf
            if self._skipping:
                if end < 0:
                    buf[:] = b""
                    return None
                buf[: end + 1] = b""
                self._skipping = False
                continue
            if end < 0:
                if n > MAX_LINE:
                    buf[:] = b""
                    self._skipping = True
                    raise RemoteProtocolError(OVERFLOW, "no line end in %d bytes" % MAX_LINE)
                if self._eof and n:
                    line = bytes(buf)
                    buf[:] = b""
                    return line
                return None
            if end + 1 > MAX_LINE:
                buf[: end + 1] = b""
                raise RemoteProtocolError(OVERFLOW, "line longer than %d bytes" % MAX_LINE)
            line = bytes(buf[: end + 1])
            buf[: end + 1] = b""
            if end == lf and line[-2:] != b"\r\n":
                raise RemoteProtocolError(MALFORMED, "line ends with LF without CR")
            return line


# -- the measure-then-read master sequence -------------------------------------------------


class Send:
    """Send `command`. With `wake`, first a break (>= BREAK_MS of spacing) then MARKING_MS of
    marking. The response should start within `timeout_ms`; if it does not (or is invalid),
    call `retry()`. The whole response line arrives within `line_ms`."""

    __slots__ = ("command", "line_ms", "timeout_ms", "wake")

    def __init__(self, command: "bytes", wake: "bool", line_chars: "int" = 81) -> "None":
        self.command = command
        self.wake = wake
        self.timeout_ms = RETRY_MIN_MS
        self.line_ms = RETRY_MIN_MS + line_chars * (CHAR_MS + CHAR_GAP_MS)

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, Send) and (self.command, self.wake) == (other.command, other.wake)

    def __repr__(self) -> "str":
        return "Send(%r, wake=%r)" % (self.command, self.wake)


class Wait:
    """Wait up to `seconds` for the data. With `service_request`, the sensor announces them
    earlier with a service request `a<CR><LF>`: feed it to `receive()`. When the time is up,
    call `elapsed()`. Without `service_request` (concurrent measurement) the bus is free for
    other sensors meanwhile."""

    __slots__ = ("seconds", "service_request")

    def __init__(self, seconds: "int", service_request: "bool") -> "None":
        self.seconds = seconds
        self.service_request = service_request

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, Wait) and (self.seconds, self.service_request) == (
            other.seconds,
            other.service_request,
        )

    def __repr__(self) -> "str":
        return "Wait(%r, service_request=%r)" % (self.seconds, self.service_request)


class Done:
    """The measurement's values, in order."""

    __slots__ = ("values",)

    def __init__(self, values: "list[Value]") -> "None":
        self.values = values

    def __eq__(self, other: "object") -> "bool":
        return isinstance(other, Done) and self.values == other.values

    def __repr__(self) -> "str":
        return "Done(%r)" % (self.values,)


if TYPE_CHECKING:
    Action = Union[Send, Wait, Done]

_IDLE = "idle"
_STARTED = "started"  # command sent, waiting for atttn / atttnn
_WAITING = "waiting"  # waiting ttt seconds or for the service request
_READING = "reading"  # aDn! sent
_DONE = "done"


class MeasureSequence:
    """Sans-IO data recorder for one measurement: M (or Mn, MC, MCn), C (Cn, CC, CCn) or V,
    then D0, D1... until the announced number of values is in.

    `start()` gives the first Send. Feed every response line to `receive(line)`: it returns
    the next action (Send, Wait or Done), or None for the echo of our own command. During a
    Wait, call `elapsed()` when its time is up. A bad response raises RemoteProtocolError
    and leaves the state as it was: call `retry()` to send the same command again as the
    spec's retry rules say (2 retries without break, then the whole thing with a break, three
    times), which raises RemoteProtocolError(TRUNCATED) once the tries are spent."""

    __slots__ = (
        "_attempts",
        "_data_index",
        "_last",
        "_line_chars",
        "_state",
        "address",
        "concurrent",
        "count",
        "crc",
        "first",
        "index",
        "values",
        "verification",
    )

    def __init__(
        self,
        address: "str",
        index: "int" = 0,
        concurrent: "bool" = False,
        crc: "bool" = False,
        verification: "bool" = False,
    ) -> "None":
        _check_address(address, wildcard=False)
        _check_index(index)
        if verification and (concurrent or crc or index):
            raise LocalProtocolError("aV! has no concurrent, CRC or numbered form")
        self.address = address
        self.index = index
        self.concurrent = concurrent
        self.crc = crc
        self.verification = verification
        if verification:
            self.first = start_verification(address)
        elif concurrent:
            self.first = start_concurrent(address, index, crc)
        else:
            self.first = start_measurement(address, index, crc)
        self.count = -1  # announced number of values, once known
        self.values: "list[Value]" = []
        self._state = _IDLE
        self._last: "Send | None" = None
        self._attempts = 0
        self._line_chars = 0
        self._data_index = 0

    @property
    def done(self) -> "bool":
        return self._state == _DONE

    def _send(self, command: "bytes", wake: "bool", line_chars: "int") -> "Send":
        self._last = Send(command, wake, line_chars)
        self._line_chars = line_chars
        self._attempts = 1
        return self._last

    def start(self) -> "Send":
        if self._state != _IDLE:
            raise LocalProtocolError("sequence already started")
        self._state = _STARTED
        return self._send(self.first, True, 8)

    def retry(self) -> "Send":
        """The same command again after no or a bad response (spec section 5.2)."""
        if self._state not in (_STARTED, _READING) or self._last is None:
            raise LocalProtocolError("nothing to retry in state %s" % self._state)
        if self._attempts >= TRIES * WAKES:
            raise RemoteProtocolError(
                TRUNCATED,
                "no valid response to %r after %d tries"
                % (self._last.command.decode(), self._attempts),
            )
        wake = self._attempts % TRIES == 0
        self._attempts += 1
        self._last = Send(self._last.command, wake, self._line_chars)
        return self._last

    def elapsed(self) -> "Send":
        """The Wait's time is up without a service request: fetch the data (with a break)."""
        if self._state != _WAITING:
            raise LocalProtocolError("not waiting (state %s)" % self._state)
        return self._read(0, True)

    def _read(self, index: "int", wake: "bool") -> "Send":
        self._state = _READING
        self._data_index = index
        limit = MAX_VALUES_C if self.concurrent else MAX_VALUES_M
        return self._send(send_data(self.address, index), wake, 1 + limit + 3 + 2)

    def receive(self, line: "bytes") -> "Action | None":
        """Feed one line from the LineReader; see the class docstring."""
        last = self._last
        if last is not None and bytes(line) == last.command:
            return None  # our own command, echoed by a half-duplex adapter
        state = self._state
        if state == _STARTED:
            assert last is not None
            response = parse_response(line, last.command)
            assert isinstance(response, MeasurementStart)
            self.count = response.count
            if response.count == 0:
                self._state = _DONE
                return Done([])
            if response.seconds == 0:
                return self._read(0, False)
            self._state = _WAITING
            return Wait(response.seconds, not self.concurrent)
        if state == _WAITING:
            if self.concurrent:
                raise RemoteProtocolError(
                    MALFORMED, "a sensor sends no service request after aC!: %r" % bytes(line)
                )
            service = parse_response(line, acknowledge(self.address))
            assert isinstance(service, Acknowledge)
            return self._read(0, False)
        if state == _READING:
            assert last is not None
            data = parse_response(line, last.command, True if self.crc else None)
            assert isinstance(data, DataValues)
            if not data.values:
                raise RemoteProtocolError(
                    EXCEPTION, "sensor %r aborted the measurement (no values)" % self.address
                )
            got = len(self.values) + len(data.values)
            if got > self.count:
                raise RemoteProtocolError(
                    MALFORMED, "sensor announced %d values and sent %d" % (self.count, got)
                )
            self.values.extend(data.values)
            if got == self.count:
                self._state = _DONE
                return Done(list(self.values))
            if self._data_index == 9:
                raise RemoteProtocolError(
                    TRUNCATED, "only %d of %d values after aD9!" % (got, self.count)
                )
            return self._read(self._data_index + 1, False)
        raise LocalProtocolError("no line expected in state %s" % state)


# -- readings -----------------------------------------------------------------------------


def parse_names(names: "object") -> "list[tuple[str, str | None]]":
    """`"moisture:%,temperature:Cel,ec"` -> [("moisture", "%"), ("temperature", "Cel"),
    ("ec", None)]. A list of such strings is accepted too. Empty entries keep the generic name."""
    if names is None:
        return []
    if isinstance(names, str):
        items = names.split(",")
    elif isinstance(names, (list, tuple)):
        items = [str(n) for n in names]
    else:
        raise LocalProtocolError("names: a comma-separated string or a list")
    out: "list[tuple[str, str | None]]" = []
    for item in items:
        item = item.strip()
        if ":" in item:
            name, unit = item.split(":", 1)
            out.append((name.strip(), unit.strip() or None))
        else:
            out.append((item, None))
    return out


def readings(
    values: "list[Value]", names: "object" = None, start: "int" = 0
) -> "list[Measurement]":
    """Measurements from values: `value1`..`valueN` (unit None), or the names (and units)
    given in `names` by position; `start` is the position of values[0] in the measurement
    (values from aD1! follow those of aD0!)."""
    mapping = parse_names(names)
    out = []
    for i, value in enumerate(values):
        pos = start + i
        name, unit = mapping[pos] if pos < len(mapping) else ("", None)
        out.append(Measurement(name or "value%d" % (pos + 1), value, unit))
    return out


# -- describe (estran decode sdi12) --------------------------------------------------------


def describe(data: "bytes", options: "dict[str, object]") -> "list[dict[str, object]]":
    """Responses (and optionally the commands before them) as contract dicts.

    `data` is what was on the line: response lines `a...<CR><LF>`, each optionally preceded
    by the command it answers (`0D0!0+3.14<CR><LF>`). A command tells what the next response
    is; a measurement command (MC, CC) tells that its data responses must carry a CRC, and
    values of aD1!.. continue the numbering of aD0!'s. Without commands, responses are
    recognised by their shape. A command with no response after it is described alone.
    `options["names"]`: reading names (and units), see `parse_names`. Garbage never raises;
    an unusable `names` option raises LocalProtocolError."""
    names = options.get("names") if isinstance(options, dict) else None
    parse_names(names)  # a bad mapping is the caller's error: LocalProtocolError
    out: "list[dict[str, object]]" = []
    reader = LineReader()
    reader.receive_data(bytes(data))
    reader.receive_data(b"")
    pending: "Command | None" = None
    crc_of: "dict[str, bool]" = {}  # per address: CRC requested by its last M/C/V command?
    position: "dict[str, int]" = {}  # per address: values already read in this measurement
    service: "dict[str, bool]" = {}  # per address: a service request may come (after M, V)
    while True:
        try:
            line = reader.next_line()
        except RemoteProtocolError as e:
            out.append(result("sdi12", False, str(e), {}, []))
            continue
        if line is None:
            break
        if line[-1:] == b"!":
            try:
                command = parse_command(line)
            except RemoteProtocolError as e:
                out.append(result("sdi12", False, str(e), {"command": _show(line)}, []))
                continue
            if pending is not None:
                out.append(result("sdi12", True, None, _command_fields(pending), []))
            pending = command
            service.pop(command.address, None)
            if command.kind in (MEASURE, CONCURRENT, VERIFY):
                crc_of[command.address] = command.crc
            if command.kind in (MEASURE, CONCURRENT, VERIFY, CONTINUOUS) or (
                command.kind == DATA and command.index == 0
            ):
                position[command.address] = 0
            continue
        cmd, pending = pending, None
        fields: "dict[str, object]" = {}
        if cmd is not None:
            fields["command"] = cmd.encode().decode()
        # CRC requested: it must be there; otherwise one present is still checked
        crc = True if cmd is not None and cmd.kind == DATA and crc_of.get(cmd.address) else None
        terminated = line[-2:] == b"\r\n"
        try:
            response = parse_response_text(line[:-2] if terminated else line, cmd, crc)
        except RemoteProtocolError as e:
            fields["raw"] = _show(line)
            out.append(result("sdi12", False, str(e), fields, []))
            continue
        fields.update(response.fields())
        if isinstance(response, MeasurementStart):
            if response.seconds and not response.concurrent:
                service[response.address] = True
        elif isinstance(response, Acknowledge) and cmd is None:
            if service.pop(response.address, False):
                fields["kind"] = "service_request"
        elif isinstance(response, DataValues) and not response.values:
            fields["aborted"] = True  # a valid answer without values: no measurement to give
        if not terminated:
            out.append(result("sdi12", False, "truncated: no CR LF at the end", fields, []))
            continue
        found: "list[dict[str, object]]" = []
        if isinstance(response, DataValues):
            start = 0
            if cmd is not None and cmd.kind == DATA and cmd.index > 0:
                start = position.get(cmd.address, 0)
            found = [m.as_dict() for m in readings(response.values, names, start)]
            if cmd is not None:
                position[cmd.address] = start + len(response.values)
        out.append(result("sdi12", True, None, fields, found))
    if pending is not None:
        out.append(result("sdi12", True, None, _command_fields(pending), []))
    return out


def _command_fields(cmd: "Command") -> "dict[str, object]":
    fields: "dict[str, object]" = {
        "command": cmd.encode().decode(),
        "address": cmd.address,
        "kind": cmd.kind,
    }
    if cmd.kind in (MEASURE, CONCURRENT, DATA, CONTINUOUS):
        fields["index"] = cmd.index
    if cmd.kind in (MEASURE, CONCURRENT, CONTINUOUS):
        fields["crc"] = cmd.crc
    if cmd.kind == CHANGE_ADDRESS:
        fields["new_address"] = cmd.new_address
    return fields


def _show(line: "bytes") -> "str":
    """Printable rendering of a raw line for error reports."""
    out = []
    for b in line[:80]:
        if b == 13:
            out.append("<CR>")
        elif b == 10:
            out.append("<LF>")
        elif 0x20 <= b <= 0x7E:
            out.append(chr(b))
        else:
            out.append("\\x%02x" % b)
    return "".join(out)


__all__ = [
    "ACKNOWLEDGE",
    "BAUD_RATE",
    "BREAK_MS",
    "BYTE_FORMAT",
    "CHANGE_ADDRESS",
    "CONCURRENT",
    "CONTINUOUS",
    "DATA",
    "EXTENDED",
    "IDENTIFY",
    "MARKING_MS",
    "MAX_LINE",
    "MEASURE",
    "RESPONSE_MS",
    "VERIFY",
    "Acknowledge",
    "Command",
    "DataValues",
    "Done",
    "ExtendedResponse",
    "Identification",
    "LineReader",
    "MeasureSequence",
    "MeasurementStart",
    "Send",
    "Wait",
    "acknowledge",
    "change_address",
    "continuous",
    "crc16",
    "describe",
    "encode_crc",
    "extended",
    "format_data",
    "format_identification",
    "format_measurement",
    "format_value",
    "identify",
    "parse_command",
    "parse_names",
    "parse_response",
    "parse_response_text",
    "parse_values",
    "query_address",
    "readings",
    "send_data",
    "start_concurrent",
    "start_measurement",
    "start_verification",
]

"""SDI-12 line settings and timing, the CRC, and the commands: builders and `parse_command`.

Firmware-style: standard library only, the part MicroPython has.
"""

from protocols._crc16 import crc16_a001
from protocols.errors import MALFORMED, TRUNCATED, LocalProtocolError, RemoteProtocolError

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
    return crc16_a001(data, 0)


def encode_crc(crc: "int") -> "bytes":
    """The three CRC characters: 0x40|crc>>12, 0x40|(crc>>6 & 0x3F), 0x40|(crc & 0x3F)."""
    return bytes((0x40 | (crc >> 12) & 0x0F, 0x40 | ((crc >> 6) & 0x3F), 0x40 | (crc & 0x3F)))


def _is_crc(text: "str") -> "bool":
    """Whether the last three characters have the shape of encoded CRC characters."""
    if len(text) < 3:
        return False
    a, b, c = ord(text[-3]), ord(text[-2]), ord(text[-1])
    return 0x40 <= a <= 0x4F and 0x40 <= b <= 0x7F and 0x40 <= c <= 0x7F


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


__all__ = [
    "ACKNOWLEDGE",
    "ADDRESS_CHANGE_MS",
    "BAUD_RATE",
    "BREAK_AFTER_IDLE_MS",
    "BREAK_MS",
    "BYTE_FORMAT",
    "CHANGE_ADDRESS",
    "CHAR_GAP_MS",
    "CHAR_MS",
    "CONCURRENT",
    "CONTINUOUS",
    "DATA",
    "EXTENDED",
    "IDENTIFY",
    "MARKING_MS",
    "MAX_LINE",
    "MAX_VALUES_C",
    "MAX_VALUES_M",
    "MEASURE",
    "RESPONSE_MS",
    "RETRY_MAX_MS",
    "RETRY_MIN_MS",
    "SENSOR_WAKE_MS",
    "TRIES",
    "VERIFY",
    "WAKES",
    "Command",
    "acknowledge",
    "change_address",
    "continuous",
    "crc16",
    "encode_crc",
    "extended",
    "identify",
    "parse_command",
    "query_address",
    "send_data",
    "start_concurrent",
    "start_measurement",
    "start_verification",
]

"""Wired M-Bus link layer (EN 13757-2): frames, checksums and a resynchronising stream parser.

Four frame formats::

    ACK      E5
    short    10 C A CS 16
    control  68 03 03 68 C A CI CS 16
    long     68 L L 68 C A CI data... CS 16      CS = sum(C, A, CI, data) & 0xFF

`FrameParser` is sans-IO (h11 style): `receive_data(bytes)` in any pieces, then
`next_event()` returns a `Frame` or `NEED_DATA`. Garbage, bad lengths and bad checksums raise
`RemoteProtocolError` after the offending bytes were dropped, so the caller counts the error
and calls `next_event()` again: the parser has already resynchronised on the next start byte.
Bytes that cannot start a frame are dropped as they come and reported once per run, when the
next start byte arrives, or every `max_buffer` bytes of a long run (`garbage` counts the
bytes of a run not yet reported).
"""

from protocols._stream import NEED_DATA, NeedData
from protocols.errors import (
    CHECKSUM,
    MALFORMED,
    OVERFLOW,
    TRUNCATED,
    LocalProtocolError,
    RemoteProtocolError,
)

ACK_BYTE = 0xE5
SHORT_START = 0x10
LONG_START = 0x68
STOP = 0x16

# Control field (C) values.
SND_NKE = 0x40  # link reset (initialise) of the slave
SND_UD = 0x53  # send user data to the slave
REQ_UD1 = 0x5A  # request class 1 (alarm) data
REQ_UD2 = 0x5B  # request class 2 (user) data
RSP_UD = 0x08  # slave response with user data
FCB = 0x20  # frame count bit (master to slave)
FCV = 0x10  # frame count bit valid (master to slave)
ACD = 0x20  # access demand (slave to master)
DFC = 0x10  # data flow control (slave to master)
PRM = 0x40  # primary message: set in frames from the master

# Addresses.
ADDRESS_UNCONFIGURED = 0
ADDRESS_SECONDARY = 0xFD  # the slave selected by secondary addressing
ADDRESS_TEST = 0xFE  # every slave answers (point to point only)
ADDRESS_BROADCAST = 0xFF  # every slave listens, none answers

KIND_ACK = "ack"
KIND_SHORT = "short"
KIND_CONTROL = "control"
KIND_LONG = "long"

MAX_DATA = 252  # L is one byte and counts C, A and CI
MAX_FRAME = 4 + 255 + 2
_STARTS = (ACK_BYTE, SHORT_START, LONG_START)


def checksum(data: "bytes") -> "int":
    """The M-Bus checksum: arithmetic sum of the bytes, modulo 256."""
    return sum(data) & 0xFF


def _byte(value: "int", what: "str") -> "int":
    if not isinstance(value, int) or value < 0 or value > 0xFF:
        raise LocalProtocolError("%s must be an int 0..255, got %r" % (what, value))
    return value


class Frame:
    """One link-layer frame. `kind` is one of KIND_*; `ci` is None for ACK and short frames."""

    __slots__ = ("address", "ci", "control", "data", "kind")

    def __init__(
        self,
        kind: "str",
        control: "int" = 0,
        address: "int" = 0,
        ci: "int | None" = None,
        data: "bytes" = b"",
    ) -> "None":
        self.kind = kind
        self.control = control
        self.address = address
        self.ci = ci
        self.data = bytes(data)

    @property
    def from_master(self) -> "bool":
        """True for a request (PRM bit set); ACK and responses come from a slave."""
        return self.kind != KIND_ACK and bool(self.control & PRM)

    def encode(self) -> "bytes":
        """The frame's bytes on the wire."""
        if self.kind == KIND_ACK:
            return bytes([ACK_BYTE])
        c = _byte(self.control, "control field")
        a = _byte(self.address, "address")
        if self.kind == KIND_SHORT:
            return bytes([SHORT_START, c, a, (c + a) & 0xFF, STOP])
        if self.kind not in (KIND_CONTROL, KIND_LONG):
            raise LocalProtocolError("unknown frame kind %r" % (self.kind,))
        ci = _byte(self.ci if self.ci is not None else -1, "CI field")
        if len(self.data) > MAX_DATA:
            raise LocalProtocolError("at most %d data bytes, got %d" % (MAX_DATA, len(self.data)))
        if self.kind == KIND_CONTROL and self.data:
            raise LocalProtocolError("a control frame carries no data")
        body = bytes([c, a, ci]) + self.data
        length = len(body)
        return (
            bytes([LONG_START, length, length, LONG_START]) + body + bytes([checksum(body), STOP])
        )

    def __eq__(self, other: "object") -> "bool":
        return (
            isinstance(other, Frame)
            and self.kind == other.kind
            and self.control == other.control
            and self.address == other.address
            and self.ci == other.ci
            and self.data == other.data
        )

    def __repr__(self) -> "str":
        if self.kind == KIND_ACK:
            return "Frame('ack')"
        if self.kind == KIND_SHORT:
            return "Frame('short', control=0x%02X, address=%d)" % (self.control, self.address)
        return "Frame(%r, control=0x%02X, address=%d, ci=0x%02X, data=%d bytes)" % (
            self.kind,
            self.control,
            self.address,
            self.ci if self.ci is not None else 0,
            len(self.data),
        )


def ack() -> "Frame":
    """The single-character acknowledgement E5."""
    return Frame(KIND_ACK)


def short_frame(control: "int", address: "int") -> "Frame":
    return Frame(KIND_SHORT, _byte(control, "control field"), _byte(address, "address"))


def long_frame(control: "int", address: "int", ci: "int", data: "bytes" = b"") -> "Frame":
    """A long frame, or a control frame when `data` is empty."""
    if len(data) > MAX_DATA:
        raise LocalProtocolError("at most %d data bytes, got %d" % (MAX_DATA, len(data)))
    kind = KIND_LONG if data else KIND_CONTROL
    return Frame(
        kind, _byte(control, "control field"), _byte(address, "address"), _byte(ci, "CI"), data
    )


class FrameParser:
    """Extracts frames from bytes fed in arbitrary pieces; bounded buffer.

    `max_buffer` caps the bytes held between calls. When a caller feeds more without draining
    events, the oldest bytes are dropped and the next `next_event()` raises OVERFLOW once.
    """

    __slots__ = ("_buf", "_dropped", "_garbage", "_max")

    def __init__(self, max_buffer: "int" = 1024) -> "None":
        if not isinstance(max_buffer, int) or max_buffer < MAX_FRAME:
            raise LocalProtocolError("max_buffer must be an int >= %d" % MAX_FRAME)
        self._max = max_buffer
        self._buf = b""
        self._dropped = 0
        self._garbage = 0

    @property
    def garbage(self) -> "int":
        """Bytes dropped since the last frame start that were not reported yet."""
        return self._garbage

    @property
    def buffered(self) -> "int":
        """Bytes received and not yet returned as a frame or dropped."""
        return len(self._buf)

    def receive_data(self, data: "bytes") -> "None":
        if not data:
            return
        buf = self._buf + bytes(data)
        if buf[0] not in _STARTS:  # garbage takes no buffer space: count and drop it
            self._buf = buf
            self._garbage += self._skip_garbage(0)
            buf = self._buf
        if len(buf) > self._max:
            excess = len(buf) - self._max
            self._dropped += excess
            buf = buf[excess:]
        self._buf = buf

    def next_event(self) -> "Frame | NeedData":
        """The next complete frame, or NEED_DATA. Raises RemoteProtocolError on garbage."""
        if self._dropped:
            dropped = self._dropped
            self._dropped = 0
            raise RemoteProtocolError(
                OVERFLOW, "receive buffer full (%d bytes): dropped %d bytes" % (self._max, dropped)
            )
        buf = self._buf
        if buf and buf[0] not in _STARTS:
            self._garbage += self._skip_garbage(0)
            buf = self._buf
        if not buf and self._garbage < self._max:
            return NEED_DATA
        if self._garbage:
            skipped = self._garbage
            self._garbage = 0
            raise RemoteProtocolError(
                MALFORMED, "skipped %d bytes before a frame start (E5, 10 or 68)" % skipped
            )
        first = buf[0]
        if first == ACK_BYTE:
            self._buf = buf[1:]
            return ack()
        if first == SHORT_START:
            if len(buf) < 5:
                return NEED_DATA
            if buf[4] != STOP:
                raise self._reject(MALFORMED, "short frame without stop byte 0x16")
            if (buf[1] + buf[2]) & 0xFF != buf[3]:
                raise self._reject(
                    CHECKSUM,
                    "short frame checksum 0x%02X, computed 0x%02X"
                    % (buf[3], (buf[1] + buf[2]) & 0xFF),
                )
            self._buf = buf[5:]
            return Frame(KIND_SHORT, buf[1], buf[2])
        if first == LONG_START:
            if len(buf) < 4:
                return NEED_DATA
            length = buf[1]
            if length != buf[2]:
                raise self._reject(
                    MALFORMED, "length fields differ (0x%02X, 0x%02X)" % (length, buf[2])
                )
            if buf[3] != LONG_START:
                raise self._reject(MALFORMED, "second start byte is 0x%02X, not 0x68" % buf[3])
            if length < 3:
                raise self._reject(MALFORMED, "length field %d is below 3 (C, A and CI)" % length)
            total = length + 6
            if len(buf) < total:
                return NEED_DATA
            if buf[total - 1] != STOP:
                raise self._reject(MALFORMED, "frame of length %d without stop byte 0x16" % length)
            body = buf[4 : 4 + length]
            computed = checksum(body)
            if computed != buf[total - 2]:
                raise self._reject(
                    CHECKSUM, "checksum 0x%02X, computed 0x%02X" % (buf[total - 2], computed)
                )
            self._buf = buf[total:]
            kind = KIND_LONG if length > 3 else KIND_CONTROL
            return Frame(kind, body[0], body[1], body[2], body[3:])
        raise LocalProtocolError("unreachable: 0x%02X is a start byte" % first)

    def _skip_garbage(self, start: "int") -> "int":
        """Drop buf[:start] and the non-start bytes after it; return how many were dropped."""
        buf = self._buf
        i = start
        while i < len(buf) and buf[i] not in _STARTS:
            i += 1
        self._buf = buf[i:]
        return i

    def _reject(self, reason: "str", message: "str") -> "RemoteProtocolError":
        """Drop the bad start byte and the garbage after it; return the error to raise."""
        skipped = self._skip_garbage(1)
        return RemoteProtocolError(reason, "%s (skipped %d bytes)" % (message, skipped))

    def __iter__(self) -> "FrameParser":
        return self

    def __next__(self) -> "Frame":
        event = self.next_event()
        if isinstance(event, NeedData):
            raise StopIteration
        return event


def parse_frame(data: "bytes") -> "Frame":
    """Parse exactly one frame from `data` (no more, no less)."""
    parser = FrameParser(max(MAX_FRAME, len(data)))
    parser.receive_data(data)
    event = parser.next_event()
    if isinstance(event, NeedData):
        if parser.garbage:
            raise RemoteProtocolError(MALFORMED, "%d bytes that start no frame" % parser.garbage)
        raise RemoteProtocolError(
            TRUNCATED, "incomplete frame: %d bytes and more needed" % len(data)
        )
    if parser.buffered:
        raise RemoteProtocolError(
            MALFORMED, "%d bytes after the end of the frame" % parser.buffered
        )
    return event


__all__ = [
    "ACD",
    "ACK_BYTE",
    "ADDRESS_BROADCAST",
    "ADDRESS_SECONDARY",
    "ADDRESS_TEST",
    "ADDRESS_UNCONFIGURED",
    "DFC",
    "FCB",
    "FCV",
    "KIND_ACK",
    "KIND_CONTROL",
    "KIND_LONG",
    "KIND_SHORT",
    "MAX_DATA",
    "MAX_FRAME",
    "NEED_DATA",
    "PRM",
    "REQ_UD1",
    "REQ_UD2",
    "RSP_UD",
    "SND_NKE",
    "SND_UD",
    "Frame",
    "FrameParser",
    "NeedData",
    "ack",
    "checksum",
    "long_frame",
    "parse_frame",
    "short_frame",
]

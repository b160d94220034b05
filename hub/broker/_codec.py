"""MQTT 3.1.1 packets, sans-IO: what a server reads from a client and writes back.

`read_length(byte)` feeds the remaining-length varint one byte at a time, so the caller knows
the size of a packet before reading its body and can refuse an oversized one unread;
`decode(first_byte, body)` turns one packet into a value; the `encode_*` functions build what
the server sends. A client sending garbage gets a `MalformedPacket` with a reason, never
another exception (see the fuzz test).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

# CONNACK return codes (MQTT 3.1.1, 3.2.2.3)
ACCEPTED = 0
BAD_PROTOCOL = 1
IDENTIFIER_REJECTED = 2
SERVER_UNAVAILABLE = 3
BAD_CREDENTIALS = 4
NOT_AUTHORIZED = 5

SUBACK_FAILURE = 0x80
MAX_LENGTH = 268_435_455  # the largest remaining length the varint can say


class MalformedPacket(Exception):
    """The client broke the protocol; the server closes the connection."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True, slots=True)
class Connect:
    protocol: str
    level: int
    clean: bool
    keepalive: int
    client_id: str
    will: Will | None
    username: str | None
    password: bytes | None


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    packet_id: int  # 0 for QoS 0


@dataclass(frozen=True, slots=True)
class Ack:
    """PUBACK, PUBREC, PUBREL, PUBCOMP or UNSUBACK: a packet type and an id."""

    kind: int
    packet_id: int


@dataclass(frozen=True, slots=True)
class Subscribe:
    packet_id: int
    filters: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    packet_id: int
    filters: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Disconnect:
    pass


Packet = Connect | Publish | Ack | Subscribe | Unsubscribe | Ping | Disconnect


class LengthReader:
    """The remaining length, one byte at a time: `feed(b)` is None until the last byte."""

    __slots__ = ("_count", "_multiplier", "_value")

    def __init__(self) -> None:
        self._multiplier = 1
        self._value = 0
        self._count = 0

    def feed(self, byte: int) -> int | None:
        self._count += 1
        if self._count > 4:
            raise MalformedPacket("remaining length longer than 4 bytes")
        self._value += (byte & 0x7F) * self._multiplier
        self._multiplier *= 128
        return None if byte & 0x80 else self._value


class _Body:
    """A cursor over a packet body that raises MalformedPacket when it runs out."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise MalformedPacket("packet shorter than its fields")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        value: int = struct.unpack(">H", self.take(2))[0]
        return value

    def binary(self) -> bytes:
        return self.take(self.u16())

    def text(self) -> str:
        raw = self.binary()
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MalformedPacket("a string is not UTF-8") from e
        if "\x00" in value:
            raise MalformedPacket("a string holds U+0000")
        return value

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk

    @property
    def done(self) -> bool:
        return self.pos >= len(self.data)


def _packet_id(body: _Body) -> int:
    pid = body.u16()
    if pid == 0:
        raise MalformedPacket("packet identifier 0")
    return pid


def _qos(value: int) -> int:
    if value > 2:
        raise MalformedPacket(f"QoS {value}")
    return value


def _connect(body: _Body) -> Connect:
    protocol = body.text()
    level = body.u8()
    flags = body.u8()
    keepalive = body.u16()
    if protocol not in ("MQTT", "MQIsdp"):
        raise MalformedPacket(f"protocol name {protocol[:20]!r}")
    if (protocol, level) != ("MQTT", 4):  # MQTT 3.1 or 5: answered with CONNACK 1
        body.rest()
        return Connect(protocol, level, True, keepalive, "", None, None, None)
    if flags & 0x01:
        raise MalformedPacket("CONNECT reserved flag set")
    client_id = body.text()
    will = None
    if flags & 0x04:
        topic = body.text()
        payload = body.binary()
        will = Will(topic, payload, _qos((flags >> 3) & 0x03), bool(flags & 0x20))
    elif flags & 0x38:
        raise MalformedPacket("Will QoS or retain without a Will")
    username = body.text() if flags & 0x80 else None
    if flags & 0x40 and username is None and level >= 4:
        raise MalformedPacket("password without a user name")
    password = body.binary() if flags & 0x40 else None
    return Connect(
        protocol, level, bool(flags & 0x02), keepalive, client_id, will, username, password
    )


def decode(first: int, data: bytes) -> Packet:
    """One packet from its first byte and its body (the remaining-length bytes)."""
    kind, flags = first >> 4, first & 0x0F
    body = _Body(data)
    packet: Packet
    if kind == PUBLISH:
        qos = _qos((flags >> 1) & 0x03)
        topic = body.text()
        pid = _packet_id(body) if qos else 0
        packet = Publish(topic, body.rest(), qos, bool(flags & 0x01), bool(flags & 0x08), pid)
    elif kind == CONNECT:
        _flags(flags, 0)
        packet = _connect(body)
    elif kind in (PUBACK, PUBREC, PUBCOMP):
        _flags(flags, 0)
        packet = Ack(kind, _packet_id(body))
    elif kind == PUBREL:
        _flags(flags, 2)
        packet = Ack(kind, _packet_id(body))
    elif kind == SUBSCRIBE:
        _flags(flags, 2)
        pid = _packet_id(body)
        subs: list[tuple[str, int]] = []
        while not body.done:
            topic = body.text()
            options = body.u8()
            if options & 0xFC:
                raise MalformedPacket("SUBSCRIBE reserved bits set")
            subs.append((topic, _qos(options)))
        if not subs:
            raise MalformedPacket("SUBSCRIBE without a topic filter")
        packet = Subscribe(pid, tuple(subs))
    elif kind == UNSUBSCRIBE:
        _flags(flags, 2)
        pid = _packet_id(body)
        filters: list[str] = []
        while not body.done:
            filters.append(body.text())
        if not filters:
            raise MalformedPacket("UNSUBSCRIBE without a topic filter")
        packet = Unsubscribe(pid, tuple(filters))
    elif kind == PINGREQ:
        _flags(flags, 0)
        packet = Ping()
    elif kind == DISCONNECT:
        _flags(flags, 0)
        packet = Disconnect()
    else:
        raise MalformedPacket(f"packet type {kind} is not sent by a client")
    if not body.done:
        raise MalformedPacket("bytes after the last field")
    return packet


def _flags(flags: int, expected: int) -> None:
    if flags != expected:
        raise MalformedPacket(f"fixed-header flags {flags:#x}")


# -- what the server sends ------------------------------------------------------------------


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _length(len(body)) + body


def _text(value: str) -> bytes:
    raw = value.encode("utf-8")
    return struct.pack(">H", len(raw)) + raw


def encode_connack(session_present: bool, code: int) -> bytes:
    return _packet(CONNACK << 4, bytes([1 if session_present else 0, code]))


def encode_publish(
    topic: str, payload: bytes, qos: int, retain: bool, dup: bool, packet_id: int
) -> bytes:
    first = (PUBLISH << 4) | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    head = _text(topic) + (struct.pack(">H", packet_id) if qos else b"")
    return _packet(first, head + payload)


def encode_ack(kind: int, packet_id: int) -> bytes:
    """PUBACK, PUBREC, PUBREL (flags 0b0010), PUBCOMP or UNSUBACK."""
    return _packet((kind << 4) | (2 if kind == PUBREL else 0), struct.pack(">H", packet_id))


def encode_suback(packet_id: int, codes: list[int]) -> bytes:
    return _packet(SUBACK << 4, struct.pack(">H", packet_id) + bytes(codes))


PINGRESP_BYTES = bytes([PINGRESP << 4, 0])


__all__ = [
    "ACCEPTED",
    "BAD_CREDENTIALS",
    "BAD_PROTOCOL",
    "CONNACK",
    "CONNECT",
    "DISCONNECT",
    "IDENTIFIER_REJECTED",
    "MAX_LENGTH",
    "NOT_AUTHORIZED",
    "PINGREQ",
    "PINGRESP",
    "PINGRESP_BYTES",
    "PUBACK",
    "PUBCOMP",
    "PUBLISH",
    "PUBREC",
    "PUBREL",
    "SERVER_UNAVAILABLE",
    "SUBACK",
    "SUBACK_FAILURE",
    "SUBSCRIBE",
    "UNSUBACK",
    "UNSUBSCRIBE",
    "Ack",
    "Connect",
    "Disconnect",
    "LengthReader",
    "MalformedPacket",
    "Packet",
    "Ping",
    "Publish",
    "Subscribe",
    "Unsubscribe",
    "Will",
    "decode",
    "encode_ack",
    "encode_connack",
    "encode_publish",
    "encode_suback",
]

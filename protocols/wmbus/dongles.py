"""The serial framing of wireless M-Bus USB receivers, sans-IO (h11 style).

Each stream takes bytes in any pieces (`receive_data`) and gives events (`next_event`):
a `RadioTelegram` (a telegram heard over the air: L-field first, CRCs removed, and the
signal strength when the dongle reports it), a `DongleReply` (the answer to a command, for
the probe), or NEED_DATA. Bytes it has to drop raise RemoteProtocolError once (the stream
has already resynchronised: call `next_event` again). Buffers are bounded.

- IMST iM871A / iM170A (and the WMBUS-USB sticks built on them), 57600 8N1: HCI messages
  ``A5 | ctrl | msg id | length | payload | [timestamp 4] | [RSSI 1] | [CRC 2]``; the
  control byte's high nibble says which optional fields follow (0x2 timestamp, 0x4 RSSI,
  0x8 CRC), its low nibble is the endpoint (1 device management, 2 radio link, 3 radio
  link test, 4 hardware test). The CRC is CRC-16/X-25 (reflected 0x8408 from 0xFFFF,
  complemented, least significant byte first) over ctrl..RSSI. A received telegram is
  radio link message 0x03 (WMBUSMSG_IND) whose payload is the telegram from its C-field:
  the length byte is its L-field. Ping: device management 0x01, answered by 0x02.
- Amber / Würth Elektronik AMB8465 (Metis-II), 9600 8N1: in command mode
  ``FF | command | length | payload | checksum`` (XOR of every byte before it); a received
  telegram is command 0x03 (CMD_DATA_IND) whose payload is the telegram from its C-field,
  followed by one RSSI byte when the module is set to append it (the length counts it).
  Answers to requests carry the command | 0x80 (serial number request 0x0B -> 0x8B). In
  transparent mode a telegram arrives bare, L-field first (then the RSSI byte if enabled).
- rtl-wmbus (an RTL-SDR receiver's decoder) prints a line per telegram:
  ``MODE;CRC_OK;3OUTOF6_OK;TIMESTAMP;PACKET_RSSI;CURRENT_RSSI;LINK_ID;0x<telegram>``
  (mode T1, C1 or S1; the telegram without its CRCs). PACKET_RSSI is a level in
  rtl-wmbus's own uncalibrated scale (an RTL-SDR measures no dBm): it is given as `level`,
  never as `rssi`. A line whose checks failed
  (``T1;0;...``) is a CHECKSUM error; other lines (its diagnostics on the same output) are
  skipped.

Facts from the IMST iM871A HCI and Amber AMB8465 manuals as implemented by the wmbusmeters
project (src/wmbus_im871a.cc, src/wmbus_amb8465.cc, src/wmbus_rtlwmbus.cc); our own code.
"""

from protocols._crc16 import crc16_lsb
from protocols._stream import NEED_DATA, NeedData
from protocols.errors import CHECKSUM, MALFORMED, OVERFLOW, TRUNCATED, RemoteProtocolError
from protocols.wmbus._link import C_FIELDS, HEADER_SIZE

IM871A = "im871a"
AMB8465 = "amb8465"
RTLWMBUS = "rtlwmbus"
DONGLES = (IM871A, AMB8465, RTLWMBUS)
BAUD = {IM871A: 57600, AMB8465: 9600, RTLWMBUS: 115200}

IM871A_SOF = 0xA5
IM871A_DEVMGMT = 0x01
IM871A_RADIOLINK = 0x02
IM871A_RADIOLINKTEST = 0x03
IM871A_HWTEST = 0x04
IM871A_PING_REQ = 0x01
IM871A_PING_RSP = 0x02
IM871A_WMBUSMSG_IND = 0x03
_IM871A_MAX_MSG = {IM871A_DEVMGMT: 0x27, IM871A_RADIOLINK: 0x05, IM871A_RADIOLINKTEST: 0x07}
_IM871A_MAX_MSG[IM871A_HWTEST] = 0x02
IM871A_TIMESTAMP = 0x20
IM871A_RSSI = 0x40
IM871A_CRC = 0x80

AMBER_SOF = 0xFF
AMBER_DATA_IND = 0x03
AMBER_SERIALNO_REQ = 0x0B
AMBER_REPLY = 0x80
# The AMB8465's host commands and their payload lengths (None: variable, at least 1 byte),
# from the Amber AMB8465/AMB8426-M manual (CMD_DATA_REQ .. CMD_SET_AES_KEY_REQ).
AMBER_REQUESTS = {
    0x00: None,  # CMD_DATA_REQ
    0x01: None,  # CMD_DATAEX_REQ
    0x02: None,  # CMD_DATARETRY_REQ
    0x04: 1,  # CMD_SET_MODE_REQ
    0x05: 0,  # CMD_RESET_REQ
    0x06: 1,  # CMD_SET_CHANNEL_REQ
    0x09: None,  # CMD_SET_REQ
    0x0A: 2,  # CMD_GET_REQ
    0x0B: 0,  # CMD_SERIALNO_REQ
    0x0C: 0,  # CMD_FWV_REQ
    0x0D: 0,  # CMD_RSSI_REQ
    0x10: 1,  # CMD_SETUARTSPEED_REQ
    0x11: 0,  # CMD_FACTORYRESET_REQ
    0x30: None,  # CMD_DATA_PRELOAD_REQ
    0x31: 0,  # CMD_DATA_CLR_PRELOAD_REQ
    0x50: None,  # CMD_SET_AES_KEY_REQ
}

MAX_BUFFER = 1024


class RadioTelegram:
    """A telegram heard by a dongle: `frame` L-field first without CRCs, `rssi` the signal
    strength in dBm when the dongle measures it (iM871A, AMB8465), else None; `level` the
    packet RSSI rtl-wmbus prints (a relative level computed from the SDR's samples, in its
    own uncalibrated scale: larger is stronger, not dBm), else None; `mode` the radio mode
    when known."""

    __slots__ = ("dongle", "frame", "level", "mode", "rssi")

    def __init__(
        self,
        dongle: "str",
        frame: "bytes",
        rssi: "float | None" = None,
        mode: "str | None" = None,
        level: "float | None" = None,
    ) -> "None":
        self.dongle = dongle
        self.frame = frame
        self.rssi = rssi
        self.mode = mode
        self.level = level

    def __repr__(self) -> "str":
        return "RadioTelegram(%s, %d bytes, rssi=%r, level=%r)" % (
            self.dongle,
            len(self.frame),
            self.rssi,
            self.level,
        )


class DongleReply:
    """A message of the dongle itself (an answer to a command): `code` is the IMST
    (endpoint << 8 | message id) or the Amber command byte."""

    __slots__ = ("code", "dongle", "payload")

    def __init__(self, dongle: "str", code: "int", payload: "bytes") -> "None":
        self.dongle = dongle
        self.code = code
        self.payload = payload

    def __repr__(self) -> "str":
        return "DongleReply(%s, 0x%04X, %s)" % (self.dongle, self.code, self.payload.hex())


def im871a_rssi_dbm(raw: "int") -> "float":
    """The iM871A's RSSI byte in dBm (linear: 45 -> -100 dBm, 205 -> -20 dBm, at most 0)."""
    return min(0.0, -100.0 + (raw - 45) * 0.5)


def amber_rssi_dbm(raw: "int") -> "float":
    """The AMB8465's RSSI byte (two's complement, half dB steps) in dBm."""
    value = raw - 256 if raw >= 128 else raw
    return value / 2.0 - 74.0


def _xor(data: "bytes") -> "int":
    value = 0
    for b in data:
        value ^= b
    return value


class _Stream:
    __slots__ = ("_buf", "dropped")

    def __init__(self) -> "None":
        self._buf = bytearray()
        self.dropped = 0  # bytes dropped so far

    def receive_data(self, data: "bytes") -> "None":
        self._buf.extend(data)
        if len(self._buf) > MAX_BUFFER:
            excess = len(self._buf) - MAX_BUFFER
            self._consume(excess)
            self.dropped += excess
            raise RemoteProtocolError(OVERFLOW, "%d bytes dropped: no frame fits" % excess)

    @property
    def buffered(self) -> "int":
        return len(self._buf)

    def _consume(self, n: "int") -> "bytes":
        """The first `n` bytes, taken off the buffer (MicroPython has no slice deletion)."""
        out = bytes(self._buf[:n])
        self._buf = bytearray(self._buf[n:])
        return out

    def _drop(self, n: "int", reason: "str", message: "str") -> "RemoteProtocolError":
        self._consume(n)
        self.dropped += n
        return RemoteProtocolError(reason, message)


class Im871aStream(_Stream):
    """IMST iM871A HCI messages."""

    __slots__ = ()

    def next_event(self) -> "RadioTelegram | DongleReply | NeedData":
        buf = self._buf
        if not buf:
            return NEED_DATA
        if buf[0] != IM871A_SOF:
            start = buf.find(bytes([IM871A_SOF]))
            n = len(buf) if start < 0 else start
            raise self._drop(n, MALFORMED, "%d bytes before an A5 start of frame" % n)
        if len(buf) < 4:
            return NEED_DATA
        ctrl, msg_id, length = buf[1], buf[2], buf[3]
        endpoint = ctrl & 0x0F
        top = _IM871A_MAX_MSG.get(endpoint)
        if ctrl & 0x10 or top is None or not 1 <= msg_id <= top:
            raise self._drop(
                1, MALFORMED, "not an iM871A message (ctrl 0x%02X, id 0x%02X)" % (ctrl, msg_id)
            )
        size = 4 + length
        size += 4 if ctrl & IM871A_TIMESTAMP else 0
        size += 1 if ctrl & IM871A_RSSI else 0
        size += 2 if ctrl & IM871A_CRC else 0
        if len(buf) < size:
            return NEED_DATA
        frame = bytes(buf[:size])
        if ctrl & IM871A_CRC:
            crc = crc16_lsb(frame[1 : size - 2], 0x8408, 0xFFFF) ^ 0xFFFF
            if crc != frame[size - 2] | (frame[size - 1] << 8):
                raise self._drop(size, CHECKSUM, "iM871A message with a bad CRC")
        self._consume(size)
        payload = frame[4 : 4 + length]
        if endpoint == IM871A_RADIOLINK and msg_id == IM871A_WMBUSMSG_IND:
            rssi = None
            if ctrl & IM871A_RSSI:
                at = 4 + length + (4 if ctrl & IM871A_TIMESTAMP else 0)
                rssi = im871a_rssi_dbm(frame[at])
            if length < HEADER_SIZE - 1:
                raise RemoteProtocolError(TRUNCATED, "iM871A telegram of %d bytes" % length)
            return RadioTelegram(IM871A, bytes([length]) + payload, rssi)
        return DongleReply(IM871A, (endpoint << 8) | msg_id, payload)


class AmberStream(_Stream):
    """Amber AMB8465 (Metis-II) UART messages; `rssi`: the module appends an RSSI byte to
    the telegrams it receives (its factory setting in command mode).

    Once a command-mode message with a good checksum has been seen, the module is known to
    be in command mode: bytes that do not start one are dropped, never taken for a
    transparent-mode telegram (a stream joined mid-message would otherwise be misread)."""

    __slots__ = ("command_mode", "rssi")

    def __init__(self, rssi: "bool" = True) -> "None":
        super().__init__()
        self.rssi = rssi
        self.command_mode = False

    def next_event(self) -> "RadioTelegram | DongleReply | NeedData":
        buf = self._buf
        if not buf:
            return NEED_DATA
        if buf[0] == AMBER_SOF:
            if len(buf) < 3:
                return NEED_DATA
            command, length = buf[1], buf[2]
            if command != AMBER_DATA_IND and not (
                command & AMBER_REPLY and (command & 0x7F) in AMBER_REQUESTS
            ):
                # 0xFF inside other bytes, not the start of a message the module sends
                raise self._drop(1, MALFORMED, "0xFF then 0x%02X: no AMB8465 message" % command)
            size = 4 + length
            if len(buf) < size:
                return NEED_DATA
            frame = bytes(buf[:size])
            if _xor(frame[:-1]) != frame[-1]:
                raise self._drop(1, CHECKSUM, "AMB8465 message with a bad checksum")
            self._consume(size)
            self.command_mode = True
            payload = frame[3 : 3 + length]
            if command == AMBER_DATA_IND:
                rssi = None
                if self.rssi and payload:
                    rssi = amber_rssi_dbm(payload[-1])
                    payload = payload[:-1]
                if len(payload) < HEADER_SIZE - 1:
                    raise RemoteProtocolError(
                        TRUNCATED, "AMB8465 telegram of %d bytes" % len(payload)
                    )
                return RadioTelegram(AMB8465, bytes([len(payload)]) + payload, rssi)
            return DongleReply(AMB8465, command, payload)
        if self.command_mode:
            start = buf.find(bytes([AMBER_SOF]))
            n = len(buf) if start < 0 else start
            raise self._drop(n, MALFORMED, "%d bytes outside AMB8465 messages" % n)
        # transparent mode: a bare telegram, L-field first
        if buf[0] < HEADER_SIZE - 1 or (len(buf) > 1 and buf[1] not in C_FIELDS):
            n = 1
            while n < len(buf) and not (
                buf[n] == AMBER_SOF
                or (buf[n] >= HEADER_SIZE - 1 and (n + 1 >= len(buf) or buf[n + 1] in C_FIELDS))
            ):
                n += 1
            raise self._drop(n, MALFORMED, "%d bytes that start no AMB8465 message" % n)
        size = buf[0] + 1 + (1 if self.rssi else 0)
        if len(buf) < size:
            return NEED_DATA
        frame = self._consume(size)
        rssi = amber_rssi_dbm(frame[-1]) if self.rssi else None
        return RadioTelegram(AMB8465, frame[: frame[0] + 1], rssi)


class RtlWmbusStream(_Stream):
    """rtl-wmbus text output, a line per telegram."""

    __slots__ = ()

    def next_event(self) -> "RadioTelegram | DongleReply | NeedData":
        while True:
            end = self._buf.find(b"\n")
            if end < 0:
                return NEED_DATA
            line = self._consume(end + 1).strip()
            if not line:
                continue
            text = _text(line)
            if text is None:
                self.dropped += len(line)
                raise RemoteProtocolError(MALFORMED, "a line that is not text")
            fields = text.split(";")
            if len(fields) >= 8 and fields[0] in ("T1", "C1", "S1"):
                if fields[1] != "1" or fields[2] != "1":
                    raise RemoteProtocolError(
                        CHECKSUM, "rtl-wmbus reports failed checks (%s)" % ";".join(fields[:3])
                    )
                hex_text = fields[7]
                mode: "str | None" = fields[0]
                try:
                    level: "float | None" = float(fields[4])
                except ValueError:
                    level = None
            elif text.startswith("0x"):
                hex_text, mode, level = text, None, None
            else:
                continue  # rtl_wmbus's own diagnostics
            if not hex_text.startswith("0x"):
                raise RemoteProtocolError(MALFORMED, "rtl-wmbus line without its 0x telegram")
            frame = _unhex(hex_text[2:])
            if frame is None:
                raise RemoteProtocolError(MALFORMED, "rtl-wmbus telegram is not hex")
            if len(frame) < HEADER_SIZE:
                raise RemoteProtocolError(TRUNCATED, "rtl-wmbus telegram of %d bytes" % len(frame))
            return RadioTelegram(RTLWMBUS, frame, None, mode, level)


def _text(line: "bytes") -> "str | None":
    try:
        return line.decode()
    except UnicodeError:
        return None


def _unhex(text: "str") -> "bytes | None":
    try:
        return bytes.fromhex(text)
    except ValueError:
        return None


def stream(dongle: "str", rssi: "bool" = True) -> "Im871aStream | AmberStream | RtlWmbusStream":
    """The stream parser of a dongle named in DONGLES."""
    if dongle == IM871A:
        return Im871aStream()
    if dongle == AMB8465:
        return AmberStream(rssi)
    if dongle == RTLWMBUS:
        return RtlWmbusStream()
    raise ValueError("unknown dongle %r" % dongle)


# -- builders: what the dongles send (simulators) and what we send them (probe) ---------


def im871a_message(
    endpoint: "int",
    msg_id: "int",
    payload: "bytes" = b"",
    rssi: "int | None" = None,
    timestamp: "int | None" = None,
    crc: "bool" = True,
) -> "bytes":
    """An iM871A HCI message."""
    ctrl = endpoint & 0x0F
    tail = b""
    if timestamp is not None:
        ctrl |= IM871A_TIMESTAMP
        tail += bytes([(timestamp >> s) & 0xFF for s in (0, 8, 16, 24)])
    if rssi is not None:
        ctrl |= IM871A_RSSI
        tail += bytes([rssi & 0xFF])
    if crc:
        ctrl |= IM871A_CRC
    body = bytes([ctrl, msg_id, len(payload)]) + bytes(payload) + tail
    if crc:
        value = crc16_lsb(body, 0x8408, 0xFFFF) ^ 0xFFFF
        body += bytes([value & 0xFF, value >> 8])
    return bytes([IM871A_SOF]) + body


def im871a_telegram(telegram: "bytes", rssi: "int | None" = 200, crc: "bool" = True) -> "bytes":
    """A WMBUSMSG_IND carrying `telegram` (L-field first, no CRCs)."""
    return im871a_message(IM871A_RADIOLINK, IM871A_WMBUSMSG_IND, telegram[1:], rssi, None, crc)


def im871a_ping() -> "bytes":
    return im871a_message(IM871A_DEVMGMT, IM871A_PING_REQ, b"", crc=False)


def amber_message(command: "int", payload: "bytes" = b"") -> "bytes":
    """An AMB8465 command-mode message with its XOR checksum."""
    body = bytes([AMBER_SOF, command, len(payload)]) + bytes(payload)
    return body + bytes([_xor(body)])


def amber_telegram(telegram: "bytes", rssi: "int | None" = 0xD0) -> "bytes":
    """A CMD_DATA_IND carrying `telegram` (L-field first, no CRCs), RSSI byte appended."""
    payload = bytes(telegram[1:]) + (bytes([rssi & 0xFF]) if rssi is not None else b"")
    return amber_message(AMBER_DATA_IND, payload)


def amber_serialno_request() -> "bytes":
    return amber_message(AMBER_SERIALNO_REQ)


def rtlwmbus_line(
    telegram: "bytes", when: "str" = "2026-01-01 00:00:00.000", rssi: "int" = 97, mode: "str" = "T1"
) -> "bytes":
    """The line rtl-wmbus prints for `telegram` (L-field first, no CRCs)."""
    link_id = "".join(["%02x" % telegram[i] for i in (7, 6, 5, 4)]) if len(telegram) > 7 else ""
    return (
        "%s;1;1;%s;%d;%d;%s;0x%s\n" % (mode, when, rssi, rssi + 51, link_id, telegram.hex())
    ).encode()


__all__ = [
    "AMB8465",
    "AMBER_REQUESTS",
    "BAUD",
    "DONGLES",
    "IM871A",
    "IM871A_DEVMGMT",
    "IM871A_PING_REQ",
    "IM871A_PING_RSP",
    "RTLWMBUS",
    "AmberStream",
    "DongleReply",
    "Im871aStream",
    "NeedData",
    "RadioTelegram",
    "RtlWmbusStream",
    "amber_message",
    "amber_rssi_dbm",
    "amber_serialno_request",
    "amber_telegram",
    "im871a_message",
    "im871a_ping",
    "im871a_rssi_dbm",
    "im871a_telegram",
    "rtlwmbus_line",
    "stream",
]

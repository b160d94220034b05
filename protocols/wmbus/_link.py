"""EN 13757-4 data link layer: frame formats A and B, their CRCs, the L/C/M/A header.

Format A: block 1 is the 10 bytes L..A followed by its CRC, then blocks of 16 bytes each
followed by a CRC, the last block shorter. L counts the bytes after it without the CRCs.

Format B: block 1 (10 bytes) and block 2 (up to 115 bytes) share one CRC at the end of
block 2 (at most 128 bytes with it); an optional block 3 carries the rest and its CRC. L
counts every byte after it, CRCs included.

The CRC is CRC-16/EN-13757 (polynomial 0x3D65, initial 0, complemented), sent most
significant byte first.

Dongles deliver telegrams L-field first, some with the CRCs (raw), some without (checked
and removed by the radio chip); `strip_crcs` accepts all three and says which it was.
"""

from protocols._crc16 import crc16_msb
from protocols.errors import CHECKSUM, MALFORMED, TRUNCATED, RemoteProtocolError
from protocols.mbus.records import manufacturer_code

POLY = 0x3D65
HEADER_SIZE = 10  # L C M M A A A A A A
MIN_SIZE = HEADER_SIZE + 1  # ... and a CI field

FORMAT_NONE = "none"  # CRCs already removed by the dongle
FORMAT_A = "A"
FORMAT_B = "B"

# C-field (EN 13757-4 table 8): the frames a meter sends on its own.
C_FIELDS = {
    0x44: "SND_NR",
    0x46: "SND_IR",
    0x06: "ACC_NR",
    0x47: "ACC_DMD",
    0x08: "RSP_UD",
    0x18: "RSP_UD",
    0x28: "RSP_UD",
    0x38: "RSP_UD",
    0x53: "SND_UD",
    0x73: "SND_UD",
    0x40: "SND_NKE",
    0x00: "ACK",
}


def crc16(data: "bytes") -> "int":
    """CRC-16/EN-13757 of `data`."""
    return crc16_msb(data, POLY) ^ 0xFFFF


def _crc_bytes(data: "bytes") -> "bytes":
    crc = crc16(data)
    return bytes([crc >> 8, crc & 0xFF])


def frame_format_a(telegram: "bytes") -> "bytes":
    """A telegram without CRCs (L-field first) as a format A frame with its CRCs."""
    data = bytes(telegram)
    if len(data) < HEADER_SIZE:
        raise ValueError("a telegram has at least 10 bytes")
    data = bytes([len(data) - 1]) + data[1:]
    out = data[:HEADER_SIZE] + _crc_bytes(data[:HEADER_SIZE])
    for i in range(HEADER_SIZE, len(data), 16):
        block = data[i : i + 16]
        out += block + _crc_bytes(block)
    return out


def frame_format_b(telegram: "bytes") -> "bytes":
    """A telegram without CRCs as a format B frame (L counts the CRCs)."""
    data = bytes(telegram)
    if len(data) < HEADER_SIZE:
        raise ValueError("a telegram has at least 10 bytes")
    body = data[1:]
    crcs = 2 if len(data) <= 126 else 4
    length = len(body) + crcs
    if length > 255:
        raise ValueError("telegram too long for format B")
    data = bytes([length]) + body
    if len(data) <= 126:
        return data + _crc_bytes(data)
    first = data[:126]
    rest = data[126:]
    return first + _crc_bytes(first) + rest + _crc_bytes(rest)


def _strip_a(frame: "bytes") -> "bytes | None":
    """The telegram of a format A frame, or None when its size or a CRC does not fit."""
    length = frame[0]
    if length < HEADER_SIZE - 1:
        return None
    rest = length + 1 - HEADER_SIZE
    expected = HEADER_SIZE + 2 + rest + 2 * ((rest + 15) // 16)
    if len(frame) != expected:
        return None
    if crc16(frame[:HEADER_SIZE]) != (frame[HEADER_SIZE] << 8 | frame[HEADER_SIZE + 1]):
        return None
    out = frame[:HEADER_SIZE]
    pos = HEADER_SIZE + 2
    while pos < len(frame):
        block = frame[pos : min(pos + 16, len(frame) - 2)]
        end = pos + len(block)
        if crc16(block) != (frame[end] << 8 | frame[end + 1]):
            return None
        out += block
        pos = end + 2
    return out


def _strip_b(frame: "bytes") -> "bytes | None":
    length = frame[0]
    if len(frame) != length + 1 or len(frame) < HEADER_SIZE + 2:
        return None
    if len(frame) <= 128:
        end = len(frame) - 2
        if crc16(frame[:end]) != (frame[end] << 8 | frame[end + 1]):
            return None
        out = frame[:end]
    else:
        if crc16(frame[:126]) != (frame[126] << 8 | frame[127]):
            return None
        end = len(frame) - 2
        if end <= 128 or crc16(frame[128:end]) != (frame[end] << 8 | frame[end + 1]):
            return None
        out = frame[:126] + frame[128:end]
    return bytes([len(out) - 1]) + out[1:]


def strip_crcs(frame: "bytes") -> "tuple[bytes, str]":
    """(telegram without CRCs, FORMAT_*) of a frame as a dongle delivers it.

    A frame whose length matches its L-field exactly and whose CRCs do not check is
    taken as already stripped (most dongles); a frame with the length of a format A or B
    frame must have good CRCs. Raises RemoteProtocolError: TRUNCATED when shorter than
    its L-field says, CHECKSUM when a CRC fails, MALFORMED for a length that fits nothing.
    """
    frame = bytes(frame)
    if len(frame) < MIN_SIZE:
        raise RemoteProtocolError(
            TRUNCATED, "a telegram has at least %d bytes, got %d" % (MIN_SIZE, len(frame))
        )
    length = frame[0]
    if length + 1 == len(frame):
        stripped = _strip_b(frame)
        if stripped is not None:
            return stripped, FORMAT_B
        return frame, FORMAT_NONE
    stripped = _strip_a(frame)
    if stripped is not None:
        return stripped, FORMAT_A
    rest = length + 1 - HEADER_SIZE
    with_crcs = HEADER_SIZE + 2 + rest + 2 * ((rest + 15) // 16) if rest >= 0 else 0
    if len(frame) == with_crcs:
        raise RemoteProtocolError(CHECKSUM, "format A frame with a bad CRC")
    if len(frame) < length + 1:
        raise RemoteProtocolError(
            TRUNCATED,
            "L-field says %d bytes follow, only %d do" % (length, len(frame) - 1),
        )
    raise RemoteProtocolError(
        MALFORMED,
        "L-field 0x%02X does not fit a telegram of %d bytes (with or without CRCs)"
        % (length, len(frame)),
    )


def frame_size(first: "int") -> "tuple[int, int]":
    """(size without CRCs, size as format A) of a telegram whose L-field is `first`."""
    rest = first + 1 - HEADER_SIZE
    if rest < 0:
        return first + 1, first + 1
    return first + 1, HEADER_SIZE + 2 + rest + 2 * ((rest + 15) // 16)


def device_id(a_field: "bytes") -> "str":
    """The 8-digit identification number of an A-field (or TPL id): BCD, least
    significant byte first, printed as on the meter's label."""
    return "".join(["%02X" % a_field[i] for i in range(3, -1, -1)])


def manufacturer(m_field: "bytes") -> "str":
    """The three letters of an M-field (2 bytes, least significant first)."""
    return manufacturer_code(m_field[0] | (m_field[1] << 8))


def check_header(telegram: "bytes") -> "None":
    if len(telegram) < MIN_SIZE:
        raise RemoteProtocolError(
            TRUNCATED, "a telegram has at least %d bytes, got %d" % (MIN_SIZE, len(telegram))
        )


__all__ = [
    "C_FIELDS",
    "FORMAT_A",
    "FORMAT_B",
    "FORMAT_NONE",
    "HEADER_SIZE",
    "MIN_SIZE",
    "check_header",
    "crc16",
    "device_id",
    "frame_format_a",
    "frame_format_b",
    "frame_size",
    "manufacturer",
    "strip_crcs",
]

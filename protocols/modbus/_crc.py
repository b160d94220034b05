"""CRC-16/MODBUS: init 0xFFFF, reflected polynomial 0xA001, sent low byte first.

The table-driven CRC itself is protocols/_crc16.py, shared with SDI-12.
"""

from protocols._crc16 import crc16_a001


def crc16(data: "bytes", crc: "int" = 0xFFFF) -> "int":
    """CRC-16/MODBUS of `data` (b"123456789" -> 0x4B37). `crc` continues a running CRC."""
    return crc16_a001(data, crc)


def crc_bytes(data: "bytes") -> "bytes":
    """The two CRC bytes to append to `data`, low byte first as on the wire."""
    crc = crc16(data)
    return bytes((crc & 0xFF, crc >> 8))


def frame_crc(frame: "bytes") -> "int":
    """The CRC carried by the last two bytes of an RTU frame (low byte first)."""
    return frame[-2] | (frame[-1] << 8)


def crc_ok(frame: "bytes") -> "bool":
    """True when the last two bytes of `frame` are the CRC of the bytes before them."""
    return len(frame) >= 3 and crc16(frame) == 0


__all__ = ["crc16", "crc_bytes", "crc_ok", "frame_crc"]

"""CRC-16 with the reflected polynomial 0xA001, table-driven (one lookup per byte).

Modbus RTU runs it from 0xFFFF (CRC-16/MODBUS, protocols/modbus/_crc.py), SDI-12 from 0
(CRC-16/ARC, protocols/sdi12). MicroPython.
"""


def _make_table() -> "tuple[int, ...]":
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_TABLE = _make_table()


def crc16_a001(data: "bytes", crc: "int") -> "int":
    """The CRC of `data` continued from `crc` (the initial value, or a running CRC)."""
    table = _TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


__all__ = ["crc16_a001"]

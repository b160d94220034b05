"""CRC-16s, table-driven (one lookup per byte). MicroPython.

- `crc16_a001`: the reflected polynomial 0xA001. Modbus RTU runs it from 0xFFFF
  (CRC-16/MODBUS, protocols/modbus/_crc.py), SDI-12 from 0 (CRC-16/ARC, protocols/sdi12).
- `crc16_msb`: any polynomial, most significant bit first (not reflected). Wireless M-Bus
  runs it with 0x3D65 from 0, complemented (CRC-16/EN-13757, protocols/wmbus).
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


_MSB_TABLES: "dict[int, tuple[int, ...]]" = {}


def _msb_table(poly: "int") -> "tuple[int, ...]":
    table = _MSB_TABLES.get(poly)
    if table is None:
        rows = []
        for i in range(256):
            crc = i << 8
            for _ in range(8):
                crc = ((crc << 1) ^ poly) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
            rows.append(crc)
        table = tuple(rows)
        _MSB_TABLES[poly] = table
    return table


def crc16_msb(data: "bytes", poly: "int", crc: "int" = 0) -> "int":
    """The non-reflected CRC-16 of `data` with `poly`, continued from `crc`."""
    table = _msb_table(poly)
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ byte) & 0xFF]
    return crc


__all__ = ["crc16_a001", "crc16_msb"]

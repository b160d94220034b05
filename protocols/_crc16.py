"""CRC-16s, table-driven (one lookup per byte). MicroPython.

- `crc16_a001`: the reflected polynomial 0xA001. Modbus RTU runs it from 0xFFFF
  (CRC-16/MODBUS, protocols/modbus/_crc.py), SDI-12 from 0 (CRC-16/ARC, protocols/sdi12).
- `crc16_msb`: any polynomial, most significant bit first (not reflected). Wireless M-Bus
  runs it with 0x3D65 from 0, complemented (CRC-16/EN-13757, protocols/wmbus).
- `crc16_lsb`: any reflected polynomial. The IMST iM871A serial link runs it with 0x8408
  from 0xFFFF, complemented (CRC-16/X-25, protocols/wmbus/dongles.py).
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


_LSB_TABLES: "dict[int, tuple[int, ...]]" = {}


def crc16_lsb(data: "bytes", poly: "int", crc: "int") -> "int":
    """The reflected CRC-16 of `data` with the reflected polynomial `poly` (0x8408 for
    CCITT), continued from `crc`. `crc16_a001` is this with 0xA001."""
    table = _LSB_TABLES.get(poly)
    if table is None:
        rows = []
        for i in range(256):
            value = i
            for _ in range(8):
                value = (value >> 1) ^ poly if value & 1 else value >> 1
            rows.append(value)
        table = tuple(rows)
        _LSB_TABLES[poly] = table
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def crc16_msb(data: "bytes", poly: "int", crc: "int" = 0) -> "int":
    """The non-reflected CRC-16 of `data` with `poly`, continued from `crc`."""
    table = _msb_table(poly)
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ byte) & 0xFF]
    return crc


__all__ = ["crc16_a001", "crc16_lsb", "crc16_msb"]

"""Diehl Metering (also sold as Sappel, Hydrometer): IZAR / PRIOS radio telegrams.

Facts from Diehl's published descriptions of the PRIOS protocol, as implemented and tested
by the wmbusmeters project (src/driver_izar.cc, src/manufacturer_specificities.cc); our own
code.

- Diehl manufacturer codes: DME, EWT, HYD, SAP, SPL. A PRIOS telegram is SND_NR/SND_IR
  with CI 0xA0..0xA7. Its A-field is laid out version, type, id (4 bytes) instead of id,
  version, type (SAP: a 5-byte id whose fifth byte takes the version's place; device type
  water).
- The payload after the 4 bytes following the CI is scrambled by a 32-bit LFSR
  (taps 1, 2, 11, 31, eight shifts per byte, the key's low byte XORed in) whose seed is
  the 32-bit key XOR the telegram bytes 2..5, 6..9 and 10..13 (big-endian words). The
  first plain byte is 0x4B. The key is the XOR of the two halves of the meter's 8-byte
  PRIOS key; meters left at the factory use one of two published default keys.
- Plain payload: byte 1..4 total volume in litres (LE), 5..8 the volume at the last
  monthly billing date, 9..10 that date (type G like). Telegram bytes 11..13 carry the
  alarms (general, leak now and before, blocked, back-flow, under- and overflow,
  submarine, sensor and mechanical fraud now and before), the remaining battery life in
  half-years and the transmission period.
- "Real data" OMS telegrams (CI 0x7A with a security mode of 16..31) use the same LFSR on
  the data records, checked by the byte sum of the plain text (mask 0xEF) against the
  configuration byte.
"""

from protocols.errors import DECRYPTION, RemoteProtocolError
from protocols.reading import Measurement

MANUFACTURERS = ("DME", "EWT", "HYD", "SAP", "SPL")
DEFAULT_KEYS = (bytes.fromhex("39BC8A10E66D83F8"), bytes.fromhex("51728910E66D83F8"))
# Diehl meters sending OMS mode 5 telegrams with no key set use this AES key.
DEFAULT_OMS_KEY = DEFAULT_KEYS[1] + DEFAULT_KEYS[1]
CHECK_BYTE = 0x4B


def _be32(data: "bytes", pos: "int") -> "int":
    return (data[pos] << 24) | (data[pos + 1] << 16) | (data[pos + 2] << 8) | data[pos + 3]


def _le32(data: "bytes", pos: "int") -> "int":
    return data[pos] | (data[pos + 1] << 8) | (data[pos + 2] << 16) | (data[pos + 3] << 24)


def fold_key(key: "bytes") -> "int":
    """The 32-bit LFSR key of an 8-byte PRIOS key (or of the first 8 bytes of a longer one)."""
    return _be32(key, 0) ^ _be32(key, 4)


def lfsr(frame: "bytes", key: "int") -> "bytes":
    """Unscramble frame[15:] with the 32-bit `key` seeded by the header bytes 2..13."""
    state = key ^ _be32(frame, 2) ^ _be32(frame, 6) ^ _be32(frame, 10)
    out = bytearray(len(frame) - 15)
    for i in range(len(out)):
        for _ in range(8):
            bit = ((state >> 1) ^ (state >> 2) ^ (state >> 11) ^ (state >> 31)) & 1
            state = ((state << 1) | bit) & 0xFFFFFFFF
        out[i] = frame[15 + i] ^ (state & 0xFF)
    return bytes(out)


def _keys(key: "bytes | None") -> "list[int]":
    if key is not None and len(key) >= 8:
        return [fold_key(key)]
    return [fold_key(k) for k in DEFAULT_KEYS]


def is_prios(manufacturer: "str", c_field: "int", ci: "int") -> "bool":
    return manufacturer in MANUFACTURERS and c_field in (0x44, 0x46) and 0xA0 <= ci <= 0xA7


def is_real_data(manufacturer: "str", c_field: "int", mode: "int") -> "bool":
    return manufacturer in MANUFACTURERS and c_field in (0x44, 0x46) and mode & 0x10 != 0


def real_data(frame: "bytes", key: "bytes | None", meter: "str") -> "bytes":
    """The plain data records of a Diehl "real data" telegram (CI 0x7A, mode 16..31)."""
    if len(frame) < 16:
        raise RemoteProtocolError(DECRYPTION, "Diehl real-data telegram too short")
    if (sum(frame[15:]) & 0xEF) == (frame[14] & 0xEF):
        return frame[15:]  # forwarded already unscrambled (by a gateway or a log)
    for k in _keys(key):
        plain = lfsr(frame, k)
        if (sum(plain) & 0xEF) == (frame[14] & 0xEF):
            return plain
    raise RemoteProtocolError(
        DECRYPTION,
        "meter %s: Diehl real-data payload does not unscramble with %s"
        % (meter, "its key" if key else "the default keys"),
    )


def prios(
    frame: "bytes", key: "bytes | None", meter: "str"
) -> "tuple[list[Measurement], dict[str, bool]]":
    """Measurements and alarms of a PRIOS telegram (`frame` as received, without CRCs)."""
    if len(frame) < 20:
        raise RemoteProtocolError(DECRYPTION, "PRIOS telegram of meter %s too short" % meter)
    plain = b""
    for k in _keys(key):
        candidate = lfsr(frame, k)
        if candidate and candidate[0] == CHECK_BYTE:
            plain = candidate
            break
    if not plain:
        raise RemoteProtocolError(
            DECRYPTION,
            "meter %s: PRIOS payload does not unscramble with %s"
            % (meter, "its key" if key else "the default keys"),
        )
    out = [Measurement("volume", _le32(plain, 1) / 1000.0, "m3")]
    if len(plain) > 8:
        out.append(Measurement("volume_storage1", _le32(plain, 5) / 1000.0, "m3"))
    if len(plain) > 10:
        year = ((plain[10] & 0xF0) >> 1) + ((plain[9] & 0xE0) >> 5)
        year += 1900 if year > 80 else 2000
        out.append(
            Measurement(
                "date_storage1", "%d-%02d-%02d" % (year, plain[10] & 0x0F, plain[9] & 0x1F), None
            )
        )
    out.append(Measurement("remaining_battery_life", (frame[12] & 0x1F) * 0.5, "a"))
    out.append(Measurement("transmit_period", 1 << ((frame[11] & 0x0F) + 2), "s"))
    b11, b12, b13 = frame[11], frame[12], frame[13]
    out.append(Measurement("general_alarm", bool(b11 & 0x80), None))
    out.append(Measurement("leak_previously", bool(b12 & 0x40), None))
    out.append(Measurement("meter_blocked", bool(b12 & 0x20), None))
    out.append(Measurement("underflow", bool(b13 & 0x40), None))
    out.append(Measurement("overflow", bool(b13 & 0x20), None))
    out.append(Measurement("submarine", bool(b13 & 0x10), None))
    alarms = {
        "leak": bool(b12 & 0x80),
        "backflow": bool(b13 & 0x80),
        "tamper": bool(b13 & 0x0A),  # sensor or mechanical fraud, now
    }
    return out, alarms


def build_prios(
    manufacturer_field: "bytes",
    meter_id: "str",
    volume_l: "int",
    billed_l: "int",
    billed_date: "tuple[int, int, int]",
    leak: "bool" = False,
    backflow: "bool" = False,
    battery_half_years: "int" = 24,
    key: "bytes | None" = None,
) -> "bytes":
    """A PRIOS telegram (CI 0xA1, no CRCs) as a Diehl water meter sends it (simulators):
    version 0x78, device type 0x07, the payload scrambled with `key` or the first factory
    key. `billed_date` is (year, month, day)."""
    ident = bytes.fromhex(meter_id)
    a_field = bytes([0x78, 0x07, ident[3], ident[2], ident[1], ident[0]])
    year, month, day = billed_date
    yy = year % 100
    date = bytes([((yy & 0x07) << 5) | (day & 0x1F), ((yy & 0x78) << 1) | (month & 0x0F)])
    plain = bytes([CHECK_BYTE])
    for value in (volume_l, billed_l):
        plain += bytes([(value >> s) & 0xFF for s in (0, 8, 16, 24)])
    plain += date
    b11 = 0x01  # transmit period 8 s
    b12 = (0x80 if leak else 0) | (battery_half_years & 0x1F)
    b13 = 0x80 if backflow else 0
    head = bytes([0x44]) + bytes(manufacturer_field) + a_field + bytes([0xA1, b11, b12, b13, 0x13])
    frame = bytes([len(head) + len(plain)]) + head + plain
    k = fold_key(key) if key is not None else fold_key(DEFAULT_KEYS[0])
    return frame[:15] + lfsr(frame, k)


def swap_address(frame: "bytes") -> "tuple[str, int, int]":
    """(id, version, device type) of a PRIOS A-field (version, type, id)."""
    manufacturer_sap = frame[2:4] == b"\x30\x4c"
    if manufacturer_sap:
        ident = frame[4:8]
        return "".join(["%02X" % ident[i] for i in range(3, -1, -1)]), 0, 0x07
    ident = frame[6:10]
    return "".join(["%02X" % ident[i] for i in range(3, -1, -1)]), frame[4], frame[5]


__all__ = [
    "DEFAULT_KEYS",
    "DEFAULT_OMS_KEY",
    "MANUFACTURERS",
    "build_prios",
    "fold_key",
    "is_prios",
    "is_real_data",
    "lfsr",
    "prios",
    "real_data",
    "swap_address",
]

"""Building telegrams: what a meter sends (simulators, the demo and tests).

`build_telegram(...)` returns a telegram without CRCs, L-field first, with a short (CI 0x7A)
or long (0x72) transport header, plain or encrypted in security mode 5 or 7 (mode 7 with
the AFL layer carrying the message counter and an 8-byte AES-CMAC).
"""

from protocols.errors import LocalProtocolError
from protocols.wmbus import _aes

_ENCODE_BASE = 64


def manufacturer_field(code: "str") -> "bytes":
    """The M-field of a three-letter manufacturer code (least significant byte first)."""
    if len(code) != 3 or not all("A" <= c <= "Z" for c in code):
        raise LocalProtocolError("manufacturer code must be three letters A-Z: %r" % code)
    value = 0
    for c in code:
        value = (value << 5) | (ord(c) - _ENCODE_BASE)
    return bytes([value & 0xFF, value >> 8])


def id_field(meter_id: "str") -> "bytes":
    """The 4-byte A-field id of an 8-digit meter id (BCD, least significant byte first)."""
    if len(meter_id) != 8:
        raise LocalProtocolError("meter id must have 8 digits: %r" % meter_id)
    try:
        raw = bytes.fromhex(meter_id)
    except ValueError as e:
        raise LocalProtocolError("meter id must be hexadecimal digits: %r" % meter_id) from e
    return bytes([raw[3], raw[2], raw[1], raw[0]])


def _pad(data: "bytes") -> "bytes":
    return data + b"\x2f" * ((16 - len(data) % 16) % 16)


def build_telegram(
    manufacturer: "str",
    meter_id: "str",
    version: "int",
    device_type: "int",
    records: "bytes",
    access_number: "int" = 0,
    status: "int" = 0,
    mode: "int" = 0,
    key: "bytes | None" = None,
    counter: "int" = 0,
    long_header: "bool" = False,
    c_field: "int" = 0x44,
) -> "bytes":
    """A telegram (no CRCs) carrying `records` (DIF/VIF data records, or a manufacturer
    payload). Modes 5 and 7 need a 16-byte `key`; mode 7 uses `counter` as the AFL message
    counter."""
    m_field = manufacturer_field(manufacturer)
    a_field = id_field(meter_id) + bytes([version & 0xFF, device_type & 0xFF])
    if mode not in (0, 5, 7):
        raise LocalProtocolError("security mode %d cannot be built" % mode)
    if mode and (key is None or len(key) != 16):
        raise LocalProtocolError("modes 5 and 7 need a 16-byte key")
    payload = bytes(records)
    afl = b""
    config = 0
    extension = b""
    if mode:
        payload = _pad(b"\x2f\x2f" + payload)
        blocks = len(payload) // 16
        if blocks > 15:
            raise LocalProtocolError("at most 15 encrypted blocks")
        config = (mode << 8) | (blocks << 4)
        if mode == 7:
            extension = b"\x10"  # KDF selection 1
    head = bytes([access_number & 0xFF, status & 0xFF, config & 0xFF, config >> 8])
    ci = 0x72 if long_header else 0x7A
    if long_header:
        head = a_field[:4] + m_field + a_field[4:] + head
    iv_m_a = m_field + a_field
    if mode == 5 and key is not None:
        payload = _aes.cbc_encrypt(key, iv_m_a + bytes([access_number & 0xFF]) * 8, payload)
    elif mode == 7 and key is not None:
        counter_bytes = bytes([(counter >> s) & 0xFF for s in (0, 8, 16, 24)])
        derivation = counter_bytes + a_field[:4] + b"\x07" * 7
        k_enc = _aes.cmac(key, b"\x00" + derivation)
        k_mac = _aes.cmac(key, b"\x01" + derivation)
        payload = _aes.cbc_encrypt(k_enc, bytes(16), payload)
        mcl = 0x25  # counter present, AES-CMAC-128 truncated to 8 bytes
        tpl = bytes([ci]) + head + extension + payload
        mac = _aes.cmac(k_mac, bytes([mcl]) + counter_bytes + tpl)[:8]
        fc = 0x2C00  # MAC, counter and message control present; one fragment
        afl_body = bytes([fc & 0xFF, fc >> 8, mcl]) + counter_bytes + mac
        afl = bytes([0x90, len(afl_body)]) + afl_body
    body = bytes([c_field]) + m_field + a_field + afl + bytes([ci]) + head + extension + payload
    if len(body) > 255:
        raise LocalProtocolError("telegram too long (%d bytes)" % (len(body) + 1))
    return bytes([len(body)]) + body


__all__ = ["build_telegram", "id_field", "manufacturer_field"]

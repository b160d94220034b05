"""Finding one service data value in what a BLE sniffer prints. Shared by bthome, miflora.

Technicians paste advertisements in three shapes besides the bare service data value:

- a whole advertisement: AD structures end to end (``len type data...``), e.g. the flags
  ``02 01 06`` then ``len 16 <uuid LE> <value>``, possibly zero-padded to 31 bytes;
- an HCI LE Advertising Report event as ``hcidump --raw`` and ble_monitor print it:
  ``04 3e plen 02 01 evt_type addr_type addr(6, reversed) len <advertisement> rssi``
  (the ``04`` packet indicator may be missing), or the extended report (subevent ``0d``),
  whose advertiser address is also at bytes 8-13 of the event.

`hci_service_data` and `advertisement_service_data` return the value of the 16-bit-UUID
service data (AD type 0x16) found in such an input (with the advertiser's MAC from an HCI
report), or None when the input is not of that shape (the caller then takes it as the
bare value). The lengths must all agree, so a bare value is not taken for one of these by
accident.

Also the small parts both codecs need: little-endian integers, MAC addresses, and the AD
structure of a service data value. MicroPython.
"""

from protocols.errors import LocalProtocolError

AD_TYPE_SERVICE_DATA_16 = 0x16
HCI_EVENT_PACKET = 0x04
HCI_LE_META_EVENT = 0x3E
LE_ADVERTISING_REPORT = 0x02
LE_EXTENDED_ADVERTISING_REPORT = 0x0D
MAC_SIZE = 6


def uint_le(data: "bytes") -> "int":
    """Little-endian unsigned (MicroPython's int.from_bytes ignores `signed`)."""
    value = 0
    shift = 0
    for b in data:
        value |= b << shift
        shift += 8
    return value


def sint_le(data: "bytes") -> "int":
    """Little-endian two's complement."""
    value = uint_le(data)
    bits = 8 * len(data)
    if bits and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


def fits(raw: "int", size: "int", signed: "bool") -> "bool":
    """Whether `raw` fits in `size` bytes, two's complement when `signed`."""
    bits = 8 * size
    if signed:
        return -(1 << (bits - 1)) <= raw < 1 << (bits - 1)
    return 0 <= raw < 1 << bits


def to_le(value: "int", size: "int") -> "bytes":
    """`value` (already range-checked, may be negative) as `size` bytes little-endian."""
    value &= (1 << (8 * size)) - 1
    out = bytearray(size)
    for i in range(size):
        out[i] = (value >> (8 * i)) & 0xFF
    return bytes(out)


def pow10(n: "int") -> "int":
    """10 ** n for n >= 0, as an int (mypy types ``int ** int`` as Any)."""
    result = 1
    for _ in range(n):
        result *= 10
    return result


def format_mac(mac: "bytes") -> "str":
    """6 bytes in display order -> ``AA:BB:CC:DD:EE:FF``."""
    return ":".join("%02X" % b for b in mac)


def parse_mac(mac: "str | bytes") -> "bytes":
    """``AA:BB:CC:DD:EE:FF`` (or ``-`` separators, or 12 hex digits, or 6 bytes) -> 6 bytes."""
    if isinstance(mac, (bytes, bytearray)):
        if len(mac) != MAC_SIZE:
            raise LocalProtocolError("a MAC address is 6 bytes, got %d" % len(mac))
        return bytes(mac)
    clean = "".join(c for c in str(mac) if c not in ":- ")
    try:
        raw = bytes.fromhex(clean)
    except ValueError as e:
        raise LocalProtocolError("not a MAC address: %r" % (mac,)) from e
    if len(raw) != MAC_SIZE:
        raise LocalProtocolError("not a MAC address: %r" % (mac,))
    return raw


def ad_structure(uuid: "bytes", value: "bytes") -> "bytes":
    """The whole AD structure of a service data value: length, 0x16, `uuid`, `value`."""
    if len(value) + 3 > 255:
        raise LocalProtocolError("payload too long for one AD structure")
    return bytes([len(value) + 3, AD_TYPE_SERVICE_DATA_16]) + uuid + value


def _in_ad_structures(data: "bytes", uuid: "bytes") -> "bytes | None":
    """The service data for `uuid` in AD structures that tile `data`, else None."""
    i = 0
    n = len(data)
    found = None  # type: bytes | None
    while i < n:
        size = data[i]
        if size == 0:  # zero padding ends the significant part
            if any(data[i:]):
                return None
            break
        if i + 1 + size > n:
            return None
        if size >= 3 and data[i + 1] == AD_TYPE_SERVICE_DATA_16 and data[i + 2 : i + 4] == uuid:
            found = data[i + 4 : i + 1 + size]
        i += 1 + size
    return found


def _in_hci_event(event: "bytes", uuid: "bytes") -> "tuple[bytes, str] | None":
    """`event` starts at the LE meta event code (0x3e). One report per event only."""
    if len(event) < 4 or event[0] != HCI_LE_META_EVENT or event[1] != len(event) - 2:
        return None
    if event[3] != 1:  # number of reports
        return None
    if event[2] == LE_ADVERTISING_REPORT:
        # 3e plen 02 01 | evt_type addr_type addr(6) len data rssi
        if len(event) < 13:
            return None
        address = event[6:12]
        size = event[12]
        if 13 + size + 1 != len(event):
            return None
        advert = event[13 : 13 + size]
    elif event[2] == LE_EXTENDED_ADVERTISING_REPORT:
        # 3e plen 0d 01 | evt_type(2) addr_type addr(6) phy phy sid tx rssi interval(2)
        #                 direct_addr_type direct_addr(6) len data
        if len(event) < 28:
            return None
        address = event[7:13]
        size = event[27]
        if 28 + size != len(event):
            return None
        advert = event[28:]
    else:
        return None
    found = _in_ad_structures(advert, uuid)
    if found is None:
        return None
    return found, format_mac(bytes(reversed(address)))


def hci_service_data(data: "bytes", uuid: "bytes") -> "tuple[bytes, str] | None":
    """(service data value, advertiser MAC) for `uuid` (2 bytes, as on air) in an HCI LE
    advertising report event (with or without the ``04`` indicator), else None."""
    if len(data) >= 2 and data[0] == HCI_EVENT_PACKET and data[1] == HCI_LE_META_EVENT:
        return _in_hci_event(data[1:], uuid)
    if data and data[0] == HCI_LE_META_EVENT:
        return _in_hci_event(data, uuid)
    return None


def advertisement_service_data(data: "bytes", uuid: "bytes") -> "bytes | None":
    """The service data value for `uuid` in a whole advertisement, else None."""
    return _in_ad_structures(data, uuid)


def prefixed_service_data(data: "bytes", uuid: "bytes") -> "bytes | None":
    """The value when `data` is it prefixed by `uuid`, or one whole AD structure
    (``len 16 <uuid> <value>``) carrying it, else None."""
    if len(data) >= 2 and data[0:2] == uuid:
        return data[2:]
    if (
        len(data) >= 4
        and data[1] == AD_TYPE_SERVICE_DATA_16
        and data[2:4] == uuid
        and data[0] == len(data) - 1
    ):
        return data[4:]
    return None


def advertiser_mac(data: "bytes", uuid: "bytes") -> "str | None":
    """The advertiser's MAC when `data` is an HCI advertising report, else None."""
    hci = hci_service_data(bytes(data), uuid)
    return hci[1] if hci is not None else None

"""Manufacturer-specific decoders, run on every telegram after the standard layers.

Each is a function of a `WmbusTelegram` that adds measurements (`extra`) and alarms when
the telegram comes from a meter it knows (by manufacturer, device type and the records it
carries); it returns quietly for a meter it does not know, and a payload that does not
have the documented layout is left undecoded rather than guessed at.

Facts (layouts, bit meanings) come from the manufacturers' published descriptions as
collected and tested by the wmbusmeters project (drivers/src/*.xmq); the code is ours.
Where a layout is a run of values whose DIF/VIF the manufacturer leaves implicit, the
decoder rebuilds the records (DIF/VIF + data) and hands them to the shared EN 13757-3
record decoder, so that names, units and scaling stay those of every other record.
"""

from protocols._typing import TYPE_CHECKING
from protocols.errors import RemoteProtocolError
from protocols.mbus.records import iter_records, scale
from protocols.reading import Measurement

if TYPE_CHECKING:
    from collections.abc import Callable

    from protocols.mbus.records import Record
    from protocols.wmbus._telegram import WmbusTelegram

    Driver = Callable[[WmbusTelegram], None]


def _find(telegram: "WmbusTelegram", key: "str") -> "Record | None":
    """The first record whose DIF/DIFE/VIF/VIFE bytes are `key` (hex)."""
    wanted = bytes.fromhex(key)
    for r in telegram.records:
        if r.vif is None:
            continue
        if bytes([r.dif]) + bytes(r.difes) + bytes([r.vif]) + bytes(r.vifes) == wanted:
            return r
    return None


def _synthesize(telegram: "WmbusTelegram", parts: "list[tuple[str, bytes]]") -> "None":
    """Records rebuilt from (DIB/VIB hex, data) pairs, decoded by the shared decoder."""
    data = b""
    for dib_vib, value in parts:
        data += bytes.fromhex(dib_vib) + value
    try:
        for record in iter_records(data):
            telegram.extra.append(record.measurement())
    except RemoteProtocolError:
        return


def _u(data: "bytes") -> "int":
    value = 0
    for i in range(len(data) - 1, -1, -1):
        value = (value << 8) | data[i]
    return value


# -- Qundis (QDS): the "walk-by" data set in record 0D FF 5F ---------------------------------


def qundis_walk_by(telegram: "WmbusTelegram") -> "None":
    """Qundis Q heat / Q water / Q caloric walk-by block (53 bytes): a 9-byte header, the
    VIF of the values, the error date, the current value, the yearly and the monthly
    billing dates and values, then twelve monthly 2-byte values."""
    if telegram.manufacturer != "QDS":
        return
    record = _find(telegram, "0DFF5F")
    if record is None or len(record.data) != 53 or record.data[1] != 0x82:
        return
    d = record.data
    vif = "%02X" % d[9]
    parts = [
        ("326C", d[10:12]),
        ("0C" + vif, d[12:16]),
        ("426C", d[16:18]),
        ("4C" + vif, d[18:22]),
        ("C2086C", d[22:24]),
        ("CC08" + vif, d[24:28]),
    ]
    # Twelve monthly values, storage numbers 2..13 as the manufacturer numbers them.
    for i in range(12):
        storage = i + 2
        dif = 0x82 if storage % 2 == 0 else 0xC2
        parts.append(("%02X%02X%s" % (dif, storage >> 1, vif), d[28 + 2 * i : 30 + 2 * i]))
    _synthesize(telegram, parts)


# -- Bmeters (BMT) Hydrodigit: the manufacturer block after DIF 0x0F -------------------------

_BMT_VOLTS = (3.7, 1.9, 2.1, 2.2, 2.3, 2.4, 2.5, 2.65, 2.8, 2.9, 3.05, 3.2, 3.35, 3.5, 3.7, 3.7)
_MONTHS = (
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
)


def _bcd_date(raw: "bytes") -> "str | None":
    """Day, month, year (two BCD digits each, year 20yy), or None when unset."""
    digits = "%02X%02X%02X" % (raw[0], raw[1], raw[2])
    if not digits.isdigit() or raw == b"\x00\x00\x00":
        return None
    return "20%s-%s-%s" % (digits[4:6], digits[2:4], digits[0:2])


def bmeters_hydrodigit(telegram: "WmbusTelegram") -> "None":
    """Content byte (bit 0 battery, 1 fraud, 7 leak date, 2 back-flow volume, 4 monthly
    volumes), then the fields it announces in that order: battery code (1 byte), fraud
    type and date (1 + 3), leak date (3), back-flow volume (4, litres), twelve monthly
    volumes (3 each, 10 litres)."""
    if telegram.manufacturer != "BMT" or telegram.device_type not in (0x06, 0x07):
        return
    d = telegram.manufacturer_data
    if not d:
        return
    contents = d[0]
    pos = 1
    need = (
        1
        + (1 if contents & 0x01 else 0)
        + (4 if contents & 0x02 else 0)
        + (3 if contents & 0x80 else 0)
        + (4 if contents & 0x04 else 0)
        + (36 if contents & 0x10 else 0)
    )
    if len(d) < need:
        return
    extra = telegram.extra
    if contents & 0x01:
        extra.append(Measurement("battery_voltage", _BMT_VOLTS[d[pos] & 0x0F], "V"))
        pos += 1
    if contents & 0x02:
        fraud = d[pos]
        extra.append(Measurement("fraud_date", _bcd_date(d[pos + 1 : pos + 4]), None))
        telegram.set_alarm("tamper", bool(fraud & 0xE0))
        pos += 4
    if contents & 0x80:
        date = _bcd_date(d[pos : pos + 3])
        extra.append(Measurement("leak_date", date, None))
        telegram.set_alarm("leak", date is not None)
        pos += 3
    if contents & 0x04:
        extra.append(Measurement("backflow_volume", scale(_u(d[pos : pos + 4]), -3), "m3"))
        pos += 4
    if contents & 0x10:
        for month in _MONTHS:
            raw = _u(d[pos : pos + 3])
            if raw < 10000000:
                extra.append(Measurement("volume_" + month, scale(raw, -2), "m3"))
            pos += 3


# -- Kamstrup water meters (MULTICAL 21, flowIQ): info codes ------------------------------


def kamstrup_water_info(telegram: "WmbusTelegram") -> "None":
    """Info codes (record 02 FF 20, or 04 FF 23): bit 0 dry, 1 reverse flow, 2 leak,
    3 burst."""
    if telegram.manufacturer != "KAM":
        return
    record = _find(telegram, "02FF20") or _find(telegram, "04FF23")
    if record is None or not isinstance(record.raw, int):
        return
    info = record.raw
    telegram.set_alarm("dry", bool(info & 0x01))
    telegram.set_alarm("backflow", bool(info & 0x02))
    telegram.set_alarm("leak", bool(info & 0x04))
    telegram.set_alarm("burst", bool(info & 0x08))


# -- Kaden / Ecomess (KDN, VIP) water meters: leak bits of the TPL status --------------------


def kaden_status(telegram: "WmbusTelegram") -> "None":
    """Status bits 0x20 (leak, flow below the limit) and 0x40 (leak, flow above it)."""
    if telegram.manufacturer not in ("KDN", "VIP") or telegram.status is None:
        return
    telegram.set_alarm("leak", bool(telegram.status & 0x60))


# -- Apator (APA) water meters: the error flags record ---------------------------------------


_ULTRIMIS_FLAGS = [
    "TAMPER",
    "LOW_BATTERY",
    "DRY",
    "NO_FLOW",
    "HIGH_TEMPERATURE",
    "BURST",
    "REVERSE",
    "LEAK",
]
# the alarms of the flags the meter reports now (its low byte), by bit
_ULTRIMIS_ALARMS = (
    (0x01, "tamper"),
    (0x02, "battery_low"),
    (0x04, "dry"),
    (0x20, "burst"),
    (0x40, "backflow"),
    (0x80, "leak"),
)


def apator_error_flags(telegram: "WmbusTelegram") -> "None":
    """Apator water meters' error flags record 03 FD 17. Apator Ultrimis (APA, cold water 0x16, versions 0x01 and 0x20): error flags record
    03 FD 17, three bytes. The low byte is the state now (0x01 tamper, 0x02 low battery,
    0x04 dry, 0x08 no flow, 0x10 high temperature, 0x20 burst, 0x40 reverse flow, 0x80
    leak), the next the same flags seen at any time this month, the high byte those seen
    last month (as wmbusmeters' ultrimisv2 driver publishes them). Only the state now
    raises alarms; all set flags are named in `error_flag_names` (e.g. ``NO_FLOW_THIS_MONTH``)."""
    if telegram.manufacturer != "APA" or telegram.device_type not in (0x06, 0x07, 0x16):
        return
    record = _find(telegram, "03FD17")
    if record is None or not isinstance(record.raw, int):
        return
    flags = record.raw
    if telegram.device_type != 0x16 or telegram.version not in (0x01, 0x20):
        _apt_mbus_na_flags(telegram, flags)
        return
    names = []
    for shift, suffix in ((0, ""), (8, "_THIS_MONTH"), (16, "_PREV_MONTH")):
        for bit, name in enumerate(_ULTRIMIS_FLAGS):
            if flags >> shift & (1 << bit):
                names.append(name + suffix)
    telegram.extra.append(Measurement("error_flag_names", " ".join(names) or "OK", None))
    for bit, alarm in _ULTRIMIS_ALARMS:
        telegram.set_alarm(alarm, bool(flags & bit))


def _apt_mbus_na_flags(telegram: "WmbusTelegram", flags: "int") -> "None":
    """Apator APT-MBUS-NA (APA water, e.g. version 0x15): the two low bytes are what was
    detected since the flags were cleared (0x01 magnetic field, 0x02 strong light, 0x40
    reverse flow, 0x400 low battery, 0x800 leak, as wmbusmeters' aptmbusna driver names
    them), the third what is detected now (0x010000 magnetic field, 0x020000 strong light,
    0x400000 reverse flow)."""
    telegram.set_alarm("tamper", bool(flags & 0x030003))
    telegram.set_alarm("backflow", bool(flags & 0x400040))
    telegram.set_alarm("battery_low", bool(flags & 0x400))
    telegram.set_alarm("leak", bool(flags & 0x800))


# -- BFW 240 radio heat cost allocator: a fixed layout in place of records ------------------


def bfw_240_radio(telegram: "WmbusTelegram") -> "None":
    """After 4 bytes: the value at the last billing date and the current value (2 bytes each,
    most significant first), 2 bytes, eighteen monthly values packed in pairs of 12 bits
    (oldest pair first), and the date (day, month, year in BCD)."""
    if (telegram.manufacturer, telegram.version, telegram.device_type) != ("BFW", 0x02, 0x08):
        return
    p = telegram.payload
    if len(p) < 40:
        return
    telegram.proprietary = "bfw240radio"
    extra = telegram.extra
    extra.append(Measurement("hca_storage1", (p[4] << 8) | p[5], None))
    extra.append(Measurement("hca", (p[6] << 8) | p[7], None))
    months = []
    for pair in range(9):  # hist 18/17 first, 02/01 last
        b0, b1, b2 = p[10 + 3 * pair], p[11 + 3 * pair], p[12 + 3 * pair]
        months.append(((b1 & 0x0F) << 8) | b2)  # the odd (more recent) month of the pair
        months.append(((b1 >> 4) << 8) | b0)
    for i in range(18):  # months[16], months[17] are months 1 and 2
        pair = 8 - i // 2
        value = months[2 * pair] if i % 2 == 0 else months[2 * pair + 1]
        extra.append(Measurement("hca_month%02d" % (i + 1), value, None))
    day, month, year = p[37], p[38], p[39]
    text = "20%02X-%02X-%02X" % (year, month, day)
    extra.append(Measurement("date", text if text[2:].replace("-", "").isdigit() else None, None))


# -- Hydroclima (BMP) heat cost allocators: the block after DIF 0x0F -----------------------

# Frame identifier -> the block's fields: (DIB/VIB hex of the value, size) or (None, size)
# for a field we leave out (times, dates, counters).
_HYDROCLIMA = {
    0x10: (
        ("02FD17", 2),  # status word
        (None, 4),  # time, date
        ("0265", 2),  # average ambient temperature, 0.01 Cel
        ("1265", 2),  # its maximum
        (None, 4),  # date of the maximum, number of measurements
        ("4265", 2),  # average ambient temperature, previous period
        ("4259", 2),  # average heater temperature, previous period
        (None, 2),  # indication
        ("83056E", 3),  # total consumption
    ),
    0x11: (
        ("02FD17", 2),
        (None, 6),  # time, date, housing opening date
        ("0259", 2),  # average heater temperature
        ("0265", 2),
        ("1265", 2),
        (None, 2),
        ("4259", 2),
        ("4265", 2),
        ("82016E", 2),  # consumption history, newest first
        ("C2016E", 2),
        ("82026E", 2),
        ("C2026E", 2),
        ("820165", 2),  # ambient temperature history
        ("C20165", 2),
        ("820265", 2),
        (None, 9),  # temperature bin counters
        ("83056E", 3),
    ),
}


def hydroclima(telegram: "WmbusTelegram") -> "None":
    """Frame identifier 0x10 or 0x11, then the fields of _HYDROCLIMA (0x8000: no value)."""
    if telegram.manufacturer != "BMP" or telegram.device_type != 0x08:
        return
    d = telegram.manufacturer_data
    layout = _HYDROCLIMA.get(d[0]) if d else None
    if layout is None:
        return
    pos = 1
    parts = []
    for key, size in layout:
        if pos + size > len(d):
            return
        value = d[pos : pos + size]
        if key is not None and not (size == 2 and value == b"\x00\x80"):
            parts.append((key, value))
        pos += size
    _synthesize(telegram, parts)


# -- Techem (TCH) MK Radio 3 / 3a water meters: CI 0xA2 payloads ---------------------------


def techem_mk_radio(telegram: "WmbusTelegram") -> "None":
    """MK Radio 3 (version 0x74): a byte, the billing date, the volume at that date, the
    current date, the volume since (2-byte values in 0.1 m3); the total is their sum.
    MK Radio 3a (version 0x50): two bytes, the date, the total (3 bytes, 0.1 m3), then
    twelve monthly volumes, each a byte, then the two half-months (0.1 m3), newest first."""
    if telegram.manufacturer != "TCH" or telegram.ci != 0xA2:
        return
    p = telegram.manufacturer_data
    extra = telegram.extra
    if telegram.version == 0x74 and telegram.device_type in (0x62, 0x72) and len(p) >= 9:
        billed = _u(p[3:5])
        since = _u(p[7:9])
        extra.append(Measurement("volume_storage1", scale(billed, -1), "m3"))
        extra.append(Measurement("volume", scale(billed + since, -1), "m3"))
    elif telegram.version == 0x50 and telegram.device_type in (0x62, 0x72) and len(p) >= 44:
        extra.append(Measurement("volume", scale(_u(p[4:7]), -1), "m3"))
        for i in range(12):
            pos = 8 + 3 * i
            halves = p[pos] + p[pos + 1]
            extra.append(Measurement("volume_month_ago%02d" % (i + 1), scale(halves, -1), "m3"))


def techem_compact5(telegram: "WmbusTelegram") -> "None":
    """Compact V heat meter (CI 0xA1, 0xA2): 3 bytes, the energy of the previous period (3
    bytes, kWh), a byte, the energy since (3 bytes, kWh); the total is their sum."""
    if telegram.manufacturer != "TCH" or telegram.ci not in (0xA1, 0xA2):
        return
    if (telegram.version, telegram.device_type) not in (
        (0x45, 0x04),
        (0x45, 0xC3),
        (0x22, 0x43),
        (0x45, 0x43),
        (0x39, 0x43),
    ):
        return
    p = telegram.manufacturer_data
    if len(p) < 10:
        return
    previous, current = _u(p[3:6]), _u(p[7:10])
    extra = telegram.extra
    extra.append(Measurement("energy_storage1", previous * 1000, "Wh"))
    extra.append(Measurement("energy_period", current * 1000, "Wh"))
    extra.append(Measurement("energy", (previous + current) * 1000, "Wh"))


def techem_fhkv_data_iii(telegram: "WmbusTelegram") -> "None":
    """FHKV data III heat cost allocator (CI 0xA0): a version byte (0x01, 0x11 or 0x0F), the
    previous period's date and value, the current date and value, (0x0F: a byte), the room
    and radiator temperatures (0.01 Cel)."""
    if telegram.manufacturer != "TCH" or telegram.ci != 0xA0:
        return
    p = telegram.manufacturer_data
    if len(p) < 13 or p[0] not in (0x01, 0x11, 0x0F):
        return
    temps = 10 if p[0] == 0x0F else 9
    if len(p) < temps + 4:
        return
    _synthesize(
        telegram,
        [
            ("426E", p[3:5]),
            ("026E", p[7:9]),
            ("0265", p[temps : temps + 2]),
            ("025D", p[temps + 2 : temps + 4]),
        ],
    )


# -- Apator NA-1 water meters: an AES-128-CBC block in a manufacturer payload ---------------


def apator_na1(telegram: "WmbusTelegram", key: "bytes | None") -> "None":
    """Apator NA-1 (APA, version 0x14, water; CI 0xA0/0xA1): the access number, a status
    byte, then one AES-128-CBC block (IV: M and A of the link layer, 8 x the access number)
    holding a pad byte, the packed total (4 bytes: mantissa and a decimal exponent), the
    meter's clock (seconds since 2000), the age (hours) and the difference of the last
    historic value, the current and historic status bytes. The block carries no check:
    a wrong key gives wrong values, which the clock's plausibility catches most of the time
    (WrongKeyError)."""
    from protocols.wmbus import _aes
    from protocols.wmbus._errors import MissingKeyError, WrongKeyError

    p = telegram.manufacturer_data
    if len(p) < 18:
        return
    if key is None:
        raise MissingKeyError(
            telegram.meter, 0, "no key for meter %s (Apator NA-1 payload)" % telegram.meter
        )
    iv = telegram.frame[2:10] + bytes([p[0]]) * 8
    d = _aes.cbc_decrypt(key, iv, p[2:18])
    raw = _u(d[1:5])
    seconds = _u(d[5:9])
    if not 0 < seconds < 50 * 365 * 86400:  # the meter's clock: years 2000 to 2050
        raise WrongKeyError(
            telegram.meter,
            0,
            "the key for meter %s does not decrypt its Apator NA-1 payload" % telegram.meter,
        )
    multiplier = 10 ** ((raw >> 4) & 0x03)
    mantissa = ((raw >> 8) << 4) | (raw & 0x0F)
    age_h = ((d[10] >> 2) << 8) | d[9]
    delta = (d[13] << 18) | (d[12] << 10) | (d[11] << 2) | (d[10] & 0x03)
    telegram.proprietary = "apatorna1"
    extra = telegram.extra
    extra.append(Measurement("volume", scale(mantissa * multiplier, -3), "m3"))
    extra.append(Measurement("volume_storage1", scale((mantissa - delta) * multiplier, -3), "m3"))
    extra.append(Measurement("storage1_age", age_h * 3600, "s"))
    extra.append(Measurement("clock", seconds, "s"))
    extra.append(Measurement("status", d[14], None))
    extra.append(Measurement("status_storage1", d[15], None))


# -- manufacturer-specific VIFs --------------------------------------------------------------

# (manufacturer, VIF/VIFE hex after the DIB) -> (name, SenML unit, factor on the raw value)
MANUFACTURER_VIFS = {
    # Schneider Electric iEM3000 (SEC)
    ("SEC", "FF0A"): ("power_factor", None, 1),
    ("SEC", "FF0B"): ("frequency", "Hz", 1),
}


def manufacturer_vifs(telegram: "WmbusTelegram") -> "None":
    """Records whose VIF is manufacturer specific (0xFF) and whose meaning the
    manufacturer documents (MANUFACTURER_VIFS)."""
    for r in telegram.records:
        if r.vif != 0xFF or not isinstance(r.raw, (int, float)) or isinstance(r.raw, bool):
            continue
        entry = MANUFACTURER_VIFS.get(
            (telegram.manufacturer, ("%02X" % r.vif) + bytes(r.vifes).hex().upper())
        )
        if entry is None:
            continue
        name, unit, factor = entry
        value = r.raw * factor if factor != 1 else r.raw
        suffix = r.name[len(r.quantity) :] if r.name.startswith(r.quantity) else ""
        telegram.extra.append(Measurement(name + suffix, value, unit))


def ime_vifs(telegram: "WmbusTelegram") -> "None":
    """IME (Italy) electricity meters: VIF 0xFF, a manufacturer code, then a primary VIF
    that gives the unit and scale of the value (e.g. FF 8E 2B: a power in W). Each value
    is decoded as that primary VIF says, its name suffixed with the manufacturer code."""
    if telegram.manufacturer != "IME":
        return
    for r in telegram.records:
        if r.vif != 0xFF or len(r.vifes) != 2 or r.vifes[1] & 0x80:
            continue
        rebuilt = bytes([r.dif]) + bytes(r.difes) + bytes([r.vifes[1]]) + r.data
        try:
            for record in iter_records(rebuilt):
                m = record.measurement()
                m.name = "%s_mfr%02x" % (m.name, r.vifes[0] & 0x7F)
                telegram.extra.append(m)
        except RemoteProtocolError:
            continue


def schneider_subunits(telegram: "WmbusTelegram") -> "None":
    """Schneider Electric (SEC) meters count reactive energy in subunit 1 and 2 of an
    energy record, reactive power in subunit 1 of a power record, apparent power in 2."""
    if telegram.manufacturer != "SEC":
        return
    for r in telegram.records:
        if not r.subunit or not isinstance(r.value, (int, float)):
            continue
        if r.unit == "Wh":
            telegram.extra.append(Measurement("reactive_" + r.name, r.value, "varh"))
        elif r.unit == "W":
            unit = "var" if r.subunit == 1 else "VA"
            kind = "reactive_" if r.subunit == 1 else "apparent_"
            telegram.extra.append(Measurement(kind + r.name, r.value, unit))


DRIVERS: "list[Driver]" = [
    techem_compact5,
    techem_fhkv_data_iii,
    techem_mk_radio,
    hydroclima,
    bfw_240_radio,
    manufacturer_vifs,
    ime_vifs,
    schneider_subunits,
    qundis_walk_by,
    bmeters_hydrodigit,
    kamstrup_water_info,
    kaden_status,
    apator_error_flags,
]

__all__ = ["DRIVERS"]

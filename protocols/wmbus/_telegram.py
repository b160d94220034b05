"""Wireless M-Bus telegrams: link header, ELL, AFL, transport layer, security, records.

`Decoder(keys).decode(frame)` turns one telegram (L-field first, with or without the link
layer CRCs; or a wired M-Bus long frame, as some gateways forward them) into a
`WmbusTelegram`. The application layer is protocols.mbus's DIF/VIF record decoder.

Layers, in the order they appear after the 10-byte L/C/M/A header:

- ELL (CI 0x8C..0x8F): communication control, access number, optionally the target
  address, the session number (whose top bits select AES-CTR encryption) and the payload
  CRC that checks the decryption;
- NWL (CI 0x81), skipped;
- AFL (CI 0x90): fragment control, message control, key information, message counter and
  the MAC that mode 7 checks;
- TPL: 0x72/0x73 long header (id, manufacturer, version, device type, then as short),
  0x7A/0x7B short header (access number, status, configuration word), 0x78/0x79 none;
  0x73, 0x7B and 0x79 are compact frames (data without DIF/VIFs, whose format a previous
  full telegram taught the decoder); 0xA0..0xB7 manufacturer-specific payloads.

Security (configuration word bits 8..12): mode 0 none; mode 5 AES-128-CBC, IV = M, A of
the transport (or link) layer and eight times the access number, the plain text starting
with 2F 2F; mode 7 AES-128-CBC with a zero IV and a key derived per message by AES-CMAC
from the meter key, the AFL message counter and the meter id, the AFL MAC checked first.
Other modes are refused as UNSUPPORTED.
"""

from protocols._typing import TYPE_CHECKING
from protocols.errors import (
    CHECKSUM,
    DECRYPTION,
    MALFORMED,
    TRUNCATED,
    UNSUPPORTED,
    RemoteProtocolError,
)
from protocols.mbus.records import (
    DIF_IDLE_FILLER,
    FUNCTION_MANUFACTURER,
    Record,
    iter_records,
)
from protocols.mbus.telegram import medium_name
from protocols.reading import Measurement
from protocols.wmbus import _aes, _diehl
from protocols.wmbus._errors import MissingKeyError, WrongKeyError
from protocols.wmbus._link import (
    C_FIELDS,
    FORMAT_NONE,
    HEADER_SIZE,
    check_header,
    crc16,
    device_id,
    manufacturer,
    strip_crcs,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    Driver = Callable[["WmbusTelegram"], None]

CI_ELL = (0x8C, 0x8D, 0x8E, 0x8F)
CI_NWL = 0x81
CI_AFL = 0x90
CI_LONG = 0x72
CI_LONG_COMPACT = 0x73
CI_NONE = 0x78
CI_NONE_COMPACT = 0x79
CI_SHORT = 0x7A
CI_SHORT_COMPACT = 0x7B
CI_ALARM = 0x71
CI_APPLICATION_ERROR = 0x70

MODE_NONE = 0
MODE_AES_CBC_IV = 5
MODE_AES_CBC_NO_IV = 7
CHECK_BYTES = b"\x2f\x2f"
MAX_FORMATS = 64  # compact frame formats remembered by a decoder
_AFL_MAC_SIZES = {3: 2, 4: 4, 5: 8, 6: 12, 7: 16}

# TPL status byte (EN 13757-7 table 8 / EN 13757-3).
STATUS_BUSY = 0x01
STATUS_APPLICATION_ERROR = 0x02
STATUS_POWER_LOW = 0x04
STATUS_PERMANENT_ERROR = 0x08
STATUS_TEMPORARY_ERROR = 0x10

# Alarm names: boolean readings and the `alarms` flags (the hub's alert helper relies on them).
ALARMS = ("leak", "burst", "backflow", "tamper", "dry", "battery_low")


class WmbusTelegram:
    """A decoded wireless M-Bus telegram. Fields absent from the telegram are None.

    `records` are the DIF/VIF data records (protocols.mbus.Record); `extra` holds the
    measurements a manufacturer-specific decoder adds; `alarms` maps an alarm name (see
    ALARMS) to True/False for every alarm the telegram reports on.
    """

    __slots__ = (
        "access_number",
        "afl_counter",
        "alarms",
        "c_field",
        "ci",
        "config",
        "device_type",
        "ell_ci",
        "encrypted_blocks",
        "extra",
        "frame",
        "frame_format",
        "id",
        "link_id",
        "link_manufacturer",
        "link_type",
        "link_version",
        "manufacturer",
        "manufacturer_data",
        "payload",
        "proprietary",
        "records",
        "security_mode",
        "status",
        "version",
        "wired",
    )

    def __init__(self) -> "None":
        self.frame = b""  # the telegram without CRCs
        self.frame_format = FORMAT_NONE
        self.wired = False
        self.c_field = 0
        self.link_manufacturer = ""
        self.link_id = ""
        self.link_version = 0
        self.link_type = 0
        self.manufacturer = ""
        self.id = ""
        self.version = 0
        self.device_type = 0
        self.ell_ci: "int | None" = None
        self.afl_counter: "int | None" = None
        self.ci = 0
        self.access_number: "int | None" = None
        self.status: "int | None" = None
        self.config: "int | None" = None
        self.security_mode = MODE_NONE
        self.encrypted_blocks = 0
        self.payload = b""  # the application data after decryption
        self.proprietary: "str | None" = None  # the driver that decoded a proprietary payload
        self.records: "list[Record]" = []
        self.extra: "list[Measurement]" = []
        self.manufacturer_data = b""
        self.alarms: "dict[str, bool]" = {}

    @property
    def meter(self) -> "str":
        """The meter's key name: manufacturer and id, e.g. ``KAM-12345678``."""
        return "%s-%s" % (self.manufacturer, self.id)

    @property
    def device_type_name(self) -> "str":
        return medium_name(self.device_type)

    def set_alarm(self, name: "str", value: "bool") -> "None":
        """Record what the telegram says of alarm `name` (one of ALARMS); a set alarm stays
        set when another part of the telegram reports it clear."""
        self.alarms[name] = bool(value) or self.alarms.get(name, False)

    def active_alarms(self) -> "list[str]":
        return [name for name in ALARMS if self.alarms.get(name)]

    def measurements(self) -> "list[Measurement]":
        out = [r.measurement() for r in self.records if r.function != FUNCTION_MANUFACTURER]
        out.extend(self.extra)
        for name in ALARMS:
            if name in self.alarms:
                out.append(Measurement(name, self.alarms[name], None))
        return out

    def fields(self) -> "dict[str, object]":
        """The header as the `fields` of the `estran decode --json` contract."""
        out: "dict[str, object]" = {
            "manufacturer": self.manufacturer,
            "id": self.id,
            "version": self.version,
            "device_type": self.device_type_name,
            "device_type_code": self.device_type,
            "access_number": self.access_number,
            "status": self.status,
            "status_flags": status_flags(self.status) if self.status is not None else [],
            "alarms": self.active_alarms(),
            "encryption_mode": self.security_mode,
            "ci": self.ci,
        }
        if self.wired:
            out["frame"] = "wired"
        else:
            out["c_field"] = self.c_field
            out["frame_type"] = C_FIELDS.get(self.c_field, "0x%02X" % self.c_field)
            out["frame_format"] = self.frame_format
            if (self.link_manufacturer, self.link_id) != (self.manufacturer, self.id):
                out["link_manufacturer"] = self.link_manufacturer
                out["link_id"] = self.link_id
        if self.ell_ci is not None:
            out["ell_ci"] = self.ell_ci
        if self.afl_counter is not None:
            out["afl_counter"] = self.afl_counter
        if self.manufacturer_data:
            out["manufacturer_data"] = self.manufacturer_data.hex()
        return out

    def __repr__(self) -> "str":
        return "WmbusTelegram(%s, ci=0x%02X, records=%d)" % (
            self.meter,
            self.ci,
            len(self.records),
        )


def status_flags(status: "int") -> "list[str]":
    flags = []
    if status & STATUS_BUSY:
        flags.append("busy")
    if status & STATUS_APPLICATION_ERROR:
        flags.append("application_error")
    if status & STATUS_POWER_LOW:
        flags.append("power_low")
    if status & STATUS_PERMANENT_ERROR:
        flags.append("permanent_error")
    if status & STATUS_TEMPORARY_ERROR:
        flags.append("temporary_error")
    if status & 0xE0:
        flags.append("manufacturer_0x%02X" % (status & 0xE0))
    return flags


class _Cursor:
    __slots__ = ("data", "pos")

    def __init__(self, data: "bytes", pos: "int") -> "None":
        self.data = data
        self.pos = pos

    def take(self, n: "int", what: "str") -> "bytes":
        if self.pos + n > len(self.data):
            raise RemoteProtocolError(
                TRUNCATED,
                "%s needs %d bytes at offset %d, %d left"
                % (what, n, self.pos, len(self.data) - self.pos),
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def rest(self) -> "bytes":
        return self.data[self.pos :]


def format_bytes(records: "list[Record]") -> "bytes | None":
    """The DIF/VIF sequence of full records (what a compact frame leaves out), or None
    when a record cannot be compacted (plain-text VIF, manufacturer data)."""
    out = b""
    for r in records:
        if r.function == FUNCTION_MANUFACTURER or r.text is not None or r.vif is None:
            return None
        out += bytes([r.dif]) + bytes(r.difes) + bytes([r.vif]) + bytes(r.vifes)
    return out


def _expand_compact(fmt: "bytes", data: "bytes") -> "bytes":
    """Full records from a format (DIB/VIB sequence) and a compact frame's data."""
    from protocols.mbus.records import _DATA_LENGTH  # shared table, not a copy

    out = b""
    i = 0
    pos = 0
    while i < len(fmt):
        start = i
        dif = fmt[i]
        i += 1
        while fmt[i - 1] & 0x80 and i < len(fmt):  # DIFEs
            i += 1
        if i >= len(fmt):
            raise RemoteProtocolError(MALFORMED, "compact format ends inside a DIB")
        i += 1  # VIF
        while fmt[i - 1] & 0x80 and i < len(fmt):  # VIFEs
            i += 1
        field = dif & 0x0F
        if field == 0x0D:
            if pos >= len(data):
                raise RemoteProtocolError(TRUNCATED, "compact frame ends before an LVAR")
            size = 1 + (data[pos] & 0x3F if data[pos] < 0xC0 else data[pos] & 0x0F)
        else:
            size = _DATA_LENGTH.get(field, 0)
        if pos + size > len(data):
            raise RemoteProtocolError(TRUNCATED, "compact frame shorter than its format")
        out += fmt[start:i] + data[pos : pos + size]
        pos += size
    return out + data[pos:]


class Decoder:
    """Decodes telegrams with the meters' keys and remembers compact frame formats.

    `keys` maps a meter to its AES-128 key (16 bytes): by ``"MAN-ID"`` (manufacturer and
    id, e.g. ``"DME-12345678"``), by ``"ID"`` alone, or ``"*"`` for any meter. The keys are
    never part of an error, a repr or a result.
    """

    __slots__ = ("_drivers", "_formats", "_keys")
    _drivers: "list[Driver]"

    def __init__(
        self,
        keys: "dict[str, bytes] | None" = None,
        drivers: "list[Driver] | None" = None,
    ) -> "None":
        self._keys = dict(keys) if keys else {}
        self._formats: "dict[int, bytes]" = {}
        if drivers is None:
            from protocols.wmbus._drivers import DRIVERS

            drivers = DRIVERS
        self._drivers = drivers

    def __repr__(self) -> "str":
        return "Decoder(%d keys, %d formats)" % (len(self._keys), len(self._formats))

    def key_for(self, manufacturer_: "str", id_: "str") -> "bytes | None":
        for name in (manufacturer_ + "-" + id_, id_, "*"):
            key = self._keys.get(name)
            if key is not None:
                return key
        return None

    def decode(self, frame: "bytes", crcs: "bool | None" = None) -> "WmbusTelegram":
        """Decode one telegram; raises RemoteProtocolError (MissingKeyError and
        WrongKeyError for key problems). `crcs`: None when unknown (formats A and B are
        recognised by their length and CRCs), False when the dongle removed them."""
        telegram = WmbusTelegram()
        self.decode_into(telegram, frame, crcs)
        return telegram

    def decode_into(
        self, telegram: "WmbusTelegram", frame: "bytes", crcs: "bool | None" = None
    ) -> "None":
        """Decode `frame` into `telegram`, so that a caller catching the error keeps the
        header and the records decoded before it."""
        frame = bytes(frame)
        error = None
        try:
            if len(frame) >= 6 and frame[0] == 0x68 and frame[3] == 0x68:
                self._wired(telegram, frame)
            else:
                self._wireless(telegram, frame, crcs)
        except RemoteProtocolError as e:
            if not telegram.payload:
                raise
            error = e  # the records did not parse: a proprietary payload, perhaps
        for driver in self._drivers:
            driver(telegram)
        if error is not None:
            if telegram.proprietary is None:
                raise error
            telegram.records = []  # what parsed as records was the proprietary payload
        if telegram.status is not None:
            telegram.set_alarm("battery_low", bool(telegram.status & STATUS_POWER_LOW))

    def _wired(self, telegram: "WmbusTelegram", frame: "bytes") -> "None":
        from protocols.mbus.frames import parse_frame
        from protocols.mbus.telegram import Telegram, decode_into

        wired = Telegram(parse_frame(frame))  # raises for bad checksum, length, stop byte
        telegram.wired = True
        try:
            decode_into(wired, parse_frame(frame))
        finally:
            telegram.ci = wired.ci
            telegram.id = "%08d" % wired.id if isinstance(wired.id, int) else str(wired.id or "")
            telegram.manufacturer = wired.manufacturer or ""
            telegram.version = wired.version or 0
            telegram.device_type = wired.medium or 0
            telegram.link_id, telegram.link_manufacturer = telegram.id, telegram.manufacturer
            telegram.access_number = wired.access_number
            telegram.status = wired.status
            telegram.config = wired.signature
            telegram.records = wired.records
            for r in wired.records:
                if r.function == FUNCTION_MANUFACTURER:
                    telegram.manufacturer_data = r.data

    def _wireless(
        self, telegram: "WmbusTelegram", frame: "bytes", crcs: "bool | None" = None
    ) -> "None":
        if crcs is False:  # the dongle said: CRCs already checked and removed
            check_header(frame)
            missing = frame[0] + 1 - len(frame)
            if missing == (2 if len(frame) <= 126 else 4):  # a format B L-field, CRCs gone
                telegram.frame_format = "B"
                frame = bytes([len(frame) - 1]) + frame[1:]
            if frame[0] + 1 != len(frame):
                raise RemoteProtocolError(
                    TRUNCATED if frame[0] + 1 > len(frame) else MALFORMED,
                    "L-field says %d bytes follow, %d do" % (frame[0], len(frame) - 1),
                )
            data = bytes(frame)
        else:
            data, telegram.frame_format = strip_crcs(frame)
        telegram.frame = data
        telegram.c_field = data[1]
        telegram.link_manufacturer = telegram.manufacturer = manufacturer(data[2:4])
        telegram.link_id = telegram.id = device_id(data[4:8])
        telegram.link_version = telegram.version = data[8]
        telegram.link_type = telegram.device_type = data[9]
        cursor = _Cursor(data, HEADER_SIZE)
        m_a = data[2:10]  # M and A of the link layer: the IV of modes 5 and ELL
        afl = None  # (mcl, counter bytes, mac)
        while True:
            ci = cursor.take(1, "CI field")[0]
            if ci in CI_ELL:
                telegram.ell_ci = ci
                self._ell(telegram, cursor, ci, m_a)
                continue
            if ci == CI_NWL:
                cursor.take(1, "NWL")
                continue
            if ci == CI_AFL:
                afl = self._afl(telegram, cursor)
                continue
            break
        telegram.ci = ci
        tpl_start = cursor.pos - 1
        if 0xA0 <= ci <= 0xB7:
            telegram.manufacturer_data = cursor.rest()
            if _diehl.is_prios(telegram.manufacturer, telegram.c_field, ci):
                ident, version, device_type = _diehl.swap_address(data)
                telegram.link_id = telegram.id = ident
                telegram.link_version = telegram.version = version
                telegram.link_type = telegram.device_type = device_type
                key = self.key_for(telegram.manufacturer, telegram.id)
                extra, alarms = _diehl.prios(data, key, telegram.meter)
                telegram.extra.extend(extra)
                for name, value in alarms.items():
                    telegram.set_alarm(name, value)
            elif (telegram.manufacturer, telegram.version, telegram.device_type) == (
                "APA",
                0x14,
                0x07,
            ) and ci in (0xA0, 0xA1):
                from protocols.wmbus._drivers import apator_na1

                apator_na1(telegram, self.key_for(telegram.manufacturer, telegram.id))
            return
        if ci == CI_ALARM:
            telegram.manufacturer_data = cursor.rest()
            return
        if ci == CI_APPLICATION_ERROR:
            code = cursor.rest()[:1]
            raise RemoteProtocolError(
                UNSUPPORTED,
                "application error telegram (code %s)" % (code.hex() if code else "none"),
            )
        if ci in (CI_LONG, CI_LONG_COMPACT):
            head = cursor.take(8, "long transport header")
            telegram.id = device_id(head[0:4])
            telegram.manufacturer = manufacturer(head[4:6])
            telegram.version = head[6]
            telegram.device_type = head[7]
            m_a = head[4:6] + head[0:4] + head[6:8]
        if ci in (CI_LONG, CI_LONG_COMPACT, CI_SHORT, CI_SHORT_COMPACT):
            short = cursor.take(4, "short transport header")
            telegram.access_number = short[0]
            telegram.status = short[1]
            config = short[2] | (short[3] << 8)
            telegram.config = config
            self._security(telegram, cursor, config, m_a, afl, tpl_start)
        elif ci in (CI_NONE, CI_NONE_COMPACT):
            telegram.payload = cursor.rest()
        else:
            raise RemoteProtocolError(UNSUPPORTED, "CI field 0x%02X is not supported" % ci)
        body = telegram.payload
        if ci in (CI_LONG_COMPACT, CI_SHORT_COMPACT, CI_NONE_COMPACT):
            if telegram.security_mode and body[:2] == CHECK_BYTES:
                body = body[2:]  # the decryption check bytes precede the signature
            signature = cursor_u16(body, 0)
            fmt = self._formats.get(signature)
            if fmt is None:
                fmt = known_formats().get(signature)
            if fmt is None:
                raise RemoteProtocolError(
                    UNSUPPORTED,
                    "compact frame with format signature %04X not yet seen in a full "
                    "telegram of this meter" % signature,
                )
            body = _expand_compact(fmt, body[4:])
        self._records(telegram, body, learn=ci in (CI_LONG, CI_SHORT, CI_NONE))

    def _records(self, telegram: "WmbusTelegram", body: "bytes", learn: "bool") -> "None":
        for record in iter_records(body):
            telegram.records.append(record)
            if record.function == FUNCTION_MANUFACTURER:
                telegram.manufacturer_data = record.data
        if learn:
            fmt = format_bytes(telegram.records)
            if fmt and (len(self._formats) < MAX_FORMATS):
                self._formats[crc16(fmt)] = fmt

    def _ell(self, telegram: "WmbusTelegram", cursor: "_Cursor", ci: "int", m_a: "bytes") -> "None":
        cc_acc = cursor.take(2, "ELL")
        telegram.access_number = cc_acc[1]
        if ci in (0x8E, 0x8F):
            cursor.take(8, "ELL target address")
        if ci not in (0x8D, 0x8F):
            return
        sn = cursor.take(4, "ELL session number")
        mode = sn[3] >> 5
        rest = cursor.rest()
        if len(rest) < 2:
            raise RemoteProtocolError(TRUNCATED, "ELL payload CRC missing")
        if mode == 0 or _ell_crc_ok(rest):
            cursor.pos += 2
            if mode and not _ell_crc_ok(rest):
                raise RemoteProtocolError(CHECKSUM, "ELL payload CRC does not match")
            return
        if mode != 1:
            raise RemoteProtocolError(UNSUPPORTED, "ELL security mode %d" % mode)
        key = self.key_for(telegram.manufacturer, telegram.id)
        if key is None:
            raise MissingKeyError(
                telegram.meter,
                1,
                "no key for meter %s (ELL AES-CTR encrypted)" % telegram.meter,
            )
        iv = m_a + bytes([cc_acc[0] & 0xED]) + sn + b"\x00\x00\x00"
        plain = _aes.ctr_crypt(key, iv, rest)
        if not _ell_crc_ok(plain):
            raise WrongKeyError(
                telegram.meter,
                1,
                "the key for meter %s does not decrypt its ELL payload (CRC mismatch)"
                % telegram.meter,
            )
        cursor.data = cursor.data[: cursor.pos] + plain
        cursor.pos += 2

    def _afl(self, telegram: "WmbusTelegram", cursor: "_Cursor") -> "tuple[int, bytes, bytes]":
        size = cursor.take(1, "AFL length")[0]
        body = _Cursor(cursor.take(size, "AFL"), 0)
        fc = body.take(2, "AFL fragment control")
        fcv = fc[0] | (fc[1] << 8)
        mcl = body.take(1, "AFL message control")[0] if fcv & 0x2000 else 0
        if fcv & 0x0200:
            body.take(2, "AFL key information")
        counter = b""
        if fcv & 0x0800:
            counter = body.take(4, "AFL message counter")
            telegram.afl_counter = counter[0] | counter[1] << 8 | counter[2] << 16
            telegram.afl_counter |= counter[3] << 24
        if fcv & 0x1000:
            body.take(2, "AFL message length")
        mac = b""
        if fcv & 0x0400:
            mac_size = _AFL_MAC_SIZES.get(mcl & 0x0F)
            if mac_size is None:
                raise RemoteProtocolError(UNSUPPORTED, "AFL authentication type %d" % (mcl & 0x0F))
            mac = body.take(mac_size, "AFL MAC")
        return mcl, counter, mac

    @staticmethod
    def _diehl_oms(telegram: "WmbusTelegram") -> "bool":
        return (
            telegram.link_manufacturer in _diehl.MANUFACTURERS
            or telegram.manufacturer in _diehl.MANUFACTURERS
        ) and telegram.c_field in (0x44, 0x46)

    def _security(
        self,
        telegram: "WmbusTelegram",
        cursor: "_Cursor",
        config: "int",
        m_a: "bytes",
        afl: "tuple[int, bytes, bytes] | None",
        tpl_start: "int",
    ) -> "None":
        mode = (config >> 8) & 0x1F
        telegram.security_mode = mode
        if mode == MODE_AES_CBC_NO_IV:
            cursor.take(1, "configuration field extension")
        rest = cursor.rest()
        if mode == MODE_NONE:
            telegram.payload = rest
            return
        if _diehl.is_real_data(telegram.manufacturer, telegram.c_field, mode):
            key = self.key_for(telegram.manufacturer, telegram.id)
            telegram.payload = _diehl.real_data(cursor.data, key, telegram.meter)
            return
        if mode not in (MODE_AES_CBC_IV, MODE_AES_CBC_NO_IV):
            raise RemoteProtocolError(
                UNSUPPORTED, "security mode %d of meter %s" % (mode, telegram.meter)
            )
        blocks = (config >> 4) & 0x0F
        telegram.encrypted_blocks = blocks
        size = 16 * blocks if blocks else len(rest) - len(rest) % 16
        key = self.key_for(telegram.manufacturer, telegram.id)
        if rest[:2] == CHECK_BYTES:
            # Sent (or logged) already decrypted: accept only when no key is configured.
            if key is not None:
                raise WrongKeyError(
                    telegram.meter,
                    mode,
                    "meter %s sent in clear a telegram its header marks encrypted (mode %d),"
                    " and a key is configured for it" % (telegram.meter, mode),
                )
            telegram.payload = rest
            return
        default_key = False
        if key is None and mode == MODE_AES_CBC_IV and self._diehl_oms(telegram):
            key = _diehl.DEFAULT_OMS_KEY  # Diehl's published factory key
            default_key = True
        if key is None:
            raise MissingKeyError(
                telegram.meter,
                mode,
                "no key for meter %s (security mode %d)" % (telegram.meter, mode),
            )
        if size == 0 or size > len(rest):
            raise RemoteProtocolError(
                TRUNCATED,
                "%d encrypted bytes announced, %d present" % (size, len(rest)),
            )
        if mode == MODE_AES_CBC_IV:
            iv = m_a + bytes([telegram.access_number or 0]) * 8
            plain = _aes.cbc_decrypt(key, iv, rest[:size])
        else:
            if afl is None or not afl[2] or len(afl[1]) != 4:
                raise RemoteProtocolError(
                    DECRYPTION,
                    "mode 7 telegram of meter %s without AFL counter and MAC" % telegram.meter,
                )
            mcl, counter, mac = afl
            id_bytes = bytes([int(telegram.id[i : i + 2], 16) for i in (6, 4, 2, 0)])
            derivation = counter + id_bytes + b"\x07" * 7
            k_enc = _aes.cmac(key, b"\x00" + derivation)
            k_mac = _aes.cmac(key, b"\x01" + derivation)
            expected = _aes.cmac(k_mac, bytes([mcl]) + counter + cursor.data[tpl_start:])
            if expected[: len(mac)] != mac:
                raise WrongKeyError(
                    telegram.meter,
                    mode,
                    "the key for meter %s does not authenticate its telegram (AFL MAC "
                    "mismatch: wrong key or altered telegram)" % telegram.meter,
                )
            plain = _aes.cbc_decrypt(k_enc, bytes(16), rest[:size])
        if plain[:2] != CHECK_BYTES and default_key:
            raise MissingKeyError(
                telegram.meter,
                mode,
                "no key for meter %s (security mode %d; Diehl's factory key does not "
                "decrypt it)" % (telegram.meter, mode),
            )
        if plain[:2] != CHECK_BYTES:
            raise WrongKeyError(
                telegram.meter,
                mode,
                "the key for meter %s does not decrypt its telegram (no 2F2F check bytes)"
                % telegram.meter,
            )
        telegram.payload = plain + rest[size:]


_KNOWN: "dict[int, bytes]" = {}


def known_formats() -> "dict[int, bytes]":
    """Signature -> DIF/VIF sequence of the formats in _formats.KNOWN_FORMATS."""
    if not _KNOWN:
        from protocols.wmbus._formats import KNOWN_FORMATS

        for text in KNOWN_FORMATS:
            fmt = bytes.fromhex(text)
            _KNOWN[crc16(fmt)] = fmt
    return _KNOWN


def cursor_u16(data: "bytes", pos: "int") -> "int":
    if pos + 2 > len(data):
        raise RemoteProtocolError(TRUNCATED, "compact frame without its format signature")
    return data[pos] | (data[pos + 1] << 8)


def _ell_crc_ok(data: "bytes") -> "bool":
    return len(data) >= 2 and crc16(data[2:]) == (data[0] | (data[1] << 8))


def decode(frame: "bytes", keys: "dict[str, bytes] | None" = None) -> "WmbusTelegram":
    """One telegram with a throwaway decoder (no compact formats remembered)."""
    return Decoder(keys).decode(frame)


__all__ = [
    "ALARMS",
    "CI_AFL",
    "CI_ELL",
    "CI_LONG",
    "CI_NONE",
    "CI_SHORT",
    "DIF_IDLE_FILLER",
    "MODE_AES_CBC_IV",
    "MODE_AES_CBC_NO_IV",
    "MODE_NONE",
    "Decoder",
    "WmbusTelegram",
    "decode",
    "format_bytes",
    "status_flags",
]

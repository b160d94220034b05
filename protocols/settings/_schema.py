"""THE schema of a gateway's configuration: every setting once, with its type, default,
limits, unit, whether a change waits for a restart, and whether the hub may set it.

Read by the hub's validation (fleet/), the gateway's loader (edge/config), the layer merge,
docs/configuration.md's tables (generated: `estran settings docs --write`) and the JSON
Schema the hub's API publishes (`GET /api/v1/fleet/config/schema`).
"""

import re

from protocols import bthome
from protocols.block import MAX_READINGS
from protocols.errors import LocalProtocolError
from protocols.settings import serial as _serial
from protocols.settings._types import (
    DEFAULTS,
    GATEWAY,
    INVALID,
    Array,
    Boolean,
    Duration,
    Either,
    Field,
    Integer,
    Mapping_,
    Named,
    Number,
    Plain,
    Size,
    StrList,
    Table,
    Text,
    Walk,
    show,
)

MIB = 1 << 20
DEFAULT_DATA_DIR = "/var/lib/estran"
AGGREGATES = ("min", "max", "mean", "last", "count")
REPORT_MODES = ("every", "change", "aggregate")
LOG_LEVELS = ("debug", "info", "warning", "error")
POLICIES = ("drop_oldest", "refuse_new")
MQTT_PROTOCOLS = ("auto", "5", "3.1.1")

_ENROLLMENT = "enrollment sets it on the gateway"
_LOCAL_FS = "the gateway's own file system"

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_QUANTITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_UNIT = re.compile(r"^[^\s]{1,16}$")


def check_id(value: "str") -> "str | None":
    if _ID.match(value) and value not in (".", ".."):
        return None
    return (
        "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit; "
        "got %s" % show(value)
    )


def _check_quantity(value: "str") -> "str | None":
    if _QUANTITY.match(value):
        return None
    return "must be a quantity name (letters, digits, '.', '_', '+', '-'), got %s" % show(value)


def _check_unit(value: "str") -> "str | None":
    return (
        None
        if _UNIT.match(value)
        else "must be a SenML unit such as W or Cel, got %s" % show(value)
    )


BROKER_SCHEMES = ("mqtt", "tcp", "mqtts", "ssl")


def parse_broker(url: "str") -> "tuple[str, int, bool]":
    """(host, port, tls) of a broker address: ``mqtt://host:port`` (1883 by default),
    ``mqtts://host:port`` (TLS, 8883), ``tcp://`` and ``ssl://`` the same, or ``host:port``;
    ValueError saying what is wrong. The one reading of `uplink.broker`: the schema checks
    with it, the gateway's uplink connects with it."""
    from urllib.parse import urlsplit

    text = url if "://" in url else "mqtt://" + url
    wrong = (
        'must be a broker address such as "mqtt://hub.example.org:1883" or '
        '"mqtts://hub.example.org:8883", got %s' % show(url)
    )
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as e:
        if "out of range" in str(e):
            raise ValueError("port must be 1..65535, got %s" % text.rpartition(":")[2]) from e
        raise ValueError(wrong) from e
    if (
        parts.scheme not in BROKER_SCHEMES
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
        or any(c.isspace() for c in url)
    ):
        raise ValueError(wrong)
    tls = parts.scheme in ("mqtts", "ssl")
    if port is None:
        port = 8883 if tls else 1883
    if not 0 < port < 65536:
        raise ValueError("port must be 1..65535, got %d" % port)
    return parts.hostname, port, tls


def _check_broker(value: "str") -> "str | None":
    try:
        parse_broker(value)
    except ValueError as e:
        return str(e)
    return None


def is_tls(broker: "str") -> "bool":
    return broker.startswith(("mqtts://", "ssl://"))


def _check_mac(value: "str") -> "str | None":
    try:
        bthome.parse_mac(value)
    except LocalProtocolError:
        return "not a Bluetooth address: %r" % value
    return None


def _check_bind_key(value: "str") -> "str | None":
    try:
        bthome.parse_key(value)
    except LocalProtocolError as e:
        return str(e)
    return None


def ble_backend(
    backend: "str", adapter: "str | None", transport: "str | None"
) -> "tuple[str, str | None]":
    """(kind, target) of a `[ble]` table: ``bluez`` and its adapter (hciN), or ``bumble``
    and its HCI transport; ValueError("field: message") otherwise.

    Either ``backend = "bluez"`` / ``"bumble:<transport>"`` alone, or the split form
    ``backend = "bluez"`` (or ``"bleak"``) with ``adapter = "hci0"``, or ``backend =
    "bumble"`` with ``transport = "<bumble transport spec>"``."""
    if backend == "bumble":
        if not transport:
            raise ValueError('transport: required with backend = "bumble"')
        return "bumble", transport
    kind, _, target = backend.strip().partition(":")
    if kind in ("bluez", "bleak"):  # "bleak": bleak's own platform backend, BlueZ on Linux
        if not target and adapter is not None:
            target = adapter
            field = "adapter"
        else:
            field = "backend"
        if target and not (target.startswith("hci") and target[3:].isdigit()):
            raise ValueError("%s: BlueZ adapter must be hciN, not %r" % (field, target))
        return "bluez", target or None
    if kind == "bumble":
        if not target:
            raise ValueError(
                "backend: bumble needs a transport, e.g. bumble:tcp-client:127.0.0.1:7001"
            )
        return "bumble", target
    raise ValueError("backend: must be 'bluez' or 'bumble:<transport>', not %r" % backend)


# -- rules: what reads several fields ----------------------------------------------------


def _ok(*values: "object") -> "bool":
    return all(v is not INVALID for v in values)


def _uplink_rule(walk: "Walk", path: "str", t: "dict[str, object]") -> None:
    broker, ca_file = t["broker"], t["ca_file"]
    if (
        walk.mode == GATEWAY
        and _ok(broker, ca_file)
        and ca_file is not None
        and isinstance(broker, str)
        and broker
        and not is_tls(broker)
    ):
        walk.error(path + ".ca_file", "only for a TLS broker (mqtts://host:port)")


def _daemon_rule(walk: "Walk", path: "str", t: "dict[str, object]") -> None:
    lo, hi = t["restart_min"], t["restart_max"]
    if _ok(lo, hi) and hi < lo:  # type: ignore[operator]
        walk.error(path + ".restart_max", "must be at least restart_min (%g s)" % lo)  # type: ignore[str-format]


def _ble_rule(walk: "Walk", path: "str", t: "dict[str, object]") -> None:
    backend, adapter, transport = t["backend"], t["adapter"], t["transport"]
    if _ok(backend, adapter, transport):
        try:
            ble_backend(backend, adapter, transport)  # type: ignore[arg-type]
        except ValueError as e:
            field, _, message = str(e).partition(": ")
            walk.error(path + "." + field, message)
    devices = t["devices"]
    if not isinstance(devices, list):
        return
    seen = {}  # type: dict[str, str]
    for index, device in enumerate(devices):
        if not isinstance(device, dict) or not isinstance(device.get("address"), str):
            continue
        where = "%s.devices[%d]" % (path, index)
        address = bthome.format_mac(bthome.parse_mac(device["address"]))
        if address in seen:
            walk.error(where + ".address", "%s is also %s" % (address, seen[address]))
        else:
            seen[address] = where


def _ble_device_rule(walk: "Walk", path: "str", t: "dict[str, object]") -> None:
    kind = t["kind"]
    if not _ok(kind):
        return
    if t["bind_key"] not in (None, INVALID) and kind != "bthome":
        walk.error(path + ".bind_key", "only BTHome devices take a bind key")
    if t["poll_interval"] not in (None, INVALID) and kind != "miflora":
        walk.error(path + ".poll_interval", "only Mi Flora devices are polled")


def _location_rule(walk: "Walk", path: "str", t: "dict[str, object]") -> None:
    lat, lon = t["lat"], t["lon"]
    if _ok(lat, lon) and (lat is None) != (lon is None):
        walk.error(path, "give both lat and lon, or neither")


_MODE_KEYS = {"change": ("deadband", "heartbeat"), "aggregate": ("window", "aggregates")}


def _report_rule(walk: "Walk", path: "str", t: "dict[str, object]") -> None:
    mode = t["mode"]
    if not _ok(mode):
        return
    allowed = _MODE_KEYS.get(mode, ())  # type: ignore[call-overload]
    given = t.pop("_given")
    for key in ("deadband", "heartbeat", "window", "aggregates"):
        if key in given and key not in allowed:  # type: ignore[operator]
            walk.error(path + "." + key, "does not apply to mode = %s" % show(mode))
    names = t["aggregates"]
    if mode == "aggregate" and "aggregates" in given and isinstance(names, list):  # type: ignore[operator]
        bad = [n for n in names if n not in AGGREGATES]
        if bad:
            walk.error(
                path + ".aggregates",
                "must be among %s; got %s" % (", ".join(AGGREGATES), ", ".join(map(show, bad))),
            )
        elif not names:
            walk.error(path + ".aggregates", "must name at least one aggregate")
        else:
            t["aggregates"] = list(dict.fromkeys(names))


class _Report(Table):
    """The report table remembers which keys were given (a key of another mode is wrong)."""

    def read(self, walk: "Walk", path: "str", value: "object", partial: "bool") -> "object":
        out = Table.read(self, walk, path, value, partial)
        if isinstance(out, dict) and isinstance(value, dict) and not partial:
            out["_given"] = [k for k, v in value.items() if v is not None]
            _report_rule(walk, path, out)
        return out


def _sensor_rule(walk: "Walk", path: "str", t: "dict[str, object]") -> None:
    rename, ignore = t["rename"], t["ignore"]
    if not (isinstance(rename, dict) and isinstance(ignore, list)):
        return
    for name in rename:
        if name in ignore:
            walk.error(path + ".rename." + name, "is also in `ignore`")
    targets = list(rename.values())
    for target in sorted(set(targets)):
        if targets.count(target) > 1:
            walk.error(path + ".rename", "two quantities renamed to %s" % show(target))


def _root_rule(walk: "Walk", path: "str", doc: "dict[str, object]") -> None:
    """Across sections: a port configured twice, a sensor id read by two devices, a
    `[sensors.ID]` table that no device reads."""
    _serial.check_path_unique(walk, "serial", doc["serial"])
    where = {}  # type: dict[str, str]
    for p, port in enumerate(doc["serial"] if isinstance(doc["serial"], list) else []):
        if isinstance(port, dict) and isinstance(port.get("devices"), list):
            for d, device in enumerate(port["devices"]):
                _claim(walk, where, device, "serial[%d].devices[%d]" % (p, d))
    ble = doc["ble"]
    if isinstance(ble, dict) and isinstance(ble.get("devices"), list):
        for d, device in enumerate(ble["devices"]):
            _claim(walk, where, device, "ble.devices[%d]" % d)
    sensors = doc["sensors"]
    if isinstance(sensors, dict):
        for sensor_id in sensors:
            if (
                isinstance(sensor_id, str)
                and check_id(sensor_id) is None
                and sensor_id not in where
            ):
                walk.error(
                    "sensors." + sensor_id,
                    "no [[serial.devices]] or [[ble.devices]] reads this sensor id",
                )


def _claim(walk: "Walk", where: "dict[str, str]", device: "object", path: "str") -> None:
    if not isinstance(device, dict):
        return
    sensor = device.get("sensor")
    if not isinstance(sensor, str):
        return
    if sensor in where:
        walk.error(path + ".sensor", "%s is also %s" % (show(sensor), where[sensor]))
    else:
        where[sensor] = path


# -- the tables --------------------------------------------------------------------------

GATEWAY_TABLE = Table(
    (
        Field(
            "id",
            Text(check=check_id, pattern=ID_PATTERN, max_len=64),
            required=GATEWAY,
            local=_ENROLLMENT,
            restart=True,
            doc="the gateway id: 1 to 64 letters, digits, `.`, `_`, `-` (the hub's name for it; "
            "MQTT topics use it)",
        ),
        Field(
            "data_dir",
            Text(empty=False),
            DEFAULT_DATA_DIR,
            local=_LOCAL_FS,
            restart=True,
            doc="the buffer (`buffer/`), the uplink session counter and the status socket "
            "(`status.sock`) live here",
        ),
        Field(
            "log_level",
            Text(LOG_LEVELS),
            "info",
            restart=True,
            doc="`debug`, `info`, `warning`, `error`",
        ),
    ),
    title="[gateway]",
)

BUFFER_TABLE = Table(
    (
        Field(
            "quota",
            Size(lo=MIB),
            256 * MIB,
            unit="bytes",
            restart=True,
            doc="disk the buffer may use",
        ),
        Field(
            "policy",
            Text(POLICIES),
            "drop_oldest",
            restart=True,
            doc="when full: `drop_oldest` (every dropped reading is counted per sensor and "
            "reported) or `refuse_new`",
        ),
        Field(
            "commit_interval",
            Duration(0.01, 60.0),
            10.0,
            unit="s",
            restart=True,
            doc="seconds between group commits, the **loss window**: a power cut loses at most "
            "the readings of the last interval (alarms are committed at once). One flash page "
            "per commit, so the longer, the less wear: at 1 reading/s, 10 s is ~450 bytes of "
            "flash writes per reading, 1 s was ~15 KB (`estran bench edge`, "
            "docs/benchmarks.md). Live readings reach the hub after their commit",
        ),
        Field(
            "commit_readings",
            Integer(1, MAX_READINGS),
            2000,
            unit="readings",
            restart=True,
            doc="commit early once this many readings are pending (at most a block's %d)"
            % MAX_READINGS,
        ),
        Field(
            "max_age",
            Duration(lo=60.0),
            None,
            unit="s",
            restart=True,
            doc='drop readings older than this even below the quota (e.g. `"30d"`)',
            default_doc="none",
        ),
        Field(
            "segment_size",
            Size(lo=64 << 10),
            4 * MIB,
            unit="bytes",
            restart=True,
            doc="size of one segment file (capped at a quarter of the quota, so that dropping "
            "the oldest frees room in steps)",
        ),
    ),
    title="[buffer]",
)

UPLINK_TABLE = Table(
    (
        Field(
            "broker",
            Text(check=_check_broker),
            required=True,
            local=_ENROLLMENT,
            doc="`mqtt://host:port` of the hub's broker (port 1883 by default), or "
            "`mqtts://host:port` for MQTT over TLS (port 8883 by default): the hub's "
            "certificate and host name are verified, there is no insecure mode",
        ),
        Field(
            "credentials_file",
            Text(empty=False),
            None,
            local=_ENROLLMENT,
            doc="a file holding `username:password` on one line, mode 0600, written by enrollment",
            default_doc="none",
        ),
        Field(
            "ca_file",
            Text(empty=False),
            None,
            local=_LOCAL_FS,
            doc="`mqtts://` only: the CA certificate (PEM) that signed the broker's "
            "certificate. Default: the hub's CA that `estran edge enroll --ca` kept as "
            "`DATA/hub-ca.crt`, else the system's CAs. A refused handshake is logged, counted "
            "(`tls_errors` and `last_error` in `estran edge status`) and retried; `estran edge "
            "doctor` does the same handshake",
            default_doc="the enrolled CA",
        ),
        Field(
            "protocol",
            Text(MQTT_PROTOCOLS),
            "auto",
            doc="`auto` (MQTT 5, else 3.1.1), `5`, `3.1.1`",
        ),
        Field(
            "backlog_rate",
            Number(lo=0.0),
            2000.0,
            unit="readings/s",
            doc="readings per second when draining a backlog (live readings are never held "
            "back); 0: no limit",
        ),
        Field(
            "backlog_burst",
            Integer(lo=1),
            8192,
            unit="readings",
            doc="token bucket burst of the backlog",
        ),
        Field(
            "state_interval",
            Duration(lo=1.0),
            60.0,
            unit="s",
            doc="seconds between state messages (online, backlog, footprint, source health); "
            "a source going up or down sends one at once",
        ),
        Field("keepalive", Integer(5, 3600), 30, unit="s", doc="MQTT keepalive, seconds"),
        Field("compress", Integer(0, 9), 6, doc="zlib level of data batches, 0 to 9"),
    ),
    (_uplink_rule,),
    title="[uplink]",
    doc="absent: readings are kept in the buffer, nothing is sent",
)

DAEMON_TABLE = Table(
    (
        Field(
            "queue_size",
            Integer(16, 1_000_000),
            2048,
            unit="readings",
            restart=True,
            doc="readings between the sources and the buffer writer; a full queue makes "
            "sources wait (back-pressure)",
        ),
        Field(
            "put_timeout",
            Duration(lo=0.01),
            10.0,
            unit="s",
            doc="a source waits this long on a full queue before the reading is dropped "
            "(counted `queue_full`)",
        ),
        Field(
            "restart_min",
            Duration(lo=0.01),
            1.0,
            unit="s",
            doc="a source that crashes is restarted after this backoff (doubling) ...",
        ),
        Field("restart_max", Duration(lo=0.01), 60.0, unit="s", doc="... up to this"),
        Field(
            "stop_timeout",
            Duration(lo=0.1),
            10.0,
            unit="s",
            doc="a clean stop waits this long for the sources",
        ),
    ),
    (_daemon_rule,),
    title="[daemon]",
    doc="tuning, rarely changed",
)

APPLY_TABLE = Table(
    (
        Field(
            "health_timeout",
            Duration(1.0, 600.0),
            30.0,
            unit="s",
            doc="the health gate's time limit: a configuration whose sources are not all up "
            "within it is rolled back",
        ),
    ),
    title="[apply]",
    doc="the hub's document only: how the gateway applies it (docs/fleet.md)",
    hub_only=True,
)

_SECONDS = "s"

BLE_DEVICE_TABLE = Table(
    (
        Field(
            "address",
            Text(check=_check_mac, max_len=64),
            required=True,
            doc="the device's Bluetooth address, any usual spelling",
        ),
        Field("kind", Text(("bthome", "miflora")), required=True, doc="`bthome` or `miflora`"),
        Field(
            "sensor",
            Text(check=check_id, pattern=ID_PATTERN, max_len=64),
            required=True,
            doc="the sensor id its readings carry",
        ),
        Field(
            "bind_key",
            Text(check=_check_bind_key, max_len=64),
            None,
            doc="32 hex digits, encrypted BTHome: a device with a key must encrypt, plaintext "
            "is refused",
            default_doc="none",
        ),
        Field(
            "poll_interval",
            Number(positive=True),
            None,
            unit=_SECONDS,
            doc="Mi Flora GATT polls, seconds",
            default_doc="advertisements only",
        ),
        Field(
            "quantities",
            Mapping_(Text(), "a table of measurement = name"),
            None,
            doc="measurement = name: only the listed ones are kept, renamed",
            default_doc="every measurement",
        ),
    ),
    (_ble_device_rule,),
    title="[[ble.devices]]",
)

BLE_TABLE = Table(
    (
        Field(
            "backend",
            Text(),
            "bluez",
            doc="`bluez` (bleak on BlueZ, the gateway's adapter; `bleak` means the same) or "
            "`bumble` (bleak over a bumble host stack on an HCI transport). The one-string "
            'forms `"bluez:hci1"` and `"bumble:usb:0"` also work',
        ),
        Field("adapter", Text(), None, doc="bluez: the BlueZ adapter", default_doc="`hci0`"),
        Field(
            "transport",
            Text(),
            None,
            doc='bumble: the HCI transport, e.g. `"usb:0"`, `"serial:/dev/ttyACM0,1000000"`, '
            '`"tcp-client:127.0.0.1:9000"`',
            default_doc="—",
        ),
        Field("passive", Boolean(), True, doc="passive scanning where the platform allows it"),
        Field(
            "absent_after",
            Duration(),
            300.0,
            unit=_SECONDS,
            doc="a device unheard this long is reported absent",
        ),
        Field(
            "connect_timeout",
            Duration(),
            10.0,
            unit=_SECONDS,
            doc="one GATT connection attempt (Mi Flora polls)",
        ),
        Field(
            "poll_timeout",
            Duration(),
            20.0,
            unit=_SECONDS,
            doc="one whole GATT poll: connect, write, reads, disconnect",
        ),
        Field("poll_attempts", Integer(1, 20), 3, doc="connection attempts per poll"),
        Field(
            "retry_delay",
            Duration(),
            2.0,
            unit=_SECONDS,
            doc="before the 2nd attempt; doubles after each failure",
        ),
        Field(
            "adapter_backoff",
            Duration(),
            1.0,
            unit=_SECONDS,
            doc="first wait after the adapter is lost; doubles ...",
        ),
        Field("adapter_backoff_max", Duration(), 60.0, unit=_SECONDS, doc="... up to this"),
        Field(
            "queue_size",
            Integer(1, 100_000),
            256,
            unit="advertisements",
            doc="advertisements waiting to be decoded (beyond: dropped and counted)",
        ),
        Field(
            "devices",
            Array(BLE_DEVICE_TABLE, "ble.devices", max_items=1024),
            [],
            doc="the devices read (below)",
            default_doc="none",
        ),
    ),
    (_ble_rule,),
    title="[ble]",
)

_NUMBER_OR_NAME = Either(((int, Integer()), (str, Text(max_len=64))), "an integer or a string")

SERIAL_DEVICE_TABLE = Table(
    (
        Field(
            "sensor",
            Text(check=check_id, pattern=ID_PATTERN, max_len=64),
            required=True,
            doc="the sensor id its readings carry (stable, human-readable, unique in the file)",
        ),
        Field(
            "address",
            _NUMBER_OR_NAME,
            None,
            doc="Modbus 1..247; M-Bus primary 0..250 or secondary (16 hex digits); SDI-12 one "
            'character; NMEA an optional talker filter (`"II"`); wireless M-Bus the meter\'s '
            'id (`"12345678"`) or manufacturer and id (`"DME-12345678"`)',
            default_doc="none",
        ),
        Field(
            "interval",
            Number(lo=0.0),
            10.0,
            unit=_SECONDS,
            doc="seconds between polls (masters); for streams, at most one frame's readings "
            "per interval (0: every frame)",
        ),
        Field(
            "map",
            Either(
                ((str, Text(max_len=64)), (dict, Plain())), "a map name or a register map table"
            ),
            None,
            doc="Modbus register map: `sdm120`, `sdm630`, `soil`, `soil_es103`, `level`, "
            "`level_sen0310`, `fmr20`, `keller30`, or an inline table",
            default_doc="the level model's",
        ),
        Field(
            "register_map",
            Either(
                ((str, Text(max_len=64)), (dict, Plain())), "a map name or a register map table"
            ),
            None,
            doc="the same as `map`",
            default_doc="none",
        ),
        Field(
            "model",
            Text(max_len=64),
            None,
            doc="ultrasonic model (`lv`, `hrlv`, `a02yyuw`, ...); PMS: `pms5003` (default), "
            "`pms7003`, `pms5003t`, `pms5003st`; Modbus and SDI-12: a water level transmitter, "
            "`fmr20`, `keller30` (Modbus: its register map), `ott_pls`, `vegapuls_c21` "
            "(SDI-12: its value names)",
            default_doc="none",
        ),
        Field(
            "empty_mm",
            Number(),
            None,
            unit="mm",
            doc="ultrasonic: sensor to the empty bin's floor; with it a `fill` percentage is "
            "reported",
            default_doc="none",
        ),
        Field(
            "full_mm",
            Number(),
            None,
            unit="mm",
            doc="ultrasonic: sensor to the contents when full",
            default_doc="the model's blind zone",
        ),
        Field(
            "measurement",
            Text(max_len=8),
            "M",
            doc="SDI-12 measurement command (`M`, `MC`, `C`, `CC`, `M1`...)",
        ),
        Field(
            "names",
            Text(max_len=1024),
            None,
            doc='SDI-12 value names with units (`"moisture:%,temperature:Cel"`)',
            default_doc="the level model's",
        ),
        Field(
            "max_telegrams",
            Integer(),
            8,
            doc="M-Bus telegrams read per poll when the meter says more follow (1..32)",
        ),
        Field(
            "key",
            Text(check=_serial.check_key, max_len=64),
            None,
            doc="wireless M-Bus: the meter's AES-128 key (32 hex digits) when it encrypts (OMS "
            "modes 5 and 7). A secret: never logged, never in the status, in a probe snippet or "
            "an error; keep the file readable by the daemon's user only",
            default_doc="none",
        ),
        Field(
            "passive",
            Boolean(),
            False,
            doc="PMS: read the sensor every `interval` instead of listening to it",
        ),
        Field(
            "sleep",
            Boolean(),
            False,
            doc="PMS, passive only, `interval` at least 60 s: sleep between reads, woken 30 s "
            "before each",
        ),
        Field(
            "duty_cycle",
            Integer(),
            None,
            unit="min",
            doc="SDS011: the working period set when the port opens, in minutes: 0 continuous, "
            "1..30 the sensor works 30 s, sends its values, then sleeps (spares the laser; see "
            "docs/protocols/air-quality.md)",
            default_doc="left as it is",
        ),
        Field(
            "datum",
            Number(),
            None,
            unit="m",
            doc="water level (Modbus or SDI-12 level transmitters): the elevation (m above the "
            "waterway's reference datum) of the sensor's reference point; a `level` reading is "
            "added: `datum - distance` (a radar looking down), `datum + depth` (a submerged "
            "probe), `datum + pressure / (density x 9.80665)` (gauge pressure in Pa)",
            default_doc="none",
        ),
        Field(
            "level_from",
            Text(max_len=16),
            None,
            doc="`distance`, `depth` or `pressure`: must be a reading the device gives",
            default_doc="the model's",
        ),
        Field(
            "density",
            Number(),
            1000.0,
            unit="kg/m3",
            doc="of the water, for a pressure source (sea water: about 1025)",
        ),
    ),
    title="[[serial.devices]]",
)

SERIAL_PORT_TABLE = Table(
    (
        Field(
            "path",
            Text(empty=False),
            required=True,
            doc="`/dev/ttyUSB0`, or better a stable `/dev/serial/by-id/...` link",
        ),
        Field(
            "protocol",
            Text(_serial.PROTOCOLS),
            required=True,
            doc="the protocol spoken on the port",
        ),
        Field(
            "devices",
            Array(SERIAL_DEVICE_TABLE, "serial.devices", max_items=256),
            required=True,
            required_message="at least one device ([[serial.devices]])",
            doc="the devices on the port (below); TIC, ultrasonic, PMS, SDS011 and SPS30 ports "
            "carry exactly one",
        ),
        Field(
            "baud",
            Integer(lo=1),
            None,
            unit="bit/s",
            doc="TIC historique 1200, standard 9600; Modbus 9600; M-Bus 2400; SDI-12 1200; "
            "ultrasonic 9600; NMEA 4800; PMS and SDS011 9600; SPS30 115200; wireless M-Bus by "
            "dongle: iM871A 57600, AMB8465 9600, rtl-wmbus 115200",
            default_doc="the protocol's",
        ),
        Field("bytesize", Integer(7, 8), None, doc="7 or 8", default_doc="the protocol's"),
        Field(
            "parity",
            Text(_serial.PARITIES),
            None,
            doc="`N` none, `E` even, `O` odd",
            default_doc="the protocol's",
        ),
        Field("stopbits", Integer(1, 2), None, doc="1 or 2", default_doc="the protocol's"),
        Field(
            "mode",
            Text(_serial.TIC_MODES),
            None,
            doc="TIC: `historique` or `standard`",
            default_doc="from the speed",
        ),
        Field(
            "name",
            Text(max_len=256),
            None,
            doc="the source's name in the status",
            default_doc="`serial:PATH`",
        ),
        Field(
            "response_timeout",
            Duration(),
            1.0,
            unit=_SECONDS,
            doc="a master's wait for an answer (Modbus, M-Bus, SDI-12)",
        ),
        Field(
            "silence_timeout",
            Duration(),
            None,
            unit=_SECONDS,
            doc="a passive stream quiet this long counts a `silence` error",
            default_doc="TIC 10, ultrasonic and NMEA 5, wireless M-Bus 300, PMS and SDS011 10, "
            "else 30",
        ),
        Field(
            "reconnect_min",
            Duration(),
            1.0,
            unit=_SECONDS,
            doc="backoff when the port disappears (USB unplugged) ...",
        ),
        Field("reconnect_max", Duration(), 60.0, unit=_SECONDS, doc="... doubling up to this"),
        Field(
            "wake",
            Text(_serial.WAKE_METHODS),
            "auto",
            doc="SDI-12 break: `break`, `nul` (adapters without break support), `auto`",
        ),
        Field("echo", Boolean(), False, doc="the RS-485 adapter hears its own transmission"),
        Field(
            "dongle",
            Text(_serial.DONGLES),
            "im871a",
            doc="wireless M-Bus: the USB receiver",
        ),
        Field(
            "link_mode",
            Text(_serial.LINK_MODES),
            "t1c1",
            doc="wireless M-Bus: the radio mode the dongle is set to at start",
        ),
        Field("rssi", Boolean(), True, doc="wireless M-Bus: an AMB8465 appends an RSSI byte"),
    ),
    (_serial.port_rule,),
    title="[[serial]]",
)

LOCATION_TABLE = Table(
    (
        Field("name", Text(max_len=256), None, doc="a place name"),
        Field("lat", Number(-90.0, 90.0), None, unit="°", doc="latitude"),
        Field("lon", Number(-180.0, 180.0), None, unit="°", doc="longitude"),
    ),
    (_location_rule,),
)

REPORT_TABLE = _Report(
    (
        Field("mode", Text(REPORT_MODES), "every", doc="`every`, `change` or `aggregate`"),
        Field(
            "deadband",
            Either(
                (
                    ((int, float), Number(lo=0.0)),
                    (dict, Mapping_(Number(lo=0.0), "a table of numbers")),
                ),
                "a number or a table of numbers",
            ),
            None,
            doc='change: a number for every quantity or a table per quantity, `"*"` for the rest',
            default_doc="any change",
        ),
        Field(
            "heartbeat",
            Duration(lo=1.0),
            900.0,
            unit=_SECONDS,
            doc="change: report at least this often even when steady",
        ),
        Field(
            "window",
            Duration(1.0, 86400.0),
            60.0,
            unit=_SECONDS,
            doc="aggregate: window length, aligned on the clock",
        ),
        Field(
            "aggregates",
            StrList(Text(max_len=16), max_items=16),
            ["mean", "min", "max", "last"],
            doc="aggregate: among `mean`, `min`, `max`, `count`, `last`",
        ),
    ),
    title="report",
)

SENSOR_TABLE = Table(
    (
        Field(
            "dataset",
            Text(("open", "closed")),
            "closed",
            doc="a note for the admin (`open` or `closed`): the hub's catalogue decides what is "
            "published (`estran hub sensor set ID --dataset NAME`, docs/hub.md), never the "
            "gateway",
        ),
        Field(
            "location",
            Either(((str, Text(max_len=256)), (dict, LOCATION_TABLE)), "a string or a table"),
            None,
            doc='`"Marina, pontoon B"` or `{ name = "...", lat = 43.29, lon = 5.36 }`',
            default_doc="none",
        ),
        Field("description", Text(max_len=1024), None, doc="free text", default_doc="none"),
        Field(
            "rename",
            Mapping_(Text(check=_check_quantity, max_len=64)),
            {},
            doc='codec quantity → published name, e.g. `{ PAPP = "apparent_power" }`',
            default_doc="none",
        ),
        Field(
            "units",
            Mapping_(Text(check=_check_unit, max_len=16)),
            {},
            doc="published name → SenML unit, for quantities a codec cannot know the unit of",
            default_doc="the codec's",
        ),
        Field(
            "ignore",
            StrList(Text(max_len=64)),
            [],
            doc="codec quantities never published (e.g. TIC `ADCO`, the meter's address)",
            default_doc="none",
        ),
        Field(
            "report",
            REPORT_TABLE,
            DEFAULTS,
            doc="the report strategy (below)",
            default_doc='`{ mode = "every" }`',
        ),
    ),
    (_sensor_rule,),
    title="[sensors.ID]",
)

SCHEMA = Table(
    (
        Field(
            "gateway",
            GATEWAY_TABLE,
            DEFAULTS,
            required=GATEWAY,
            required_message="required: the [gateway] table with at least `id`",
        ),
        Field("buffer", BUFFER_TABLE, DEFAULTS),
        Field("uplink", UPLINK_TABLE, None),
        Field("serial", Array(SERIAL_PORT_TABLE, "serial", max_items=64), []),
        Field("ble", BLE_TABLE, None),
        Field("daemon", DAEMON_TABLE, DEFAULTS),
        Field(
            "sensors",
            Named(SENSOR_TABLE, Text(check=check_id, max_len=64)),
            {},
        ),
        Field("apply", APPLY_TABLE, DEFAULTS),
    ),
    (_root_rule,),
    title="the configuration",
)

# The tables of docs/configuration.md, in the page's order: (name, table).
SECTIONS = (
    ("gateway", GATEWAY_TABLE),
    ("buffer", BUFFER_TABLE),
    ("uplink", UPLINK_TABLE),
    ("serial", SERIAL_PORT_TABLE),
    ("serial.devices", SERIAL_DEVICE_TABLE),
    ("ble", BLE_TABLE),
    ("ble.devices", BLE_DEVICE_TABLE),
    ("sensors", SENSOR_TABLE),
    ("sensors.report", REPORT_TABLE),
    ("daemon", DAEMON_TABLE),
    ("apply", APPLY_TABLE),
)

__all__ = [
    "AGGREGATES",
    "DEFAULT_DATA_DIR",
    "SCHEMA",
    "SECTIONS",
    "ble_backend",
    "check_id",
    "is_tls",
    "parse_broker",
]

"""The hub and the gateway agree on what a configuration is (issue 10): every document the hub
accepts, the gateway accepts, and every one the hub refuses, the gateway refuses too; and a
configuration the hub merges from its layers and signs is one the gateway verifies and loads.

Documents are generated from the schema's own declaration (every field, valid values near
the limits and wrong ones of every kind, unknown keys, sources of every protocol, sensor
tables for ids that some device reads or none), so a setting added to the schema is covered
without touching this file. The two sides are the public entry points: the hub's
`fleet.check_config` and `Fleet.set_layer`, the gateway's `edge.config.parse_config` of its
own file with the hub's document laid over it (what `edge.config_apply` does).

Lives in estran/tests: it imports both fleet and edge, which import-linter keeps apart.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import fleet
from edge.config import ConfigError, parse_config
from edge.config_apply._verify import verify_signed
from protocols import modbus, settings, signed, wire
from protocols.settings._types import (
    Array,
    Boolean,
    Duration,
    Either,
    Integer,
    Mapping_,
    Named,
    Number,
    Plain,
    Size,
    StrList,
    Table,
    Text,
    Type,
)

# The technician's file holds the gateway's own settings only (see docs/configuration.md).
LOCAL = {
    "gateway": {"id": "gw-1", "data_dir": "/var/lib/estran"},
    "uplink": {"broker": "mqtt://hub.example:1883"},
}
SENSORS = ["soil-1", "soil-2", "linky", "berth-a1", "bad id", ""]
WORDS = [
    "", "x", "1", "01", "a", "II", "GP", "?", "M", "MC", "C1", "M9", "Z",
    "12345678", "DME-12345678", "1234567F", "12345678FFFFFFFF", "AB", "zz",
    "A4:C1:38:00:00:01", "a4c138000002", "hci0", "hci1", "usb:0", "bluez", "bluez:hci1",
    "bleak", "bumble", "bumble:usb:0", "zigbee", "sdm630", "sdm120", "soil", "fmr20",
    "keller30", "ott_pls", "vegapuls_c21", "a02yyuw", "lv", "pms5003", "distance", "depth",
    "pressure", "moisture:%,temperature:Cel", "moisture", "power", "W", "Cel", "with space",
    "30s", "5min", "1h", "0", "-1", "256 MiB", "1 GB", "lots",
    "00112233445566778899aabbccddeeff", "0011", "/dev/ttyUSB0", "/dev/ttyUSB1",
    "mqtt://hub:1883", "*",
]  # fmt: skip
JUNK = st.sampled_from([None, "x", -1, 0, 1.5, True, [], {}, ["x"], {"x": 1}])


def _rare_junk(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, strategy, strategy, strategy, JUNK)


def _numbers(lo: float | None, hi: float | None) -> st.SearchStrategy[Any]:
    points = [0, 1, 2, 5, 10, 30, 600, 3600, 65536, 65537, 1_000_001]
    for bound in (lo, hi):
        if bound is not None:
            points += [bound, bound - 1, bound + 1, bound - 0.005, bound + 0.005]
    return st.sampled_from(points) | st.floats(-1e6, 1e7, allow_nan=False) | st.integers(-9, 9)


def values(t: Type, *, nulls: bool) -> st.SearchStrategy[Any]:
    """Values for a field of type `t`: mostly plausible, some wrong."""
    if isinstance(t, Integer):
        return _rare_junk(_numbers(t.lo, t.hi).map(lambda v: int(v)))
    if isinstance(t, Number):
        return _rare_junk(_numbers(t.lo, t.hi))
    if isinstance(t, Duration):
        return _rare_junk(
            _numbers(t.lo, t.hi) | st.sampled_from(["500ms", "30s", "5min", "1h", "7d", "soon"])
        )
    if isinstance(t, Size):
        return _rare_junk(
            st.sampled_from([t.lo - 1, t.lo, 1 << 30, "64 KiB", "1 MiB", "2 GiB", "lots"])
        )
    if isinstance(t, Text):
        return _rare_junk(st.sampled_from(list(t.choices or ()) + WORDS))
    if isinstance(t, Boolean):
        return _rare_junk(st.booleans())
    if isinstance(t, Either):
        return st.one_of([values(sub, nulls=nulls) for _, sub in t.types])
    if isinstance(t, StrList):
        return _rare_junk(
            st.lists(
                st.sampled_from(["mean", "min", "max", "median", "ph", "ADCO", "x"]), max_size=3
            )
        )
    if isinstance(t, Mapping_):
        return _rare_junk(
            st.dictionaries(
                st.sampled_from(["moisture", "ph", "PAPP", "*", "temperature"]),
                values(t.value, nulls=False),
                max_size=3,
            )
        )
    if isinstance(t, Plain):  # an inline Modbus register map
        sdm = modbus.get_map("soil")
        good = {"registers": [{"name": r.name, "address": r.address} for r in sdm.registers[:1]]}
        return st.sampled_from([good, {"registers": []}, {"x": 1}])
    if isinstance(t, Array):
        return _rare_junk(st.lists(values(t.table, nulls=nulls), max_size=3))
    if isinstance(t, Named):
        return _rare_junk(
            st.dictionaries(st.sampled_from(SENSORS), values(t.table, nulls=nulls), max_size=2)
        )
    if isinstance(t, Table):
        fields = {
            f.name: values(f.type, nulls=nulls)
            for f in t.fields
            if not f.local and not (isinstance(f.type, Table) and f.type.hub_only)
        }
        if nulls:  # a layer deletes what a layer above set
            fields = {k: st.none() | v for k, v in fields.items()}
        extra = st.fixed_dictionaries({}, optional={"colour": st.just("red")})
        return st.tuples(st.fixed_dictionaries({}, optional=fields), extra).map(
            lambda pair: {**pair[0], **pair[1]} if len(pair[0]) % 7 == 6 else pair[0]
        )
    raise AssertionError(f"no strategy for {t!r}")


TEMPLATES: dict[str, list[dict[str, Any]]] = {
    "tic": [{}],
    "modbus": [{"address": 1, "map": "soil"}, {"address": 247, "model": "fmr20", "datum": 3.5}],
    "mbus": [{"address": 0}, {"address": "12345678"}],
    "sdi12": [{"address": "0", "names": "moisture:%,temperature:Cel"},
              {"address": "1", "model": "ott_pls", "datum": 1.0}],
    "ultrasonic": [{"model": "a02yyuw", "empty_mm": 1100}],
    "nmea": [{"address": "II"}],
    "wmbus": [{"address": "DME-12345678", "key": "00112233445566778899aabbccddeeff"}],
    "pms": [{"passive": True, "sleep": True, "interval": 60}],
    "sds011": [{"duty_cycle": 5}],
    "sps30": [{"interval": 1}],
}  # fmt: skip


@st.composite
def _port(draw: st.DrawFn, index: int) -> dict[str, Any]:
    """A plausible `[[serial]]` table (valid as drawn), then maybe one field changed."""
    protocol = draw(st.sampled_from(sorted(TEMPLATES)))
    count = 1 if protocol in settings.serial.SINGLE_DEVICE else draw(st.integers(1, 2))
    devices = []
    for n in range(count):
        device = dict(draw(st.sampled_from(TEMPLATES[protocol])))
        address = device.get("address")
        if n and isinstance(address, int):
            device["address"] = address + n
        elif n and isinstance(address, str) and address[-1:].isdigit():
            device["address"] = address[:-1] + str((int(address[-1], 16) + n) % 10)
        device["sensor"] = f"{protocol}-{index}-{n}"
        devices.append(device)
    port: dict[str, Any] = {"path": f"/dev/ttyS{index}", "protocol": protocol, "devices": devices}
    port_table = settings.SCHEMA.field("serial").type.table  # type: ignore[attr-defined]
    device_table = port_table.field("devices").type.table
    if draw(st.integers(0, 2)) == 0:
        field = draw(st.sampled_from(device_table.fields))
        devices[0][field.name] = draw(values(field.type, nulls=False))
    if draw(st.integers(0, 3)) == 0:
        field = draw(st.sampled_from(port_table.fields))
        port[field.name] = draw(values(field.type, nulls=False))
    return port


@st.composite
def _sourced(draw: st.DrawFn, nulls: bool) -> dict[str, Any]:
    """A document from the schema, whose sources are often plausible ports and whose sensor
    tables often name the sensor ids they read."""
    document = draw(values(settings.SCHEMA, nulls=nulls))
    if not isinstance(document, dict) or draw(st.integers(0, 3)) == 0:
        return document  # type: ignore[no-any-return]
    if draw(st.booleans()):
        document = {}  # the sources alone: most documents above are refused somewhere
    ports = [draw(_port(i)) for i in range(draw(st.integers(1, 3)))]
    document["serial"] = ports
    ids = [
        d.get("sensor")
        for p in ports
        if isinstance(p.get("devices"), list)
        for d in p["devices"]
        if isinstance(d, dict)
    ]
    sensor_table = settings.SCHEMA.field("sensors").type.table  # type: ignore[attr-defined]
    sensors = {}
    for sensor in draw(st.lists(st.sampled_from([*ids, "nobody"]), max_size=2)):
        if isinstance(sensor, str):
            sensors[sensor] = draw(values(sensor_table, nulls=False))
    if sensors:
        document["sensors"] = sensors
    return document


def documents(*, nulls: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    """Configuration documents (`nulls`: layers, whose nulls delete what is above)."""
    return _sourced(nulls).filter(lambda d: isinstance(d, dict))


def hub_accepts(document: dict[str, Any]) -> bool:
    return not fleet.check_config(document)


def gateway_accepts(document: dict[str, Any]) -> bool:
    """What the gateway's config_apply does: the hub's document over the technician's file,
    then the daemon's loader."""
    try:
        parse_config(settings.merge(LOCAL, settings.for_gateway(document)), "hub configuration")
    except ConfigError:
        return False
    return True


def test_the_hub_and_the_gateway_accept_the_same_documents() -> None:
    answers: set[bool] = set()

    @hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(documents())
    def agree(document: dict[str, Any]) -> None:
        hub, gateway = hub_accepts(document), gateway_accepts(document)
        answers.add(hub)
        assert hub == gateway, (
            f"hub {'accepts' if hub else 'refuses'}, gateway "
            f"{'accepts' if gateway else 'refuses'}: {document}\n"
            f"hub: {[str(i) for i in fleet.check_config(document)]}"
        )

    agree()
    assert answers == {True, False}  # the property is worth something only if both come up


@pytest.mark.parametrize(
    "document",
    [
        {"serial": [{"path": "/dev/ttyUSB0", "protocol": "tic"}]},  # no devices
        {"daemon": {"put_timeout": 0}},
        {"buffer": {"max_age": "10s"}},
        {"buffer": {"commit_readings": 100_000}},  # above a block: the buffer refused it
        {"sensors": {"soil-1": {"dataset": "open"}}},  # no device reads it
        {
            "serial": [
                {
                    "path": "/dev/ttyUSB0",
                    "protocol": "modbus",
                    "devices": [{"sensor": "soil-1", "address": 300, "map": "soil"}],
                }
            ]
        },
    ],
)
def test_what_the_hub_signed_before_and_the_gateway_refused(document: dict[str, Any]) -> None:
    """Each of these passed the hub's former schema and failed on the gateway."""
    assert not hub_accepts(document) and not gateway_accepts(document)


def test_what_belongs_to_the_gateway_is_refused_by_the_hub_and_ignored_by_the_gateway() -> None:
    for section, key in (("gateway", "id"), ("gateway", "data_dir"), ("uplink", "broker"),
                         ("uplink", "credentials_file"), ("uplink", "ca_file")):  # fmt: skip
        document = {section: {key: "/elsewhere"}}
        issues = [str(i) for i in fleet.check_config(document)]
        assert issues == [
            f"{section}.{key}: cannot be set by the hub: " + issues[0].split(": ", 2)[2]
        ]
        assert gateway_accepts(document)
    assert "apply.health_timeout" in str(fleet.check_config({"apply": {"health_timeout": 0.5}}))


# -- the merge: layers merged and signed by a real hub ---------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[fleet.Fleet, str]:
    f = fleet.Fleet(tmp_path_factory.mktemp("fleet"))
    f.create_group("marina", "alice")
    token = f.create_token("marina", 3600, "alice").token
    key = Ed25519PrivateKey.generate()
    pub = fleet.raw_public(key)
    nonce = f.challenge(token)
    proof = key.sign(
        signed.signing_input(
            signed.CONTEXT_ENROLL,
            fleet.enroll_proof_payload(fleet.parse_token(token)[0], nonce, pub),
        )
    )
    gateway = f.enroll(token, pub, nonce, proof, "mqtt://hub:1883").gateway_id
    return f, gateway


@hsettings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(documents(nulls=True), min_size=3, max_size=3))
def test_a_configuration_the_hub_signs_is_one_the_gateway_applies(
    registry: tuple[fleet.Fleet, str], layers: list[dict[str, Any]]
) -> None:
    f, gateway = registry
    for (scope, name), layer in zip(
        (("fleet", None), ("group", "marina"), ("gateway", gateway)), layers, strict=True
    ):
        with contextlib.suppress(fleet.ConfigRejected):  # a refused layer: the one before stays
            f.set_layer(scope, name, layer, "alice")  # type: ignore[arg-type]
    env = wire.decode_envelope(f.desired_message(gateway), wire.CONFIG)
    message, _ = verify_signed(env.body, signed.CONTEXT_CONFIG, f.keys.public_keys())
    document = message["config"]
    assert isinstance(document, dict) and document == f.desired(gateway)[1]
    assert gateway_accepts(document), (document, [str(i) for i in fleet.check_config(document)])
    assert _no_nulls(document)


def _no_nulls(value: object) -> bool:
    if isinstance(value, dict):
        return all(v is not None and _no_nulls(v) for v in value.values())
    if isinstance(value, list):
        return all(_no_nulls(v) for v in value)
    return True


def test_the_merge_drops_nulls_at_every_depth() -> None:
    """The gateway's former overlay kept the nulls of a table that was new (inside a list
    too), the hub's merge did not: one merge now, used by both."""
    base = {"buffer": {"quota": "1 GiB"}}
    layer = {
        "buffer": {"quota": None},
        "daemon": {"queue_size": None, "put_timeout": 5},
        "serial": [{"path": "/dev/x", "name": None, "devices": [{"sensor": "a", "address": None}]}],
    }
    merged = settings.merge(base, layer)
    assert merged == {
        "buffer": {},
        "daemon": {"put_timeout": 5},
        "serial": [{"path": "/dev/x", "devices": [{"sensor": "a"}]}],
    }
    assert fleet.merge(base, layer) == merged

"""Mi Flora codec (CPython): MiBeacon objects, GATT reads, builders, fuzz, CLI."""

import contextlib
import json

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from estran.cli import cli
from protocols import miflora
from protocols.errors import (
    MALFORMED,
    OVERFLOW,
    TRUNCATED,
    UNSUPPORTED,
    LocalProtocolError,
    RemoteProtocolError,
)
from protocols.reading import Measurement
from protocols.tests import support

MAC = "C4:7C:8D:6A:3E:7A"
ADVERT = "71209800697a3e6a8d7cc40d041002f400"  # temperature 24.4 (xiaomi-ble test)


def _values(data: bytes) -> list[tuple[str, object, str | None]]:
    return [(m.name, m.value, m.unit) for m in miflora.decode_mibeacon(data).measurements]


@pytest.mark.parametrize(
    ("otype", "value_hex", "expected"),
    [
        (0x1004, "c400", [("temperature", 19.6, "Cel")]),
        (0x1004, "9cff", [("temperature", -10.0, "Cel")]),
        (0x1006, "f401", [("humidity", 50.0, "%RH")]),
        (0x1007, "f72600", [("illuminance", 9975, "lx")]),
        (0x1007, "ffffff", [("illuminance", 16777215, "lx")]),
        (0x1008, "28", [("moisture", 40, "%")]),
        (0x1009, "5702", [("conductivity", 0.0599, "S/m")]),  # 599 µS/cm
        (0x100A, "64", [("battery", 100, "%")]),
        (0x100D, "e500f401", [("temperature", 22.9, "Cel"), ("humidity", 50.0, "%RH")]),
    ],
)
def test_mibeacon_objects(
    otype: int, value_hex: str, expected: list[tuple[str, object, str]]
) -> None:
    body = bytes.fromhex(value_hex)
    data = bytes.fromhex("712098006a7a3e6a8d7cc40d") + otype.to_bytes(2, "little")
    data += bytes([len(body)]) + body
    assert _values(data) == expected
    for (_n, value, _u), m in zip(
        expected, miflora.decode_mibeacon(data).measurements, strict=True
    ):
        assert repr(m.value) == repr(value)  # no float noise


def test_several_objects_unknown_ones_skipped_and_listed() -> None:
    data = miflora.encode_mibeacon([(0x1008, 40), (0x100A, 98)], MAC, 3)
    data += bytes.fromhex("10100203ff")  # 0x1010 (formaldehyde) is not decoded: skipped
    beacon = miflora.decode_mibeacon(data)
    assert [m.name for m in beacon.measurements] == ["moisture", "battery"]
    assert beacon.unknown_objects == [0x1010]
    assert beacon.fields()["unknown_objects"] == ["0x1010"]


def test_flower_pot_two_byte_battery() -> None:
    # home-assistant/core tests/components/xiaomi_ble: Smart Flower Pot (HHCCPOT002,
    # product 0x015d) battery object 0x100a with length 2: 64 00 = 100 %
    data = bytes.fromhex("71205d01697a3e6a8d7cc40d0a10026400")
    assert _values(data) == [("battery", 100, "%")]
    assert miflora.decode_mibeacon(bytes.fromhex("712098006a7a3e6a8d7cc40d08100240ff"))
    with pytest.raises(RemoteProtocolError) as e:  # a one-byte object with no byte
        miflora.decode_mibeacon(bytes.fromhex("712098006a7a3e6a8d7cc40d0a1000"))
    assert e.value.reason == MALFORMED


def test_hci_reports_and_whole_advertisements() -> None:
    # custom-components/ble_monitor tests (test_xiaomi_parser.py, HHCCJCY01 and GCLS002):
    # hcidump-style LE advertising reports, the MAC taken from the report
    hci = bytes.fromhex(
        "043e2802010000f34f6b8d7cc41c020106030295fe141695fe7120980012f34f6b8d7cc40d041002c400a9"
    )
    [out] = miflora.describe(hci, {})
    assert out["valid"] is True and out["fields"]["mac"] == "C4:7C:8D:6B:4F:F3"
    assert out["readings"] == [{"name": "temperature", "value": 19.6, "unit": "Cel"}]
    assert miflora.decode_mibeacon(hci[1:]).mac == "C4:7C:8D:6B:4F:F3"  # without 04
    gcls = bytes.fromhex(
        "043E28020100003E596D8D7CC41C020106030295FE141695FE7120BC03CD3E596D8D7CC40D0410023C01A8"
    )
    assert _values(gcls) == [("temperature", 31.6, "Cel")]
    # the advertisement alone (flags, UUID list, service data), then zero padding
    advert = hci[14:-1]
    assert _values(advert) == [("temperature", 19.6, "Cel")]
    assert _values(advert + bytes(2)) == [("temperature", 19.6, "Cel")]
    # an HCI report of another device's MAC is refused when the payload disagrees
    with pytest.raises(RemoteProtocolError) as e:
        miflora.decode_mibeacon(hci, "11:22:33:44:55:66")
    assert e.value.reason == MALFORMED


def test_header_variants() -> None:
    # no MAC, no capability, no object: a bare v3 beacon
    beacon = miflora.decode_mibeacon(bytes.fromhex("01309800ff"))
    assert beacon.version == 3 and beacon.mac is None and beacon.measurements == []
    # capability with the IO bit: one more byte before the objects
    data = bytes.fromhex("6130980001" + "2d" + "07" + "0a100164")
    beacon = miflora.decode_mibeacon(data)
    assert beacon.capability == 0x2D and beacon.io_capability == 0x07
    assert beacon.measurements == [Measurement("battery", 100, "%")]
    # the advertiser's MAC fills in when the payload has none
    assert miflora.decode_mibeacon(bytes.fromhex("01309800ff"), MAC).mac == MAC


@pytest.mark.parametrize(
    ("hex_data", "reason"),
    [
        ("", TRUNCATED),
        ("712098", TRUNCATED),
        ("7120980012f34f", TRUNCATED),  # MAC cut short
        ("7120980012f34f6b8d7cc4", TRUNCATED),  # capability missing
        ("7120980012f34f6b8d7cc40d", TRUNCATED),  # object flag, no object
        ("7120980012f34f6b8d7cc40d0410", TRUNCATED),
        ("7120980012f34f6b8d7cc40d041002c4", TRUNCATED),
        ("7120980012f34f6b8d7cc40d041003c40000", MALFORMED),  # temperature is 2 bytes
        ("01309800ff00", MALFORMED),  # bytes after a header without objects
        ("7110980012f34f6b8d7cc40d041002c400", UNSUPPORTED),  # version 1
        ("f120980012f34f6b8d7cc40d041002c400", UNSUPPORTED),  # mesh
        ("7920980012f34f6b8d7cc40d041002c400", UNSUPPORTED),  # encrypted
        ("7120" + "00" * 300, OVERFLOW),
    ],
)
def test_mibeacon_garbage_reasons(hex_data: str, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as e:
        miflora.decode_mibeacon(bytes.fromhex(hex_data))
    assert e.value.reason == reason


def test_device_state_drops_repeated_advertisements() -> None:
    state = miflora.DeviceState()
    a = miflora.decode_mibeacon(bytes.fromhex(ADVERT))
    assert state.check(a) is True
    assert state.check(a) is False
    b = miflora.decode_mibeacon(miflora.encode_mibeacon([(0x1008, 40)], MAC, 106))
    assert state.check(b) is True


# -- GATT -------------------------------------------------------------------------------------


def test_realtime_round_trip_and_negative_temperature() -> None:
    data = miflora.encode_realtime(-5.3, 120000, 57, 0.1234)
    assert len(data) == 16 and not miflora.is_mibeacon(data)
    assert [(m.name, m.value, m.unit) for m in miflora.decode_realtime(data)] == [
        ("temperature", -5.3, "Cel"),
        ("illuminance", 120000, "lx"),
        ("moisture", 57, "%"),
        ("conductivity", 0.1234, "S/m"),
    ]
    assert miflora.describe(data, {})[0]["fields"]["source"] == "gatt"  # type: ignore[index]


def test_realtime_ropot_layout_and_errors() -> None:
    ropot = bytes.fromhex("f500" + "0000000000" + "1e" + "6400") + bytes(14)
    assert [(m.name, m.value) for m in miflora.decode_realtime(ropot)] == [
        ("temperature", 24.5),
        ("moisture", 30),
        ("conductivity", 0.01),
    ]
    for data, reason in [
        (bytes(16), MALFORMED),
        (bytes.fromhex("aabbccddeeff99887766000000000000"), MALFORMED),
        (bytes(15), TRUNCATED),
        (bytes(17), MALFORMED),
    ]:
        with pytest.raises(RemoteProtocolError) as e:
            miflora.decode_realtime(data)
        assert e.value.reason == reason


def test_firmware_read() -> None:
    data = miflora.encode_firmware(95, "3.2.1", 0x15)
    assert data == bytes([95, 0x15]) + b"3.2.1"
    assert miflora.decode_firmware(data) == (95, "3.2.1")
    assert miflora.decode_firmware(data + b"\x00\x00") == (95, "3.2.1")
    for bad, reason in [
        (b"\x64\x15", TRUNCATED),
        (b"\xc8\x153.2.1", MALFORMED),
        (b"\x64\x15\xff\xfe", MALFORMED),
        (b"\x64" * 40, OVERFLOW),
    ]:
        with pytest.raises(RemoteProtocolError) as e:
            miflora.decode_firmware(bad)
        assert e.value.reason == reason
    out = miflora.describe(data, {"source": "firmware"})[0]
    assert out["valid"] is True and out["fields"]["firmware_version"] == "3.2.1"  # type: ignore[index]
    assert out["readings"] == [{"name": "battery", "value": 95, "unit": "%"}]


def test_gatt_constants() -> None:
    assert miflora.MODE_CHANGE == b"\xa0\x1f"
    assert (miflora.HANDLE_MODE_CHANGE, miflora.HANDLE_REALTIME, miflora.HANDLE_FIRMWARE) == (
        0x33,
        0x35,
        0x38,
    )


# -- builders -----------------------------------------------------------------------------------


@given(
    st.sampled_from(sorted(miflora.OBJECTS)).flatmap(
        lambda t: st.tuples(
            st.just(t),
            st.integers(
                -(1 << (8 * miflora.OBJECTS[t][1] - 1)) if miflora.OBJECTS[t][2] else 0,
                (1 << (8 * miflora.OBJECTS[t][1] - (1 if miflora.OBJECTS[t][2] else 0))) - 1,
            ),
        )
    ),
    st.integers(0, 255),
    st.booleans(),
)
@settings(max_examples=300)
def test_mibeacon_builder_round_trip(obj: tuple[int, int], counter: int, with_mac: bool) -> None:
    otype, raw = obj
    _name, _size, _signed, power, _unit = miflora.OBJECTS[otype]
    value = miflora._scale(raw, power)
    data = miflora.encode_mibeacon([(otype, value)], MAC if with_mac else None, counter)
    beacon = miflora.decode_mibeacon(data)
    assert beacon.frame_counter == counter
    assert beacon.mac == (MAC if with_mac else None)
    assert [m.value for m in beacon.measurements] == [value]
    assert miflora.is_mibeacon(data)


def test_temperature_humidity_pair_round_trip() -> None:
    data = miflora.encode_mibeacon([(0x100D, (-3.5, 87.2))], MAC)
    assert _values(data) == [("temperature", -3.5, "Cel"), ("humidity", 87.2, "%RH")]


def test_builders_refuse_misuse() -> None:
    with pytest.raises(LocalProtocolError):
        miflora.encode_mibeacon([(0x1234, 1)], MAC)
    with pytest.raises(LocalProtocolError):
        miflora.encode_mibeacon([(0x1008, 256)], MAC)
    with pytest.raises(LocalProtocolError):
        miflora.encode_mibeacon([(0x1008, 40)], "C4:7C")
    with pytest.raises(LocalProtocolError):
        miflora.encode_realtime(20.0, -1, 40, 0.01)
    with pytest.raises(LocalProtocolError):
        miflora.encode_firmware(101, "1.0")
    with pytest.raises(LocalProtocolError):
        miflora.describe(bytes.fromhex(ADVERT), {"source": "bogus"})


# -- fuzz -----------------------------------------------------------------------------------------


def _all_decoders(data: bytes) -> None:
    for fn in (miflora.decode_mibeacon, miflora.decode_realtime, miflora.decode_firmware):
        with contextlib.suppress(RemoteProtocolError):
            fn(data)
    for options in ({}, {"source": "gatt"}, {"source": "firmware"}, {"mac": MAC}):
        out = miflora.describe(data, options)  # type: ignore[arg-type]
        assert len(out) == 1 and isinstance(out[0]["valid"], bool)


@given(st.binary(max_size=300))
@settings(max_examples=500)
def test_random_bytes_only_raise_remote_protocol_error(data: bytes) -> None:
    _all_decoders(data)
    _all_decoders(b"\x71\x20" + data)
    _all_decoders(b"\x95\xfe\x71\x20\x98\x00" + data)


@given(
    st.sampled_from(
        [
            bytes.fromhex(ADVERT),
            bytes.fromhex("71209800687a3e6a8d7cc40d0910025702"),
            bytes.fromhex("250100f7260000280e01000000000000"),
        ]
    ),
    st.lists(st.tuples(st.integers(0, 40), st.integers(0, 255)), min_size=1, max_size=4),
    st.sampled_from(["flip", "insert", "delete", "truncate"]),
)
@settings(max_examples=500)
def test_mutated_payloads_only_raise_remote_protocol_error(
    base: bytes, edits: list[tuple[int, int]], how: str
) -> None:
    _all_decoders(support.mutate(base, edits, how))


# -- estran decode --------------------------------------------------------------------------------


def test_cli_json_contract_and_exit_codes() -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["decode", "miflora", "95fe " + ADVERT, "--mac", MAC, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out == {
        "protocol": "miflora",
        "valid": True,
        "error": None,
        "fields": {
            "source": "mibeacon",
            "frame_control": "0x2071",
            "version": 2,
            "encrypted": False,
            "product_id": "0x0098",
            "product": "HHCCJCY01 (Mi Flora)",
            "frame_counter": 105,
            "mac": MAC,
            "capability": "0x0d",
        },
        "readings": [{"name": "temperature", "value": 24.4, "unit": "Cel"}],
    }
    res = runner.invoke(cli, ["decode", "miflora", "250100f7260000280e01000000000000", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["fields"]["source"] == "gatt"
    assert out["readings"][3] == {"name": "conductivity", "value": 0.027, "unit": "S/m"}
    res = runner.invoke(cli, ["decode", "miflora", "6415332e322e31", "--map", "firmware"])
    assert res.exit_code == 0 and "3.2.1" in res.output
    res = runner.invoke(cli, ["decode", "miflora", ADVERT[:-2], "--json"])
    assert res.exit_code == 1
    out = json.loads(res.output)
    assert out["valid"] is False and out["error"].startswith("truncated: ")
    assert out["fields"]["frame_counter"] == 105  # the header is still shown
    assert runner.invoke(cli, ["decode", "miflora", "zz", "--json"]).exit_code == 2

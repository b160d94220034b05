"""BTHome v2 conformance on ../shared/vectors/ble/bthome_v2_vectors.json.

Runs under pytest and under MicroPython (`make micropython`): one TestCase,
plain asserts. Decryption is CPython-only: on MicroPython the encrypted vectors must raise
``unsupported``.
"""

import sys
import unittest

from protocols import bthome
from protocols.errors import DECRYPTION, TRUNCATED, UNSUPPORTED, RemoteProtocolError
from protocols.tests import support

VECTORS = "ble/bthome_v2_vectors.json"
CPYTHON = sys.implementation.name == "cpython"

# bthome-ble's display name -> our reading name. Binary sensors whose bthome-ble name is
# also a sensor's ("Power", "Light") are told apart by their boolean value.
NAMES = {
    "Battery": "battery",
    "Temperature": "temperature",
    "Humidity": "humidity",
    "Illuminance": "illuminance",
    "Mass": "mass",
    "Count": "count",
    "Power": "power",
    "Pm25": "pm25",
    "Pm10": "pm10",
    "Volatile Organic Compounds": "tvoc",
    "Rotation": "rotation",
    "Distance": "distance",
    "Duration": "duration",
    "Speed": "speed",
    "Volume": "volume",
    "Volume Flow Rate": "volume_flow_rate",
    "Gas": "gas",
    "Energy": "energy",
    "Water": "water",
    "Acceleration": "acceleration",
    "Gyroscope": "gyroscope",
    "Raw": "raw",
    "Volume Storage": "volume_storage",
    "Current": "current",
    "Voltage": "voltage",
    "Channel": "channel",
    "Light Level": "light_level",
}
BINARY_NAMES = {
    "Light": "light",
    "Generic": "generic",
    "Opening": "opening",
    "Motion": "motion",
    "Power": "power_on",
}
# bthome-ble keeps the spec's units; ours are SenML. The vectors have distance only as
# 0x40 (mm) and energy only in kWh.
TO_SENML = {"distance": 0.001, "energy": 1000}

# Readings the extracted expectations left out although the vector's own doc names them
# ("... and single battery reading"): 01 5d = 93 %.
EXTRA = {"test_bthome_triple_temperature_double_humidity_battery": {"battery": 93}}

# The upstream test of this payload (tests/test_parser_v2.py) decrypts it with the bind key
# and MAC of test_bthome_with_mac_encrypted; the vector file does not repeat them.
UPSTREAM_KEY = "231d39c1d7cc1ab1aee224cd096db932"
UPSTREAM_MAC = "54:48:E6:8F:80:A5"


def _vectors() -> "list[dict[str, object]]":
    data = support.load_json(VECTORS)
    return data["vectors"]


def _by_test(name: "str") -> "dict[str, object]":
    for v in _vectors():
        if v["test"] == name:
            return v
    raise AssertionError("vector %s missing" % name)


def _payload(v: "dict[str, object]") -> "bytes":
    payloads = v["payloads_hex"]
    assert len(payloads) == 1
    return support.unhex(payloads[0])


def _our_name(expected: "dict[str, str]") -> "str":
    name = expected["name"]
    value = expected["value"]
    if value in ("True", "False"):
        return BINARY_NAMES[name]
    suffix = ""
    if name[-1] in "0123456789" and name[-2] == " ":
        # "Temperature 2": bthome-ble numbers every repeat from 1, we leave the first bare
        number = name[-1]
        name = name[:-2]
        suffix = "" if number == "1" else "_" + number
    return NAMES[name] + suffix


def _check_value(ours: "object", expected: "str", factor: "float") -> "None":
    if expected in ("True", "False"):
        assert ours is (expected == "True"), (ours, expected)
    elif expected.startswith('"'):
        assert ours == expected[1:-1], (ours, expected)
    elif "." not in expected and factor == 1:
        assert ours == int(expected), (ours, expected)
    else:
        assert support.close(ours, float(expected) * factor), (ours, expected)


def _check(v: "dict[str, object]", packet: "bthome.BTHomePacket") -> "None":
    readings = {}
    for m in packet.measurements():
        readings[m.name] = m.value
    expected_names = []
    for e in v["expected_values"]:
        if e["name"] == "Packet Id":
            assert packet.packet_id == int(e["value"]), (packet.packet_id, e)
            continue
        name = _our_name(e)
        expected_names.append(name)
        assert name in readings, (v["test"], name, readings)
        base = name.split("_")[0] if name[-2:-1] == "_" else name
        _check_value(readings[name], e["value"], TO_SENML.get(base, 1))
    for e in v["expected_events"]:
        assert readings[e["key"]] == e["event_type"], (readings, e)
        expected_names.append(e["key"])
    extra = EXTRA.get(str(v["test"]), {})
    for name in extra:
        assert readings.get(name) == extra[name], (name, readings)
        expected_names.append(name)
    assert sorted(readings) == sorted(expected_names), (v["test"], readings, expected_names)


def _encrypted() -> "list[tuple[dict[str, object], str, str]]":
    out = []
    for v in _vectors():
        data = _payload(v)
        if data[0] & bthome.INFO_ENCRYPTED:
            key = v.get("bindkey") or UPSTREAM_KEY
            mac = v.get("mac") or UPSTREAM_MAC
            out.append((v, str(key), str(mac)))
    return out


def _object_table() -> "list[tuple[int, int, str, float]]":
    """The vector file's object table: (id, size, format, factor), dubious rows left out."""
    data = support.load_json(VECTORS)
    rows = data["format"]["object_table (id | meas | bytes | format | factor)"]
    out = []
    for row in rows:
        parts = [p.strip() for p in row.split("|")]
        if len(parts) != 5 or ".." in parts[0] or parts[1] == "?":
            continue  # ranges and prose rows; 0x13 has a "?" row and a precise one
        size = int(parts[2].split("(")[0])
        out.append((int(parts[0], 16), size, parts[3], float(parts[4])))
    return out


# Our SenML normalisation, relative to the spec's unit: hPa -> Pa, kWh -> Wh, mm -> m,
# mL -> l, µS/cm -> S/m.
SENML_FACTOR = {
    0x04: 100,
    0x0A: 1000,
    0x4D: 1000,
    0x40: 0.001,
    0x48: 0.001,
    0x56: 0.0001,
    0x5F: 0.001,
}


class BthomeVectors(unittest.TestCase):
    def test_plain_vectors_decode_to_the_published_values(self) -> "None":
        checked = 0
        for v in _vectors():
            if v["test"] in (
                "test_encryption_no_key_needed",  # upstream checks only the scheme: below
                "test_bthome_battery_wrong_object_id_humidity",  # invalid: below
                "test_bthome_invalid_object_payload_data_length",
            ):
                continue
            data = _payload(v)
            if data[0] & bthome.INFO_ENCRYPTED:
                continue
            packet = bthome.decode(data)
            assert packet.version == 2 and not packet.encrypted
            _check(v, packet)
            checked += 1
        assert checked >= 35, checked

    def test_no_key_needed_payload_is_plain_pressure(self) -> "None":
        packet = bthome.decode(_payload(_by_test("test_encryption_no_key_needed")))
        assert not packet.encrypted
        # 04 138a01: 1008.83 hPa (spec example) = 100883 Pa
        assert [(m.name, m.value, m.unit) for m in packet.measurements()] == [
            ("pressure", 100883, "Pa")
        ]

    def test_unknown_object_id_stops_parsing_and_keeps_what_came_before(self) -> "None":
        v = _by_test("test_bthome_battery_wrong_object_id_humidity")
        try:
            bthome.decode(_payload(v))
        except bthome.UnknownObjectError as e:
            assert e.reason == UNSUPPORTED
            assert e.packet is not None
            _check(v, e.packet)
        else:
            raise AssertionError("unknown object id 0xfe accepted")
        out = bthome.describe(_payload(v), {})
        assert len(out) == 1 and out[0]["valid"] is False
        assert str(out[0]["error"]).startswith("unsupported: ")
        assert out[0]["readings"] == [{"name": "battery", "value": 93, "unit": "%"}]

    def test_truncated_object_rejects_the_payload(self) -> "None":
        v = _by_test("test_bthome_invalid_object_payload_data_length")
        try:
            bthome.decode(_payload(v))
        except RemoteProtocolError as e:
            assert e.reason == TRUNCATED, e
        else:
            raise AssertionError("truncated payload accepted")
        out = bthome.describe(_payload(v), {})
        assert out[0]["valid"] is False and out[0]["readings"] == []
        assert str(out[0]["error"]).startswith("truncated: ")

    def test_encrypted_vectors(self) -> "None":
        vectors = _encrypted()
        assert len(vectors) == 2
        for v, key, mac in vectors:
            data = _payload(v)
            if not CPYTHON:
                # decryption is CPython-only: MicroPython must say so, not crash or guess
                try:
                    bthome.decode(data, key, mac)
                except RemoteProtocolError as e:
                    assert e.reason == UNSUPPORTED, e
                else:
                    raise AssertionError("decrypted without AES-CCM?")
                continue
            packet = bthome.decode(data, key, mac)
            assert packet.encrypted and packet.mac == mac
            assert packet.counter == 0x33221100  # 00112233 little-endian, sent in clear
            _check(v, packet)

    def test_encrypted_vector_with_included_mac_needs_no_mac_option(self) -> "None":
        v = _by_test("test_bthome_with_mac_encrypted")
        data = _payload(v)
        assert data[0] & bthome.INFO_MAC_INCLUDED
        if not CPYTHON:
            return  # covered by test_encrypted_vectors
        packet = bthome.decode(data, str(v["bindkey"]))
        assert packet.mac == v["mac"] and packet.mac_included

    def test_encrypted_without_key_is_a_decryption_error_with_fields(self) -> "None":
        for v, _key, _mac in _encrypted():
            try:
                bthome.decode(_payload(v))
            except RemoteProtocolError as e:
                assert e.reason == DECRYPTION, e
            else:
                raise AssertionError("encrypted payload decoded without a key")
            out = bthome.describe(_payload(v), {})
            assert out[0]["valid"] is False and out[0]["readings"] == []
            fields = out[0]["fields"]
            assert fields["encrypted"] is True and fields["counter"] == 0x33221100

    def test_wrong_key_fails_authentication(self) -> "None":
        if not CPYTHON:
            return  # covered by test_encrypted_vectors (unsupported)
        for v, key, mac in _encrypted():
            wrong = ("0" if key[0] != "0" else "1") + key[1:]
            try:
                bthome.decode(_payload(v), wrong, mac)
            except RemoteProtocolError as e:
                assert e.reason == DECRYPTION, e
            else:
                raise AssertionError("wrong key accepted")

    def test_object_table_matches_the_published_table(self) -> "None":
        rows = _object_table()
        assert len(rows) >= 90, len(rows)
        for oid, size, fmt, factor in rows:
            assert oid in bthome.OBJECTS, "object 0x%02x missing" % oid
            _name, our_size, signed, mult, power, _unit, kind = bthome.OBJECTS[oid]
            if fmt in ("string", "raw"):
                assert our_size == 0 and kind in (bthome.TEXT, bthome.RAW), oid
                continue
            assert our_size == size, (hex(oid), our_size, size)
            assert signed == (fmt == "signed_integer"), (hex(oid), fmt)
            ours = mult * 10.0**power
            assert support.close(ours, factor * SENML_FACTOR.get(oid, 1)), (hex(oid), ours, factor)

    def test_binary_range_and_events_are_covered(self) -> "None":
        for oid in range(0x0F, 0x2E):
            if oid in (0x12, 0x13, 0x14):
                continue  # co2, tvoc, moisture: sensors inside the binary range
            assert bthome.OBJECTS[oid][6] == bthome.BINARY, hex(oid)
        assert bthome.OBJECTS[0x3A][6] == bthome.BUTTON
        assert bthome.OBJECTS[0x3C][6] == bthome.DIMMER
        for oid in (0xF0, 0xF1, 0xF2):
            assert oid in bthome.OBJECTS

    def test_describe_contract_on_every_vector(self) -> "None":
        for v in _vectors():
            data = _payload(v)
            for prefix in (b"", bthome.UUID_BYTES):
                out = bthome.describe(prefix + data, {})
                assert len(out) == 1
                r = out[0]
                assert sorted(r) == ["error", "fields", "protocol", "readings", "valid"]
                assert r["protocol"] == "bthome"
                assert (r["error"] is None) == (r["valid"] is True)
                for reading in r["readings"]:
                    assert sorted(reading) == ["name", "unit", "value"]

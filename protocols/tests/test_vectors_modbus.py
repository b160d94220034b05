"""Modbus RTU conformance on ../shared/vectors (modbus/ and the RS-485 frames of ultrasonic/).

One unittest.TestCase, no fixtures: they also run on MicroPython (`make micropython`).
Some vector entries are deliberately wrong; the expectations below follow each entry's notes
(the minimalmodbus comments), not the dict it was filed in.
"""

import unittest

from protocols import modbus
from protocols.errors import CHECKSUM, MALFORMED, TRUNCATED, UNSUPPORTED, RemoteProtocolError
from protocols.tests.support import close, load_json, unhex

T = True
F = False

# minimalmodbus pair (by its `line` in test_minimalmodbus.py) -> what the master makes of the
# response to the request: the register values, the bits, the (start, count) a write
# response confirms, or the reason of the error it raises.
MINIMALMODBUS_EXPECTED = {
    5606: {"bits": [T]},
    5622: MALFORMED,  # byte count 2 for 1 bit
    5639: {"start": 71, "bits": [T]},
    5656: {"start": 72, "count": 1},
    5675: MALFORMED,  # echo of coil 71 = 0 to a write of coil 74 = 1
    # Modbus application protocol v1.1b3 example: inputs 197-218 = AC DB 35
    5698: {"bits": [F, F, T, T, F, T, F, T, T, T, F, T, T, F, T, T, T, F, T, F, T, T]},
    5721: {"start": 19, "count": 10},
    5740: {"registers": [184]},
    5757: {"registers": [65531]},
    5773: CHECKSUM,  # one byte too long: the 7 bytes the request calls for fail the CRC
    5793: {"start": 24, "count": 1},
    5810: {"start": 45, "registers": [88]},
    5828: {"start": 101, "count": 1},
    5846: {"start": 101, "count": 1},
    5868: MALFORMED,  # confirms 2 registers written, 1 was
    5890: MALFORMED,  # filed as good, but the comment says: wrong slave address
    5912: CHECKSUM,  # 0x90 announces a 5-byte exception response; its CRC fails
    5933: {"registers": [65535, 65535]},
    5953: {"registers": [0x41AE, 0x5256]},
    5973: {"registers": [0x5256, 0x41AE]},
    5995: {"start": 102, "count": 2},
    6015: {"start": 102, "count": 2},
    6037: {"start": 222, "count": 2},
    6061: {"start": 222, "count": 2},
    6083: {"start": 109, "count": 4},
    6102: {"registers": [0x7238, 0x4725]},
    6120: {"registers": [0xAE41, 0x5652]},
    6142: {"registers": [0x5652, 0xAE41]},
    6165: {"start": 107, "count": 2},
    6183: {"start": 103, "count": 4},
    6204: {"start": 240, "count": 2},
    6230: {"start": 240, "count": 2},
    6254: {"registers": [0x4142]},
    6274: {"start": 104, "count": 1},
    6293: {"start": 104, "count": 4},
    6312: {"registers": [16, 32, 64]},
    6333: {"start": 105, "count": 3},
    6383: MALFORMED,  # the local echo comes first: without echo=True it is not the response
    6408: {"bits": [T]},
    6416: {"start": 2068, "bits": [T]},
    6422: {"start": 4097, "count": 1},
    6432: {"bits": [T]},
    6440: {"start": 2068, "bits": [T]},
    6446: {"registers": [3258]},
    6454: {"start": 4097, "count": 1},
    6470: {"bits": [F]},
    6478: {"bits": [F]},
    6488: {"bits": [T, T, T, F, F, F, F, F, F]},
    6495: {"start": 2068, "bits": [F]},
    6505: {"registers": [64990, 350]},
    6517: {"registers": [800]},
    6527: {"start": 0x1001, "registers": [800]},
    6535: {"registers": [1]},
    6545: {"registers": [0]},
    6553: {"registers": [0]},
    6561: {"registers": [15]},
}

# Entries that are not Modbus requests at all (minimalmodbus tests its transport with
# them): the reason parse_request and parse_response give.
MINIMALMODBUS_NOT_REQUESTS = {
    6346: (CHECKSUM, CHECKSUM),
    6354: (CHECKSUM, CHECKSUM),
    6361: (UNSUPPORTED, UNSUPPORTED),  # function 0x4B, valid CRCs
    6367: (MALFORMED, MALFORMED),  # FC02 request with 12 data bytes; FC03 byte count 0x54
    6373: (MALFORMED, TRUNCATED),  # FC04 request with 12 data bytes; a 1-byte response
}


def _pairs() -> "list[dict[str, object]]":
    data = load_json("modbus/minimalmodbus_rtu_pairs.json")
    return data["pairs"]


def _reason(fn: "object", *args: "object") -> "str | None":
    try:
        fn(*args)
    except RemoteProtocolError as e:
        return e.reason
    return None


def _exchange(request: "modbus.Request", response: "bytes", echo: "bool" = False) -> "object":
    master = modbus.Master(echo=echo)
    master.send(request)
    master.receive_data(response)
    try:
        event = master.next_event()
    except RemoteProtocolError as e:
        return e.reason
    assert event is not modbus.NEED_DATA
    return event


def _rs485(device_prefix: "str") -> "dict[str, object]":
    data = load_json("modbus/rs485_devices_frames.json")
    for vector in data["vectors"]:
        if vector["device"].startswith(device_prefix):
            return vector
    raise AssertionError("no vector for " + device_prefix)


def _read(vector: "dict[str, object]") -> "modbus.Response":
    request_bytes = unhex(vector["request"])
    response_bytes = unhex(vector["response"])
    assert modbus.crc_ok(request_bytes) == vector.get("request_crc_ok", True)
    assert modbus.crc_ok(response_bytes) == vector.get("response_crc_ok", True)
    request = modbus.parse_request(request_bytes)
    response = _exchange(request, response_bytes)
    assert isinstance(response, modbus.Response), response
    return response


def _values(measurements: "list[object]") -> "dict[str, object]":
    return {m.name: (m.value, m.unit) for m in measurements}


EASTRON_UNITS = (
    ("kvarh", "VArh", 1000),
    ("kwh", "Wh", 1000),
    ("var", "var", 1),
    ("va", "VA", 1),
    ("pf", "/", 1),
    ("power factor", "/", 1),
    ("deg", "deg", 1),
    ("hz", "Hz", 1),
    ("power", "W", 1),
    ("current", "A", 1),
    ("voltage", "V", 1),
    ("volts", "V", 1),
)


def _eastron_addresses(key: "str") -> "list[int]":
    """ "0x0012/14/16" -> [0x12, 0x14, 0x16]."""
    parts = key.split("/")
    base = int(parts[0], 16)
    out = [base]
    for tail in parts[1:]:
        out.append((base & ~0xFF) | int(tail, 16))
    return out


class ModbusVectors(unittest.TestCase):
    def test_crc_check_value(self) -> None:
        assert modbus.crc16(b"123456789") == 0x4B37
        assert modbus.crc_bytes(b"123456789") == b"\x37\x4b"

    def test_crc_known_values(self) -> None:
        data = load_json("modbus/minimalmodbus_rtu_pairs.json")
        known = data["crc_known_values"]
        assert len(known) == 2
        for entry in known:
            if "input_hex" in entry:
                payload = unhex(entry["input_hex"])
            else:
                payload = entry["input_ascii"].encode()
            assert modbus.crc_bytes(payload) == unhex(entry["crc_bytes_on_wire_hex"]), entry

    def test_minimalmodbus_crc_flags(self) -> None:
        pairs = _pairs()
        assert len(pairs) == 61
        for pair in pairs:
            assert modbus.crc_ok(unhex(pair["request_hex"])) == pair["request_crc_ok"], pair
            assert modbus.crc_ok(unhex(pair["response_hex"])) == pair["response_crc_ok"], pair

    def test_minimalmodbus_pairs_through_the_master(self) -> None:
        seen = 0
        for pair in _pairs():
            line = pair["line"]
            if line in MINIMALMODBUS_NOT_REQUESTS:
                continue
            expected = MINIMALMODBUS_EXPECTED[line]
            request = modbus.parse_request(unhex(pair["request_hex"]))
            # The builders make the same bytes as the master that recorded the pair.
            assert request.encode() == unhex(pair["request_hex"]), line
            outcome = _exchange(request, unhex(pair["response_hex"]))
            if isinstance(expected, str):
                assert outcome == expected, (line, outcome)
            else:
                assert isinstance(outcome, modbus.Response), (line, outcome)
                for key in expected:
                    got = getattr(outcome, key)
                    if isinstance(got, tuple):
                        got = list(got)
                    assert got == expected[key], (line, key, got)
            seen += 1
        assert seen == len(MINIMALMODBUS_EXPECTED)

    def test_minimalmodbus_local_echo(self) -> None:
        for pair in _pairs():
            if pair["line"] != 6383:
                continue
            request = modbus.parse_request(unhex(pair["request_hex"]))
            response = _exchange(request, unhex(pair["response_hex"]), echo=True)
            assert isinstance(response, modbus.Response)
            assert response.address == 20 and response.start == 289
            assert list(response.registers or ()) == [770]
            return
        raise AssertionError("the local-echo pair is missing")

    def test_minimalmodbus_entries_that_are_not_modbus(self) -> None:
        for pair in _pairs():
            line = pair["line"]
            if line not in MINIMALMODBUS_NOT_REQUESTS:
                continue
            request_reason, response_reason = MINIMALMODBUS_NOT_REQUESTS[line]
            assert _reason(modbus.parse_request, unhex(pair["request_hex"])) == request_reason, line
            assert _reason(modbus.parse_response, unhex(pair["response_hex"])) == response_reason, (
                line
            )

    def test_minimalmodbus_values_in_every_order(self) -> None:
        # Read responses and write requests of the pairs, decoded as their comments say.
        def registers(line: "int") -> "tuple[int, ...]":
            for pair in _pairs():
                if pair["line"] == line:
                    request = modbus.parse_request(unhex(pair["request_hex"]))
                    if request.registers is not None:
                        return request.registers
                    response = modbus.parse_response(unhex(pair["response_hex"]), request)
                    return response.registers or ()
            raise AssertionError(line)

        assert modbus.decode_value(registers(5757), "s16") == -5
        assert modbus.decode_value(registers(5757), "u16") == 65531
        assert modbus.decode_value(registers(5846), "s16") == -50
        assert modbus.decode_value(registers(5933), "s32") == -1
        assert modbus.decode_value(registers(5933), "u32") == 4294967295
        assert modbus.decode_value(registers(5953), "u32", "BADC") == 2923517522
        assert modbus.decode_value(registers(5973), "u32", "DCBA") == 2923517522
        assert modbus.decode_value(registers(5995), "u32") == 5
        assert modbus.decode_value(registers(6015), "u32") == 3
        assert modbus.decode_value(registers(6037), "u32", "ABCD") == 2923517522
        assert modbus.decode_value(registers(6061), "u32", "BADC") == 2923517522
        assert modbus.decode_value(registers(6083), "s64") == -4
        assert modbus.decode_value(registers(6102), "f32") == 3.65e30
        assert close(modbus.decode_value(registers(6120), "f32"), -4.3959787e-11)
        assert close(modbus.decode_value(registers(6142), "f32", "CDAB"), -4.3959787e-11)
        assert close(modbus.decode_value(registers(6204), "f32", "ABCD"), -4.3959787e-11)
        assert close(modbus.decode_value(registers(6230), "f32", "CDAB"), -4.3959787e-11)
        assert modbus.decode_value(registers(6165), "f32") == 1.0
        assert modbus.decode_value(registers(6183), "f64") == 1.1
        assert modbus.decode_value(registers(6254), "str") == "AB"
        assert modbus.decode_value(registers(6274), "str") == "A"
        assert modbus.decode_value(registers(6293), "str") == "ABCDEFGH"
        assert list(registers(6312)) == [16, 32, 64]
        assert list(registers(6333)) == [2, 4, 8]
        # Scaled as the comments say (one decimal): no float noise.
        one_decimal = modbus.Register("x", 0, "u16", 0.1)
        device = modbus.RegisterMap("x", [one_decimal])
        for line, value in ((6422, 700.0), (6446, 325.8), (6454, 20.0), (6517, 80.0)):
            assert modbus.decode_registers(device, 0, registers(line))[0].value == value, line

    def test_rs485_eastron_voltage(self) -> None:
        vector = _rs485("Eastron")
        response = _read(vector)
        assert (response.function, response.start, response.count) == (4, 0, 2)
        expected = vector["expected"]
        raw = "%04X%04X" % tuple(response.registers or ())
        assert raw == expected["float_be_hex"].upper()
        sdm120 = _values(modbus.decode_registers(modbus.SDM120, 0, response.registers or (), 4))
        sdm630 = _values(modbus.decode_registers(modbus.SDM630, 0, response.registers or (), 4))
        assert sdm120 == {"voltage": (expected["voltage_V"], "V")}
        assert sdm630 == {"l1_voltage": (expected["voltage_V"], "V")}

    def test_rs485_soil_probes(self) -> None:
        for prefix, registers in (("DFRobot SEN0601", 3), ("DFRobot SEN0604", 4)):
            vector = _rs485(prefix)
            response = _read(vector)
            assert response.count == registers
            got = _values(modbus.decode_registers(modbus.SOIL, 0, response.registers or ()))
            expected = vector["expected"]
            assert got["moisture"] == (expected["moisture_pct"], "%")
            assert got["temperature"] == (expected["temperature_C"], "Cel")
            # uS/cm -> S/m (SenML): 1 uS/cm = 1e-4 S/m
            assert got["conductivity"] == (expected["ec_uS_cm"] / 10000, "S/m")
            if "pH" in expected:
                assert got["ph"] == (expected["pH"], "pH")
            else:
                assert "ph" not in got
            assert len(got) == registers

    def test_rs485_sonbest_raw_register(self) -> None:
        vector = _rs485("SONBEST")
        response = _read(vector)
        assert list(response.registers or ()) == [vector["expected"]["raw"]]
        tenths = modbus.RegisterMap("x", [modbus.Register("moisture", 0, "u16", 0.1, "%")])
        got = modbus.decode_registers(tenths, 0, response.registers or ())
        assert got[0].value == vector["expected"]["value_if_x10"]

    def test_rs485_level_sensor(self) -> None:
        data = load_json("ultrasonic/ultrasonic_vectors.json")
        vectors = data["rs485_modbus_ultrasonic"]["vectors"]
        assert vectors
        for vector in vectors:
            request_bytes = unhex(vector["request"])
            response_bytes = unhex(vector["response"])
            assert [modbus.crc_ok(request_bytes), modbus.crc_ok(response_bytes)] == vector["crc_ok"]
            request = modbus.parse_request(request_bytes)
            # The map's own poll plan is the request of the vector.
            assert modbus.read_plan(modbus.LEVEL) == [request]
            response = _exchange(request, response_bytes)
            assert isinstance(response, modbus.Response)
            got = modbus.decode_registers(
                modbus.LEVEL, request.start or 0, response.registers or ()
            )
            assert _values(got) == {"distance": (vector["expected_mm"] / 1000, "m")}
            # describe, without the request: the map's first block gives the start address.
            (described,) = modbus.describe(response_bytes, {"map": "level"})
            assert described["valid"] is True
            assert described["fields"]["start_from"] == "map"
            assert described["readings"] == [
                {"name": "distance", "value": vector["expected_mm"] / 1000, "unit": "m"}
            ]

    # Unit words of the Eastron map descriptions -> (SenML unit, scale from the meter's unit).

    def test_eastron_register_maps(self) -> None:
        data = load_json("modbus/eastron_sdm_register_map.json")
        for model, register_map in (("SDM120", modbus.SDM120), ("SDM630", modbus.SDM630)):
            by_address = {r.address: r for r in register_map.registers}
            entries = data[model]
            assert entries
            for key, text in entries.items():
                lowered = text.lower()
                unit = scale = None
                for word, senml, factor in EASTRON_UNITS:
                    if word in lowered.replace("volt amps", "va"):
                        unit, scale = senml, factor
                        break
                for address in _eastron_addresses(key):
                    register = by_address[address]
                    assert register.type == "f32" and register.count == 2, (model, key)
                    assert register.function == 4 and register.order == "ABCD", (model, key)
                    assert register.address % 2 == 0
                    assert (register.unit, register.scale) == (unit, scale), (model, key, register)
            # Every request the gateway would send reads an even count from an even address,
            # at most 40 parameters.
            for request in modbus.read_plan(register_map):
                assert request.function == 4
                assert (request.start or 0) % 2 == 0 and (request.count or 0) % 2 == 0
                assert (request.count or 0) <= 80

    def test_soil_register_maps_match_the_vendors(self) -> None:
        data = load_json("modbus/rs485_devices_frames.json")
        maps = data["soil_register_maps"]
        es103 = dfrobot = None
        for key, value in maps.items():
            if key.startswith("Seeed"):
                es103 = value
            elif key.startswith("DFRobot"):
                dfrobot = value
        assert es103 and dfrobot
        # ES103: temperature INT16 /100 first, then VWC /100, EC, salinity, TDS, epsilon /100.
        registers = es103["registers"]
        by_address = {r.address: r for r in modbus.SOIL_ES103.registers}
        assert "int16 /100 degc" in registers["0x0000"].lower()
        assert (by_address[0].name, by_address[0].type, by_address[0].scale) == (
            "temperature",
            "s16",
            0.01,
        )
        assert "/100 %" in registers["0x0001"]
        assert (by_address[1].name, by_address[1].scale, by_address[1].unit) == (
            "moisture",
            0.01,
            "%",
        )
        assert "ec" in registers["0x0002"].lower() and by_address[2].unit == "S/m"
        assert "/100" in registers["0x0005"] and by_address[5].scale == 0.01
        # DFRobot: moisture x10 first, temperature x10 signed, EC, pH x10.
        registers = dfrobot["registers"]
        by_address = {r.address: r for r in modbus.SOIL.registers}
        assert "moisture" in registers["0x0000"] and by_address[0].name == "moisture"
        assert "signed" in registers["0x0001"] and by_address[1].type == "s16"
        assert "ph" in registers["0x0003"].lower() and by_address[3].unit == "pH"

    def test_describe_request_then_response(self) -> None:
        vector = _rs485("Eastron")
        pasted = unhex(vector["request"]) + unhex(vector["response"])
        request, response = modbus.describe(pasted, {"map": "sdm630"})
        assert request["valid"] and request["fields"]["kind"] == "request"
        assert response["valid"] and response["fields"]["kind"] == "response"
        assert response["fields"]["start_from"] == "request"
        assert response["readings"] == [{"name": "l1_voltage", "value": 230.2, "unit": "V"}]

    def test_describe_minimalmodbus_pairs(self) -> None:
        for pair in _pairs():
            line = pair["line"]
            if line in MINIMALMODBUS_NOT_REQUESTS or line in (5773, 6383):
                continue
            pasted = unhex(pair["request_hex"]) + unhex(pair["response_hex"])
            results = modbus.describe(pasted, {})
            assert len(results) == 2, line
            first, second = results
            assert first["valid"] is True and first["fields"]["kind"] == "request", line
            expected = MINIMALMODBUS_EXPECTED[line]
            if isinstance(expected, str):
                assert second["valid"] is False, (line, second)
                assert str(second["error"]).startswith(MALFORMED + ": "), (line, second)
            else:
                assert second["valid"] is True, (line, second)
                assert second["fields"]["kind"] == "response", line
                if "registers" in expected:
                    assert second["fields"]["registers"] == expected["registers"], line

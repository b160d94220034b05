"""Mi Flora conformance on ../shared/vectors/ble/miflora_vectors.json (MiBeacon and GATT).

Runs under pytest and under MicroPython (`make micropython`).
"""

import unittest

from protocols import miflora
from protocols.errors import MALFORMED, UNSUPPORTED, RemoteProtocolError
from protocols.tests import support

VECTORS = "ble/miflora_vectors.json"

# the vectors' keys -> (our reading name, factor to our SenML unit)
EXPECTED = {
    "temperature": ("temperature", 1),
    "light": ("illuminance", 1),
    "moisture": ("moisture", 1),
    "conductivity": ("conductivity", 0.0001),  # µS/cm -> S/m
}


def _load() -> "dict[str, dict[str, object]]":
    return support.load_json(VECTORS)


def _check(readings: "list[object]", expected: "dict[str, object]") -> "None":
    got = {}
    for m in readings:
        got[m.name] = m
    assert len(got) == len(expected), (got, expected)
    for key in expected:
        name, factor = EXPECTED[key]
        m = got[name]
        want = expected[key]
        if factor == 1 and isinstance(want, int):
            assert m.value == want, (name, m.value, want)
        else:
            assert support.close(m.value, want * factor), (name, m.value, want)
    units = {"temperature": "Cel", "illuminance": "lx", "moisture": "%", "conductivity": "S/m"}
    for name in got:
        assert got[name].unit == units[name], got[name]


class MifloraVectors(unittest.TestCase):
    def test_gatt_realtime_reads(self) -> "None":
        vectors = _load()["gatt"]["vectors"]
        assert len(vectors) >= 2
        for v in vectors:
            data = support.unhex(v["hex"])
            _check(miflora.decode_realtime(data), v["expected"])
            # the builder gives back the same 16 bytes (bytes 2 and 10-15 are zero here)
            e = v["expected"]
            built = miflora.encode_realtime(
                e["temperature"], e["light"], e["moisture"], e["conductivity"] / 10000
            )
            assert built == data, (built, data)

    def test_gatt_procedure_constants(self) -> "None":
        procedure = str(_load()["gatt"]["procedure"])
        assert bytes([0xA0, 0x1F]) == miflora.MODE_CHANGE
        assert "write 0xA0 0x1F to handle 0x%02x" % miflora.HANDLE_MODE_CHANGE in procedure
        assert "read handle 0x%02x (char 00001a01" % miflora.HANDLE_REALTIME in procedure
        assert "read handle 0x%02x (char 00001a02" % miflora.HANDLE_FIRMWARE in procedure
        for uuid in (
            miflora.DATA_SERVICE_UUID,
            miflora.MODE_CHANGE_CHAR_UUID,
            miflora.REALTIME_CHAR_UUID,
            miflora.FIRMWARE_CHAR_UUID,
        ):
            assert uuid[:8] in procedure, uuid

    def test_gatt_reads_are_told_from_mibeacons_by_describe(self) -> "None":
        for v in _load()["gatt"]["vectors"]:
            data = support.unhex(v["hex"])
            assert not miflora.is_mibeacon(data)
            out = miflora.describe(data, {})
            assert len(out) == 1 and out[0]["valid"] is True, out
            assert out[0]["fields"]["source"] == "gatt"
            assert len(out[0]["readings"]) == 4

    def test_gatt_read_without_mode_change_is_rejected(self) -> "None":
        # what newer firmware returns before 0xa0 0x1f is written: moisture byte 0x88 = 136 %
        data = support.unhex("aabbccddeeff99887766000000000000")
        try:
            miflora.decode_realtime(data)
        except RemoteProtocolError as e:
            assert e.reason == MALFORMED
        else:
            raise AssertionError("accepted a read taken without the mode change")

    def test_mibeacon_advertisements(self) -> "None":
        vectors = _load()["advertisement"]["vectors"]
        assert len(vectors) >= 3
        for v in vectors:
            data = support.unhex(v["hex"])
            here = v["decoded_here"]
            beacon = miflora.decode_mibeacon(data, v["address"])
            _check(beacon.measurements, v["expected"])
            assert beacon.mac == v["address"] == here["mac"]
            assert beacon.frame_counter == here["frame_counter"]
            assert "0x%04x" % beacon.frame_control == here["frame_control"]
            assert "0x%04x" % beacon.product_id == here["product_id"]
            assert beacon.product_id == miflora.PRODUCT_MIFLORA
            assert "0x%02x" % beacon.capability == here["capability"]
            assert not beacon.encrypted and beacon.version == 2
            # with the UUID in front, and as a whole AD structure
            prefixed = miflora.UUID_BYTES + data
            assert miflora.decode_mibeacon(prefixed).measurements == beacon.measurements
            ad = miflora.ad_structure(data)
            assert miflora.decode_mibeacon(ad).measurements == beacon.measurements

    def test_mibeacon_builder_reproduces_the_advertisements(self) -> "None":
        for v in _load()["advertisement"]["vectors"]:
            data = support.unhex(v["hex"])
            here = v["decoded_here"]
            otype = int(here["object_type"], 16)
            value = miflora.decode_mibeacon(data).measurements[0].value
            built = miflora.encode_mibeacon([(otype, value)], v["address"], here["frame_counter"])
            assert built == data, (built, data)

    def test_mibeacon_mac_mismatch_and_encryption(self) -> "None":
        v = _load()["advertisement"]["vectors"][0]
        data = support.unhex(v["hex"])
        try:
            miflora.decode_mibeacon(data, "11:22:33:44:55:66")
        except RemoteProtocolError as e:
            assert e.reason == MALFORMED
        else:
            raise AssertionError("MAC mismatch accepted")
        encrypted = bytes([data[0] | miflora.FC_ENCRYPTED]) + data[1:]
        try:
            miflora.decode_mibeacon(encrypted)
        except RemoteProtocolError as e:
            assert e.reason == UNSUPPORTED
        else:
            raise AssertionError("encrypted MiBeacon decoded")
        out = miflora.describe(encrypted, {})
        assert out[0]["valid"] is False and str(out[0]["error"]).startswith("unsupported: ")
        assert out[0]["fields"]["mac"] == v["address"]

    def test_describe_contract_on_every_vector(self) -> "None":
        vectors = _load()
        for section in ("gatt", "advertisement"):
            for v in vectors[section]["vectors"]:
                out = miflora.describe(support.unhex(v["hex"]), {})
                assert len(out) == 1
                r = out[0]
                assert sorted(r) == ["error", "fields", "protocol", "readings", "valid"]
                assert r["protocol"] == "miflora" and r["valid"] is True and r["error"] is None

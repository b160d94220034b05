"""NMEA 0183 conformance on ../shared/vectors/nmea (sentences from pynmea2's tests).

Runs under pytest and under MicroPython (`make micropython`): plain asserts only.
"""

import unittest

from protocols import nmea
from protocols.errors import CHECKSUM, RemoteProtocolError
from protocols.tests import support

# the vectors' names (pynmea2 test expectations) -> our field names
FIELD_NAMES = {
    "talker": "talker",
    "type": "type",
    "time": "timestamp",
    "lat": "lat",
    "lon": "lon",
    "gps_qual": "gps_qual",
    "num_sats": "num_sats",
    "hdop": "horizontal_dil",
    "altitude_m": "altitude",
    "geo_sep": "geo_sep",
    "ref_station_id": "ref_station_id",
    "wind_angle": "wind_angle",
    "reference": "reference",
    "wind_speed": "wind_speed",
    "units": "wind_speed_units",
    "status": "status",
}


def _vectors() -> "list":
    data = support.load_json("nmea/nmea0183_vectors.json")
    assert isinstance(data, dict)
    vectors = data["vectors"]
    assert len(vectors) >= 6
    return vectors


def _matches(got: "object", want: "object") -> "bool":
    """Compare one of our fields with the vectors' expectation, written for humans:
    "1929.045 S (= -19.484083 deg)", "R (relative)", "04", 100.0."""
    if isinstance(want, str) and "(= " in want:
        want = float(want.split("(= ")[1].split()[0])
    elif isinstance(want, str) and isinstance(got, str):
        return got == want.split(" ")[0]
    if isinstance(got, (int, float)) and not isinstance(got, bool):
        return support.close(got, float(want), 1e-7)  # type: ignore[arg-type]
    return got == want


def _checksum_of(sentence: "str") -> "int":
    body = sentence[1 : sentence.index("*")]
    c = 0
    for ch in body:
        c ^= ord(ch)
    return c


class NmeaVectors(unittest.TestCase):
    def test_checksums(self) -> "None":
        for v in _vectors():
            wire = support.unhex(v["wire_hex"])
            assert wire == v["sentence"].encode() + b"\r\n"
            body = wire[1 : wire.index(b"*")]
            assert nmea.checksum(body) == int(v["checksum_computed"], 16)
            assert nmea.checksum(body) == _checksum_of(v["sentence"])
            said = int(v["sentence"][-2:], 16)
            assert (said == nmea.checksum(body)) == v["checksum_ok"]
            assert len(wire) <= nmea.SPEC_MAX_LINE

    def test_parse_and_decode(self) -> "None":
        for v in _vectors():
            wire = support.unhex(v["wire_hex"])
            if not v["checksum_ok"]:
                assert v["expected"] == "ChecksumError"
                try:
                    nmea.parse_sentence(wire)
                except RemoteProtocolError as e:
                    assert e.reason == CHECKSUM
                else:
                    raise AssertionError("bad checksum accepted: " + v["sentence"])
                continue
            sentence = nmea.parse_sentence(wire)
            assert sentence.checksum == int(v["checksum_computed"], 16)
            assert "$" + sentence.talker + sentence.type == v["sentence"][:6]
            fields, found = nmea.decode(sentence)
            assert fields["checksum"] == v["checksum_computed"]
            for key, want in v["expected"].items():
                if key in ("is_valid", "note"):
                    continue
                got = fields[FIELD_NAMES[key]]
                assert _matches(got, want), (v["sentence"], key, got, want)
            names = [m.name for m in found]
            if v["expected"].get("is_valid") is True:
                assert "lat" in names and "lon" in names, names
            if "no fix" in str(v["expected"].get("note", "")):
                assert fields["lat"] is None and fields["lon"] is None and found == []

    def test_readings_units(self) -> "None":
        by_type = {}
        for v in _vectors():
            if v["checksum_ok"] and v["expected"]:
                [res] = nmea.describe(support.unhex(v["wire_hex"]), {})
                assert res["valid"] is True, res
                if v["sentence"][3:6] not in by_type:
                    by_type[v["sentence"][3:6]] = res
        gga = by_type["GGA"]
        got = {r["name"]: (r["value"], r["unit"]) for r in gga["readings"]}
        # 1929.045,S and 02410.506,E: exactly degrees + minutes / 60
        assert got["lat"] == (-(19 + 29.045 / 60), "lat")
        assert got["lon"] == (24 + 10.506 / 60, "lon")
        assert support.close(got["lat"][0], -19.484083, 1e-7)  # as the vectors file prints it
        assert got["altitude"] == (100.0, "m")
        mwv = by_type["MWV"]
        got = {r["name"]: (r["value"], r["unit"]) for r in mwv["readings"]}
        assert got["apparent_wind_angle"] == (271.0, "deg")
        speed, unit = got["apparent_wind_speed"]
        assert unit == "m/s" and abs(speed - 0.2 * 1852 / 3600) < 0.0005, speed
        gll = by_type["GLL"]
        got = {r["name"]: (r["value"], r["unit"]) for r in gll["readings"]}
        assert got["lat"] == (49 + 16.45 / 60, "lat")
        assert got["lon"] == (-(123 + 11.12 / 60), "lon")

    def test_stream_of_all_vectors(self) -> "None":
        """All vectors back to back, in pieces: every good one comes out, the bad one raises
        a checksum error and the stream goes on."""
        stream = b"garbage\x00\xff" + b"".join(support.unhex(v["wire_hex"]) for v in _vectors())
        good = sum(1 for v in _vectors() if v["checksum_ok"])
        for size in (1, 7, 64, len(stream)):
            reader = nmea.SentenceReader()
            sentences = []
            errors = []
            for i in range(0, len(stream), size):
                reader.receive_data(stream[i : i + size])
                while True:
                    try:
                        s = reader.next_sentence()
                    except RemoteProtocolError as e:
                        errors.append(e.reason)
                        continue
                    if s is None:
                        break
                    sentences.append(s.type)
            assert len(sentences) == good, (size, sentences)
            assert errors == [CHECKSUM], errors

    def test_describe_contract(self) -> "None":
        results = nmea.describe(b"".join(support.unhex(v["wire_hex"]) for v in _vectors()), {})
        assert len(results) == len(_vectors())
        for res, v in zip(results, _vectors()):  # noqa: B905 (MicroPython has no strict=)
            assert res["protocol"] == "nmea"
            assert res["valid"] is v["checksum_ok"], res
            if not v["checksum_ok"]:
                assert str(res["error"]).startswith("checksum:"), res

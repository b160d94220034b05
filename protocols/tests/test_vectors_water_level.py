"""Water level: the FMR20 radar's captured Modbus frames through the modbus codec and the
datum (protocols/tests/data/air_quality_vectors.json, "level"). CPython and MicroPython."""

import unittest

from protocols import level, modbus
from protocols.describe import describe
from protocols.reading import Measurement
from protocols.tests import support


def _fmr20():
    return support.local_json("air_quality_vectors.json")["level"]["fmr20"]


def _readings(v):
    wire = support.unhex(v["request"] + v["response"])
    results = describe("modbus", wire, {"map": "fmr20"})
    assert len(results) == 2, results
    assert results[0]["fields"]["kind"] == "request"
    return results[1]


class WaterLevelVectors(unittest.TestCase):
    def test_fmr20_captures_decode_to_the_logged_floats(self):
        for v in _fmr20():
            assert modbus.crc_ok(support.unhex(v["response"])), v["name"]
            r = _readings(v)
            assert r["valid"], r
            if "exception" in v:
                assert r["fields"]["exception"] == v["exception"]
                continue
            got = {x["name"]: (x["value"], x["unit"]) for x in r["readings"]}
            for name, unit in (("distance", "m"), ("temperature", "Cel")):
                assert support.close(got[name][0], v[name], abs_=1e-6), (name, got[name])
                assert got[name][1] == unit
            if "device_level" in v:
                assert support.close(got["device_level"][0], v["device_level"], abs_=1e-6)
                assert support.close(got["signal"][0], v["signal"], abs_=1e-6)

    def test_level_above_the_datum_from_the_radar_capture(self):
        ready = _fmr20()[0]
        r = _readings(ready)
        ms = [Measurement(x["name"], x["value"], x["unit"]) for x in r["readings"]]
        # the radar's flange 4.000 m above the canal's reference datum: 4.000 - 2.224 m
        got = level.Datum(4.0, level.DISTANCE).level(ms)
        assert got == Measurement("level", 1.776, "m"), got
        # a transmitter still warming up reads zeros: no level, not 4.000 m
        warming = _readings(_fmr20()[1])
        ms = [Measurement(x["name"], x["value"], x["unit"]) for x in warming["readings"]]
        assert level.Datum(4.0, level.DISTANCE).level(ms) is None

    def test_level_formulas(self):
        assert level.Datum(2.5, level.DEPTH).level_from(1.234) == 3.734
        # 9806.65 Pa of fresh water is 1 m; of sea water (1025 kg/m3) 0.976 m
        assert level.Datum(-1.0, level.PRESSURE).level_from(9806.65) == 0.0
        assert level.Datum(0.0, level.PRESSURE, 1025.0).level_from(9806.65) == 0.976
        assert level.Datum(10.0, level.DISTANCE).level_from(12.5) == -2.5

    def test_sdi12_identifications_name_the_level_model(self):
        # aI! answers as the OTT manuals print them (PLS; PLS 500), the simulated VEGAPULS C 21,
        # and sensors that are not level transmitters
        from protocols import sdi12

        cases = (
            ("013OTT HACHPLS000100123456\r\n", "ott_pls"),
            ("014OTTHYDROPLS500100123456\r\n", "ott_pls"),
            ("013VEGA    PS21  10043210987\r\n", "vegapuls_c21"),
            ("013OTT HACHPLUV2S100123456\r\n", None),
            ("513STS AG  4900001.51157252\r\n", None),
        )
        for answer, expected in cases:
            ident = sdi12.parse_response(answer.encode(), sdi12.identify(answer[0]))
            assert level.model_from_identification(ident.vendor, ident.model) == expected, answer

"""Ultrasonic conformance on ../shared/vectors/ultrasonic (CPython and MicroPython).

The MaxBotix and A02YYUW sections are decoded here; the RS-485 Modbus level sensor of the
same file belongs to the Modbus codec and its tests.
"""

import unittest

from protocols import ultrasonic
from protocols.tests import support

VECTORS = "ultrasonic/ultrasonic_vectors.json"

# (unit, MaxBotix digit count) -> the model that sends it; binary frames have 0 digits.
MODEL_BY_UNIT = {
    ("in", 3): "lv",
    ("cm", 3): "xl",
    ("cm", 4): "xl10",
    ("mm", 4): "hrlv",
    ("mm", 0): "a02yyuw",
    ("cm", 0): "sen0627",
}
MM_PER_UNIT = {"mm": 1, "cm": 10, "in": 25.4}
M_DECIMALS = {"mm": 3, "cm": 2, "in": 4}


def _section(name):
    data = support.load_json(VECTORS)
    return data[name]


def _expected(vector):
    """(value, unit) a vector promises, from expected_mm/_cm/_in or the 'expected' text."""
    for unit in ("mm", "cm", "in"):
        key = "expected_" + unit
        if key in vector:
            return vector[key], unit
    text = vector["expected"]
    digits = ""
    for c in text:
        if "0" <= c <= "9":
            digits += c
        elif digits:
            break
    rest = text[len(digits) :].lower()
    if "inch" in rest:
        unit = "in"
    elif "cm" in rest or "centim" in rest:
        unit = "cm"
    else:
        unit = "mm"
    return int(digits), unit


def _model(vector, unit, digits):
    name = vector.get("model")
    if name is not None and name.lower() in ultrasonic.MODELS:
        return name.lower()
    return MODEL_BY_UNIT[(unit, digits)]


def _check_distance(vector, frame_format):
    data = support.unhex(vector["hex"])
    value, unit = _expected(vector)
    if vector.get("checksum_ok") is False:
        results = ultrasonic.describe(data, {})
        assert len(results) == 1, results
        assert not results[0]["valid"]
        assert results[0]["error"].startswith("checksum:"), results[0]["error"]
        return
    digits = len(data) - 2 if frame_format == ultrasonic.MAXBOTIX else 0
    if frame_format == ultrasonic.MAXBOTIX and data[-2:-1] == b" ":
        digits -= 1
    model = _model(vector, unit, digits)
    results = ultrasonic.describe(data, {"model": model})
    assert len(results) == 1, results
    r = results[0]
    assert r["valid"], r
    assert r["error"] is None
    fields = r["fields"]
    assert fields["format"] == frame_format
    assert fields["model"] == model
    assert fields["model_assumed"] is False
    assert fields["raw_distance"] == value
    assert fields["raw_unit"] == unit
    if fields["status"] == ultrasonic.STATUS_NO_TARGET:
        assert r["readings"] == []
        return
    expected_m = round(value * MM_PER_UNIT[unit] / 1000.0, M_DECIMALS[unit])
    assert r["readings"] == [{"name": "distance", "value": expected_m, "unit": "m"}], r


class UltrasonicVectors(unittest.TestCase):
    def test_maxbotix_vectors_decode_to_their_documented_distance(self):
        vectors = _section("maxbotix_ascii")["vectors"]
        assert vectors
        for v in vectors:
            _check_distance(v, ultrasonic.MAXBOTIX)

    def test_maxbotix_vectors_follow_the_documented_frame(self):
        # facts: ^R(\d{3,4})\r$ ; the frame bytes and the ascii column agree
        for v in _section("maxbotix_ascii")["vectors"]:
            data = support.unhex(v["hex"])
            assert data[:1] == b"R" and data[-1:] == b"\r", data
            body = data[1:-1].rstrip(b" ")
            assert 3 <= len(body) <= 4 and all(0x30 <= c <= 0x39 for c in body), data
            if "ascii" in v:
                assert v["ascii"].replace("\\r", "\r").encode() == data

    def test_maxbotix_three_and_four_digits_default_to_inches_and_millimetres(self):
        # Without a configured model: 3 digits read as LV-MaxSonar-EZ inches, 4 as HR* mm.
        for v in _section("maxbotix_ascii")["vectors"]:
            data = support.unhex(v["hex"])
            value, _unit = _expected(v)
            if "model" in v:
                continue
            (r,) = ultrasonic.describe(data, {})
            assert r["valid"]
            assert r["fields"]["model_assumed"] is True
            assert r["fields"]["raw_unit"] == {3: "in", 4: "mm"}[len(data.rstrip(b"\r ")) - 1]
            assert r["fields"]["raw_distance"] == value

    def test_a02yyuw_vectors_decode_with_their_checksum(self):
        vectors = _section("a02yyuw_me007ys_uart")["vectors"]
        assert vectors
        for v in vectors:
            _check_distance(v, ultrasonic.A02YYUW)

    def test_a02yyuw_checksum_is_the_documented_sum(self):
        for v in _section("a02yyuw_me007ys_uart")["vectors"]:
            data = support.unhex(v["hex"])
            assert len(data) == 4 and data[0] == 0xFF
            ok = (0xFF + data[1] + data[2]) & 0xFF == data[3]
            assert ok == v.get("checksum_ok", True), v
            if ok:
                (r,) = ultrasonic.describe(data, {})
                assert r["fields"]["checksum"] == "0x%02X" % data[3]
                assert r["fields"]["raw_distance"] == data[1] * 256 + data[2]

    def test_a02yyuw_vector_with_a_bad_sum_is_rejected(self):
        # Derived from each published frame: one wrong SUM must be refused with the reason.
        for v in _section("a02yyuw_me007ys_uart")["vectors"]:
            data = support.unhex(v["hex"])
            bad = data[:3] + bytes(((data[3] + 1) & 0xFF,))
            results = ultrasonic.describe(bad, {})
            assert [r["valid"] for r in results] == [False], results
            assert results[0]["error"].startswith("checksum:")

    def test_every_vector_frame_through_one_noisy_stream_byte_by_byte(self):
        frames = [support.unhex(v["hex"]) for v in _section("maxbotix_ascii")["vectors"]]
        frames += [
            support.unhex(v["hex"])
            for v in _section("a02yyuw_me007ys_uart")["vectors"]
            if v.get("checksum_ok", True)
        ]
        noise = b"\x00\x13 ~"
        stream_bytes = noise + noise.join(frames) + noise
        stream = ultrasonic.UltrasonicStream()
        got = []
        for i in range(len(stream_bytes)):
            stream.receive_data(stream_bytes[i : i + 1])
            while True:
                event = stream.next_event()
                if event is ultrasonic.NEED_DATA:
                    break
                got.append(event)
        stream.finish()
        assert [f.data for f in got] == frames
        assert stream.skipped_total == len(noise) * (len(frames) + 1)
        assert all(f.skipped == len(noise) for f in got)

    def test_fill_level_follows_the_note(self):
        # fill_level_note: fill % = (empty - measured) / (empty - full)
        note = support.load_json(VECTORS)["fill_level_note"]
        assert "empty_distance - measured" in note
        geometry = ultrasonic.BinGeometry(1200, 200)
        assert geometry.fill(700) == (50.0, False)
        assert geometry.fill(200) == (100.0, False)
        assert geometry.fill(1200) == (0.0, False)
        assert geometry.fill(1953) == (0.0, True)
        assert geometry.fill(150) == (100.0, True)
        # each millimetre A02YYUW vector in a container 1 m deeper than its reading, full at 0.3 m
        for v in _section("a02yyuw_me007ys_uart")["vectors"]:
            if "expected_mm" not in v or v.get("checksum_ok") is False:
                continue
            mm = v["expected_mm"]
            empty = mm + 1000
            (r,) = ultrasonic.describe(support.unhex(v["hex"]), {"empty_mm": empty, "full_mm": 300})
            fill = [x for x in r["readings"] if x["name"] == "fill"]
            expected = round((empty - mm) * 100.0 / (empty - 300), 1)
            assert fill == [{"name": "fill", "value": expected, "unit": "%"}], r
            assert r["fields"]["empty_mm"] == empty and r["fields"]["full_mm"] == 300

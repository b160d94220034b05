"""Particulate-matter codecs on our own vectors (protocols/tests/data/air_quality_vectors.json,
origins named in the file): PMS, SDS011, SPS30. Runs under CPython and MicroPython."""

import unittest

from protocols import pms, sds011, sps30
from protocols.tests import support

VECTORS = "air_quality_vectors.json"


def _section(name):
    return support.local_json(VECTORS)[name]


def _readings(result):
    return {r["name"]: (r["value"], r["unit"]) for r in result["readings"]}


def _frames(data):
    stream = sps30.ShdlcStream(sps30.MISO)
    stream.receive_data(data)
    return support.drain(stream)


class AirQualityVectors(unittest.TestCase):
    def test_pms_captures_decode_to_their_published_values(self):
        frames = _section("pms")["frames"]
        assert len(frames) >= 3
        for v in frames:
            results = pms.describe(support.unhex(v["hex"]), {})
            assert len(results) == 1, results
            (r,) = results
            if v.get("checksum_ok") is False:
                assert not r["valid"] and r["error"].startswith("checksum:"), r
                continue
            assert r["valid"], r
            f = r["fields"]
            for key in ("pm1_cf1", "pm25_cf1", "pm10_cf1", "version", "error_code"):
                assert f[key] == v[key], (key, f[key], v[key])
            got = _readings(r)
            for key in ("pm1", "pm25", "pm10"):
                assert got[key] == (v[key], "ug/m3"), (key, got[key])
            sizes = ("0_3", "0_5", "1_0", "2_5", "5_0", "10")
            for i in range(len(sizes)):
                size, count = sizes[i], v["counts_per_0_1l"][i]
                value, unit = got["count_over_" + size + "um"]
                assert unit == "/cm3" and support.close(value, count / 100), (size, value)

    def test_pms_commands_are_built_byte_for_byte(self):
        builders = {
            (pms.CMD_READ, 0): pms.read_passive,
            (pms.CMD_MODE, 0): lambda: pms.set_mode(False),
            (pms.CMD_MODE, 1): lambda: pms.set_mode(True),
            (pms.CMD_SLEEP, 0): pms.sleep,
            (pms.CMD_SLEEP, 1): pms.wake,
        }
        for v in _section("pms")["commands"]:
            data = support.unhex(v["hex"])
            assert builders[(v["command"], v["data"])]() == data, v["name"]
            assert pms.parse_command(data) == (v["command"], v["data"])

    def test_pms_replies_decode(self):
        for v in _section("pms")["replies"]:
            (r,) = pms.describe(support.unhex(v["hex"]), {})
            assert r["valid"], r
            assert r["fields"]["kind"] == "reply"
            assert r["fields"]["value"] == v["value"]
            assert r["fields"]["mode"] == ("active" if v["value"] else "passive")
            assert pms.build_reply(v["command"], v["value"]) == support.unhex(v["hex"])

    def test_pms_captures_split_anywhere_in_a_stream(self):
        frames = [support.unhex(v["hex"]) for v in _section("pms")["frames"] if "pm25" in v]
        wire = b"\x00\x42" + frames[0] + b"\x4d\x42" + frames[1] + frames[0][:7]
        for cut in range(1, len(wire)):
            stream = pms.PmsStream()
            events = []
            for part in (wire[:cut], wire[cut:]):
                stream.receive_data(part)
                events += support.drain(stream)
            assert [e.data for e in events if isinstance(e, pms.PmsFrame)] == frames[:2], cut
        try:
            stream.finish()
        except pms.RemoteProtocolError as e:
            assert e.reason == "truncated"
        else:
            raise AssertionError("a cut frame at the end must be reported")

    def test_sds011_frames_decode_to_the_datasheet_values(self):
        for v in _section("sds011")["frames"]:
            results = sds011.describe(support.unhex(v["hex"]), {})
            assert len(results) == 1, results
            (r,) = results
            if v.get("checksum_ok") is False:
                assert not r["valid"] and r["error"].startswith("checksum:"), r
                continue
            assert r["valid"], r
            if "pm25" in v:
                assert _readings(r) == {"pm25": (v["pm25"], "ug/m3"), "pm10": (v["pm10"], "ug/m3")}
                assert r["fields"]["device_id"] == v["device_id"]
                continue
            assert r["fields"]["kind"] == "reply"
            assert r["fields"]["command"] == sds011.COMMANDS[v["command"]]
            for key, value in v["fields"].items():
                assert r["fields"][key] == value, (key, r["fields"])
            assert r["readings"] == []

    def test_sds011_commands_are_built_byte_for_byte(self):
        for v in _section("sds011")["commands"]:
            builder = getattr(sds011, v["builder"])
            assert builder(*v.get("args", [])) == support.unhex(v["hex"]), v["name"]
            (r,) = sds011.describe(support.unhex(v["hex"]), {})
            assert r["valid"] and r["fields"]["kind"] == "command", r

    def test_sds011_builder_round_trips_the_datasheet_frame(self):
        frame = support.unhex(_section("sds011")["frames"][0]["hex"])
        assert sds011.build_data(1236, 2618, 0xA160) == frame

    def test_sps30_host_frames_are_built_byte_for_byte(self):
        for v in _section("sps30")["mosi"]:
            data = support.unhex(v["hex"])
            assert sps30.mosi(v["command"], support.unhex(v["data"])) == data, v["name"]
            (r,) = sps30.describe(data, {"direction": "mosi"})
            assert r["valid"], r
            assert r["fields"]["command"] == sps30.COMMANDS[v["command"]]
            assert r["fields"]["data"] == v["data"]
        assert sps30.start_measurement() == support.unhex("7e0000020103f97e")
        assert sps30.read_values() == support.unhex("7e000300fc7e")

    def test_sps30_sensor_answers_decode(self):
        for v in _section("sps30")["miso"]:
            data = support.unhex(v["hex"])
            results = sps30.describe(data, {"direction": "miso"})
            assert len(results) == 1, results
            (r,) = results
            f = r["fields"]
            assert f["command"] == sps30.COMMANDS[v["command"]], f
            assert f["state"] == v["state"]
            if "error" in v:
                assert not r["valid"] and r["error"] == "exception: " + v["error"], r
                continue
            assert r["valid"], r
            for key, value in v.get("fields", {}).items():
                assert f[key] == value, (key, f)
            if "values" in v:
                got = [(x["name"], x["value"], x["unit"]) for x in r["readings"]]
                assert len(got) == len(v["values"])
                for i in range(len(got)):
                    name, value, unit = got[i]
                    expected = v["values"][i]
                    want_name, want_unit = sps30.NAMES[i]
                    assert (name, unit) == (want_name, want_unit)
                    assert support.close(value, expected, abs_=1e-4), (name, value, expected)

    def test_sps30_stuffing_round_trips(self):
        for v in _section("sps30")["miso"]:
            data = support.unhex(v["hex"])
            (frame,) = [e for e in _frames(data) if isinstance(e, sps30.ShdlcFrame)]
            again = sps30.miso(frame.command, frame.state, frame.data)
            assert again == data, (v["name"], again)

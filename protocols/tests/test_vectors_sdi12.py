"""SDI-12 conformance on ../shared/vectors/sdi12: the spec's CRC examples, its plain
exchanges, and every command/response transcript printed in the spec text itself.

Runs under pytest and under MicroPython (`make micropython`): plain asserts only.
"""

import unittest

from protocols import sdi12
from protocols.errors import CHECKSUM, MALFORMED, RemoteProtocolError
from protocols.tests import support

SPEC = "sdi12/SDI-12_version1_3_2016-01-28.txt"


def _vectors() -> "dict":
    data = support.load_json("sdi12/sdi12_vectors.json")
    assert isinstance(data, dict)
    return data


def _expected_values(text: "str") -> "list":
    """'+1.23-4.5+7' -> [1.23, -4.5, 7], independently of the codec."""
    out = []
    for token in text.replace("+", " +").replace("-", " -").split():
        out.append(float(token) if "." in token else int(token))
    return out


def _same_values(got: "list", want: "list") -> "bool":
    if len(got) != len(want):
        return False
    # (no zip(strict=...): MicroPython)
    for i in range(len(got)):
        if type(got[i]) is not type(want[i]) or not support.close(got[i], want[i]):
            return False
    return True


def _wire(text: "str") -> "bytes":
    return text.replace("<CR><LF>", "\r\n").encode()


def _raises(reason: "str", fn: "object", *args: "object") -> "None":
    try:
        fn(*args)
    except RemoteProtocolError as e:
        assert e.reason == reason, (reason, e.reason, str(e))
        return
    raise AssertionError("no RemoteProtocolError(%s) for %r" % (reason, args))


def _spec_transcripts() -> "list[str]":
    """The command/response examples printed in the spec text (sections 4.4.x), in order."""
    text = support.read_text(SPEC)
    lines = []
    for line in text.split("\n"):
        line = line.strip()
        if line.endswith("<CR><LF>") and line[:1] in "0123456789":
            lines.append(line)
    return lines


class Sdi12Vectors(unittest.TestCase):
    def test_crc_check_value(self) -> "None":
        # CRC-16/ARC("123456789") = 0xBB3D, as the vectors file states.
        assert "0xBB3D" in _vectors()["crc_algorithm"]
        assert sdi12.crc16(b"123456789") == 0xBB3D
        assert sdi12.encode_crc(0xFC5A) == b"OqZ"

    def test_crc_vectors_parse_with_and_without_context(self) -> "None":
        vectors = _vectors()["crc_vectors"]
        assert len(vectors) >= 10
        for v in vectors:
            raw = support.unhex(v["response_hex"])
            assert raw == _wire(v["response_ascii"])
            want = _expected_values(v["values"])
            for command, crc in ((v["command"], True), (v["command"], None), (None, None)):
                r = sdi12.parse_response(raw, command, crc)
                assert isinstance(r, sdi12.DataValues), r
                assert r.address == v["address"]
                assert _same_values(r.values, want), (r.values, want)
                assert r.crc == int(v["crc16_value"], 16), (hex(r.crc or 0), v["crc16_value"])
                assert sdi12.encode_crc(r.crc) == v["crc_chars"].encode()
            # the CRC characters are not values: refused when no CRC may be present
            _raises(MALFORMED, sdi12.parse_response, raw, v["command"], False)

    def test_crc_vectors_rebuilt_by_the_sensor_side(self) -> "None":
        for v in _vectors()["crc_vectors"]:
            raw = support.unhex(v["response_hex"])
            values = v["values"].replace("+", " +").replace("-", " -").split()
            assert sdi12.format_data(v["address"], values, crc=True) == raw

    def test_crc_vectors_corrupted(self) -> "None":
        for v in _vectors()["crc_vectors"]:
            raw = support.unhex(v["response_hex"])
            body = raw[:-2]
            # a wrong CRC character
            for i in (1, 2, 3):
                bad = bytearray(body)
                bad[-i] = 0x40 | ((bad[-i] + 1) & 0x3F) if i < 3 else 0x40 | ((bad[-i] + 1) & 0x0F)
                _raises(CHECKSUM, sdi12.parse_response, bytes(bad) + b"\r\n", v["command"], True)
            # a changed digit in the values
            bad = bytearray(body)
            pos = 2
            while not (0x30 <= bad[pos] <= 0x39):
                pos += 1
            bad[pos] = 0x30 + ((bad[pos] - 0x30 + 1) % 10)
            _raises(CHECKSUM, sdi12.parse_response, bytes(bad) + b"\r\n", v["command"], True)
            # CRC requested but stripped
            stripped = body[:-3] + b"\r\n"
            _raises(CHECKSUM, sdi12.parse_response, stripped, v["command"], True)
            # describe says so
            [res] = sdi12.describe(bytes(bad) + b"\r\n", {})
            assert res["valid"] is False and str(res["error"]).startswith("checksum:")

    def test_plain_exchanges(self) -> "None":
        exchanges = _vectors()["plain_exchanges"]
        assert len(exchanges) >= 12
        for ex in exchanges:
            command = sdi12.parse_command(ex["cmd"].encode())
            resp = _wire(ex["resp"])
            r = sdi12.parse_response(resp, command)
            assert r == sdi12.parse_response(resp)  # recognised without the command too
            body = ex["resp"].replace("<CR><LF>", "")[1:]
            if command.kind == sdi12.ACKNOWLEDGE:
                assert isinstance(r, sdi12.Acknowledge) and r.address == ex["cmd"][0]
            elif command.kind in (sdi12.MEASURE, sdi12.CONCURRENT):
                assert isinstance(r, sdi12.MeasurementStart)
                assert r.seconds == int(body[:3]) and r.count == int(body[3:])
                assert r.concurrent == (command.kind == sdi12.CONCURRENT)
                if "ttt=" in ex["meaning"]:
                    assert "ttt=%s" % body[:3] in ex["meaning"]
            else:
                assert isinstance(r, sdi12.DataValues)
                assert _same_values(r.values, _expected_values(body))
                if "values" in ex:
                    assert _same_values(r.values, ex["values"]), (r.values, ex["values"])
            if "then_service_request" in ex:
                sr = sdi12.parse_response(_wire(ex["then_service_request"]), ex["cmd"][0] + "!")
                assert sr == sdi12.Acknowledge(ex["cmd"][0])

    def test_describe_every_vector(self) -> "None":
        v = _vectors()
        for c in v["crc_vectors"]:
            raw = c["command"].encode() + support.unhex(c["response_hex"])
            [res] = sdi12.describe(raw, {})
            assert res["valid"] is True, res
            fields = res["fields"]
            assert isinstance(fields, dict)
            assert fields["crc"] == c["crc_chars"] and fields["command"] == c["command"]
            want = _expected_values(c["values"])
            readings = res["readings"]
            assert isinstance(readings, list) and len(readings) == len(want)
            for i in range(len(want)):
                reading = readings[i]
                assert reading["name"] == "value%d" % (i + 1) and reading["unit"] is None
                assert support.close(reading["value"], want[i])
        for ex in v["plain_exchanges"]:
            [res] = sdi12.describe(ex["cmd"].encode() + _wire(ex["resp"]), {})
            assert res["valid"] is True, res

    def test_vaisala_names_mapping(self) -> "None":
        # WMT700: 1D0! -> 1+2.7+85.2-0.2-2.7+770.5CAH ; names come from configuration
        c = _vectors()["crc_vectors"][-1]
        assert c["crc_chars"] == "CAH"
        names = "wind_speed:m/s,wind_direction:deg,u,v"
        [res] = sdi12.describe(support.unhex(c["response_hex"]), {"names": names})
        got = [(r["name"], r["value"], r["unit"]) for r in res["readings"]]
        assert got == [
            ("wind_speed", 2.7, "m/s"),
            ("wind_direction", 85.2, "deg"),
            ("u", -0.2, None),
            ("v", -2.7, None),
            ("value5", 770.5, None),
        ], got

    def test_spec_transcripts_describe(self) -> "None":
        lines = _spec_transcripts()
        assert len(lines) >= 50, len(lines)
        results = sdi12.describe(_wire("".join(lines)), {})
        assert all(r["valid"] for r in results), [r for r in results if not r["valid"]]
        kinds = [r["fields"]["kind"] for r in results]
        assert kinds.count("service_request") == 9, kinds
        assert kinds.count("measurement") == 17, kinds
        # 4.4.8.1: "0R0!0+3.14"
        r0 = [r for r in results if r["fields"].get("command") == "0R0!"]
        assert r0 and r0[0]["readings"] == [{"name": "value1", "value": 3.14, "unit": None}]

    def test_spec_transcripts_through_the_master_sequence(self) -> "None":
        """Replay every example of the spec through MeasureSequence: each sensor's commands
        must be the ones the spec shows, and the values those of its data responses."""
        seqs = {}
        pending = {}
        wanted = {}
        done = 0

        def finish(address: "str") -> "int":
            if address in seqs and wanted[address]:
                result = pending[address]
                assert isinstance(result, sdi12.Done), (address, result)
                assert _same_values(result.values, wanted[address])
                assert seqs[address].count == len(wanted[address])
                return 1
            return 0

        for line in _spec_transcripts():
            if "!" in line:
                cmd_text, resp_text = line.split("!", 1)
                cmd_text += "!"
            else:
                cmd_text, resp_text = "", line
            resp = _wire(resp_text)
            address = resp_text[0]
            if not cmd_text:  # a service request
                action = seqs[address].receive(resp)
                assert isinstance(action, sdi12.Send) and action.wake is False
                pending[address] = action
                continue
            command = sdi12.parse_command(cmd_text.encode())
            if command.kind in (sdi12.MEASURE, sdi12.CONCURRENT, sdi12.VERIFY):
                done += finish(address)
                seq = sdi12.MeasureSequence(
                    command.address,
                    command.index,
                    command.kind == sdi12.CONCURRENT,
                    command.crc,
                    command.kind == sdi12.VERIFY,
                )
                first = seq.start()
                assert first.command == cmd_text.encode() and first.wake
                assert seq.receive(first.command) is None  # our own echo
                seqs[address] = seq
                wanted[address] = []
                pending[address] = seq.receive(resp)
                continue
            if command.kind != sdi12.DATA or address not in seqs or seqs[address].done:
                continue  # e.g. the spec text lost "1CC!101504" of 4.4.12.3 f
            seq = seqs[address]
            action = pending[address]
            if isinstance(action, sdi12.Wait):  # no service request: the time ran out
                assert action.seconds > 0
                action = seq.elapsed()
                assert isinstance(action, sdi12.Send) and action.wake
            assert isinstance(action, sdi12.Send), action
            assert action.command == cmd_text.encode(), (action, cmd_text)
            body = resp_text.replace("<CR><LF>", "")[1:]
            wanted[address].extend(_expected_values(body[:-3] if seq.crc else body))
            pending[address] = seq.receive(resp)
        for address in seqs:
            done += finish(address)
        # 4.4.8.4 a-e, 4.4.8.5 (two sensors), 4.4.9.1 a-b, 4.4.11.1, 4.4.12.3 a-e and f (sensor 0)
        assert done == 16, done

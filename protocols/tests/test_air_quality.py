"""PMS, SDS011, SPS30 codecs: round trips, stream resynchronisation, fuzz, `estran decode`."""

import json
import struct

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from estran.cli import cli
from protocols import errors, pms, sds011, sps30
from protocols.tests.support import check_contract, drain, local_json

VECTORS = local_json("air_quality_vectors.json")
assert isinstance(VECTORS, dict)

# -- round trips ---------------------------------------------------------------------------


@given(st.lists(st.integers(0, 0xFFFF), min_size=13, max_size=13))
def test_pms_frames_round_trip(words: list[int]) -> None:
    frame = pms.build_frame(words)
    assert len(frame) == 32
    stream = pms.PmsStream()
    stream.receive_data(frame)
    (event,) = drain(stream)
    assert isinstance(event, pms.PmsFrame)
    assert list(event.words) == words
    values = {m.name: m.value for m in pms.measurements(event)}
    assert (values["pm1"], values["pm25"], values["pm10"]) == tuple(words[3:6])


def test_pms_models_read_their_own_words() -> None:
    words = [10, 12, 14, 9, 11, 13, 3000, 900, 120, 10, 0xFF38, 655, 0x9700]  # -20.0 degC
    frame = pms.build_frame(words)
    (r,) = pms.describe(frame, {"model": "pms5003t"})
    got = {x["name"]: x["value"] for x in r["readings"]}
    assert got["temperature"] == -20.0 and got["humidity"] == 65.5
    assert "count_over_5_0um" not in got
    st_words = [1, 2, 3, 4, 5, 6, 700, 300, 40, 5, 1, 0, 12, 215, 480, 0, 0x9700]
    (r,) = pms.describe(pms.build_frame(st_words), {})
    assert r["fields"]["model"] == "pms5003st" and r["fields"]["model_assumed"] is True
    got = {x["name"]: x["value"] for x in r["readings"]}
    assert (got["formaldehyde"], got["temperature"], got["humidity"]) == (12, 21.5, 48.0)
    # a 13-word frame cannot come from a PMS5003ST
    (r,) = pms.describe(frame, {"model": "pms5003st"})
    assert not r["valid"] and r["error"].startswith("malformed:")
    with pytest.raises(errors.LocalProtocolError):
        pms.describe(frame, {"model": "pms9999"})


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_sds011_frames_round_trip(pm25: int, pm10: int, device: int) -> None:
    frame = sds011.build_data(pm25, pm10, device)
    stream = sds011.SdsStream()
    stream.receive_data(frame)
    (event,) = drain(stream)
    assert isinstance(event, sds011.SdsFrame)
    assert (event.pm25, event.pm10, event.device_id) == (pm25 / 10, pm10 / 10, device)


def test_sds011_working_period_is_bounded() -> None:
    for bad in (-1, 31, 1.5, True):
        with pytest.raises(errors.LocalProtocolError):
            sds011.set_working_period(bad)  # type: ignore[arg-type]


@given(st.integers(0, 0xFF), st.binary(max_size=255))
def test_shdlc_frames_round_trip_through_stuffing(cmd: int, data: bytes) -> None:
    for direction, wire in (
        (sps30.MOSI, sps30.mosi(cmd, data)),
        (sps30.MISO, sps30.miso(cmd, 0, data)),
    ):
        assert b"\x11" not in wire and b"\x13" not in wire
        assert wire.count(b"\x7e") == 2
        stream = sps30.ShdlcStream(direction)
        stream.receive_data(wire)
        (event,) = drain(stream)
        assert isinstance(event, sps30.ShdlcFrame)
        assert (event.command, event.data, event.direction) == (cmd, data, direction)


@given(st.lists(st.floats(0, 1000, width=32), min_size=10, max_size=10))
def test_sps30_float_values_round_trip(values: list[float]) -> None:
    frame = sps30.miso(sps30.READ_VALUES, 0, sps30.encode_values(values))
    stream = sps30.ShdlcStream()
    stream.receive_data(frame)
    (event,) = drain(stream)
    got = [m.value for m in sps30.values(event)]
    assert got == [round(struct.unpack(">f", struct.pack(">f", v))[0], 4) for v in values]


def test_sps30_uint16_values_and_bad_lengths() -> None:
    frame = sps30.miso(
        sps30.READ_VALUES, 0, sps30.encode_values([1, 2, 3, 4, 5, 6, 7, 8, 9, 500], False)
    )
    (r,) = sps30.describe(frame, {})
    assert r["fields"]["format"] == "uint16"
    assert r["readings"][-1] == {"name": "typical_size", "value": 0.5, "unit": "um"}
    (r,) = sps30.describe(sps30.miso(sps30.READ_VALUES, 0, b"\x00" * 12), {})
    assert not r["valid"] and r["error"].startswith("malformed:")
    nan = sps30.miso(sps30.READ_VALUES, 0, b"\x7f\xc0\x00\x00" * 10)
    (r,) = sps30.describe(nan, {})
    assert not r["valid"] and "not a number" in r["error"]


# -- streams: noise, resynchronisation, bounded buffers --------------------------------------


def test_streams_resynchronise_after_noise_and_bad_frames() -> None:
    good = pms.build_frame([0] * 3 + [1, 2, 3] + [0] * 7)
    bad = bytearray(good)
    bad[10] ^= 0xFF
    stream = pms.PmsStream()
    stream.receive_data(b"\x42\x4d\xff\xff" + bytes(bad) + b"BB" + good)
    out = drain(stream)
    assert [e for e in out if isinstance(e, str)] == ["malformed", "checksum"]
    assert [e.words[4] for e in out if isinstance(e, pms.PmsFrame)] == [2]

    good = sds011.build_data(100, 200)
    stream2 = sds011.SdsStream()
    stream2.receive_data(b"\xaa\xaa\xc0\x00" + good + b"\xaa\xc0" + good)
    got = drain(stream2)
    assert [e.pm25 for e in got if isinstance(e, sds011.SdsFrame)] == [10.0, 10.0]

    good = sps30.miso(sps30.READ_VALUES, 0, b"")
    stream3 = sps30.ShdlcStream()
    stream3.receive_data(b"\x7e\x00\x03\x7d\x00" + good[1:] + b"junk" + good)
    got3 = drain(stream3)
    # the bad escape spoils the first frame, the junk between two flags is one more bad
    # frame, and the last frame still comes out whole
    assert [e for e in got3 if isinstance(e, str)] == ["malformed", "malformed"]
    assert sum(isinstance(e, sps30.ShdlcFrame) for e in got3) == 1


@pytest.mark.parametrize(
    "make",
    [
        lambda: pms.PmsStream(max_buffer=64),
        lambda: sds011.SdsStream(max_buffer=64),
        lambda: sps30.ShdlcStream(max_buffer=sps30.MAX_STUFFED),
    ],
)
def test_random_bytes_only_raise_remote_protocol_errors(make: object) -> None:
    @settings(deadline=None, max_examples=200)
    @given(st.binary(max_size=800), st.integers(1, 64))
    def check(data: bytes, step: int) -> None:
        stream = make()  # type: ignore[operator]
        for i in range(0, len(data), step):
            try:
                stream.receive_data(data[i : i + step])
            except errors.RemoteProtocolError as e:
                assert e.reason == errors.OVERFLOW
            for event in drain(stream):
                assert not isinstance(event, str) or event in errors.REASONS
            assert len(stream._buf) <= stream.max_buffer
        try:
            stream.finish()
        except errors.RemoteProtocolError as e:
            assert e.reason == errors.TRUNCATED

    check()


@settings(deadline=None, max_examples=300)
@given(st.binary(max_size=3000), st.sampled_from(["pms", "sds011", "sps30"]))
def test_describe_never_raises_on_garbage(data: bytes, protocol: str) -> None:
    module = {"pms": pms, "sds011": sds011, "sps30": sps30}[protocol]
    check_contract(module.describe(data, {}), protocol)


def _mutate(data: bytes, draw: st.DataObject) -> bytes:
    mutated = bytearray(data)
    for _ in range(draw.draw(st.integers(0, 4))):
        if not mutated:
            break
        i = draw.draw(st.integers(0, len(mutated) - 1))
        op = draw.draw(st.sampled_from(["flip", "drop", "dup"]))
        if op == "flip":
            mutated[i] ^= 1 << draw.draw(st.integers(0, 7))
        elif op == "drop":
            del mutated[i]
        else:
            mutated.insert(i, mutated[i])
    return bytes(mutated)


def _vector_wire() -> list[tuple[str, bytes]]:
    out = []
    for section, keys in (
        ("pms", ("frames", "replies")),
        ("sds011", ("frames", "commands")),
        ("sps30", ("mosi", "miso")),
    ):
        for key in keys:
            for v in VECTORS[section][key]:
                out.append((section, bytes.fromhex(v["hex"].replace(" ", ""))))
    return out


@settings(deadline=None, max_examples=300)
@given(st.sampled_from(_vector_wire()), st.data())
def test_mutated_vectors_only_give_typed_errors(
    item: tuple[str, bytes], draw: st.DataObject
) -> None:
    protocol, data = item
    module = {"pms": pms, "sds011": sds011, "sps30": sps30}[protocol]
    for r in module.describe(_mutate(data, draw), {}):
        assert r["valid"] or str(r["error"]).split(":")[0] in errors.REASONS


# -- estran decode ---------------------------------------------------------------------------


def _decode(*args: str) -> tuple[int, list[dict[str, object]]]:
    res = CliRunner().invoke(cli, ["decode", *args, "--json"])
    return res.exit_code, [json.loads(line) for line in res.output.splitlines() if line.strip()]


def test_estran_decode_pms_sds011_sps30() -> None:
    code, out = _decode("pms", VECTORS["pms"]["frames"][0]["hex"])
    assert code == 0 and out[0]["readings"][1] == {"name": "pm25", "value": 4, "unit": "ug/m3"}
    code, out = _decode("sds011", "AA C0 D4 04 3A 0A A1 60 1D AB")
    assert code == 0 and [r["value"] for r in out[0]["readings"]] == [123.6, 261.8]
    code, out = _decode("sps30", VECTORS["sps30"]["miso"][0]["hex"])
    assert code == 0 and len(out[0]["readings"]) == 10
    code, out = _decode("sds011", "AA C0 D4 04 3A 0A A1 60 1E AB")
    assert code == 1 and out[0]["error"].startswith("checksum:")
    code, out = _decode("pms", "424d001c")
    assert code == 1 and out[0]["error"].startswith("truncated:")
    # a data frame cut after 7 bytes is a truncated frame, not a command with a bad checksum
    code, out = _decode("pms", "424d001c000a00")
    assert code == 1 and out[0]["error"].startswith("truncated:"), out
    code, out = _decode("pms", "424de10000 0170")  # passive mode: a command
    assert code == 0 and out[0]["fields"]["command"] == "mode", out
    res = CliRunner().invoke(cli, ["decode", "pms", "424d", "--model", "nope", "--json"])
    assert res.exit_code == 2 and "unknown PMS model" in res.output
    # a frame that reads both ways: the direction decides
    ambiguous = "7E008001007D5E7E"
    code, out = _decode("sps30", ambiguous, "--direction", "mosi")
    assert code == 0 and out[0]["fields"]["direction"] == "mosi", out
    code, out = _decode("sps30", ambiguous, "--direction", "miso")
    assert code == 1 and out[0]["error"] == "exception: wrong data length for this command"


def test_hostile_input_takes_milliseconds() -> None:
    import time

    hostile = (
        b"BM" * 50_000,
        b"BM\x00\x1c" * 25_000,
        b"\xaa\xc0" * 50_000,
        b"\xaa\xb4" * 50_000,
        b"\x7e" * 100_000,
        b"\x7e\x7d" * 50_000,
        (b"\x7e" + b"\x00" * 600) * 150,
    )
    for data in hostile:
        for module in (pms, sds011, sps30):
            t = time.process_time()
            results = module.describe(data, {})
            assert all(not r["valid"] for r in results) or module is not pms
            assert time.process_time() - t < 5.0  # CPU seconds, whatever else runs; typically ms

"""Ultrasonic codec: builders, stream splitting, models and geometry, fuzz, CLI (CPython)."""

import json

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from estran.cli import cli
from protocols import errors
from protocols.tests.support import drain
from protocols.ultrasonic import (
    A02YYUW,
    MAXBOTIX,
    MODELS,
    STATUS_NO_TARGET,
    STATUS_OK,
    STATUS_TOO_CLOSE,
    BinGeometry,
    DistanceFrame,
    UltrasonicStream,
    build_a02,
    build_maxbotix,
    describe,
    measure,
)


def feed(chunks: list[bytes], fmt: str | None = None) -> list[object]:
    stream = UltrasonicStream(fmt)
    out: list[object] = []
    for chunk in chunks:
        stream.receive_data(chunk)
        out += drain(stream)
    try:
        stream.finish()
    except errors.RemoteProtocolError as e:
        out.append(e.reason)
    return out


# -- builders and frames ----------------------------------------------------------------


def test_builders_make_the_documented_frames() -> None:
    assert build_a02(1953) == bytes.fromhex("ff07a1a7")
    assert build_a02(0) == bytes.fromhex("ff0000ff")
    assert build_maxbotix(123, 3) == b"R123\r"
    assert build_maxbotix(480) == b"R0480\r"
    for bad in (-1, 65536, 1.5):
        with pytest.raises(errors.LocalProtocolError):
            build_a02(bad)  # type: ignore[arg-type]
    with pytest.raises(errors.LocalProtocolError):
        build_maxbotix(1000, 3)
    with pytest.raises(errors.LocalProtocolError):
        build_maxbotix(10, 2)


@given(st.integers(0, 0xFFFF))
def test_a02_round_trip(raw: int) -> None:
    (frame,) = feed([build_a02(raw)], A02YYUW)
    assert isinstance(frame, DistanceFrame)
    assert (frame.format, frame.raw, frame.digits, frame.data) == (A02YYUW, raw, 0, build_a02(raw))


@given(st.integers(0, 9999), st.sampled_from([3, 4]))
def test_maxbotix_round_trip(raw: int, digits: int) -> None:
    raw %= 10**digits
    (frame,) = feed([build_maxbotix(raw, digits)], MAXBOTIX)
    assert isinstance(frame, DistanceFrame)
    assert (frame.format, frame.raw, frame.digits, frame.checksum) == (MAXBOTIX, raw, digits, None)


STREAM = (
    b"\x00\x07"  # tail of a frame cut by the capture start
    + build_a02(1953)
    + b"R0480 \r"  # HRUSB puts a space before CR
    + build_maxbotix(123, 3)
    + bytes.fromhex("ff07a1a8")  # bad SUM
    + b"R12\r"  # too few digits
    + build_a02(417)
    + b"noise"
    + build_maxbotix(5000)
)


def expected_stream() -> list[object]:
    return [
        DistanceFrame(A02YYUW, 1953, 0, 0xA7, build_a02(1953)),
        DistanceFrame(MAXBOTIX, 480, 4, None, b"R0480 \r"),
        DistanceFrame(MAXBOTIX, 123, 3, None, b"R123\r"),
        errors.CHECKSUM,
        errors.MALFORMED,
        DistanceFrame(A02YYUW, 417, 0, build_a02(417)[3], build_a02(417)),
        DistanceFrame(MAXBOTIX, 5000, 4, None, b"R5000\r"),
    ]


def test_stream_whole() -> None:
    assert feed([STREAM]) == expected_stream()


def test_stream_every_split_point_gives_the_same_frames() -> None:
    for i in range(len(STREAM) + 1):
        assert feed([STREAM[:i], STREAM[i:]]) == expected_stream(), i
    for i in range(len(STREAM)):
        for j in range(i, len(STREAM) + 1):
            assert feed([STREAM[:i], STREAM[i:j], STREAM[j:]]) == expected_stream(), (i, j)


def test_stream_byte_by_byte_counts_skipped_noise() -> None:
    stream = UltrasonicStream()
    got: list[object] = []
    for b in STREAM:
        stream.receive_data(bytes((b,)))
        got += drain(stream)
    assert got == expected_stream()
    frames = [f for f in got if isinstance(f, DistanceFrame)]
    assert [f.skipped for f in frames] == [2, 0, 0, 3, 5]  # "12\r" of the bad R12 frame
    assert stream.frames_total == 5


def test_resync_after_a_bad_header_inside_noise() -> None:
    # A stray 0xFF just before a real frame: the bad candidate is refused, the frame found.
    assert feed([b"\xff" + build_a02(1953)]) == [errors.CHECKSUM, feed([build_a02(1953)])[0]]
    # An R without digits before a real frame.
    assert feed([b"RR1234\r"]) == [errors.MALFORMED, feed([b"R1234\r"])[0]]
    # Five digits is no frame; the stream recovers on the next R.
    assert feed([b"R12345\rR0999\r"])[-1] == feed([b"R0999\r"])[0]


def test_fixed_format_ignores_the_other_format() -> None:
    data = b"R1234\r" + build_a02(1953)
    assert [f.format for f in feed([data], A02YYUW)] == [A02YYUW]  # type: ignore[attr-defined]
    assert [f.format for f in feed([data], MAXBOTIX)] == [MAXBOTIX]  # type: ignore[attr-defined]


def test_truncated_frame_at_end() -> None:
    assert feed([build_a02(1953)[:3]]) == [errors.TRUNCATED]
    assert feed([b"R12"]) == [errors.TRUNCATED]
    assert feed([b"R123 "]) == [errors.TRUNCATED]
    assert feed([b"xyz"]) == []


def test_buffer_is_bounded() -> None:
    stream = UltrasonicStream(max_buffer=64)
    with pytest.raises(errors.RemoteProtocolError) as e:
        stream.receive_data(b"\x00" * 100 + build_a02(1953))
    assert e.value.reason == errors.OVERFLOW
    assert stream.buffered == 64
    assert stream.skipped_total == 40
    (frame,) = drain(stream)
    assert isinstance(frame, DistanceFrame) and frame.raw == 1953
    with pytest.raises(errors.LocalProtocolError):
        UltrasonicStream(max_buffer=3)
    with pytest.raises(errors.LocalProtocolError):
        UltrasonicStream("sonar")


# -- models, status, geometry ----------------------------------------------------------


def one(data: bytes, **options: object) -> dict[str, object]:
    (r,) = describe(data, dict(options))
    return r


def readings(r: dict[str, object]) -> dict[str, object]:
    return {x["name"]: x["value"] for x in r["readings"]}  # type: ignore[attr-defined, index]


def test_no_target_is_a_flag_not_an_empty_bin() -> None:
    for frame, model in (
        (b"R5000\r", None),
        (b"R5000\r", "hrlv"),
        (b"R765\r", "xl"),
        (b"R9999\r", "hrxl10"),
        (b"R1068\r", "xl10"),
        (b"R254\r", "lv"),
    ):
        r = one(frame, model=model, empty_mm=9000, full_mm=100)
        assert r["valid"] is True
        fields = r["fields"]
        assert isinstance(fields, dict)
        assert fields["status"] == STATUS_NO_TARGET, frame
        assert r["readings"] == []  # neither a distance nor 0 % fill
    # below the no-target value it is a distance again
    assert readings(one(b"R4999\r")) == {"distance": 4.999}
    assert readings(one(b"R764\r", model="xl")) == {"distance": 7.64}


def test_too_close_reads_full() -> None:
    r = one(b"R0300\r", empty_mm=1000)
    assert r["fields"]["status"] == STATUS_TOO_CLOSE  # type: ignore[index]
    assert r["fields"]["full_mm"] == 300  # type: ignore[index]  # blind zone by default
    assert readings(r) == {"distance": 0.3, "fill": 100.0}
    r = one(build_a02(20), empty_mm=1000, full_mm=100)
    assert r["fields"]["status"] == STATUS_TOO_CLOSE  # type: ignore[index]
    assert readings(r) == {"distance": 0.02, "fill": 100.0}
    assert r["fields"]["fill_clamped"] is True  # type: ignore[index]


def test_units_per_model() -> None:
    assert readings(one(b"R123\r")) == {"distance": 3.1242}  # LV inches by default
    assert readings(one(b"R123\r", model="xl")) == {"distance": 1.23}
    assert readings(one(b"R0417\r", model="xl10")) == {"distance": 4.17}
    assert readings(one(build_a02(417), model="sen0627")) == {"distance": 4.17}
    assert readings(one(build_a02(417), model="me007ys")) == {"distance": 0.417}
    r = one(b"R0480\r", model="HRLV")
    assert r["fields"]["model"] == "hrlv" and r["fields"]["model_assumed"] is False  # type: ignore[index]


def test_frame_that_the_model_cannot_send() -> None:
    r = one(b"R1234\r", model="lv")
    assert r["valid"] is False
    assert str(r["error"]).startswith("malformed:")
    # a binary model never sees MaxBotix frames (format fixed by the model)
    assert describe(b"R1234\r", {"model": "a02yyuw"})[0]["error"].startswith("malformed")  # type: ignore[union-attr]


def test_fill_percentage() -> None:
    g = BinGeometry(1000, 200)
    assert g.fill(600) == (50.0, False)
    assert g.fill(1000 - 800 / 3) == (33.3, False)
    assert g.fill(2000) == (0.0, True)
    assert g.fill(0) == (100.0, True)
    frame = feed([build_a02(600)])[0]
    assert isinstance(frame, DistanceFrame)
    level = measure(frame, None, g)
    assert (level.status, level.distance_mm, level.fill) == (STATUS_OK, 600, 50.0)
    r = one(build_a02(600), empty_mm="1000", full_mm="200")
    assert readings(r) == {"distance": 0.6, "fill": 50.0}
    assert r["fields"]["fill_clamped"] is False  # type: ignore[index]


@pytest.mark.parametrize(
    "options",
    [
        {"empty_mm": 200, "full_mm": 200},
        {"empty_mm": 100, "full_mm": -1},
        {"empty_mm": "deep"},
        {"empty_mm": True},
        {"empty_mm": float("nan")},
        {"empty_mm": float("inf")},
        {"full_mm": 100},
        {"model": "mb9999"},
        {"empty_mm": 250},  # inside the HRLV blind zone (300 mm)
    ],
)
def test_bad_options_are_local_errors(options: dict[str, object]) -> None:
    with pytest.raises(errors.LocalProtocolError):
        describe(b"R0480\r", options)


def test_model_table_is_consistent() -> None:
    for name, (fmt, unit, digits, low, high, label) in MODELS.items():
        assert name == name.lower() and label
        assert fmt in (MAXBOTIX, A02YYUW) and unit in ("mm", "cm", "in")
        assert digits in ((3, 4) if fmt == MAXBOTIX else (0,))
        if high is not None:
            assert high < 10**digits
            assert low is None or low < high


# -- fuzz --------------------------------------------------------------------------------


@settings(max_examples=300)
@given(st.binary(max_size=600), st.integers(1, 64))
def test_random_bytes_only_raise_remote_protocol_errors(data: bytes, step: int) -> None:
    stream = UltrasonicStream(max_buffer=64)
    for i in range(0, len(data), step):
        try:
            stream.receive_data(data[i : i + step])
        except errors.RemoteProtocolError as e:
            assert e.reason == errors.OVERFLOW
        drain(stream)
        assert stream.buffered <= 64
    try:
        stream.finish()
    except errors.RemoteProtocolError as e:
        assert e.reason == errors.TRUNCATED
    for r in describe(data, {}):
        assert set(r) == {"protocol", "valid", "error", "fields", "readings"}
        assert r["valid"] or str(r["error"]).split(":")[0] in errors.REASONS


frames_strategy = st.lists(
    st.one_of(
        st.integers(0, 0xFFFF).map(build_a02),
        st.integers(0, 9999).map(build_maxbotix),
        st.integers(0, 999).map(lambda v: build_maxbotix(v, 3)),
    ),
    max_size=8,
).map(b"".join)


@settings(max_examples=300)
@given(frames_strategy, st.data())
def test_mutated_frames_only_raise_remote_protocol_errors(data: bytes, draw: st.DataObject) -> None:
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
    for model in (None, "lv", "hrlv", "a02yyuw"):
        for r in describe(bytes(mutated), {"model": model, "empty_mm": 10000}):
            assert r["valid"] or str(r["error"]).split(":")[0] in errors.REASONS


def test_hostile_input_takes_milliseconds() -> None:
    import time

    for data in (b"R" * 100_000, b"\xff" * 100_000, b"R123" * 25_000, bytes(range(256)) * 400):
        t = time.process_time()
        describe(data, {})
        assert (
            time.process_time() - t < 2.0
        )  # CPU seconds: other work on the machine does not count


# -- estran decode ultrasonic ------------------------------------------------------------


def test_cli_json_contract_and_exit_codes() -> None:
    runner = CliRunner()
    hex_stream = (build_maxbotix(480) + build_a02(1953)).hex()
    res = runner.invoke(cli, ["decode", "ultrasonic", hex_stream, "--json"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.output.splitlines()]
    assert [line["readings"] for line in lines] == [
        [{"name": "distance", "value": 0.48, "unit": "m"}],
        [{"name": "distance", "value": 1.953, "unit": "m"}],
    ]
    for line in lines:
        assert set(line) == {"protocol", "valid", "error", "fields", "readings"}
        assert line["protocol"] == "ultrasonic" and line["valid"] is True and line["error"] is None
    assert lines[1]["fields"]["checksum"] == "0xA7"

    res = runner.invoke(cli, ["decode", "ultrasonic", "ff 07 a1 a8", "--json"])
    assert res.exit_code == 1
    (line,) = [json.loads(x) for x in res.output.splitlines()]
    assert line["valid"] is False and line["error"].startswith("checksum:")

    res = runner.invoke(cli, ["decode", "ultrasonic", "52 35 30 30 30 0d"])
    assert res.exit_code == 0 and "no_target" in res.output

    # not hex, and not ASCII text either
    assert runner.invoke(cli, ["decode", "ultrasonic", "zé", "--json"]).exit_code == 2

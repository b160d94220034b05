"""SDI-12 codec: builders, response parsing, line framing, the master sequence, fuzz, CLI."""

import contextlib
import json

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from estran.cli import cli
from protocols import errors, sdi12
from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.tests import support

# The spec's examples 4.4.12.3 b and c, written out here so these tests run without shared/.
TRANSCRIPT = (
    b"0MC!00053\r\n"
    b"0\r\n"
    b"0D0!0+3.14+2.718+1.414Ipz\r\n"
    b"0MC!00359\r\n"
    b"0\r\n"
    b"0D0!0+1.11+2.22+3.33+4.44+5.55+6.66I]q\r\n"
    b"0D1!0+7.77+8.88+9.99IvW\r\n"
    b"1C!101504\r\n"
    b"1D0!1+1.23+2.34+345+4.4678\r\n"
)


def lines_of(data: bytes, piece: int) -> list[bytes]:
    reader = sdi12.LineReader()
    out = []
    for i in range(0, len(data), piece):
        reader.receive_data(data[i : i + piece])
        while (line := reader.next_line()) is not None:
            out.append(line)
    return out


# -- builders ------------------------------------------------------------------------------


def test_builders_make_the_spec_commands() -> None:
    assert sdi12.acknowledge("0") == b"0!"
    assert sdi12.acknowledge("?") == sdi12.query_address() == b"?!"
    assert sdi12.identify("3") == b"3I!"
    assert sdi12.change_address("0", "z") == b"0Az!"
    assert sdi12.start_measurement("0") == b"0M!"
    assert sdi12.start_measurement("0", 4) == b"0M4!"
    assert sdi12.start_measurement("0", crc=True) == b"0MC!"
    assert sdi12.start_measurement("0", 9, crc=True) == b"0MC9!"
    assert sdi12.start_concurrent("A") == b"AC!"
    assert sdi12.start_concurrent("A", 2) == b"AC2!"
    assert sdi12.start_concurrent("A", crc=True) == b"ACC!"
    assert sdi12.start_concurrent("A", 1, crc=True) == b"ACC1!"
    assert sdi12.start_verification("5") == b"5V!"
    assert sdi12.send_data("0", 7) == b"0D7!"
    assert sdi12.continuous("0", 3) == b"0R3!"
    assert sdi12.continuous("0", 0, crc=True) == b"0RC0!"
    assert sdi12.extended("0", "XRST") == b"0XRST!"


def _all_commands() -> list[tuple[bytes, str, int, bool]]:
    out = [
        (sdi12.acknowledge("0"), sdi12.ACKNOWLEDGE, 0, False),
        (sdi12.query_address(), sdi12.ACKNOWLEDGE, 0, False),
        (sdi12.identify("0"), sdi12.IDENTIFY, 0, False),
        (sdi12.change_address("0", "1"), sdi12.CHANGE_ADDRESS, 0, False),
        (sdi12.start_verification("0"), sdi12.VERIFY, 0, False),
        (sdi12.extended("0", "XTEST1"), sdi12.EXTENDED, 0, False),
    ]
    for i in range(10):
        for crc in (False, True):
            out.append((sdi12.start_measurement("b", i, crc), sdi12.MEASURE, i, crc))
            out.append((sdi12.start_concurrent("b", i, crc), sdi12.CONCURRENT, i, crc))
            out.append((sdi12.continuous("b", i, crc), sdi12.CONTINUOUS, i, crc))
        out.append((sdi12.send_data("b", i), sdi12.DATA, i, False))
    return out


def test_every_builder_round_trips_through_parse_command() -> None:
    commands = _all_commands()
    assert len({c[0] for c in commands}) == len(commands) == 76
    for raw, kind, index, crc in commands:
        cmd = sdi12.parse_command(raw)
        assert (cmd.kind, cmd.index, cmd.crc) == (kind, index, crc), raw
        assert cmd.encode() == raw
    assert sdi12.parse_command(b"0A1!").new_address == "1"


def test_parse_command_extended_and_bad() -> None:
    assert sdi12.parse_command(b"0M0!").kind == sdi12.EXTENDED  # "M0" is not a basic command
    assert sdi12.parse_command(b"0MCC!").kind == sdi12.EXTENDED
    assert sdi12.parse_command(b"0IM!").kind == sdi12.EXTENDED  # v1.4 metadata
    for bad, reason in (
        (b"0M", errors.TRUNCATED),
        (b"#M!", errors.MALFORMED),
        (b"0\x01!", errors.MALFORMED),
    ):
        with pytest.raises(RemoteProtocolError) as e:
            sdi12.parse_command(bad)
        assert e.value.reason == reason


@pytest.mark.parametrize(
    "call",
    [
        lambda: sdi12.acknowledge("#"),
        lambda: sdi12.acknowledge("00"),
        lambda: sdi12.change_address("0", "?"),
        lambda: sdi12.start_measurement("0", 10),
        lambda: sdi12.send_data("0", -1),
        lambda: sdi12.continuous("0", True),
        lambda: sdi12.extended("0", "X!"),
        lambda: sdi12.extended("0", ""),
        lambda: sdi12.format_value(1e-05),
        lambda: sdi12.format_value(12345678),
        lambda: sdi12.format_value("3.14"),
        lambda: sdi12.format_measurement("0", 1000, 1),
        lambda: sdi12.format_measurement("0", 1, 10),
        lambda: sdi12.MeasureSequence("0", verification=True, crc=True),
    ],
)
def test_builders_refuse_what_sdi12_cannot_carry(call: object) -> None:
    with pytest.raises(LocalProtocolError):
        call()  # type: ignore[operator]


VALUE = st.builds(
    lambda sign, digits, point: (
        sign + (digits[:point] + "." + digits[point:] if point >= 0 else digits)
    ),
    st.sampled_from("+-"),
    st.text("0123456789", min_size=1, max_size=7),
    st.integers(-1, 7),
).filter(lambda v: v.count(".") <= 1)


@settings(max_examples=300)
@given(
    st.sampled_from("0123456789AZaz"),
    st.lists(VALUE, min_size=0, max_size=9),
    st.booleans(),
)
def test_data_round_trip(address: str, values: list[str], crc: bool) -> None:
    line = sdi12.format_data(address, list(values), crc=crc)
    r = sdi12.parse_response(line, sdi12.send_data(address, 0), crc)
    assert isinstance(r, sdi12.DataValues)
    assert r.values == [float(v) if "." in v else int(v) for v in values]
    assert [type(v) for v in r.values] == [float if "." in v else int for v in values]
    assert (r.crc is not None) == crc
    if crc:
        assert sdi12.encode_crc(r.crc or 0) == line[-5:-2]


def test_format_value_writes_what_parses_back() -> None:
    for value, text in (
        (3.14, "+3.14"),
        (-2, "-2"),
        (0, "+0"),
        (12354, "+12354"),
        (-0.00045, "-0.00045"),
    ):
        assert sdi12.format_value(value) == text
        assert sdi12.parse_values(text) == [value]


@settings(max_examples=200)
@given(st.integers(0, 999), st.integers(0, 99), st.booleans())
def test_measurement_round_trip(seconds: int, count: int, concurrent: bool) -> None:
    count = count if concurrent else count % 10
    line = sdi12.format_measurement("7", seconds, count, concurrent)
    command = sdi12.start_concurrent("7") if concurrent else sdi12.start_measurement("7")
    r = sdi12.parse_response(line, command)
    assert r == sdi12.MeasurementStart("7", seconds, count, concurrent)
    assert sdi12.parse_response(line) == r


def test_identification() -> None:
    line = sdi12.format_identification("0", "METER", "TER12", "112", "631800001")
    assert line == b"013METER   TER12 112631800001\r\n"
    r = sdi12.parse_response(line, b"0I!")
    assert isinstance(r, sdi12.Identification)
    assert (r.sdi12_version, r.vendor, r.model, r.sensor_version, r.extra) == (
        "1.3",
        "METER",
        "TER12",
        "112",
        "631800001",
    )
    with pytest.raises(RemoteProtocolError) as e:
        sdi12.parse_response(b"013METER\r\n", b"0I!")
    assert e.value.reason == errors.MALFORMED


def test_responses_with_their_commands() -> None:
    assert sdi12.parse_response(b"0\r\n", b"0!") == sdi12.Acknowledge("0")
    assert sdi12.parse_response(b"5\r\n", b"?!") == sdi12.Acknowledge("5")
    assert sdi12.parse_response(b"1\r\n", b"0A1!") == sdi12.Acknowledge("1")
    assert sdi12.parse_response(b"0\r\n", b"0A1!") == sdi12.Acknowledge("0")  # unable to change
    ext = sdi12.parse_response(b"0OK 42\r\n", b"0XSTAT!")
    assert isinstance(ext, sdi12.ExtendedResponse) and ext.text == "OK 42"
    # 4.4.8.1: a sensor unable to measure continuously, with the CRC it was asked for
    r = sdi12.parse_response(b"0AP@\r\n", b"0RC0!")
    assert r == sdi12.DataValues("0", [], sdi12.crc16(b"0"))
    cases = [
        (b"1\r\n", b"0!", errors.MALFORMED),  # wrong sensor
        (b"2\r\n", b"0A1!", errors.MALFORMED),
        (b"0x\r\n", b"0!", errors.MALFORMED),
        (b"000512\r\n", b"0M!", errors.MALFORMED),  # atttnn to an M
        (b"00051\r\n", b"0C!", errors.MALFORMED),  # atttn to a C
        (b"0+3.14\r\n", b"0RC0!", errors.CHECKSUM),  # RC: CRC required
        (b"0+3.14", b"0D0!", errors.TRUNCATED),  # no CR LF
        (b"0+3.14\n", b"0D0!", errors.TRUNCATED),
        (b"0+3.1.4\r\n", b"0D0!", errors.MALFORMED),
        (b"03.14\r\n", b"0D0!", errors.MALFORMED),
        (b"0+\r\n", b"0D0!", errors.MALFORMED),
        (b"0+3\xb14\r\n", b"0D0!", errors.MALFORMED),  # a parity bit: port opened 8N1
        (b"\r\n", b"0D0!", errors.TRUNCATED),
        (b"0+1!\r\n", b"0D0!", errors.MALFORMED),
    ]
    for line, command, reason in cases:
        with pytest.raises(RemoteProtocolError) as e:
            sdi12.parse_response(line, command)
        assert e.value.reason == reason, (line, command, e.value)


def test_responses_without_their_commands() -> None:
    assert sdi12.parse_response(b"0\r\n") == sdi12.Acknowledge("0")
    assert sdi12.parse_response(b"00101\r\n") == sdi12.MeasurementStart("0", 10, 1, False)
    assert sdi12.parse_response(b"a01012\r\n") == sdi12.MeasurementStart("a", 10, 12, True)
    assert sdi12.parse_response(b"0+.5-2\r\n") == sdi12.DataValues("0", [0.5, -2], None)
    for line in (b"0OK\r\n", b"0123\r\n", b"0ABCD\r\n"):
        with pytest.raises(RemoteProtocolError) as e:
            sdi12.parse_response(line)
        assert e.value.reason == errors.UNSUPPORTED
    with pytest.raises(RemoteProtocolError) as e:
        sdi12.parse_response(b"0+3.14OqY\r\n")  # CRC shape, wrong CRC
    assert e.value.reason == errors.CHECKSUM


# -- line framing ----------------------------------------------------------------------------


def test_every_split_point_gives_the_same_lines() -> None:
    whole = lines_of(TRANSCRIPT, len(TRANSCRIPT))
    assert len(whole) == 16 and whole[0] == b"0MC!" and whole[1] == b"00053\r\n"
    for piece in range(1, 12):
        assert lines_of(TRANSCRIPT, piece) == whole
    for cut in range(len(TRANSCRIPT) + 1):
        reader = sdi12.LineReader()
        got = []
        for part in (TRANSCRIPT[:cut], TRANSCRIPT[cut:]):
            if not part:
                continue  # b"" would mean the end of the stream
            reader.receive_data(part)
            while (line := reader.next_line()) is not None:
                got.append(line)
        assert got == whole, cut


def test_reader_skips_break_nuls_and_keeps_partial_for_eof() -> None:
    reader = sdi12.LineReader()
    reader.receive_data(b"\x00\x000D0!\x000+1.5\r\n0+2")
    assert reader.next_line() == b"0D0!"
    assert reader.next_line() == b"0+1.5\r\n"
    assert reader.next_line() is None
    reader.receive_data(b"")
    assert reader.next_line() == b"0+2"
    assert reader.next_line() is None
    with pytest.raises(LocalProtocolError):
        reader.receive_data(b"more")


def test_reader_is_bounded_and_resynchronises() -> None:
    reader = sdi12.LineReader()
    reader.receive_data(b"0" + b"1" * (sdi12.MAX_LINE + 10))
    with pytest.raises(RemoteProtocolError) as e:
        reader.next_line()
    assert e.value.reason == errors.OVERFLOW
    reader.receive_data(b"2" * 5000)
    assert reader.next_line() is None
    assert len(reader._buf) == 0  # skipped, not stored
    reader.receive_data(b"tail\r\n0+1\r\n")
    assert reader.next_line() == b"0+1\r\n"
    # a complete over-long line
    reader.receive_data(b"0" * (sdi12.MAX_LINE + 1) + b"\r\n0\r\n")
    with pytest.raises(RemoteProtocolError) as e:
        reader.next_line()
    assert e.value.reason == errors.OVERFLOW
    assert reader.next_line() == b"0\r\n"
    reader.receive_data(b"0+1\n0\r\n")
    with pytest.raises(RemoteProtocolError) as e:
        reader.next_line()
    assert e.value.reason == errors.MALFORMED
    assert reader.next_line() == b"0\r\n"


# -- the master sequence ----------------------------------------------------------------------


def test_sequence_immediate_data() -> None:
    seq = sdi12.MeasureSequence("0")
    first = seq.start()
    assert first == sdi12.Send(b"0M!", True)
    assert first.timeout_ms == sdi12.RETRY_MIN_MS
    read = seq.receive(b"00001\r\n")
    assert read == sdi12.Send(b"0D0!", False)
    assert isinstance(read, sdi12.Send) and read.line_ms > 16.67 + 40 * 8.33
    assert seq.receive(b"0+3.14\r\n") == sdi12.Done([3.14])
    assert seq.done and seq.values == [3.14]
    with pytest.raises(LocalProtocolError):
        seq.receive(b"0+3.14\r\n")


def test_sequence_zero_values_is_done() -> None:
    seq = sdi12.MeasureSequence("0", index=3)
    assert seq.start().command == b"0M3!"
    assert seq.receive(b"00000\r\n") == sdi12.Done([])


def test_sequence_service_request_and_timeout() -> None:
    seq = sdi12.MeasureSequence("2", verification=True)
    assert seq.start().command == b"2V!"
    assert seq.receive(b"20011\r\n") == sdi12.Wait(1, True)
    with pytest.raises(LocalProtocolError):
        seq.retry()  # nothing sent to retry while waiting
    assert seq.elapsed() == sdi12.Send(b"2D0!", True)  # no service request: break first
    assert seq.receive(b"2+1\r\n") == sdi12.Done([1])


def test_sequence_concurrent_has_no_service_request() -> None:
    seq = sdi12.MeasureSequence("1", concurrent=True, crc=True)
    assert seq.start().command == b"1CC!"
    assert seq.receive(b"101504\r\n") == sdi12.Wait(15, False)
    with pytest.raises(RemoteProtocolError) as e:
        seq.receive(b"1\r\n")
    assert e.value.reason == errors.MALFORMED
    assert seq.elapsed() == sdi12.Send(b"1D0!", True)
    with pytest.raises(RemoteProtocolError) as e:
        seq.receive(b"1+1.23+2.34+345+4.4678\r\n")  # CRC requested, absent
    assert e.value.reason == errors.CHECKSUM
    assert seq.retry() == sdi12.Send(b"1D0!", False)
    assert seq.receive(b"1+1.23+2.34+345+4.4678KoO\r\n") == sdi12.Done([1.23, 2.34, 345, 4.4678])


def test_sequence_retries_follow_the_spec() -> None:
    seq = sdi12.MeasureSequence("0")
    sends = [seq.start()]
    for _ in range(8):
        sends.append(seq.retry())
    assert [s.command for s in sends] == [b"0M!"] * 9
    # a break, then two retries without; the whole sequence three times
    assert [s.wake for s in sends] == [True, False, False] * 3
    with pytest.raises(RemoteProtocolError) as e:
        seq.retry()
    assert e.value.reason == errors.TRUNCATED


def test_sequence_bad_responses_leave_the_state() -> None:
    seq = sdi12.MeasureSequence("0", crc=True)
    seq.start()
    for bad in (b"1005\r\n", b"00053", b"0+1\r\n", b"100053\r\n"):
        with pytest.raises(RemoteProtocolError):
            seq.receive(bad)
    assert seq.receive(b"00053\r\n") == sdi12.Wait(5, True)
    with pytest.raises(RemoteProtocolError):
        seq.receive(b"1\r\n")  # someone else's service request
    assert seq.receive(b"0\r\n") == sdi12.Send(b"0D0!", False)
    with pytest.raises(RemoteProtocolError) as e:
        seq.receive(b"0+3.14OqY\r\n")
    assert e.value.reason == errors.CHECKSUM
    assert seq.receive(b"0+3.14OqZ\r\n") == sdi12.Send(b"0D1!", False)
    assert seq.receive(b"0+2.718Gbc\r\n") == sdi12.Send(b"0D2!", False)
    assert seq.receive(b"0+1.414GtW\r\n") == sdi12.Done([3.14, 2.718, 1.414])


def test_sequence_aborted_and_overfull() -> None:
    seq = sdi12.MeasureSequence("0")
    seq.start()
    seq.receive(b"00002\r\n")
    with pytest.raises(RemoteProtocolError) as e:
        seq.receive(b"0\r\n")  # valid D answer without values: the sensor aborted
    assert e.value.reason == errors.EXCEPTION
    with pytest.raises(RemoteProtocolError) as e:
        seq.receive(b"0+1+2+3\r\n")
    assert e.value.reason == errors.MALFORMED
    assert seq.receive(b"0+1\r\n") == sdi12.Send(b"0D1!", False)


def test_sequence_gives_up_after_d9() -> None:
    seq = sdi12.MeasureSequence("0", concurrent=True)
    seq.start()
    seq.receive(b"000020\r\n")
    for i in range(9):
        assert seq.receive(b"0+1\r\n") == sdi12.Send(sdi12.send_data("0", i + 1), False)
    with pytest.raises(RemoteProtocolError) as e:
        seq.receive(b"0+1\r\n")
    assert e.value.reason == errors.TRUNCATED


def test_sequence_misuse() -> None:
    seq = sdi12.MeasureSequence("0")
    with pytest.raises(LocalProtocolError):
        seq.receive(b"00001\r\n")
    with pytest.raises(LocalProtocolError):
        seq.elapsed()
    seq.start()
    with pytest.raises(LocalProtocolError):
        seq.start()
    with pytest.raises(LocalProtocolError):
        sdi12.MeasureSequence("?")


# -- readings and describe --------------------------------------------------------------------


def test_readings_names() -> None:
    got = sdi12.readings([1, 2.5, 3], "vwc:%, temp:Cel")
    assert [m.as_dict() for m in got] == [
        {"name": "vwc", "value": 1, "unit": "%"},
        {"name": "temp", "value": 2.5, "unit": "Cel"},
        {"name": "value3", "value": 3, "unit": None},
    ]
    assert [m.name for m in sdi12.readings([1, 2], ["a", ""], start=1)] == ["value2", "value3"]
    with pytest.raises(LocalProtocolError):
        sdi12.describe(b"0+1\r\n", {"names": 42})


def test_describe_transcript() -> None:
    results = sdi12.describe(TRANSCRIPT, {"names": "a,b,c,d,e,f,g,h,i"})
    assert all(r["valid"] for r in results)
    kinds = [r["fields"]["kind"] for r in results]
    assert kinds == [
        "measurement",
        "service_request",
        "data",
        "measurement",
        "service_request",
        "data",
        "data",
        "measurement",
        "data",
    ]
    # D1 continues D0's numbering
    assert [r["name"] for r in results[6]["readings"]] == ["g", "h", "i"]
    assert results[6]["fields"]["crc"] == "IvW"


def test_describe_lone_commands_and_garbage() -> None:
    [res] = sdi12.describe(b"0MC1!", {})
    assert res["valid"] and res["fields"] == {
        "command": "0MC1!",
        "address": "0",
        "kind": "measure",
        "index": 1,
        "crc": True,
    }
    res = sdi12.describe(b"0!1A2!", {})
    assert [r["fields"]["kind"] for r in res] == ["acknowledge", "change_address"]
    [res] = sdi12.describe(b"0+3.14", {})
    assert res["valid"] is False and res["error"] == "truncated: no CR LF at the end"
    assert res["fields"]["values"] == [3.14] and res["readings"] == []
    [res] = sdi12.describe(b"0\r\n", {})  # a bare address: acknowledge
    assert res["valid"] and res["fields"]["kind"] == "acknowledge"
    [res] = sdi12.describe(b"0D0!0\r\n", {})
    assert res["valid"] and res["fields"]["aborted"] is True
    assert sdi12.describe(b"", {}) == []


# -- fuzz ----------------------------------------------------------------------------------------


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=600), st.integers(1, 64))
def test_fuzz_random_bytes(data: bytes, piece: int) -> None:
    support.check_contract(sdi12.describe(data, {}), "sdi12")
    reader = sdi12.LineReader()
    seq = sdi12.MeasureSequence("0", crc=True)
    seq.start()
    for i in range(0, len(data), piece):
        reader.receive_data(data[i : i + piece])
        while True:
            try:
                line = reader.next_line()
            except RemoteProtocolError:
                continue
            if line is None:
                break
            for command in (None, b"0D0!", b"0M!", b"0I!", b"0C!", b"0X!", b"0A1!"):
                with contextlib.suppress(RemoteProtocolError):
                    sdi12.parse_response(line, command)
            with contextlib.suppress(RemoteProtocolError):
                sdi12.parse_command(line)
            if seq.done:
                continue
            try:
                action = seq.receive(line)
            except RemoteProtocolError:
                continue
            if isinstance(action, sdi12.Wait):
                seq.elapsed()


ALPHABET = b"0123456789+-.!\r\nMCDRVIAX?OqZ@\x00\x7f"


@settings(max_examples=400)
@given(st.lists(st.sampled_from(list(ALPHABET)), max_size=300))
def test_fuzz_sdi12_alphabet(data: list[int]) -> None:
    support.check_contract(sdi12.describe(bytes(data), {"names": "a:m,b"}), "sdi12")


CRC_LINES = [
    b"0+3.14OqZ\r\n",
    b"0+3.14+2.718+1.414Ipz\r\n",
    b"0+1.11+2.22+3.33+4.44+5.55+6.66I]q\r\n",
    b"1+1.23+2.34+345+4.4678KoO\r\n",
    b"0+1.234-4.56+12354-0.00045+2.223+145.5+7.7003+4328.8+9+10+11.433+12Ba]\r\n",
]


@settings(max_examples=500)
@given(st.sampled_from(CRC_LINES), st.integers(0, 200), st.integers(0, 255))
def test_fuzz_one_byte_changed_never_gives_other_values(line: bytes, pos: int, byte: int) -> None:
    """CRC-16 catches every single-byte error: a changed line is refused or unchanged."""
    body = bytearray(line[:-2])
    pos %= len(body)
    body[pos] = byte
    command = line[:1] + b"D0!"
    try:
        r = sdi12.parse_response(bytes(body) + b"\r\n", command, True)
    except RemoteProtocolError:
        return
    original = sdi12.parse_response(line, command, True)
    assert r == original


# -- estran decode sdi12 -------------------------------------------------------------------------


def test_cli_decode_json() -> None:
    runner = CliRunner()
    raw = b"0D0!0+3.14+2.718+1.414Ipz\r\n1+2.7+85.2-0.2-2.7+770.5CAH\r\n"
    res = runner.invoke(cli, ["decode", "sdi12", raw.hex(" "), "--json"])
    assert res.exit_code == 0, res.output
    objs = [json.loads(line) for line in res.output.splitlines()]
    assert len(objs) == 2
    assert objs[0] == {
        "protocol": "sdi12",
        "valid": True,
        "error": None,
        "fields": {
            "command": "0D0!",
            "address": "0",
            "kind": "data",
            "values": [3.14, 2.718, 1.414],
            "crc": "Ipz",
        },
        "readings": [
            {"name": "value1", "value": 3.14, "unit": None},
            {"name": "value2", "value": 2.718, "unit": None},
            {"name": "value3", "value": 1.414, "unit": None},
        ],
    }
    assert objs[1]["fields"]["address"] == "1" and objs[1]["readings"][4]["value"] == 770.5


def test_cli_decode_invalid_exit_1() -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["decode", "sdi12", b"0+3.14OqY\r\n".hex(), "--json"])
    assert res.exit_code == 1, res.output
    [obj] = [json.loads(line) for line in res.output.splitlines()]
    assert obj["valid"] is False and obj["error"].startswith("checksum:")
    res = runner.invoke(cli, ["decode", "sdi12", b"0+3.14\r\n".hex()])
    assert res.exit_code == 0 and "3.14" in res.output
    res = runner.invoke(cli, ["decode", "sdi12", "zé"])  # not hex, and not ASCII text either
    assert res.exit_code == 2

"""NMEA 0183 codec: checksums, framing, every supported sentence, fuzz, CLI."""

import contextlib
import json

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from estran.cli import cli
from protocols import errors, nmea
from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.tests import support

# Classic examples of NMEA 0183 documentation (their checksums are part of the text).
GGA = b"$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47\r\n"
RMC = b"$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A\r\n"


def sentence(address: str, *fields: str) -> bytes:
    return nmea.format_sentence(address, list(fields))


def readings(line: bytes) -> dict[str, tuple[object, object]]:
    [res] = nmea.describe(line, {})
    assert res["valid"] is True, res
    return {r["name"]: (r["value"], r["unit"]) for r in res["readings"]}  # type: ignore[index, union-attr]


def fields(line: bytes) -> dict[str, object]:
    fields, _ = nmea.decode(nmea.parse_sentence(line))
    return fields


def reason(fn: object, *args: object) -> str:
    with pytest.raises(RemoteProtocolError) as e:
        fn(*args)  # type: ignore[operator]
    return e.value.reason


# -- checksums and framing --------------------------------------------------------------------


def test_documented_checksums() -> None:
    for line, hh in ((GGA, 0x47), (RMC, 0x6A)):
        s = nmea.parse_sentence(line)
        assert s.checksum == hh
        assert nmea.format_sentence(s.address, s.data) == line


@settings(max_examples=300)
@given(
    st.sampled_from(["GPGGA", "IIMWV", "SDDPT", "WIXDR", "PGRME"]),
    st.lists(
        st.text(
            st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="$!*,\\^~"),
            max_size=8,
        ),
        max_size=12,
    ),
    st.booleans(),
)
def test_format_parse_round_trip(address: str, data: list[str], with_checksum: bool) -> None:
    line = nmea.format_sentence(address, data, with_checksum)
    s = nmea.parse_sentence(line)
    assert s.address == address and s.data == data
    assert (s.checksum is None) != with_checksum


def test_checksum_variants() -> None:
    body = GGA[: GGA.index(b"*")]
    s = nmea.parse_sentence(body)  # no checksum: accepted, flagged
    assert s.checksum is None and fields(body)["checksum"] is None
    assert reason(nmea.parse_sentence, body, True) == errors.CHECKSUM
    reader = nmea.SentenceReader(require_checksum=True)
    reader.receive_data(body + b"\r\n" + GGA)
    assert reason(reader.next_sentence) == errors.CHECKSUM
    assert reader.next_sentence() == nmea.parse_sentence(GGA)
    assert nmea.parse_sentence(RMC.replace(b"*6A", b"*6a")).checksum == 0x6A  # lenient case
    assert reason(nmea.parse_sentence, RMC.replace(b"*6A", b"*6B")) == errors.CHECKSUM
    assert reason(nmea.parse_sentence, RMC.replace(b"*6A", b"*6")) == errors.MALFORMED
    assert reason(nmea.parse_sentence, RMC.replace(b"*6A", b"*6AX")) == errors.MALFORMED
    assert reason(nmea.parse_sentence, RMC.replace(b"*6A", b"*G0")) == errors.MALFORMED


def test_parse_refuses_non_sentences() -> None:
    assert reason(nmea.parse_sentence, b"") == errors.TRUNCATED
    assert reason(nmea.parse_sentence, b"GPGGA,1*00") == errors.MALFORMED
    assert reason(nmea.parse_sentence, b"$GPGG,1") == errors.MALFORMED  # address length
    assert reason(nmea.parse_sentence, b"$gpgga,1") == errors.MALFORMED
    assert reason(nmea.parse_sentence, b"$,1") == errors.MALFORMED
    assert reason(nmea.parse_sentence, b"$GPGGA,\xb0") == errors.MALFORMED
    assert reason(nmea.parse_sentence, b"$GPGGA,a^b") == errors.MALFORMED
    assert reason(nmea.parse_sentence, b"$GPGGA," + b"1" * nmea.MAX_LINE) == errors.OVERFLOW
    with pytest.raises(LocalProtocolError):
        nmea.parse_sentence("$GPGGA")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        nmea.format_sentence("GPGGA", ["a*b"])


STREAM = (
    GGA + RMC + sentence("IIMWV", "045.0", "T", "10.0", "M", "A") + sentence("YXMTW", "17.5", "C")
)


def _read(data: bytes, piece: int) -> tuple[list[bytes], list[str]]:
    reader = nmea.SentenceReader()
    lines: list[bytes] = []
    errs: list[str] = []
    for i in range(0, len(data), piece):
        reader.receive_data(data[i : i + piece])
        while True:
            try:
                line = reader.next_line()
            except RemoteProtocolError as e:
                errs.append(e.reason)
                continue
            if line is None:
                break
            lines.append(line)
    return lines, errs


def test_every_split_point_gives_the_same_sentences() -> None:
    whole, errs = _read(STREAM, len(STREAM))
    assert len(whole) == 4 and not errs and whole[0] == GGA[:-2]
    for piece in range(1, 10):
        assert _read(STREAM, piece) == (whole, [])
    for cut in range(1, len(STREAM)):
        reader = nmea.SentenceReader()
        got = []
        for part in (STREAM[:cut], STREAM[cut:]):
            reader.receive_data(part)
            while (s := reader.next_sentence()) is not None:
                got.append(s)
        assert [s.address for s in got] == ["GPGGA", "GPRMC", "IIMWV", "YXMTW"], cut


def test_reader_resynchronises() -> None:
    data = (
        b"\xff\x00junk"  # garbage before the first sentence: skipped silently
        + b"\\s:r003,c:1577836800*5A\\"  # a TAG block: skipped
        + GGA
        + b"$GPRMC,1235"  # cut by the next sentence
        + RMC
        + b"\n\r\n"  # empty lines
        + b"$IIMTW,17.5,C\n"  # LF only
        + b"$IIMTW,18.5,C\r"  # CR only
    )
    lines, errs = _read(data, 5)
    assert errs == [errors.TRUNCATED]
    assert lines == [GGA[:-2], RMC[:-2], b"$IIMTW,17.5,C", b"$IIMTW,18.5,C"]


def test_reader_is_bounded() -> None:
    reader = nmea.SentenceReader()
    reader.receive_data(b"$GPGGA," + b"1" * (nmea.MAX_LINE + 1))
    with pytest.raises(RemoteProtocolError) as e:
        reader.next_line()
    assert e.value.reason == errors.OVERFLOW
    reader.receive_data(b"2" * 10000)  # the rest of the endless line: dropped as garbage
    assert reader.next_line() is None
    assert len(reader._buf) == 0
    reader.receive_data(b"\r\n" + RMC)
    assert reader.next_line() == RMC[:-2]
    reader.receive_data(b"$GPGGA," + b"1" * (nmea.MAX_LINE - 5) + b"\r\n" + GGA)
    with pytest.raises(RemoteProtocolError) as e:
        reader.next_line()
    assert e.value.reason == errors.OVERFLOW
    assert reader.next_line() == GGA[:-2]


def test_reader_end_of_stream() -> None:
    reader = nmea.SentenceReader()
    reader.receive_data(b"$IIMTW,17.5,C")
    assert reader.next_line() is None
    reader.receive_data(b"")
    assert reader.next_line() == b"$IIMTW,17.5,C"
    with pytest.raises(LocalProtocolError):
        reader.receive_data(b"$")


# -- sentences ----------------------------------------------------------------------------


def test_gga() -> None:
    f = fields(GGA)
    assert f["timestamp"] == "12:35:19Z" and f["gps_qual"] == 1 and f["num_sats"] == 8
    assert readings(GGA) == {
        "lat": (48 + 7.038 / 60, "lat"),
        "lon": (11 + 31.0 / 60, "lon"),
        "altitude": (545.4, "m"),
        "satellites": (8, None),
        "hdop": (0.9, None),
    }


def test_rmc() -> None:
    f = fields(RMC)
    assert f["datestamp"] == "1994-03-23" and f["datetime"] == "1994-03-23T12:35:19Z"
    r = readings(RMC)
    assert r["lat"] == (48.1173, "lat") and r["lon"] == (11.516666666666667, "lon")
    assert r["speed_over_ground"] == (11.524, "m/s")  # 22.4 kn: one decimal in, three out
    assert r["course_over_ground"] == (84.4, "deg")
    assert r["magnetic_variation"] == (-3.1, "deg")  # west
    void = sentence("GPRMC", "123519", "V", "", "", "", "", "", "", "230394", "", "")
    assert readings(void) == {}


def test_gll_vtg() -> None:
    r = readings(sentence("GPGLL", "4916.45", "N", "12311.12", "W", "225444", "A", "A"))
    # the doubles pynmea2's test_RMC expects for the same position
    assert r == {"lat": (49.274166666666666, "lat"), "lon": (-123.18533333333333, "lon")}
    assert readings(sentence("GPGLL", "4916.45", "N", "12311.12", "W", "225444", "V")) == {}
    r = readings(sentence("GPVTG", "054.7", "T", "034.4", "M", "005.5", "N", "010.2", "K", "A"))
    assert r == {
        "course_over_ground": (54.7, "deg"),
        "course_over_ground_magnetic": (34.4, "deg"),
        "speed_over_ground": (2.829, "m/s"),
    }
    r = readings(sentence("GPVTG", "054.7", "T", "", "M", "", "N", "010.2", "K"))
    assert r["speed_over_ground"] == (2.833, "m/s")  # from km/h when knots are empty
    # NMEA 1.x VTG, without unit letters
    assert readings(sentence("GPVTG", "054.7", "034.4", "005.5", "010.2")) == r | {
        "course_over_ground_magnetic": (34.4, "deg"),
        "speed_over_ground": (2.829, "m/s"),
    }


def test_wind() -> None:
    assert readings(sentence("IIMWV", "045.0", "T", "10.0", "M", "A")) == {
        "true_wind_angle": (45.0, "deg"),
        "true_wind_speed": (10.0, "m/s"),
    }
    assert readings(sentence("WIMWV", "350", "R", "36", "K", "A")) == {
        "apparent_wind_angle": (350, "deg"),
        "apparent_wind_speed": (10.0, "m/s"),
    }
    assert readings(sentence("WIMWV", "350", "R", "10", "S", "A"))["apparent_wind_speed"] == (
        4.47,
        "m/s",
    )
    assert readings(sentence("IIMWV", "045.0", "T", "10.0", "M", "V")) == {}  # data invalid
    r = readings(sentence("WIMWD", "270.0", "T", "268.5", "M", "19.4", "N", "10.0", "M"))
    assert r == {
        "true_wind_direction": (270.0, "deg"),
        "true_wind_direction_magnetic": (268.5, "deg"),
        "true_wind_speed": (10.0, "m/s"),
    }
    r = readings(sentence("WIMWD", "270.0", "T", "", "M", "19.4", "N", "", "M"))
    assert r["true_wind_speed"] == (9.98, "m/s")


def test_depth_and_water() -> None:
    assert readings(sentence("SDDPT", "3.6", "0.5", "100")) == {
        "depth": (3.6, "m"),
        "transducer_offset": (0.5, "m"),
        "depth_below_surface": (4.1, "m"),
    }
    assert readings(sentence("SDDPT", "3.6", "-1.2"))["depth_below_keel"] == (2.4, "m")
    assert readings(sentence("SDDPT", "12.30", "")) == {"depth": (12.3, "m")}
    assert readings(sentence("SDDBT", "11.8", "f", "3.6", "M", "1.9", "F")) == {"depth": (3.6, "m")}
    assert readings(sentence("SDDBT", "11.8", "f", "", "M", "", "F")) == {"depth": (3.6, "m")}
    assert readings(sentence("SDDBT", "", "f", "", "M", "2.0", "F")) == {"depth": (3.66, "m")}
    assert readings(sentence("YXMTW", "17.5", "C")) == {"water_temperature": (17.5, "Cel")}
    assert readings(sentence("VWVHW", "", "T", "", "M", "5.2", "N", "9.6", "K")) == {
        "speed_through_water": (2.675, "m/s")
    }


def test_headings_and_time() -> None:
    assert readings(sentence("HCHDG", "98.3", "0.0", "E", "12.6", "W")) == {
        "magnetic_sensor_heading": (98.3, "deg"),
        "magnetic_deviation": (0.0, "deg"),
        "magnetic_variation": (-12.6, "deg"),
    }
    assert readings(sentence("HEHDT", "274.07", "T")) == {"heading_true": (274.07, "deg")}
    assert readings(sentence("HCHDM", "271.5", "M")) == {"heading_magnetic": (271.5, "deg")}
    f = fields(sentence("GPZDA", "201530.00", "04", "07", "2002", "00", "00"))
    assert f["datetime"] == "2002-07-04T20:15:30.00Z"


def test_xdr() -> None:
    line = sentence(
        "WIXDR",
        "P", "1.02481", "B", "Barometer",
        "C", "19.52", "C", "TempAir",
        "H", "65.2", "P", "",
        "A", "-1.2", "D", "ROLL",
        "C", "19.6", "C", "",
        "C", "19.7", "C", "",
        "P", "101300", "P", "",
        "X", "1", "Z", "odd",
    )  # fmt: skip
    assert readings(line) == {
        "pressure_Barometer": (102481.0, "Pa"),
        "temperature_TempAir": (19.52, "Cel"),
        "humidity": (65.2, "%RH"),
        "angle_ROLL": (-1.2, "deg"),
        "temperature": (19.6, "Cel"),
        "temperature_2": (19.7, "Cel"),
        "pressure": (101300, "Pa"),
    }
    transducers = fields(line)["transducers"]
    assert isinstance(transducers, list) and len(transducers) == 8
    assert transducers[7] == {"type": "X", "value": 1, "units": "Z", "id": "odd"}
    # the last group may lack its id field (SignalK nmea0183-signalk test: 7 Cel)
    assert readings(b"$YXXDR,C,7,C*54") == {"temperature": (7, "Cel")}
    assert readings(sentence("WIXDR", "P", "1", "B")) == {"pressure": (100000.0, "Pa")}
    for short in (("P", "1"), ("P",), ("C", "7", "C", "", "P", "1")):
        assert (
            reason(nmea.decode, nmea.parse_sentence(sentence("WIXDR", *short))) == errors.MALFORMED
        )


def test_wrong_designators_give_no_reading() -> None:
    # SignalK nmea0183-signalk test/MWD.ts "improper designator" sentences: a value whose
    # designator field is not the one the position asks for is not read
    assert readings(b"$IIMWD,,,046.,T,,,,*16") == {}
    assert readings(b"$IIMWD,046.,M,,,,,,*0F") == {}
    assert readings(b"$IIMWD,046.,T,0.,m,10.1,N,5.2,M*51") == {
        "true_wind_direction": (46.0, "deg"),
        "true_wind_speed": (5.2, "m/s"),
    }
    # the m/s field is marked "m": the knots field gives the speed
    assert readings(b"$IIMWD,,,046.,M,10.1,N,0.0,m*1C") == {
        "true_wind_direction_magnetic": (46.0, "deg"),
        "true_wind_speed": (5.196, "m/s"),
    }
    assert readings(sentence("SDDBT", "11.8", "M", "3.6", "f", "", "")) == {}
    assert readings(sentence("IIVHW", "182.5", "M", "", "", "6.12", "K", "", "")) == {}
    assert readings(sentence("GPVTG", "54.7", "M", "", "", "5.5", "N", "", "K")) == {
        "speed_over_ground": (2.829, "m/s")
    }
    assert readings(sentence("HEHDT", "274.1", "M")) == {}
    # designators left empty are not wrong
    assert readings(sentence("IIMWD", "270.0", "", "", "", "19.4", "", "", "")) == {
        "true_wind_direction": (270.0, "deg"),
        "true_wind_speed": (9.98, "m/s"),
    }


@pytest.mark.parametrize(
    "line",
    [
        sentence("GPGGA", "123519", "4807.038", "", "01131.000", "E", "1"),  # no hemisphere
        sentence("GPGGA", "123519", "4867.038", "N", "01131.000", "E", "1"),  # 67 minutes
        sentence("GPGGA", "123519", "9107.038", "N", "01131.000", "E", "1"),  # 91 degrees
        sentence("GPGGA", "123519", "4807.038", "N", "01131.000", "N", "1"),
        sentence("GPGGA", "253519"),
        sentence("GPGGA", "12351"),
        sentence("GPGGA", "123519", "", "", "", "", "nan"),
        sentence("GPGGA", "123519", "", "", "", "", "1e5"),
        sentence("GPGGA", "123519", "", "", "", "", "1.2.3"),
        sentence("GPRMC", "123519", "A", "", "", "", "", "", "", "320394"),
        sentence("GPZDA", "201530.00", "34", "07", "2002"),
    ],
)
def test_malformed_fields(line: bytes) -> None:
    assert reason(nmea.decode, nmea.parse_sentence(line)) == errors.MALFORMED


def test_unsupported() -> None:
    cases = [
        b"$PGRME,15.0,M,45.0,M,25.0,M*1C",
        sentence("GPGSV", "3", "1", "11"),
        b"!AIVDM,1,1,,B,177KQJ5000G?tO`K>RA1wUbN0TKH,0*5C",
    ]
    for line in cases:
        s = nmea.parse_sentence(line)
        assert reason(nmea.decode, s) == errors.UNSUPPORTED
        [res] = nmea.describe(line, {})
        assert res["fields"]["data"] == s.data  # type: ignore[index]
        # a good frame we do not decode, proprietary ones too (pynmea2 parses them all)
        assert res["valid"] is True and res["readings"] == []
        assert str(res["fields"]["note"]).startswith("not decoded:")  # type: ignore[index]
    [res] = nmea.describe(cases[0], {})
    assert res["fields"]["talker"] == "P" and res["fields"]["manufacturer"] == "GRM"  # type: ignore[index]
    # a proprietary sentence with a wrong checksum is still refused
    [res] = nmea.describe(b"$PGRME,15.0,M,45.0,M,25.0,M*1D", {})
    assert res["valid"] is False and str(res["error"]).startswith("checksum:")


def test_rmc_mode_indicator_n_is_no_fix() -> None:
    # pynmea2 test/test_types.py: status A but mode indicator N (data not valid)
    line = b"$GPRMC,123519.00,A,4807.038,N,01131.000,E,,,230394,,,N*51"
    [res] = nmea.describe(line, {})
    assert res["valid"] is True and res["readings"] == []
    [res] = nmea.describe(b"$GPRMC,123519.00,A,4807.038,N,01131.000,E,,,230394,,,S*4C", {})
    assert [r["name"] for r in res["readings"]] == ["lat", "lon"]


def test_long_ublox_sentence() -> None:
    # pynmea2 test/test_proprietary.py: u-blox $PUBX,03 (satellite status), 378 characters
    sats = (
        "20,3,e,281,72,36,062,5,e,034,10,23,000,8,U,328,11,44,064,9,-,323,-2,,000,"
        "13,-,341,01,,000,16,U,307,45,49,064,18,e,144,18,,000,21,U,150,74,35,037,"
        "25,e,134,06,,000,27,U,271,20,52,064,29,U,074,36,36,063,31,U,209,26,37,040,"
        "120,e,210,31,,000,126,-,157,33,,000,66,U,036,19,34,015,67,e,090,20,22,000,"
        "68,-,136,00,,000,73,e,273,60,47,064,74,U,330,24,44,064,80,U,193,36,36,023"
    )
    line = b"$PUBX,03," + sats.encode() + b"*33"
    assert len(line) == 378
    s = nmea.parse_sentence(line)
    assert s.checksum == 0x33 and s.data[:2] == ["03", "20"]
    [res] = nmea.describe(line + b"\r\n" + GGA, {})[:1]
    assert res["valid"] is True


# -- fuzz ---------------------------------------------------------------------------------------


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=800), st.integers(1, 64))
def test_fuzz_random_bytes(data: bytes, piece: int) -> None:
    support.check_contract(nmea.describe(data, {}), "nmea")
    reader = nmea.SentenceReader()
    for i in range(0, len(data), piece):
        reader.receive_data(data[i : i + piece])
        while True:
            try:
                s = reader.next_sentence()
            except RemoteProtocolError:
                continue
            if s is None:
                break
            with contextlib.suppress(RemoteProtocolError):
                nmea.decode(s)


ALPHABET = b"$!*,.-+0123456789ABCDEFGNSEWTMRKPV\r\n"
KNOWN = [b"$GP" + t.encode() + b"," for t in sorted(nmea._SPECS)] + [b"$WIXDR,"]


@settings(max_examples=600)
@given(st.sampled_from(KNOWN), st.lists(st.sampled_from(list(ALPHABET[2:-2])), max_size=120))
def test_fuzz_known_sentence_shapes(head: bytes, tail: list[int]) -> None:
    """Random fields after a real address (no checksum): decode must only raise ours."""
    line = head + bytes(tail)
    support.check_contract(nmea.describe(line, {}), "nmea")
    with contextlib.suppress(RemoteProtocolError):
        nmea.decode(nmea.parse_sentence(line))


@settings(max_examples=500)
@given(
    st.sampled_from([GGA, RMC, *STREAM.split(b"\r\n")[2:4]]),
    st.integers(0, 200),
    st.integers(0, 255),
)
def test_fuzz_one_byte_changed_never_gives_other_values(line: bytes, pos: int, byte: int) -> None:
    """With a checksum, any one changed byte is refused, changes nothing decoded, or hid the
    checksum by changing the '*' (then flagged: checksum None, and refused when required)."""
    if not line.endswith(b"\r\n"):
        line += b"\r\n"
    body = bytearray(line[:-2])
    pos = 1 + pos % (len(body) - 1)
    body[pos] = byte
    try:
        got = nmea.decode(nmea.parse_sentence(bytes(body)))
    except RemoteProtocolError:
        return
    want = nmea.decode(nmea.parse_sentence(line))
    if got[0]["checksum"] is None:
        assert b"*" not in body
        assert reason(nmea.parse_sentence, bytes(body), True) == errors.CHECKSUM
        return
    assert got[0] == want[0] and got[1] == want[1], (bytes(body), line)


# -- estran decode nmea -------------------------------------------------------------------------


def test_cli_decode_json() -> None:
    runner = CliRunner()
    res = runner.invoke(
        cli, ["decode", "nmea", (GGA + sentence("YXMTW", "17.5", "C")).hex(), "--json"]
    )
    assert res.exit_code == 0, res.output
    objs = [json.loads(line) for line in res.output.splitlines()]
    assert [o["fields"]["type"] for o in objs] == ["GGA", "MTW"]
    assert objs[0]["protocol"] == "nmea" and objs[0]["valid"] is True and objs[0]["error"] is None
    assert objs[0]["fields"]["checksum"] == "47"
    assert objs[0]["readings"][0] == {"name": "lat", "value": 48.1173, "unit": "lat"}
    assert objs[1]["readings"] == [{"name": "water_temperature", "value": 17.5, "unit": "Cel"}]


def test_cli_decode_invalid_exit_1() -> None:
    runner = CliRunner()
    res = runner.invoke(
        cli, ["decode", "nmea", (GGA + RMC.replace(b"*6A", b"*00")).hex(), "--json"]
    )
    assert res.exit_code == 1, res.output
    objs = [json.loads(line) for line in res.output.splitlines()]
    assert [o["valid"] for o in objs] == [True, False]
    assert objs[1]["error"] == "checksum: sentence says 00, computed 6A"
    res = runner.invoke(cli, ["decode", "nmea", GGA.hex()])
    assert res.exit_code == 0 and "48.1173" in res.output
    res = runner.invoke(cli, ["decode", "nmea", "abcé"])  # not hex, and not ASCII text either
    assert res.exit_code == 2

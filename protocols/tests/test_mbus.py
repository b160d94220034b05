"""protocols.mbus on CPython: builders and round trips, the stream parser at every split
point, EN 13757-3 records (data types, VIF tables, combinable VIFEs, DIFE numbers), headers,
the multi-telegram reader (FCB), describe and `estran decode mbus`, and fuzzing.

Frames of real meters are covered by test_vectors_mbus.py (shared libmbus vectors).
"""

import contextlib
import json

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from estran.cli import cli
from protocols import mbus
from protocols.errors import (
    CHECKSUM,
    EXCEPTION,
    MALFORMED,
    OVERFLOW,
    TRUNCATED,
    UNSUPPORTED,
    LocalProtocolError,
    RemoteProtocolError,
)
from protocols.mbus.records import bcd, decode_time, manufacturer_code, scale
from protocols.mbus.telegram import Telegram
from protocols.mbus.vif_tables import FB_VIF, FD_VIF, MEDIUM, PRIMARY_VIF
from protocols.tests import support
from protocols.tests.support import drain

FUZZ = settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], derandomize=True)

# Long header: id 12345678, manufacturer KAM (2D 2C), version 1, medium water, access 0x55.
HEADER = bytes.fromhex("78563412 2D2C 01 07 55 00 0000")


def rsp(records_hex: str, ci: int = 0x72, header: bytes = HEADER, address: int = 1) -> bytes:
    """A RSP_UD long frame carrying `header` and the records."""
    data = header + bytes.fromhex(records_hex)
    return mbus.long_frame(0x08, address, ci, data).encode()


def telegram(records_hex: str, **kwargs: object) -> Telegram:
    return mbus.decode_response(mbus.parse_frame(rsp(records_hex, **kwargs)))  # type: ignore[arg-type]


def one(record_hex: str) -> tuple[str, object, str | None]:
    (record,) = telegram(record_hex).records
    return record.name, record.value, record.unit


def vector_frames() -> list[bytes]:
    try:
        names = support.listdir("mbus/libmbus/test-frames")
    except pytest.skip.Exception:  # no shared vectors: the constructed frames remain
        return []
    return [
        bytes(int(t, 16) for t in support.read_text("mbus/libmbus/test-frames/" + n).split())
        for n in names
        if n.endswith(".hex")
    ]


# ----------------------------------------------------------------------------- builders


def test_master_requests_match_bytes_seen_on_real_buses() -> None:
    # libmbus and wmbusmeters logs (rscada/libmbus#105, wmbusmeters#435, #579)
    assert mbus.snd_nke(0xFD) == bytes.fromhex("10 40 FD 3D 16")
    assert mbus.snd_nke(0) == bytes.fromhex("10 40 00 40 16")
    assert mbus.req_ud2(0xFD) == bytes.fromhex("10 5B FD 58 16")
    assert mbus.req_ud2(1, fcb=True) == bytes.fromhex("10 7B 01 7C 16")
    assert mbus.req_ud1(1) == bytes.fromhex("10 5A 01 5B 16")
    assert mbus.select_secondary("0FFFFFFF") == bytes.fromhex(
        "68 0B 0B 68 73 FD 52 FF FF FF 0F FF FF FF FF CA 16"
    )
    assert mbus.select_secondary(309924) == bytes.fromhex("680B0B6873FD5224993000FFFFFFFFAB16")
    assert mbus.select_secondary(12345678, "KAM", 1, 7, fcb=False) == bytes.fromhex(
        "68 0B 0B 68 53 FD 52 78 56 34 12 2D 2C 01 07"
    ) + bytes([(0x53 + 0xFD + 0x52 + 0x78 + 0x56 + 0x34 + 0x12 + 0x2D + 0x2C + 1 + 7) & 0xFF, 0x16])
    # libmbus unsupported-frames/manual_frame4: set primary address 8 via 0xFE
    assert mbus.set_primary_address(0xFE, 8, fcb=False) == bytes.fromhex(
        "68 06 06 68 53 FE 51 01 7A 08 25 16"
    )
    assert mbus.application_reset(5) == bytes.fromhex("68 03 03 68 73 05 50 C8 16")


@pytest.mark.parametrize(
    "call",
    [
        lambda: mbus.snd_nke(256),
        lambda: mbus.req_ud2(-1),
        lambda: mbus.req_ud2(True),  # type: ignore[arg-type]
        lambda: mbus.select_secondary("1234567"),
        lambda: mbus.select_secondary("1234567G"),
        lambda: mbus.select_secondary(100000000),
        lambda: mbus.select_secondary(1, "KA"),
        lambda: mbus.select_secondary(1, version=300),
        lambda: mbus.snd_ud(1, 0x51, bytes(253)),
        lambda: mbus.snd_ud(1, 256),
        lambda: mbus.FrameParser(max_buffer=100),
        lambda: mbus.Frame("weird", 0, 0).encode(),
        lambda: mbus.MultiTelegramReader(max_telegrams=0),
    ],
)
def test_api_misuse_raises_local_protocol_error(call: object) -> None:
    with pytest.raises(LocalProtocolError):
        call()  # type: ignore[operator]


def test_frames_round_trip() -> None:
    frames = [
        mbus.ack(),
        mbus.short_frame(0x5B, 1),
        mbus.long_frame(0x08, 3, 0x70),  # control frame: no data
        mbus.long_frame(0x53, 0xFD, 0x52, bytes(8)),
        mbus.long_frame(0x08, 1, 0x72, bytes(range(252))),
    ]
    for frame in frames:
        data = frame.encode()
        assert mbus.parse_frame(data) == frame
        assert mbus.parse_frame(data).encode() == data
    assert frames[2].kind == "control" and frames[3].kind == "long"
    assert mbus.parse_frame(mbus.req_ud2(7, fcb=True)).control == 0x7B
    assert mbus.checksum(bytes([0x08, 0x01, 0x72])) == 0x7B


def test_parse_frame_errors() -> None:
    cases = [
        ("10 5B 01 5D 16", CHECKSUM),
        ("10 5B 01 5C 17", MALFORMED),
        ("68 03 04 68 08 01 72 7B 16", MALFORMED),  # L fields differ
        ("68 03 03 69 08 01 72 7B 16", MALFORMED),  # second start byte
        ("68 02 02 68 08 01 09 16", MALFORMED),  # L below 3
        ("68 03 03 68 08 01 72 7C 16", CHECKSUM),
        ("68 03 03 68 08 01 72 7B 15", MALFORMED),
        ("68 03 03 68 08 01 72", TRUNCATED),
        ("E5 E5", MALFORMED),  # bytes after the frame
        ("00", MALFORMED),
    ]
    for text, reason in cases:
        with pytest.raises(RemoteProtocolError) as info:
            mbus.parse_frame(bytes.fromhex(text))
        assert info.value.reason == reason, text


# --------------------------------------------------------------------------- the stream


def test_every_split_point_gives_the_same_frames() -> None:
    frames = [
        mbus.ack().encode(),
        mbus.snd_nke(1),
        rsp("04 13 39 30 00 00 1F"),
        mbus.req_ud2(1, fcb=True),
        *vector_frames()[:8],
    ]
    stream = b"".join(frames)
    for split in range(len(stream) + 1):
        for pieces in (
            [stream[:split], stream[split:]],
            [stream[i : i + 1] for i in range(split)] + [stream[split:]],
        ):
            parser = mbus.FrameParser()
            got = []
            for piece in pieces:
                parser.receive_data(piece)
                got.extend(frame.encode() for frame in parser)
            assert got == frames, split
            assert parser.buffered == 0


def test_garbage_is_reported_once_per_run_and_skipped() -> None:
    good = rsp("04 13 39 30 00 00")
    parser = mbus.FrameParser()
    parser.receive_data(b"\x00\x01\x02")
    assert parser.next_event() is mbus.NEED_DATA
    assert parser.garbage == 3
    parser.receive_data(b"\x03" + good)
    with pytest.raises(RemoteProtocolError) as info:
        parser.next_event()
    assert info.value.reason == MALFORMED and "4 bytes" in info.value.message
    assert parser.next_event() == mbus.parse_frame(good)
    # a bad checksum drops the start byte and resynchronises inside the broken frame
    broken = bytearray(good)
    broken[-2] ^= 0xFF
    parser.receive_data(bytes(broken) + mbus.ack().encode())
    with pytest.raises(RemoteProtocolError) as info:
        parser.next_event()
    assert info.value.reason == CHECKSUM
    events = [e for e in drain(parser) if isinstance(e, mbus.Frame)]  # errors left out
    assert events[-1] == mbus.ack()


def test_bounded_buffer_overflows_and_recovers() -> None:
    parser = mbus.FrameParser(max_buffer=300)
    # a long frame announcing 255 bytes that never end, then more bytes than the cap
    parser.receive_data(bytes([0x68, 0xFF, 0xFF, 0x68]) + bytes(400))
    assert parser.buffered == 300
    with pytest.raises(RemoteProtocolError) as info:
        parser.next_event()
    assert info.value.reason == OVERFLOW
    # a run of garbage longer than the buffer is reported without waiting for a start byte
    parser = mbus.FrameParser(max_buffer=300)
    parser.receive_data(bytes(600))
    with pytest.raises(RemoteProtocolError):
        parser.next_event()
    parser.receive_data(mbus.ack().encode())
    assert list(parser) == [mbus.ack()]


# ------------------------------------------------------------------------------ records


def test_integer_types_signed_little_endian() -> None:
    assert one("01 13 FF") == ("volume", -0.001, "m3")
    assert one("02 3B 39 30") == ("volume_flow", 12.345, "m3/h")
    assert one("03 06 F9 34 15") == ("energy", 1389817000, "Wh")
    assert one("04 2B 39 30 00 00") == ("power", 12345, "W")
    assert one("06 03 01 00 00 00 00 80") == ("energy", -(2**47) + 1, "Wh")
    assert one("07 03 FF FF FF FF FF FF FF 7F") == ("energy", 2**63 - 1, "Wh")


def test_bcd_types_and_negative_bcd() -> None:
    assert one("09 13 45") == ("volume", 0.045, "m3")
    assert one("0A 13 45 23") == ("volume", 2.345, "m3")
    assert one("0B 13 45 23 01") == ("volume", 12.345, "m3")
    assert one("0C 13 45 23 01 00") == ("volume", 12.345, "m3")
    assert one("0C 13 45 23 01 F0") == ("volume", -12.345, "m3")
    assert one("0E 03 01 00 00 00 00 99") == ("energy", 990000000001, "Wh")
    assert one("0C 13 4A 23 01 00") == ("volume", "0001234A", None)  # not decimal
    assert bcd(bytes.fromhex("020000F0")) == -2
    assert bcd(bytes.fromhex("1234"), msb_first=True) == 1234


def test_real_and_no_data() -> None:
    assert one("05 2B 00 00 80 3F") == ("power", 1.0, "W")
    assert one("05 5B 22 F3 26 42") == ("flow_temperature", 41.737434, "Cel")
    assert one("05 5A 22 F3 26 42") == ("flow_temperature", 4.1737434, "Cel")
    assert one("05 2B 00 00 C0 7F") == ("power", None, None)  # NaN
    assert one("00 13") == ("volume", None, None)
    assert one("08 13") == ("volume", None, None)  # selection for readout


def test_variable_length_data() -> None:
    assert one("0D FD 11 05" + b"olleh".hex()) == ("customer", "hello", None)
    assert one("0D 13 C2 45 23") == ("volume", 2.345, "m3")
    assert one("0D 13 D2 45 23") == ("volume", -2.345, "m3")
    assert one("0D 13 E2 39 30") == ("volume", 12.345, "m3")
    name, value, unit = one("0D FD 19 F0" + "00" * 16)
    assert (name, unit) == ("security_key", None) and value == " ".join(["00"] * 16)
    with pytest.raises(RemoteProtocolError) as info:
        telegram("0D 13 F5 00")
    assert info.value.reason == UNSUPPORTED


def test_time_points_types_g_j_f_i() -> None:
    assert one("02 6C 21 1C") == ("date", "2009-12-01", None)
    assert one("04 6D 1E 0E 21 1C") == ("date_time", "2009-12-01T14:30:00", None)
    assert one("06 6D 2D 1E 0E 21 1C 00") == ("date_time", "2009-12-01T14:30:45", None)
    assert one("03 6D 2D 1E 0E") == ("date_time", "14:30:45", None)
    assert one("04 6D 9E 0E 21 1C") == ("date_time", None, None)  # IV: time invalid
    assert one("02 6C 00 00") == ("date", None, None)  # unset
    assert one("04 FD 30 1E 0E 21 1C") == ("tariff_start", "2009-12-01T14:30:00", None)
    assert decode_time(bytes.fromhex("1E4E211C")) == "2109-12-01T14:30:00"  # century bits
    assert decode_time(bytes.fromhex("1E2E211C")) == "2009-12-01T14:30:00"
    assert decode_time(bytes.fromhex("7FC1")) == "1999-01-31"
    assert decode_time(bytes.fromhex("3F71")) == "2057-01-31"


def test_primary_vif_table_units_and_scales() -> None:
    assert one("02 46 0A 00") == ("volume_flow", 60.0, "m3/h")  # 10 x 0.1 m3/min
    assert one("02 4F 01 00") == ("volume_flow", 36.0, "m3/h")  # 1 x 0.01 m3/s
    assert one("02 69 E8 03") == ("pressure", 1000000, "Pa")  # 1000 x 10 mbar
    assert one("02 22 02 00") == ("on_time", 7200, "s")
    assert one("02 27 02 00") == ("operating_time", 172800, "s")
    assert one("02 0B 02 00") == ("energy", 2000, "J")
    assert one("02 33 02 00") == ("power", 2000, "J/h")
    assert one("02 55 02 00") == ("mass_flow", 200, "kg/h")
    assert one("02 1B 02 00") == ("mass", 2, "kg")
    assert one("02 61 02 00") == ("temperature_difference", 0.02, "K")
    assert one("02 67 EC FF") == ("external_temperature", -20, "Cel")
    assert one("02 6E 02 00") == ("hca", 2, None)
    assert one("02 71 02 00") == ("averaging_duration", 120, "s")
    assert one("0C 78 78 56 34 12") == ("fabrication_number", 12345678, None)
    assert one("01 7A 05") == ("bus_address", 5, None)
    assert one("02 7F 10 B5") == ("manufacturer_specific", -19184, None)
    assert one("01 6F 01") == ("vif_6f", 1, None)  # reserved code, kept
    # every code of the primary table is described, except the escapes and 0x6F
    assert sorted(set(range(0x80)) - set(PRIMARY_VIF)) == [0x6F, 0x7B, 0x7C, 0x7D]


def test_fd_and_fb_extension_tables() -> None:
    assert one("04 FD 48 E8 03 00 00") == ("voltage", 100.0, "V")
    assert one("04 FD 59 0A 00 00 00") == ("current", 0.01, "A")
    assert one("02 FD 0A 2D 2C") == ("manufacturer", "KAM", None)
    assert one("01 FD 17 80") == ("error_flags", 128, None)  # a bit field: unsigned
    assert one("01 FD 1B 02") == ("digital_input", 2, None)
    assert one("02 FD 74 64 00") == ("remaining_battery_life", 8640000, "s")
    assert one("02 FD 28 03 00") == ("storage_interval", 3, "mo")
    assert one("02 FD 6D 02 00") == ("battery_operating_time", 172800, "s")
    assert one("01 FD 71 C4") == ("rf_level", -60, "dBm")
    assert one("01 FD 7C 01") == ("vif_fd7c", 1, None)
    assert one("04 FB 02 0C 00 00 00") == ("reactive_energy", 12000, "varh")
    assert one("04 FB 01 0C 00 00 00") == ("energy", 12000000, "Wh")
    assert one("04 FB 09 0C 00 00 00") == ("energy", 12000000000, "J")
    assert one("02 FB 1A 0A 02") == ("relative_humidity", 52.2, "%RH")
    assert one("02 FB 2D 88 13") == ("frequency", 50.0, "Hz")
    assert one("02 FB 35 0C 00") == ("apparent_power", 120, "VA")
    assert one("02 FB 16 0C 00") == ("reactive_power", 1200, "var")
    assert one("02 FB 5A 0C 00") == ("flow_temperature", 1.2, "°F")
    assert one("02 FB 75 0C 00") == ("temperature_limit", 0.12, "Cel")
    assert one("02 FB 7B 0C 00") == ("cumulative_max_power", 12, "W")
    assert len(FD_VIF) >= 110 and len(FB_VIF) >= 70


def test_combinable_vifes() -> None:
    assert one("04 93 22 0A 00 00 00") == ("volume_per_hour", 0.01, "m3/h")
    assert one("04 93 3B 0A 00 00 00") == ("volume_forward", 0.01, "m3")
    assert one("04 93 3C 05 00 00 00") == ("volume_backward", 0.005, "m3")
    assert one("04 93 74 39 30 00 00") == ("volume", 0.12345, "m3")  # x 10^-2
    assert one("04 93 7D 39 30 00 00") == ("volume", 12345, "m3")  # x 10^3
    assert one("04 FD C8 FC 01 E8 03 00 00") == ("voltage_l1", 100.0, "V")
    assert one("04 FD C8 FC 05 E8 03 00 00") == ("voltage_l1_l2", 100.0, "V")
    assert one("04 93 FF 12 0A 00 00 00") == ("volume_mfr12", 0.01, "m3")
    assert one("04 93 15 00 00 00 00") == ("volume_record_error_no_data", 0.0, "m3")
    assert one("04 93 51 02 00 00 00") == ("volume_lower_limit_first_duration", 120, "s")
    assert one("04 93 49 03 00 00 00") == ("volume_upper_limit_exceeds", 3, None)
    assert one("04 93 39 1E 0E 21 1C") == ("volume_start", "2009-12-01T14:30:00", None)
    assert one("04 93 6F 1E 0E 21 1C") == ("volume_last_end", "2009-12-01T14:30:00", None)
    assert one("02 FC 03 48 52 25 74 D4 11") == ("rh", 45.64, "%RH")  # plain text + VIFE
    with pytest.raises(RemoteProtocolError) as info:
        telegram("04 93 7C 00 00 00 00")  # extension VIFE without its code
    assert info.value.reason == MALFORMED


def test_function_storage_tariff_subunit() -> None:
    assert one("14 13 01 00 00 00")[0] == "volume_max"
    assert one("24 13 01 00 00 00")[0] == "volume_min"
    assert one("34 13 01 00 00 00")[0] == "volume_error_state"
    assert one("44 13 01 00 00 00")[0] == "volume_storage1"
    assert one("C4 01 13 01 00 00 00")[0] == "volume_storage3"
    record = telegram("D4 81 61 13 01 00 00 00").records[0]
    assert (record.storage, record.tariff, record.subunit) == (35, 8, 2)
    assert record.function == "maximum"
    assert record.name == "volume_max_storage35_tariff8_subunit2"


def test_fillers_manufacturer_block_and_more_records_follow() -> None:
    t = telegram("2F 2F 04 13 01 00 00 00 2F 1F AA BB")
    assert [r.name for r in t.records] == ["volume", "manufacturer_data"]
    assert t.records[1].value == "AA BB"
    assert t.more_records_follow
    t = telegram("04 13 01 00 00 00 0F 01 02")
    assert not t.more_records_follow and t.records[1].raw == b"\x01\x02"


def test_broken_records_raise_with_reason() -> None:
    cases = [
        ("84", TRUNCATED),  # ends in the DIFEs
        ("04", TRUNCATED),  # no VIF
        ("04 93", TRUNCATED),  # ends in the VIFEs
        ("04 13 01 00", TRUNCATED),  # short data
        ("0D 13", TRUNCATED),  # no LVAR
        ("04 7C 05 41", TRUNCATED),  # plain text cut
        ("04 7C C0", MALFORMED),  # plain text length above 0xBF
        ("84" + "80" * 10 + "00 13 00 00 00 00", MALFORMED),  # 11 DIFEs
        ("04 93" + "80" * 10 + "00 00 00 00 00", MALFORMED),  # 11 VIFEs
        ("3F", UNSUPPORTED),  # reserved special function
        ("7F", UNSUPPORTED),  # global readout request: not in a response
    ]
    for text, reason in cases:
        with pytest.raises(RemoteProtocolError) as info:
            telegram(text)
        assert info.value.reason == reason, (text, info.value)


def test_scale_keeps_ints_and_avoids_float_noise() -> None:
    assert scale(12349, -2) == 123.49
    assert scale(3, -1) == 0.3  # not 0.30000000000000004
    assert scale(7, 3) == 7000 and isinstance(scale(7, 3), int)
    assert scale(2, 0, 3600) == 7200
    assert scale("41.737434", -3) == 0.041737434
    assert scale("2.5e-38", 2) == 2.5e-36


# ------------------------------------------------------------------------------ headers


def test_long_header_fields() -> None:
    t = telegram("04 13 01 00 00 00")
    assert t.fields() == {
        "id": 12345678,
        "manufacturer": "KAM",
        "version": 1,
        "medium": "water",
        "access_number": 0x55,
        "status": 0,
        "status_flags": [],
        "medium_code": 7,
        "signature": 0,
        "address": 1,
        "ci": 0x72,
        "more_records_follow": False,
    }
    status = telegram("", header=HEADER[:9] + b"\x15" + HEADER[10:]).fields()
    assert status["status_flags"] == ["application_busy", "power_low", "temporary_error"]
    hex_id = telegram("", header=bytes.fromhex("3E020005") + HEADER[4:]).fields()
    assert hex_id["id"] == "500023E"
    assert manufacturer_code(0x2C2D) == "KAM"
    assert MEDIUM[0x16] == "cold water"


def test_short_header_no_header_and_mode_2() -> None:
    short = telegram("04 13 01 00 00 00", ci=0x7A, header=bytes.fromhex("2A 00 0000"))
    assert short.access_number == 0x2A and short.id is None and short.manufacturer is None
    assert [r.name for r in short.records] == ["volume"]
    none = telegram("04 13 01 00 00 00", ci=0x78, header=b"")
    assert none.access_number is None and none.records[0].value == 0.001
    # CI 0x76: multi-byte fields most significant byte first
    msb = telegram(
        "04 13 00 00 30 39", ci=0x76, header=bytes.fromhex("12345678 2C2D 01 07 55 00 0000")
    )
    assert (msb.id, msb.manufacturer) == (12345678, "KAM")
    assert msb.records[0].value == 12.345
    alarm = mbus.decode_response(mbus.long_frame(0x08, 1, 0x71, b"\x04"))
    assert alarm.alarm == 4 and alarm.fields()["alarm"] == 4


def test_fixed_data_structure() -> None:
    # id 12345678, access 1, status 0x00 (BCD, actual); counter 1 kWh, counter 2 litres
    data = bytes.fromhex("78563412 01 00 05 69 31650000 69000000")
    t = mbus.decode_response(mbus.long_frame(0x08, 1, 0x73, data))
    assert t.medium_name == "heat"
    assert [(r.name, r.value, r.unit) for r in t.records] == [
        ("energy", 6531000, "Wh"),
        ("volume", 0.069, "m3"),
    ]
    binary_stored = bytes.fromhex("78563412 01 C0 05 3E E8030000 64000000")
    t = mbus.decode_response(mbus.long_frame(0x08, 1, 0x73, binary_stored))
    assert [(r.name, r.value) for r in t.records] == [
        ("energy_stored", 1000000),
        ("energy_historic_stored", 100000),
    ]
    with pytest.raises(RemoteProtocolError) as info:
        mbus.decode_response(mbus.long_frame(0x08, 1, 0x73, data + b"\x00"))
    assert info.value.reason == MALFORMED


def test_responses_that_are_not_data() -> None:
    cases = [
        (mbus.long_frame(0x08, 1, 0x70, b"\x08"), EXCEPTION),
        (mbus.long_frame(0x08, 1, 0x70), EXCEPTION),
        (mbus.long_frame(0x08, 1, 0x90, b"\x00"), UNSUPPORTED),
        (mbus.long_frame(0x53, 1, 0x51, b"\x01\x7a\x08"), UNSUPPORTED),
        (mbus.long_frame(0x05, 1, 0x72, HEADER), UNSUPPORTED),  # not RSP_UD
        (mbus.short_frame(0x5B, 1), UNSUPPORTED),
        (mbus.ack(), UNSUPPORTED),
        (mbus.long_frame(0x08, 1, 0x72, HEADER[:11]), TRUNCATED),
        (mbus.long_frame(0x08, 1, 0x7A, b"\x01"), TRUNCATED),
    ]
    for frame, reason in cases:
        with pytest.raises(RemoteProtocolError) as info:
            mbus.decode_response(frame)
        assert info.value.reason == reason, frame


# ------------------------------------------------------------------ multi-telegram reads


def test_multi_telegram_read_toggles_fcb() -> None:
    first = mbus.parse_frame(rsp("04 13 01 00 00 00 1F"))
    second = mbus.parse_frame(rsp("04 13 02 00 00 00 1F"))
    last = mbus.parse_frame(rsp("04 13 03 00 00 00"))
    reader = mbus.MultiTelegramReader(address=1)
    assert reader.start() == mbus.snd_nke(1)
    assert reader.receive_frame(mbus.ack()) == mbus.req_ud2(1, fcb=True)
    assert reader.receive_frame(first) == mbus.req_ud2(1, fcb=False)
    # no answer: the same request, same FCB, so the slave repeats rather than skips
    assert reader.timeout() == mbus.req_ud2(1, fcb=False)
    assert reader.receive_frame(second) == mbus.req_ud2(1, fcb=True)
    assert reader.receive_frame(last) is None
    assert reader.done and not reader.failed
    assert [r.value for r in reader.records()] == [0.001, "", 0.002, "", 0.003]
    with pytest.raises(LocalProtocolError):
        reader.receive_frame(last)


def test_multi_telegram_read_with_secondary_selection_and_limits() -> None:
    reader = mbus.MultiTelegramReader(select=(12345678, "KAM", None, None), max_telegrams=2)
    assert reader.address == 0xFD
    assert reader.start() == mbus.snd_nke(0xFD)
    assert reader.receive_frame(mbus.ack()) == mbus.select_secondary(12345678, "KAM", fcb=True)
    assert reader.receive_frame(mbus.ack()) == mbus.req_ud2(0xFD, fcb=False)
    more = mbus.parse_frame(rsp("04 13 01 00 00 00 1F", address=0xFD))
    assert reader.receive_frame(more) == mbus.req_ud2(0xFD, fcb=True)
    assert reader.receive_frame(more) is None  # max_telegrams reached
    assert len(reader.telegrams) == 2


def test_multi_telegram_read_failures() -> None:
    reader = mbus.MultiTelegramReader(address=1, reset=False, retries=1)
    assert reader.start() == mbus.req_ud2(1, fcb=True)
    assert reader.timeout() == mbus.req_ud2(1, fcb=True)
    assert reader.timeout() is None
    assert reader.failed
    reader = mbus.MultiTelegramReader(address=1)
    reader.start()
    with pytest.raises(RemoteProtocolError):
        reader.receive_frame(mbus.parse_frame(rsp("04 13 01 00 00 00")))  # no E5 after NKE
    with pytest.raises(LocalProtocolError):
        reader.start()


# ----------------------------------------------------------------------------- describe


def test_describe_contract() -> None:
    (result,) = mbus.describe(rsp("04 13 39 30 00 00 44 13 01 00 00 00"), {})
    assert result == {
        "protocol": "mbus",
        "valid": True,
        "error": None,
        "fields": telegram("").fields(),
        "readings": [
            {"name": "volume", "value": 12.345, "unit": "m3"},
            {"name": "volume_storage1", "value": 0.001, "unit": "m3"},
        ],
    }
    json.dumps(result)
    # partial decode: the readings before the broken record stay, valid is false
    (broken,) = mbus.describe(rsp("04 13 39 30 00 00 04 13 01"), {})
    assert broken["valid"] is False and str(broken["error"]).startswith("truncated: ")
    assert broken["readings"] == [{"name": "volume", "value": 12.345, "unit": "m3"}]
    (ack,) = mbus.describe(b"\xe5", {})
    assert ack["valid"] is True and ack["fields"] == {"frame": "ack"}
    (request,) = mbus.describe(mbus.req_ud2(1), {})
    assert request["valid"] is False and str(request["error"]).startswith("unsupported: ")
    assert mbus.describe(b"", {}) == []
    tail = mbus.describe(rsp("") + b"\x68\x10", {})
    assert [r["valid"] for r in tail] == [True, False]
    assert str(tail[1]["error"]).startswith("truncated: ")
    junk = mbus.describe(b"\x01\x02", {})
    assert [r["error"] for r in junk] == ["malformed: 2 bytes that start no frame"]


def test_cli_decode_mbus_json() -> None:
    runner = CliRunner()
    text = rsp("04 13 39 30 00 00").hex(" ")
    result = runner.invoke(cli, ["decode", "mbus", text, "--json"])
    assert result.exit_code == 0, result.output
    (line,) = [json.loads(x) for x in result.output.splitlines()]
    assert line["protocol"] == "mbus" and line["valid"] is True and line["error"] is None
    assert line["fields"]["id"] == 12345678 and line["fields"]["manufacturer"] == "KAM"
    assert line["readings"] == [{"name": "volume", "value": 12.345, "unit": "m3"}]
    table = runner.invoke(cli, ["decode", "mbus", text])
    assert table.exit_code == 0 and "volume" in table.output and "KAM" in table.output


def test_cli_decode_mbus_exit_codes() -> None:
    runner = CliRunner()
    bad = runner.invoke(cli, ["decode", "mbus", "68 03 03 68 08 01 70 79 16", "--json"])
    assert bad.exit_code == 1
    (line,) = [json.loads(x) for x in bad.output.splitlines()]
    assert line["valid"] is False
    assert line["error"] == "exception: application error 0x00: unspecified error"
    mixed = runner.invoke(cli, ["decode", "mbus", "E5 10 5B 01 5D 16", "--json"])
    assert mixed.exit_code == 1
    assert [json.loads(x)["valid"] for x in mixed.output.splitlines()] == [True, False]
    assert runner.invoke(cli, ["decode", "mbus", "zz"]).exit_code == 2


# -------------------------------------------------------------------------------- fuzzing


def _only_protocol_errors(data: bytes) -> None:
    parser = mbus.FrameParser()
    parser.receive_data(data)
    for _ in range(len(data) + 2):
        try:
            event = parser.next_event()
        except RemoteProtocolError:
            continue
        if event is mbus.NEED_DATA:
            break
        with contextlib.suppress(RemoteProtocolError):
            mbus.decode_response(event)  # type: ignore[arg-type]
    for result in mbus.describe(data, {}):
        json.dumps(result)
        assert set(result) == {"protocol", "valid", "error", "fields", "readings"}


@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_random_bytes(data: bytes) -> None:
    _only_protocol_errors(data)


@FUZZ
@given(st.binary(max_size=240), st.sampled_from([0x72, 0x76, 0x78, 0x7A, 0x73, 0x70, 0x71]))
def test_fuzz_random_records_in_valid_frames(payload: bytes, ci: int) -> None:
    frame = mbus.long_frame(0x08, 1, ci, payload)
    try:
        t = mbus.decode_response(frame)
    except RemoteProtocolError:
        return
    for record in t.records:
        assert isinstance(record.name, str) and record.name
        json.dumps(record.measurement().as_dict())


@FUZZ
@given(st.data())
def test_fuzz_mutated_vector_frames(data: st.DataObject) -> None:
    frames = vector_frames() or [rsp("04 13 39 30 00 00 05 5B 22 F3 26 42 1F 01")]
    frame = bytearray(data.draw(st.sampled_from(frames)))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(frame) - 1))
        frame[i] = data.draw(st.integers(0, 255))
    body = frame[4:-2]
    if data.draw(st.booleans()) and len(frame) > 6:
        frame[-2] = sum(body) & 0xFF  # keep the checksum right: exercise the records
    _only_protocol_errors(bytes(frame))
    cut = data.draw(st.integers(0, len(frame)))
    _only_protocol_errors(bytes(frame[:cut]))

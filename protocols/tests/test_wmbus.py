"""Wireless M-Bus codec: link layer CRCs, security modes 5 and 7, keys, Diehl PRIOS, fuzz."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import CHECKSUM, DECRYPTION, TRUNCATED, RemoteProtocolError
from protocols.wmbus import (
    Decoder,
    MissingKeyError,
    WrongKeyError,
    crc16,
    decode,
    describe,
    dongles,
    frame_format_a,
    frame_format_b,
    strip_crcs,
)
from protocols.wmbus._aes import cmac
from protocols.wmbus._build import build_telegram

KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
OTHER = bytes.fromhex("F0E0D0C0B0A090807060504030201000")
# Volume 12.345 m3 (0C13 BCD litres), flow temperature, error flags with a leak bit.
RECORDS = bytes.fromhex("0C1345230100025A2E01")
# A plain Diehl/Hydrometer telegram published with its values (aerius gas meter).
AERIUS = bytes.fromhex(
    "2E44A5119870659930037A060020052F2F0C933E842784060A3B00000A5A5901C4016D3B37DF2CCC01933E24032606"
)
# A SAP (Diehl) PRIOS telegram: 3.488 m3, 3.486 m3 at 2019-09-30, blocked and underflow.
PRIOS = bytes.fromhex("1944304C72242421D401A2013D4013DD8B46A4999C1293E582CC")


def _values(t: object) -> dict[str, object]:
    return {m.name: m.value for m in t.measurements()}  # type: ignore[attr-defined]


def test_crc_check_value() -> None:
    assert crc16(b"123456789") == 0xC2B7  # CRC-16/EN-13757


def test_aes_cmac_rfc4493() -> None:
    key = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    assert cmac(key, b"").hex() == "bb1d6929e95937287fa37d129b756746"
    msg = bytes.fromhex("6bc1bee22e409f96e93d7e117393172a")
    assert cmac(key, msg).hex() == "070a16b46b4d4144f79bdd9dd04a287c"
    msg40 = bytes.fromhex(
        "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411"
    )
    assert cmac(key, msg40).hex() == "dfa66747de9ae63030ca32611497c827"


@pytest.mark.parametrize("frame", [frame_format_a, frame_format_b])
def test_frame_formats_round_trip(frame: object) -> None:
    plain = AERIUS
    with_crcs = frame(plain)  # type: ignore[operator]
    stripped, _fmt = strip_crcs(with_crcs)
    assert stripped[1:] == plain[1:]
    assert _values(decode(with_crcs)) == _values(decode(plain))


def test_long_format_b_has_three_blocks() -> None:
    telegram = build_telegram(
        "KAM", "12345678", 1, 7, bytes.fromhex("0413") + b"\x01\x00\x00\x00" * 1 + b"\x2f" * 140
    )
    framed = frame_format_b(telegram)
    assert len(framed) == len(telegram) + 4
    assert strip_crcs(framed)[0][1:] == telegram[1:]


def test_bad_crc_is_a_checksum_error() -> None:
    framed = bytearray(frame_format_a(AERIUS))
    framed[20] ^= 0x01
    with pytest.raises(RemoteProtocolError) as e:
        decode(bytes(framed))
    assert e.value.reason == CHECKSUM


def test_truncated_telegrams_raise_only_protocol_errors() -> None:
    for size in range(len(AERIUS)):
        with pytest.raises(RemoteProtocolError):
            decode(AERIUS[:size])


@pytest.mark.parametrize("mode", [5, 7])
def test_encrypted_round_trip_and_key_errors(mode: int) -> None:
    telegram = build_telegram(
        "DME", "12345678", 0x30, 0x07, RECORDS, access_number=0x42, mode=mode, key=KEY, counter=9
    )
    t = Decoder({"DME-12345678": KEY}).decode(telegram)
    assert t.security_mode == mode
    assert _values(t)["volume"] == 12.345
    assert _values(t)["flow_temperature"] == 30.2
    assert Decoder({"12345678": KEY}).decode(telegram).id == "12345678"
    with pytest.raises(MissingKeyError) as missing:
        Decoder({"DME-87654321": KEY}).decode(telegram)
    assert missing.value.meter == "DME-12345678"
    assert missing.value.reason == DECRYPTION
    assert "DME-12345678" in str(missing.value)
    with pytest.raises(WrongKeyError) as wrong:
        Decoder({"*": OTHER}).decode(telegram)
    assert wrong.value.meter == "DME-12345678"
    assert KEY.hex() not in str(wrong.value).lower() and OTHER.hex() not in str(wrong.value)


def test_mode7_mac_detects_an_altered_telegram() -> None:
    telegram = bytearray(
        build_telegram("DME", "12345678", 1, 7, RECORDS, mode=7, key=KEY, counter=3)
    )
    telegram[-1] ^= 0x80  # flip a bit of the cipher text
    with pytest.raises(WrongKeyError, match="MAC"):
        Decoder({"*": KEY}).decode(bytes(telegram))


def test_clear_telegram_marked_encrypted_is_refused_when_a_key_is_configured() -> None:
    with pytest.raises(WrongKeyError, match="in clear"):
        Decoder({"*": KEY}).decode(AERIUS)
    assert _values(decode(AERIUS))["volume_at_base_conditions"] == 6842.784


def test_prios_default_key() -> None:
    t = decode(PRIOS)
    assert (t.manufacturer, t.id, t.device_type) == ("SAP", "21242472", 7)
    values = _values(t)
    assert values["volume"] == 3.488
    assert values["volume_storage1"] == 3.486
    assert values["date_storage1"] == "2019-09-30"
    assert values["meter_blocked"] is True
    assert values["leak"] is False


def test_prios_wrong_key_names_the_meter() -> None:
    with pytest.raises(RemoteProtocolError, match="SAP-21242472"):
        Decoder({"*": OTHER}).decode(PRIOS)


def test_describe_splits_telegrams_and_hides_keys() -> None:
    telegram = build_telegram("DME", "12345678", 1, 7, RECORDS, mode=5, key=KEY)
    results = describe(AERIUS + telegram, {"key": KEY.hex()})
    assert [r["valid"] for r in results] == [False, True]  # AERIUS is clear: refused with a key
    assert KEY.hex() not in repr(results).lower()
    assert results[1]["fields"]["encryption_mode"] == 5  # type: ignore[index]


def test_describe_of_a_truncated_telegram() -> None:
    [r] = describe(AERIUS[:20], {})
    assert r["valid"] is False
    assert str(r["error"]).startswith(TRUNCATED)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_the_protocol_error(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        decode(data, {"*": KEY})
    for r in describe(data, {}):
        assert r["protocol"] == "wmbus"


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=len(AERIUS) - 1), st.integers(0, 255))
def test_mutated_telegrams_only_raise_the_protocol_error(pos: int, value: int) -> None:
    mutated = bytearray(AERIUS)
    mutated[pos] = value
    for data in (bytes(mutated), frame_format_a(bytes(mutated))):
        with contextlib.suppress(RemoteProtocolError):
            decode(data)


def test_ell_aes_ctr_round_trip_and_wrong_key() -> None:
    from protocols.wmbus import _aes
    from protocols.wmbus._link import crc16 as crc

    # A Kamstrup-style telegram: ELL II (CI 0x8D) with AES-CTR, then CI 0x78 records.
    header = bytes.fromhex("442D2C78563412") + bytes([0x1B, 0x16])  # C M A (id 12345678)
    cc, acc = 0x20, 0x55
    sn = bytes([0x01, 0x00, 0x00, 0x20])  # session 1, security mode 1 (AES-CTR) in bits 29-31
    plain_payload = bytes([0x78]) + bytes.fromhex("0413") + (4242).to_bytes(4, "little")
    crc_value = crc(plain_payload)
    plain = bytes([crc_value & 0xFF, crc_value >> 8]) + plain_payload
    iv = header[1:9] + bytes([cc & 0xED]) + sn + b"\x00\x00\x00"
    body = header + bytes([0x8D, cc, acc]) + sn + _aes.ctr_crypt(KEY, iv, plain)
    telegram = bytes([len(body)]) + body
    t = Decoder({"*": KEY}).decode(telegram)
    assert _values(t)["volume"] == 4.242
    assert t.ell_ci == 0x8D
    with pytest.raises(MissingKeyError, match="ELL"):
        decode(telegram)
    with pytest.raises(WrongKeyError, match="CRC"):
        Decoder({"*": OTHER}).decode(telegram)


def test_compact_frames_decode_once_the_full_telegram_was_heard() -> None:
    full = build_telegram("ABC", "11223344", 1, 7, bytes.fromhex("0413") + b"\x10\x27\x00\x00")
    fmt = bytes.fromhex("0413")
    signature = crc16(fmt)
    head = build_telegram("ABC", "11223344", 1, 7, b"")[:11]  # L C M A CI=0x7A
    body = head[1:10] + bytes([0x79, signature & 0xFF, signature >> 8, 0x00, 0x00])
    body += (20000).to_bytes(4, "little")  # the data of 04 13, without its DIF/VIF
    compact = bytes([len(body)]) + body
    decoder = Decoder()
    with pytest.raises(RemoteProtocolError, match="not yet seen"):
        decoder.decode(compact)
    assert _values(decoder.decode(full))["volume"] == 10.0
    assert _values(decoder.decode(compact))["volume"] == 20.0


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["im871a", "amb8465", "rtlwmbus"]), st.lists(st.binary(max_size=64), max_size=8)
)
def test_dongle_streams_take_random_bytes(dongle: str, chunks: list[bytes]) -> None:
    from protocols._stream import NeedData
    from protocols.wmbus import dongles

    stream = dongles.stream(dongle)
    for chunk in chunks:
        with contextlib.suppress(RemoteProtocolError):
            stream.receive_data(chunk)
        for _ in range(10_000):
            try:
                event = stream.next_event()
            except RemoteProtocolError:
                continue
            if isinstance(event, NeedData):
                break
        assert stream.buffered <= dongles.MAX_BUFFER


def test_amber_stream_resynchronises_on_a_start_byte_that_starts_nothing() -> None:
    """0xFF followed by a command byte the module never sends (another device's 0xFF 0xFF)
    is dropped: the module's answer right after it is found, not swallowed as a payload."""
    stream = dongles.AmberStream()
    stream.command_mode = True
    stream.receive_data(
        bytes.fromhex("ffff06ab") + dongles.amber_message(0x8B, b"\x00\x07\x21\x9a")
    )
    events = []
    for _ in range(10):
        try:
            event = stream.next_event()
        except RemoteProtocolError:
            continue
        if not isinstance(event, dongles.DongleReply):
            break
        events.append(event)
    assert [(e.code, e.payload) for e in events] == [(0x8B, b"\x00\x07\x21\x9a")]


def test_rtlwmbus_packet_rssi_is_a_level_not_dbm() -> None:
    stream = dongles.RtlWmbusStream()
    telegram = bytes.fromhex("1944A511780700000000" + "7A000000002F2F0413E8030000")
    stream.receive_data(dongles.rtlwmbus_line(telegram, rssi=97))
    event = stream.next_event()
    assert isinstance(event, dongles.RadioTelegram)
    assert event.rssi is None and event.level == 97.0

"""Enedis TIC codec: builders, stream splitting, resynchronisation, bounds, fuzz, CLI."""

import contextlib
import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from estran.cli import cli
from protocols import errors, tic
from protocols.tests import support
from protocols.tests.support import drain

CBETM = "tic/openhab_historique_cbetm_base_three_phase.json"
WIFINFO = "tic/wifinfo_historique_hchp.json"
WIFINFO_BAD = "tic/wifinfo_historique_bad_checksum.json"
LINKY = "tic/openhab_linky_standard_three_phase_prod.json"
VECTOR_FRAMES = (CBETM, WIFINFO, WIFINFO_BAD, LINKY)

# Frames of our own, made with the builders: the tests below run without shared/ too.
HISTORIQUE_FRAME = tic.build_frame(
    [
        tic.build_group("ADCO", "021528603314"),
        tic.build_group("OPTARIF", "BBR("),
        tic.build_group("ISOUSC", "45"),
        tic.build_group("BBRHCJB", "004767190"),
        tic.build_group("BBRHPJB", "006281066"),
        tic.build_group("PTEC", "HPJB"),
        tic.build_group("DEMAIN", "----"),
        tic.build_group("IINST", "002"),
        tic.build_group("IMAX", "090"),
        tic.build_group("PAPP", "00460"),
        tic.build_group("HHPHC", "Y"),
        tic.build_group("MOTDETAT", "000000"),
    ]
)
STANDARD_FRAME = tic.build_frame(
    [
        tic.build_group("ADSC", "041876097467", tic.STANDARD),
        tic.build_group("VTIC", "02", tic.STANDARD),
        tic.build_group("DATE", "", tic.STANDARD, "h231029025959"),
        tic.build_group("EAST", "000012345", tic.STANDARD),
        tic.build_group("PREF", "06", tic.STANDARD),
        tic.build_group("SINSTS", "00460", tic.STANDARD),
        tic.build_group("SMAXSN", "01920", tic.STANDARD, "H231028181818"),
        tic.build_group("DPM1", "01", tic.STANDARD, " 231030060000"),
        tic.build_group("STGE", "003A4301", tic.STANDARD),
        tic.build_group("RELAIS", "140", tic.STANDARD),
        tic.build_group("MSG1", "PAS DE          MESSAGE         ", tic.STANDARD),
    ]
)
OWN_FRAMES = (HISTORIQUE_FRAME, STANDARD_FRAME)


def vector_raw(name: str) -> bytes:
    data = support.load_json(name)
    assert isinstance(data, dict)
    return support.unhex(data["raw_hex"])


def feed(chunks: list[bytes], **kwargs: int) -> list[object]:
    stream = tic.TicStream(**kwargs)  # type: ignore[arg-type]
    out: list[object] = []
    for chunk in chunks:
        stream.receive_data(chunk)
        out += drain(stream)
    stream.end_of_data()
    out += drain(stream)
    return out


# -- builders and round trips ------------------------------------------------------------


def test_own_frames_decode() -> None:
    hist = tic.parse_frame(HISTORIQUE_FRAME)
    assert hist.valid and hist.mode == tic.HISTORIQUE
    assert hist.get("OPTARIF") == "BBR("
    values = {m.name: (m.value, m.unit) for m in hist.measurements()}
    assert values["BBRHCJB"] == (4767190, "Wh")
    assert values["IMAX"] == (90, "A")
    assert "DEMAIN" not in values

    std = tic.parse_frame(STANDARD_FRAME)
    assert std.valid and std.mode == tic.STANDARD
    fields = std.fields()
    assert fields["DATE"] == ""
    assert fields["DATE_time"] == "2023-10-29T02:59:59+01:00"  # degraded clock, winter
    assert std.groups[2].time is not None and std.groups[2].time.degraded
    assert fields["SMAXSN_time"] == "2023-10-28T18:18:18+01:00"
    assert fields["DPM1_time"] == "2023-10-30T06:00:00"  # no season for mobile peaks
    values = {m.name: (m.value, m.unit) for m in std.measurements()}
    assert values["PREF"] == (6000, "VA")
    assert values["SMAXSN"] == (1920, "VA")
    # RELAIS 140: relays 3, 4 and 8 closed (NOI-CPT_54E §6.2.3.19 example).
    closed = [n for n in range(1, 9) if values["RELAIS.%d" % n][0] == 1]
    assert closed == [3, 4, 8]
    assert tic.decode_relais("001") == {1: 1, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 7: 0, 8: 0}
    assert values["STGE.tarif_distributeur_index0"] == (1, None)
    assert values["STGE.tarif_fourniture_index0"] == (0, None)
    assert values["STGE.contact_sec"] == (1, None)


printable = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=8)
value_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)


@st.composite
def horodates(draw: st.DrawFn) -> str:
    season = draw(st.sampled_from(" HEhe"))
    year = draw(st.integers(0, 99))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(1, 28))
    h, m, s = draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
    return "%s%02d%02d%02d%02d%02d%02d" % (season, year, month, day, h, m, s)


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(printable, value_text, st.one_of(st.none(), horodates())),
        min_size=1,
        max_size=10,
    ),
    st.sampled_from(tic.MODES),
)
def test_build_parse_round_trip(groups: list[tuple[str, str, str | None]], mode: str) -> None:
    built = []
    for label, value, horodate in groups:
        if mode == tic.HISTORIQUE:
            label = label.replace(" ", "")
            horodate = None
        built.append(tic.build_group(label, value, mode, horodate))
    frame = tic.parse_frame(tic.build_frame(built))
    assert frame.valid, frame.error
    assert frame.mode == mode
    got = [(g.label, g.value, g.horodate) for g in frame.groups]
    expected = [
        (label, value, horodate if mode == tic.STANDARD else None)
        for label, value, horodate in groups
    ]
    assert got == expected
    for g in frame.groups:
        if g.horodate is not None:
            assert g.time is not None and g.time.raw == g.horodate


@settings(max_examples=200)
@given(horodates())
def test_horodate_utc_ms_matches_datetime(text: str) -> None:
    h = tic.parse_horodate(text)
    assert h.raw == text
    iso = h.isoformat()
    if h.offset_minutes is None:
        assert h.utc_ms() is None
        assert len(iso) == 19
    else:
        expected = datetime.fromisoformat(iso).astimezone(UTC)
        assert h.utc_ms() == int(expected.timestamp() * 1000)


def test_builders_refuse_what_the_format_cannot_carry() -> None:
    bad_calls = [
        lambda: tic.build_group("", "1"),
        lambda: tic.build_group("A B", "1"),
        lambda: tic.build_group("A", "\t1"),
        lambda: tic.build_group("A", "é"),
        lambda: tic.build_group("A", "1", "mixed"),
        lambda: tic.build_group("DATE", "", tic.HISTORIQUE, "E210414082625"),
        lambda: tic.build_group("DATE", "", tic.STANDARD, "E211414082625"),
        lambda: tic.TicStream("mixed"),
        lambda: tic.TicStream(max_frame=0),
    ]
    for call in bad_calls:
        with pytest.raises(errors.LocalProtocolError):
            call()


# -- the stream --------------------------------------------------------------------------


def all_frames() -> list[bytes]:
    frames = list(OWN_FRAMES)
    with contextlib.suppress(pytest.skip.Exception):
        frames += [vector_raw(name) for name in VECTOR_FRAMES]
    return frames


@pytest.mark.parametrize("index", range(6))
def test_every_split_point_gives_the_same_frame(index: int) -> None:
    frames = all_frames()
    if index >= len(frames):
        pytest.skip("shared vectors absent")
    raw = frames[index]
    expected = tic.parse_frame(raw)
    whole = feed([b"junk" + raw + b"\x00"])
    assert whole == [expected]
    for cut in range(len(raw) + 1):
        assert feed([raw[:cut], raw[cut:]]) == [expected], cut
    # three pieces, a few cut pairs
    for a in range(0, len(raw), 37):
        b = (a * 7) % (len(raw) + 1)
        lo, hi = min(a, b), max(a, b)
        assert feed([raw[:lo], raw[lo:hi], raw[hi:]]) == [expected]


def test_resynchronisation_after_garbage_and_lost_etx() -> None:
    hist, std = OWN_FRAMES
    # garbage, a frame whose ETX was lost, a good frame, a frame whose STX was lost
    data = b"\xff\x13\n\rXX" + std[:-1] + hist + b"garbage" + std[1:] + hist
    events = feed([data])
    assert len(events) == 3
    first, second, third = events
    assert isinstance(first, tic.Frame) and first.end == tic.END_STX
    assert not first.valid and all(g.valid for g in first.groups)
    assert len(first.groups) == len(tic.parse_frame(std).groups)
    assert second == tic.parse_frame(hist) == third


def test_group_level_damage_stays_in_its_frame() -> None:
    hist = HISTORIQUE_FRAME
    # Flip one digit of BBRHCJB: its checksum fails, the other groups stay valid.
    i = hist.index(b"004767190")
    damaged = hist[:i] + b"1" + hist[i + 1 :]
    frame = tic.parse_frame(damaged)
    assert not frame.valid
    bad = [g for g in frame.groups if not g.valid]
    assert [(g.label, g.reason) for g in bad] == [("BBRHCJB", errors.CHECKSUM)]
    assert "BBRHCJB" not in frame.fields()
    assert len(frame.fields()) == 11
    # A lost LF glues two groups: reported, never silently dropped.
    j = hist.index(b"\nPTEC")
    glued = hist[:j] + hist[j + 1 :]
    frame = tic.parse_frame(glued)
    assert not frame.valid
    assert [g.reason for g in frame.groups if not g.valid] == [errors.MALFORMED]
    # A lost CR likewise.
    k = hist.index(b"\r\nPTEC")
    frame = tic.parse_frame(hist[:k] + hist[k + 1 :])
    assert [g.label for g in frame.groups if not g.valid] == ["BBRHPJB"]


def test_group_shapes() -> None:
    std = b"EAST\t000012345\t" + bytes((tic.checksum(b"EAST\t000012345\t"),))
    assert tic.parse_group(std).valid
    assert tic.parse_group(std, tic.HISTORIQUE).reason == errors.MALFORMED
    assert tic.parse_group(b"PAPP 00460 (", tic.STANDARD).reason == errors.MALFORMED
    four = b"A\tB\tC\tD\t"
    assert tic.parse_group(four + bytes((tic.checksum(four),))).reason == errors.MALFORMED
    bad_time = b"DATE\tE211414082625\t\t"
    group = tic.parse_group(bad_time + bytes((tic.checksum(bad_time),)))
    assert group.reason == errors.MALFORMED and "horodate" in str(group.message)
    assert tic.parse_group(b"A\x01B C D").reason == errors.MALFORMED
    assert tic.parse_group(b"").reason == errors.MALFORMED
    empty_label = b"\t1\t"
    assert tic.parse_group(empty_label + b"X").reason == errors.MALFORMED
    # A historique value may be empty.
    assert tic.parse_group(b"AB  " + bytes((tic.checksum(b"AB "),))).valid


def test_eot_and_empty_frames() -> None:
    hist = HISTORIQUE_FRAME
    cut = hist.index(b"\nPTEC") + 3
    events = feed([hist[:cut] + b"\x04", b"\x02\x04\x02\x03\x02\r\n\x03", hist])
    assert len(events) == 3
    interrupted, empty, good = events
    assert isinstance(interrupted, tic.Frame) and interrupted.end == tic.END_EOT
    assert [g.label for g in interrupted.groups][-1] == "BBRHPJB"
    assert isinstance(empty, tic.Frame) and empty.groups == [] and not empty.valid
    assert "malformed" in str(empty.error)
    assert good == tic.parse_frame(hist)
    # end of input inside a frame
    events = feed([hist[:cut]])
    assert len(events) == 1
    assert isinstance(events[0], tic.Frame) and events[0].end == tic.END_EOF


def test_parse_frame_refuses_non_frames() -> None:
    hist = HISTORIQUE_FRAME
    cases = {
        hist[1:]: errors.MALFORMED,
        hist[:-1]: errors.TRUNCATED,
        hist[:40] + b"\x04": errors.TRUNCATED,
        hist[:-1] + b"\x02\x03": errors.MALFORMED,
        b"": errors.MALFORMED,
        b"\x02" + b"\n" * 5000 + b"\x03": errors.OVERFLOW,
    }
    for data, reason in cases.items():
        with pytest.raises(errors.RemoteProtocolError) as info:
            tic.parse_frame(data)
        assert info.value.reason == reason


def test_buffer_is_bounded() -> None:
    stream = tic.TicStream(max_frame=300)
    stream.receive_data(b"\x02" + b"\nAB 1 X\r" * 100)
    with pytest.raises(errors.RemoteProtocolError) as info:
        stream.next_event()
    assert info.value.reason == errors.OVERFLOW
    assert len(stream._buf) <= 300
    # resynchronises on the next STX
    stream.receive_data(b"\x03" + HISTORIQUE_FRAME)
    event = stream.next_event()
    assert event == tic.parse_frame(HISTORIQUE_FRAME)
    assert stream.next_event() is tic.NEED_DATA

    # A frame of exactly max_frame bytes still passes.
    body_len = len(HISTORIQUE_FRAME) - 2
    assert feed([HISTORIQUE_FRAME], max_frame=body_len) == [tic.parse_frame(HISTORIQUE_FRAME)]
    assert feed([HISTORIQUE_FRAME], max_frame=body_len - 1) == [errors.OVERFLOW]


def test_pending_frames_are_bounded() -> None:
    stream = tic.TicStream(max_pending=4)
    stream.receive_data(HISTORIQUE_FRAME * 10)
    assert drain(stream) == [errors.OVERFLOW] + [tic.parse_frame(HISTORIQUE_FRAME)] * 4


def test_parity_bits_are_masked() -> None:
    noisy = bytes(b | 0x80 for b in STANDARD_FRAME)
    assert feed([noisy]) == [tic.parse_frame(STANDARD_FRAME)]
    assert tic.parse_frame(noisy) == tic.parse_frame(STANDARD_FRAME)


# -- describe ----------------------------------------------------------------------------


def test_describe_bare_groups_as_pasted() -> None:
    groups = HISTORIQUE_FRAME[1:-1]
    res = tic.describe(groups, {})
    assert len(res) == 1 and res[0]["valid"] is True
    assert res[0]["fields"] == tic.parse_frame(HISTORIQUE_FRAME).fields()
    # CR LF line ends (goteleinfo style), or lines without LF/CR around each group
    lines = b"\r\n".join(groups.replace(b"\n", b"").split(b"\r"))
    assert tic.describe(lines, {})[0]["fields"] == res[0]["fields"]
    std = tic.describe(STANDARD_FRAME[1:-1], {})
    assert std[0]["valid"] is True and std[0]["fields"]["DATE_time"].startswith("2023-10-29")
    assert tic.describe(b"", {}) == []
    assert tic.describe(b"\r\n  \n", {}) == []


def test_pasted_lines_that_lost_a_space_checksum() -> None:
    # hallard/teleinfo-test README (historique): "HCHC 000723392  " and "PTEC HP..  " have
    # a space as checksum; pasted, the trailing blanks are usually trimmed
    trimmed = b"ADCO 021528603314 :\nHCHC 000723392\nPTEC HP..\nIINST 001 X\n"
    [res] = tic.describe(trimmed, {})
    assert res["valid"] is True, res["error"]
    assert res["fields"] == {
        "ADCO": "021528603314",
        "HCHC": "000723392",
        "PTEC": "HP..",
        "IINST": "001",
    }
    # standard mode: "label HT value HT SP" trimmed to "label HT value"
    line = tic.build_group("NJOURF", "019", tic.STANDARD)[1:-1]
    assert line.endswith(b"\t ")  # this group's checksum is a space
    assert tic.describe(line[:-2], {})[0]["valid"] is True
    # a trimmed line whose sum is not a space stays refused
    [res] = tic.describe(b"HCHP 001742238", {})
    assert res["valid"] is False and str(res["error"]).startswith("malformed")


def test_describe_forced_mode() -> None:
    res = tic.describe(STANDARD_FRAME, {"mode": tic.HISTORIQUE})
    assert res[0]["valid"] is False and res[0]["fields"] == {}
    res = tic.describe(STANDARD_FRAME, {"mode": tic.STANDARD, "key": None})
    assert res[0]["valid"] is True


def test_describe_several_frames_and_garbage() -> None:
    data = b"noise" + HISTORIQUE_FRAME + b"\x00" * 3 + STANDARD_FRAME + STANDARD_FRAME[:50]
    res = tic.describe(data, {})
    assert [r["valid"] for r in res] == [True, True, False]
    assert str(res[2]["error"]).startswith("truncated:")
    big = HISTORIQUE_FRAME * 40
    assert len(tic.describe(big, {})) == 40


def check_contract(results: list[dict[str, object]]) -> None:
    support.check_contract(results, "tic")
    for r in results:
        assert all(isinstance(v, str) for v in r["fields"].values())  # type: ignore[attr-defined]


# -- fuzz --------------------------------------------------------------------------------


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000), st.integers(1, 64))
def test_fuzz_random_bytes(data: bytes, piece: int) -> None:
    stream = tic.TicStream(max_frame=512, max_pending=3)
    for start in range(0, len(data), piece):
        stream.receive_data(data[start : start + piece])
        drain(stream)
        assert len(stream._buf) <= 512
    stream.end_of_data()
    drain(stream)
    check_contract(tic.describe(data, {}))
    for call in (tic.parse_frame, tic.parse_lines, tic.parse_group):
        with contextlib.suppress(errors.RemoteProtocolError):
            call(data)
    text = data.decode("latin-1")
    for decode in (tic.parse_horodate, tic.decode_stge, tic.decode_relais):
        with contextlib.suppress(errors.RemoteProtocolError):
            decode(text[:13])
        with contextlib.suppress(errors.RemoteProtocolError):
            decode(text[:8])
        with contextlib.suppress(errors.RemoteProtocolError):
            decode(text[:3])


TIC_ALPHABET = st.sampled_from(b"\x02\x03\x04\t\n\r 0123456789ABCDEHLe+-.")


@settings(max_examples=400)
@given(st.lists(TIC_ALPHABET, max_size=600))
def test_fuzz_tic_alphabet(data: list[int]) -> None:
    raw = bytes(data)
    check_contract(tic.describe(raw, {}))
    feed([raw])


@settings(max_examples=400)
@given(
    st.sampled_from(range(2)),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255), st.sampled_from("fid"))),
)
def test_fuzz_mutated_frames(which: int, mutations: list[tuple[int, int, str]]) -> None:
    raw = bytearray(OWN_FRAMES[which])
    for pos, byte, op in mutations:
        at = pos % (len(raw) + 1)
        if op == "f" and at < len(raw):
            raw[at] ^= 1 << (byte % 8)
        elif op == "i":
            raw[at:at] = bytes((byte,))
        elif op == "d" and at < len(raw):
            del raw[at]
    data = bytes(raw)
    results = tic.describe(data, {})
    check_contract(results)
    events = feed([data])
    for e in events:
        assert isinstance(e, tic.Frame) or e in errors.REASONS
    try:
        frame = tic.parse_frame(data)
    except errors.RemoteProtocolError:
        return
    if data != OWN_FRAMES[which] and frame.valid:
        # A mutation that keeps a frame valid must still decode to well-formed values.
        assert all(g.valid for g in frame.groups)


def test_hostile_inputs_are_fast() -> None:
    import time

    hostile = [
        b"\x02" + b"\n" * 200_000,
        b"\x02" * 200_000,
        b"\x02\n" + b"A" * 200_000,
        (b"\x02\x04") * 100_000,
        b"\n\r" * 100_000,
    ]
    for data in hostile:
        start = time.process_time()
        check_contract(tic.describe(data, {}))
        assert time.process_time() - start < 2.0  # CPU seconds, whatever else runs


# -- the CLI -----------------------------------------------------------------------------


def test_cli_decode_json() -> None:
    runner = CliRunner()
    res = runner.invoke(cli, ["decode", "tic", STANDARD_FRAME.hex(), "--json"])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert out["protocol"] == "tic" and out["valid"] is True and out["error"] is None
    assert out["fields"]["ADSC"] == "041876097467"
    assert out["fields"]["DATE_time"] == "2023-10-29T02:59:59+01:00"
    readings = {r["name"]: r for r in out["readings"]}
    assert readings["EAST"] == {"name": "EAST", "value": 12345, "unit": "Wh"}

    # spaces inside the hex, two frames
    spaced = " ".join(HISTORIQUE_FRAME.hex()[i : i + 2] for i in range(0, 60, 2))
    rest = HISTORIQUE_FRAME.hex()[60:] + HISTORIQUE_FRAME.hex()
    res = runner.invoke(cli, ["decode", "tic", *spaced.split(), rest, "--json"])
    assert res.exit_code == 0, res.output
    assert len(res.output.strip().splitlines()) == 2


def test_cli_decode_invalid_exit_1() -> None:
    runner = CliRunner()
    i = HISTORIQUE_FRAME.index(b"00460")
    bad = HISTORIQUE_FRAME[:i] + b"9" + HISTORIQUE_FRAME[i + 1 :]
    res = runner.invoke(cli, ["decode", "tic", bad.hex(), "--json"])
    assert res.exit_code == 1
    out = json.loads(res.output)
    assert out["valid"] is False
    assert out["error"].startswith("checksum: PAPP")
    assert "PAPP" not in out["fields"] and out["fields"]["IINST"] == "002"
    # the readable table too
    res = runner.invoke(cli, ["decode", "tic", bad.hex()])
    assert res.exit_code == 1 and "PAPP" in res.output


def test_cli_decode_file_and_usage(tmp_path: object) -> None:
    import pathlib

    path = pathlib.Path(str(tmp_path)) / "capture.bin"
    path.write_bytes(b"\x00\x80" + bytes(b | 0x80 for b in HISTORIQUE_FRAME) + b"\x02\nAD")
    runner = CliRunner()
    res = runner.invoke(cli, ["decode", "tic", "--file", str(path), "--json"])
    assert res.exit_code == 1  # the trailing partial frame is invalid
    lines = [json.loads(line) for line in res.output.strip().splitlines()]
    assert [r["valid"] for r in lines] == [True, False]
    assert lines[0]["fields"]["ADCO"] == "021528603314"
    res = runner.invoke(
        cli, ["decode", "tic", "zé", "--json"]
    )  # not hex, and not ASCII text either
    assert res.exit_code == 2
    res = runner.invoke(cli, ["decode", "tic", "--json", "-"], input=HISTORIQUE_FRAME.hex())
    assert res.exit_code == 0 and json.loads(res.output)["valid"] is True

"""Enedis TIC conformance on ../shared/vectors/tic (CPython and MicroPython).

Every file of the folder is used: the three published frames (historique BASE three-phase,
historique HC single-phase, Linky standard three-phase producer), the frame with a bad
checksum, goteleinfo's checksum cases, the STGE decodes, and the Enedis-NOI-CPT_54E text
itself (its label table, horodate examples and checksum rule).
"""

import unittest

from protocols import errors, tic
from protocols.tests import support

CBETM = "tic/openhab_historique_cbetm_base_three_phase.json"
WIFINFO = "tic/wifinfo_historique_hchp.json"
WIFINFO_BAD = "tic/wifinfo_historique_bad_checksum.json"
LINKY = "tic/openhab_linky_standard_three_phase_prod.json"
GOTELEINFO = "tic/goteleinfo_historique_checksums.json"
STGE = "tic/stge_status_register_vectors.json"
SPEC = "tic/Enedis-NOI-CPT_54E.txt"

FRAME_FILES = (CBETM, WIFINFO, LINKY)


def _vector(name: "str") -> "dict":
    data = support.load_json(name)
    assert isinstance(data, dict)
    return data


def _raw(vector: "dict") -> "bytes":
    return support.unhex(vector["raw_hex"])


def _readings(result: "dict") -> "dict":
    out = {}
    for r in result["readings"]:
        assert sorted(r.keys()) == ["name", "unit", "value"]
        out[r["name"]] = (r["value"], r["unit"])
    return out


def _check_groups(frame: "tic.Frame", vector: "dict", mode: "str") -> "None":
    expected = vector["groups"]
    assert len(frame.groups) == len(expected)
    for i in range(len(expected)):  # (MicroPython's zip has no strict=)
        group = frame.groups[i]
        exp = expected[i]
        assert group.valid, group.error
        assert group.mode == mode
        assert group.label == exp["label"]
        assert group.value == exp["value"]
        assert group.checksum == exp["checksum"]
        assert group.horodate == exp.get("horodate")


def _with_parity(data: "bytes") -> "bytes":
    """Each byte with its even-parity bit set, as a 7E1 line read as 8N1 delivers it."""
    out = bytearray()
    for b in data:
        ones = 0
        v = b
        while v:
            ones += v & 1
            v >>= 1
        out.append(b | ((ones & 1) << 7))
    return bytes(out)


# --- historique -------------------------------------------------------------------------


def _quoted(text: "str") -> "list[str]":
    parts = text.split('"')
    return [parts[i] for i in range(1, len(parts), 2)]


CHECK_MARK = "\uf0d6"  # the table's tick (horodate, three-phase only, producer only)
SPEC_UNITS = ("Wh", "VArh", "A", "V", "kVA", "VA", "W", "Sans")


def _spec_standard_table() -> "list[tuple[str, int, str, bool]]":
    """(label, data length, unit, horodated) of NOI-CPT_54E §6.2.2, read from the text."""
    text = support.read_text(SPEC)
    start = text.index("=== page 18")
    end = text.index("=== page 22")
    rows = []
    for line in text[start:end].split("\n"):
        toks = line.replace(CHECK_MARK, " * ").split()
        for n in range(1, len(toks) - 1):
            if toks[n].isdigit() and toks[n + 1] in SPEC_UNITS:
                k = n - 1
                horodated = toks[k] == "*"
                if horodated:
                    k -= 1
                rows.append((toks[k], int(toks[n]), toks[n + 1], horodated))
    return rows


class TicVectors(unittest.TestCase):
    def test_cbetm_historique_base_three_phase_frame(self) -> "None":
        vector = _vector(CBETM)
        frame = tic.parse_frame(_raw(vector))
        assert frame.mode == tic.HISTORIQUE
        assert frame.valid and frame.error is None
        _check_groups(frame, vector, tic.HISTORIQUE)
        exp = vector["expected"]
        assert frame.get("ADCO") == exp["ADCO"]
        assert frame.get("PTEC") == exp["PTEC"] == "TH.."
        assert frame.get("PPOT") == exp["PPOT"] == "00"

    def test_cbetm_describe_readings_and_units(self) -> "None":
        vector = _vector(CBETM)
        results = tic.describe(_raw(vector), {})
        assert len(results) == 1
        res = results[0]
        assert res["protocol"] == "tic" and res["valid"] is True and res["error"] is None
        assert res["fields"] == {g["label"]: g["value"] for g in vector["groups"]}
        readings = _readings(res)
        exp = vector["expected"]
        assert readings["ISOUSC"] == (exp["ISOUSC"], "A")
        assert readings["BASE"] == (exp["BASE"], "Wh")
        for label in ("IINST1", "IINST2", "IINST3", "IMAX1", "IMAX2", "IMAX3"):
            assert readings[label] == (exp[label], "A")
        assert readings["PMAX"] == (exp["PMAX"], "W")
        assert readings["PAPP"] == (exp["PAPP"], "VA")
        for text_label in ("ADCO", "OPTARIF", "PTEC", "MOTDETAT", "PPOT"):
            assert text_label not in readings
        assert isinstance(readings["BASE"][0], int)

    def test_wifinfo_historique_hc_frame(self) -> "None":
        vector = _vector(WIFINFO)
        raw = _raw(vector)
        frame = tic.parse_frame(raw)
        assert frame.valid
        _check_groups(frame, vector, tic.HISTORIQUE)
        # The PTEC checksum is a space: "PTEC HP..  " then CR.
        ptec = frame.groups[5]
        assert ptec.label == "PTEC" and ptec.checksum == " "
        res = tic.describe(raw, {})[0]
        expected = {k: v for k, v in vector["expected"].items() if k != "note"}
        assert res["fields"] == expected
        readings = _readings(res)
        assert readings["HCHC"] == (52890470, "Wh")
        assert readings["HCHP"] == (49126843, "Wh")
        assert readings["ISOUSC"] == (30, "A")
        assert readings["IINST"] == (8, "A")
        assert readings["IMAX"] == (42, "A")
        assert readings["PAPP"] == (1890, "VA")
        assert "HHPHC" not in readings

    def test_wifinfo_bad_checksum_is_rejected(self) -> "None":
        vector = _vector(WIFINFO_BAD)
        raw = _raw(vector)
        frame = tic.parse_frame(raw)
        assert not frame.valid
        adco = frame.groups[0]
        assert adco.label == "ADCO" and adco.checksum == "A"
        assert adco.reason == errors.CHECKSUM
        assert "'#'" in str(adco.message)  # the right checksum is '#'
        assert all(g.valid for g in frame.groups[1:])
        res = tic.describe(raw, {})[0]
        assert res["valid"] is False
        assert str(res["error"]).startswith("checksum: ADCO")
        assert "ADCO" not in res["fields"]
        assert res["fields"]["OPTARIF"] == "HC.."
        assert _readings(res)["PAPP"] == (1890, "VA")
        # The same frame with the right checksum is the good wifinfo frame.
        good = _raw(_vector(WIFINFO))
        assert tic.parse_frame(good).valid and raw != good

    def test_goteleinfo_checksums(self) -> "None":
        vectors = _vector(GOTELEINFO)["vectors"]
        assert len(vectors) == 6
        checked = 0
        for v in vectors:
            what = v["what"]
            if what.startswith("historicChecksum("):
                label, value = _quoted(what)
                got = tic.checksum((label + " " + value).encode())
                assert got == int(v["expected_hex"], 16) == ord(v["expected_char"])
                group = tic.parse_group((label + " " + value + " " + chr(got)).encode())
                assert group.valid and group.checksum == " "
                checked += 1
            elif what.startswith("group "):
                text = _quoted(what)[0]
                assert chr(tic.checksum(text.encode())) == v["expected_char"]
                built = tic.build_group(*text.split(" "))
                assert built == b"\n" + text.encode() + b" " + v["expected_char"].encode() + b"\r"
                checked += 1
            else:
                assert v["expected"] == "error" and what.startswith("INVALID")
                text = _quoted(what)[0]
                group = tic.parse_group(text.encode())
                assert not group.valid
                if "wrong checksum" in what:
                    assert group.reason == errors.CHECKSUM
                else:
                    assert group.reason == errors.MALFORMED
                res = tic.describe(b"\n" + text.encode() + b"\r", {})
                assert len(res) == 1 and res[0]["valid"] is False and res[0]["fields"] == {}
                checked += 1
        assert checked == 6

    # --- standard ---------------------------------------------------------------------------

    def test_linky_standard_frame_groups(self) -> "None":
        vector = _vector(LINKY)
        frame = tic.parse_frame(_raw(vector))
        assert frame.mode == tic.STANDARD
        assert frame.valid, frame.error
        _check_groups(frame, vector, tic.STANDARD)
        date = frame.groups[2]
        assert date.label == "DATE" and date.value == ""
        assert date.time is not None
        assert date.time.season == "E" and not date.time.degraded
        assert date.time.offset_minutes == 120
        assert frame.date == date.time
        assert tic.parse_frame(_raw(_vector(CBETM))).date is None

    def test_linky_standard_describe(self) -> "None":
        vector = _vector(LINKY)
        res = tic.describe(_raw(vector), {})
        assert len(res) == 1
        res0 = res[0]
        assert res0["valid"] is True and res0["error"] is None
        fields = res0["fields"]
        exp = vector["expected"]
        for label in ("ADSC", "VTIC", "DATE", "NGTF", "LTARF"):
            assert fields[label] == exp[label]
        for g in vector["groups"]:
            assert fields[g["label"]] == g["value"]
            if "horodate" in g:
                assert fields[g["label"] + "_time"].startswith("20")
        assert fields["DATE_time"] == exp["DATE_horodate_as_datetime"] + "+02:00"
        assert fields["CCASN_time"] == exp["CCASN_horodate_as_datetime"] + "+02:00"
        assert fields["SMAXSN-1_time"] == "2021-04-13T19:56:06+02:00"
        readings = _readings(res0)
        assert readings["EAST"] == (exp["EAST"], "Wh")
        assert readings["EASF01"] == (exp["EASF01"], "Wh")
        assert readings["EAIT"] == (671631, "Wh")
        assert readings["ERQ1"] == (2970842, "VArh")
        assert readings["IRMS2"] == (2, "A")
        assert readings["URMS1"] == (234, "V")
        assert readings["UMOY3"] == (243, "V")
        # kVA normalised to VA.
        assert readings["PCOUP"] == (exp["PCOUP"] * 1000, "VA")
        assert readings["PREF"] == (18000, "VA")
        assert readings["SINSTS"] == (13, "VA")
        assert readings["SINSTS2"] == (568, "VA")
        assert readings["SMAXSN-1"] == (6560, "VA")
        assert readings["SMAXIN-1"] == (3861, "VA")
        assert readings["CCASN"] == (806, "W")
        assert readings["CCASN-1"] == (1152, "W")
        assert readings["NTARF"] == (2, None)
        assert readings["STGE.mode_tic_standard"] == (1, None)
        assert readings["STGE.producteur"] == (1, None)
        assert readings["RELAIS.1"] == (0, None)
        for text_label in ("ADSC", "VTIC", "DATE", "NGTF", "LTARF", "MSG1", "PRM", "PJOURF+1"):
            assert text_label not in readings

    def test_linky_checksums_rebuilt_from_groups(self) -> "None":
        vector = _vector(LINKY)
        raw = _raw(vector)
        built = []
        for g in vector["groups"]:
            group = tic.build_group(g["label"], g["value"], tic.STANDARD, g.get("horodate"))
            assert group[-2:-1] == g["checksum"].encode()
            built.append(group)
        assert tic.build_frame(built) == raw

    def test_stream_all_vectors_one_byte_at_a_time_with_garbage_and_parity(self) -> "None":
        frames = [_raw(_vector(name)) for name in FRAME_FILES]
        data = b"\x55\xaa garbage\r\n" + frames[0] + b"\x04\x00noise" + b"\x03".join(frames[1:])
        stream = tic.TicStream()
        got = []
        for b in _with_parity(data):
            stream.receive_data(bytes((b,)))
            event = stream.next_event()
            while event is not tic.NEED_DATA:
                assert isinstance(event, tic.Frame)
                got.append(event)
                event = stream.next_event()
        assert [f.valid for f in got] == [True, True, True]
        assert [f.mode for f in got] == [tic.HISTORIQUE, tic.HISTORIQUE, tic.STANDARD]
        assert got[2] == tic.parse_frame(frames[2])
        assert stream.discarded > 0

    def test_eot_interrupted_frame(self) -> "None":
        raw = _raw(_vector(LINKY))
        cut = raw.index(b"\nEAST") + 6  # in the middle of the EAST group
        stream = tic.TicStream()
        stream.receive_data(raw[:cut] + b"\x04" + raw)
        first = stream.next_event()
        second = stream.next_event()
        assert stream.next_event() is tic.NEED_DATA
        assert isinstance(first, tic.Frame) and isinstance(second, tic.Frame)
        assert first.end == tic.END_EOT and first.interrupted and not first.valid
        assert [g.label for g in first.groups] == ["ADSC", "VTIC", "DATE", "NGTF", "LTARF"]
        assert all(g.valid for g in first.groups)
        assert str(first.error).startswith("truncated:")
        assert second.valid and len(second.groups) == 63
        res = tic.describe(raw[:cut] + b"\x04", {})
        assert len(res) == 1 and res[0]["valid"] is False
        assert res[0]["fields"]["ADSC"] == "123456789012"

    # --- STGE and the specification ---------------------------------------------------------

    def test_stge_status_register_vectors(self) -> "None":
        vector = _vector(STGE)
        decoded = vector["decoded"]
        assert len(decoded) == 6
        for value, bits in decoded.items():
            got = tic.decode_stge(value)
            expected = {name.split("(")[0]: v for name, v in bits.items()}
            assert got == expected, value
        # hekmon/linkytic's reading of 013AC501: euridis activated with security, CPL New/Lock.
        assert "euridis=3" in vector["hekmon_expectations"]["013AC501"]
        assert tic.decode_stge("013AC501")["euridis"] == 3
        assert tic.decode_stge("FFDFE7FD")["statut_cpl"] == 2
        linky_stge = _vector(LINKY)["groups"]
        stge = next(g for g in linky_stge if g["label"] == "STGE")["value"]
        assert stge in decoded
        for bad in ("013A050", "013A05G1", "", "0x13A0501"):
            try:
                tic.decode_stge(bad)
            except errors.RemoteProtocolError as e:
                assert e.reason == errors.MALFORMED
            else:
                raise AssertionError("accepted STGE %r" % bad)

    def test_spec_standard_labels_units(self) -> "None":
        rows = _spec_standard_table()
        assert len(rows) == 71
        numeric = 0
        for label, _length, unit, _horodated in rows:
            spec = tic.LABELS.get(label)
            if unit == "Sans":
                assert spec is None or spec[0] is None, label
            elif unit == "kVA":
                assert spec == ("VA", 1000), label
            else:
                assert spec == (unit, 1), label
                numeric += 1
        assert numeric == 48

    def test_spec_horodated_labels_match_linky_frame(self) -> "None":
        horodated = [row[0] for row in _spec_standard_table() if row[3]]
        assert "DATE" in horodated and "UMOY1" in horodated and "DPM3" in horodated
        assert len(horodated) == 24
        for g in _vector(LINKY)["groups"]:
            assert ("horodate" in g) == (g["label"] in horodated), g["label"]

    def test_spec_horodate_examples(self) -> "None":
        text = support.read_text(SPEC)
        assert "H081225223518" in text and "E090714074553" in text
        winter = tic.parse_horodate("H081225223518")  # 25 Dec 2008, 22:35:18, winter time
        assert winter.isoformat() == "2008-12-25T22:35:18+01:00"
        assert not winter.degraded
        summer = tic.parse_horodate("E090714074553")  # 14 Jul 2009, 07:45:53, summer time
        assert summer.isoformat() == "2009-07-14T07:45:53+02:00"
        degraded = tic.parse_horodate("e090714074553")
        assert degraded.degraded and degraded.isoformat() == summer.isoformat()
        assert tic.parse_horodate("h081225223518").offset_minutes == 60
        no_season = tic.parse_horodate(" 090714074553")
        assert no_season.isoformat() == "2009-07-14T07:45:53" and no_season.utc_ms() is None
        # 2021-04-14 08:26:25 CEST is 06:26:25 UTC.
        assert tic.parse_horodate("E210414082625").utc_ms() == 1618381585000
        for bad in (
            "X081225223518",
            "H0812252235",
            "H081325223518",
            "H080230000000",
            "H08122524000a",
        ):
            try:
                tic.parse_horodate(bad)
            except errors.RemoteProtocolError as e:
                assert e.reason == errors.MALFORMED
            else:
                raise AssertionError("accepted horodate %r" % bad)

    def test_spec_checksum_rule_and_group_formats(self) -> "None":
        text = support.read_text(SPEC)
        assert "Checksum = (S1 & 0x3F) + 0x20" in text
        # Standard: the last HT is summed; historique: the SP before the checksum is not.
        std = tic.build_group("PRM", "12345678901234", tic.STANDARD)
        assert std[-2] == tic.checksum(b"PRM\t12345678901234\t")
        hist = tic.build_group("PAPP", "00540")
        assert hist == b"\nPAPP 00540 *\r"  # as in the openHAB frame

    def test_spec_historique_labels_units(self) -> "None":
        # NOI-CPT_54E §6.1 tables (units as printed there; PEJP minutes normalised to seconds).
        units = {
            "ISOUSC": "A",
            "BASE": "Wh",
            "HCHC": "Wh",
            "HCHP": "Wh",
            "EJPHN": "Wh",
            "EJPHPM": "Wh",
            "BBRHCJB": "Wh",
            "BBRHPJB": "Wh",
            "BBRHCJW": "Wh",
            "BBRHPJW": "Wh",
            "BBRHCJR": "Wh",
            "BBRHPJR": "Wh",
            "IINST": "A",
            "IINST1": "A",
            "IINST2": "A",
            "IINST3": "A",
            "ADPS": "A",
            "IMAX": "A",
            "IMAX1": "A",
            "IMAX2": "A",
            "IMAX3": "A",
            "ADIR1": "A",
            "ADIR2": "A",
            "ADIR3": "A",
            "PMAX": "W",
            "PAPP": "VA",
        }
        text = support.read_text(SPEC)
        for label, unit in units.items():
            assert label in text, label
            assert tic.LABELS[label] == (unit, 1), label
        assert tic.LABELS["PEJP"] == ("s", 60)
        for text_label in ("ADCO", "OPTARIF", "PTEC", "DEMAIN", "HHPHC", "MOTDETAT", "PPOT"):
            assert text_label in text and text_label not in tic.LABELS
        frame = tic.parse_lines(tic.build_group("PEJP", "30") + b"\n")
        assert frame.valid
        assert [m.as_dict() for m in frame.measurements()] == [
            {"name": "PEJP", "value": 1800, "unit": "s"}
        ]

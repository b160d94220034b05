"""`estran decode wmbus` from outside: the installed command, as a technician (or an attacker
pasting hostile hex) runs it."""

import json
import os
import subprocess
import sys

from protocols.wmbus._build import build_telegram

ESTRAN = os.path.join(os.path.dirname(sys.executable), "estran")
KEY = "000102030405060708090A0B0C0D0E0F"
WRONG = "F0E0D0C0B0A090807060504030201000"
RECORDS = bytes.fromhex("0C134523010002FD170800")


def _run(*args: str) -> tuple[int, list[dict[str, object]], str]:
    p = subprocess.run(
        [ESTRAN, "decode", "wmbus", *args, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    return p.returncode, lines, p.stderr


def test_encrypted_telegrams_one_object_each_and_key_errors() -> None:
    t5 = build_telegram(
        "DME", "12345678", 1, 7, RECORDS, access_number=7, mode=5, key=bytes.fromhex(KEY)
    )
    t7 = build_telegram("KAM", "87654321", 1, 7, RECORDS, mode=7, key=bytes.fromhex(KEY), counter=5)
    code, out, err = _run(t5.hex(), t7.hex(), "--key", KEY)
    assert code == 0, err
    assert len(out) == 2
    assert [o["fields"]["encryption_mode"] for o in out] == [5, 7]  # type: ignore[index]
    assert [o["fields"]["id"] for o in out] == ["12345678", "87654321"]  # type: ignore[index]
    volume = [r for r in out[0]["readings"] if r["name"] == "volume"]  # type: ignore[attr-defined]
    assert volume == [{"name": "volume", "value": 12.345, "unit": "m3"}]
    assert KEY.lower() not in json.dumps(out).lower()

    code, out, _err = _run(t5.hex(), "--key", WRONG)
    assert code == 1
    assert "DME-12345678" in str(out[0]["error"])
    assert out[0]["error"].startswith("decryption")  # type: ignore[union-attr]
    assert WRONG.lower() not in json.dumps(out).lower()

    code, out, _err = _run(t5.hex())
    assert code == 1
    assert "no key for meter DME-12345678" in str(out[0]["error"])


def test_hostile_and_truncated_hex() -> None:
    t = build_telegram("DME", "12345678", 1, 7, RECORDS)
    for payload in (t[:15].hex(), "FF" * 300, "0A44" + "00" * 9, "00", t.hex() + "1F"):
        code, out, err = _run(payload)
        assert code == 1, payload
        assert "Traceback" not in err
        assert out[-1]["valid"] is False
    code, _out, err = _run("not-hex")
    assert code == 2 and "Traceback" not in err
    code, _out, err = _run(t.hex(), "--key", "1234")
    assert code == 2 and "32 hexadecimal digits" in err


def test_apator_ultrimis_past_flags_are_no_alarm() -> None:
    """Apator Ultrimis error flags 0x010808 (wmbusmeters' ultrimisv2 test telegram): no flow
    now and this month, tamper last month. No leak alarm (bit 0x800 is "no flow this month"
    on this meter), the flags named; a leak now (0x80) is the leak alarm."""
    telegram = (
        "2E4401069897969501167A4B0320052F2F0413320C000003FD17{}44132109000004933C000000002F2F2F2F2F"
    )
    code, out, err = _run(telegram.format("080801"), telegram.format("800000"))
    assert code == 0, err
    past, now = ({r["name"]: r["value"] for r in o["readings"]} for o in out)  # type: ignore[attr-defined]
    assert past["leak"] is False and past["tamper"] is False
    assert past["error_flag_names"] == "NO_FLOW NO_FLOW_THIS_MONTH TAMPER_PREV_MONTH"
    assert now["leak"] is True and now["error_flag_names"] == "LEAK"

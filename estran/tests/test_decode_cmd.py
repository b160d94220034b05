"""`estran decode` as a technician types it: hex, or text for the ASCII protocols."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def decode(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("estran")), "decode", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
    )
    return proc.returncode, proc.stdout, proc.stderr


def frames(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


GGA = "$GPGGA,092750.000,5321.6802,N,00630.3372,W,1,8,1.03,61.7,M,55.2,M,,*76"


@pytest.mark.parametrize(
    ("protocol", "text", "reading", "value"),
    [
        ("nmea", GGA, "altitude", 61.7),
        ("tic", "ADCO 021875456585 O", None, None),
        ("ultrasonic", "R0123", "distance", 0.123),
        ("sdi12", "0+3.14+2.718", "value1", 3.14),
    ],
)
def test_ascii_protocols_take_text(
    protocol: str, text: str, reading: str | None, value: float | None
) -> None:
    code, out, err = decode(protocol, text, "--json")
    assert code == 0, err
    (frame,) = frames(out)
    assert frame["valid"] is True
    if reading is not None:
        readings = {r["name"]: r["value"] for r in frame["readings"]}  # type: ignore[attr-defined]
        assert readings[reading] == value


def test_text_lines_on_stdin_and_explicit_escapes() -> None:
    code, out, _ = decode("nmea", "-", "--json", stdin=f"{GGA}\n{GGA}\n")
    assert code == 0 and len(frames(out)) == 2
    # control characters written as escapes are taken as the framing, not added again
    code, out, _ = decode("tic", "\\nADCO 021875456585 O\\r", "--json")
    assert code == 0 and frames(out)[0]["fields"] == {"ADCO": "021875456585"}


def test_hex_still_wins_when_it_is_hex_and_text_can_be_forced() -> None:
    hex_group = "0A 41 44 43 4F 20 30 32 31 38 37 35 34 35 36 35 38 35 20 4F 0D"
    code, out, _ = decode("tic", hex_group, "--json")
    assert code == 0 and frames(out)[0]["fields"] == {"ADCO": "021875456585"}
    # "ABCD" is hex; --text reads it as a (bad) TIC group instead
    code, out, _ = decode("tic", "ABCD", "--text", "--json")
    assert code == 1 and "no checksum" in frames(out)[0]["error"]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tic", "é"), "tic frames are ASCII"),
        (("modbus", "--text", "0103"), "binary protocol"),
        (("modbus", "R0123"), "not hexadecimal"),
        (("nmea", "\\x4"), "bad escape"),
    ],
)
def test_bad_input_is_a_usage_error_without_traceback(args: tuple[str, ...], message: str) -> None:
    code, _, err = decode(*args)
    assert code == 2 and message in err and "Traceback" not in err

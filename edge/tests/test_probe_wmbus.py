"""`estran edge probe` recognises each wireless M-Bus dongle (simulated, at its real line
rate) and writes a snippet the daemon accepts, with the meters heard and no key."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

import pytest

from edge.probe import FOUND, ProbeOptions, probe
from edge.simulators.serial import RadioMeter, WmbusDongleSimulator
from edge.sources.serial import SerialPortConfig
from edge.tests.support.runner import ESTRAN, serial_runner

KEY = bytes(range(16))

FAST = ProbeOptions(
    listen=((1200, 1.0), (9600, 1.0), (115200, 2.0)),
    quiet_line=0.8,
    mbus_scan=(),
    modbus_lines=((9600, "N"),),
    modbus_addresses=(1,),
    wmbus_listen=1.5,
)


@pytest.mark.parametrize(
    ("dongle", "baud"), [("im871a", 57600), ("amb8465", 9600), ("rtlwmbus", 115200)]
)
async def test_probe_finds_the_dongle_and_its_meters(
    tmp_path: Path, dongle: str, baud: int
) -> None:
    meters = [RadioMeter("izar", "21242472"), RadioMeter("oms5", "44556677", key=KEY)]
    sim = WmbusDongleSimulator(
        f"tty-{dongle}", dongle=dongle, meters=meters, interval=0.4, directory=tmp_path
    )
    async with sim:
        result = await probe(sim.path, FAST)
    report = result.as_json()
    assert report["protocol"] == "wmbus", (result.note, result.steps)
    assert result.steps[-1].state == FOUND
    assert report["params"] == {"baud": baud, "bytesize": 8, "parity": "N", "mode": dongle}
    sample = report["sample"]
    assert isinstance(sample, dict) and sample["protocol"] == "wmbus" and sample["valid"]
    config = report["config"]
    assert isinstance(config, str) and KEY.hex() not in config
    table = tomllib.loads(config)["serial"][0]
    assert table["dongle"] == dongle
    addresses = {d["address"] for d in table["devices"]}
    assert "DME-21242472" in addresses
    SerialPortConfig.from_mapping(table)  # the daemon takes the snippet as it is


def test_default_probe_finds_the_amb8465_runner_at_its_real_line_rate(tmp_path: Path) -> None:
    """`estran edge probe PORT --json` with its default options against the runner's AMB8465
    (9600 8N1, meters every few seconds), as a technician runs them: the requests of the
    steps before (SDS011 and PMS queries at the same 9600 baud, the iM871A ping) must not
    leave the module deaf to the serial number request. One such run only: it takes the
    probe's real time."""
    with serial_runner(tmp_path, "wmbus-amb8465", 90, "ttyAMB8465-0"):
        done = subprocess.run(
            [ESTRAN, "edge", "probe", str(tmp_path / "ttyAMB8465-0"), "--json"],
            capture_output=True,
            text=True,
            timeout=80,
        )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["protocol"] == "wmbus", report
    assert report["params"] == {"baud": 9600, "bytesize": 8, "parity": "N", "mode": "amb8465"}
    steps = {s["step"]: s for s in report["steps"]}
    assert steps["wireless M-Bus AMB8465 at 9600 8N1"]["result"] == FOUND, report["steps"]

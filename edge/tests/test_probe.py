"""`probe` identifies every simulator: protocol, speed, format, mode, a sample and a config
snippet the daemon accepts. The simulators decide what they understand from the line
settings the probe really sets (see edge/simulators/serial/_link.py)."""

from __future__ import annotations

import json
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.probe import FOUND, NOTHING, ProbeOptions, probe
from edge.simulators.serial import (
    A02yyuwSimulator,
    Fault,
    LineFormat,
    LinkySimulator,
    MaxBotixSimulator,
    MbusSimulator,
    ModbusSimulator,
    ModbusSlave,
    NmeaSimulator,
    Sdi12Simulator,
    SerialSimulator,
    WaterMeter,
)
from edge.sources.serial import SerialPortConfig
from edge.tests.support.runner import ESTRAN, serial_runner

# The simulators below talk faster than real time, so the listening windows can be short;
# the candidates, their order and the identification are the real ones.
FAST = ProbeOptions(
    listen=((1200, 2.0), (4800, 1.5), (9600, 1.5)),
    quiet_line=0.8,
    mbus_scan=tuple(range(0, 8)),
    modbus_lines=((9600, "N"), (9600, "E"), (19200, "E")),
    modbus_addresses=(1, 2, 3, 80),
)

Case = tuple[Callable[[Path], SerialSimulator], str, tuple[int, int, str], str | None]

CASES: dict[str, Case] = {
    "tic-historique": (
        lambda d: LinkySimulator("ttyL0", directory=d, pace=4, interval=0.4),
        "tic",
        (1200, 7, "E"),
        "historique",
    ),
    "tic-standard": (
        lambda d: LinkySimulator("ttyL1", mode="standard", directory=d, pace=2, interval=0.4),
        "tic",
        (9600, 7, "E"),
        "standard",
    ),
    "nmea": (
        lambda d: NmeaSimulator("ttyN", directory=d, pace=2, interval=0.3),
        "nmea",
        (4800, 8, "N"),
        None,
    ),
    "maxbotix": (
        lambda d: MaxBotixSimulator("ttyMB", directory=d),
        "ultrasonic",
        (9600, 8, "N"),
        "maxbotix",
    ),
    "a02yyuw": (
        lambda d: A02yyuwSimulator("ttyA", directory=d),
        "ultrasonic",
        (9600, 8, "N"),
        "a02yyuw",
    ),
    "sdi12": (
        lambda d: Sdi12Simulator("ttyS", address="5", measure_time=0.2, directory=d),
        "sdi12",
        (1200, 7, "E"),
        None,
    ),
    "mbus-2400-two-meters": (
        lambda d: MbusSimulator("ttyB", directory=d, pace=2),
        "mbus",
        (2400, 8, "E"),
        None,
    ),
    "mbus-300": (
        lambda d: MbusSimulator(
            "ttyB3", meters=[WaterMeter(3)], line=LineFormat(300, 8, "E", 1), directory=d
        ),
        "mbus",
        (300, 8, "E"),
        None,
    ),
    "modbus-9600-8N1": (
        lambda d: ModbusSimulator(
            "ttyM",
            slaves=[ModbusSlave(1, "sdm630"), ModbusSlave(2, "soil"), ModbusSlave(80, "level")],
            directory=d,
            pace=2,
        ),
        "modbus",
        (9600, 8, "N"),
        "rtu",
    ),
    "modbus-19200-8E1": (
        lambda d: ModbusSimulator(
            "ttyM2",
            slaves=[ModbusSlave(3, "sdm120")],
            line=LineFormat(19200, 8, "E", 1),
            directory=d,
        ),
        "modbus",
        (19200, 8, "E"),
        "rtu",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_probe_identifies(tmp_path: Path, case: str) -> None:
    make, protocol, (baud, bytesize, parity), mode = CASES[case]
    async with make(tmp_path) as sim:
        result = await probe(sim.path, FAST)
    report = result.as_json()
    assert list(report) == ["port", "protocol", "params", "sample", "config", "seconds", "steps"]
    assert report["protocol"] == protocol, (result.note, result.steps)
    assert report["params"] == {"baud": baud, "bytesize": bytesize, "parity": parity, "mode": mode}
    assert result.steps[-1].state == FOUND
    assert all(step.state != FOUND for step in result.steps[:-1])
    sample = report["sample"]
    assert isinstance(sample, dict) and sample["protocol"] == protocol and sample["valid"]
    config = report["config"]
    assert isinstance(config, str)
    table = tomllib.loads(config)["serial"][0]
    assert (table["baud"], table["bytesize"], table["parity"]) == (baud, bytesize, parity)
    if "CHANGE-ME" not in config:
        SerialPortConfig.from_mapping(table)  # the daemon accepts the snippet as it is


async def test_probe_finds_the_bus_and_its_maps(tmp_path: Path) -> None:
    make = CASES["modbus-9600-8N1"][0]
    async with make(tmp_path) as sim:
        result = await probe(sim.path, FAST)
    assert [(d.address, d.register_map) for d in result.devices] == [
        (1, "sdm630"),
        (2, "soil"),
        (80, "level"),
    ]
    sample = result.sample
    assert sample is not None
    names = {r["name"] for r in sample["readings"]}  # type: ignore[attr-defined]
    assert "l1_voltage" in names


async def test_probe_mbus_collision_scans_primaries(tmp_path: Path) -> None:
    make = CASES["mbus-2400-two-meters"][0]
    async with make(tmp_path) as sim:
        result = await probe(sim.path, FAST)
    assert [d.address for d in result.devices] == [5, 6]


async def test_probe_nothing_on_a_silent_line(tmp_path: Path) -> None:
    async with Sdi12Simulator("ttyDead", directory=tmp_path) as sim:
        sim.inject(Fault.silence())
        result = await probe(sim.path, FAST)
    report = result.as_json()
    steps = report.pop("steps")
    assert isinstance(steps, list) and len(steps) == len(result.steps)
    assert isinstance(report.pop("seconds"), float)
    assert report == {
        "port": sim.path,
        "protocol": None,
        "params": None,
        "sample": None,
        "config": None,
    }
    assert {step.state for step in result.steps} <= {NOTHING, "skipped"}
    assert "skipped" in {step.state for step in result.steps}  # a silent line: no more listening


def test_probe_command_json(tmp_path: Path) -> None:
    """`estran edge probe PORT --json` against the runner, both as a technician runs them."""
    with serial_runner(tmp_path, "linky-historique", 30, "ttyLINKY0"):
        done = subprocess.run(
            [ESTRAN, "edge", "probe", str(tmp_path / "ttyLINKY0"), "--json"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["protocol"] == "tic"
    assert report["params"] == {"baud": 1200, "bytesize": 7, "parity": "E", "mode": "historique"}
    assert report["sample"]["fields"]["OPTARIF"] == "BASE"
    missing = subprocess.run(
        [ESTRAN, "edge", "probe", str(tmp_path / "ttyNONE"), "--json"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 2 and "cannot open" in missing.stderr

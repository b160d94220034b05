"""`estran edge probe` recognises the particulate-matter sensors and the canal level
transmitters at their real speed: the simulators talk at pace 1 and the probe listens with
its default windows; only the Modbus scan is shortened to the addresses under test."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.probe import FOUND, ProbeOptions, probe
from edge.simulators.serial import (
    LineFormat,
    ModbusSimulator,
    ModbusSlave,
    OttPlsSimulator,
    PmsSimulator,
    Sds011Simulator,
    SerialSimulator,
    Sps30Simulator,
    VegapulsSimulator,
)
from edge.sources.serial import SerialPortConfig
from edge.tests.support.runner import ESTRAN, serial_runner

REAL = ProbeOptions(modbus_lines=((9600, "N"), (9600, "E")), modbus_addresses=(1, 200))

Case = tuple[Callable[[Path], SerialSimulator], str, tuple[int, int, str], dict[str, object]]

CASES: dict[str, Case] = {
    "pms5003-active": (
        lambda d: PmsSimulator("ttyPA", directory=d),
        "pms",
        (9600, 8, "N"),
        {"model": "pms5003"},
    ),
    "sds011-continuous": (
        lambda d: Sds011Simulator("ttySC", directory=d),
        "sds011",
        (9600, 8, "N"),
        {},
    ),
    "sds011-asleep-in-its-duty-cycle": (
        # working period 5 min and just started: asleep, silent, but it answers queries
        lambda d: Sds011Simulator("ttySD", period=5, directory=d),
        "sds011",
        (9600, 8, "N"),
        {"duty_cycle": 5},
    ),
    "sps30": (
        lambda d: Sps30Simulator("ttySP", directory=d),
        "sps30",
        (115200, 8, "N"),
        {},
    ),
    "fmr20-radar-factory-settings": (
        lambda d: ModbusSimulator(
            "ttyFM",
            slaves=[ModbusSlave(200, "fmr20")],
            line=LineFormat(9600, 8, "E", 1),
            directory=d,
        ),
        "modbus",
        (9600, 8, "E"),
        {"address": 200, "map": "fmr20"},
    ),
    "keller30-pressure-probe": (
        lambda d: ModbusSimulator("ttyKE", slaves=[ModbusSlave(1, "keller30")], directory=d),
        "modbus",
        (9600, 8, "N"),
        {"address": 1, "map": "keller30"},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_probe_recognises_at_real_speed(tmp_path: Path, case: str) -> None:
    make, protocol, (baud, bytesize, parity), device = CASES[case]
    async with make(tmp_path) as sim:
        assert sim.pace == 1.0
        result = await probe(sim.path, REAL)
    report = result.as_json()
    assert report["protocol"] == protocol, (result.note, result.steps)
    params = report["params"]
    assert isinstance(params, dict)
    assert (params["baud"], params["bytesize"], params["parity"]) == (baud, bytesize, parity)
    assert result.steps[-1].state == FOUND
    assert all(step.state != FOUND for step in result.steps[:-1])
    sample = report["sample"]
    assert isinstance(sample, dict) and sample["valid"], sample
    config = report["config"]
    assert isinstance(config, str)
    table = tomllib.loads(config)["serial"][0]
    for key, value in device.items():
        assert table["devices"][0][key] == value, (key, config)
    SerialPortConfig.from_mapping(table)  # the daemon accepts the snippet as it is


SDI12_LEVEL: dict[str, tuple[Callable[[Path], SerialSimulator], str, str]] = {
    "ott-pls": (lambda d: OttPlsSimulator(directory=d), "ott_pls", "depth"),
    "vegapuls-c21": (lambda d: VegapulsSimulator(directory=d), "vegapuls_c21", "distance"),
}


@pytest.mark.parametrize("case", list(SDI12_LEVEL))
async def test_probe_names_an_sdi12_level_transmitter(tmp_path: Path, case: str) -> None:
    """The SDI-12 step's identification names the level model: the snippet gives `model`
    and a `datum` line to fill in, the sample's values carry the model's names."""
    make, model, measured = SDI12_LEVEL[case]
    async with make(tmp_path) as sim:
        result = await probe(sim.path, REAL)
    report = result.as_json()
    assert report["protocol"] == "sdi12", (result.note, result.steps)
    config = report["config"]
    assert isinstance(config, str) and "# datum = " in config, config
    table = tomllib.loads(config)["serial"][0]
    assert table["devices"][0]["model"] == model, config
    port = SerialPortConfig.from_mapping(table)  # the daemon accepts it as it is
    assert port.devices[0].sdi12_names() is not None
    sample = report["sample"]
    assert isinstance(sample, dict) and sample["valid"], sample
    readings = sample["readings"]
    assert isinstance(readings, list)
    assert measured in {r["name"] for r in readings}, sample


def test_default_scan_includes_the_fmr20_factory_address() -> None:
    options = ProbeOptions()
    assert 200 in options.modbus_addresses and (9600, "E") in options.modbus_lines


def test_probe_command_finds_a_sleeping_sds011(tmp_path: Path) -> None:
    """`estran edge probe PORT --json` against the runner, as a technician runs them: a
    duty-cycled SDS011 is silent, the probe asks for its working period."""
    with serial_runner(tmp_path, "sds011,period=5", 60, "ttySDS0"):
        done = subprocess.run(
            [ESTRAN, "edge", "probe", str(tmp_path / "ttySDS0"), "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["protocol"] == "sds011", report
    assert report["params"]["baud"] == 9600
    assert report["sample"]["fields"]["working_period_min"] == 5
    table = tomllib.loads(report["config"])["serial"][0]
    assert table["devices"][0]["duty_cycle"] == 5
    SerialPortConfig.from_mapping(table)


async def test_probe_survives_garbage_lines_longer_than_a_dongle_buffer(tmp_path: Path) -> None:
    """A line of garbage longer than the rtl-wmbus stream's buffer, heard while listening
    at 115200 (a 9600-baud device read at the wrong speed does that), is nothing known,
    not a traceback."""
    import asyncio

    master, slave = os.openpty()
    link = tmp_path / "ttyGARBAGE"
    link.symlink_to(os.ttyname(slave))

    async def talk() -> None:
        while True:
            os.write(master, bytes(range(32, 127)) * 30 + b"\n")
            await asyncio.sleep(0.05)

    talker = asyncio.create_task(talk())
    try:
        options = ProbeOptions(listen=((115200, 1.0),), budget=3.0)
        result = await probe(str(link), options)
    finally:
        talker.cancel()
        os.close(master)
        os.close(slave)
    assert result.protocol is None, result.steps
    assert result.steps[0].state != FOUND

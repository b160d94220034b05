"""`estran edge probe` as read in a log or a pipe: one line per step, a readable error, and a
snippet that says what the technician still has to measure."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

from edge.sources.serial import SerialPortConfig
from edge.sources.serial._config import ULTRASONIC, DeviceConfig, LineSettings, config_snippet
from edge.tests.support.runner import ESTRAN, serial_runner


def test_a_missing_port_is_named_once(tmp_path: Path) -> None:
    path = tmp_path / "ttyNONE"
    done = subprocess.run(
        [ESTRAN, "edge", "probe", str(path)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: cannot open {path}: No such file or directory"
    assert done.stdout.count(str(path)) <= 1  # the "probing PATH" line only


def test_piped_output_is_one_line_per_step(tmp_path: Path) -> None:
    with serial_runner(tmp_path, "maxbotix", 60, "ttyMAXBOTIX"):
        port = next(p for p in tmp_path.iterdir() if p.name.startswith("tty"))
        done = subprocess.run(
            [ESTRAN, "edge", "probe", str(port)], capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"probing {port}: listening first, then asking politely"
    steps = [line.split("\t") for line in lines[1:] if line.count("\t") == 3]
    assert [state for _, state, _, _ in steps][-1] == "found"
    assert {state for _, state, _, _ in steps} <= {"nothing", "found", "skipped"}
    assert any(line.startswith(f"{port} speaks ultrasonic") for line in lines)
    # the snippet comes bare (no box), ready to append to the configuration file
    snippet = done.stdout.partition("# paste into the gateway configuration\n")[2]
    table = tomllib.loads(snippet)["serial"][0]
    assert table["protocol"] == "ultrasonic"
    assert "# empty_mm" in snippet  # the bin geometry to measure


def test_the_ultrasonic_snippet_carries_the_bin_geometry() -> None:
    line = LineSettings(9600, 8, "N", 1)
    device = DeviceConfig(sensor="bin-1", model="hrlv")
    snippet = config_snippet("/dev/ttyUSB0", ULTRASONIC, line, None, [device])
    assert "# empty_mm = 1100" in snippet and "# full_mm = 250" in snippet
    # uncommented as the comment says, the daemon accepts it and reports a fill percentage
    table = tomllib.loads(snippet.replace("# empty_mm", "empty_mm").replace("# full_mm", "full_mm"))
    port = SerialPortConfig.from_mapping(table["serial"][0])
    assert (port.devices[0].empty_mm, port.devices[0].full_mm) == (1100, 250)
    measured = DeviceConfig(sensor="bin-1", model="hrlv", empty_mm=900.0, full_mm=200.0)
    snippet = config_snippet("/dev/ttyUSB0", ULTRASONIC, line, None, [measured])
    assert "empty_mm = 900\nfull_mm = 200" in snippet

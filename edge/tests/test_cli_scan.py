"""`estran edge scan` against a radio world running in another process, as the demo runs
it: `python -m edge.simulators.ble` exposes the gateways' controllers over TCP and the
command connects its bumble backend to one of them like to a USB dongle."""

import json
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.cli import edge
from edge.simulators.ble import DEMO_BIND_KEY


class World:
    def __init__(self, process: "subprocess.Popen[str]", ready: dict[str, object]) -> None:
        self.process = process
        self.ready = ready

    def backend(self, gateway: str) -> str:
        gateways = self.ready["gateways"]
        assert isinstance(gateways, dict)
        return str(gateways[gateway]["backend"])

    def command(self, line: str) -> dict[str, object]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer: dict[str, object] = json.loads(_readline(self.process, 5.0))
        return answer


def _readline(process: "subprocess.Popen[str]", timeout: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        raise AssertionError(f"the radio world said nothing for {timeout} s")
    line = process.stdout.readline()
    if not line:
        raise AssertionError(f"the radio world exited ({process.poll()})")
    return line


@pytest.fixture(scope="module")
def radio_world() -> Iterator[World]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge.simulators.ble",
            "--control",
            "--advertising-interval",
            "0.05",
            "--update-interval",
            "0.3",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        yield World(process, json.loads(_readline(process, 10.0)))
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def scan(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(edge, ["scan", *args], catch_exceptions=False)
    return result.exit_code, result.output


def by_address(output: str) -> dict[str, dict[str, object]]:
    return {entry["address"]: entry for entry in json.loads(output)}


def test_scan_json_lists_the_devices_a_gateway_hears(radio_world: World) -> None:
    code, output = scan("--backend", radio_world.backend("park"), "--seconds", "1", "--json")
    assert code == 0, output
    devices = by_address(output)
    # the park gateway hears the park zone only: soil probe, waste bin, Mi Flora
    assert set(devices) == {"F0:E1:D2:00:02:01", "F0:E1:D2:00:03:01", "C4:7C:8D:6A:04:01"}
    soil = devices["F0:E1:D2:00:02:01"]
    assert soil["kind"] == "bthome" and soil["configured"] is False and soil["sensor"] is None
    assert isinstance(soil["rssi"], int) and -70 <= soil["rssi"] <= -62
    assert {v["name"] for v in soil["values"]} == {"battery", "temperature", "moisture"}  # type: ignore[union-attr, index]
    assert soil["error"] is None and isinstance(soil["seen"], int) and soil["seen"] >= 5
    assert devices["C4:7C:8D:6A:04:01"]["kind"] == "miflora"
    assert devices["F0:E1:D2:00:03:01"]["values"][-1]["unit"] == "m"  # type: ignore[index]


def test_scan_with_the_configuration_decrypts_and_marks_configured(
    radio_world: World, tmp_path: Path
) -> None:
    config = tmp_path / "edge.toml"
    config.write_text(
        f"""
[gateway]
id = "marina-01"

[ble]
backend = "bumble"
transport = "{radio_world.backend("marina").removeprefix("bumble:")}"

[[ble.devices]]
address = "F0:E1:D2:00:01:02"
kind = "bthome"
sensor = "marina-berth-02"
bind_key = "{DEMO_BIND_KEY}"

[[ble.devices]]
address = "F0:E1:D2:00:09:09"
kind = "bthome"
sensor = "marina-berth-09"
"""
    )
    code, output = scan("--config", str(config), "--seconds", "1", "--json")
    assert code == 0, output
    devices = by_address(output)
    berth = devices["F0:E1:D2:00:01:02"]
    assert berth["configured"] is True and berth["sensor"] == "marina-berth-02"
    assert berth["encrypted"] is True and berth["error"] is None
    assert {v["name"] for v in berth["values"]} == {"battery", "occupancy", "energy"}  # type: ignore[union-attr, index]
    unheard = devices["F0:E1:D2:00:09:09"]
    assert unheard["configured"] is True and unheard["seen"] == 0 and unheard["rssi"] is None
    plain = devices["F0:E1:D2:00:01:01"]
    assert plain["configured"] is False and plain["values"]
    # configured devices first
    assert [d["configured"] for d in json.loads(output)] == [True, True, False]


def test_scan_without_the_key_shows_the_beacon_encrypted(radio_world: World) -> None:
    code, output = scan("-b", radio_world.backend("marina"), "-s", "0.6", "--json")
    assert code == 0, output
    berth = by_address(output)["F0:E1:D2:00:01:02"]
    assert berth["encrypted"] is True and berth["values"] == []
    assert "decryption" in str(berth["error"])


def test_scan_table_for_humans(radio_world: World) -> None:
    code, output = scan("-b", radio_world.backend("park"), "-s", "0.6")
    assert code == 0, output
    assert "BLE devices nearby" in output
    for address in ("F0:E1:D2:00:02:01", "C4:7C:8D:6A:04:01"):
        assert address in output


def test_vanished_device_is_not_listed(radio_world: World) -> None:
    assert radio_world.command("vanish F0:E1:D2:00:03:01") == {"ok": True}
    try:
        code, output = scan("-b", radio_world.backend("park"), "-s", "0.6", "--json")
    finally:
        assert radio_world.command("reappear F0:E1:D2:00:03:01") == {"ok": True}
    assert code == 0, output
    assert "F0:E1:D2:00:03:01" not in by_address(output)
    assert radio_world.command("vanish 00:00:00:00:00:00")["ok"] is False


def test_scan_reports_an_unavailable_adapter(tmp_path: Path) -> None:
    result = CliRunner().invoke(edge, ["scan", "-b", "bumble:tcp-client:127.0.0.1:9", "-s", "0.2"])
    assert result.exit_code == 1
    assert "unavailable" in result.output


def test_scan_refuses_a_bad_backend() -> None:
    result = CliRunner().invoke(edge, ["scan", "-b", "winrt"])
    assert result.exit_code == 2
    assert "ble.backend" in result.output

"""`estran demo` end to end: the command a newcomer runs first.

Runs `estran demo --duration 25 --http 127.0.0.1:PORT` as a subprocess and checks, through the
hub's HTTP API while it runs, that readings of every sensor of the territory — serial (TIC,
Modbus, M-Bus, NMEA, SDI-12, ultrasonic), radio (wireless M-Bus water meters through a dongle)
and BLE (BTHome, encrypted BTHome, Mi Flora) — reached the hub from all three gateways, and
that the water meter leaking at night raised its leak alarm at the hub; then that it stopped on its own, left no process behind and
removed its temporary directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from estran.rig import estran_argv, free_port

DURATION_S = 25
EXIT_GRACE_S = 90  # start-up (hub, radio world, enrollment) and a clean stop come on top


def get(url: str, token: str = "") -> Any:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=2) as response:
        return json.loads(response.read())


def printed_token(path: Path) -> str:
    """The API token the demo prints (`  token      eat1....`), or ""."""
    for line in path.read_text(errors="replace").splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "token" and words[1].startswith("eat1."):
            return words[1]
    return ""


def proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, start time in clock ticks), from /proc."""
    table: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), int(fields[19]))
    return table


def descendants(root: int) -> set[tuple[int, int]]:
    """(pid, start time) of every process below `root`."""
    table = proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[tuple[int, int]] = set()
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.add((pid, table[pid][1]))
        todo += children.get(pid, [])
    return found


def still_running(processes: set[tuple[int, int]]) -> list[str]:
    table = proc_table()
    left = []
    for pid, start in processes:
        if table.get(pid, (0, -1))[1] == start:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            left.append(f"{pid}: {cmdline.decode(errors='replace')}")
    return left


def expected_sensors(data_dir: Path) -> tuple[dict[str, str], set[str], set[str]]:
    """From the gateways' configuration files the demo writes (README: DATA/gateways/NAME/
    edge.toml): sensor -> gateway id for every sensor, the BLE ones, the closed ones (in no
    open dataset)."""
    gateway_of: dict[str, str] = {}
    ble: set[str] = set()
    opened: set[str] = set()
    for path in sorted(data_dir.glob("gateways/*/edge.toml")):
        config = tomllib.loads(path.read_text())
        gateway = config["gateway"]["id"]
        for port in config.get("serial", []):
            for device in port["devices"]:
                gateway_of[device["sensor"]] = gateway
        for device in config.get("ble", {}).get("devices", []):
            gateway_of[device["sensor"]] = gateway
            ble.add(device["sensor"])
        for sensor, table in config.get("sensors", {}).items():
            if table.get("dataset") == "open":
                opened.add(sensor)
    return gateway_of, ble, set(gateway_of) - opened


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary directory with a short path: the demo's own temporary directory goes
    inside, and a gateway's status socket path must fit in 107 bytes."""
    with tempfile.TemporaryDirectory(prefix="estran-t-") as d:
        yield Path(d)


def test_demo_runs_the_territory_end_to_end(short_tmp: Path) -> None:
    tmp_path = short_tmp
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "TMPDIR": str(tmp_path), "COLUMNS": "120"}
    out = (tmp_path / "demo.out").open("w+")
    proc = subprocess.Popen(
        estran_argv("demo", "--duration", str(DURATION_S), "--http", f"127.0.0.1:{port}"),
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
    )
    seen_processes: set[tuple[int, int]] = set()
    sensors: dict[str, dict[str, Any]] = {}
    quantities: dict[str, set[str]] = {}
    gateways: dict[str, dict[str, Any]] = {}
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    alerts: list[dict[str, Any]] = []
    anonymous: set[str] = set()
    geojson: dict[str, Any] = {}
    token = ""
    expected: tuple[dict[str, str], set[str], set[str]] = ({}, set(), set())
    try:
        deadline = time.monotonic() + DURATION_S + EXIT_GRACE_S
        while proc.poll() is None and time.monotonic() < deadline:
            seen_processes |= descendants(proc.pid)
            token = token or printed_token(tmp_path / "demo.out")
            for data_dir in tmp_path.glob("estran-demo-*"):  # its temporary directory
                if len(list(data_dir.glob("gateways/*/edge.toml"))) == 3 and not expected[0]:
                    time.sleep(0.5)  # every file written whole
                    expected = expected_sensors(data_dir)
            try:
                for row in get(url + "/api/v1/sensors", token):
                    sensors.setdefault(row["sensor"], row)
                    quantities.setdefault(row["sensor"], set()).add(row["quantity"])
                    latest[(row["sensor"], row["quantity"])] = row
                if token:
                    gateways = {g["id"]: g for g in get(url + "/api/v1/gateways", token)}
                    alerts = get(url + "/api/v1/alerts", token)["alerts"] or alerts
                anonymous |= {row["sensor"] for row in get(url + "/api/v1/sensors")}
                geojson = get(url + "/open/v1/datasets/territory.geojson")
            except (OSError, ValueError, urllib.error.URLError):
                pass  # not up yet, or stopping
            time.sleep(0.5)
        status = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        out.seek(0)
        output = out.read()
        out.close()
    assert status == 0, output
    assert "demo stopped" in output, output
    assert "fleet access" in output, output  # gateways enrolled, not an open broker
    assert token, f"the demo printed no API token\n{output}"

    # every sensor of the territory reached the hub, through its own gateway
    gateway_of, ble, closed = expected
    assert {"marina-berth-02", "park-miflora-01"} <= ble  # encrypted BTHome, Mi Flora
    assert len(set(gateway_of.values())) == 3
    missing = sorted(set(gateway_of) - set(sensors))
    assert not missing, f"no reading at the hub from {missing}\n{output}"
    for sensor, gateway in gateway_of.items():
        assert sensors[sensor]["gateway"] == gateway, sensors[sensor]
    assert ble and set(gateway_of) - ble  # both kinds
    assert set(gateways) == set(gateway_of.values()), gateways

    # anonymous: the open dataset only (no closed meter, no berth), as GeoJSON too
    assert anonymous and not anonymous & closed, anonymous & closed
    assert {"townhall-linky", "marina-berth-02"} <= closed <= set(sensors)
    assert geojson["licence"]["id"] == "etalab-2.0", geojson.get("licence")
    located = [f for f in geojson["features"] if f["geometry"] is not None]
    assert located and not {f["id"] for f in geojson["features"]} & closed

    # the encrypted berth decoded with its bind key: an occupancy reading, not an error
    assert "occupancy" in quantities["marina-berth-02"], quantities["marina-berth-02"]

    # water meters heard over the air by the town hall: the one leaking at night raised its
    # leak alarm (an alarm-flagged reading) and the hub's meter rule fired on it
    leak = latest[("townhall-water-44556677", "leak")]
    assert leak["value"] in (True, 1) and leak["flags"] & 2, leak
    assert latest[("townhall-water-21242472", "leak")]["value"] in (False, 0)
    assert any(
        a["subject"] == "townhall-water-44556677/leak" and a["kind"] == "meter_flag" for a in alerts
    ), alerts

    # the canal gauge's level above the datum and the street's particulate matter
    assert {"level", "distance"} <= quantities["marina-canal-level"], quantities
    assert {"pm25", "pm10"} <= quantities["street-air-01"], quantities

    # a clean stop: nothing left behind, the temporary directory removed
    assert len(seen_processes) >= 5, seen_processes  # hub, radio world, three gateways
    deadline = time.monotonic() + 5
    while (left := still_running(seen_processes)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"processes left after the demo: {left}"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith("estran-demo-")]
    assert not leftovers, leftovers

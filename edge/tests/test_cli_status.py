"""`estran edge status`: the daemon's snapshot as tables, or as JSON."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner, Result

from edge.cli import edge
from edge.health import HealthRegistry, StatusServer
from protocols.reading import Reading


def registry() -> HealthRegistry:
    health = HealthRegistry("gw-status", "0.1.0")
    health.configure(
        {"mairie-sdm630": "serial:/dev/ttyUSB0", "berth-b12": "ble:hci0"},
        ["serial:/dev/ttyUSB0", "ble:hci0"],
    )
    health.set_state("serial:/dev/ttyUSB0", "up", "9600 8N1")
    health.set_state("ble:hci0", "down", "adapter [hci0] lost")
    health.sample(Reading("mairie-sdm630", "total_active_power", "W", 1234.5, 1_790_000_000_000))
    health.sample(Reading("mairie-sdm630", "frequency", "Hz", 50.01, 1_790_000_000_000))
    health.count_error("mairie-sdm630", "checksum", "bad CRC")
    health.count_error("ble:hci0", "adapter_lost")
    health.buffer = lambda: {
        "depth": 12,
        "oldest_age_s": 3.0,
        "bytes": 4096,
        "quota_bytes": 1 << 28,
        "dropped": 0,
        "commits": 3,
    }
    health.uplink = lambda: {"state": "disconnected"}
    return health


async def invoke(args: list[str]) -> Result:
    runner = CliRunner(env={"COLUMNS": "200"})
    return await asyncio.to_thread(runner.invoke, edge, ["status", *args])


async def test_status_table(tmp_path: Path) -> None:
    health = registry()
    async with StatusServer(tmp_path / "status.sock", health.snapshot):
        result = await invoke(["--data", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = result.output
    for words in (
        "gateway gw-status",
        "serial:/dev/ttyUSB0",
        "9600 8N1",
        "adapter [hci0] lost",  # markup in a detail is shown, not interpreted
        "adapter_lost 1",
        "mairie-sdm630",
        "total_active_power=1234.5 W",
        "checksum 1",
        "berth-b12",
        "never",
        "12 readings not yet acknowledged",
        "disconnected",
    ):
        assert words in out, words


async def test_status_json_is_the_snapshot(tmp_path: Path) -> None:
    health = registry()
    async with StatusServer(tmp_path / "status.sock", health.snapshot):
        result = await invoke(["--json", "--data", str(tmp_path)])
    snapshot = json.loads(result.output)
    assert snapshot["gateway"] == "gw-status"
    assert snapshot["sensors"]["mairie-sdm630"]["values"]["frequency"] == {
        "value": 50.01,
        "unit": "Hz",
        "ts_ms": 1_790_000_000_000,
    }
    assert snapshot["sources"]["ble:hci0"]["errors"] == {"adapter_lost": 1}


async def test_status_finds_the_socket_from_the_configuration(tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    config.write_text(f'[gateway]\nid = "gw-status"\ndata_dir = "{tmp_path / "d"}"\n')
    result = await invoke(["--config", str(config)])
    assert result.exit_code == 1
    assert f"{tmp_path / 'd' / 'status.sock'}: no such socket" in result.output
    config.write_text('[gateway]\nid = "bad id"\n')
    result = await invoke(["--config", str(config)])
    assert result.exit_code == 1 and "gateway.id" in result.output and "--data" in result.output

"""`estran edge enroll` is one command (issue 9): run as the technician runs it (its own
process, against the hub's real enrollment endpoints over HTTP), it writes a configuration
the daemon loads as enrolled, or updates the technician's file keeping everything else,
warns when the hub's address is plain http://, and says what to do next."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from edge.config import load_config
from estran.rig import free_port
from hub.fleet_api import FleetHub


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


@contextlib.asynccontextmanager
async def hub_http(tmp_path: Path) -> AsyncIterator[tuple[FleetHub, str]]:
    hub = FleetHub(tmp_path / "hub", poll_s=0.1)
    hub.fleet.create_group("marina", "alice")
    hub.broker_url = "mqtt://127.0.0.1:1883"
    app = FastAPI()
    app.include_router(hub.router())
    port = free_port()
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve(), name="hub-http")
    try:
        async with asyncio.timeout(10):
            while not server.started:
                await asyncio.sleep(0.02)
        yield hub, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait({task}, timeout=10)
        hub.close()


async def run_cli(*args: str) -> tuple[int, str, str]:
    env = {**os.environ, "COLUMNS": "200"}
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "estran"),  # the command the package installs
        "edge",
        "enroll",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_enroll_writes_a_ready_configuration(tmp_path: Path) -> None:
    async with hub_http(tmp_path) as (hub, url):
        token = hub.fleet.create_token("marina", 600, "alice").token
        config = tmp_path / "etc" / "edge.toml"
        data = tmp_path / "data"
        code, out, err = await run_cli(
            "--hub", url, "--token", token, "--data", str(data), "--config", str(config)
        )
        assert code == 0, out + err
        assert "is not https://" in err and "in clear" in err  # the warning, before anything
        config_doc = load_config(config)  # what the daemon loads
        gateway = next(iter(g.id for g in hub.fleet.gateways()))
        assert config_doc.gateway.id == gateway and config_doc.gateway.data_dir == data
        assert config_doc.uplink is not None
        assert config_doc.uplink.broker == "mqtt://127.0.0.1:1883"
        assert config_doc.uplink.credentials_file == data / "credentials"
        assert (data / "credentials").read_text().startswith(gateway + ":")
        assert f"config       {config} created" in out
        assert "next:" in out and "estran edge probe" in out and "estran edge doctor" in out
        assert "systemctl enable --now estran-edge" in out


async def test_enroll_updates_the_technicians_file_and_keeps_the_rest(tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    mine = (
        "# marina pontoon B, installed by J.\n"
        '[gateway]\nid = "CHANGE-ME"\nlog_level = "debug"\n\n'
        '[uplink]\nbroker = "mqtt://old-hub:1883"\nbacklog_rate = 500\n\n'
        '[[serial]]\npath = "/dev/ttyUSB0"\nprotocol = "nmea"\n'
        '[[serial.devices]]\nsensor = "wind"\ninterval = 0\n'
    )
    config.write_text(mine)
    config.chmod(0o640)
    async with hub_http(tmp_path) as (hub, url):
        token = hub.fleet.create_token("marina", 600, "alice").token
        data = tmp_path / "data"
        code, out, err = await run_cli(
            "--hub", url, "--token", token, "--data", str(data), "--config", str(config)
        )
        assert code == 0, out + err
        assert f"{config} updated" in out
        gateway = next(iter(g.id for g in hub.fleet.gateways()))
    text = config.read_text()
    assert text.startswith("# marina pontoon B, installed by J.\n")
    doc = load_config(config)
    assert doc.gateway.id == gateway and doc.gateway.log_level == "debug"
    assert doc.uplink is not None and doc.uplink.broker == "mqtt://127.0.0.1:1883"
    assert doc.uplink.backlog_rate == 500 and doc.uplink.credentials_file == data / "credentials"
    assert [p.path for p in doc.serial] == ["/dev/ttyUSB0"]
    assert config.stat().st_mode & 0o777 == 0o640


async def test_an_unwritable_configuration_is_said_with_what_to_paste(tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    config.write_text("[gateway\n")  # not TOML: left as it is
    async with hub_http(tmp_path) as (hub, url):
        token = hub.fleet.create_token("marina", 600, "alice").token
        code, out, err = await run_cli(
            "--hub", url, "--token", token, "--data", str(tmp_path / "d"), "--config", str(config)
        )
    assert code == 0, out + err  # enrolled: the file is the technician's to fix
    assert config.read_text() == "[gateway\n"
    assert "is not valid TOML" in err and "[uplink]" in err and "credentials_file" in err

"""`estran edge enroll` is one command (issue 9): run as the technician runs it (its own
process, against the hub's real enrollment endpoints over HTTP), it writes a configuration
the daemon loads as enrolled, or updates the technician's file keeping everything else,
warns when the hub's address is plain http://, and says what to do next."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from estran.rig import Child, HubProcess, Rig, estran_argv

pytestmark = pytest.mark.needs("broker.embedded", "database", "hub")
BROKER_TOLD = "mqtt://127.0.0.1:1883"  # what the hub tells enrolling gateways (--public-broker)


@contextlib.asynccontextmanager
async def hub_http(rig: Rig) -> AsyncIterator[tuple[HubProcess, str]]:
    """The hub (`estran hub run`, gateways enrolled into a `marina` group) and its URL."""
    hub = await rig.hub(
        broker="broker.embedded", access="fleet", extra=["--public-broker", BROKER_TOLD]
    )
    await hub.fleet("group", "create", "marina")
    yield hub, hub.url


async def enrollment_token(hub: HubProcess) -> str:
    token = json.loads(
        await hub.fleet("token", "create", "--group", "marina", "--ttl", "10m", "--json")
    )
    return str(token["token"])


async def enrolled(hub: HubProcess) -> str:
    """The one gateway of the registry (`estran fleet gateways --json`)."""
    gateways = json.loads(await hub.fleet("gateways", "--json"))
    assert len(gateways) == 1, gateways
    return str(gateways[0]["id"])


async def loads(config: Path) -> None:
    """The gateway's own loader accepts the file: `estran edge doctor`'s config check."""
    child = Child(
        "doctor",
        estran_argv("edge", "doctor", "--config", str(config), "--json"),
        config.with_suffix(".doctor.log"),
        pipe_stdout=True,
    )
    await child.start()
    lines = []
    while line := await child.readline(60):
        lines.append(line)
    await child.wait(30)
    checks = {c["check"]: c for c in json.loads("".join(lines))["checks"]}
    assert checks["config"]["status"] == "ok", checks["config"]


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


async def test_enroll_writes_a_ready_configuration(tmp_path: Path, rig: Rig) -> None:
    async with hub_http(rig) as (hub, url):
        token = await enrollment_token(hub)
        config = tmp_path / "etc" / "edge.toml"
        data = tmp_path / "data"
        code, out, err = await run_cli(
            "--hub", url, "--token", token, "--data", str(data), "--config", str(config)
        )
        assert code == 0, out + err
        assert "is not https://" in err and "in clear" in err  # the warning, before anything
        await loads(config)  # what the daemon loads
        doc = tomllib.loads(config.read_text())
        gateway = await enrolled(hub)
        assert doc["gateway"]["id"] == gateway and Path(doc["gateway"]["data_dir"]) == data
        assert doc["uplink"]["broker"] == BROKER_TOLD
        assert Path(doc["uplink"]["credentials_file"]) == data / "credentials"
        assert (data / "credentials").read_text().startswith(gateway + ":")
        assert f"config       {config} created" in out
        assert "next:" in out and "estran edge probe" in out and "estran edge doctor" in out
        assert "systemctl enable --now estran-edge" in out


async def test_enroll_updates_the_technicians_file_and_keeps_the_rest(
    tmp_path: Path, rig: Rig
) -> None:
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
    async with hub_http(rig) as (hub, url):
        token = await enrollment_token(hub)
        data = tmp_path / "data"
        code, out, err = await run_cli(
            "--hub", url, "--token", token, "--data", str(data), "--config", str(config)
        )
        assert code == 0, out + err
        assert f"{config} updated" in out
        gateway = await enrolled(hub)
    text = config.read_text()
    assert text.startswith("# marina pontoon B, installed by J.\n")
    await loads(config)
    doc = tomllib.loads(text)
    assert doc["gateway"]["id"] == gateway and doc["gateway"]["log_level"] == "debug"
    assert doc["uplink"]["broker"] == BROKER_TOLD and doc["uplink"]["backlog_rate"] == 500
    assert Path(doc["uplink"]["credentials_file"]) == data / "credentials"
    assert [p["path"] for p in doc["serial"]] == ["/dev/ttyUSB0"]
    assert config.stat().st_mode & 0o777 == 0o640


async def test_an_unwritable_configuration_is_said_with_what_to_paste(
    tmp_path: Path, rig: Rig
) -> None:
    config = tmp_path / "edge.toml"
    config.write_text("[gateway\n")  # not TOML: left as it is
    async with hub_http(rig) as (hub, url):
        token = await enrollment_token(hub)
        code, out, err = await run_cli(
            "--hub", url, "--token", token, "--data", str(tmp_path / "d"), "--config", str(config)
        )
    assert code == 0, out + err  # enrolled: the file is the technician's to fix
    assert config.read_text() == "[gateway\n"
    assert "is not valid TOML" in err and "[uplink]" in err and "credentials_file" in err

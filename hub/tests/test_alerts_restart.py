"""`estran hub run` as its own process, killed with SIGKILL while an alert is open: the
restarted hub still has it, does not open a second one for the same condition, and resolves
it when the condition clears (the engine reloaded it). Rule and channel-less, through the
CLI, MQTT and HTTP only."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import httpx

from fleet import Fleet
from hub.tests.services import free_port
from protocols import wire

ESTRAN = str(Path(sys.executable).with_name("estran"))


@contextlib.contextmanager
def hub_process(data: Path, db: str, http: int, mqtt: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [
            ESTRAN,
            "hub",
            "run",
            "--data",
            str(data),
            "--db",
            db,
            "--http",
            f"127.0.0.1:{http}",
            "--mqtt-listen",
            f"127.0.0.1:{mqtt}",
            "--broker-access",
            "open",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


async def ready(http: httpx.AsyncClient) -> None:
    for _ in range(300):
        with contextlib.suppress(httpx.HTTPError):
            if (await http.get("/api/v1/health")).json().get("ready"):
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the hub did not become ready in 30 s")


async def alerts(http: httpx.AsyncClient, headers: dict[str, str], want: int) -> list[Any]:
    for _ in range(100):
        body = (await http.get("/api/v1/alerts", headers=headers)).json()["alerts"]
        if len(body) >= want:
            return list(body)
        await asyncio.sleep(0.1)
    raise AssertionError(f"fewer than {want} alerts after 10 s")


async def offline(port: int, gateway: str, online: bool, session: int) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"gw-{os.getpid()}") as gw:
        state = wire.encode_state(wire.State(online, session, 0))
        await gw.publish(wire.topic(gateway, "state"), state, qos=1)


async def test_an_open_alert_survives_sigkill(storage_spec: str, tmp_path: Path) -> None:
    with Fleet(tmp_path) as fleet:
        token = fleet.ensure_admin()
    assert token is not None
    headers = {"Authorization": f"Bearer {token}"}
    rule = {"id": "gw-off", "kind": "gateway_offline", "params": {"after": 0}, "damping": 0}
    added = subprocess.run(
        [ESTRAN, "hub", "alert", "--data", str(tmp_path), "--db", storage_spec, "rule", "add", "-"],
        input=json.dumps(rule),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "rule gw-off created (version 1)"
    http_port, mqtt_port = free_port(), free_port()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http:
        with hub_process(tmp_path, storage_spec, http_port, mqtt_port) as proc:
            await ready(http)
            await offline(mqtt_port, "gw-9", False, 1)
            [first] = await alerts(http, headers, 1)
            assert (first["subject"], first["state"]) == ("gw-9", "firing")
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        with hub_process(tmp_path, storage_spec, http_port, mqtt_port):
            await ready(http)
            [again] = await alerts(http, headers, 1)
            assert again["id"] == first["id"] and again["state"] == "firing"
            await offline(mqtt_port, "gw-9", False, 2)  # the same condition, told again
            await asyncio.sleep(1.5)  # a tick of the engine
            assert len(await alerts(http, headers, 1)) == 1
            await offline(mqtt_port, "gw-9", True, 3)
            for _ in range(100):
                [done] = await alerts(http, headers, 1)
                if done["state"] == "resolved":
                    break
                await asyncio.sleep(0.1)
            assert (done["id"], done["state"], done["resolved_by"]) == (
                first["id"],
                "resolved",
                "system",
            )
        listed = subprocess.run(
            [
                ESTRAN,
                "hub",
                "alert",
                "--data",
                str(tmp_path),
                "--db",
                storage_spec,
                "list",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert [a["id"] for a in json.loads(listed.stdout)] == [first["id"]]

"""What the hub learns of a gateway's sources: the daemon's state messages, read off a real
broker as the hub reads them, say which source is down (at once, not at the next periodic
state), and which settings wait for a restart; a reload that changes only the buffer quota
changes no sensor (issue 9)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from edge.config import load_config
from edge.daemon import Daemon, SystemdNotifier
from edge.daemon._wiring import default_wiring
from edge.simulators.serial import Fault, NmeaSimulator
from edge.tests.support.daemon import port_table
from edge.tests.support.uplink import amqtt_broker
from protocols import wire


@pytest.fixture
async def broker_port() -> AsyncIterator[int]:
    async with amqtt_broker() as port:
        yield port


async def next_state(hub: aiomqtt.Client, timeout: float) -> wire.State:
    async with asyncio.timeout(timeout):
        async for message in hub.messages:
            assert isinstance(message.payload, bytes)
            return wire.decode_state(message.payload)
    raise AssertionError("no state")


async def state_where(hub: aiomqtt.Client, predicate: object, timeout: float) -> wire.State:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        state = await next_state(hub, max(deadline - loop.time(), 0.01))
        if callable(predicate) and predicate(state):
            return state


async def test_source_health_and_restart_pending_reach_the_hub(
    tmp_path: Path, broker_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="estran")
    async with (
        NmeaSimulator("ttyNMEA", directory=tmp_path / "sim", interval=0.1) as nmea,
        aiomqtt.Client("127.0.0.1", broker_port, identifier="hub-stand-in") as hub,
    ):
        await hub.subscribe(wire.topic("gw-h", "state"), qos=1)
        path = tmp_path / "edge.toml"
        head = (
            f'[gateway]\nid = "gw-h"\ndata_dir = "{tmp_path / "d"}"\n'
            f'[uplink]\nbroker = "mqtt://127.0.0.1:{broker_port}"\nprotocol = "3.1.1"\n'
            'state_interval = "30s"\n'
        )
        port = port_table(nmea.port_config(), reconnect_min=0.2, reconnect_max=0.5)  # type: ignore[arg-type]
        path.write_text(head + port)
        config = load_config(path)
        source = config.serial[0].source_name
        daemon = Daemon(config, default_wiring(), SystemdNotifier({}))
        task = asyncio.create_task(daemon.run(), name="daemon-hub-health")
        try:

            def ok(s: wire.State) -> bool:
                return [(h.name, h.status) for h in s.sources or []] == [(source, "ok")]

            up = await state_where(hub, ok, 15)
            assert up.restart_pending == []
            await asyncio.sleep(1.0)  # a few sentences read

            # unplugged: a state says so at once (the periodic one is a minute away)
            nmea.inject(Fault.unplug(seconds=3.0))

            def down(s: wire.State) -> bool:
                return any(h.status == "down" for h in s.sources or [])

            gone = await state_where(hub, down, 5)
            (health,) = gone.sources or []
            assert health.name == source and health.detail
            assert health.errors.get("unplugged", 0) >= 1
            back = await state_where(hub, ok, 10)  # plugged back: ok again
            assert back.sources and back.sources[0].last_ms is not None

            # a buffer quota changed by reload: applied, waiting for a restart, and said so;
            # no sensor setting changed
            caplog.clear()
            path.write_text(head + '[buffer]\nquota = "32 MiB"\n' + port)
            result = await daemon.reload()
            assert result.ok and result.needs_restart == ["buffer"]
            assert result.sensors == []
            assert "sensor settings changed" not in caplog.text
            pending = await state_where(hub, lambda s: s.restart_pending == ["buffer"], 5)
            assert pending.online
        finally:
            daemon.request_stop()
            await asyncio.wait_for(task, 15)

"""The daemon's fleet link: started once the gateway is enrolled, it applies signed
configurations from the broker, reports, and re-applies the last one after a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiomqtt
from amqtt.broker import Broker

from edge.config import load_config
from edge.daemon import Daemon, SystemdNotifier
from edge.identity import GatewayState, Identity
from edge.tests.support.daemon import FakeWiring, port, wait_until, write_config
from edge.tests.support.hub import FakeHub
from estran.rig import free_port
from protocols import signed, wire

GW = "gw-test"


def ports(*paths: str) -> list[dict[str, object]]:
    return [
        {"path": p, "protocol": "nmea", "devices": [{"sensor": p.rsplit("/", 1)[1], "interval": 0}]}
        for p in paths
    ]


async def test_fleet_link_applies_reports_and_survives_a_restart(tmp_path: Path) -> None:
    mqtt_port = free_port()
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{mqtt_port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    hub = FakeHub()
    data = tmp_path / "data"
    with GatewayState(data) as state:
        ident = Identity(GW, "g", "http://hub", f"mqtt://127.0.0.1:{mqtt_port}", GW, "0" * 16, 1)
        state.set_identity(ident, "pw")
        state.set_trusted_keys(hub.public_keys())
    local = write_config(tmp_path / "edge.toml", data, port("/dev/a", "a"))
    try:
        fakes = FakeWiring()
        daemon = Daemon(load_config(local), fakes.wiring(), SystemdNotifier({}))
        task = asyncio.create_task(daemon.run(), name="daemon-under-test")
        await asyncio.wait_for(daemon.ready.wait(), 5)
        assert "fleet" in daemon.supervisor.names
        async with aiomqtt.Client("127.0.0.1", mqtt_port, identifier="hub", timeout=5) as h:
            await h.subscribe(wire.topic(GW, "report"), qos=1)
            doc = {"serial": ports("/dev/a", "/dev/b"), "apply": {"health_timeout": 1}}
            await h.publish(wire.topic(GW, "config"), hub.config(GW, 1, doc), qos=1, retain=True)
            async with asyncio.timeout(10):
                message = await anext(aiter(h.messages))
            assert isinstance(message.payload, bytes)
            report = signed.check_report(wire.decode_envelope(message.payload, wire.REPORT).value())
            assert report["outcome"] == "applied" and report["applied"] == 1
        assert "serial:/dev/b" in daemon.supervisor.names
        daemon.request_stop()
        await asyncio.wait_for(task, 10)

        # a restart starts from the file, and the link puts the hub's configuration back
        fakes = FakeWiring()
        daemon = Daemon(load_config(local), fakes.wiring(), SystemdNotifier({}))
        task = asyncio.create_task(daemon.run(), name="daemon-under-test-2")
        await asyncio.wait_for(daemon.ready.wait(), 5)
        await wait_until(lambda: "serial:/dev/b" in daemon.supervisor.names)
        assert fakes.opened == 1
        daemon.request_stop()
        await asyncio.wait_for(task, 10)
    finally:
        await broker.shutdown()

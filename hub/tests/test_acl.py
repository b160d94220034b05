"""The embedded broker with the fleet's auth and topic ACL plugins."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
from amqtt.broker import Broker

from hub.acl import disconnect_unknown
from hub.fleet_api import FleetHub
from hub.tests.fleet_support import enroll_directly
from hub.tests.services import free_port
from protocols import wire


@contextlib.asynccontextmanager
async def broker_with(hub: FleetHub, port: int) -> AsyncIterator[Broker]:
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": hub.amqtt_plugins(),
        }
    )
    await broker.start()
    try:
        yield broker
    finally:
        await broker.shutdown()


def client(port: int, name: str, user: str | None, password: str | None) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=name,
        username=user,
        password=password,
        protocol=aiomqtt.ProtocolVersion.V311,
        timeout=5,
    )


async def next_message(c: aiomqtt.Client, timeout: float = 1.0) -> aiomqtt.Message | None:
    try:
        async with asyncio.timeout(timeout):
            async for m in c.messages:
                return m
    except TimeoutError:
        return None
    return None


@pytest.fixture
def hub(tmp_path: Path) -> FleetHub:
    return FleetHub(tmp_path)


async def test_gateways_are_confined_to_their_prefix(hub: FleetHub) -> None:
    a, pw_a = enroll_directly(hub.fleet)
    b, pw_b = enroll_directly(hub.fleet)
    await hub.refresh()
    port = free_port()
    user, pw = hub.credentials
    async with (
        broker_with(hub, port),
        client(port, "hub", user, pw) as h,
        client(port, "a", a, pw_a) as ca,
        client(port, "b", b, pw_b) as cb,
    ):
        await h.subscribe("estran/v1/gw/+/data", qos=1)
        await h.publish(wire.topic(b, "config"), b"config-of-b", qos=1, retain=True)
        # A publishes under B's prefix: dropped; under its own: delivered
        await ca.publish(wire.topic(b, "data"), b"forged", qos=1)
        await ca.publish(wire.topic(a, "data"), b"own", qos=1)
        m = await next_message(h)
        assert m is not None and str(m.topic) == wire.topic(a, "data") and m.payload == b"own"
        assert await next_message(h, 0.3) is None
        # A may not read B's configuration, not even with a wildcard
        await ca.subscribe(wire.topic(b, "config"), qos=1)
        await ca.subscribe("estran/v1/gw/+/config", qos=1)
        await ca.subscribe("#", qos=1)
        assert await next_message(ca, 0.5) is None
        # B reads its own
        await cb.subscribe(wire.topic(b, "config"), qos=1)
        m = await next_message(cb)
        assert m is not None and m.payload == b"config-of-b"
        # A cannot publish a configuration, even its own
        await ca.subscribe(wire.topic(a, "config"), qos=1)
        await ca.publish(wire.topic(a, "config"), b"self-made", qos=1)
        assert await next_message(ca, 0.5) is None
    assert hub.holder.refused_topics > 0


async def test_anonymous_and_bad_passwords_refused(hub: FleetHub) -> None:
    a, pw_a = enroll_directly(hub.fleet)
    await hub.refresh()
    port = free_port()
    async with broker_with(hub, port):
        for user, pw in ((None, None), (a, "wrong"), ("estran-hub", "guess"), ("nobody", pw_a)):
            with pytest.raises(aiomqtt.MqttError):
                async with client(port, "x", user, pw):
                    pass
    assert hub.holder.refused_connects == 4


async def test_revocation_ends_broker_access_at_once(hub: FleetHub) -> None:
    a, pw_a = enroll_directly(hub.fleet)
    await hub.refresh()
    port = free_port()
    user, pw = hub.credentials
    async with broker_with(hub, port) as broker:
        async with client(port, "hub", user, pw) as h, client(port, "a", a, pw_a) as ca:
            await h.subscribe("estran/v1/gw/+/data", qos=1)
            hub.fleet.revoke(a, "alice")
            assert await hub.refresh(broker)
            async with asyncio.timeout(3):  # the broker closes A's connection
                while any(
                    sess.username == a and sess.transitions.state == "connected"
                    for sess, _ in broker.sessions.values()
                ):
                    await asyncio.sleep(0.02)
            assert await disconnect_unknown(broker, hub.holder.access) == []
            with contextlib.suppress(aiomqtt.MqttError):
                await ca.publish(wire.topic(a, "data"), b"after revocation", qos=0)
            assert await next_message(h, 0.5) is None
        with pytest.raises(aiomqtt.MqttError):
            async with client(port, "a2", a, pw_a):
                pass

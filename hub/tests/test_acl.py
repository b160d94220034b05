"""Broker isolation on both brokers: the embedded one with the fleet's access policy, and a
private Mosquitto with the generated passwd, acl and mosquitto.conf (reloaded by the hub).

Where the two brokers differ, each test says what each one does (docs/security.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

import fleet
from estran.rig import messages_within, next_message
from hub._broker import EmbeddedBroker
from hub.acl import disconnect_unknown
from hub.broker import Broker, BrokerLimits
from hub.fleet_api import FleetHub
from hub.tests.brokers import BROKERS, mosquitto
from hub.tests.fleet_support import enroll_directly
from hub.tests.services import free_port
from protocols import wire


@dataclass
class Site:
    kind: str
    hub: FleetHub
    port: int
    broker: Broker | None  # the embedded broker (None: Mosquitto)

    async def settle(self) -> None:
        """The hub has applied the registry's latest revision to the broker."""
        await self.hub.refresh(self.broker)
        if self.kind == "mosquitto":
            await asyncio.sleep(0.3)  # SIGHUP handled

    def client(self, name: str, user: str | None, password: str | None) -> aiomqtt.Client:
        return client(self.port, name, user, password)

    def as_hub(self, name: str = "test-hub") -> aiomqtt.Client:
        return self.client(name, *self.hub.credentials)


@contextlib.asynccontextmanager
async def site_of(
    kind: str, tmp_path: Path, limits: BrokerLimits | None = None
) -> AsyncIterator[Site]:
    port = free_port()
    mq = tmp_path / "mosquitto"
    mq.mkdir()
    hub = FleetHub(
        tmp_path / "hub",
        mosquitto_dir=mq if kind == "mosquitto" else None,
        mosquitto_pid=mq / "mosquitto.pid" if kind == "mosquitto" else None,
    )
    hub.credentials  # noqa: B018 -- the hub's account exists before the broker starts
    await hub.refresh()
    try:
        if kind == "embedded":
            embedded = EmbeddedBroker("127.0.0.1", port, hub.broker_access, None, limits)
            async with embedded:
                yield Site(kind, hub, port, embedded.broker)
        else:
            conf = mq / "mosquitto.conf"
            conf.write_text(fleet.mosquitto_conf(mq, port, run_as=getpass.getuser()))
            async with mosquitto(conf, port) as pid:
                (mq / "mosquitto.pid").write_text(str(pid))
                yield Site(kind, hub, port, None)
    finally:
        hub.close()


@contextlib.asynccontextmanager
async def broker_with(hub: FleetHub, port: int) -> AsyncIterator[Broker]:
    """The embedded broker with `hub`'s access policy."""
    embedded = EmbeddedBroker("127.0.0.1", port, hub.broker_access)
    async with embedded:
        assert embedded.broker is not None
        yield embedded.broker


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


@pytest.fixture(params=BROKERS)
async def site(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Site]:
    async with site_of(request.param, tmp_path) as s:
        yield s


def connect_packet(client_id: str, user: str, password: str) -> bytes:
    def text(s: str) -> bytes:
        return struct.pack(">H", len(s.encode())) + s.encode()

    body = text("MQTT") + bytes([4, 0xC2]) + struct.pack(">H", 30)
    body += text(client_id) + text(user) + text(password)
    return bytes([0x10, len(body)]) + body


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


# -- topic ACL ---------------------------------------------------------------------------------


async def test_gateways_are_confined_to_their_prefix(site: Site) -> None:
    a, pw_a = enroll_directly(site.hub.fleet)
    b, pw_b = enroll_directly(site.hub.fleet)
    await site.settle()
    async with (
        site.as_hub() as h,
        site.client("a", a, pw_a) as ca,
        site.client("b", b, pw_b) as cb,
    ):
        await h.subscribe("estran/v1/gw/+/data", qos=1)
        await h.publish(wire.topic(b, "config"), b"config-of-b", qos=1, retain=True)
        # A publishes under B's prefix: acknowledged (3.1.1 has no refusal) and dropped
        await ca.publish(wire.topic(b, "data"), b"forged", qos=1)
        await ca.publish(wire.topic(a, "data"), b"own", qos=1)
        m = await next_message(h)
        assert m is not None and str(m.topic) == wire.topic(a, "data") and m.payload == b"own"
        assert await next_message(h, 0.3) is None
        # A may not read B's configuration, not even with a wildcard. The embedded broker
        # refuses the subscription (SUBACK 0x80); Mosquitto grants it and delivers nothing.
        for pattern in (wire.topic(b, "config"), "estran/v1/gw/+/config", "#"):
            granted = await ca.subscribe(pattern, qos=1)
            assert list(granted) == ([128] if site.kind == "embedded" else [1]), pattern
        assert await next_message(ca, 0.5) is None
        # B reads its own
        assert list(await cb.subscribe(wire.topic(b, "config"), qos=1)) == [1]
        m = await next_message(cb)
        assert m is not None and m.payload == b"config-of-b"
        # A cannot publish a configuration, even its own
        await ca.subscribe(wire.topic(a, "config"), qos=1)
        await ca.publish(wire.topic(a, "config"), b"self-made", qos=1)
        assert await next_message(ca, 0.5) is None
    if site.broker is not None:
        assert site.broker.stats.denied["publish"] == 2
        assert site.broker.stats.denied["subscribe"] == 3


async def test_retained_messages_of_others_never_reach_a_gateway(site: Site) -> None:
    """Regression: amqtt sent every retained message to a new session, ACL unchecked."""
    a, pw_a = enroll_directly(site.hub.fleet)
    b, pw_b = enroll_directly(site.hub.fleet)
    await site.settle()
    async with site.as_hub() as h, site.client(f"{b}-fleet", b, pw_b) as cb:
        await h.publish(wire.topic(a, "config"), b"config-of-a", qos=1, retain=True)
        await h.publish(wire.topic(b, "config"), b"config-of-b (bind keys)", qos=1, retain=True)
        await cb.publish(wire.topic(b, "state"), b"state-of-b", qos=1, retain=True)
        # A new session subscribing to its own config gets its own, and nothing else
        async with site.client(f"{a}-fleet", a, pw_a) as ca:
            await ca.subscribe(wire.topic(a, "config"), qos=1)
            got = await messages_within(ca, 1.0)
            assert [(str(m.topic), m.payload) for m in got] == [
                (wire.topic(a, "config"), b"config-of-a")
            ]
        # A resumed session (clean session off) gets only what its subscription may receive
        resumed = aiomqtt.Client(
            "127.0.0.1",
            site.port,
            identifier=f"{a}-persist",
            username=a,
            password=pw_a,
            protocol=aiomqtt.ProtocolVersion.V311,
            clean_session=False,
            timeout=5,
        )
        async with resumed:
            await resumed.subscribe(wire.topic(a, "cmd"), qos=1)
            await resumed.subscribe("estran/v1/gw/+/cmd", qos=1)  # refused or empty
        await h.publish(wire.topic(b, "cmd"), b"cmd-of-b", qos=1)
        await h.publish(wire.topic(a, "cmd"), b"cmd-of-a", qos=1)
        async with resumed:
            got = await messages_within(resumed, 1.0)
            assert [m.payload for m in got] == [b"cmd-of-a"]


# -- connections and client ids --------------------------------------------------------------


async def test_anonymous_and_bad_passwords_refused(site: Site) -> None:
    a, pw_a = enroll_directly(site.hub.fleet)
    await site.settle()
    for user, pw in ((None, None), (a, "wrong"), ("estran-hub", "guess"), ("nobody", pw_a)):
        with pytest.raises(aiomqtt.MqttError):
            async with site.client("x", user, pw):
                pass
    if site.broker is not None:
        assert site.broker.stats.refused["credentials"] == 4


async def test_a_refused_connect_never_touches_an_existing_session(site: Site) -> None:
    """Regression: on amqtt, a refused CONNECT reusing `<gateway>-fleet` (or the hub's own
    client id) wiped that session's subscriptions: the victim stayed connected, deaf."""
    a, pw_a = enroll_directly(site.hub.fleet)
    await site.settle()
    async with (
        site.as_hub("estran-hub-fleet") as h,
        site.client(f"{a}-fleet", a, pw_a) as victim,
    ):
        await victim.subscribe(wire.topic(a, "config"), qos=1)
        await h.subscribe(wire.subscription("report"), qos=1)
        for client_id in (f"{a}-fleet", "estran-hub-fleet"):
            for user, pw in ((None, None), (a, "wrong"), ("estran-hub", "wrong")):
                with pytest.raises(aiomqtt.MqttError):
                    async with site.client(client_id, user, pw):
                        pass
        await h.publish(wire.topic(a, "config"), b"new config", qos=1)
        m = await next_message(victim)
        assert m is not None and m.payload == b"new config"
        await victim.publish(wire.topic(a, "report"), b"applied", qos=1)
        m = await next_message(h)
        assert m is not None and m.payload == b"applied"


async def test_a_client_id_belongs_to_its_identity(site: Site) -> None:
    """Embedded: another identity cannot take over a gateway's or the hub's client id.
    Mosquitto: any authenticated client takes over any client id (the victim is cut off)."""
    a, pw_a = enroll_directly(site.hub.fleet)
    b, pw_b = enroll_directly(site.hub.fleet)
    await site.settle()
    for client_id in (f"{a}-fleet", "estran-hub-fleet"):
        owner = site.as_hub(client_id) if client_id.startswith("estran-hub") else None
        victim = owner or site.client(client_id, a, pw_a)
        async with victim:
            topic = wire.topic(a, "config")
            await victim.subscribe(topic, qos=1)
            if site.kind == "embedded":
                with pytest.raises(aiomqtt.MqttCodeError) as refused:
                    async with site.client(client_id, b, pw_b):
                        pass
                assert str(refused.value.rc) == "Client identifier not valid"  # CONNACK 2
                async with site.as_hub() as h:
                    await h.publish(topic, b"still mine", qos=1)
                m = await next_message(victim)
                assert m is not None and m.payload == b"still mine"
            else:
                async with site.client(client_id, b, pw_b):
                    await asyncio.sleep(0.3)
                with pytest.raises(aiomqtt.MqttError):
                    await victim.publish(topic, b"", qos=1, timeout=2)
                    await asyncio.sleep(0.5)
                    await victim.publish(topic, b"", qos=1, timeout=2)
                with contextlib.suppress(aiomqtt.MqttError):
                    await victim.__aexit__(None, None, None)
                victim = site.client(client_id, a, pw_a)  # for the context's exit
                await victim.__aenter__()
    # an id naming another identity, held by no one: refused on the embedded broker
    for client_id in ("estran-hub-ingest-9", f"{a}-probe", f"estran-gw-{a}"):
        if site.kind == "embedded":
            with pytest.raises(aiomqtt.MqttCodeError):
                async with site.client(client_id, b, pw_b):
                    pass
        else:
            async with site.client(client_id, b, pw_b):
                pass
    async with site.client(f"{b}-anything", b, pw_b):  # its own: fine
        pass


async def test_refused_connections_leave_no_session(tmp_path: Path) -> None:
    async with site_of("embedded", tmp_path) as site:
        a, _ = enroll_directly(site.hub.fleet)
        await site.settle()
        assert site.broker is not None
        stats = site.broker.stats
        for i in range(100):
            with pytest.raises(aiomqtt.MqttError):
                async with site.client(f"{a}-{i}", a, "wrong"):
                    pass
        await asyncio.sleep(0.2)
        assert (stats.sessions, stats.connections, stats.refused["credentials"]) == (0, 0, 100)


async def test_revocation_ends_broker_access(site: Site) -> None:
    a, pw_a = enroll_directly(site.hub.fleet)
    await site.settle()
    async with site.as_hub() as h, site.client("a", a, pw_a) as ca:
        await h.subscribe("estran/v1/gw/+/data", qos=1)
        site.hub.fleet.revoke(a, "alice")
        await site.settle()
        if site.broker is not None:  # the embedded broker closes A's connection at once
            async with asyncio.timeout(3):
                while a in site.broker.clients().values():
                    await asyncio.sleep(0.02)
            assert await disconnect_unknown(site.broker, site.hub.broker_access.access) == []
        with contextlib.suppress(aiomqtt.MqttError):
            await ca.publish(wire.topic(a, "data"), b"after revocation", qos=0)
        assert await next_message(h, 0.5) is None
    with pytest.raises(aiomqtt.MqttError):
        async with site.client("a2", a, pw_a):
            pass


# -- limits -------------------------------------------------------------------------------------


async def test_an_oversized_publish_is_refused_unread(site: Site) -> None:
    """Regression: a 100 MiB PUBLISH from an enrolled gateway was read, acknowledged and
    held in memory. Both brokers close the connection at the fixed header."""
    a, pw_a = enroll_directly(site.hub.fleet)
    await site.settle()
    topic = wire.topic(a, "data").encode()
    async with site.as_hub() as h:
        await h.subscribe("estran/v1/gw/+/data", qos=1)

        def attack(size: int) -> tuple[bool, int]:
            """(connection closed by the broker, bytes sent before it was)"""
            with socket.create_connection(("127.0.0.1", site.port), timeout=5) as s:
                s.sendall(connect_packet(f"{a}-big", a, pw_a))
                assert s.recv(4) == bytes([0x20, 2, 0, 0])
                body = struct.pack(">H", len(topic)) + topic + b"\x00\x01"
                s.sendall(bytes([0x32]) + varint(len(body) + size) + body)
                sent, chunk = 0, b"x" * (1 << 16)
                try:
                    while sent < size:
                        s.sendall(chunk[: size - sent])
                        sent += min(len(chunk), size - sent)
                    return s.recv(4) == b"", sent
                except (ConnectionResetError, BrokenPipeError):
                    return True, sent

        closed, sent = await asyncio.to_thread(attack, 100 << 20)
        assert closed and sent < 100 << 20
        assert await next_message(h, 0.5) is None
        # the largest payload the ingest takes passes
        async with site.client(f"{a}-ok", a, pw_a) as ca:
            await ca.publish(wire.topic(a, "data"), b"y" * wire.MAX_PAYLOAD, qos=1)
        m = await next_message(h, 5)
        assert m is not None and len(m.payload) == wire.MAX_PAYLOAD  # type: ignore[arg-type]


async def test_per_identity_connection_and_rate_limits(tmp_path: Path) -> None:
    """Embedded only (Mosquitto's max_connections is global, it has no rate limit)."""
    limits = BrokerLimits(connections_per_identity=3, publish_rate=100.0, publish_burst=10)
    async with site_of("embedded", tmp_path, limits) as site:
        a, pw_a = enroll_directly(site.hub.fleet)
        await site.settle()
        assert site.broker is not None
        async with contextlib.AsyncExitStack() as stack:
            clients = [
                await stack.enter_async_context(site.client(f"{a}-{i}", a, pw_a)) for i in range(3)
            ]
            with pytest.raises(aiomqtt.MqttCodeError) as refused:
                async with site.client(f"{a}-3", a, pw_a):
                    pass
            assert str(refused.value.rc) == "Server unavailable"  # CONNACK 3
            assert site.broker.stats.refused["connection limit"] == 1
            # the hub is not limited
            hubs = [await stack.enter_async_context(site.as_hub(f"hub-{i}")) for i in range(5)]
            await hubs[0].subscribe("estran/v1/gw/+/data", qos=1)
            # 100 messages at 100/s after a burst of 10: slowed down, none lost
            for i in range(100):
                await clients[0].publish(wire.topic(a, "data"), str(i).encode(), qos=1)
            got = []
            async with asyncio.timeout(10):
                async for m in hubs[0].messages:
                    got.append(m.payload)
                    if len(got) == 100:
                        break
            assert got == [str(i).encode() for i in range(100)]
            assert site.broker.stats.throttled > 0
            assert not site.broker.stats.dropped


async def test_acknowledged_messages_reach_the_hub_after_the_gateway_leaves(site: Site) -> None:
    """Regression: on amqtt with the fleet's plugins, a gateway that published 2,000 QoS 1
    messages (20 in flight) and disconnected right after its last PUBACK had about half of
    them never reach the hub (1,003 of 2,000 measured), with no log line and no counter."""
    a, pw_a = enroll_directly(site.hub.fleet)
    await site.settle()
    n = 2000
    async with site.as_hub() as h:
        await h.subscribe("estran/v1/gw/+/data", qos=1)
        gateway = aiomqtt.Client(
            "127.0.0.1",
            site.port,
            identifier=f"estran-gw-{a}",
            username=a,
            password=pw_a,
            max_inflight_messages=20,
        )
        async with gateway:
            slots = asyncio.Semaphore(20)

            async def send(i: int) -> None:
                async with slots:
                    body = str(i).encode().ljust(2048, b".")
                    await gateway.publish(wire.topic(a, "data"), body, qos=1, timeout=60)

            async with asyncio.TaskGroup() as tg:
                for i in range(n):
                    tg.create_task(send(i))
        got: set[bytes] = set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                async for m in h.messages:
                    assert isinstance(m.payload, bytes)
                    got.add(m.payload)
                    if len(got) == n:
                        break
        assert len(got) == n
    if site.broker is not None:
        assert not site.broker.stats.dropped


def test_the_embedded_broker_listens_on_loopback_by_default() -> None:
    """Regression: it listened on 0.0.0.0:1883 while the HTTP API defaulted to localhost;
    serving a network is an explicit `--mqtt-listen`."""
    from click.testing import CliRunner

    from hub._service import HubConfig
    from hub.cli import hub as hub_cli

    assert HubConfig().mqtt_listen == "127.0.0.1:1883"
    assert EmbeddedBroker().host == "127.0.0.1"
    text = CliRunner().invoke(hub_cli, ["run", "--help"], terminal_width=200).output
    assert "[default: 127.0.0.1:1883]" in " ".join(text.split())

"""The gateway's MQTT tasks stop within a bounded time whatever the broker does (issue 9: a
fleet agent waited for the embedded broker to confirm its disconnect past a 25 s teardown).
The broker here answers CONNECT, SUBSCRIBE and QoS 1 PUBLISH as any broker does, then
ignores DISCONNECT and never closes the connection: the client must close it itself, within
DISCONNECT_WAIT_S."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt

from edge.config_apply import ConfigApplier
from edge.config_apply._agent import FleetAgent
from edge.identity import GatewayState
from edge.tests.support.uplink import MemoryLog, config, read_packet
from edge.uplink import DISCONNECT_WAIT_S, Uplink, close_client
from protocols import wire

BOUND_S = DISCONNECT_WAIT_S + 4.0  # the wait, a death state (2 s at most), some scheduling


class DeafBroker:
    """Speaks enough MQTT 3.1.1; hears DISCONNECT and does nothing about it."""

    def __init__(self, push: tuple[str, bytes] | None = None) -> None:
        self.push = push  # a message sent to the client once it subscribed
        self.connected = 0
        self.disconnects = 0
        self.closed_by_client = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connected += 1
        try:
            while True:
                head, body = await read_packet(reader)
                kind = head >> 4
                if kind == 1:  # CONNECT
                    writer.write(b"\x20\x02\x00\x00")
                elif kind == 8:  # SUBSCRIBE
                    n = 0
                    pos = 2
                    while pos < len(body):
                        pos += 2 + int.from_bytes(body[pos : pos + 2], "big") + 1
                        n += 1
                    writer.write(bytes([0x90, 2 + n]) + body[:2] + b"\x01" * n)
                    if self.push is not None:
                        topic, payload = self.push
                        name = len(topic).to_bytes(2, "big") + topic.encode()
                        size = len(name) + len(payload)
                        assert size < 128
                        writer.write(bytes([0x30, size]) + name + payload)  # QoS 0
                elif kind == 3 and (head >> 1) & 3:  # PUBLISH, QoS 1 or 2
                    pos = 2 + int.from_bytes(body[:2], "big")
                    writer.write(b"\x40\x02" + body[pos : pos + 2])
                elif kind == 12:  # PINGREQ
                    writer.write(b"\xd0\x00")
                elif kind == 14:  # DISCONNECT: heard, and ignored
                    self.disconnects += 1
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed_by_client += 1  # the client closed the connection
        finally:
            writer.close()

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)


@contextlib.asynccontextmanager
async def deaf_broker(push: tuple[str, bytes] | None = None) -> AsyncIterator[DeafBroker]:
    broker = DeafBroker(push)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.close()


async def stop(task: asyncio.Task[None]) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, BOUND_S)  # TimeoutError: it did not stop in time
    return loop.time() - started


async def until(predicate: object, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not (callable(predicate) and predicate()):
            await asyncio.sleep(0.02)


async def test_the_fleet_agent_stops_when_the_broker_ignores_its_disconnect(
    tmp_path: Path,
) -> None:
    async with deaf_broker() as broker:
        with GatewayState(tmp_path) as state:
            applier = ConfigApplier(state, None, "gw-1")  # type: ignore[arg-type]
            agent = FleetAgent(applier, "127.0.0.1", broker.port, "gw-1", "secret")
            task = asyncio.create_task(agent.run(), name="fleet-agent")
            await asyncio.wait_for(agent.connected.wait(), 10)
            took = await stop(task)
        assert task.done() and broker.disconnects == 1
        await until(lambda: broker.closed_by_client == 1, 2)  # its socket, closed by it
        assert took < BOUND_S


async def test_the_uplink_stops_when_the_broker_ignores_its_disconnect(tmp_path: Path) -> None:
    async with deaf_broker() as broker:
        uplink = Uplink(MemoryLog(), config(tmp_path, broker.port))
        task = asyncio.create_task(uplink.run(), name="uplink")
        await asyncio.wait_for(uplink.connected.wait(), 10)
        took = await stop(task)
        assert task.done() and broker.disconnects == 1
        await until(lambda: broker.closed_by_client == 1, 2)
        assert took < BOUND_S


class SwallowingApplier:
    """An applier whose work swallows one cancel, as `asyncio.wait_for` does in Python 3.11
    when the awaited result and the cancel arrive together (the task still counts it)."""

    gateway_id = "gw-1"

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def apply_pending(self) -> None:
        return None

    async def handle_config(self, payload: bytes) -> None:
        self.started.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(30)
        return None


async def test_the_fleet_agent_honours_a_cancel_its_work_swallowed() -> None:
    push = (wire.topic("gw-1", "config"), b"\x83\x01\x05\xf6")
    async with deaf_broker(push) as broker:
        applier = SwallowingApplier()
        agent = FleetAgent(applier, "127.0.0.1", broker.port, "gw-1", "secret")  # type: ignore[arg-type]
        task = asyncio.create_task(agent.run(), name="fleet-agent")
        await asyncio.wait_for(applier.started.wait(), 10)
        took = await stop(task)
        assert task.done() and took < BOUND_S


class SwallowingClient:
    """A client whose publish swallows one cancel, as aiomqtt's `asyncio.wait_for` does in
    Python 3.11 when the PUBACK and the cancel arrive together."""

    def __init__(self) -> None:
        self.publishing = asyncio.Event()
        self.published = 0

    async def publish(self, *args: object, **kwargs: object) -> None:
        self.publishing.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(30)
        self.published += 1


async def test_the_uplink_state_loop_honours_a_cancel_its_publish_swallowed(
    tmp_path: Path,
) -> None:
    """When a connection is lost the uplink's session TaskGroup cancels its tasks once; a
    state loop that ran on after its publish swallowed that cancel kept the session from
    ending, and the uplink from ever reconnecting."""
    uplink = Uplink(MemoryLog(), config(tmp_path, 1883, state_interval_s=3600.0))
    client = SwallowingClient()
    uplink.state_changed()  # a state is due now
    task = asyncio.create_task(uplink._state_loop(client))  # type: ignore[arg-type]
    await asyncio.wait_for(client.publishing.wait(), 10)
    task.cancel()  # once, as a TaskGroup does
    done, _ = await asyncio.wait({task}, timeout=5)
    assert done, "the state loop ran on after its cancel"
    assert task.cancelled() and client.published == 1


async def test_a_cancel_during_the_bounded_close_closes_the_socket_at_once() -> None:
    """`close_client` waits with `asyncio.wait` (as the hub's `disconnect`): a cancel of the
    closing task is never swallowed, and the socket is closed on the way out. The broker
    here stops reading after CONNACK, so the DISCONNECT cannot even be written."""
    stopped_reading = asyncio.Event()
    done = asyncio.Event()

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.readexactly(2)  # CONNECT: type, then a 1-byte length here
        await reader.readexactly(first[1])
        writer.write(b"\x20\x02\x00\x00")
        await writer.drain()
        stopped_reading.set()
        await done.wait()
        writer.transport.abort()

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = aiomqtt.Client(
            "127.0.0.1", port, identifier="gw-close", protocol=aiomqtt.ProtocolVersion.V311
        )
        await client.__aenter__()
        await asyncio.wait_for(stopped_reading.wait(), 10)
        for _ in range(8):  # fill the socket: nothing is read on the other side
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await client.publish("estran/x", b"x" * (1 << 20), qos=0, timeout=0.2)
        closing = asyncio.create_task(close_client(client, None, wait_s=60.0))
        await asyncio.sleep(0.5)
        assert not closing.done()  # waiting for a DISCONNECT that cannot go out
        loop = asyncio.get_running_loop()
        started = loop.time()
        closing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(closing, 5)
        assert closing.cancelled(), "the cancel was swallowed"
        assert loop.time() - started < 5
        assert client._client.socket() is None  # closed on the way out
    finally:
        done.set()
        server.close()
        await asyncio.sleep(0)

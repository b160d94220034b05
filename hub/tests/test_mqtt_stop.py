"""The hub's MQTT clients stop when asked, whatever the broker does: a broker that stops
reading (the DISCONNECT cannot even be written), a broker frozen mid-session (SIGSTOP).

Regression: the old client waited 5 s for the broker and then left its socket open and its
task in place; a task could also stay 'cancelling' for ever (asyncio.wait_for on Python 3.11
may swallow a cancellation)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt

from hub._mqtt import DISCONNECT_WAIT_S, BrokerAddress, connect
from hub._service import Hub, HubConfig
from hub.tests.brokers import mosquitto
from hub.tests.services import free_port

BOUND_S = DISCONNECT_WAIT_S + 10  # "stops at all", with room for a loaded machine


class DeafBroker:
    """Accepts one MQTT 3.1.1 connection, answers CONNACK, then never reads again."""

    def __init__(self) -> None:
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connected = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = await reader.readexactly(2)  # CONNECT: type, then a 1-byte length here
        await reader.readexactly(first[1])
        writer.write(bytes([0x20, 2, 0, 0]))
        await writer.drain()
        self.reader, self.writer = reader, writer
        self.connected.set()

    async def read_to_end(self, timeout: float) -> bool:
        """True if the client's side of the connection is closed (EOF or reset) in time."""
        assert self.reader is not None
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(1 << 20):
                    pass
            return True
        except ConnectionError:
            return True
        except TimeoutError:
            return False


@contextlib.asynccontextmanager
async def deaf_broker() -> AsyncIterator[tuple[DeafBroker, int]]:
    deaf = DeafBroker()
    server = await asyncio.start_server(deaf.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield deaf, port
    finally:
        if deaf.writer is not None:
            deaf.writer.transport.abort()
        server.close()


async def test_a_client_stops_and_closes_when_the_broker_stops_reading() -> None:
    async with deaf_broker() as (deaf, port):
        started = time.monotonic()
        async with connect(BrokerAddress("127.0.0.1", port), "estran-hub-t", prefer_v5=False) as (
            client,
            _v5,
        ):
            sock = client._client.socket()  # paho's socket (aiomqtt keeps paho private)
            assert sock is not None
            # fill the socket: the broker reads nothing, so the DISCONNECT cannot go out
            for _ in range(8):
                with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                    await client.publish("estran/x", b"x" * (1 << 20), qos=0, timeout=0.2)
            started = time.monotonic()
        stopped = time.monotonic() - started
        assert stopped < BOUND_S
        assert sock.fileno() == -1, "the client left its socket open"
        assert await deaf.read_to_end(10)


async def test_a_cancelled_client_task_stops_when_the_broker_stops_reading() -> None:
    async with deaf_broker() as (deaf, port):
        filled = asyncio.Event()

        async def client_task() -> None:
            address = BrokerAddress("127.0.0.1", port)
            async with connect(address, "estran-hub-t", prefer_v5=False) as (client, _v5):
                for _ in range(8):
                    with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                        await client.publish("estran/x", b"x" * (1 << 20), qos=0, timeout=0.2)
                filled.set()
                await asyncio.sleep(3600)

        task = asyncio.create_task(client_task())
        await asyncio.wait_for(filled.wait(), 30)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=BOUND_S)
        assert done, "the client task did not stop"
        assert await deaf.read_to_end(10), "the client left its socket open"


async def test_the_hub_stops_when_its_broker_is_frozen(tmp_path: Path) -> None:
    """Mosquitto stopped with SIGSTOP under a running hub (ingest and fleet clients)."""
    mqtt_port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\n")
    async with mosquitto(conf, mqtt_port) as pid:
        hub = Hub(
            HubConfig(
                data_dir=tmp_path / "hub",
                broker=f"mqtt://127.0.0.1:{mqtt_port}",
                http=f"127.0.0.1:{free_port()}",
            )
        )
        task = asyncio.create_task(hub.run(), name="hub")
        try:
            await asyncio.wait_for(hub.ready.wait(), 20)
            os.kill(pid, signal.SIGSTOP)
            await asyncio.sleep(0.5)
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=BOUND_S)
            assert done, "the hub did not stop"
        finally:
            os.kill(pid, signal.SIGCONT)
            if not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=10)

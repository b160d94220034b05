"""How a swarm process holds thousands of MQTT connections on one loop (estran.rig.swarm):
handshakes a few at a time, each one's connect timeout starting when its turn comes; the
connections' housekeeping spaced out, their keepalive pings still in time."""

from __future__ import annotations

import asyncio
import contextlib

import aiomqtt

from edge.uplink._close import drop_socket  # not re-exported by edge.uplink
from estran.rig.swarm._worker import gate_connects, space_housekeeping


async def test_handshakes_wait_their_turn_and_all_connect() -> None:
    waiting = 0  # CONNECTs not yet answered
    most = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal waiting, most
        try:
            await reader.readexactly(2)  # the CONNECT's first bytes: a handshake begun
            waiting += 1
            most = max(most, waiting)
            await asyncio.sleep(0.2)  # a broker that takes its time
            waiting -= 1
            writer.write(b"\x20\x02\x00\x00")  # CONNACK, accepted
            await writer.drain()
            await reader.read()  # until the client goes
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    ungate = gate_connects(2)
    clients = [
        aiomqtt.Client("127.0.0.1", port, identifier=f"gw-{i}", timeout=0.5) for i in range(6)
    ]
    try:
        # 6 handshakes of 0.2 s, two at a time: 0.6 s, each within its own 0.5 s timeout
        await asyncio.wait_for(asyncio.gather(*(c.__aenter__() for c in clients)), 10)
        assert most == 2
    finally:
        ungate()
        for c in clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.__aexit__(None, None, None), 2)
        server.close()


async def test_without_the_gate_they_all_start_at_once() -> None:
    started = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal started
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await reader.readexactly(2)
            started += 1
            await reader.read()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clients = [
        aiomqtt.Client("127.0.0.1", port, identifier=f"gw-{i}", timeout=1.0) for i in range(6)
    ]
    try:
        results = await asyncio.gather(*(c.__aenter__() for c in clients), return_exceptions=True)
        assert all(isinstance(r, aiomqtt.MqttError) for r in results)  # no CONNACK: timed out
        assert started == 6
    finally:
        for c in clients:
            drop_socket(c)
        server.close()


async def test_spaced_housekeeping_still_pings_within_the_keepalive() -> None:
    pings = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal pings
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head, size = await reader.readexactly(2)  # every packet here is under 128 B
                await reader.readexactly(size)
                if head >> 4 == 1:  # CONNECT: CONNACK
                    writer.write(b"\x20\x02\x00\x00")
                elif head >> 4 == 12:  # PINGREQ
                    pings += 1
                    writer.write(b"\xd0\x00")
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    undo = space_housekeeping(0.4)
    client = aiomqtt.Client("127.0.0.1", port, identifier="gw-1", keepalive=1, timeout=2)
    try:
        await client.__aenter__()
        await asyncio.sleep(3.0)
        assert pings >= 2  # a ping within each keepalive (plus the period), the session kept
    finally:
        undo()
        drop_socket(client)
        server.close()

"""A TCP link between a client and its server that the rig can count, cut, stall, slow down
and make repeat itself: the network between a gateway and its broker, in one process.

    async with LinkProxy(broker_port, mqtt=True) as link:   # the gateway dials link.port
        link.cut()          # live connections reset, new ones reset at once
        link.blackhole()    # nothing flows, connections stay open: a silent partition
        link.restore()      # back to normal (a stalled stream resumes where it was)
        link.delay_s = 0.2  # every byte arrives 200 ms later (order kept)
        link.duplicate = 0.1  # (mqtt=True) one PUBLISH in ten arrives twice, DUP flag set

TCP does not lose or repeat bytes: what a lossy network does to a TCP connection is stall it
(`blackhole`) or break it (`cut`), and what a lossy path does to MQTT is a resent PUBLISH —
`duplicate` sends the same packet again with its DUP flag, as a client retrying after a lost
PUBACK does. Packet loss below TCP is `tc netem` in a network namespace (see NetemLink).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import time
from types import TracebackType
from typing import Self

from estran.rig._errors import RigError
from estran.rig._ports import LOOPBACK

CONNECT_S = 5.0
DRAIN_S = 60.0
QUEUE_CHUNKS = 256  # bounded: a stalled reader holds at most this many chunks per direction


class LinkState(enum.Enum):
    UP = "up"
    CUT = "cut"
    BLACKHOLE = "blackhole"


class _MqttFramer:
    """Splits a byte stream into whole MQTT packets (fixed header + remaining length)."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        packets: list[bytes] = []
        while True:
            size = _packet_size(self.buffer)
            if size is None or size > len(self.buffer):
                return packets
            packets.append(bytes(self.buffer[:size]))
            del self.buffer[:size]


def _packet_size(buf: bytearray) -> int | None:
    """The whole packet's length when its header is complete, else None."""
    length, shift = 0, 0
    for i in range(1, min(len(buf), 5)):
        byte = buf[i]
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return 1 + i + length
        shift += 7
    if len(buf) >= 5:
        raise RigError("not MQTT: a remaining length longer than 4 bytes")
    return None


def _is_publish(packet: bytes) -> bool:
    return packet[0] >> 4 == 3


class LinkProxy:
    """127.0.0.1:port -> upstream_host:upstream_port, with the faults above. Counts bytes each
    way (MQTT framing included), connections accepted, packets duplicated."""

    def __init__(
        self,
        upstream_port: int,
        *,
        upstream_host: str = LOOPBACK,
        port: int = 0,
        mqtt: bool = False,
        seed: int = 0,
    ) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.port = port
        self.mqtt = mqtt
        self.delay_s = 0.0
        self.duplicate = 0.0
        self.bytes_up = 0
        self.bytes_down = 0
        self.connections = 0
        self.duplicated = 0
        self._random = random.Random(seed)
        self._state = LinkState.UP
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def total_bytes(self) -> int:
        """Every byte of every connection, both ways."""
        return self.bytes_up + self.bytes_down

    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def open_connections(self) -> int:
        return len(self._tasks)

    # -- faults ---------------------------------------------------------------------------

    def cut(self) -> None:
        """Reset every live connection; reset new ones at once, until `restore`."""
        self._state = LinkState.CUT
        self._flowing.clear()
        for writer in list(self._writers):
            writer.transport.abort()

    def blackhole(self) -> None:
        """Stop forwarding; connections stay open and silent (keep-alives time out)."""
        self._state = LinkState.BLACKHOLE
        self._flowing.clear()

    def restore(self) -> None:
        self._state = LinkState.UP
        self._flowing.set()

    # -- lifetime ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, LOOPBACK, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- forwarding -------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self._state is LinkState.CUT:
            writer.transport.abort()
            return
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        up_writer: asyncio.StreamWriter | None = None
        try:
            up_reader, upstream = await asyncio.wait_for(
                asyncio.open_connection(self.upstream_host, self.upstream_port), CONNECT_S
            )
            up_writer = upstream
            self._writers.add(upstream)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._direction(reader, upstream, up=True), name="link-up")
                tg.create_task(self._direction(up_reader, writer, up=False), name="link-down")
        except* (OSError, ConnectionError, TimeoutError, RigError):
            pass
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    w.transport.abort()
                    self._writers.discard(w)
            self._tasks.discard(task)

    async def _direction(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, up: bool
    ) -> None:
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(QUEUE_CHUNKS)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._read(reader, queue, up=up), name="link-read")
            tg.create_task(self._write(writer, queue), name="link-write")

    async def _read(
        self,
        reader: asyncio.StreamReader,
        queue: asyncio.Queue[tuple[float, bytes] | None],
        *,
        up: bool,
    ) -> None:
        framer = _MqttFramer() if self.mqtt else None
        while True:
            await self._flowing.wait()
            data = await reader.read(65536)
            if not data:
                await queue.put(None)
                return
            if self._state is LinkState.CUT:
                raise ConnectionResetError("the link was cut")
            if up:
                self.bytes_up += len(data)
            else:
                self.bytes_down += len(data)
            due = time.monotonic() + self.delay_s
            if framer is None:
                await queue.put((due, data))
                continue
            for packet in framer.feed(data):
                await queue.put((due, packet))
                if _is_publish(packet) and self._random.random() < self.duplicate:
                    self.duplicated += 1
                    dup = 0x08 if packet[0] & 0x06 else 0  # DUP only exists for QoS 1 and 2
                    await queue.put((due, bytes([packet[0] | dup]) + packet[1:]))

    async def _write(
        self, writer: asyncio.StreamWriter, queue: asyncio.Queue[tuple[float, bytes] | None]
    ) -> None:
        while (item := await queue.get()) is not None:
            due, data = item
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            await self._flowing.wait()
            writer.write(data)
            await asyncio.wait_for(writer.drain(), DRAIN_S)
        with contextlib.suppress(OSError):
            writer.write_eof()


__all__ = ["LinkProxy", "LinkState"]

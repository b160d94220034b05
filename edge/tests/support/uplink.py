"""Helpers of the uplink tests (no tests here): an in-memory log with SegmentLog's uplink side,
an amqtt broker, a scripted hub, readings and settings."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
from amqtt.broker import Broker

from edge.uplink import UplinkConfig
from estran.rig import free_port
from protocols import wire
from protocols.block import decode_block, encode_block
from protocols.reading import FLAG_ALARM, Reading

T0 = 1_764_547_200_000


@dataclass(frozen=True)
class Block:
    first_seq: int
    last_seq: int
    count: int
    payload: bytes
    has_alarm: bool


@dataclass
class Stats:
    depth: int
    dropped_total: int = 0


class MemoryLog:
    """SegmentLog's interface over a list of blocks. The test commits, as the daemon's buffer
    writer does: the uplink only reads and acknowledges (edge.buffer.BlockLog)."""

    def __init__(self, block_size: int = 100) -> None:
        self.block_size = block_size
        self.blocks: list[Block] = []
        self.pending: list[Reading] = []
        self.next_seq = 1
        self.acked: set[int] = set()  # seqs
        self.ack_calls = 0
        self.commits = 0

    def append_many(self, readings: Iterable[Reading]) -> None:
        for r in readings:
            self.pending.append(r)
            if len(self.pending) >= self.block_size:
                self.commit()

    def commit(self) -> int:
        self.commits += 1
        if self.pending:
            first = self.next_seq
            payload = encode_block(first, self.pending)
            n = len(self.pending)
            alarm = any(r.flags & FLAG_ALARM for r in self.pending)
            self.blocks.append(Block(first, first + n - 1, n, payload, alarm))
            self.next_seq += n
            self.pending = []
        return self.next_seq - 1

    @property
    def durable_seq(self) -> int:
        return self.next_seq - 1

    def read_blocks(
        self,
        after_seq: int,
        max_readings: int,
        *,
        alarms_first: bool = True,
        skip: Collection[int] = (),
    ) -> list[Block]:
        """As SegmentLog: unacknowledged alarm blocks first (wherever they are), then the
        blocks after after_seq in order; `skip` leaves blocks out by first_seq."""
        todo = [b for b in self.blocks if b.first_seq not in self.acked and b.first_seq not in skip]
        if alarms_first:
            todo = [b for b in todo if b.has_alarm] + [
                b for b in todo if not b.has_alarm and b.first_seq > after_seq
            ]
        else:
            todo = [b for b in todo if b.first_seq > after_seq]
        out: list[Block] = []
        total = 0
        for b in todo:
            if out and total + b.count > max_readings:
                break
            out.append(b)
            total += b.count
        return out

    def ack(self, ranges: Iterable[tuple[int, int]]) -> None:
        self.ack_calls += 1
        for first, last in ranges:
            self.acked.update(range(first, last + 1))

    def stats(self) -> Stats:
        return Stats(depth=self.next_seq - 1 - len(self.acked))

    def all_acked(self) -> bool:
        return len(self.acked) == self.next_seq - 1


@contextlib.asynccontextmanager
async def amqtt_broker() -> AsyncIterator[int]:
    """An amqtt broker (MQTT 3.1.1) on a free port; yields the port."""
    port = free_port()
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    try:
        yield port
    finally:
        await broker.shutdown()


@dataclass
class FakeHub:
    """Receives batches, decodes them, and answers as `policy` says."""

    port: int
    policy: Callable[[wire.DataBatch], str | None] = lambda batch: "ack"
    batches: list[wire.DataBatch] = field(default_factory=list)
    stored: dict[int, Reading] = field(default_factory=dict)
    states: list[wire.State] = field(default_factory=list)
    received: list[int] = field(default_factory=list)  # seqs, with repeats

    async def run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self.port, identifier="fake-hub") as client:
            await client.subscribe(
                [(wire.subscription("data"), 1), (wire.subscription("state"), 1)]
            )
            self.ready.set()
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                gateway, kind = wire.parse_topic(message.topic.value)
                if kind == "state":
                    self.states.append(wire.decode_state(message.payload))
                    continue
                batch = wire.decode_data(message.payload)
                self.batches.append(batch)
                action = self.policy(batch)
                ranges = []
                for b in batch.blocks:
                    first, readings = decode_block(b)
                    ranges.append((first, first + len(readings) - 1))
                    if action == "ack":
                        for i, r in enumerate(readings):
                            self.stored[first + i] = r
                            self.received.append(first + i)
                if action == "ack":
                    ack = wire.Ack(batch.session, batch.batch, wire.merge_ranges(ranges))
                elif action is None:
                    continue
                else:
                    ack = wire.Ack(
                        batch.session,
                        batch.batch,
                        [(batch.first_seq, batch.last_seq)],
                        rejected=action,
                    )
                await client.publish(wire.topic(gateway, "ack"), wire.encode_ack(ack), qos=1)

    def __post_init__(self) -> None:
        self.ready = asyncio.Event()


@contextlib.asynccontextmanager
async def running(*coros_and_names: tuple[object, str]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(c, name=n) for c, n in coros_and_names]  # type: ignore[arg-type]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(t, 10)


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), timeout)


def seqs(batches: Iterable[wire.DataBatch]) -> set[int]:
    """The sequence numbers the batches carried (a resent one counts once)."""
    out: set[int] = set()
    for batch in batches:
        for block in batch.blocks:
            first, got = decode_block(block)
            out.update(range(first, first + len(got)))
    return out


def readings(n: int, start: int = 0, flags: int = 0) -> list[Reading]:
    return [
        Reading(
            f"soil-{(start + i) % 5:03d}",
            "moisture",
            "%RH",
            round(20 + (i % 50) * 0.1, 1),
            T0 + 1000 * (start + i),
            flags,
        )
        for i in range(n)
    ]


def config(tmp_path: Path, port: int, **kw: object) -> UplinkConfig:
    settings: dict[str, object] = {
        "poll_interval_s": 0.02,
        "ack_flush_interval_s": 0.05,
        # the uplink's former own defaults (the file's are 2,000/s, 8,192, 60 s)
        "backlog_rate": 200_000.0,
        "backlog_burst": 65536,
        "state_interval_s": 30.0,
        "batch_initial": 300,
        "batch_min": 100,
        "ack_timeout_min_s": 0.5,
        "reconnect_min_s": 0.05,
        "protocol": "3.1.1",  # the auto probe is tested once: it costs a 3 s timeout on amqtt
    }
    settings.update(kw)
    return UplinkConfig("gw-1", f"mqtt://127.0.0.1:{port}", tmp_path, **settings)  # type: ignore[arg-type]


async def read_packet(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One MQTT control packet off the wire, for the scripted brokers of the tests: (its
    first byte, its body after the variable-length remaining length)."""
    head = (await reader.readexactly(1))[0]
    length, shift = 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return head, await reader.readexactly(length)

"""Reconnects of the uplink and the fleet link spread out: a jittered exponential backoff that
starts again from its minimum only after a connection that held.

A fleet that loses its broker (a restart, a loaded broker dropping sessions) comes back all
at once: if each gateway retried on a fixed schedule, or went back to its shortest delay
after an attempt that failed slowly or a session that dropped at once, the storm of
reconnections would repeat itself instead of thinning out (seen with 10,000 simulated
gateways on one Mosquitto: docs/benchmarks.md, fleet scale).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.config_apply import ConfigApplier
from edge.config_apply import _agent as agent_module
from edge.config_apply._agent import FleetAgent
from edge.identity import GatewayState
from edge.tests.support.uplink import MemoryLog, config, read_packet, until
from edge.uplink import Backoff, Uplink
from edge.uplink import _uplink as uplink_module


class RecordingBackoff(Backoff):
    def __init__(self, minimum: float = 0.02, maximum: float = 0.16) -> None:
        super().__init__(minimum, maximum, random.Random(7))
        self.delays: list[float] = []
        self.resets = 0

    def next(self) -> float:
        delay = super().next()
        self.delays.append(delay)
        return delay

    def reset(self) -> None:
        self.resets += 1
        super().reset()


class Broker:
    """MQTT 3.1.1, just enough: `hold` None refuses every CONNECT (server
    unavailable: a broker refusing the storm); else it answers CONNECT, SUBSCRIBE and QoS 1
    PUBLISH, and closes the connection after `hold` seconds (a session that dropped)."""

    def __init__(self, hold: float | None, *, silent: bool = False) -> None:
        self.hold = hold
        self.silent = silent  # never answers a CONNECT (a broker too loaded to)
        self.accepted = 0
        self.open = 0  # connections the client has not closed
        self.port = 0
        self.server: asyncio.Server | None = None

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head, body = await read_packet(reader)
            kind = head >> 4
            if kind == 1:  # CONNECT
                writer.write(b"\x20\x02\x00\x00")
            elif kind == 8:  # SUBSCRIBE: granted QoS 1 for each filter
                n, pos = 0, 2
                while pos < len(body):
                    pos += 2 + int.from_bytes(body[pos : pos + 2], "big") + 1
                    n += 1
                writer.write(bytes([0x90, 2 + n]) + body[:2] + b"\x01" * n)
            elif kind == 3 and (head >> 1) & 3:  # PUBLISH QoS 1: PUBACK
                pos = 2 + int.from_bytes(body[:2], "big")
                writer.write(b"\x40\x02" + body[pos : pos + 2])
            elif kind == 12:  # PINGREQ
                writer.write(b"\xd0\x00")
            await writer.drain()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        try:
            if self.silent:
                while await reader.read(1024):
                    pass  # until the client closes the connection
            elif self.hold is None:
                await read_packet(reader)
                writer.write(b"\x20\x02\x00\x03")  # CONNACK: server unavailable
                await writer.drain()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._answer(reader, writer), self.hold)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Broker]:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            self.server.close()


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def fleet_agent(
    tmp_path: Path, broker: Broker, backoff: RecordingBackoff
) -> AsyncIterator[FleetAgent]:
    """A gateway's fleet link to `broker`, running with `backoff`; stopped on exit."""
    with GatewayState(tmp_path) as state:
        applier = ConfigApplier(state, None, "gw-1")  # type: ignore[arg-type]
        agent = FleetAgent(applier, "127.0.0.1", broker.port, "gw-1", "pw", backoff=backoff)
        task = asyncio.create_task(agent.run(), name="fleet-agent")
        try:
            yield agent
        finally:
            await _stop(task)


def _within_bases(delays: list[float], minimum: float, maximum: float) -> bool:
    bases = [min(minimum * 2**i, maximum) for i in range(len(delays))]
    return all(b / 2 <= d <= b for d, b in zip(delays, bases, strict=True))


async def test_the_fleet_link_backs_off_with_jitter_while_the_broker_drops_it(
    tmp_path: Path,
) -> None:
    backoff = RecordingBackoff()
    async with Broker(hold=None).running() as broker, fleet_agent(tmp_path, broker, backoff):
        await until(lambda: len(backoff.delays) >= 6, 20)
    assert broker.accepted >= 6
    assert backoff.resets == 0  # nothing held: the delays only grow
    assert _within_bases(backoff.delays[:6], 0.02, 0.16)
    assert len(set(backoff.delays)) == len(backoff.delays)  # jittered, not in step


async def test_the_fleet_link_backs_off_from_the_start_only_after_a_connection_that_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_module, "HELD_S", 0.3)
    backoff = RecordingBackoff()
    broker = Broker(hold=0.05)  # sessions that drop at once
    async with broker.running(), fleet_agent(tmp_path, broker, backoff):
        await until(lambda: len(backoff.delays) >= 4, 20)
        assert backoff.resets == 0  # connected, but did not hold: no fresh start
        assert _within_bases(backoff.delays[:4], 0.02, 0.16)
        broker.hold = 1.0  # now they hold
        await until(lambda: backoff.resets >= 1, 20)


async def test_uplink_attempts_that_fail_slowly_do_not_reset_its_backoff(tmp_path: Path) -> None:
    """Each attempt seen as taking 40 s (a loaded broker): the delays still grow."""
    ticks = itertools.count()
    backoff = RecordingBackoff()
    async with Broker(hold=None).running() as broker:
        uplink = Uplink(
            MemoryLog(),
            config(tmp_path, broker.port, reconnect_min_s=0.02, reconnect_max_s=0.16),
            clock=lambda: 40.0 * next(ticks),
        )
        uplink._backoff = backoff
        task = asyncio.create_task(uplink.run(), name="uplink")
        try:
            await until(lambda: len(backoff.delays) >= 5, 20)
        finally:
            await _stop(task)
    assert backoff.resets == 0
    assert _within_bases(backoff.delays[:5], 0.02, 0.16)


async def test_uplink_backoff_starts_again_after_a_session_that_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uplink_module, "HELD_S", 0.3)
    backoff = RecordingBackoff()
    async with Broker(hold=0.05).running() as broker:
        uplink = Uplink(
            MemoryLog(),
            config(tmp_path, broker.port, reconnect_min_s=0.02, reconnect_max_s=0.16),
        )
        uplink._backoff = backoff
        task = asyncio.create_task(uplink.run(), name="uplink")
        try:
            await until(lambda: len(backoff.delays) >= 3, 20)
            assert backoff.resets == 0  # up, but dropped at once
            broker.hold = 1.0
            await until(lambda: backoff.resets >= 1, 20)
        finally:
            await _stop(task)


async def test_uplink_closes_the_connection_of_an_attempt_that_timed_out(tmp_path: Path) -> None:
    """No CONNACK within the connect timeout: the attempt's socket is closed, not left open
    (a descriptor each, and a late CONNACK would make it a session with our Will)."""
    backoff = RecordingBackoff(0.02, 0.04)
    async with Broker(hold=None, silent=True).running() as broker:
        uplink = Uplink(MemoryLog(), config(tmp_path, broker.port, connect_timeout_s=0.2))
        uplink._backoff = backoff
        task = asyncio.create_task(uplink.run(), name="uplink")
        try:
            await until(lambda: broker.accepted >= 4, 20)
            await until(lambda: broker.open <= 1, 5)  # the one trying now, at most
        finally:
            await _stop(task)
    assert uplink.stats.last_error == "Operation timed out"

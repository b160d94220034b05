"""`Uplink.drain_now()` (the fleet's `flush` command): the backlog goes out at once, without
the token bucket of `backlog_rate`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.tests.support.uplink import (
    FakeHub,
    MemoryLog,
    amqtt_broker,
    config,
    readings,
    running,
    until,
)
from edge.uplink import Uplink


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async with amqtt_broker() as p:
        yield p


async def test_drain_now_sends_a_throttled_backlog_at_once(tmp_path: Path, port: int) -> None:
    log = MemoryLog()
    log.append_many(readings(5000))
    log.commit()
    hub = FakeHub(port)
    uplink = Uplink(log, config(tmp_path, port, backlog_rate=200, backlog_burst=200))
    async with running((hub.run(), "hub")):
        await asyncio.wait_for(hub.ready.wait(), 10)
        async with running((uplink.run(), "uplink")):
            await asyncio.wait_for(uplink.connected.wait(), 10)
            await asyncio.sleep(0.3)
            assert len(hub.stored) < 1000  # held back: 200 readings a second
            uplink.drain_now()
            await until(lambda: log.all_acked(), timeout=5)  # 25 s at the paced rate
            assert len(hub.stored) == 5000
            assert not uplink._unpaced  # the drain is over: the bucket is back

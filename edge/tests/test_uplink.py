"""The uplink against a scripted hub over a real MQTT broker (amqtt, MQTT 3.1.1).

The buffer is an in-memory stand-in with SegmentLog's interface, so these tests pin the
uplink's behaviour: whole blocks, acks by ranges, resends, rejections, live vs backlog.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin

from edge.tests.support.uplink import (
    FakeHub,
    MemoryLog,
    amqtt_broker,
    config,
    readings,
    running,
    seqs,
    until,
)
from edge.uplink import Uplink, UplinkStats
from estran.rig import free_port
from protocols import wire
from protocols.block import decode_block
from protocols.reading import FLAG_ALARM, FLAG_HISTORICAL


@pytest.fixture
async def broker_port() -> AsyncIterator[int]:
    async with amqtt_broker() as port:
        yield port


async def test_drains_backlog_then_live_with_birth_and_flags(
    tmp_path: Path, broker_port: int
) -> None:
    log = MemoryLog()
    backlog = readings(3000)
    log.append_many(backlog)
    log.commit()
    hub = FakeHub(broker_port)
    uplink = Uplink(log, config(tmp_path, broker_port, protocol="auto"))
    async with running((hub.run(), "hub")):
        await asyncio.wait_for(hub.ready.wait(), 10)
        async with running((uplink.run(), "uplink")):
            await until(lambda: log.all_acked())
            assert uplink.stats.mqtt5 is False  # amqtt speaks 3.1.1: the fallback worked
            live = readings(50, start=5000)
            log.append_many(live)
            log.commit()
            await until(lambda: log.all_acked() and len(hub.stored) == 3050)
    assert [hub.stored[s] for s in range(1, 3001)] == backlog
    assert [hub.stored[s] for s in range(3001, 3051)] == live
    historical = [b for b in hub.batches if b.historical]
    live_batches = [b for b in hub.batches if not b.historical]
    # by sequence number: a batch resent after an ack timeout (a loaded machine) counts once
    assert seqs(historical) == set(range(1, 3001))
    assert seqs(live_batches) == set(range(3001, 3051))
    assert all(len(b.blocks) >= 1 for b in hub.batches)
    births = [s for s in hub.states if s.online]
    assert births and births[0].session == uplink.stats.session and births[0].backlog == 3000
    assert uplink.stats.acked_readings == 3050 and uplink.stats.wire_bytes > 0
    assert not any(r.flags & FLAG_HISTORICAL for r in hub.stored.values())  # the hub adds it


async def test_live_readings_are_not_starved_by_a_throttled_backlog(
    tmp_path: Path, broker_port: int
) -> None:
    log = MemoryLog()
    log.append_many(readings(5000))
    log.commit()
    hub = FakeHub(broker_port)
    uplink = Uplink(log, config(tmp_path, broker_port, backlog_rate=500, backlog_burst=200))
    async with running((hub.run(), "hub")):
        await asyncio.wait_for(hub.ready.wait(), 10)
        async with running((uplink.run(), "uplink")):
            await asyncio.wait_for(uplink.connected.wait(), 10)
            await asyncio.sleep(0.3)
            log.append_many(readings(10, start=9000))
            log.commit()
            await until(lambda: all(s in hub.stored for s in range(5001, 5011)), timeout=5)
            # the backlog is still far from drained: the bucket holds it back
            assert len([s for s in hub.stored if s <= 5000]) < 2000


async def test_lost_acks_are_resent_and_ranges_acked_once(tmp_path: Path, broker_port: int) -> None:
    log = MemoryLog()
    log.append_many(readings(1000))
    log.commit()
    dropped: set[int] = set()

    def lose_first_two(batch: wire.DataBatch) -> str | None:
        if len(dropped) < 2 and batch.batch not in dropped:
            dropped.add(batch.batch)
            return None  # as if the hub crashed before acking
        return "ack"

    hub = FakeHub(broker_port, policy=lose_first_two)
    uplink = Uplink(log, config(tmp_path, broker_port, ack_timeout_min_s=0.3))
    async with running((hub.run(), "hub")):
        await asyncio.wait_for(hub.ready.wait(), 10)
        async with running((uplink.run(), "uplink")):
            await until(lambda: log.all_acked())
    assert uplink.stats.timeouts >= 2 and uplink.stats.resent_batches >= 2
    assert sorted(hub.stored) == list(range(1, 1001))


async def test_lost_acks_are_resent_at_their_deadline_not_at_the_next_poll(
    tmp_path: Path, broker_port: int
) -> None:
    """The send loop sleeps until the first ack deadline of what is in flight: a long poll
    (an idle gateway wakes rarely) does not delay a resend."""
    log = MemoryLog()
    log.append_many(readings(500))
    log.commit()
    lost: set[int] = set()

    def lose_one(batch: wire.DataBatch) -> str | None:
        if not lost:
            lost.add(batch.batch)
            return None
        return "ack"

    hub = FakeHub(broker_port, policy=lose_one)
    uplink = Uplink(log, config(tmp_path, broker_port, ack_timeout_min_s=0.3, poll_interval_s=60.0))
    async with running((hub.run(), "hub")):
        await asyncio.wait_for(hub.ready.wait(), 10)
        async with running((uplink.run(), "uplink")):
            await until(lambda: log.all_acked(), 10)
    assert uplink.stats.timeouts >= 1 and uplink.stats.resent_batches >= 1
    assert sorted(hub.stored) == list(range(1, 501))


async def test_a_commit_said_wakes_the_uplink_before_its_poll(
    tmp_path: Path, broker_port: int
) -> None:
    """`committed()` (the buffer's writer after a commit): the new blocks go at once; the
    poll (here a minute) is only the fallback, and an idle uplink does not wake for it."""
    log = MemoryLog()
    hub = FakeHub(broker_port)
    uplink = Uplink(log, config(tmp_path, broker_port, poll_interval_s=60.0))
    async with running((hub.run(), "hub")):
        await asyncio.wait_for(hub.ready.wait(), 10)
        async with running((uplink.run(), "uplink")):
            await asyncio.wait_for(uplink.connected.wait(), 10)
            await asyncio.sleep(0.2)
            log.append_many(readings(50))
            log.commit()
            await asyncio.sleep(0.5)
            assert not hub.batches  # not said: waits for the poll
            uplink.committed()
            await until(lambda: log.all_acked(), 5)
    assert sorted(hub.stored) == list(range(1, 51))


async def test_rejected_batch_is_isolated_down_to_the_bad_block(
    tmp_path: Path, broker_port: int
) -> None:
    log = MemoryLog(block_size=100)
    log.append_many(readings(1000))
    log.commit()
    poison = 401  # the block starting at seq 401 is "garbage" for this hub

    def reject_poison(batch: wire.DataBatch) -> str:
        firsts = [decode_block(b)[0] for b in batch.blocks]
        return "malformed: bad block" if poison in firsts else "ack"

    hub = FakeHub(broker_port, policy=reject_poison)
    uplink = Uplink(log, config(tmp_path, broker_port, batch_initial=500))
    async with running((hub.run(), "hub")):
        await asyncio.wait_for(hub.ready.wait(), 10)
        async with running((uplink.run(), "uplink")):
            await until(lambda: log.all_acked())
    assert sorted(hub.stored) == [s for s in range(1, 1001) if not 401 <= s <= 500]
    assert uplink.stats.rejected_readings == 100


async def test_unsupported_batches_are_kept_for_later(tmp_path: Path, broker_port: int) -> None:
    log = MemoryLog()
    log.append_many(readings(200))
    log.commit()
    hub = FakeHub(broker_port, policy=lambda batch: "unsupported: block version 2")
    uplink = Uplink(log, config(tmp_path, broker_port, unsupported_retry_s=60))
    async with running((hub.run(), "hub")):
        await asyncio.wait_for(hub.ready.wait(), 10)
        async with running((uplink.run(), "uplink")):
            await until(lambda: len(hub.batches) >= 1)
            await asyncio.sleep(0.3)
    assert not log.acked and uplink.stats.rejected_readings == 0


async def test_alarms_jump_the_backlog_queue(tmp_path: Path, broker_port: int) -> None:
    log = MemoryLog(block_size=100)
    log.append_many(readings(2000))
    log.append_many(readings(100, start=2000, flags=FLAG_ALARM))
    log.commit()
    hub = FakeHub(broker_port)
    uplink = Uplink(log, config(tmp_path, broker_port, batch_initial=300))
    async with running((hub.run(), "hub")):
        await asyncio.wait_for(hub.ready.wait(), 10)
        async with running((uplink.run(), "uplink")):
            await until(lambda: log.all_acked())
    first_batch_seqs = [decode_block(b)[0] for b in hub.batches[0].blocks]
    assert 2001 in first_batch_seqs
    assert sorted(hub.stored) == list(range(1, 2101))
    assert len(hub.received) == 2100  # the alarm block was not sent twice


async def test_state_messages_carry_the_footprint(tmp_path: Path, broker_port: int) -> None:
    log = MemoryLog()
    log.append_many(readings(200))
    log.commit()
    hub = FakeHub(broker_port)
    calls = 0

    def footprint() -> dict[str, object]:
        nonlocal calls
        calls += 1
        return {
            "rss_bytes": 31_000_000,
            "cpu_s": 1.25,
            "bytes_sent": uplink.stats.bytes_sent,
            "flash_write_bytes": None,  # unknown: left out
            "flag": True,  # not a figure: left out
            "nan": float("nan"),
            "k" * 40: 1,  # name too long for the wire
            "calls": calls,
        }

    uplink = Uplink(log, config(tmp_path, broker_port, state_interval_s=0.1), footprint=footprint)
    async with running((hub.run(), "hub")):
        await asyncio.wait_for(hub.ready.wait(), 10)
        async with running((uplink.run(), "uplink")):
            await until(lambda: log.all_acked() and sum(s.online for s in hub.states) >= 3)
        await until(lambda: any(not s.online for s in hub.states), timeout=5)
    online = [s for s in hub.states if s.online]
    birth, periodic = online[0], online[-1]
    assert birth.footprint is not None and periodic.footprint is not None
    assert set(birth.footprint) == {"rss_bytes", "cpu_s", "bytes_sent", "calls"}
    assert birth.footprint["cpu_s"] == 1.25 and birth.footprint["calls"] == 1
    assert periodic.footprint["calls"] > 1  # asked again for each state message
    assert periodic.footprint["bytes_sent"] > birth.footprint["bytes_sent"]
    # a clean stop says so with the last figures (the Will, registered at connect, has none)
    death = [s for s in hub.states if not s.online][-1]
    assert death.footprint is not None and death.footprint["calls"] == calls
    # bytes sent: this side's part of the MQTT traffic
    assert 0 < uplink.stats.bytes_sent < uplink.stats.wire_bytes


async def test_a_failing_footprint_does_not_stop_the_state(
    tmp_path: Path, broker_port: int
) -> None:
    def footprint() -> dict[str, object]:
        raise RuntimeError("no /proc")

    log = MemoryLog()
    hub = FakeHub(broker_port)
    uplink = Uplink(log, config(tmp_path, broker_port), footprint=footprint)
    async with running((hub.run(), "hub")):
        await asyncio.wait_for(hub.ready.wait(), 10)
        async with running((uplink.run(), "uplink")):
            await until(lambda: any(s.online for s in hub.states), timeout=10)
    assert [s.footprint for s in hub.states if s.online] == [None]


async def test_clean_stop_publishes_death(tmp_path: Path, broker_port: int) -> None:
    log = MemoryLog()
    hub = FakeHub(broker_port)
    uplink = Uplink(log, config(tmp_path, broker_port))
    async with running((hub.run(), "hub")):
        await asyncio.wait_for(hub.ready.wait(), 10)
        async with running((uplink.run(), "uplink")):
            await asyncio.wait_for(uplink.connected.wait(), 10)
        await until(lambda: any(not s.online for s in hub.states), timeout=5)
    death = [s for s in hub.states if not s.online][-1]
    assert death.session == uplink.stats.session


async def test_rejection_of_a_batch_with_gaps_is_isolated(tmp_path: Path, broker_port: int) -> None:
    """The hub names a rejected batch by its whole span, which need not match its blocks
    (an alarm block ahead leaves a gap): the batch is still recognised and isolated."""
    log = MemoryLog(block_size=100)
    log.append_many(readings(500))
    log.append_many(readings(100, start=500, flags=FLAG_ALARM))  # seqs 501..600
    log.commit()

    def reject_alarm(batch: wire.DataBatch) -> str:
        firsts = [decode_block(b)[0] for b in batch.blocks]
        return "malformed: bad alarm block" if 501 in firsts else "ack"

    hub = FakeHub(broker_port, policy=reject_alarm)
    uplink = Uplink(log, config(tmp_path, broker_port, batch_initial=300))
    async with running((hub.run(), "hub")):
        await asyncio.wait_for(hub.ready.wait(), 10)
        async with running((uplink.run(), "uplink")):
            await until(lambda: log.all_acked(), timeout=10)
    assert sorted(hub.stored) == list(range(1, 501))
    assert uplink.stats.rejected_readings == 100
    assert uplink.stats.timeouts == 0


class OnlyGw1(BaseAuthPlugin):  # type: ignore[misc]
    """A broker that lets in gw-1 with its password, and nobody else."""

    async def authenticate(self, *, session: Any) -> bool | None:
        return bool(session.username == "gw-1" and session.password == "s3cret")


async def test_logs_in_with_the_broker_credentials(tmp_path: Path) -> None:
    port = free_port()
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {f"{__name__}.OnlyGw1": {}},
        }
    )
    await broker.start()
    try:
        log = MemoryLog()
        log.append_many(readings(100))
        log.commit()
        refused = Uplink(log, config(tmp_path, port, username="gw-1", password="wrong"))
        async with running((refused.run(), "refused")):
            await asyncio.sleep(0.5)
            assert not refused.connected.is_set() and refused.stats.connects == 0
        uplink = Uplink(log, config(tmp_path, port, username="gw-1", password="s3cret"))
        async with running((uplink.run(), "uplink")):
            await asyncio.wait_for(uplink.connected.wait(), 10)
    finally:
        await broker.shutdown()


async def test_the_uplink_never_commits_the_buffer(tmp_path: Path, broker_port: int) -> None:
    """One owner of commits, the daemon's buffer writer: readings appended but not committed
    when the uplink connects wait for the writer's commit, then go out as live readings."""
    log = MemoryLog(block_size=10_000)
    log.append_many(readings(100))
    log.commit()
    log.append_many(readings(20, start=500))  # pending, as between two of the writer's commits
    commits = log.commits
    hub = FakeHub(broker_port)
    uplink = Uplink(log, config(tmp_path, broker_port))
    async with running((hub.run(), "hub")):
        await asyncio.wait_for(hub.ready.wait(), 10)
        async with running((uplink.run(), "uplink")):
            await until(lambda: all(s in hub.stored for s in range(1, 101)))
            await asyncio.sleep(0.5)  # several polls of the uplink
            assert not any(s in hub.stored for s in range(101, 121))
            assert log.commits == commits  # the uplink committed nothing
            log.commit()  # the writer's commit
            await until(lambda: log.all_acked() and len(hub.stored) == 120)
    assert seqs([b for b in hub.batches if b.historical]) == set(range(1, 101))
    assert seqs([b for b in hub.batches if not b.historical]) == set(range(101, 121))


def test_the_status_names_every_counter(tmp_path: Path) -> None:
    uplink = Uplink(MemoryLog(), config(tmp_path, 1883))
    uplink.stats.acked_readings = 7
    status = uplink.status()
    assert set(status) == {"state", "broker"} | set(UplinkStats.__dataclass_fields__)
    assert status["acked_readings"] == 7 and status["state"] == "disconnected"
    assert status["broker"] == "127.0.0.1:1883"

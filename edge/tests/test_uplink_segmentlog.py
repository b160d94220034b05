"""The uplink on the real buffer (edge.buffer.SegmentLog), and `estran edge run`'s config."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.buffer import BufferConfig, SegmentLog
from edge.config import ConfigError, load_config
from edge.daemon._wiring import read_credentials
from edge.tests.support.uplink import FakeHub, amqtt_broker, config, readings, running, until
from edge.uplink import Uplink
from protocols.block import decode_block
from protocols.reading import FLAG_ALARM


@pytest.fixture
async def broker_port() -> AsyncIterator[int]:
    async with amqtt_broker() as port:
        yield port


async def test_drains_a_segment_log_alarms_first_each_block_once(
    tmp_path: Path, broker_port: int
) -> None:
    log = SegmentLog.open(
        BufferConfig(directory=tmp_path / "buffer", commit_readings=250, segment_bytes=16384)
    )
    try:
        log.append_many(readings(3000))
        alarm_seqs = [log.append(r) for r in readings(5, start=3000, flags=FLAG_ALARM)]
        log.commit()
        log.append_many(readings(1000, start=4000))
        last_backlog = log.commit()
        hub = FakeHub(broker_port)
        uplink = Uplink(log, config(tmp_path, broker_port, batch_initial=600))
        async with running((hub.run(), "hub")):
            await asyncio.wait_for(hub.ready.wait(), 10)
            async with running((uplink.run(), "uplink")):
                await until(lambda: log.stats().depth == 0)
                live_first = log.append_many(readings(300, start=9000)) - 299
                log.commit()
                await until(lambda: log.stats().depth == 0 and len(hub.stored) == 4305)
        # the alarm block went out in the first batch, ahead of older backlog
        first_blocks = [decode_block(b)[0] for b in hub.batches[0].blocks]
        assert alarm_seqs[0] in first_blocks
        # every reading arrived exactly once, as appended
        assert len(hub.received) == len(set(hub.received)) == 4305
        assert max(s for s in hub.stored if s <= last_backlog) == last_backlog
        live = [b for b in hub.batches if not b.historical]
        assert live and all(b.first_seq >= live_first for b in live)
        assert sum(b.count for b in live) == 300
        # the buffer freed what the hub acknowledged
        assert log.stats().segments <= 1
    finally:
        log.close()


async def test_acks_survive_a_restart_of_the_gateway(tmp_path: Path, broker_port: int) -> None:
    buffer = BufferConfig(directory=tmp_path / "buffer", commit_readings=200)
    log = SegmentLog.open(buffer)
    log.append_many(readings(2000))
    log.commit()
    hub = FakeHub(broker_port)
    async with running((hub.run(), "hub")):
        await asyncio.wait_for(hub.ready.wait(), 10)
        uplink = Uplink(log, config(tmp_path, broker_port))
        async with running((uplink.run(), "uplink")):
            await until(lambda: log.stats().depth == 0)
        log.close()
        # a new process: nothing is sent again
        log = SegmentLog.open(buffer)
        sent_before = len(hub.received)
        uplink = Uplink(log, config(tmp_path, broker_port))
        async with running((uplink.run(), "uplink")):
            await asyncio.wait_for(uplink.connected.wait(), 10)
            await asyncio.sleep(0.3)
        log.close()
    assert sent_before == len(hub.received) == 2000


def test_run_config(tmp_path: Path) -> None:
    """`estran edge run` reads the uplink and buffer settings of the daemon's file."""
    path = tmp_path / "edge.toml"
    path.write_text(
        '[gateway]\nid = "gw-7"\ndata_dir = "state"\n'
        '[uplink]\nbroker = "mqtt://hub:1883"\nbacklog_rate = 500\nprotocol = "3.1.1"\n'
        "[buffer]\nquota = 1048576\n"
    )
    c = load_config(path)
    assert c.uplink is not None
    assert (c.gateway.id, c.uplink.broker, c.gateway.buffer_dir) == (
        "gw-7",
        "mqtt://hub:1883",
        tmp_path / "state" / "buffer",
    )
    assert (c.uplink.backlog_rate, c.uplink.protocol) == (500.0, "3.1.1")
    assert c.buffer.quota_bytes == 1048576
    path.write_text(
        '[gateway]\nid = "gw-7"\ndata_dir = "x"\n[uplink]\nbroker = "b"\nbacklog_rate = "fast"\n'
    )
    with pytest.raises(ConfigError, match="backlog_rate"):
        load_config(path)
    path.write_text("not toml [")
    with pytest.raises(ConfigError):
        load_config(path)


def test_run_config_credentials(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(
        '[gateway]\nid = "gw-7"\ndata_dir = "state"\n'
        '[uplink]\nbroker = "mqtt://hub:1883"\ncredentials_file = "credentials"\n'
    )
    (tmp_path / "credentials").write_text("gw-7:pa:ss\n")
    c = load_config(path)
    assert c.uplink is not None and c.uplink.credentials_file == tmp_path / "credentials"
    assert read_credentials(c.uplink.credentials_file) == ("gw-7", "pa:ss")
    (tmp_path / "credentials").write_text("\n")
    with pytest.raises(ValueError):
        read_credentials(c.uplink.credentials_file)


async def test_a_segment_compacted_under_the_backlog_cursor_is_sent_whole(
    tmp_path: Path, broker_port: int
) -> None:
    """A power cut leaves the last segment open, in small blocks; the first commit after the
    restart (numbering jumped past the lost reservation) seals and compacts it into large
    blocks while the uplink is draining it as backlog. A large block now starts before the
    backlog's cursor and ends after it: its readings past the cursor must still go out (they
    stayed in the buffer until the next restart, and the final drain of the territory
    scenario never ended)."""
    buffer = BufferConfig(directory=tmp_path / "buffer", commit_readings=100)
    log = SegmentLog.open(buffer)
    for i in range(100):  # 1,000 readings in blocks of 10: a gateway committing every 100 ms
        log.append_many(readings(10, start=10 * i))
        log.commit()
    log._release()  # the power cut: no seal, no exact sequence mark
    log = SegmentLog.open(buffer)
    try:
        assert log.stats().segments == 1
        hub = FakeHub(broker_port)
        # one backlog batch of 300 at once, the next ones a second apart
        uplink = Uplink(
            log, config(tmp_path, broker_port, window=2, backlog_rate=300, backlog_burst=300)
        )
        async with running((hub.run(), "hub")):
            await asyncio.wait_for(hub.ready.wait(), 10)
            async with running((uplink.run(), "uplink")):
                await until(lambda: log.stats().depth == 700)  # the first batch acknowledged
                log.append_many(readings(10, start=5000))
                log.commit()  # a jump in the numbering: the small blocks compacted
                with contextlib.suppress(TimeoutError):
                    await until(lambda: log.stats().depth == 0, timeout=20)
                stuck = [(b.first_seq, b.last_seq) for b in log.read_blocks(-1, 10_000)]
                assert log.stats().depth == 0, f"left in the buffer: {stuck}"
        assert set(range(1, 1001)) <= set(hub.stored)
    finally:
        log.close()


async def test_a_segment_compacted_past_the_live_cursor_is_sent_whole(
    tmp_path: Path, broker_port: int
) -> None:
    """Live readings: blocks committed after the uplink's last read, then the segment full,
    sealed and compacted. Its last large block starts before the live cursor and ends past
    it: the readings past the cursor must go out all the same."""
    buffer = BufferConfig(directory=tmp_path / "buffer", segment_bytes=4096)
    log = SegmentLog.open(buffer)
    try:
        hub = FakeHub(broker_port)
        # the uplink reads new blocks every 3 s (or when woken): the test commits between
        uplink = Uplink(
            log, config(tmp_path, broker_port, poll_interval_s=3.0, rescan_interval_s=0.5)
        )
        async with running((hub.run(), "hub")):
            await asyncio.wait_for(hub.ready.wait(), 10)
            async with running((uplink.run(), "uplink")):
                await asyncio.wait_for(uplink.connected.wait(), 10)
                for i in range(5):
                    log.append_many(readings(10, start=10 * i))
                    log.commit()
                uplink.drain_now()  # wakes it: the 5 blocks go out live
                await until(lambda: log.stats().depth == 0)
                i = 5
                while log.stats().segments < 2:  # no await: the uplink reads nothing here
                    log.append_many(readings(10, start=10 * i))
                    log.commit()
                    i += 1
                uplink.drain_now()
                with contextlib.suppress(TimeoutError):
                    await until(lambda: log.stats().depth == 0, timeout=20)
                stuck = [(b.first_seq, b.last_seq) for b in log.read_blocks(-1, 10_000)]
                assert log.stats().depth == 0, f"left in the buffer: {stuck}"
        assert set(range(1, 10 * i + 1)) <= set(hub.stored)
    finally:
        log.close()

"""Ingest under a burst: the hub holds the broker back instead of discarding (regression:
2,000 batches acknowledged by the broker, ~1,230 ingested, the rest dropped by the MQTT
client's 256-message queue with a log line and no counter)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import httpx
import pytest

from hub._service import Hub, HubConfig
from hub.broker import BrokerLimits
from hub.storage import open_storage
from hub.tests.brokers import BROKERS, open_broker
from hub.tests.services import free_port
from hub.tests.test_ingest import data, running_hub
from protocols import wire

BATCHES = 2000
IN_FLIGHT = 20
PER_BATCH = 5


@contextlib.asynccontextmanager
async def hub_on(kind: str, tmp_path: Path) -> AsyncIterator[tuple[Hub, int, int]]:
    """The hub on the embedded broker, or on a Mosquitto that may hold 100,000 messages for
    a subscriber that is behind (as in the generated mosquitto.conf)."""
    if kind == "embedded":
        async with running_hub(tmp_path) as running:
            yield running
        return
    async with open_broker("mosquitto", tmp_path, BrokerLimits()) as mqtt_port:
        http_port = free_port()
        hub = Hub(
            HubConfig(
                data_dir=tmp_path,
                broker=f"mqtt://127.0.0.1:{mqtt_port}",
                http=f"127.0.0.1:{http_port}",
            )
        )
        task = asyncio.create_task(hub.run(), name="hub")
        try:
            await asyncio.wait_for(hub.ready.wait(), 20)
            yield hub, mqtt_port, http_port
        finally:
            task.cancel()
            await asyncio.wait({task}, timeout=20)
            assert task.done()


@pytest.mark.parametrize("kind", BROKERS)
async def test_a_burst_is_ingested_whole_with_honest_counters(kind: str, tmp_path: Path) -> None:
    async with hub_on(kind, tmp_path) as (hub, mqtt_port, http_port):
        topic = wire.topic("gw-burst", "data")
        async with aiomqtt.Client(
            "127.0.0.1", mqtt_port, identifier="burst", max_inflight_messages=IN_FLIGHT
        ) as gw:
            slots = asyncio.Semaphore(IN_FLIGHT)

            async def send(i: int) -> None:
                async with slots:
                    batch = data(i * PER_BATCH + 1, PER_BATCH, batch=i + 1)
                    await gw.publish(topic, batch, qos=1, timeout=60)

            async with asyncio.TaskGroup() as tg:
                for i in range(BATCHES):
                    tg.create_task(send(i))
        # every PUBLISH was acknowledged by the broker; the publisher is gone
        last, moved = -1, time.monotonic()
        while hub.stats.batches < BATCHES and time.monotonic() - moved < 15:
            if hub.stats.batches != last:
                last, moved = hub.stats.batches, time.monotonic()
            await asyncio.sleep(0.1)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http:
            health = (await http.get("/api/v1/health")).json()
        ingest = health["ingest"]
        assert (ingest["batches"], ingest["inserted"]) == (BATCHES, BATCHES * PER_BATCH), health
        assert ingest["dropped"] == 0, health
        if kind == "embedded":  # its own counters: all received, none dropped
            broker = health["broker"]
            assert broker["dropped"] == {} and broker["received"] >= BATCHES, health
        reader = open_storage("sqlite", tmp_path)
        try:
            assert reader.count_readings("gw-burst") == BATCHES * PER_BATCH
        finally:
            reader.close()


async def test_ingest_workers_share_the_load_on_the_embedded_broker(tmp_path: Path) -> None:
    """The embedded broker delivers `$share/...`: each message to one worker of the group."""
    http_port, mqtt_port = free_port(), free_port()
    hub = Hub(
        HubConfig(
            data_dir=tmp_path,
            mqtt_listen=f"127.0.0.1:{mqtt_port}",
            http=f"127.0.0.1:{http_port}",
            workers=3,
        )
    )
    task = asyncio.create_task(hub.run(), name="hub")
    try:
        await asyncio.wait_for(hub.ready.wait(), 20)
        async with aiomqtt.Client("127.0.0.1", mqtt_port, identifier="share") as gw:
            for i in range(200):
                batch = data(i * PER_BATCH + 1, PER_BATCH, batch=i + 1)
                await gw.publish(wire.topic("gw-share", "data"), batch, qos=1)
        deadline = time.monotonic() + 30
        while hub.stats.batches < 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert (hub.stats.batches, hub.stats.inserted, hub.stats.duplicates) == (
            200,
            200 * PER_BATCH,
            0,
        )
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=20)

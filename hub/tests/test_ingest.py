"""The hub end to end in one process: embedded broker, ingest worker, SQLite, HTTP API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import httpx

from hub._service import Hub, HubConfig
from hub.storage import open_storage
from hub.tests.services import free_port, running_hub_task
from protocols import wire
from protocols.block import encode_block
from protocols.reading import Reading

T0 = 1_764_547_200_000


def block(first: int, n: int, sensor: str = "soil-001") -> bytes:
    return encode_block(
        first,
        [
            Reading(sensor, "moisture", "%RH", round(30 + i * 0.01, 2), T0 + 1000 * (first + i))
            for i in range(n)
        ],
    )


def data(
    first: int, n: int, batch: int, *, session: int = 1, blocks: list[bytes] | None = None
) -> bytes:
    return wire.encode_data(
        wire.DataBatch(
            session, batch, first, first + n - 1, n, blocks or [block(first, n)], backlog=42
        )
    )


@contextlib.asynccontextmanager
async def running_hub(tmp_path: Path) -> AsyncIterator[tuple[Hub, int, int]]:
    mqtt_port, http_port = free_port(), free_port()
    config = HubConfig(
        data_dir=tmp_path,
        db="sqlite",
        broker="embedded",
        mqtt_listen=f"127.0.0.1:{mqtt_port}",
        http=f"127.0.0.1:{http_port}",
    )
    async with running_hub_task(config) as hub:
        yield hub, mqtt_port, http_port


def admin_headers(hub: Hub) -> dict[str, str]:
    """An admin's API token (the gateways are staff's)."""
    assert hub.access is not None
    token = hub.access.accounts.create_token("admin", "test").token
    return {"Authorization": f"Bearer {token}"}


async def next_ack(client: aiomqtt.Client) -> wire.Ack:
    async def first() -> wire.Ack:
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            return wire.decode_ack(message.payload)
        raise AssertionError("no message")

    return await asyncio.wait_for(first(), 10)


async def test_commit_then_ack_idempotent_resend_and_api(tmp_path: Path) -> None:
    async with (
        running_hub(tmp_path) as (hub, mqtt_port, http_port),
        aiomqtt.Client("127.0.0.1", mqtt_port, identifier="gw-test") as gw,
    ):
        if True:
            await gw.subscribe(wire.topic("gw-1", "ack"), qos=1)
            await gw.publish(
                wire.topic("gw-1", "state"),
                wire.encode_state(wire.State(True, 1, T0, backlog=500)),
                qos=1,
                retain=True,
            )
            await gw.publish(wire.topic("gw-1", "data"), data(1, 100, batch=1), qos=1)
            ack = await next_ack(gw)
            assert ack == wire.Ack(1, 1, [(1, 100)])
            # committed before the ack was sent
            reader = open_storage("sqlite", tmp_path)
            assert reader.count_readings("gw-1") == 100
            # a resend after a crash: acked again, stored once
            await gw.publish(wire.topic("gw-1", "data"), data(1, 100, batch=7, session=2), qos=1)
            assert await next_ack(gw) == wire.Ack(2, 7, [(1, 100)])
            assert reader.count_readings("gw-1") == 100
            assert hub.stats.duplicates == 100
            # two blocks, one an alarm far ahead
            two = wire.encode_data(
                wire.DataBatch(2, 8, 101, 5000, 11, [block(101, 10), block(5000, 1)])
            )
            await gw.publish(wire.topic("gw-1", "data"), two, qos=1)
            assert (await next_ack(gw)).ranges == [(101, 110), (5000, 5000)]

            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{http_port}", headers=admin_headers(hub)
            ) as http:
                health = (await http.get("/api/v1/health")).json()
                assert health["ready"] and health["ingest"]["inserted"] == 111
                gateways = (await http.get("/api/v1/gateways")).json()
                assert [(g["id"], g["state"], g["session"]) for g in gateways] == [
                    ("gw-1", "online", 1)
                ]
                assert gateways[0]["backlog"] == 42  # the last batch's report wins
                sensors = (await http.get("/api/v1/sensors")).json()
                assert len(sensors) == 1 and sensors[0]["ts_ms"] == T0 + 1000 * 5000
                r = (
                    await http.get(
                        "/api/v1/readings",
                        params={"sensor": "soil-001", "from": T0 + 1000, "to": T0 + 4000},
                    )
                ).json()
                assert [x["seq"] for x in r["readings"]] == [1, 2, 3]
                assert r["readings"][0]["value"] == 30.0
                iso = (
                    await http.get(
                        "/api/v1/readings",
                        params={
                            "sensor": "soil-001",
                            "from": "2025-12-01T00:00:01Z",
                            "to": "2025-12-01T00:00:03Z",
                        },
                    )
                ).json()
                assert iso["count"] == 2
                assert (
                    await http.get(
                        "/api/v1/readings", params={"sensor": "soil-001", "from": "yesterday"}
                    )
                ).status_code == 422
                assert (await http.get("/api/v1/readings")).status_code == 422
            reader.close()


async def test_hostile_payloads_are_counted_and_dropped(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as (hub, mqtt_port, http_port):
        async with aiomqtt.Client("127.0.0.1", mqtt_port, identifier="evil") as gw:
            await gw.subscribe(wire.topic("gw-2", "ack"), qos=1)
            topic = wire.topic("gw-2", "data")
            await gw.publish(topic, b"\xff\x00garbage", qos=1)
            await gw.publish(topic, b"\x81" * 50_000 + b"\x00", qos=1)  # deep nesting
            await gw.publish(topic, bytes(wire.MAX_PAYLOAD + 10), qos=1)  # oversize
            await gw.publish(topic, b"\x8b\x02\x01", qos=1)  # a version from the future
            await gw.publish("estran/v1/gw/bad!id/data", data(1, 5, 1), qos=1)  # wrong topic
            await gw.publish(wire.topic("gw-2", "state"), b"\x80", qos=1)
            # a readable envelope around a bad block: the gateway hears it was rejected
            await gw.publish(topic, data(1, 5, batch=3, blocks=[b"\x8dgarbage"]), qos=1)
            nack = await next_ack(gw)
            assert nack.batch == 3 and nack.ranges == [(1, 5)] and nack.rejected
            # and a good batch still goes through
            await gw.publish(topic, data(1, 5, batch=4), qos=1)
            assert (await next_ack(gw)) == wire.Ack(1, 4, [(1, 5)])
        assert sum(hub.stats.rejected.values()) == 7
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{http_port}", headers=admin_headers(hub)
        ) as http:
            (gw2,) = (await http.get("/api/v1/gateways")).json()
            assert sum(gw2["rejected"].values()) == 6  # the wrong-topic one has no gateway
            assert gw2["last_error"]

"""The plausibility policy (hub/_plausibility.py) through the real hub, as a gateway and an
API user meet it, on both storages: odd timestamps never become "latest", NaN and infinities
stay distinguishable from null, an absurd session cannot pin a gateway online, a resent
sequence with other values is recorded as a conflict."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import httpx

from hub._service import Hub, HubConfig
from hub.tests.services import free_port, running_hub_task
from hub.tests.test_ingest import admin_headers
from protocols import wire
from protocols.block import encode_block
from protocols.reading import FLAG_IMPLAUSIBLE_TIME, FLAG_NOT_A_NUMBER, Reading

T0 = 1_764_547_200_000
YEAR_9999 = 253_402_214_400_000


@contextlib.asynccontextmanager
async def hub_on(spec: str, tmp_path: Path) -> AsyncIterator[tuple[Hub, int, int]]:
    mqtt_port, http_port = free_port(), free_port()
    config = HubConfig(
        data_dir=tmp_path,
        db=spec,
        mqtt_listen=f"127.0.0.1:{mqtt_port}",
        http=f"127.0.0.1:{http_port}",
        broker_access="open",
    )
    async with running_hub_task(config, ready_s=30) as hub:
        yield hub, mqtt_port, http_port


async def send(gw: aiomqtt.Client, first: int, readings: list[Reading], batch: int) -> wire.Ack:
    last = first + len(readings) - 1
    msg = wire.DataBatch(1, batch, first, last, len(readings), [encode_block(first, readings)])
    await gw.publish(wire.topic("gw-1", "data"), wire.encode_data(msg), qos=1)

    async def ack() -> wire.Ack:
        async for message in gw.messages:
            assert isinstance(message.payload, bytes)
            return wire.decode_ack(message.payload)
        raise AssertionError("no ack")

    return await asyncio.wait_for(ack(), 15)


async def test_the_plausibility_policy(storage_spec: str, tmp_path: Path) -> None:
    async with (
        hub_on(storage_spec, tmp_path) as (hub, mqtt_port, http_port),
        aiomqtt.Client("127.0.0.1", mqtt_port, identifier="gw-1") as gw,
        httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{http_port}", headers=admin_headers(hub)
        ) as http,
    ):
        await gw.subscribe(wire.topic("gw-1", "ack"), qos=1)
        readings = [
            Reading("probe", "temperature", "Cel", 21.5, T0),
            Reading("probe", "temperature", "Cel", 99.0, YEAR_9999),  # a wild clock
            Reading("probe", "temperature", "Cel", -5.0, 0),  # a clock back at 1970
            # a gateway may not set the hub's own bit itself
            Reading("nan", "level", "m", math.nan, T0, FLAG_IMPLAUSIBLE_TIME),
            Reading("inf", "level", "m", math.inf, T0),
            Reading("null", "level", "m", None, T0),
        ]
        assert (await send(gw, 1, readings, 1)).ranges == [(1, 6)]

        latest = {s["sensor"]: s for s in (await http.get("/api/v1/sensors")).json()}
        assert latest["probe"]["value"] == 21.5 and latest["probe"]["ts_ms"] == T0
        assert latest["nan"]["value"] is None and latest["nan"]["value_special"] == "NaN"
        assert latest["nan"]["flags"] == FLAG_NOT_A_NUMBER
        assert latest["inf"]["value"] is None and latest["inf"]["value_special"] == "+Inf"
        assert latest["null"]["value"] is None and latest["null"]["value_special"] is None
        stored = (await http.get("/api/v1/readings", params={"sensor": "probe"})).json()
        by_value = {r["value"]: r["flags"] for r in stored["readings"]}
        assert by_value == {-5.0: FLAG_IMPLAUSIBLE_TIME, 21.5: 0, 99.0: FLAG_IMPLAUSIBLE_TIME}

        # the same sequence numbers again, one value changed: the stored one stays
        changed = [*readings[:3], Reading("nan", "level", "m", 1.0, T0), *readings[4:]]
        assert (await send(gw, 1, changed, 2)).ranges == [(1, 6)]
        again = (await http.get("/api/v1/readings", params={"sensor": "nan"})).json()
        assert again["readings"][0]["value_special"] == "NaN"
        gateways = (await http.get("/api/v1/gateways")).json()
        assert gateways[0]["rejected"] == {"conflicting_duplicate": 1}
        assert "seq 4: stored nan/level=nan m" in gateways[0]["last_error"]
        assert "resent nan/level=1.0 m" in gateways[0]["last_error"]

        # an absurd session is refused; a real one still brings the gateway online
        for session, online in ((2**63 - 1, True), (7, True)):
            state = wire.encode_state(wire.State(online, session, T0))
            await gw.publish(wire.topic("gw-1", "state"), state, qos=1)
        for _ in range(100):
            gateways = (await http.get("/api/v1/gateways")).json()
            if gateways[0]["session"] == 7:
                break
            await asyncio.sleep(0.1)
        assert gateways[0]["session"] == 7 and gateways[0]["state"] == "online"
        assert gateways[0]["rejected"]["implausible"] == 1
        death = wire.encode_state(wire.State(False, 7, T0))
        await gw.publish(wire.topic("gw-1", "state"), death, qos=1)
        for _ in range(100):
            if (await http.get("/api/v1/gateways")).json()[0]["state"] == "offline":
                break
            await asyncio.sleep(0.1)
        assert (await http.get("/api/v1/gateways")).json()[0]["state"] == "offline"
        counts = hub.stats.as_dict()
        # two wild clocks in each of the two batches, one NaN (the resend had none)
        assert (counts["implausible_time"], counts["not_a_number"], counts["conflicts"]) == (
            4,
            1,
            1,
        )

"""From the sensor to the hub on whatever the rig has: simulators here, adapters on a bench.

Each test names the capabilities it needs; the rig file (`--rig`, default sim.yaml) says what
provides them. Only public interfaces: the gateway and the hub are `estran edge run` and
`estran hub run` processes, their configuration a file, the readings read back over the hub's
HTTP API (`/api/v1/readings`), faults through the rig (kill -9, the link, the adapter's power).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from estran.rig import HubProcess, Rig, stored_twice, until

SERVICES = ("broker", "database", "hub", "gateway")
ARRIVAL_S = 90.0  # start-up of a loaded machine, and a poll or two


async def counts(hub: HubProcess, sensors: list[str]) -> dict[str, int]:
    return {s: len(await hub.readings(s)) for s in sensors}


@pytest.mark.parametrize(
    "capability",
    [
        pytest.param("serial.tic", marks=pytest.mark.needs("serial.tic", *SERVICES)),
        pytest.param("serial.modbus", marks=pytest.mark.needs("serial.modbus", *SERVICES)),
        pytest.param("serial.mbus", marks=pytest.mark.needs("serial.mbus", *SERVICES)),
    ],
)
async def test_every_sensor_on_the_line_reaches_the_hub(rig: Rig, capability: str) -> None:
    serial = await rig.serial(capability)
    port = serial.port.polled_every(2)
    hub = await rig.hub()
    await rig.gateway("gw-line", hub.broker.url, serial=[port])

    async def all_arrived() -> bool:
        return all(n >= 2 for n in (await counts(hub, port.sensors)).values())

    await until(f"two readings of each of {port.sensors}", all_arrived, ARRIVAL_S)
    for sensor in port.sensors:
        rows = await hub.readings(sensor)
        assert all(r["gateway"] == "gw-line" and r["quantity"] for r in rows)
        assert not stored_twice(rows)


@pytest.mark.needs("ble", *SERVICES)
async def test_ble_sensors_in_range_reach_the_hub(rig: Rig) -> None:
    radio = await rig.radio("ble")
    assert radio.sensors, "the rig's radio hears no sensor"
    hub = await rig.hub()
    await rig.gateway("gw-radio", hub.broker.url, ble=radio)
    advertisers = [d["sensor"] for d in radio.devices if "poll_interval" not in d]

    async def arrived() -> bool:
        return all(n >= 1 for n in (await counts(hub, [str(s) for s in advertisers])).values())

    await until(f"a reading of each of {advertisers}", arrived, ARRIVAL_S)


@pytest.mark.needs("serial.tic", "link", "power.gateway", "power.adapter", "power.hub", *SERVICES)
async def test_outages_lose_nothing_and_store_nothing_twice(rig: Rig) -> None:
    """Network cut, gateway power cut, adapter unplugged, hub power cut: readings stop while
    it lasts, come back after, once each."""
    serial = await rig.serial("serial.tic")
    port = serial.port.polled_every(2)
    sensor = port.sensors[0]
    hub = await rig.hub()
    link = await rig.link(hub.broker)
    gateway = await rig.gateway("gw-outage", link.url, serial=[port])

    async def stored() -> int:
        return len(await hub.readings(sensor))

    async def grows(beyond: int) -> bool:
        return await stored() > beyond

    await until("first readings", lambda: grows(2), ARRIVAL_S)

    # the network: cut, nothing arrives; restored, the backlog comes in
    link.proxy.cut()
    await asyncio.sleep(2)  # what was in flight lands or is lost with the connection
    during = await stored()
    await asyncio.sleep(4)
    assert await stored() == during, "readings arrived through a cut link"
    link.proxy.restore()
    await until("readings after the link came back", lambda: grows(during + 2), ARRIVAL_S)
    assert link.proxy.total_bytes > 0 and link.proxy.connections >= 2

    # the gateway's power: kill -9, then on again
    before = await stored()
    power = rig.power("power.gateway", gateway)
    await power.off()
    await power.on()
    await until("readings after the gateway's power cut", lambda: grows(before + 2), ARRIVAL_S)

    # the adapter's power: the line goes dead, then comes back
    adapter = rig.power("power.adapter", serial)
    await adapter.off()
    await asyncio.sleep(3)
    before = await stored()
    await adapter.on()
    await until("readings after the adapter came back", lambda: grows(before + 2), ARRIVAL_S)

    # the hub's power
    before = await stored()
    hub_power = rig.power("power.hub", hub)
    await hub_power.off()
    await hub_power.on()
    await until("readings after the hub's power cut", lambda: grows(before + 2), ARRIVAL_S)

    assert not stored_twice(await hub.readings(sensor))


@pytest.mark.needs("serial.tic", "power.broker", *SERVICES)
async def test_a_broker_crash_loses_nothing(rig: Rig) -> None:
    serial = await rig.serial("serial.tic")
    port = serial.port.polled_every(2)
    sensor = port.sensors[0]
    hub = await rig.hub()
    await rig.gateway("gw-broker", hub.broker.url, serial=[port])

    async def grows(beyond: int) -> bool:
        return len(await hub.readings(sensor)) > beyond

    await until("first readings", lambda: grows(2), ARRIVAL_S)
    power = rig.power("power.broker", hub.broker)
    await power.off()
    await asyncio.sleep(2)
    before = len(await hub.readings(sensor))
    await power.on()
    await until("readings after the broker's restart", lambda: grows(before + 2), ARRIVAL_S)
    assert not stored_twice(await hub.readings(sensor))


@pytest.mark.needs("serial.tic", "clock", *SERVICES)
async def test_clock_jumps_on_the_gateway_lose_nothing(rig: Rig) -> None:
    """The gateway's wall clock jumps an hour ahead, then two hours back (an NTP step, a
    dead RTC): it keeps reading and syncing, its readings carry its clock's time, and the
    hub stores each once."""
    serial = await rig.serial("serial.tic")
    port = serial.port.polled_every(2)
    sensor = port.sensors[0]
    hub = await rig.hub()
    clock = rig.clock()
    await rig.gateway("gw-clock", hub.broker.url, serial=[port], clock=clock)

    async def times() -> list[int]:
        return [int(str(r["ts_ms"])) for r in await hub.readings(sensor)]

    async def some(check: Callable[[int], bool]) -> bool:
        return any(check(t) for t in await times())

    await until("first readings", lambda: some(lambda t: True), ARRIVAL_S)
    started_ms = time.time() * 1000
    clock.jump(3600)
    ahead = started_ms + 3_600_000 - 60_000
    await until("readings taken after the jump ahead", lambda: some(lambda t: t > ahead), ARRIVAL_S)

    clock.jump(-7200)
    back = started_ms - 1_800_000  # an hour back from the real time, give or take the run
    await until("readings taken after the jump back", lambda: some(lambda t: t < back), ARRIVAL_S)
    rows = await hub.readings(sensor)
    assert not stored_twice(rows)
    stamps = [int(str(r["ts_ms"])) for r in rows]
    assert stamps == sorted(stamps)  # the API gives them in time order, whatever the order taken

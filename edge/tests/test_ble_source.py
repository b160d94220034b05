"""The BLE source on emulated sensors: readings equal what the sensors advertised, once
each; encrypted beacons with the right and a wrong key; replays; a device that vanishes;
Mi Flora GATT polls, refused and timed-out connections; the adapter unplugged.

The real bumble stack throughout: sensors and gateway controllers on a bumble link, the
source's bumble host over TCP (as in the demo) or in-process, bleak on top."""

import asyncio

import pytest

from edge.simulators.ble import DEMO_BIND_KEY, MiFloraSensor, berth, bin_level, soil_probe
from edge.sources import SourceState
from edge.sources.ble import (
    BleDeviceConfig,
    BleSource,
    register_local_transport,
    unregister_local_transport,
)
from edge.sources.ble._config import Kind
from edge.tests.support.ble import (
    FAST,
    OPTIONS,
    RecordingSink,
    contiguous_in,
    in_order_in,
    running,
    source_for,
    value_rows,
    wait_for,
    world,
)
from protocols import bthome

SOIL = "F0:E1:D2:00:02:01"
BIN = "F0:E1:D2:00:03:01"
BERTH = "F0:E1:D2:00:01:02"
FLORA = "C4:7C:8D:6A:04:01"
KEY = bthome.parse_key(DEMO_BIND_KEY)


async def test_readings_equal_what_the_beacons_advertised_once_each() -> None:
    async with world() as radio:
        soil = await radio.add(soil_probe(SOIL, **FAST))
        bin_ = await radio.add(bin_level(BIN, **FAST))
        gateway = await radio.add_gateway("park")
        source = source_for(
            gateway.backend,
            BleDeviceConfig(SOIL, "bthome", "park-soil-01"),
            BleDeviceConfig(BIN, "bthome", "street-bin-01", quantities={"distance": "level"}),
        )
        sink = RecordingSink()
        async with running(source, sink):
            await wait_for(lambda: len(sink.of("park-soil-01")) >= 15, what="soil readings")
            await wait_for(lambda: len(sink.of("street-bin-01")) >= 3, what="bin readings")

    assert sink.state == SourceState.UP or SourceState.UP in [s for _, s, _ in sink.states]
    quantities = ("battery", "temperature", "moisture")
    heard = value_rows(sink.of("park-soil-01"), quantities)
    advertised = [tuple(a.values[q] for q in quantities) for a in soil.history]
    assert len(heard) >= 5
    # each measurement exactly once (about ten advertisements and ten scan responses each)
    assert contiguous_in(heard, advertised), (heard, advertised)
    units = {(r.quantity, r.unit) for r in sink.of("park-soil-01")}
    assert units == {("battery", "%"), ("temperature", "Cel"), ("moisture", "%")}
    # `quantities` keeps and renames: the bin's battery is not kept, its distance is "level"
    levels = [r.value for r in sink.of("street-bin-01")]
    assert {r.quantity for r in sink.of("street-bin-01")} == {"level"}
    assert contiguous_in([(v,) for v in levels], [(a.values["distance"],) for a in bin_.history])
    assert not sink.errors


async def test_encrypted_beacon_decoded_with_its_bind_key() -> None:
    async with world() as radio:
        beacon = await radio.add(berth(BERTH, bind_key=KEY, **FAST))
        gateway = await radio.add_gateway("marina")
        source = source_for(
            gateway.backend, BleDeviceConfig(BERTH, "bthome", "berth-02", bind_key=KEY)
        )
        sink = RecordingSink()
        async with running(source, sink):
            await wait_for(lambda: len(value_rows(sink.of("berth-02"), ("energy",))) >= 4)

    quantities = ("battery", "occupancy", "energy")
    heard = value_rows(sink.of("berth-02"), quantities)
    advertised = [tuple(a.values[q] for q in quantities) for a in beacon.history]
    assert contiguous_in(heard, advertised), (heard, advertised)
    assert not sink.errors


async def test_wrong_bind_key_counts_decryption_errors_and_reads_the_others() -> None:
    async with world() as radio:
        beacon = await radio.add(berth(BERTH, bind_key=KEY, **FAST))
        await radio.add(soil_probe(SOIL, **FAST))
        gateway = await radio.add_gateway("marina")
        wrong = bytes(16)
        source = source_for(
            gateway.backend,
            BleDeviceConfig(BERTH, "bthome", "berth-02", bind_key=wrong),
            BleDeviceConfig(SOIL, "bthome", "soil"),
        )
        sink = RecordingSink()
        async with running(source, sink):
            await wait_for(lambda: sink.error_counts("berth-02")["decryption"] >= 3)
            await wait_for(lambda: len(sink.of("soil")) >= 6, what="the other sensor's readings")
        measurements = len(beacon.history)

    assert sink.of("berth-02") == []
    errors = sink.error_counts("berth-02")
    assert set(errors) == {"decryption"}
    # once per measurement, not once per repetition of the same advertisement
    assert errors["decryption"] <= measurements
    assert source.status()[0].errors == {"decryption": errors["decryption"]}


async def test_replayed_counter_is_refused_and_counted() -> None:
    async with world() as radio:
        beacon = await radio.add(
            berth(BERTH, bind_key=KEY, advertising_interval=0.02, update_interval=60)
        )
        gateway = await radio.add_gateway("marina")
        source = source_for(
            gateway.backend, BleDeviceConfig(BERTH, "bthome", "berth-02", bind_key=KEY)
        )
        sink = RecordingSink()
        async with running(source, sink):
            await wait_for(lambda: len(sink.of("berth-02")) == 3, what="the first measurement")
            beacon.counter -= 2  # an attacker (or a reset device) sends an older counter
            await beacon.update()
            await wait_for(lambda: sink.error_counts("berth-02")["replay"] == 1)
            await beacon.update()  # the counter last accepted again, with other data
            await wait_for(lambda: sink.error_counts("berth-02")["replay"] == 2)
            await beacon.update()  # a fresh counter: accepted again
            await wait_for(lambda: len(sink.of("berth-02")) == 6, what="the fresh measurement")
            await asyncio.sleep(0.1)

    assert sink.error_counts("berth-02") == {"replay": 2}
    assert value_rows(sink.of("berth-02"), ("energy",))[-1] == (
        beacon.history[-1].values["energy"],
    )


async def test_unconfigured_devices_produce_nothing() -> None:
    async with world() as radio:
        await radio.add(soil_probe(SOIL, **FAST))
        await radio.add(bin_level(BIN, **FAST))
        gateway = await radio.add_gateway("park")
        source = source_for(gateway.backend, BleDeviceConfig(SOIL, "bthome", "soil"))
        sink = RecordingSink()
        async with running(source, sink):
            await wait_for(lambda: len(sink.of("soil")) >= 6)
    assert {r.sensor for r in sink.readings} == {"soil"}
    assert [s.sensor for s in source.status()] == ["soil"]


async def test_vanished_device_stops_and_is_reported_once_then_comes_back() -> None:
    async with world() as radio:
        soil = await radio.add(soil_probe(SOIL, **FAST))
        await radio.add(bin_level(BIN, **FAST))
        gateway = await radio.add_gateway("park")
        source = source_for(
            gateway.backend,
            BleDeviceConfig(SOIL, "bthome", "soil"),
            BleDeviceConfig(BIN, "bthome", "bin"),
        )
        sink = RecordingSink()
        async with running(source, sink):
            await wait_for(lambda: len(sink.of("soil")) >= 6)
            await soil.vanish()
            await asyncio.sleep(0.1)  # what was in flight
            before = len(sink.of("soil"))
            await wait_for(lambda: sink.error_counts("soil")["absent"] == 1, what="absence")
            await asyncio.sleep(OPTIONS.absent_after * 2)  # reported once, not again
            assert len(sink.of("soil")) == before
            assert sink.error_counts("soil")["absent"] == 1
            assert [s.absent for s in source.status()] == [True, False]
            assert sink.error_counts("bin") == {}  # the other one is still heard
            await soil.reappear()
            await wait_for(lambda: len(sink.of("soil")) > before, what="readings again")
            assert [s.absent for s in source.status()] == [False, False]


async def test_miflora_beacons_and_one_gatt_poll_closing_its_link() -> None:
    async with world() as radio:
        flora = await radio.add(
            MiFloraSensor(FLORA, advertising_interval=0.02, update_interval=0.1)
        )
        gateway = await radio.add_gateway("park")
        source = source_for(
            gateway.backend, BleDeviceConfig(FLORA, "miflora", "flora", poll_interval=30)
        )
        sink = RecordingSink()
        async with running(source, sink):
            await wait_for(lambda: source.status()[0].last_poll_ms is not None, what="a poll")
            polled_at = source.status()[0].last_poll_ms
            await wait_for(lambda: not flora.device.connections, what="the link closed")
            await wait_for(
                lambda: len({r.quantity for r in sink.of("flora") if r.ts_ms != polled_at}) == 5,
                what="a beacon of each object",
            )

    polled = {r.quantity for r in sink.of("flora") if r.ts_ms == polled_at}
    assert polled == {"temperature", "illuminance", "moisture", "conductivity", "battery"}
    assert flora.realtime_reads == 1 and flora.connections == 1
    # MiBeacon: one object per advertisement, each heard at most once, as advertised, in
    # order. Not every one: while the poll holds the loop on a loaded machine, the scanner
    # may miss an object's few beacons, as a real radio does (the next ones carry it again).
    heard = [(r.quantity, r.value) for r in sink.of("flora") if r.ts_ms != polled_at]
    advertised = [next(iter(a.values.items())) for a in flora.history]
    assert in_order_in([(h,) for h in heard], [(a,) for a in advertised]), (heard, advertised)
    assert not sink.errors


async def test_gatt_poll_values_equal_the_sensor_state() -> None:
    async with world() as radio:
        flora = await radio.add(
            MiFloraSensor(
                FLORA,
                advertising_interval=0.05,
                update_interval=60,
                temperature=21.3,
                illuminance=15432,
                moisture=47,
                conductivity_us_cm=812,
                battery=77,
            )
        )
        gateway = await radio.add_gateway("park")
        source = source_for(
            gateway.backend, BleDeviceConfig(FLORA, "miflora", "flora", poll_interval=30)
        )
        sink = RecordingSink()
        async with running(source, sink):
            await wait_for(lambda: source.status()[0].last_poll_ms is not None, what="a poll")
    assert flora.realtime_reads == 1
    polled_at = source.status()[0].last_poll_ms
    polled = {r.quantity: (r.value, r.unit) for r in sink.of("flora") if r.ts_ms == polled_at}
    assert polled == {
        "temperature": (21.3, "Cel"),
        "illuminance": (15432, "lx"),
        "moisture": (47, "%"),
        "conductivity": (0.0812, "S/m"),
        "battery": (77, "%"),
    }


async def test_refused_connections_are_retried_and_counted() -> None:
    async with world() as radio:
        flora = await radio.add(MiFloraSensor(FLORA, advertising_interval=0.02, update_interval=60))
        flora.refuse_connections = True
        gateway = await radio.add_gateway("park")
        source = source_for(
            gateway.backend, BleDeviceConfig(FLORA, "miflora", "flora", poll_interval=0.3)
        )
        sink = RecordingSink()
        async with running(source, sink):
            await wait_for(lambda: sink.error_counts("flora")["connect_failed"] >= 3)
            assert flora.connections >= 3  # every attempt reached the sensor: retried
            assert source.status()[0].last_poll_ms is None
            flora.refuse_connections = False
            await wait_for(lambda: source.status()[0].last_poll_ms is not None, what="recovery")
    assert set(sink.error_counts("flora")) == {"connect_failed"}
    assert source.state == SourceState.UP


async def test_connection_to_a_vanished_device_times_out_and_is_counted() -> None:
    async with world() as radio:
        flora = await radio.add(MiFloraSensor(FLORA, advertising_interval=0.02, update_interval=60))
        await flora.vanish()
        gateway = await radio.add_gateway("park")
        source = source_for(
            gateway.backend, BleDeviceConfig(FLORA, "miflora", "flora", poll_interval=30)
        )
        sink = RecordingSink()
        async with running(source, sink):
            started = asyncio.get_running_loop().time()
            await wait_for(lambda: sink.error_counts("flora")["timeout"] == 3, timeout=6)
            elapsed = asyncio.get_running_loop().time() - started
        assert flora.connections == 0
    # three attempts of at most connect_timeout (0.5 s) each, with 0.05 + 0.1 s between
    assert elapsed < 3 * OPTIONS.connect_timeout + 1.0
    errors = sink.error_counts("flora")
    assert errors["timeout"] == 3 and set(errors) <= {"timeout", "absent"}
    assert sink.of("flora") == []


async def test_unplugged_adapter_goes_down_and_comes_back() -> None:
    async with world() as radio:
        await radio.add(soil_probe(SOIL, **FAST))
        gateway = await radio.add_gateway("park")
        source = source_for(gateway.backend, BleDeviceConfig(SOIL, "bthome", "soil"))
        sink = RecordingSink()
        async with running(source, sink):
            await wait_for(lambda: len(sink.of("soil")) >= 3)
            await radio.unplug("park")
            await wait_for(lambda: sink.state == SourceState.DOWN, what="DOWN")
            assert sink.error_counts("ble")["adapter_lost"] >= 1
            await asyncio.sleep(0.5)  # retried with backoff, refused while unplugged
            before = len(sink.of("soil"))
            radio.replug("park")
            await wait_for(lambda: len(sink.of("soil")) > before + 2, what="readings again")
            assert sink.state == SourceState.UP
        assert gateway.connects >= 2


async def test_in_process_transport() -> None:
    async with world() as radio:
        soil = await radio.add(soil_probe(SOIL, **FAST))
        radio.add_local_gateway("park")
        register_local_transport("test/park", radio.hci_opener("park"))
        try:
            source = source_for("bumble:local:test/park", BleDeviceConfig(SOIL, "bthome", "soil"))
            sink = RecordingSink()
            async with running(source, sink):
                await wait_for(lambda: len(sink.of("soil")) >= 9)
                await radio.unplug("park")
                await wait_for(lambda: sink.state == SourceState.DOWN, what="DOWN")
                radio.replug("park")
                await wait_for(lambda: sink.state == SourceState.UP, what="UP again")
        finally:
            unregister_local_transport("test/park")
    quantities = ("battery", "temperature", "moisture")
    heard = value_rows(sink.of("soil"), quantities)
    assert contiguous_in(heard[:3], [tuple(a.values[q] for q in quantities) for a in soil.history])


async def test_zones_decide_which_gateway_hears_a_sensor() -> None:
    async with world() as radio:
        await radio.add(soil_probe(SOIL, zone="park", **FAST))
        await radio.add(berth("F0:E1:D2:00:01:01", zone="marina", **FAST))
        marina = await radio.add_gateway("marina", zones={"marina"})
        source = source_for(
            marina.backend,
            BleDeviceConfig(SOIL, "bthome", "soil"),
            BleDeviceConfig("F0:E1:D2:00:01:01", "bthome", "berth"),
        )
        sink = RecordingSink()
        async with running(source, sink):
            await wait_for(lambda: len(sink.of("berth")) >= 6)
            await asyncio.sleep(0.2)
    assert sink.of("soil") == []


async def test_missing_bluez_adapter_reports_down_without_crashing() -> None:
    source = BleSource(
        [BleDeviceConfig(SOIL, "bthome", "soil")], backend="bluez:hci99", options=OPTIONS
    )
    sink = RecordingSink()
    async with running(source, sink):
        await wait_for(lambda: sink.error_counts("ble")["adapter_lost"] >= 2, what="retries")
    assert SourceState.DOWN in [s for _, s, _ in sink.states]
    assert SourceState.UP not in [s for _, s, _ in sink.states]


@pytest.mark.parametrize("configured_as", ["bthome", "miflora"])
async def test_device_advertising_another_kind_is_counted(configured_as: Kind) -> None:
    async with world() as radio:
        if configured_as == "miflora":
            await radio.add(soil_probe(SOIL, **FAST))
        else:
            await radio.add(MiFloraSensor(SOIL, **FAST))
        gateway = await radio.add_gateway("park")
        source = source_for(gateway.backend, BleDeviceConfig(SOIL, configured_as, "soil"))
        sink = RecordingSink()
        async with running(source, sink):
            await wait_for(lambda: sink.error_counts("soil")["unsupported"] >= 1)
    assert sink.of("soil") == []


async def test_periodic_rescan_neither_loses_nor_repeats(monkeypatch: pytest.MonkeyPatch) -> None:
    import edge.sources.ble.source

    monkeypatch.setattr(edge.sources.ble.source, "RESCAN_INTERVAL", 0.1)
    async with world() as radio:
        soil = await radio.add(soil_probe(SOIL, **FAST))
        gateway = await radio.add_gateway("park")
        source = source_for(gateway.backend, BleDeviceConfig(SOIL, "bthome", "soil"))
        sink = RecordingSink()
        async with running(source, sink):
            await wait_for(lambda: len(sink.of("soil")) >= 18, what="readings across rescans")
    quantities = ("battery", "temperature", "moisture")
    heard = value_rows(sink.of("soil"), quantities)
    assert contiguous_in(heard, [tuple(a.values[q] for q in quantities) for a in soil.history])
    assert not sink.errors and gateway.connects == 1

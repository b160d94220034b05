"""bleak over bumble: plain `BleakScanner` / `BleakClient` with the backend classes that
`open_backend` makes, against emulated sensors (the real bumble stack, no mocks)."""

import asyncio

import pytest
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError
from bumble.device import Advertisement

from edge.simulators.ble import MiFloraSensor, soil_probe
from edge.simulators.ble._miflora import PLACEHOLDER
from edge.sources.ble import (
    AdapterLostError,
    BumbleAdapter,
    BumbleScanner,
    open_backend,
    parse_backend,
    register_local_transport,
    unregister_local_transport,
)
from edge.tests.support.ble import FAST, wait_for, world
from protocols import bthome, miflora

SOIL = "F0:E1:D2:00:02:01"
FLORA = "C4:7C:8D:6A:04:01"
BTHOME = "0000fcd2-0000-1000-8000-00805f9b34fb"


class Heard:
    def __init__(self) -> None:
        self.adverts: list[tuple[BLEDevice, AdvertisementData]] = []

    def __call__(self, device: BLEDevice, data: AdvertisementData) -> None:
        self.adverts.append((device, data))

    def scan_responses(self) -> int:
        return sum(
            1
            for _, data in self.adverts
            if isinstance(data.platform_data[0], Advertisement)
            and data.platform_data[0].is_scan_response
        )


@pytest.mark.parametrize("mode", ["passive", "active"])
async def test_scanner_hears_the_advertised_service_data(mode: str) -> None:
    async with world() as radio:
        soil = await radio.add(soil_probe(SOIL, rssi=-64, **FAST))
        gateway = await radio.add_gateway("park")
        heard = Heard()
        async with open_backend(gateway.backend, name="gw") as backend:
            scanner = BleakScanner(heard, scanning_mode=mode, backend=backend.scanner_backend)  # type: ignore[arg-type]
            async with scanner:
                await wait_for(lambda: len(heard.adverts) >= 20)
            assert scanner.discovered_devices_and_advertisement_data[SOIL][0].address == SOIL

    device, data = heard.adverts[-1]
    assert device.address == SOIL
    payload = data.service_data[BTHOME]
    packet = bthome.decode(payload)
    advertised = {a.sequence: a.values for a in soil.history}
    assert packet.packet_id in advertised
    assert {m.name: m.value for m in packet.measurements()} == advertised[packet.packet_id]
    assert all(-67 <= d.rssi <= -61 for _, d in heard.adverts)  # the sensor's, jittered
    if mode == "passive":
        assert heard.scan_responses() == 0  # a passive scanner sends no scan requests
    else:
        assert heard.scan_responses() > 0


async def test_client_reads_miflora_gatt_at_the_real_handles() -> None:
    async with world() as radio:
        flora = await radio.add(
            MiFloraSensor(
                FLORA,
                advertising_interval=0.02,
                update_interval=60,
                battery=64,
                firmware="3.2.1",
                temperature=-3.4,
                moisture=12,
            )
        )
        gateway = await radio.add_gateway("park")
        async with open_backend(gateway.backend, name="gw") as backend:
            client = BleakClient(FLORA, timeout=2.0, backend=backend.client_backend)  # type: ignore[arg-type]
            async with client:
                assert client.is_connected
                service = client.services.get_service(miflora.DATA_SERVICE_UUID)
                assert service is not None and service.handle == 0x31
                handles = {c.uuid: c.handle for c in service.characteristics}
                # BlueZ's numbering: the declaration handle, one below the value
                assert handles == {
                    miflora.MODE_CHANGE_CHAR_UUID: miflora.HANDLE_MODE_CHANGE - 1,
                    miflora.REALTIME_CHAR_UUID: miflora.HANDLE_REALTIME - 1,
                    miflora.FIRMWARE_CHAR_UUID: miflora.HANDLE_FIRMWARE - 1,
                }
                realtime = client.services.get_characteristic(miflora.REALTIME_CHAR_UUID)
                assert realtime is not None
                assert sorted(realtime.properties) == ["notify", "read", "write"]
                assert [d.uuid[4:8] for d in realtime.descriptors] == ["2902"]
                # without the mode change: the placeholder, which the codec refuses
                assert await client.read_gatt_char(miflora.REALTIME_CHAR_UUID) == PLACEHOLDER
                await client.write_gatt_char(
                    miflora.MODE_CHANGE_CHAR_UUID, miflora.MODE_CHANGE, response=True
                )
                values = miflora.decode_realtime(
                    await client.read_gatt_char(miflora.REALTIME_CHAR_UUID)
                )
                firmware = await client.read_gatt_char(miflora.HANDLE_FIRMWARE - 1)
            assert not client.is_connected
            await wait_for(lambda: not flora.device.connections, what="the link closed")

    assert {m.name: m.value for m in values} == {
        "temperature": -3.4,
        "illuminance": flora.illuminance,
        "moisture": 12,
        "conductivity": flora.conductivity_us_cm / 10000,
    }
    assert miflora.decode_firmware(firmware) == (64, "3.2.1")


async def test_refused_connection_raises_bleak_error_quickly() -> None:
    async with world() as radio:
        flora = await radio.add(MiFloraSensor(FLORA, advertising_interval=0.02, update_interval=60))
        flora.refuse_connections = True
        gateway = await radio.add_gateway("park")
        async with open_backend(gateway.backend, name="gw") as backend:
            client = backend.client(FLORA, timeout=2.0)
            async with asyncio.timeout(1.0):
                with pytest.raises(BleakError):
                    await client.connect()
            assert not client.is_connected
            # the adapter is still usable: the next connection works
            flora.refuse_connections = False
            async with asyncio.timeout(2.0), backend.client(FLORA, timeout=2.0) as again:
                assert again.is_connected
    assert flora.connections == 2


async def test_connect_to_a_silent_device_times_out_and_leaves_no_link() -> None:
    async with world() as radio:
        flora = await radio.add(MiFloraSensor(FLORA, advertising_interval=0.02, update_interval=60))
        await flora.vanish()
        gateway = await radio.add_gateway("park")
        async with open_backend(gateway.backend, name="gw") as backend:
            client = backend.client(FLORA, timeout=0.3)
            async with asyncio.timeout(3.0):
                with pytest.raises(TimeoutError):
                    await client.connect()
            await flora.reappear()
            await asyncio.sleep(0.2)  # a connection left pending would complete now
            adapter_device = gateway.controller
            assert adapter_device is not None and not adapter_device.le_connections
            assert flora.connections == 0


async def test_unplugged_adapter_is_lost() -> None:
    async with world() as radio:
        await radio.add(soil_probe(SOIL, **FAST))
        gateway = await radio.add_gateway("park")
        async with open_backend(gateway.backend, name="gw") as backend:
            scanner = await backend.start_scanner(Heard(), passive=True)
            await radio.unplug("park")
            async with asyncio.timeout(2.0):
                await backend.wait_lost()
            with pytest.raises((AdapterLostError, BleakError)):
                await backend.start_scanner(Heard(), passive=True)
            await scanner.stop()
        # refused while unplugged, accepted again after replug
        with pytest.raises(AdapterLostError):
            async with open_backend(gateway.backend, name="gw", timeout=1.0):
                pass
        radio.replug("park")
        async with open_backend(gateway.backend, name="gw") as backend:
            heard = Heard()
            scanner = await backend.start_scanner(heard, passive=True)
            await wait_for(lambda: len(heard.adverts) > 3)
            await scanner.stop()


async def test_two_scanners_share_one_adapter() -> None:
    async with world() as radio:
        await radio.add(soil_probe(SOIL, **FAST))
        radio.add_local_gateway("park")
        register_local_transport("backend-test/park", radio.hci_opener("park"))
        try:
            async with BumbleAdapter("local:backend-test/park", name="gw") as adapter:
                first, second = Heard(), Heard()
                backend = BumbleScanner.bound_to(adapter)
                one = BleakScanner(first, scanning_mode="passive", backend=backend)
                two = BleakScanner(second, scanning_mode="passive", backend=backend)
                await one.start()
                await two.start()
                await wait_for(lambda: len(first.adverts) > 3 and len(second.adverts) > 3)
                await one.stop()
                count = len(first.adverts)
                await wait_for(lambda: len(second.adverts) > len(first.adverts) + 5)
                assert len(first.adverts) == count  # stopped: hears nothing more
                await two.stop()
        finally:
            unregister_local_transport("backend-test/park")


def test_backend_specs() -> None:
    assert str(parse_backend("bluez")) == "bluez"
    assert str(parse_backend("bleak")) == "bluez"
    assert parse_backend("bluez:hci1").target == "hci1"
    spec = parse_backend("bumble:tcp-client:127.0.0.1:7001")
    assert (spec.kind, spec.target) == ("bumble", "tcp-client:127.0.0.1:7001")
    for bad in ("bumble", "bumble:", "bluez:usb0", "winrt", ""):
        with pytest.raises(ValueError, match=r"ble\.(backend|transport)"):
            parse_backend(bad)


async def test_a_new_host_takes_the_controller_over() -> None:
    """A restarted daemon gets the controller even if its predecessor's link lingers."""
    async with world() as radio:
        await radio.add(soil_probe(SOIL, **FAST))
        gateway = await radio.add_gateway("park")
        async with (
            open_backend(gateway.backend, name="gw") as old,
            open_backend(gateway.backend, name="gw") as new,
        ):
            async with asyncio.timeout(2.0):
                await old.wait_lost()
            heard = Heard()
            scanner = await new.start_scanner(heard, passive=True)
            await wait_for(lambda: len(heard.adverts) > 3)
            await scanner.stop()
        assert gateway.connects == 2

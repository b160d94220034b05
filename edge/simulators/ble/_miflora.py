"""An emulated Xiaomi Mi Flora (HHCCJCY01): MiBeacon advertisements and its GATT service.

Advertisements: service data 0xFE95, one object per advertisement in turn (temperature,
illuminance, moisture, conductivity, battery), a new frame counter for each, as the real
device sends them.

GATT, at the real device's handles (checked at start-up): device name at 0x03 (bumble's
GAP service), then a filler Xiaomi service (0xFE95) up to the data service 0x1204 at 0x31:

    0x33  00001a00 mode change   write a0 1f to enable real-time reads
    0x35  00001a01 real-time     16 bytes (temperature, light, moisture, conductivity)
    0x36           its CCCD (notify)
    0x38  00001a02 firmware      battery %, then the firmware version in ASCII

Without the mode-change write in the same connection the real-time read returns the
device's placeholder ``aa bb cc dd ee ff 99 88 77 66 00...``, as the real one does.

Faults: `vanish()` (no advertisements: connections time out) and `refuse_connections`
(the link is accepted, then dropped at once: "remote device terminated the connection
due to low resources", which is what a busy Mi Flora does).
"""

import asyncio
import logging

from bumble import hci
from bumble.core import UUID
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Descriptor, Service

from edge.simulators.ble._sensor import FLAGS_AD, Advertised, EmulatedSensor
from protocols import miflora

log = logging.getLogger(__name__)

PLACEHOLDER = bytes.fromhex("aabbccddeeff99887766") + bytes(6)
_ADVERTISED_OBJECTS = (0x1004, 0x1007, 0x1008, 0x1009, 0x100A)
_XIAOMI_SERVICE = 0xFE95
_USER_DESCRIPTION = 0x2901
_DATA_SERVICE_HANDLE = 0x31


class MiFloraSensor(EmulatedSensor):
    """A Mi Flora plant sensor. Values wander every `update_interval` seconds."""

    kind = "miflora"
    connectable = True

    def __init__(
        self,
        address: str,
        *,
        firmware: str = "3.3.5",
        battery: int = 95,
        temperature: float = 18.5,
        illuminance: int = 1200,
        moisture: int = 34,
        conductivity_us_cm: int = 350,
        name: str = "Flower care",
        advertising_interval: float = 1.0,
        update_interval: float = 10.0,
        rssi: int = -70,
        zone: str | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            address,
            name=name,
            advertising_interval=advertising_interval,
            update_interval=update_interval,
            rssi=rssi,
            zone=zone,
            seed=seed,
        )
        self.firmware = firmware
        self.battery = battery
        self.temperature = round(temperature, 1)
        self.illuminance = illuminance
        self.moisture = moisture
        self.conductivity_us_cm = conductivity_us_cm
        self.refuse_connections = False
        self.frame_counter = self.random.randrange(256)
        self.realtime_reads = 0  # real-time reads served after a mode change, for tests
        self._next_object = 0
        self._mode_enabled: set[int] = set()  # connection handles that wrote a0 1f
        self._first = True

    # -- values ------------------------------------------------------------------------

    def values(self) -> dict[str, object]:
        """What the sensor measures now, in SenML units (as the codec decodes them)."""
        return {
            "temperature": self.temperature,
            "illuminance": self.illuminance,
            "moisture": self.moisture,
            "conductivity": self.conductivity_us_cm / 10000,
            "battery": self.battery,
        }

    def _advance(self) -> None:
        rng = self.random
        self.temperature = round(min(max(self.temperature + rng.uniform(-0.3, 0.3), -5), 45), 1)
        self.illuminance = min(max(self.illuminance + rng.randint(-150, 150), 0), 100_000)
        self.moisture = min(max(self.moisture + rng.randint(-1, 1), 0), 100)
        self.conductivity_us_cm = min(max(self.conductivity_us_cm + rng.randint(-10, 10), 0), 5000)

    def measure(self) -> bytes:
        if not self._first:
            self._advance()
        self._first = False
        otype = _ADVERTISED_OBJECTS[self._next_object]
        self._next_object = (self._next_object + 1) % len(_ADVERTISED_OBJECTS)
        self.frame_counter = (self.frame_counter + 1) % 256
        name = miflora.OBJECTS[otype][0]
        value = self.values()[name]
        payload = miflora.encode_mibeacon([(otype, value)], self.address, self.frame_counter)
        self.history.append(Advertised(self.frame_counter, {name: value}))
        return FLAGS_AD + miflora.ad_structure(payload)

    # -- GATT --------------------------------------------------------------------------

    def setup_gatt(self, device: Device) -> None:
        _pad_to(device, _DATA_SERVICE_HANDLE)
        props = Characteristic.Properties
        mode: Characteristic[bytes] = Characteristic(
            miflora.MODE_CHANGE_CHAR_UUID,
            props.READ | props.WRITE,
            Characteristic.READABLE | Characteristic.WRITEABLE,
            CharacteristicValue(read=self._read_mode, write=self._write_mode),
        )
        realtime: Characteristic[bytes] = Characteristic(
            miflora.REALTIME_CHAR_UUID,
            props.READ | props.WRITE | props.NOTIFY,
            Characteristic.READABLE | Characteristic.WRITEABLE,
            CharacteristicValue(read=self._read_realtime),
        )
        firmware: Characteristic[bytes] = Characteristic(
            miflora.FIRMWARE_CHAR_UUID,
            props.READ,
            Characteristic.READABLE,
            CharacteristicValue(read=self._read_firmware),
        )
        device.add_service(Service(miflora.DATA_SERVICE_UUID, [mode, realtime, firmware]))
        expected = (
            (mode, miflora.HANDLE_MODE_CHANGE),
            (realtime, miflora.HANDLE_REALTIME),
            (firmware, miflora.HANDLE_FIRMWARE),
        )
        for characteristic, handle in expected:
            if characteristic.handle != handle:  # bumble laid the table out differently
                raise RuntimeError(
                    f"Mi Flora {characteristic.uuid} at handle 0x{characteristic.handle:02x},"
                    f" expected 0x{handle:02x}"
                )

    def _read_mode(self, connection: Connection) -> bytes:
        return miflora.MODE_CHANGE if connection.handle in self._mode_enabled else b"\x00\x00"

    def _write_mode(self, connection: Connection, value: bytes) -> None:
        if bytes(value) == miflora.MODE_CHANGE:
            self._mode_enabled.add(connection.handle)

    def _read_realtime(self, connection: Connection) -> bytes:
        if connection.handle not in self._mode_enabled:
            return PLACEHOLDER
        self.realtime_reads += 1
        return miflora.encode_realtime(
            self.temperature, self.illuminance, self.moisture, self.conductivity_us_cm / 10000
        )

    def _read_firmware(self, connection: Connection) -> bytes:
        return miflora.encode_firmware(self.battery, self.firmware)

    def on_connection(self, connection: Connection) -> None:
        handle = connection.handle
        connection.on(
            Connection.EVENT_DISCONNECTION, lambda _reason: self._mode_enabled.discard(handle)
        )
        if self.refuse_connections:
            self._spawn(self._refuse(connection), "refuse")

    async def _refuse(self, connection: Connection) -> None:
        try:
            async with asyncio.timeout(2.0):
                await connection.disconnect(
                    hci.HCI_REMOTE_DEVICE_TERMINATED_CONNECTION_DUE_TO_LOW_RESOURCES_ERROR
                )
        except Exception as e:
            log.debug("%s: refusing a connection: %r", self.name, e)


def _pad_to(device: Device, handle: int) -> None:
    """Add a Xiaomi (0xFE95) service whose attributes fill the table up to `handle`."""
    needed = handle - device.gatt_server.next_handle()
    if needed == 0:
        return
    if needed < 3:
        raise RuntimeError(f"cannot pad the GATT table by {needed} attribute(s)")
    remaining = needed - 1  # the service declaration
    characteristics = []
    for index in range(remaining // 2):
        descriptors = []
        if index == 0 and remaining % 2:
            descriptors.append(
                Descriptor(UUID.from_16_bits(_USER_DESCRIPTION), Descriptor.READABLE, b"mi")
            )
        characteristics.append(
            Characteristic(
                UUID.from_16_bits(0x0001 + index),
                Characteristic.Properties.READ,
                Characteristic.READABLE,
                b"\x00",
                descriptors,
            )
        )
    device.add_service(Service(UUID.from_16_bits(_XIAOMI_SERVICE), characteristics))

"""What every emulated BLE sensor shares: a controller on the world's link, a bumble host,
one advertising set whose data changes, and faults on demand.

A sensor advertises at `advertising_interval` (the radio cadence: a real beacon repeats
each measurement several times) and takes a new measurement every `update_interval`
(`measure()`, implemented by each kind, returns the next advertising data).
"""

import asyncio
import logging
import random
from collections import deque
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, Self

from bumble.controller import Controller
from bumble.device import (
    AdvertisingEventProperties,
    AdvertisingParameters,
    AdvertisingSet,
    AdvertisingType,
    Connection,
    Device,
)
from bumble.hci import Address, OwnAddressType
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

log = logging.getLogger(__name__)

FLAGS_AD = bytes([0x02, 0x01, 0x06])  # LE general discoverable, BR/EDR not supported


class Advertised:
    """One measurement as a sensor advertised it: its sequence number (packet id, frame
    counter or encryption counter) and the values, in SenML units."""

    __slots__ = ("sequence", "values")

    def __init__(self, sequence: int, values: dict[str, object]) -> None:
        self.sequence = sequence
        self.values = values

    def __repr__(self) -> str:
        return f"Advertised({self.sequence}, {self.values!r})"


class EmulatedSensor:
    """Base of the emulated sensors. Subclasses implement `measure()`.

    `address`: the sensor's Bluetooth address. Sensors advertise with it as a random
    (static) address: bumble's link routes LE connections by random address.
    `rssi`: the signal strength gateways hear it at (jittered by the world); `zone`: when
    set, only the gateways listening to that zone hear it.
    """

    kind = "sensor"
    connectable = False

    def __init__(
        self,
        address: str,
        *,
        name: str | None = None,
        advertising_interval: float = 1.0,
        update_interval: float = 10.0,
        rssi: int = -62,
        zone: str | None = None,
        seed: int | None = None,
    ) -> None:
        if not advertising_interval >= 0.02 or not update_interval > 0:
            raise ValueError("advertising interval >= 20 ms, update interval > 0")
        self.address = Address(address, Address.RANDOM_DEVICE_ADDRESS).to_string(False)
        self.name = name or f"{self.kind}-{self.address[-5:].replace(':', '')}"
        self.advertising_interval = advertising_interval
        self.update_interval = update_interval
        self.rssi = rssi
        self.zone = zone
        self.random = random.Random(seed if seed is not None else self.address)
        self.history: deque[Advertised] = deque(maxlen=64)
        self.connections = 0  # accepted GATT connections, for tests
        self._device: Device | None = None
        self._controller: Controller | None = None
        self._advertising: AdvertisingSet | None = None
        self._task: asyncio.Task[None] | None = None
        self._vanished = False
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()

    # -- to implement ------------------------------------------------------------------

    def measure(self) -> bytes:
        """Take a new measurement: record it in `history`, return the advertising data."""
        raise NotImplementedError

    def setup_gatt(self, device: Device) -> None:
        """Add GATT services (connectable sensors)."""

    def on_connection(self, connection: Connection) -> None:
        """A central connected (connectable sensors)."""

    # -- state -------------------------------------------------------------------------

    @property
    def last(self) -> Advertised | None:
        """The measurement being advertised now."""
        return self.history[-1] if self.history else None

    @property
    def vanished(self) -> bool:
        return self._vanished

    @property
    def device(self) -> Device:
        if self._device is None:
            raise RuntimeError(f"{self.name} is not started")
        return self._device

    # -- life cycle --------------------------------------------------------------------

    async def start(self, link: LocalLink) -> None:
        """Power the sensor on, on `link`, and start advertising."""
        controller = Controller(self.name, link=link)
        device = Device(
            name=self.name,
            address=Address(self.address, Address.RANDOM_DEVICE_ADDRESS),
            host=Host(controller, AsyncPipeSink(controller)),
        )
        self._controller, self._device = controller, device
        self.setup_gatt(device)
        device.on(Device.EVENT_CONNECTION, self._on_connection)
        async with asyncio.timeout(5.0):
            await device.power_on()
            advertising_type = (
                AdvertisingType.UNDIRECTED_CONNECTABLE_SCANNABLE
                if self.connectable
                else AdvertisingType.UNDIRECTED
            )
            interval_ms = self.advertising_interval * 1000
            self._advertising = await device.create_advertising_set(
                advertising_parameters=AdvertisingParameters(
                    advertising_event_properties=AdvertisingEventProperties.from_advertising_type(
                        advertising_type
                    ),
                    primary_advertising_interval_min=interval_ms,
                    primary_advertising_interval_max=interval_ms,
                    own_address_type=OwnAddressType.RANDOM,
                ),
                random_address=Address(self.address, Address.RANDOM_DEVICE_ADDRESS),
                advertising_data=self.measure(),
                auto_start=not self._vanished,
            )
        self._task = asyncio.create_task(self._measure_loop(), name=f"ble-sim:{self.name}")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._background) if t is not None]
        self._task = None
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        if self._controller is not None and self._controller in self._controller.link.controllers:
            self._controller.link.remove_controller(self._controller)
        self._device = None
        self._controller = None
        self._advertising = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _measure_loop(self) -> None:
        while True:
            await asyncio.sleep(self.update_interval)
            try:
                await self.update()
            except Exception as e:  # keep measuring: one failed HCI exchange is not fatal
                log.warning("%s: advertising update failed: %r", self.name, e)

    async def update(self) -> None:
        """Take a new measurement now and advertise it."""
        data = self.measure()
        advertising = self._advertising
        if advertising is None:
            return
        async with self._lock, asyncio.timeout(5.0):
            await advertising.set_advertising_data(data)

    # -- faults ------------------------------------------------------------------------

    async def vanish(self) -> None:
        """Stop advertising (battery dead, out of range): gateways stop hearing it."""
        self._vanished = True
        advertising = self._advertising
        if advertising is not None and advertising.enabled:
            async with self._lock, asyncio.timeout(5.0):
                await advertising.stop()

    async def reappear(self) -> None:
        """Advertise again after `vanish()`."""
        self._vanished = False
        await self._resume()

    async def _resume(self) -> None:
        advertising = self._advertising
        if advertising is not None and not advertising.enabled and not self._vanished:
            async with self._lock, asyncio.timeout(5.0):
                await advertising.start()

    def _on_connection(self, connection: Connection) -> None:
        self.connections += 1
        connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)
        self.on_connection(connection)

    def _on_disconnection(self, _reason: int) -> None:
        # The controller stopped advertising when the central connected: resume, as the
        # real device does once the link is gone.
        self._spawn(self._resume_quietly(), "resume")

    def _spawn(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run `work` in the background; `stop` cancels it."""
        task = asyncio.get_running_loop().create_task(work, name=f"ble-sim:{self.name}:{what}")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _resume_quietly(self) -> None:
        try:
            await self._resume()
        except Exception as e:  # the sensor is being stopped
            log.debug("%s: resume advertising: %r", self.name, e)

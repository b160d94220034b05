"""The one place that chooses the BLE backend: ``ble.backend`` in the configuration.

- ``bluez`` (the default; ``bluez:hci1`` names the adapter): bleak on BlueZ, as on a Pi.
- ``bumble:<transport>``: bleak on bumble over an HCI transport — an emulated controller
  of the radio world (``bumble:tcp-client:127.0.0.1:7001``, or ``bumble:local:NAME`` in the
  same process), or a real controller bumble drives itself (``bumble:usb:0``,
  ``bumble:serial:/dev/ttyACM0,1000000``).

Everything else uses plain bleak (`BleakScanner`, `BleakClient`) through the `BleBackend`
that `open_backend` yields: same code on a Pi, in the tests and in the demo.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Literal

from bleak import BleakClient, BleakScanner
from bleak.args.bluez import BlueZScannerArgs, OrPattern
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.client import BaseBleakClient
from bleak.backends.scanner import AdvertisementDataCallback, BaseBleakScanner
from bleak.exc import BleakError

from edge.sources.ble._spec import BackendSpec, parse_backend
from protocols import bthome, miflora

log = logging.getLogger(__name__)

# What a passive BlueZ scan listens for (an advertisement monitor needs patterns):
# service data of BTHome (0xFCD2) and of MiBeacon (0xFE95).
PASSIVE_PATTERNS = (
    OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, bthome.UUID_BYTES),
    OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, miflora.UUID_BYTES),
)


class BleBackend:
    """An opened backend: makes bleak scanners and clients on it, and says when it is lost."""

    def __init__(
        self,
        spec: BackendSpec,
        scanner_backend: type[BaseBleakScanner] | None,
        client_backend: type[BaseBleakClient] | None,
        wait_lost: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.spec = spec
        self.scanner_backend = scanner_backend
        self.client_backend = client_backend
        self._wait_lost = wait_lost

    def scanner(self, callback: AdvertisementDataCallback, *, passive: bool) -> BleakScanner:
        """A scanner (not started). Passive on BlueZ needs its advertisement monitor API
        (BlueZ >= 5.56 with experimental features); `start_scanner` falls back to active."""
        mode: Literal["active", "passive"] = "passive" if passive else "active"
        bluez: BlueZScannerArgs = {}
        if self.spec.kind == "bluez":
            if self.spec.target:
                bluez["adapter"] = self.spec.target
            if passive:
                bluez["or_patterns"] = list(PASSIVE_PATTERNS)
        return BleakScanner(callback, scanning_mode=mode, bluez=bluez, backend=self.scanner_backend)

    async def start_scanner(
        self, callback: AdvertisementDataCallback, *, passive: bool, timeout: float = 10.0
    ) -> BleakScanner:
        """Start a scanner, passive where the platform allows, else active."""
        scanner = self.scanner(callback, passive=passive)
        try:
            async with asyncio.timeout(timeout):
                await scanner.start()
            return scanner
        except BleakError as e:
            if not passive or self.spec.kind != "bluez":
                raise
            log.warning("passive scanning unavailable (%s); scanning actively", e)
        scanner = self.scanner(callback, passive=False)
        async with asyncio.timeout(timeout):
            await scanner.start()
        return scanner

    def client(self, address: str, *, timeout: float) -> BleakClient:
        """A GATT client for `address` (not connected); `timeout` bounds connecting."""
        bluez = (
            {"adapter": self.spec.target} if self.spec.kind == "bluez" and self.spec.target else {}
        )
        return BleakClient(address, timeout=timeout, bluez=bluez, backend=self.client_backend)  # type: ignore[arg-type]

    async def wait_lost(self) -> None:
        """Return when the adapter is lost (bumble: the HCI transport closed).

        BlueZ reports a lost adapter through failing operations instead: this waits
        forever there (run it as a task, cancelled with its group).
        """
        if self._wait_lost is None:
            await asyncio.get_running_loop().create_future()
            return
        await self._wait_lost()


@asynccontextmanager
async def open_backend(
    spec: str | BackendSpec, *, name: str = "estran-gateway", timeout: float = 10.0
) -> AsyncIterator[BleBackend]:
    """Open the backend `spec` names (a ``ble.backend`` value) for the time of the block.

    bumble: opens the HCI transport and starts the host (`AdapterLostError` when it
    cannot); the adapter's address derives from `name`. BlueZ: nothing to open.
    """
    parsed = parse_backend(spec) if isinstance(spec, str) else spec
    if parsed.kind == "bluez":
        yield BleBackend(parsed, None, None)
        return
    from edge.sources.ble._bumble_adapter import BumbleAdapter
    from edge.sources.ble._bumble_client import BumbleClient
    from edge.sources.ble._bumble_scanner import BumbleScanner

    assert parsed.target is not None
    async with BumbleAdapter(parsed.target, name=name, timeout=timeout) as adapter:
        yield BleBackend(
            parsed,
            BumbleScanner.bound_to(adapter),
            BumbleClient.bound_to(adapter),
            adapter.wait_lost,
        )

"""A bumble host stack on an HCI transport: the "adapter" under the bumble bleak backend.

`BumbleAdapter` opens an HCI transport (any bumble transport spec, e.g.
``tcp-client:127.0.0.1:7001``, ``usb:0``, ``serial:/dev/ttyACM0``, or ``local:NAME`` for a
controller registered in this process with `register_local_transport`), runs a bumble
`Device` (host) on it, and shares it: many scanners and clients use one adapter, as they
share one BlueZ adapter on a Pi. The bleak backend classes bind themselves to an adapter
(`BumbleScanner.bound_to(adapter)`, `BumbleClient.bound_to(adapter)`); the adapter knows
its scanners only as `AdvertisementListener`s, so it imports neither (no import cycle).

The adapter is lost when its transport closes (the TCP peer went away, the dongle was
unplugged): `wait_lost()` returns, and every later operation fails.
"""

import asyncio
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Protocol, Self

from bleak.exc import BleakError
from bumble.core import BaseBumbleError
from bumble.device import Advertisement, Device
from bumble.hci import Address
from bumble.host import Host
from bumble.transport import open_transport
from bumble.transport.common import Transport

from edge.sources.ble._errors import AdapterLostError, BleConfigError

log = logging.getLogger(__name__)

LocalTransportOpener = Callable[[], Awaitable[Transport]]
_LOCAL_TRANSPORTS: dict[str, LocalTransportOpener] = {}

# Addresses (and advertised names) remembered for clients; bounded: phones rotate
# their random addresses every few minutes, a street sees thousands a day.
_MAX_REMEMBERED = 1024


class AdvertisementListener(Protocol):
    """What the adapter hands every advertising report to (a `BumbleScanner`)."""

    def on_advertisement(self, advertisement: Advertisement) -> None: ...


def register_local_transport(name: str, opener: LocalTransportOpener) -> None:
    """Make ``local:NAME`` open an HCI transport in this process (an emulated controller).

    `opener` is called once per adapter opened on it and returns a fresh transport, as
    plugging a dongle in gives a fresh controller.
    """
    if name in _LOCAL_TRANSPORTS:
        raise BleConfigError("ble.backend", f"local transport {name!r} is already registered")
    _LOCAL_TRANSPORTS[name] = opener


def unregister_local_transport(name: str) -> None:
    _LOCAL_TRANSPORTS.pop(name, None)


async def open_hci_transport(spec: str) -> Transport:
    """Open ``local:NAME`` (registered in this process) or any bumble transport spec."""
    if spec.startswith("local:"):
        opener = _LOCAL_TRANSPORTS.get(spec[len("local:") :])
        if opener is None:
            raise AdapterLostError(f"no local HCI transport named {spec[6:]!r} in this process")
        return await opener()
    return await open_transport(spec)


def _static_address(name: str) -> Address:
    """A stable random static address derived from `name` (the 2 top bits set)."""
    raw = bytearray(hashlib.sha256(name.encode()).digest()[:6])
    raw[0] |= 0xC0
    return Address(":".join(f"{b:02X}" for b in raw), Address.RANDOM_DEVICE_ADDRESS)


class BumbleAdapter:
    """One HCI controller driven by a bumble host. An async context manager.

    `transport`: the bumble transport spec. `name`: the local name (and the seed of the
    adapter's own random static address unless `address` is given). `timeout` bounds
    opening the transport and each HCI command exchange of the start-up.
    """

    def __init__(
        self,
        transport: str,
        *,
        name: str = "estran-gateway",
        address: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.transport_spec = transport
        self.name = name
        self._address = (
            Address(address, Address.RANDOM_DEVICE_ADDRESS)
            if address
            else _static_address(f"{name}|{transport}")
        )
        self._timeout = timeout
        self._transport: Transport | None = None
        self._device: Device | None = None
        self._lost: asyncio.Future[None] | None = None
        self._scanners: dict[AdvertisementListener, bool] = {}  # scanner -> wants active
        self._scan_mode: bool | None = None  # None: not scanning; else active?
        self._scan_lock = asyncio.Lock()
        self.connect_lock = asyncio.Lock()  # one LE connection attempt at a time
        self._peers: OrderedDict[str, tuple[Address, str | None]] = OrderedDict()

    # -- life cycle --------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            async with asyncio.timeout(self._timeout):
                self._transport = await open_hci_transport(self.transport_spec)
        except (OSError, TimeoutError) as e:
            raise AdapterLostError(
                f"cannot open HCI transport {self.transport_spec!r}: {e or 'timed out'}"
            ) from e
        self._lost = self._transport.source.terminated
        host = Host(self._transport.source, self._transport.sink)
        self._device = Device(name=self.name, address=self._address, host=host)
        self._device.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        try:
            async with asyncio.timeout(self._timeout):
                await self._device.power_on()
        except BaseException as e:
            await self._close_transport()
            if isinstance(e, TimeoutError | OSError | BaseBumbleError):
                raise AdapterLostError(f"HCI controller did not start: {e!r}") from e
            raise
        log.debug("bumble adapter %s up on %s", self.name, self.transport_spec)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        device = self._device
        if device is not None and not self.is_lost:
            try:
                async with asyncio.timeout(2.0):
                    for connection in list(device.connections.values()):
                        await connection.disconnect()
                    if self._scan_mode is not None:
                        await device.stop_scanning()
            except Exception as e:  # closing anyway
                log.debug("bumble adapter %s: unclean close: %r", self.name, e)
        self._scan_mode = None
        self._scanners.clear()
        await self._close_transport()

    async def _close_transport(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            try:
                async with asyncio.timeout(2.0):
                    await transport.close()
            except Exception as e:
                log.debug("bumble adapter %s: transport close: %r", self.name, e)

    @property
    def device(self) -> Device:
        if self._device is None or self.is_lost:
            raise AdapterLostError(f"adapter {self.name} on {self.transport_spec} is not open")
        return self._device

    @property
    def is_lost(self) -> bool:
        return self._lost is None or self._lost.done() or self._transport is None

    async def wait_lost(self) -> None:
        """Return when the HCI transport closes (never, while it stays up)."""
        if self._lost is None:
            return
        await asyncio.shield(self._lost)

    # -- scanning, shared by the scanners of this adapter ------------------------------

    async def add_scanner(self, scanner: AdvertisementListener, active: bool) -> None:
        self.device  # noqa: B018 - raises AdapterLostError when the adapter is gone
        async with self._scan_lock:
            self._scanners[scanner] = active
            await self._apply_scan_mode()

    async def remove_scanner(self, scanner: AdvertisementListener) -> None:
        async with self._scan_lock:
            if self._scanners.pop(scanner, None) is not None and not self.is_lost:
                await self._apply_scan_mode()

    async def _apply_scan_mode(self) -> None:
        wanted = any(self._scanners.values()) if self._scanners else None
        if wanted == self._scan_mode:
            return
        device = self.device
        try:
            async with asyncio.timeout(self._timeout):
                if self._scan_mode is not None:
                    await device.stop_scanning()
                    self._scan_mode = None
                if wanted is not None:
                    await device.start_scanning(active=wanted, filter_duplicates=False)
                    self._scan_mode = wanted
        except BaseBumbleError as e:
            if self.is_lost:
                raise AdapterLostError(f"adapter {self.name} lost while scanning: {e}") from e
            raise BleakError(f"scanning on {self.name} failed: {e}") from e

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        address = advertisement.address.to_string(False)
        name = _local_name(advertisement)
        known = self._peers.pop(address, None)
        if name is None and known is not None:
            name = known[1]
        self._peers[address] = (advertisement.address, name)
        if len(self._peers) > _MAX_REMEMBERED:
            self._peers.popitem(last=False)
        for scanner in list(self._scanners):
            scanner.on_advertisement(advertisement)

    def peer_address(self, address: str) -> Address:
        """The bumble address (with its type) last seen advertising as `address`.

        Unknown addresses are taken as random (static) ones, which is what most BLE
        sensors use and what bumble's emulated link routes.
        """
        known = self._peers.get(address.upper())
        if known is not None:
            return known[0]
        return Address(address, Address.RANDOM_DEVICE_ADDRESS)

    def peer_name(self, address: str) -> str | None:
        known = self._peers.get(address.upper())
        return known[1] if known is not None else None


def _local_name(advertisement: Advertisement) -> str | None:
    for ad_type, value in advertisement.data.ad_structures:
        if ad_type in (0x08, 0x09):  # shortened, complete local name
            try:
                return bytes(value).decode("utf-8")
            except UnicodeDecodeError:
                return None
    return None

"""`BumbleClient`: bleak's GATT client interface on a `BumbleAdapter`.

Use the class bound to an adapter (`BumbleClient.bound_to(adapter)`) as `BleakClient(backend=...)`.

Handles follow BlueZ, the platform gateways run on: a characteristic's `handle` is its
declaration handle (BlueZ names it ``charXXXX`` after it), so a characteristic whose value
is at handle 0x35 has handle 0x34; services and descriptors have their own handles. Read
and write by UUID to stay clear of the difference between platforms.

Every operation is bounded: connecting by the client's `timeout`, each GATT exchange by
`operation_timeout`, and each fails at once (BleakError) when the link drops.
"""

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar, TypeVar

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError, BleakGATTProtocolError
from bumble import hci
from bumble.att import ATT_Error
from bumble.core import UUID as BumbleUUID
from bumble.core import BaseBumbleError, PhysicalTransport
from bumble.core import TimeoutError as BumbleTimeoutError
from bumble.device import Connection, Peer
from bumble.gatt import Characteristic
from bumble.gatt_client import CharacteristicProxy, DescriptorProxy

from edge.sources.ble._bumble_adapter import BumbleAdapter
from edge.sources.ble._errors import AdapterLostError

log = logging.getLogger(__name__)

T = TypeVar("T")

_PROPERTY_NAMES: tuple[tuple[int, CharacteristicPropertyName], ...] = (
    (Characteristic.Properties.BROADCAST, "broadcast"),
    (Characteristic.Properties.READ, "read"),
    (Characteristic.Properties.WRITE_WITHOUT_RESPONSE, "write-without-response"),
    (Characteristic.Properties.WRITE, "write"),
    (Characteristic.Properties.NOTIFY, "notify"),
    (Characteristic.Properties.INDICATE, "indicate"),
    (Characteristic.Properties.AUTHENTICATED_SIGNED_WRITES, "authenticated-signed-writes"),
    (Characteristic.Properties.EXTENDED_PROPERTIES, "extended-properties"),
)


def _uuid_str(value: BumbleUUID) -> str:
    return str(uuid.UUID(bytes=bytes(reversed(value.uuid_128_bytes))))


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _properties(flags: int) -> list[CharacteristicPropertyName]:
    return [name for bit, name in _PROPERTY_NAMES if flags & bit]


class BumbleClient(BaseBleakClient):
    """bleak client backend over bumble. Bound to an adapter by `bound_to(adapter)`."""

    adapter: ClassVar[BumbleAdapter | None] = None
    operation_timeout: ClassVar[float] = 10.0  # one GATT exchange
    disconnect_timeout: ClassVar[float] = 2.0

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None,
        timeout: float,
        services: set[str] | None = None,
        bluez: Mapping[str, object] | None = None,
        winrt: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(
            address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout
        )
        if type(self).adapter is None:
            raise BleakError("BumbleClient must be bound: use BumbleClient.bound_to(adapter)")
        self.address = self.address.upper()
        self._peer_address = (
            address_or_ble_device.details
            if isinstance(address_or_ble_device, BLEDevice)
            and isinstance(address_or_ble_device.details, hci.Address)
            else None
        )
        self._service_filter = services
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._closing = False
        self._subscribers: dict[int, Callable[[bytes], None]] = {}

    @classmethod
    def bound_to(cls, adapter: BumbleAdapter) -> "type[BumbleClient]":
        """This class bound to `adapter`, for `BleakClient(backend=...)` (bleak wants a
        class: the class carries its adapter)."""
        return type("BumbleClient", (cls,), {"adapter": adapter})

    @property
    def _adapter(self) -> BumbleAdapter:
        adapter = type(self).adapter
        assert adapter is not None  # checked in __init__
        return adapter

    @property
    def name(self) -> str:
        return self._adapter.peer_name(self.address) or self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else 23

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    # -- connection --------------------------------------------------------------------

    async def connect(self, pair: bool, **kwargs: object) -> None:
        if pair:
            raise BleakError("pairing is not supported by the bumble backend")
        if self._connection is not None:
            return
        try:
            device = self._adapter.device
        except AdapterLostError as e:
            raise BleakError(str(e)) from e
        address = self._peer_address or self._adapter.peer_address(self.address)
        async with asyncio.timeout(self._timeout + 2.0):
            async with self._adapter.connect_lock:
                try:
                    connection = await device.connect(
                        address, transport=PhysicalTransport.LE, timeout=self._timeout
                    )
                except asyncio.CancelledError:
                    await asyncio.shield(self._abort_connect(address))
                    if _being_cancelled():
                        raise
                    # bumble cancelled its own wait (the controller was flushed): not ours
                    raise BleakError(f"connecting to {self.address} aborted") from None
                except TimeoutError:
                    raise
                except BumbleTimeoutError as e:
                    raise TimeoutError(f"connecting to {self.address} timed out") from e
                except (BaseBumbleError, hci.HCI_Error) as e:
                    raise BleakError(f"connecting to {self.address} failed: {e}") from e
        self._connection = connection
        self._closing = False
        connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)
        if device.connections.get(connection.handle) is not connection:
            # dropped by the peer before this coroutine resumed (a busy device does that)
            self._connection = None
            raise BleakError(f"{self.address} disconnected while connecting")
        try:
            self.services = await self._discover(connection)
        except BaseException:
            await asyncio.shield(self._drop())
            raise

    async def _abort_connect(self, address: hci.Address) -> None:
        """After a cancelled connect: stop the attempt, drop a link that made it anyway."""
        try:
            device = self._adapter.device
            async with asyncio.timeout(1.0):
                if device.is_le_connecting:
                    await device.send_sync_command(hci.HCI_LE_Create_Connection_Cancel_Command())
                for connection in list(device.connections.values()):
                    if connection.peer_address == address:
                        await connection.disconnect()
        except Exception as e:
            log.debug("aborting connection to %s: %r", address, e)

    async def _discover(self, connection: Connection) -> BleakGATTServiceCollection:
        peer = Peer(connection)
        self._peer = peer
        collection = BleakGATTServiceCollection()
        for service in await self._guard(peer.discover_services()):
            service_uuid = _uuid_str(service.uuid)
            if self._service_filter is not None and service_uuid not in self._service_filter:
                continue
            bleak_service = BleakGATTService(service, service.handle, service_uuid)
            collection.add_service(bleak_service)
            for characteristic in await self._guard(service.discover_characteristics()):
                bleak_char = BleakGATTCharacteristic(
                    characteristic,
                    characteristic.handle - 1,  # declaration handle, as BlueZ
                    _uuid_str(characteristic.uuid),
                    _properties(int(characteristic.properties)),
                    lambda: self.mtu_size - 3,
                    bleak_service,
                )
                collection.add_characteristic(bleak_char)
                for descriptor in await self._guard(characteristic.discover_descriptors()):
                    collection.add_descriptor(
                        BleakGATTDescriptor(
                            descriptor, descriptor.handle, _uuid_str(descriptor.type), bleak_char
                        )
                    )
        return collection

    def _on_disconnection(self, reason: int) -> None:
        solicited = self._closing
        self._connection = None
        self._peer = None
        self.services = None
        if not solicited and self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        await self._drop()

    async def _drop(self) -> None:
        connection = self._connection
        if connection is None:
            return
        self._closing = True
        try:
            device = self._adapter.device
            if device.connections.get(connection.handle) is not connection:
                return  # already gone
            async with asyncio.timeout(self.disconnect_timeout):
                await connection.disconnect()
        except (BaseBumbleError, hci.HCI_Error, TimeoutError, AdapterLostError) as e:
            log.debug("disconnect from %s: %r", self.address, e)
        finally:
            self._connection = None
            self._peer = None
            self.services = None

    async def pair(self, *args: object, **kwargs: object) -> None:
        raise BleakError("pairing is not supported by the bumble backend")

    async def unpair(self) -> None:
        raise BleakError("pairing is not supported by the bumble backend")

    # -- I/O -------------------------------------------------------------------------

    async def _guard(self, operation: Awaitable[T]) -> T:
        """Run one GATT exchange: bounded in time, failing at once if the link drops."""
        connection = self._connection
        if connection is None:
            if asyncio.iscoroutine(operation):
                operation.close()
            raise BleakError("not connected")
        task: asyncio.Future[T] = asyncio.ensure_future(operation)
        lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_disconnection(_reason: int) -> None:
            if not lost.done():
                lost.set_result(None)

        connection.on(Connection.EVENT_DISCONNECTION, on_disconnection)
        try:
            waited: list[asyncio.Future[Any]] = [task, lost]
            done, _pending = await asyncio.wait(
                waited,
                timeout=self.operation_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            connection.remove_listener(Connection.EVENT_DISCONNECTION, on_disconnection)
            if not task.done():
                task.cancel()
                # bumble's request may run on to its own timeout (30 s) and fail then: its
                # error is read here, not left to asyncio's "Task exception was never
                # retrieved" (a traceback in the log and the source of its files kept in
                # linecache for good: several MB of a daemon's memory at once)
                task.add_done_callback(self._abandoned)
        if task not in done:
            if lost in done:
                raise BleakError(f"{self.address} disconnected")
            raise TimeoutError(f"GATT operation on {self.address} timed out")
        lost.cancel()
        if task.cancelled():  # bumble cancels a pending request when the link drops
            raise BleakError(f"GATT operation on {self.address} aborted: link lost")
        try:
            return task.result()
        except ATT_Error as e:
            raise BleakGATTProtocolError(e.error_code) from e
        except (BaseBumbleError, hci.HCI_Error) as e:
            raise BleakError(f"GATT operation on {self.address} failed: {e}") from e

    def _abandoned(self, task: asyncio.Future[Any]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            log.debug("abandoned GATT operation on %s ended: %r", self.address, error)

    def _require_peer(self) -> Peer:
        if self._peer is None:
            raise BleakError("not connected")
        return self._peer

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: object
    ) -> bytearray:
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        value = await self._guard(self._require_peer().read_value(proxy))
        return bytearray(value)

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: object
    ) -> bytearray:
        proxy: DescriptorProxy = descriptor.obj
        value = await self._guard(self._require_peer().read_value(proxy))
        return bytearray(value)

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        await self._guard(
            self._require_peer().write_value(proxy, bytes(data), with_response=response)
        )

    async def write_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, data: SizedBuffer
    ) -> None:
        proxy: DescriptorProxy = descriptor.obj
        await self._guard(self._require_peer().write_value(proxy, bytes(data), with_response=True))

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: object
    ) -> None:
        proxy: CharacteristicProxy[bytes] = characteristic.obj

        def on_value(value: bytes) -> None:
            callback(bytearray(value))

        self._subscribers[characteristic.handle] = on_value
        await self._guard(proxy.subscribe(on_value))

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        subscriber = self._subscribers.pop(characteristic.handle, None)
        await self._guard(proxy.unsubscribe(subscriber))

"""`BumbleScanner`: bleak's scanner interface on a `BumbleAdapter`.

Use the class bound to an adapter (`BumbleScanner.bound_to(adapter)`) as `BleakScanner(backend=...)`.

Passive scanning sends no scan requests, so a passive scanner never receives scan
responses: bumble's emulated controller sends a scan response after every advertisement
whatever the scan type, and this scanner drops them in passive mode, as a real radio
would never have received them. In active mode the scan response data is merged into the
advertisement, as BlueZ does.
"""

import uuid
from collections.abc import Mapping
from typing import ClassVar, Literal

from bleak.backends.scanner import (
    AdvertisementData,
    AdvertisementDataCallback,
    BaseBleakScanner,
)
from bumble.device import Advertisement

from edge.sources.ble._bumble_adapter import BumbleAdapter
from edge.sources.ble._errors import BleError

# AD types (Bluetooth Assigned Numbers, 2.3)
_UUID16_LISTS = (0x02, 0x03)
_UUID32_LISTS = (0x04, 0x05)
_UUID128_LISTS = (0x06, 0x07)
_NAMES = (0x08, 0x09)
_TX_POWER = 0x0A
_SERVICE_DATA_16 = 0x16
_SERVICE_DATA_32 = 0x20
_SERVICE_DATA_128 = 0x21
_MANUFACTURER = 0xFF

_BASE_UUID_TAIL = "-0000-1000-8000-00805f9b34fb"

# Addresses kept in `seen_devices` while scanning (bleak never forgets them; a street
# sees thousands of rotating phone addresses a day).
_MAX_SEEN = 1024


def uuid16_str(value: int) -> str:
    return f"{value:08x}{_BASE_UUID_TAIL}"


def _uuid_le(raw: bytes) -> str:
    if len(raw) == 2:
        return uuid16_str(int.from_bytes(raw, "little"))
    if len(raw) == 4:
        return f"{int.from_bytes(raw, 'little'):08x}{_BASE_UUID_TAIL}"
    return str(uuid.UUID(bytes=bytes(reversed(raw))))


def advertisement_data(advertisement: Advertisement) -> AdvertisementData:
    """bleak's `AdvertisementData` from a bumble advertisement (raw AD structures)."""
    local_name: str | None = None
    manufacturer: dict[int, bytes] = {}
    service_data: dict[str, bytes] = {}
    service_uuids: list[str] = []
    tx_power: int | None = None
    for ad_type, raw in advertisement.data.ad_structures:
        value = bytes(raw)
        if ad_type in _NAMES:
            local_name = value.decode("utf-8", "replace")
        elif ad_type == _SERVICE_DATA_16 and len(value) >= 2:
            service_data[_uuid_le(value[:2])] = value[2:]
        elif ad_type == _SERVICE_DATA_32 and len(value) >= 4:
            service_data[_uuid_le(value[:4])] = value[4:]
        elif ad_type == _SERVICE_DATA_128 and len(value) >= 16:
            service_data[_uuid_le(value[:16])] = value[16:]
        elif ad_type == _MANUFACTURER and len(value) >= 2:
            manufacturer[int.from_bytes(value[:2], "little")] = value[2:]
        elif ad_type == _TX_POWER and len(value) == 1:
            tx_power = int.from_bytes(value, "little", signed=True)
        elif ad_type in _UUID16_LISTS + _UUID32_LISTS + _UUID128_LISTS:
            size = 2 if ad_type in _UUID16_LISTS else 4 if ad_type in _UUID32_LISTS else 16
            for i in range(0, len(value) - size + 1, size):
                text = _uuid_le(value[i : i + size])
                if text not in service_uuids:
                    service_uuids.append(text)
    return AdvertisementData(
        local_name=local_name,
        manufacturer_data=manufacturer,
        service_data=service_data,
        service_uuids=service_uuids,
        tx_power=tx_power,
        rssi=advertisement.rssi,
        platform_data=(advertisement,),
    )


class BumbleScanner(BaseBleakScanner):
    """bleak scanner backend over bumble. Bound to an adapter by `bound_to(adapter)`."""

    adapter: ClassVar[BumbleAdapter | None] = None

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: Literal["active", "passive"] = "active",
        *,
        bluez: Mapping[str, object] | None = None,
        cb: Mapping[str, object] | None = None,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        if type(self).adapter is None:
            raise BleError("BumbleScanner must be bound: use BumbleScanner.bound_to(adapter)")
        if scanning_mode not in ("active", "passive"):
            raise BleError(f"scanning mode must be active or passive, not {scanning_mode!r}")
        self._active = scanning_mode == "active"
        self._scanning = False

    @classmethod
    def bound_to(cls, adapter: BumbleAdapter) -> "type[BumbleScanner]":
        """This class bound to `adapter`, for `BleakScanner(backend=...)` (bleak wants a
        class: the class carries its adapter)."""
        return type("BumbleScanner", (cls,), {"adapter": adapter})

    @property
    def _adapter(self) -> BumbleAdapter:
        adapter = type(self).adapter
        assert adapter is not None  # checked in __init__
        return adapter

    async def start(self) -> None:
        self.seen_devices = {}
        await self._adapter.add_scanner(self, self._active)
        self._scanning = True

    async def stop(self) -> None:
        if self._scanning:
            self._scanning = False
            await self._adapter.remove_scanner(self)

    def on_advertisement(self, advertisement: Advertisement) -> None:
        """Called by the adapter for every advertising report."""
        if not self._scanning:
            return
        if advertisement.is_scan_response and not self._active:
            return
        data = advertisement_data(advertisement)
        if not self.is_allowed_uuid(data.service_uuids):
            return
        address = advertisement.address.to_string(False)
        name = data.local_name or self._adapter.peer_name(address)
        if address not in self.seen_devices and len(self.seen_devices) >= _MAX_SEEN:
            del self.seen_devices[next(iter(self.seen_devices))]
        device = self.create_or_update_device(address, address, name, advertisement.address, data)
        self.call_detection_callbacks(device, data)

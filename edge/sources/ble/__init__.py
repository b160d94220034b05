"""BLE for the gateway: bleak with pluggable backends, the BLE source, `estran edge scan`.

- `open_backend(spec)`: the one place ``ble.backend`` is honoured (``bluez`` or
  ``bumble:<transport>``); it yields a `BleBackend` that makes plain bleak scanners and
  clients.
- `BumbleScanner` / `BumbleClient`: bleak backends over a bumble host (`BumbleAdapter`)
  on an HCI transport: an emulated controller of the radio world, or a real dongle.
- `BleSource`: configured BTHome and Mi Flora devices -> Readings (a `edge.sources.Source`).

See docs/ble.md.
"""

import importlib
from typing import TYPE_CHECKING

from edge.sources.ble._config import BleDeviceConfig, BleOptions, normalize_address
from edge.sources.ble._decode import AdvertisementDecoder, Decoded
from edge.sources.ble._errors import AdapterLostError, BleConfigError, BleError
from edge.sources.ble._spec import DEFAULT_BACKEND, BackendSpec, backend_from_table, parse_backend

if TYPE_CHECKING:
    from edge.sources.ble._backend import BleBackend, open_backend
    from edge.sources.ble._bumble_adapter import (
        BumbleAdapter,
        register_local_transport,
        unregister_local_transport,
    )
    from edge.sources.ble._bumble_client import BumbleClient
    from edge.sources.ble._bumble_scanner import BumbleScanner
    from edge.sources.ble.source import BleDeviceStatus, BleSource, device_configs

# Imported on first use: bleak (several MB of RSS) only when a gateway opens a BLE backend
# or runs a BLE source -- reading a configuration needs none of it (edge.config imports the
# names above); bumble (a third of a second to import) only when a bumble backend is used.
_LAZY = {
    "BleBackend": "edge.sources.ble._backend",
    "open_backend": "edge.sources.ble._backend",
    "BleDeviceStatus": "edge.sources.ble.source",
    "BleSource": "edge.sources.ble.source",
    "device_configs": "edge.sources.ble.source",
    "BumbleAdapter": "edge.sources.ble._bumble_adapter",
    "register_local_transport": "edge.sources.ble._bumble_adapter",
    "unregister_local_transport": "edge.sources.ble._bumble_adapter",
    "BumbleClient": "edge.sources.ble._bumble_client",
    "BumbleScanner": "edge.sources.ble._bumble_scanner",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edge.sources.ble' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "DEFAULT_BACKEND",
    "AdapterLostError",
    "AdvertisementDecoder",
    "BackendSpec",
    "BleBackend",
    "BleConfigError",
    "BleDeviceConfig",
    "BleDeviceStatus",
    "BleError",
    "BleOptions",
    "BleSource",
    "BumbleAdapter",
    "BumbleClient",
    "BumbleScanner",
    "Decoded",
    "backend_from_table",
    "device_configs",
    "normalize_address",
    "open_backend",
    "parse_backend",
    "register_local_transport",
    "unregister_local_transport",
]

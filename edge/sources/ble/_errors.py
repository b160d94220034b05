"""The errors of edge.sources.ble: one root, each named for what happened."""

from edge.errors import EdgeError


class BleError(EdgeError):
    """Root of every error raised by edge.sources.ble."""


class BleConfigError(BleError, ValueError):
    """A BLE setting is invalid. `field` names it (e.g. ``ble.devices[2].bind_key``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class AdapterLostError(BleError):
    """The Bluetooth adapter went away (HCI transport closed, dongle unplugged)."""

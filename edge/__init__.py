"""The gateway daemon: sources (serial, BLE), buffer, uplink, config apply, technician CLI."""

__all__: list[str] = []

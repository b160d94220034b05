"""The rig's errors: one root, and the one a test turns into "not applicable" or a CI failure."""

from __future__ import annotations


class RigError(Exception):
    """Something of the rig (a process, a port, an environment file) did not do what it must."""


class Unavailable(RigError):
    """A resource this machine or bench does not have (no mosquitto binary, no PostgreSQL,
    no BLE dongle...): the reason says which, and where it was looked for."""


__all__ = ["RigError", "Unavailable"]

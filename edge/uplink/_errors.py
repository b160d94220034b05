"""Errors of the uplink."""

from edge.errors import EdgeError


class UplinkError(EdgeError):
    """Root of the uplink's errors."""


class UplinkConfigError(UplinkError):
    """The uplink settings are invalid."""


__all__ = ["UplinkConfigError", "UplinkError"]

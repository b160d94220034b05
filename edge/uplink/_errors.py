"""Errors of the uplink."""


class UplinkError(Exception):
    """Root of the uplink's errors."""


class UplinkConfigError(UplinkError):
    """The uplink settings are invalid."""


__all__ = ["UplinkConfigError", "UplinkError"]

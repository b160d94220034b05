"""Durations and sizes as people write them in configuration: "30s", "5 min", "256 MiB".

One grammar for both sides of the configuration: the hub validates a desired configuration
(fleet/) with it, and the gateway loads the same document (edge/config) with it. Were the
two to drift, the hub would accept a configuration that the gateway then refuses.
"""

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m|h|d)?\s*$")
_DURATION_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "sec": 1.0,
    "min": 60.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKMGT]i?B|B)?\s*$")
_SIZE_UNITS = {
    "B": 1,
    "kB": 1000,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KiB": 1024,
    "kiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "TiB": 1024**4,
}


def parse_duration(text: "str") -> "float | None":
    """Seconds from "500 ms", "30s", "5 min", "1h", "7d" (no unit: seconds); None if not one."""
    match = _DURATION.match(text)
    if match is None:
        return None
    return float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]


def parse_size(text: "str") -> "int | None":
    """Bytes from "268435456", "256 MiB", "1 GB" (no unit: bytes); None if not one."""
    match = _SIZE.match(text)
    if match is None:
        return None
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2) or "B"])


__all__ = ["parse_duration", "parse_size"]

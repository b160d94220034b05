"""This process's footprint, read from /proc where it exists (Linux), else from `resource`."""

from __future__ import annotations

import os
import resource
import sys

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes(pid: int | str = "self") -> int | None:
    """Resident set size now (None when unknown). /proc/PID/statm, else the peak RSS."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        pass
    if pid != "self":
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    times = os.times()
    return times.user + times.system


def io_write_bytes(pid: int | str = "self") -> int | None:
    """Bytes this process caused to be written to storage (/proc/PID/io `write_bytes`): what
    reaches the flash, page cache excluded. None when the kernel does not account it."""
    try:
        with open(f"/proc/{pid}/io", "rb") as f:
            for line in f:
                if line.startswith(b"write_bytes:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def process_footprint() -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "rss_bytes": rss_bytes(),
        "cpu_s": round(cpu_seconds(), 3),
        "io_write_bytes": io_write_bytes(),
    }


__all__ = ["cpu_seconds", "io_write_bytes", "process_footprint", "rss_bytes"]

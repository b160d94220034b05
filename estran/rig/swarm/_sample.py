"""Soak figures: a process's memory and open files sampled over a run, and their slope.

RSS from /proc/PID/status (VmRSS), file descriptors from /proc/PID/fd (Linux). A slope is
the least-squares line through the samples (`slope`), reported per hour; "flat within
noise" means the growth it predicts over the run stays within the samples' own spread
(`flat`).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from estran.rig._soak import cmdline, descendants, dir_bytes, memory, open_fds, slope

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident memory of `pid` in bytes (0 if it is gone)."""
    return memory(pid)[0]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time `pid` has used, in seconds (0.0 if it is gone): what a
    process cost, whatever else the machine was running (wall time is not, on a shared
    machine)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime
    except (OSError, ValueError, IndexError):
        return 0.0


class CpuMeter:
    """CPU seconds each named process used between `start()` and `read()`."""

    def __init__(self) -> None:
        self.base: dict[str, tuple[int, float]] = {}

    def start(self, pids: dict[str, int]) -> None:
        self.base = {name: (pid, cpu_seconds(pid)) for name, pid in pids.items()}

    def read(self, pids: dict[str, int]) -> dict[str, float]:
        """Per process (started since: from zero), and `total`."""
        out: dict[str, float] = {}
        for name, pid in pids.items():
            pid0, cpu0 = self.base.get(name, (pid, 0.0))
            out[name] = round(cpu_seconds(pid) - (cpu0 if pid0 == pid else 0.0), 2)
        out["total"] = round(sum(out.values()), 2)
        return out


@dataclass
class Series:
    """One figure sampled over time: (seconds since start, value)."""

    name: str
    unit: str
    points: list[tuple[float, float]] = field(default_factory=list)

    def add(self, t: float, value: float) -> None:
        self.points.append((t, value))

    def summary(self, *, skip_s: float = 0.0) -> dict[str, object]:
        """Slope per hour and whether it is flat within noise, after a warm-up of `skip_s`
        seconds (allocators and caches fill first). Flat: the growth the slope predicts over
        the sampled span is no more than 3 standard deviations of the residuals, or under 1 %
        of the mean (a constant figure has no spread to compare with)."""
        pts = [p for p in self.points if p[0] >= skip_s] or self.points
        if not pts:
            return {"name": self.name, "unit": self.unit, "samples": 0}
        b = slope(pts)
        mx = statistics.fmean(p[0] for p in pts)
        my = statistics.fmean(p[1] for p in pts)
        residuals = [y - (my + b * (x - mx)) for x, y in pts]
        noise = statistics.pstdev(residuals) if len(residuals) > 1 else 0.0
        span = pts[-1][0] - pts[0][0]
        growth = b * span
        flat = growth <= 3 * noise or abs(growth) <= 0.01 * abs(my) or math.isclose(growth, 0)
        return {
            "name": self.name,
            "unit": self.unit,
            "samples": len(pts),
            "span_s": round(span, 1),
            "first": pts[0][1],
            "last": pts[-1][1],
            "min": min(p[1] for p in pts),
            "max": max(p[1] for p in pts),
            "slope_per_hour": round(b * 3600, 3),
            "growth_over_run": round(growth, 3),
            "noise_stdev": round(noise, 3),
            "flat": flat,
        }


class ProcessSampler:
    """Samples RSS and open files of some processes, and the bytes of some directories."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.series: dict[str, Series] = {}

    def _series(self, name: str, unit: str) -> Series:
        if name not in self.series:
            self.series[name] = Series(name, unit)
        return self.series[name]

    def sample(self, pids: dict[str, int], dirs: dict[str, Path] | None = None) -> None:
        t = time.monotonic() - self.started
        for name, pid in pids.items():
            rss, fds = rss_bytes(pid), open_fds(pid)
            if rss:  # a process gone between samples is not a zero
                self._series(f"{name}.rss", "bytes").add(t, rss)
                self._series(f"{name}.fds", "count").add(t, fds)
        for name, path in (dirs or {}).items():
            self._series(f"{name}.bytes", "bytes").add(t, dir_bytes(path))

    def summary(self, *, skip_s: float = 0.0) -> dict[str, dict[str, object]]:
        return {name: s.summary(skip_s=skip_s) for name, s in self.series.items()}


__all__ = [
    "CpuMeter",
    "ProcessSampler",
    "Series",
    "cmdline",
    "cpu_seconds",
    "descendants",
    "dir_bytes",
    "open_fds",
    "rss_bytes",
    "slope",
]

"""Helpers shared by the buffer tests."""

from __future__ import annotations

from protocols.reading import FLAG_ALARM, Reading
from protocols.tests.block_support import exact, workload

T0 = 1_764_547_200_000


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def reading(i: int, *, alarm: bool = False, sensor: str | None = None) -> Reading:
    """A varied, deterministic reading: floats with decimals, integers, text, booleans."""
    kind = i % 7
    s = sensor or f"sensor-{i % 13:03d}"
    ts = T0 + i * 250
    flags = FLAG_ALARM if alarm else 0
    if kind == 0:
        return Reading(s, "moisture", "%RH", round(30 + (i % 97) / 7, 2), ts, flags)
    if kind == 1:
        return Reading(s, "energy", "Wh", 1_000_000 + i * 37, ts, flags)
    if kind == 2:
        return Reading(s, "power", "W", float(800 + i % 50), ts, flags)
    if kind == 3:
        return Reading(s, "state", None, "open" if i % 2 else "closed", ts, flags)
    if kind == 4:
        return Reading(s, "occupied", "/", bool(i % 3), ts, flags)
    if kind == 5:
        return Reading(s, "temperature", "Cel", round(-5 + (i % 400) * 0.125, 3), ts, flags)
    return Reading(s, "ratio", "/", (i % 10) / 3, ts, flags)  # 16-17 digits: kept raw


__all__ = ["T0", "FakeClock", "exact", "reading", "workload"]

"""Report strategies: which samples of a sensor become readings. Pure, clock-free logic.

- `every`: each sample is a reading.
- `change`: a sample is reported when it moved beyond the deadband since the last reported
  one (|Δ| > deadband; strings and booleans on any change), when its unit changed, or when
  `heartbeat_s` passed since the last report (a steady value still shows it is alive).
- `aggregate`: samples are folded into windows aligned on the clock ([k·w, (k+1)·w) in UTC
  ms); when a window closes, it yields `<quantity>_mean`, `_min`, `_max`, `_count`
  (stamped with the window start, flagged FLAG_ESTIMATED) and `last` (the last sample itself,
  under its own name). A window closes when a sample of a later window arrives or when
  `flush(now_ms)` sees its end pass; `flush(None)` closes every open window (on stop).
  Strings and booleans cannot be averaged: their last sample is always reported.

Alarm samples (FLAG_ALARM) are always reported at once, whatever the strategy.
"""

from __future__ import annotations

from typing import TypeGuard

from edge.config import ReportStrategy
from protocols.reading import FLAG_ALARM, FLAG_ESTIMATED, Reading


def _numeric(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _decimals(value: float) -> int:
    """Decimal places of a float as written (21.35 → 2), at most 6."""
    text = repr(value)
    if "e" in text or "n" in text:  # 1e-07, nan, inf
        return 6
    point = text.find(".")
    return 0 if point < 0 else min(len(text) - point - 1, 6)


class Reporter:
    """Turns one sensor's samples into the readings to store."""

    def offer(self, reading: Reading) -> list[Reading]:
        raise NotImplementedError

    def flush(self, now_ms: int | None) -> list[Reading]:
        """Readings due at `now_ms` (None: everything pending, the daemon is stopping)."""
        return []


class EveryReporter(Reporter):
    def offer(self, reading: Reading) -> list[Reading]:
        return [reading]


class ChangeReporter(Reporter):
    __slots__ = ("_last", "_strategy")

    def __init__(self, strategy: ReportStrategy) -> None:
        self._strategy = strategy
        self._last: dict[str, Reading] = {}  # quantity -> last reported

    def offer(self, reading: Reading) -> list[Reading]:
        last = self._last.get(reading.quantity)
        if last is None or reading.flags & FLAG_ALARM or self._changed(last, reading):
            self._last[reading.quantity] = reading
            return [reading]
        return []

    def _changed(self, last: Reading, reading: Reading) -> bool:
        if reading.unit != last.unit:
            return True
        elapsed_ms = reading.ts_ms - last.ts_ms
        if elapsed_ms < 0 or elapsed_ms >= self._strategy.heartbeat_s * 1000:
            return True  # heartbeat due, or the clock went back
        old, new = last.value, reading.value
        if _numeric(old) and _numeric(new):
            return abs(new - old) > self._strategy.deadband_for(reading.quantity)
        return bool(new != old)


class _Window:
    __slots__ = ("count", "decimals", "high", "last", "low", "start", "total")

    def __init__(self, start: int, first: Reading) -> None:
        self.start = start
        self.count = 0
        self.total = 0.0
        self.low: int | float = 0
        self.high: int | float = 0
        self.decimals = 0
        self.last = first
        self.add(first)

    def add(self, reading: Reading) -> None:
        self.last = reading
        value = reading.value
        if not _numeric(value):
            return
        if self.count == 0:
            self.low = self.high = value
        else:
            if value < self.low:
                self.low = value
            if value > self.high:
                self.high = value
        self.count += 1
        self.total += value
        if isinstance(value, float):
            self.decimals = max(self.decimals, _decimals(value))


class AggregateReporter(Reporter):
    __slots__ = ("_open", "_strategy", "_window_ms")

    def __init__(self, strategy: ReportStrategy) -> None:
        self._strategy = strategy
        self._window_ms = max(1, round(strategy.window_s * 1000))
        self._open: dict[str, _Window] = {}  # quantity -> its open window

    def offer(self, reading: Reading) -> list[Reading]:
        out: list[Reading] = []
        if reading.flags & FLAG_ALARM:
            out.append(reading)
        start = reading.ts_ms - reading.ts_ms % self._window_ms
        window = self._open.get(reading.quantity)
        if window is not None and (window.start != start or window.last.unit != reading.unit):
            out += self._close(window)
            window = None
        if window is None:
            self._open[reading.quantity] = _Window(start, reading)
        else:
            window.add(reading)
        return out

    def flush(self, now_ms: int | None) -> list[Reading]:
        out: list[Reading] = []
        for quantity, window in sorted(self._open.items(), key=lambda item: item[1].start):
            if now_ms is None or window.start + self._window_ms <= now_ms:
                del self._open[quantity]
                out += self._close(window)
        return out

    def _close(self, window: _Window) -> list[Reading]:
        last = window.last
        sensor, q, unit, start = last.sensor, last.quantity, last.unit, window.start
        flags = (last.flags & ~FLAG_ALARM) | FLAG_ESTIMATED
        out: list[Reading] = []
        if window.count:
            for name in self._strategy.aggregates:
                if name == "mean":
                    mean = round(window.total / window.count, window.decimals + 2)
                    out.append(Reading(sensor, q + "_mean", unit, mean, start, flags))
                elif name == "min":
                    out.append(Reading(sensor, q + "_min", unit, window.low, start, flags))
                elif name == "max":
                    out.append(Reading(sensor, q + "_max", unit, window.high, start, flags))
                elif name == "count":
                    out.append(Reading(sensor, q + "_count", "count", window.count, start, flags))
        wants_last = "last" in self._strategy.aggregates or not _numeric(last.value)
        if wants_last and not last.flags & FLAG_ALARM:  # an alarm was reported when it came
            out.append(last)
        return out


def make_reporter(strategy: ReportStrategy) -> Reporter:
    if strategy.mode == "change":
        return ChangeReporter(strategy)
    if strategy.mode == "aggregate":
        return AggregateReporter(strategy)
    return EveryReporter()


__all__ = ["AggregateReporter", "ChangeReporter", "EveryReporter", "Reporter", "make_reporter"]

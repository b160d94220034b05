"""What every protocol session shares: the sink, the clock, decimation, error counting."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from edge.sources import ReadingSink, SourceState
from edge.sources.serial._config import DeviceConfig, SerialPortConfig
from edge.sources.serial._transport import SerialTransport
from protocols.reading import Measurement, Reading

Clock = Callable[[], int]  # UTC milliseconds

NOISE = "noise"  # bytes outside any frame (line noise, a stream joined mid-frame)
SILENCE = "silence"  # a passive stream stopped talking
NO_RESPONSE = "no_response"  # a polled device did not answer in time
UNPLUGGED = "unplugged"  # the port went away while open
UNAVAILABLE = "unavailable"  # the port cannot be opened


def utc_ms() -> int:
    return time.time_ns() // 1_000_000


class Session:
    """One protocol over one open port. `run(transport)` returns only by raising
    `PortLost` (or being cancelled): every error of the devices is counted, never raised."""

    def __init__(self, config: SerialPortConfig, sink: ReadingSink, clock: Clock) -> None:
        self.config = config
        self.sink = sink
        self.clock = clock
        self.source = config.source_name
        self._last_emit: dict[object, float] = {}
        self.readings = 0

    async def run(self, transport: SerialTransport) -> None:
        raise NotImplementedError

    def count(self, sensor: str, reason: str, detail: str = "") -> None:
        self.sink.count_error(sensor, reason, detail)

    def due(self, key: object, interval: float) -> bool:
        """Decimation of passive streams: at most one hand-over per `interval` per key."""
        if interval <= 0:
            return True
        now = time.monotonic()
        last = self._last_emit.get(key)
        if last is not None and now - last < interval:
            return False
        self._last_emit[key] = now
        return True

    async def emit(
        self, device: DeviceConfig, measurements: Iterable[Measurement], ts_ms: int | None = None
    ) -> None:
        ts = self.clock() if ts_ms is None else ts_ms
        measurements = list(measurements)
        datum = device.level_datum()
        if datum is not None:
            found = datum.level(measurements)
            if found is not None:
                measurements.append(found)
        for m in measurements:
            await self.sink.put(Reading(device.sensor, m.name, m.unit, m.value, ts))
            self.readings += 1


class SilenceWatch:
    """Counts a `silence` error once a passive stream has said nothing valid for `limit`
    seconds, reports it in the source state, and clears it when frames come back."""

    def __init__(self, session: Session, sensor: str, limit: float) -> None:
        self.session = session
        self.sensor = sensor
        self.limit = limit
        self.last = time.monotonic()
        self.silent = False

    def heard(self) -> None:
        self.last = time.monotonic()
        if self.silent:
            self.silent = False
            self.session.sink.set_state(self.session.source, SourceState.UP)

    def remaining(self) -> float:
        return max(0.0, self.last + self.limit - time.monotonic())

    def check(self) -> None:
        quiet = time.monotonic() - self.last
        if not self.silent and quiet >= self.limit:
            self.silent = True
            detail = f"no valid frame for {quiet:.1f} s"
            self.session.count(self.sensor, SILENCE, detail)
            self.session.sink.set_state(self.session.source, SourceState.UP, detail)


__all__ = [
    "NOISE",
    "NO_RESPONSE",
    "SILENCE",
    "UNAVAILABLE",
    "UNPLUGGED",
    "Clock",
    "Session",
    "SilenceWatch",
    "utc_ms",
]

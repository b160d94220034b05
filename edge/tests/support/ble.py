"""Shared pieces of the BLE tests (no tests here): a recording sink, a world with fast
sensors, and waiting helpers. Everything runs on the real bumble stack: emulated
controllers on a link, bumble hosts, bleak on top."""

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from edge.simulators.ble import RadioWorld
from edge.sources.ble import BleDeviceConfig, BleOptions, BleSource
from protocols.reading import Reading

# Sensors advertise every 20 ms and measure every 250 ms in the tests: each measurement
# is advertised about ten times (plus as many scan responses), which de-duplication must
# reduce to one reading per value.
FAST = {"advertising_interval": 0.02, "update_interval": 0.25}

# Short time limits so that faults show within a second.
OPTIONS = BleOptions(
    absent_after=0.6,
    connect_timeout=0.5,
    poll_timeout=2.0,
    poll_attempts=3,
    retry_delay=0.05,
    adapter_backoff=0.1,
    adapter_backoff_max=0.2,
)


@dataclass
class RecordingSink:
    """A `ReadingSink` that keeps everything it is told."""

    readings: list[Reading] = field(default_factory=list)
    errors: list[tuple[str, str, str]] = field(default_factory=list)
    states: list[tuple[str, str, str]] = field(default_factory=list)

    async def put(self, reading: Reading) -> None:
        self.readings.append(reading)

    def count_error(self, sensor: str, reason: str, detail: str = "") -> None:
        self.errors.append((sensor, reason, detail))

    def set_state(self, source: str, state: str, detail: str = "") -> None:
        self.states.append((source, state, detail))

    def of(self, sensor: str) -> list[Reading]:
        return [r for r in self.readings if r.sensor == sensor]

    def error_counts(self, sensor: str) -> Counter[str]:
        return Counter(reason for s, reason, _ in self.errors if s == sensor)

    @property
    def state(self) -> str | None:
        return self.states[-1][1] if self.states else None


async def wait_for(condition: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Poll `condition` every 20 ms until true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(source: BleSource, sink: RecordingSink) -> AsyncIterator[asyncio.Task[None]]:
    """Run `source` as a named task for the block; cancel it after; re-raise its crash."""
    task = asyncio.create_task(source.run(sink), name=f"test:{source.name}")
    try:
        yield task
    finally:
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5.0)
        assert done, "the source did not stop within 5 s of cancellation"
        if not task.cancelled() and task.exception() is not None:
            raise AssertionError("the source crashed") from task.exception()


@contextlib.asynccontextmanager
async def world() -> AsyncIterator[RadioWorld]:
    async with RadioWorld(name="test", seed=1) as radio:
        yield radio


def source_for(
    backend: str, *devices: BleDeviceConfig, options: BleOptions = OPTIONS, name: str = "ble"
) -> BleSource:
    return BleSource(devices, backend=backend, name=name, options=options)


def value_rows(readings: list[Reading], quantities: tuple[str, ...]) -> list[tuple[object, ...]]:
    """Readings grouped by advertisement (same timestamp), as tuples of `quantities`."""
    rows: dict[int, dict[str, object]] = {}
    for r in readings:
        rows.setdefault(r.ts_ms, {})[r.quantity] = r.value
    return [tuple(row.get(q) for q in quantities) for _, row in sorted(rows.items())]


def contiguous_in(rows: list[tuple[object, ...]], advertised: list[tuple[object, ...]]) -> bool:
    """Whether `rows` is `advertised[i:i+len(rows)]` for some i: each advertised
    measurement heard exactly once, in order, none invented."""
    n = len(rows)
    return any(advertised[i : i + n] == rows for i in range(len(advertised) - n + 1))


def in_order_in(rows: list[tuple[object, ...]], advertised: list[tuple[object, ...]]) -> bool:
    """Whether `rows` is a subsequence of `advertised`: none invented, none heard twice,
    in the order advertised; some may be missed (a radio that is busy misses beacons)."""
    remaining = iter(advertised)
    return all(any(row == a for a in remaining) for row in rows)

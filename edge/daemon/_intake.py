"""The daemon's `ReadingSink`: what sources hand their samples to.

    source ──put(sample)──▶ rename/ignore/unit ──▶ health ──▶ report strategy ──▶ bounded queue

`put` waits when the queue is full (back-pressure: a source slows down rather than memory
growing); if the queue stays full for `put_timeout_s` (the buffer writer is stuck on a dying
disk), the reading is dropped and counted as `queue_full`, so that a source never hangs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from edge.config import SensorConfig
from edge.daemon._strategy import Reporter, make_reporter
from edge.health import HealthRegistry
from protocols.reading import Reading

log = logging.getLogger("estran.edge.daemon")

DROP_LOG_INTERVAL_S = 30.0


class SensorPipeline:
    """One sensor's settings applied to its samples: renames, ignored quantities, units,
    then its report strategy."""

    __slots__ = ("config", "reporter")

    def __init__(self, config: SensorConfig) -> None:
        self.config = config
        self.reporter: Reporter = make_reporter(config.report)

    def transform(self, reading: Reading) -> Reading | None:
        """The sample as published (renamed, unit set), or None when it is ignored."""
        c = self.config
        if not (c.rename or c.units or c.ignore):
            return reading
        if reading.quantity in c.ignore:
            return None
        quantity = c.rename.get(reading.quantity, reading.quantity)
        unit = c.units.get(quantity, reading.unit)
        if quantity == reading.quantity and unit == reading.unit:
            return reading
        return Reading(reading.sensor, quantity, unit, reading.value, reading.ts_ms, reading.flags)


class Intake:
    """Implements `edge.sources.ReadingSink` for every source of the daemon."""

    def __init__(
        self, health: HealthRegistry, queue: asyncio.Queue[Reading], put_timeout_s: float
    ) -> None:
        self.health = health
        self.queue = queue
        self.put_timeout_s = put_timeout_s
        self._pipelines: dict[str, SensorPipeline] = {}
        self._last_drop_log = 0.0

    # -- configuration -------------------------------------------------------------------

    def configure(self, sensors: Mapping[str, SensorConfig]) -> tuple[list[str], list[Reading]]:
        """Apply the sensors' settings. Sensors whose settings did not change keep their
        strategy state; the others get a new one, and what their old one still held (an
        open aggregate window) is returned to be stored. Returns (changed ids, readings)."""
        pending: list[Reading] = []
        changed: list[str] = []
        pipelines: dict[str, SensorPipeline] = {}
        for sensor_id, config in sensors.items():
            old = self._pipelines.get(sensor_id)
            if old is not None and old.config == config:
                pipelines[sensor_id] = old
                continue
            if old is not None:
                pending += old.reporter.flush(None)
            changed.append(sensor_id)
            pipelines[sensor_id] = SensorPipeline(config)
        for sensor_id, old in self._pipelines.items():
            if sensor_id in sensors:
                continue
            if old.config == SensorConfig(sensor_id):  # read with defaults, and still is
                pipelines[sensor_id] = old
                continue
            pending += old.reporter.flush(None)
            changed.append(sensor_id)
        self._pipelines = pipelines
        return changed, pending

    def pipeline(self, sensor_id: str) -> SensorPipeline:
        found = self._pipelines.get(sensor_id)
        if found is None:  # a sensor the configuration does not name: defaults
            found = self._pipelines[sensor_id] = SensorPipeline(SensorConfig(sensor_id))
        return found

    # -- ReadingSink ---------------------------------------------------------------------

    async def put(self, reading: Reading) -> None:
        pipeline = self.pipeline(reading.sensor)
        sample = pipeline.transform(reading)
        if sample is None:
            return
        self.health.sample(sample)
        out = pipeline.reporter.offer(sample)
        if out:
            self.health.reported(sample.sensor, len(out))
            for item in out:
                await self.enqueue(item)

    def count_error(self, sensor: str, reason: str, detail: str = "") -> None:
        self.health.count_error(sensor, reason, detail)

    def set_state(self, source: str, state: str, detail: str = "") -> None:
        self.health.set_state(source, state, detail)

    # -- the daemon's side ---------------------------------------------------------------

    async def enqueue(self, reading: Reading) -> None:
        """Into the bounded queue: at once if there is room, else wait up to put_timeout_s."""
        try:
            self.queue.put_nowait(reading)
            return
        except asyncio.QueueFull:
            self.health.queue_waits += 1
        try:
            async with asyncio.timeout(self.put_timeout_s):
                await self.queue.put(reading)
        except TimeoutError:
            self._dropped(reading)

    def enqueue_nowait(self, readings: list[Reading]) -> None:
        """Best effort, for the readings a reload or a stop flushes out of the strategies."""
        for reading in readings:
            try:
                self.queue.put_nowait(reading)
            except asyncio.QueueFull:
                self._dropped(reading)

    def due(self, now_ms: int | None) -> list[Reading]:
        """Readings whose time has come (closed aggregate windows); None: all pending."""
        out: list[Reading] = []
        for sensor_id, pipeline in self._pipelines.items():
            readings = pipeline.reporter.flush(now_ms)
            if readings:
                self.health.reported(sensor_id, len(readings))
                out += readings
        return out

    def _dropped(self, reading: Reading) -> None:
        self.health.queue_dropped += 1
        self.health.count_error(reading.sensor, "queue_full", "the buffer writer is not keeping up")
        now = time.monotonic()
        if now - self._last_drop_log >= DROP_LOG_INTERVAL_S:
            self._last_drop_log = now
            log.warning(
                "queue full for %.0f s: reading dropped (%d so far); is the disk stuck?",
                self.put_timeout_s,
                self.health.queue_dropped,
            )


__all__ = ["Intake", "SensorPipeline"]

"""What the daemon knows of its own health, kept as counters and served as one JSON object.

The daemon's `ReadingSink` feeds it (samples, errors by reason, source states); the buffer
writer and the uplink are read through providers when a snapshot is taken. `snapshot()` is
what the status socket serves and `estran edge status` shows; `footprint()` is the compact
part that goes to the hub in the gateway's state messages, with `source_health()` (each
source ok / degraded / down) and `restart_pending` (settings that wait for a restart).
"""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping

from edge.health._process import cpu_seconds, io_write_bytes, rss_bytes
from edge.health._status import BufferStatus, QueueStatus, StatusSnapshot, UplinkStatus
from protocols import wire
from protocols.reading import Reading

BufferProvider = Callable[[], BufferStatus]
UplinkProvider = Callable[[], UplinkStatus]
QueueProvider = Callable[[], QueueStatus]
SNAPSHOT_VERSION = 1


def _now_ms() -> int:
    return int(time.time() * 1000)


def _json_value(value: object) -> object:
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes):
        return value.hex()
    return repr(value)


class _Errors:
    __slots__ = ("by_reason", "last")

    def __init__(self) -> None:
        self.by_reason: Counter[str] = Counter()
        self.last: dict[str, object] | None = None

    def count(self, reason: str, detail: str, now_ms: int) -> None:
        self.by_reason[reason] += 1
        self.last = {"reason": reason, "detail": detail[:200], "ts_ms": now_ms}


class SensorHealth:
    __slots__ = ("errors", "last_seen_ms", "reported", "samples", "source", "values")

    def __init__(self, source: str | None) -> None:
        self.source = source
        self.last_seen_ms: int | None = None
        self.samples = 0
        self.reported = 0
        self.values: dict[str, tuple[object, str | None, int]] = {}
        self.errors = _Errors()

    def as_dict(self, now_ms: int) -> dict[str, object]:
        return {
            "source": self.source,
            "last_seen_ms": self.last_seen_ms,
            "last_seen_age_s": (
                None if self.last_seen_ms is None else round((now_ms - self.last_seen_ms) / 1000, 1)
            ),
            "samples": self.samples,
            "reported": self.reported,
            "values": {
                q: {"value": _json_value(v), "unit": u, "ts_ms": ts}
                for q, (v, u, ts) in sorted(self.values.items())
            },
            "errors": dict(sorted(self.errors.by_reason.items())),
            "last_error": self.errors.last,
        }


class SourceHealth:
    __slots__ = ("crashes", "detail", "errors", "last_crash", "since_ms", "state")

    def __init__(self, now_ms: int) -> None:
        self.state = "starting"
        self.detail = ""
        self.since_ms = now_ms
        self.crashes = 0
        self.last_crash: dict[str, object] | None = None
        self.errors = _Errors()

    def as_dict(self) -> dict[str, object]:
        return {
            "state": self.state,
            "detail": self.detail,
            "since_ms": self.since_ms,
            "crashes": self.crashes,
            "last_crash": self.last_crash,
            "errors": dict(sorted(self.errors.by_reason.items())),
            "last_error": self.errors.last,
        }


class HealthRegistry:
    """Counters of one daemon. Cheap to update (called for every sample), consistent to read."""

    def __init__(self, gateway_id: str, software: str | None = None) -> None:
        self.gateway_id = gateway_id
        self.software = software
        self.started_ms = _now_ms()
        self.sensors: dict[str, SensorHealth] = {}
        self.sources: dict[str, SourceHealth] = {}
        self.tasks: dict[str, SourceHealth] = {}  # supervised tasks that are not sources (uplink)
        self.queue_dropped = 0  # readings dropped because the queue stayed full
        self.queue_waits = 0  # puts that had to wait (back-pressure)
        self.config: dict[str, object] = {}
        self.buffer: BufferProvider | None = None
        self.uplink: UplinkProvider | None = None
        self.queue: QueueProvider | None = None
        self.restart_pending: list[str] = []  # settings changed that wait for a restart
        self.on_change: Callable[[], None] | None = None  # a source went up or down, ...
        self._base_cpu = cpu_seconds()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def set_restart_pending(self, names: list[str]) -> None:
        if names != self.restart_pending:
            self.restart_pending = list(names)
            self._changed()

    # -- configuration -------------------------------------------------------------------

    def configure(
        self,
        sensors: Mapping[str, str | None],
        sources: list[str],
        tasks: list[str] | None = None,
    ) -> None:
        """The sensors (id → source name), sources and other supervised tasks of the
        configuration now in force; counters of those that stay are kept, those removed are
        forgotten."""
        self.sensors = {
            sensor: self.sensors.get(sensor) or SensorHealth(source)
            for sensor, source in sensors.items()
        }
        for sensor, source in sensors.items():
            self.sensors[sensor].source = source
        now = _now_ms()
        self.sources = {name: self.sources.get(name) or SourceHealth(now) for name in sources}
        self.tasks = {name: self.tasks.get(name) or SourceHealth(now) for name in tasks or []}
        for task in self.tasks.values():
            if task.state == "starting":
                task.state = "running"

    # -- the sink's side -----------------------------------------------------------------

    def sample(self, reading: Reading) -> None:
        health = self.sensors.get(reading.sensor)
        if health is None:
            health = self.sensors[reading.sensor] = SensorHealth(None)
        health.samples += 1
        health.last_seen_ms = reading.ts_ms
        health.values[reading.quantity] = (reading.value, reading.unit, reading.ts_ms)

    def reported(self, sensor: str, count: int) -> None:
        health = self.sensors.get(sensor)
        if health is not None:
            health.reported += count

    def count_error(self, name: str, reason: str, detail: str = "") -> None:
        now = _now_ms()
        sensor = self.sensors.get(name)
        if sensor is not None:
            sensor.errors.count(reason, detail, now)
            return
        source = self.sources.get(name)
        if source is None:
            source = self.sources[name] = SourceHealth(now)
        source.errors.count(reason, detail, now)

    def set_state(self, name: str, state: str, detail: str = "") -> None:
        source = self.sources.get(name)
        now = _now_ms()
        if source is None:
            source = self.sources[name] = SourceHealth(now)
        changed = source.state != state
        if changed:
            source.since_ms = now
        source.state = state
        source.detail = detail[:200]
        if changed:
            self._changed()

    def crashed(self, name: str, error: str, restart_in_s: float) -> None:
        now = _now_ms()
        source = self.tasks.get(name) or self.sources.get(name)
        if source is None:
            source = self.sources[name] = SourceHealth(now)
        source.crashes += 1
        source.last_crash = {"error": error[:300], "ts_ms": now}
        source.state = "restarting"
        source.since_ms = now
        source.detail = f"crashed, restart in {restart_in_s:g} s: {error}"[:200]
        self._changed()

    # -- reading ---------------------------------------------------------------------------

    def footprint(self) -> dict[str, object]:
        """Compact figures for the hub: memory, CPU, flash writes, bytes sent, readings."""
        buffer: BufferStatus = self.buffer() if self.buffer is not None else {}
        uplink: UplinkStatus = self.uplink() if self.uplink is not None else {}
        written = io_write_bytes()  # the process' writes: the buffer's, mostly
        return {
            "rss_bytes": rss_bytes(),
            "cpu_s": round(cpu_seconds() - self._base_cpu, 3),
            "flash_write_bytes": written,
            "io_write_bytes": written,
            "bytes_sent": uplink.get("bytes_sent"),
            "samples": sum(s.samples for s in self.sensors.values()),
            "reported": sum(s.reported for s in self.sensors.values()),
            "dropped": self.queue_dropped + buffer.get("dropped", 0),
            "uptime_s": round((_now_ms() - self.started_ms) / 1000, 1),
            # the hub's buffer_quota alert rule compares these two
            "buffer_bytes": buffer.get("bytes"),
            "quota_bytes": buffer.get("quota_bytes"),
        }

    def source_health(self) -> list[wire.SourceHealth]:
        """Each source as the hub sees it: down unless up; up is degraded when its latest
        error (its own or one of its sensors') is newer than both its latest reading and the
        moment it came up; errors by reason summed over the source and its sensors."""
        out = []
        for name, source in sorted(self.sources.items()):
            errors: Counter[str] = Counter(source.errors.by_reason)
            last_ms: int | None = None
            last_error_ms = _error_ms(source.errors)
            for sensor in self.sensors.values():
                if sensor.source != name:
                    continue
                errors.update(sensor.errors.by_reason)
                if sensor.last_seen_ms is not None:
                    last_ms = max(last_ms or 0, sensor.last_seen_ms)
                sensor_error = _error_ms(sensor.errors)
                if sensor_error is not None:
                    last_error_ms = max(last_error_ms or 0, sensor_error)
            if source.state != "up":
                status = wire.SOURCE_DOWN
            elif last_error_ms is not None and last_error_ms > max(last_ms or 0, source.since_ms):
                status = wire.SOURCE_DEGRADED
            else:
                status = wire.SOURCE_OK
            detail = None
            if status != wire.SOURCE_OK:
                detail = source.detail or source.state
                if status == wire.SOURCE_DEGRADED and source.errors.last is None:
                    detail = "errors since its last reading"
            top = {_clip(r): n for r, n in errors.most_common(wire.MAX_SOURCE_ERRORS) if r}
            out.append(
                wire.SourceHealth(
                    _clip(name), status, last_ms, top, None if detail is None else _clip(detail)
                )
            )
        return out[: wire.MAX_SOURCES]

    def snapshot(self) -> StatusSnapshot:
        """Everything, as one JSON-ready dict (the status socket's answer)."""
        now = _now_ms()
        queue: QueueStatus = self.queue() if self.queue is not None else {}
        queue = {**queue, "dropped": self.queue_dropped, "waits": self.queue_waits}
        return {
            "version": SNAPSHOT_VERSION,
            "gateway": self.gateway_id,
            "software": self.software,
            "pid": os.getpid(),
            "now_ms": now,
            "started_ms": self.started_ms,
            "config": self.config,
            "sensors": {name: s.as_dict(now) for name, s in sorted(self.sensors.items())},
            "sources": {name: s.as_dict() for name, s in sorted(self.sources.items())},
            "tasks": {name: t.as_dict() for name, t in sorted(self.tasks.items())},
            "queue": queue,
            "buffer": self.buffer() if self.buffer is not None else None,
            "uplink": self.uplink() if self.uplink is not None else None,
            "footprint": self.footprint(),
            "restart_pending": list(self.restart_pending),
        }


def _clip(text: str) -> str:
    """`text` cut to what a wire text field holds (MAX_TEXT bytes of UTF-8)."""
    data = text.encode("utf-8")
    if len(data) <= wire.MAX_TEXT:
        return text
    return data[: wire.MAX_TEXT].decode("utf-8", "ignore")


def _error_ms(errors: _Errors) -> int | None:
    ts = errors.last.get("ts_ms") if errors.last is not None else None
    return ts if isinstance(ts, int) else None


__all__ = [
    "SNAPSHOT_VERSION",
    "BufferProvider",
    "HealthRegistry",
    "QueueProvider",
    "SensorHealth",
    "SourceHealth",
    "UplinkProvider",
]

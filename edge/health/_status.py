"""The typed sections of the daemon's status snapshot (what the status socket serves and
`estran edge status` shows): one shape per section, written once, which the providers build
and the registry reads. JSON-ready: plain ints, floats, strings, lists and dicts.

Keys are flat, as the snapshot has always had them (`buffer.depth`, `uplink.acked_readings`).
A section is `total=False`: the parts a daemon does not have (no buffer open yet, no uplink
task) are left out rather than guessed.
"""

from __future__ import annotations

from typing import TypedDict


class QueueStatus(TypedDict, total=False):
    """The bounded queue between the sources and the buffer writer."""

    depth: int
    capacity: int
    dropped: int  # readings dropped because the queue stayed full
    waits: int  # puts that had to wait (back-pressure)


class BufferStatus(TypedDict, total=False):
    """The buffer (`edge.buffer.BufferStats`) and its writer (`edge.daemon.WriterStats`)."""

    # the buffer
    depth: int  # readings not yet acknowledged (pending ones included)
    pending: int  # accepted, not yet committed
    oldest_ts_ms: int | None
    oldest_age_s: float
    bytes: int  # segment files on disk
    segments: int
    quota_bytes: int
    policy: str
    durable_seq: int
    next_seq: int
    acked_ranges: int
    dropped_by_sensor: dict[str, int]
    dropped_total: int
    dropped: int  # the same as dropped_total (the footprint's name)
    quarantined_readings: int
    quarantined_files: int
    # its writer
    appended: int
    commits: int
    commit_max_ms: float
    commit_mean_ms: float | None
    refused: dict[str, int]  # readings the buffer refused, by reason
    errors: int
    last_error: str | None


class UplinkStatus(TypedDict, total=False):
    """The uplink (`edge.uplink.Uplink.status()`) and its supervised task."""

    state: str  # disabled, starting, connected, disconnected
    broker: str  # host:port
    # its counters (edge.uplink.UplinkStats)
    session: int
    connects: int
    mqtt5: bool | None
    batches_sent: int
    live_batches: int
    historical_batches: int
    readings_sent: int
    resent_batches: int
    rescans: int
    timeouts: int
    acked_readings: int
    rejected_readings: int
    bad_acks: int
    wire_bytes: int  # MQTT packets both ways
    bytes_sent: int  # the part this side sends
    batch_size: int
    ack_timeout_s: float
    srtt_s: float | None
    in_flight: int
    tls: bool
    tls_errors: int
    last_error: str | None
    # the supervised task
    crashes: int
    last_crash: dict[str, object] | None


class StatusSnapshot(TypedDict):
    """The whole snapshot (`HealthRegistry.snapshot()`), version SNAPSHOT_VERSION."""

    version: int
    gateway: str
    software: str | None
    pid: int
    now_ms: int
    started_ms: int
    config: dict[str, object]  # path, loaded_ms, reloads, last_reload(_error)
    sensors: dict[str, dict[str, object]]  # SensorHealth.as_dict() by sensor id
    sources: dict[str, dict[str, object]]  # SourceHealth.as_dict() by source name
    tasks: dict[str, dict[str, object]]  # the supervised tasks that are not sources
    queue: QueueStatus
    buffer: BufferStatus | None  # None: no buffer open (yet)
    uplink: UplinkStatus | None  # None: no provider (a daemon under test)
    footprint: dict[str, object]  # what goes to the hub in the state messages
    restart_pending: list[str]


__all__ = ["BufferStatus", "QueueStatus", "StatusSnapshot", "UplinkStatus"]

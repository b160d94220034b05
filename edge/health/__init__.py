"""Health and footprint of the gateway daemon: counters, the status socket, the figures the
hub receives in the gateway's state messages."""

from edge.health._process import cpu_seconds, io_write_bytes, process_footprint, rss_bytes
from edge.health._registry import (
    SNAPSHOT_VERSION,
    BufferProvider,
    HealthRegistry,
    QueueProvider,
    UplinkProvider,
)
from edge.health._server import (
    StatusServer,
    StatusUnavailable,
    ble_sources,
    daemon_using_ble,
    read_status,
)
from edge.health._status import BufferStatus, QueueStatus, StatusSnapshot, UplinkStatus

__all__ = [
    "SNAPSHOT_VERSION",
    "BufferProvider",
    "BufferStatus",
    "HealthRegistry",
    "QueueProvider",
    "QueueStatus",
    "StatusServer",
    "StatusSnapshot",
    "StatusUnavailable",
    "UplinkProvider",
    "UplinkStatus",
    "ble_sources",
    "cpu_seconds",
    "daemon_using_ble",
    "io_write_bytes",
    "process_footprint",
    "read_status",
    "rss_bytes",
]

"""Uplink settings (the buffer side it drains is edge.buffer.BlockLog)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edge.uplink._errors import UplinkConfigError
from protocols import settings

# What the configuration file sets defaults to the schema's (`[uplink]`, protocols.settings).
_SCHEMA: dict[str, Any] = settings.defaults("uplink")


@dataclass(frozen=True, slots=True)
class BrokerUrl:
    host: str
    port: int
    tls: bool = False  # mqtts://: TLS, the hub's certificate and host name verified

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        """`uplink.broker` as the schema reads it (`protocols.settings.parse_broker`)."""
        try:
            host, port, tls = settings.parse_broker(url)
        except ValueError as e:
            raise UplinkConfigError(f"broker {url!r}: {e}") from e
        return cls(host, port, tls)


@dataclass(frozen=True, slots=True)
class UplinkConfig:
    """How the uplink drains the buffer. Rates are in readings per second."""

    gateway_id: str
    broker: str  # mqtt://host:port or mqtts://host:port (TLS, default port 8883)
    state_dir: Path  # where the session counter lives (the gateway's data directory)
    protocol: Literal["auto", "5", "3.1.1"] = _SCHEMA["protocol"]  # auto: MQTT 5, else 3.1.1
    window: int = 4  # data batches in flight (one slot is kept for live readings)
    batch_initial: int = 4096  # readings per batch at start; then adapted
    batch_min: int = 256
    batch_max: int = 32768
    max_batch_bytes: int = 512 * 1024  # block bytes per batch, before deflate
    ack_target_s: float = 1.5  # batch size adapts so that acks come back within this
    ack_timeout_min_s: float = 2.0
    ack_timeout_max_s: float = 30.0
    backlog_rate: float = _SCHEMA["backlog_rate"]  # token bucket on the backlog (0: unlimited)
    backlog_burst: int = _SCHEMA["backlog_burst"]
    compress: int = _SCHEMA["compress"]  # zlib level for data batches (0: off)
    # how often new (live) blocks are looked for, at the latest: `Uplink.committed()` (the
    # buffer's writer, after a commit) has them looked for at once
    poll_interval_s: float = 0.1
    ack_flush_interval_s: float = 0.25  # acks are applied to the buffer in groups
    state_interval_s: float = _SCHEMA["state_interval"]  # online state (with the backlog)
    keepalive_s: int = _SCHEMA["keepalive"]
    connect_timeout_s: float = 10.0
    reconnect_min_s: float = 0.25
    reconnect_max_s: float = 30.0
    unsupported_retry_s: float = 60.0  # a batch the hub cannot read yet waits this long
    # how often, once the backlog is sent, the buffer is looked through for readings the
    # sending cursors passed by (blocks rewritten by a compaction: Uplink._left_behind)
    rescan_interval_s: float = 2.0
    software: str | None = None
    username: str | None = None  # broker credentials (what enrollment writes)
    password: str | None = field(default=None, repr=False)
    # mqtts://: the CA that signed the hub's certificate; None: the one enrollment kept in
    # state_dir (hub-ca.crt), else the system's CAs
    ca_file: Path | None = None

    def validate(self) -> None:
        from protocols import wire

        if not wire.valid_gateway_id(self.gateway_id):
            raise UplinkConfigError(f"invalid gateway id {self.gateway_id!r}")
        BrokerUrl.parse(self.broker)
        if self.window < 2:
            raise UplinkConfigError("window must be at least 2 (one slot is for live readings)")
        if not 0 < self.batch_min <= self.batch_initial <= self.batch_max:
            raise UplinkConfigError("need 0 < batch_min <= batch_initial <= batch_max")
        if self.batch_max > wire.MAX_BATCH_READINGS:
            raise UplinkConfigError(f"batch_max above {wire.MAX_BATCH_READINGS}")
        if self.protocol not in ("auto", "5", "3.1.1"):
            raise UplinkConfigError("protocol is auto, 5 or 3.1.1")


__all__ = ["BrokerUrl", "UplinkConfig"]

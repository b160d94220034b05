"""Brokers for tests: the embedded one, or a private Mosquitto started on a free port.

Mosquitto is found at $ESTRAN_MOSQUITTO (default /usr/sbin/mosquitto); when absent the test
skips, or fails under CI=true (services.unavailable).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from estran.rig import MOSQUITTO, PrivateMosquitto, Unavailable, free_port
from hub._broker import EmbeddedBroker
from hub.broker import BrokerLimits
from hub.tests.services import unavailable

BROKERS = ["embedded", "mosquitto"]


@contextlib.asynccontextmanager
async def mosquitto(conf: Path, port: int) -> AsyncIterator[int]:
    """Run `mosquitto -c conf` (which listens on `port`); yield its pid; SIGTERM at the end."""
    broker = PrivateMosquitto(conf.parent, port, conf=conf)
    try:
        await broker.start()
    except Unavailable as e:
        unavailable(str(e))
    try:
        assert broker.pid is not None
        yield broker.pid
    finally:
        await broker.stop(10)


@contextlib.asynccontextmanager
async def open_broker(
    kind: str, directory: Path, limits: BrokerLimits | None = None
) -> AsyncIterator[int]:
    """An anonymous broker of `kind` ("embedded" or "mosquitto") on a free port; yields it."""
    port = free_port()
    if kind == "embedded":
        async with EmbeddedBroker("127.0.0.1", port, None, None, limits):
            yield port
        return
    conf = directory / f"mosquitto-{port}.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false"]
    if limits is not None:
        lines.append(f"max_packet_size {limits.max_packet_size}")
        lines.append(f"max_queued_messages {limits.max_queued}")
    conf.write_text("\n".join(lines) + "\n")
    async with mosquitto(conf, port):
        yield port


__all__ = ["BROKERS", "MOSQUITTO", "mosquitto", "open_broker"]

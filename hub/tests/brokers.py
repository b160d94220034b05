"""Brokers for tests: the embedded one, or a private Mosquitto started on a free port.

Mosquitto is found at $ESTRAN_MOSQUITTO (default /usr/sbin/mosquitto); when absent the test
skips, or fails under CI=true (services.unavailable).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

from hub._broker import EmbeddedBroker
from hub.broker import BrokerLimits
from hub.tests.services import free_port, unavailable

MOSQUITTO = os.environ.get("ESTRAN_MOSQUITTO", "/usr/sbin/mosquitto")
BROKERS = ["embedded", "mosquitto"]


@contextlib.asynccontextmanager
async def mosquitto(conf: Path, port: int) -> AsyncIterator[int]:
    """Run `mosquitto -c conf` (which listens on `port`); yield its pid; SIGTERM at the end."""
    if not Path(MOSQUITTO).exists():
        unavailable(f"mosquitto not found at {MOSQUITTO}")
    proc = await asyncio.create_subprocess_exec(
        MOSQUITTO,
        "-c",
        str(conf),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.returncode is not None:
                    err = await proc.stderr.read() if proc.stderr else b""
                    raise RuntimeError(f"mosquitto did not start: {err.decode()}") from None
                await asyncio.sleep(0.05)
        yield proc.pid
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


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

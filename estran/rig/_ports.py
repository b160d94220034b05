"""Loopback ports: a free one, and waiting until something listens on one (bounded)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable

from estran.rig._errors import RigError

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nothing listens on right now (the kernel's choice; bound, then released).

    Also the way to get a port that refuses connections: nobody will listen on it."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def wait_port(port: int, timeout: float, host: str = LOOPBACK) -> None:
    """Return once a TCP connection to host:port succeeds; RigError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 1)
            writer.close()
            return
        except (OSError, TimeoutError):
            if time.monotonic() > deadline:
                raise RigError(f"nothing listens on {host}:{port} after {timeout:g} s") from None
            await asyncio.sleep(0.05)


async def until(what: str, check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    """Return once `check()` is true, polling twice a second; AssertionError naming `what`
    after `timeout` seconds (a test's bounded wait)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(0.5)


def wait_port_blocking(port: int, timeout: float, host: str = LOOPBACK) -> None:
    """`wait_port` for code without an event loop (subprocess-driven tests)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RigError(f"nothing listens on {host}:{port} after {timeout:g} s") from None
            time.sleep(0.05)


__all__ = ["LOOPBACK", "free_port", "until", "wait_port", "wait_port_blocking"]

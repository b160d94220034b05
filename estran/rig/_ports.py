"""Loopback ports: a free one, and waiting until something listens on one (bounded)."""

from __future__ import annotations

import asyncio
import inspect
import random
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

from estran.rig._errors import RigError

LOOPBACK = "127.0.0.1"
T = TypeVar("T")


# Ports handed out by this process: never handed twice (a caller may not have bound it yet).
_handed: set[int] = set()
# Below the kernel's ephemeral range (ip_local_port_range, 32768-60999 by default), so an
# outgoing connection's source port cannot take a port between `free_port()` and the bind.
_LOWEST, _TRIES = 20000, 200


def _ephemeral_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nothing listens on right now, outside the kernel's ephemeral range.

    The kernel's own choice (bind to port 0) comes from the ephemeral range, the one outgoing
    connections draw their source ports from: on a busy test run one of them took such a port
    before the hub bound it ("Address already in use"). So the port is drawn at random below
    that range and checked by binding it. Also the way to get a port that refuses
    connections: nobody will listen on it."""
    top = _ephemeral_start()
    rng = random.SystemRandom()
    for _ in range(_TRIES):
        port = rng.randrange(_LOWEST, top) if top > _LOWEST + 1000 else 0
        if port in _handed:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            port = int(s.getsockname()[1])
        _handed.add(port)
        return port
    raise RigError(f"no free TCP port on {host} after {_TRIES} tries")


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


@overload
async def until(
    what: str,
    check: Callable[[], Awaitable[T]],
    timeout: float,
    detail: Callable[[], object] | None = None,
    *,
    every: float = 0.3,
) -> T: ...
@overload
async def until(
    what: str,
    check: Callable[[], T],
    timeout: float,
    detail: Callable[[], object] | None = None,
    *,
    every: float = 0.3,
) -> T: ...
async def until(
    what: str,
    check: Callable[[], object],
    timeout: float,
    detail: Callable[[], object] | None = None,
    *,
    every: float = 0.3,
) -> object:
    """Poll `check()` (plain or async) until it returns something true, and return that value;
    after `timeout` seconds, AssertionError naming `what` (and `detail()`): a test's bounded
    wait."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        value = await found if inspect.isawaitable(found) else found
        if value:
            return value
        if time.monotonic() > deadline:
            said = f": {detail()}" if detail is not None else ""
            raise AssertionError(f"not within {timeout:g} s: {what}{said}")
        await asyncio.sleep(every)


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

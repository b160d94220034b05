"""A GATT exchange the BLE source gave up on (its 10-s bound) may still end later, on
bumble's own timeout, with an error: that error is read, not left to asyncio's "Task
exception was never retrieved" (issue 14's soak: a traceback logged under load, and the
source of every file in it kept in linecache, a step of several MB in the daemon's memory)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from pyee.asyncio import AsyncIOEventEmitter

from edge.sources.ble._bumble_client import BumbleClient


class _Stubborn(Exception):
    pass


async def _stubborn_request(released: asyncio.Event) -> bytes:
    """Ignores the first cancellation (as bumble's request does under its own wait_for),
    then fails."""
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        await released.wait()
    raise _Stubborn("GATT timeout for ATT_READ_BY_TYPE_REQUEST")


async def test_an_abandoned_operation_that_fails_later_is_not_an_unretrieved_error() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    cls = BumbleClient.bound_to(object())  # type: ignore[arg-type]
    cls.operation_timeout = 0.05
    client = cls("C4:7C:8D:6A:11:22", disconnected_callback=None, timeout=1.0)
    client._connection = AsyncIOEventEmitter()  # type: ignore[assignment]
    released = asyncio.Event()
    with pytest.raises(TimeoutError):
        await client._guard(_stubborn_request(released))
    released.set()
    for _ in range(5):
        await asyncio.sleep(0.01)
    gc.collect()
    await asyncio.sleep(0)
    assert not [c for c in reported if "never retrieved" in str(c.get("message"))], reported

"""Reading what an MQTT client receives within a bounded time (tests of brokers and ACLs)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import aiomqtt


async def next_message(c: aiomqtt.Client, timeout: float = 1.0) -> aiomqtt.Message | None:
    """The next message `c` receives within `timeout` seconds, or None."""
    try:
        async with asyncio.timeout(timeout):
            async for m in c.messages:
                return m
    except TimeoutError:
        return None
    return None


async def messages_within(c: aiomqtt.Client, seconds: float) -> list[aiomqtt.Message]:
    """Every message `c` receives in the next `seconds`."""
    out: list[aiomqtt.Message] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            async for m in c.messages:
                out.append(m)
    return out

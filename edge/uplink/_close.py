"""Leaving an MQTT session within a bounded time, whatever the broker does.

aiomqtt's `__aexit__` sends DISCONNECT and waits for the broker to close the connection, up to
the client's timeout, and leaves the socket open when it does not. A gateway task that must
stop (the daemon's shutdown, a test's teardown) cannot wait on a broker that is overloaded,
stopping itself, or hostile: `session()` waits at most DISCONNECT_WAIT_S, then closes the
socket itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import aiomqtt

log = logging.getLogger("estran.edge.mqtt")

DISCONNECT_WAIT_S = 3.0  # how long a closing client waits for the broker to close


async def close_client(
    client: aiomqtt.Client, error: BaseException | None, wait_s: float = DISCONNECT_WAIT_S
) -> None:
    """DISCONNECT, wait at most `wait_s` for the broker, then close the socket ourselves.
    Never raises an MQTT or socket error (the session is over either way)."""
    exit_ = client.__aexit__(
        None if error is None else type(error),
        error,
        None if error is None else error.__traceback__,
    )
    try:
        await asyncio.wait_for(exit_, wait_s)
    except TimeoutError:
        log.info("the broker did not close the connection within %.0f s: closed here", wait_s)
    except (aiomqtt.MqttError, OSError):
        pass
    finally:
        drop_socket(client)


def drop_socket(client: aiomqtt.Client) -> None:
    """Close the client's socket if it is still open (paho unregisters it from the loop)."""
    paho = getattr(client, "_client", None)
    close = getattr(paho, "_sock_close", None)
    if paho is None or not callable(close) or paho.socket() is None:
        return
    with contextlib.suppress(Exception):
        close()


@contextlib.asynccontextmanager
async def session(client: aiomqtt.Client) -> AsyncIterator[aiomqtt.Client]:
    """`async with client`, whose exit is bounded (see `close_client`)."""
    try:
        await client.__aenter__()
    except BaseException:
        drop_socket(client)  # a connect cut short (cancelled, refused) leaves nothing open
        raise
    try:
        yield client
    except BaseException as e:
        await close_client(client, e)
        raise
    else:
        await close_client(client, None)


__all__ = ["DISCONNECT_WAIT_S", "close_client", "drop_socket", "session"]

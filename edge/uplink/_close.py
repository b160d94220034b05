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
    Never raises an MQTT or socket error (the session is over either way); a cancel of the
    closing task closes the socket at once and goes on.

    The same approach as the hub's `hub._mqtt.disconnect` (edge and hub share no IO code):
    `asyncio.wait`, not `asyncio.wait_for`, which on Python 3.11 may swallow a cancel that
    arrives as the awaited exit ends, leaving the task 'cancelling' and running on."""
    exit_ = asyncio.ensure_future(
        client.__aexit__(
            None if error is None else type(error),
            error,
            None if error is None else error.__traceback__,
        )
    )
    try:
        await asyncio.wait({exit_}, timeout=wait_s)
    finally:
        if not exit_.done():
            exit_.cancel()
            log.info("the broker did not close the connection within %.0f s: closed here", wait_s)
        drop_socket(client)
    if exit_.done() and not exit_.cancelled():  # (a cancelled exit_ is not done yet)
        exit_.exception()  # an MQTT or socket error on the way out: the session is over anyway


def drop_socket(client: aiomqtt.Client) -> None:
    """Close the client's connection now, without the MQTT goodbye, and release what
    aiomqtt keeps for it (as `hub._mqtt.close_socket`; aiomqtt has no public way)."""
    paho = getattr(client, "_client", None)
    close = getattr(paho, "_sock_close", None)
    if paho is not None and callable(close) and paho.socket() is not None:
        with contextlib.suppress(Exception):
            close()  # unregisters from the event loop, closes the fd
    disconnected = getattr(client, "_disconnected", None)
    if isinstance(disconnected, asyncio.Future) and not disconnected.done():
        disconnected.set_result(None)
    lock = getattr(client, "_lock", None)
    if isinstance(lock, asyncio.Lock) and lock.locked():
        lock.release()


def honour_cancel() -> None:
    """Raise the cancel an aiomqtt call swallowed. aiomqtt waits with `asyncio.wait_for`
    (connect, subscribe, publish), which on Python 3.11 returns a result that arrives in the
    same turn of the loop as a cancel and drops the cancel: the task still counts it
    (`cancelling()`), but runs on. Called after such calls on the paths that must stop when
    asked (as `hub._mqtt.honour_cancel` on the hub's side)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


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


__all__ = ["DISCONNECT_WAIT_S", "close_client", "drop_socket", "honour_cancel", "session"]

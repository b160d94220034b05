"""Drive a synchronous `Storage` from asyncio through one dedicated thread.

sqlite3 and psycopg's blocking API force a thread: the event loop (MQTT keep-alives, acks)
must not stall while a batch commits. One thread per storage keeps every call on the
connection serialised, in submission order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import TypeVar

from hub.storage._base import Storage

T = TypeVar("T")


class StorageThread:
    """An async front for one Storage; `await st.call(Storage.method, args...)`."""

    def __init__(self, storage: Storage, name: str = "storage") -> None:
        self.storage = storage
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def call(self, fn: Callable[..., T], *args: object, timeout: float = 120.0) -> T:
        """`fn(*args)` on the storage thread; TimeoutError past `timeout` (the call itself
        then finishes on the thread, unseen). A cancel is always honoured: `asyncio.timeout`,
        not `asyncio.wait_for`, which on Python 3.11 returns a result that arrives in the
        same turn of the loop as the cancel and swallows the cancel (an ingest worker's
        commit task then ran on after its session ended, and the session never did)."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, fn, *args)
        async with asyncio.timeout(timeout):
            return await future

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.storage.close()


__all__ = ["StorageThread"]

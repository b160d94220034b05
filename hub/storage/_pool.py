"""A bounded pool of read connections, separate from the ingest (writer) connection.

The HTTP API runs its endpoints in a thread pool; each read borrows a connection for one
query (or one chunk of a streamed export) and gives it back, so concurrent requests read in
parallel (SQLite WAL readers, PostgreSQL backends) and never wait on a commit. The pool
opens connections lazily, at most `size`; a borrower waits at most `timeout` seconds and
then gets a StorageError (the API answers 503). A connection that failed is closed, not
returned.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from hub._errors import StorageError

C = TypeVar("C")


class ReadPool(Generic[C]):
    def __init__(
        self,
        connect: Callable[[], C],
        close: Callable[[C], None],
        size: int = 8,
        timeout: float = 10.0,
    ) -> None:
        if size < 1:
            raise ValueError("a read pool needs at least one connection")
        self._connect = connect
        self._close = close
        self.size = size
        self.timeout = timeout
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[C] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextlib.contextmanager
    def connection(self) -> Iterator[C]:
        if not self._slots.acquire(timeout=self.timeout):
            raise StorageError(f"no read connection free within {self.timeout:g} s")
        try:
            with self._lock:
                if self._closed:
                    raise StorageError("storage closed")
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = self._connect()
            try:
                yield conn
            except BaseException:
                self._discard(conn)
                raise
            with self._lock:
                if self._closed:
                    self._discard(conn)
                else:
                    self._idle.append(conn)
        finally:
            self._slots.release()

    def _discard(self, conn: C) -> None:
        with contextlib.suppress(Exception):
            self._close(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            self._discard(conn)


__all__ = ["ReadPool"]

"""The file layer under the segment log: the few file operations it needs, pluggable so that
tests can put a crash simulator or a fault injector underneath (as bleak takes a backend).

Paths are plain strings. `OsFileLayer` is the real one (POSIX).
"""

from __future__ import annotations

import fcntl
import os
from typing import Protocol


class WriteHandle(Protocol):
    """A file opened for appending."""

    def write(self, data: bytes) -> None:
        """Write all of `data` at the end (or raise OSError)."""

    def pwrite(self, data: bytes, offset: int) -> None:
        """Write `data` at `offset` (in place: a preallocated file keeps its size)."""

    def sync(self) -> None:
        """Make everything written so far durable (fdatasync)."""

    def truncate(self, size: int) -> None:
        """Cut the file to `size` bytes; the next write goes there."""

    def close(self) -> None: ...


class ReadHandle(Protocol):
    def pread(self, offset: int, length: int) -> bytes: ...

    def close(self) -> None: ...


class FileLayer(Protocol):
    def listdir(self, path: str) -> list[str]: ...

    def makedirs(self, path: str) -> None: ...

    def exists(self, path: str) -> bool: ...

    def size(self, path: str) -> int: ...

    def read_file(self, path: str) -> bytes: ...

    def open_read(self, path: str) -> ReadHandle: ...

    def open_append(self, path: str) -> WriteHandle:
        """Open (creating it if missing) for appending at the end."""

    def write_atomic(self, path: str, data: bytes) -> None:
        """Replace `path` with `data` durably: temporary file, sync, rename, sync directory."""

    def rename(self, src: str, dst: str) -> None: ...

    def unlink(self, path: str) -> None: ...

    def sync_dir(self, path: str) -> None: ...

    def lock(self, path: str) -> object | None:
        """Take an exclusive lock file; None if another process holds it. Released when the
        returned handle is passed to `unlock`."""

    def unlock(self, handle: object) -> None: ...


_sync = getattr(os, "fdatasync", os.fsync)


class _OsWrite:
    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]

    def pwrite(self, data: bytes, offset: int) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self._fd, view, offset)
            view = view[n:]
            offset += n

    def sync(self) -> None:
        _sync(self._fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)
        os.lseek(self._fd, size, os.SEEK_SET)

    def close(self) -> None:
        os.close(self._fd)


class _OsRead:
    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def pread(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, length, offset)

    def close(self) -> None:
        os.close(self._fd)


class OsFileLayer:
    """The real file system."""

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def size(self, path: str) -> int:
        return os.stat(path).st_size

    def read_file(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def open_read(self, path: str) -> ReadHandle:
        return _OsRead(os.open(path, os.O_RDONLY | os.O_CLOEXEC))

    def open_append(self, path: str) -> WriteHandle:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
        os.lseek(fd, 0, os.SEEK_END)
        return _OsWrite(fd)

    def write_atomic(self, path: str, data: bytes) -> None:
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            _OsWrite(fd).write(data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        self.sync_dir(os.path.dirname(path) or ".")

    def rename(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def sync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def lock(self, path: str) -> object | None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def unlock(self, handle: object) -> None:
        assert isinstance(handle, int)
        os.close(handle)  # closing the descriptor releases the flock


__all__ = ["FileLayer", "OsFileLayer", "ReadHandle", "WriteHandle"]

"""An in-memory file layer for the buffer's tests: a crash simulator and a fault injector.

Crash simulation, the way SQLite tests itself: every file remembers what was last synced
and the directory remembers which creations, renames and removals were synced. At a
chosen operation (`crash_at`), a `Crash` is raised (a write is first done in part), and
`after_crash(rng)` gives the disk as a reboot finds it: for each file the synced bytes plus
a random fate for what was not synced (dropped, cut short, kept, or garbled), and for the
directory a random prefix of the unsynced operations (an ordered metadata journal).

Faults: `capacity` (bytes; writes past it fail with ENOSPC after writing what fits),
`fault(op, path) -> errno | None` (EIO, EROFS, ... on any operation), `read_only`.
"""

from __future__ import annotations

import errno
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field


class Crash(BaseException):  # the power went: not an error to catch
    """The simulated power cut. A BaseException, so that no `except Exception` eats it."""


@dataclass
class MemFile:
    data: bytearray = field(default_factory=bytearray)
    durable: bytes = b""  # content as of the last sync


def _err(code: int, path: str) -> OSError:
    return OSError(code, os.strerror(code), path)


class MemoryFileLayer:
    def __init__(self) -> None:
        self.files: dict[str, MemFile] = {}  # the namespace as the process sees it
        self.durable_files: dict[str, MemFile] = {}  # the namespace as synced
        self.journal: list[tuple[str, str, str, MemFile | None]] = []  # unsynced (op, a, b, file)
        self.dirs: set[str] = set()
        self.ops = 0
        self.crash_at: int | None = None
        self.rng = random.Random(0)
        self.capacity: int | None = None
        self.fault: Callable[[str, str], int | None] | None = None
        self.syncs = 0

    # ------------------------------------------------------------- crash points and faults

    def _op(self, op: str, path: str) -> None:
        self.ops += 1
        if self.crash_at is not None and self.ops >= self.crash_at:
            self.crash_at = None
            raise Crash(f"power cut at operation {self.ops} ({op} {path})")
        if self.fault is not None:
            code = self.fault(op, path)
            if code is not None:
                raise _err(code, path)

    def used(self) -> int:
        return sum(len(f.data) for f in self.files.values())

    # ------------------------------------------------------------- the FileLayer protocol

    def listdir(self, path: str) -> list[str]:
        self._op("listdir", path)
        if path not in self.dirs:
            raise _err(errno.ENOENT, path)
        prefix = path.rstrip("/") + "/"
        return sorted(
            p[len(prefix) :]
            for p in self.files
            if p.startswith(prefix) and "/" not in p[len(prefix) :]
        )

    def makedirs(self, path: str) -> None:
        self._op("makedirs", path)
        while path and path not in self.dirs:
            self.dirs.add(path)
            path = os.path.dirname(path)

    def exists(self, path: str) -> bool:
        return path in self.files or path in self.dirs

    def size(self, path: str) -> int:
        self._op("stat", path)
        return len(self._file(path).data)

    def read_file(self, path: str) -> bytes:
        self._op("read", path)
        return bytes(self._file(path).data)

    def open_read(self, path: str) -> _Read:
        self._op("open", path)
        return _Read(self, self._file(path), path)

    def open_append(self, path: str) -> _Write:
        self._op("open", path)
        f = self.files.get(path)
        if f is None:
            if os.path.dirname(path) not in self.dirs:
                raise _err(errno.ENOENT, path)
            f = self.files[path] = MemFile()
            self.journal.append(("create", path, "", f))
        return _Write(self, f, path)

    def write_atomic(self, path: str, data: bytes) -> None:
        tmp = path + ".tmp"
        h = self.open_append(tmp)
        h.truncate(0)
        h.write(data)
        h.sync()
        h.close()
        self.rename(tmp, path)
        self.sync_dir(os.path.dirname(path))

    def rename(self, src: str, dst: str) -> None:
        self._op("rename", src)
        f = self._file(src)
        self.files[dst] = f
        del self.files[src]
        self.journal.append(("rename", src, dst, f))

    def unlink(self, path: str) -> None:
        self._op("unlink", path)
        self._file(path)
        del self.files[path]
        self.journal.append(("unlink", path, "", None))

    def sync_dir(self, path: str) -> None:
        self._op("syncdir", path)
        self._apply_journal(len(self.journal))

    def lock(self, path: str) -> object | None:
        return object()

    def unlock(self, handle: object) -> None:
        pass

    # ------------------------------------------------------------- helpers

    def _file(self, path: str) -> MemFile:
        f = self.files.get(path)
        if f is None:
            raise _err(errno.ENOENT, path)
        return f

    def _apply_journal(self, n: int) -> None:
        for op, a, b, f in self.journal[:n]:
            if op == "create":
                assert f is not None
                self.durable_files[a] = f
            elif op == "rename":
                assert f is not None
                self.durable_files.pop(a, None)
                self.durable_files[b] = f
            elif op == "unlink":
                self.durable_files.pop(a, None)
        del self.journal[:n]

    def after_crash(self, rng: random.Random) -> MemoryFileLayer:
        """The disk as it is found after the power cut."""
        self._apply_journal(rng.randint(0, len(self.journal)))
        disk = MemoryFileLayer()
        disk.dirs = set(self.dirs)
        for path, f in self.durable_files.items():
            content = _fate(f, rng)
            g = MemFile(bytearray(content), content)
            disk.files[path] = g
            disk.durable_files[path] = g
        return disk

    def clone(self) -> MemoryFileLayer:
        """The disk after a clean shutdown (everything written is kept)."""
        disk = MemoryFileLayer()
        disk.dirs = set(self.dirs)
        for path, f in self.files.items():
            g = MemFile(bytearray(f.data), bytes(f.data))
            disk.files[path] = disk.durable_files[path] = g
        return disk


def _fate(f: MemFile, rng: random.Random) -> bytes:
    """What a file holds after the crash: its synced bytes, and some fate for the rest."""
    data, durable = bytes(f.data), f.durable
    if data == durable:
        return durable
    common = 0
    limit = min(len(data), len(durable))
    while common < limit and data[common] == durable[common]:
        common += 1
    fate = rng.random()
    if fate < 0.25:
        return durable  # nothing of what was not synced reached the disk
    cut = rng.randint(common, len(data))
    # written up to the cut; past it, what was there before (a write in place over a
    # preallocated file keeps the file's size: the old bytes stay where the new did not land)
    out = bytearray(data[:cut]) + durable[cut : len(data)]
    if fate > 0.6 and cut > common:
        # a sector written in part: garbage in the unsynced stretch
        start = rng.randint(common, cut - 1)
        end = rng.randint(start + 1, min(cut, start + 600))
        for i in range(start, end):
            out[i] = rng.choice((0, 0xFF, rng.randrange(256)))
    return bytes(out)


class _Write:
    def __init__(self, layer: MemoryFileLayer, f: MemFile, path: str) -> None:
        self._layer, self._f, self._path = layer, f, path

    def write(self, data: bytes) -> None:
        layer, f = self._layer, self._f
        layer.ops += 1
        if layer.crash_at is not None and layer.ops >= layer.crash_at:
            layer.crash_at = None
            f.data += data[: layer.rng.randint(0, len(data))]  # a write cut short
            raise Crash(f"power cut during a write to {self._path}")
        if layer.fault is not None:
            code = layer.fault("write", self._path)
            if code is not None:
                f.data += data[: len(data) // 2]
                raise _err(code, self._path)
        if layer.capacity is not None:
            room = layer.capacity - layer.used()
            if len(data) > room:
                f.data += data[: max(0, room)]
                raise _err(errno.ENOSPC, self._path)
        f.data += data

    def pwrite(self, data: bytes, offset: int) -> None:
        layer, f = self._layer, self._f
        layer.ops += 1
        if len(f.data) < offset:
            f.data += bytes(offset - len(f.data))
        if layer.crash_at is not None and layer.ops >= layer.crash_at:
            layer.crash_at = None
            part = data[: layer.rng.randint(0, len(data))]
            f.data[offset : offset + len(part)] = part  # a write cut short
            raise Crash(f"power cut during a write to {self._path}")
        if layer.fault is not None:
            code = layer.fault("write", self._path)
            if code is not None:
                half = data[: len(data) // 2]
                f.data[offset : offset + len(half)] = half
                raise _err(code, self._path)
        grows = max(0, offset + len(data) - len(f.data))
        if layer.capacity is not None and grows > layer.capacity - layer.used():
            raise _err(errno.ENOSPC, self._path)
        f.data[offset : offset + len(data)] = data

    def sync(self) -> None:
        self._layer._op("sync", self._path)
        self._layer.syncs += 1
        self._f.durable = bytes(self._f.data)

    def truncate(self, size: int) -> None:
        self._layer._op("truncate", self._path)
        del self._f.data[size:]

    def close(self) -> None:
        pass


class _Read:
    def __init__(self, layer: MemoryFileLayer, f: MemFile, path: str) -> None:
        self._layer, self._f, self._path = layer, f, path

    def pread(self, offset: int, length: int) -> bytes:
        self._layer._op("pread", self._path)
        return bytes(self._f.data[offset : offset + length])

    def close(self) -> None:
        pass


__all__ = ["Crash", "MemFile", "MemoryFileLayer"]

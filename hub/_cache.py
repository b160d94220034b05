"""Documents many clients poll (latest values, open data), built once and served again.

`FreshCache.get(key, compute, version)` answers from its entry while that entry is fresh:

- built less than `ttl` seconds ago, and no storage of this process has written since
  (`hub.storage.write_generation()`; with `follow_writes`): served as it is;
- older than `ttl` but less than `ttl + stale_for`: served as it is, and rebuilt once in the
  background (a refresh thread), so no request waits for a rebuild while clients keep
  polling. Another process's writes (another ingest worker) show within `ttl` plus the
  time of one rebuild;
- `version` differs from the one the entry was built under (the catalogue's version: a
  dataset closed, readings erased, from any process), or no entry, or older than
  `ttl + stale_for` (nobody asked for a while): built by the caller, and nobody is served
  the old one. The version must be read before `compute` reads its data, so an entry is
  never newer in version than in data;
- after a write of this process (and the version unchanged): the first caller rebuilds it
  while the others are served the previous value (stale while revalidating).

At most `size` keys. A background rebuild that fails is logged and dropped: the entry stays
until it is too old, when a caller rebuilds it (and sees the error).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from hub.storage import write_generation

log = logging.getLogger("estran.hub.cache")

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_refresher: concurrent.futures.ThreadPoolExecutor | None = None
_refresher_lock = threading.Lock()


def _refresh_pool() -> concurrent.futures.ThreadPoolExecutor:
    """The threads that rebuild entries in the background (two: a slow rebuild of one
    document does not hold up another's)."""
    global _refresher
    with _refresher_lock:
        if _refresher is None:
            _refresher = concurrent.futures.ThreadPoolExecutor(
                max_workers=2, thread_name_prefix="estran-cache-refresh"
            )
        return _refresher


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    built: float  # time.monotonic() when its build started
    generation: int
    version: Hashable
    value: V


class FreshCache(Generic[K, V]):
    def __init__(
        self, ttl: float, size: int = 256, follow_writes: bool = True, stale_for: float = 0.0
    ) -> None:
        self.ttl = ttl
        self.size = size
        self.follow_writes = follow_writes  # False: `ttl` (and `version`) alone decide
        self.stale_for = stale_for  # 0: no background rebuild, the caller rebuilds
        self.background_rebuilds = 0
        self._entries: dict[K, _Entry[V]] = {}
        self._refreshing: set[K] = set()
        self._lock = threading.Lock()

    def get(self, key: K, compute: Callable[[], V], version: Hashable = None) -> V:
        now = time.monotonic()
        generation = write_generation() if self.follow_writes else 0
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.version == version:
                age = now - entry.built
                if entry.generation == generation:
                    if age < self.ttl:
                        return entry.value
                    if age < self.ttl + self.stale_for:
                        if key not in self._refreshing:
                            self._refreshing.add(key)
                            self.background_rebuilds += 1
                            _refresh_pool().submit(
                                self._rebuild, key, compute, version, generation, now
                            )
                        return entry.value
                elif key in self._refreshing:
                    return entry.value
            self._refreshing.add(key)
        try:
            value = compute()
            self._store(key, _Entry(now, generation, version, value))
        finally:
            with self._lock:
                self._refreshing.discard(key)
        return value

    def _rebuild(
        self, key: K, compute: Callable[[], V], version: Hashable, generation: int, now: float
    ) -> None:
        try:
            self._store(key, _Entry(now, generation, version, compute()))
        except Exception as e:  # the entry stays; a caller rebuilds it when too old
            log.warning("background rebuild of %r failed: %s", key, e)
        finally:
            with self._lock:
                self._refreshing.discard(key)

    def _store(self, key: K, entry: _Entry[V]) -> None:
        with self._lock:
            current = self._entries.get(key)
            if current is not None and current.built > entry.built:
                return  # a newer build landed first
            if len(self._entries) >= self.size and key not in self._entries:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = entry


def etag_of(*parts: bytes) -> str:
    """A weak entity tag (RFC 9110) of a document's content: the same content, the same tag
    (a `generated` time left out of `parts` does not change it)."""
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part)
    return f'W/"{h.hexdigest()}"'


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """Whether a conditional GET's `If-None-Match` names `etag` (weak comparison)."""
    if not if_none_match:
        return False
    wanted = etag.removeprefix("W/")
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == wanted:
            return True
    return False


__all__ = ["FreshCache", "etag_of", "not_modified"]

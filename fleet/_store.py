"""The registry's storage: one SQLite file (WAL) in `<data>/fleet/`, its schema, transactions,
the revision counter the hub watches, and the audit log every area writes to.

Each area of the registry is a class over this one (`_outbox` → `_registry` → `_configs` →
`_enrollment` → `_commands` → `fleet.Fleet`), so that one `Fleet` object keeps one connection
and one lock, and each area's SQL lives in its own module.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fleet._keys import Keyring
from fleet._secrets import private_dir

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY, description TEXT NOT NULL, created_ms INTEGER NOT NULL,
    next_index INTEGER NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, hash TEXT NOT NULL, grp TEXT NOT NULL, site TEXT,
    created_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL, created_by TEXT NOT NULL,
    used_ms INTEGER, gateway TEXT);
CREATE TABLE IF NOT EXISTS nonces (
    nonce TEXT PRIMARY KEY, token TEXT NOT NULL, expires_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS gateways (
    id TEXT PRIMARY KEY, grp TEXT NOT NULL, site TEXT, public_key BLOB NOT NULL,
    password_hash TEXT NOT NULL, enrolled_ms INTEGER NOT NULL, enrolled_by TEXT NOT NULL,
    state TEXT NOT NULL, revoked_ms INTEGER, software TEXT,
    applied_version INTEGER, outcome TEXT, reason TEXT, reported_ms INTEGER,
    cmd_seq INTEGER NOT NULL DEFAULT 0, sources TEXT, restart_pending TEXT);
CREATE TABLE IF NOT EXISTS services (
    name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, role TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS layers (
    scope TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL, updated_ms INTEGER NOT NULL,
    updated_by TEXT NOT NULL, PRIMARY KEY (scope, name));
CREATE TABLE IF NOT EXISTS desired (
    gateway TEXT NOT NULL, version INTEGER NOT NULL, doc TEXT NOT NULL, keys TEXT NOT NULL,
    payload BLOB NOT NULL, created_ms INTEGER NOT NULL, PRIMARY KEY (gateway, version));
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, payload BLOB NOT NULL,
    retain INTEGER NOT NULL, created_ms INTEGER NOT NULL, published_ms INTEGER);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (topic) WHERE published_ms IS NULL;
CREATE INDEX IF NOT EXISTS outbox_published ON outbox (published_ms);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts_ms INTEGER NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL);
"""
# Columns added after the first release (ALTER TABLE when missing).
_ADDED_COLUMNS = (
    ("gateways", "sources", "TEXT"),
    ("gateways", "restart_pending", "TEXT"),
    ("audit", "remote", "TEXT"),
)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    ts_ms: int
    actor: str
    action: str
    target: str
    detail: dict[str, object]
    id: int = 0
    remote: str | None = None  # where the actor acted from (None: on the hub's machine)


class Store:
    """The database, its lock and the audit log. Thread-safe; every method is short and
    blocking (the hub calls it from a worker thread)."""

    def __init__(self, data_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.directory = private_dir(Path(data_dir) / "fleet")
        self.keys = Keyring(self.directory / "keys")
        self._clock = clock
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.directory / "fleet.sqlite",
            timeout=10.0,
            isolation_level=None,
            check_same_thread=False,
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        for stmt in _SCHEMA_SQL.split(";"):
            if stmt.strip():
                self._db.execute(stmt)
        for table, column, kind in _ADDED_COLUMNS:
            names = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in names:
                with contextlib.suppress(sqlite3.OperationalError):  # another process did
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        (self.directory / "fleet.sqlite").chmod(0o600)
        self.keys.ensure()
        self._origin = threading.local()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            else:
                self._db.execute("COMMIT")

    def _meta(self, db: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
        row = db.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return default if row is None else str(row[0])

    def _set_meta(self, db: sqlite3.Connection, key: str, value: str) -> None:
        db.execute("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", (key, value))

    def _bump(self, db: sqlite3.Connection) -> None:
        self._set_meta(db, "revision", str(int(self._meta(db, "revision", "0") or 0) + 1))

    @contextmanager
    def origin(self, remote: str | None) -> Iterator[None]:
        """Audit entries written by this thread inside the block say they came from
        `remote` (the client address of an HTTP request)."""
        previous = getattr(self._origin, "remote", None)
        self._origin.remote = remote
        try:
            yield
        finally:
            self._origin.remote = previous

    def _audit(
        self, db: sqlite3.Connection, actor: str, action: str, target: str, **detail: object
    ) -> None:
        db.execute(
            "INSERT INTO audit (ts_ms, actor, action, target, detail, remote)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                self._now_ms(),
                actor,
                action,
                target,
                json.dumps(detail, sort_keys=True, default=str),
                getattr(self._origin, "remote", None),
            ),
        )

    def record(self, actor: str, action: str, target: str, **detail: object) -> None:
        """Write one audit entry (for actions done outside the registry: datasets,
        deletions)."""
        with self._tx() as db:
            self._audit(db, actor, action, target, **detail)

    def revision(self) -> int:
        """Grows on every change: the hub reloads what it derived when it moves."""
        with self._lock:
            return int(self._meta(self._db, "revision", "0") or 0)

    # -- audit ----------------------------------------------------------------------------------

    def audit(
        self,
        limit: int = 100,
        target: str | None = None,
        *,
        actor: str | None = None,
        action: str | None = None,
        before: int | None = None,
    ) -> list[AuditEntry]:
        """The latest `limit` entries (oldest first), optionally of one target, actor or
        action (a prefix such as `user.`), and with an id below `before` (paging back)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT ts_ms, actor, action, target, detail, id, remote FROM audit"
                " WHERE (? IS NULL OR target = ?) AND (? IS NULL OR actor = ?)"
                " AND (? IS NULL OR action = ? OR substr(action, 1, length(?)) = ?)"
                " AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?",
                (
                    target,
                    target,
                    actor,
                    actor,
                    action,
                    action,
                    action,
                    action,
                    before,
                    before,
                    limit,
                ),
            ).fetchall()
        return [
            AuditEntry(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6]) for r in reversed(rows)
        ]

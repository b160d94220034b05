"""SQLite backend: the default, one file in the hub's data directory.

WAL journal (readers never block the writer), synchronous=FULL (a committed batch survives
a power cut: the hub acknowledges only what is on disk), one transaction per ingest call
with `executemany` over columnar rows, `INSERT OR IGNORE` for idempotency on (gateway, seq).

Checkpoints (copying the WAL back into the database file, with its fsync) are off the
ingest path: once a storage ingests, a checkpointer thread on a connection of its own runs
a PASSIVE checkpoint every second, which never blocks the writer nor the readers; the
writer checkpoints by itself only if the WAL passes CHECKPOINT_BACKSTOP pages (the
checkpointer fell behind). SQLite's default is a checkpoint by the committing connection
every 1,000 pages, inside the ingest's COMMIT: at 10,000 readings/s of 10,000 series that is
nearly every commit (each reading dirties a leaf page of the (series, time) index).
The `value` column is declared without a type so SQLite keeps ints as ints and floats as
floats (exact values, no REAL coercion).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hub._errors import StorageError
from hub.storage import _alerts, _catalogue
from hub.storage._base import (
    Storage,
    batch_rows,
    batch_tallies,
    bump_generation,
    footprint_text,
    names_text,
    newest_per_series,
    sources_text,
)
from hub.storage._pool import ReadPool
from hub.storage._types import (
    GatewayState,
    IngestBatch,
    IngestResult,
    SeriesKey,
)
from protocols.reading import FLAG_NOT_A_NUMBER

log = logging.getLogger("estran.hub.storage")

# The (series, time) index, with the values: what a chart's range query reads.
SERIES_INDEX = "CREATE INDEX readings_series_ts ON readings (series_id, ts_ms, value, text)"

# A birth or death; one from an older session than the one recorded is ignored.
_STATE = (
    "UPDATE gateways SET online = ?, session = ?, state_ts_ms = ?,"
    " last_seen_ms = ?, backlog = COALESCE(?, backlog),"
    " footprint = COALESCE(?, footprint),"
    " sources = COALESCE(?, sources),"
    " restart_pending = COALESCE(?, restart_pending)"
    " WHERE id = ? AND (session IS NULL OR session < ?"
    "   OR (session = ? AND online = 1))"
)


def _state_params(gid: int, state: GatewayState, now_ms: int) -> tuple[object, ...]:
    return (
        int(state.online),
        state.session,
        state.ts_ms,
        now_ms,
        state.backlog,
        footprint_text(state.footprint),
        sources_text(state.sources),
        names_text(state.restart_pending),
        gid,
        state.session,
        state.session,
    )


MIGRATIONS: tuple[str, ...] = (
    # 1: gateways, series, readings
    """
    CREATE TABLE gateways (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        online INTEGER,
        session INTEGER,
        state_ts_ms INTEGER,
        last_seen_ms INTEGER,
        backlog INTEGER,
        batches INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        last_error_ms INTEGER
    );
    CREATE TABLE gateway_rejections (
        gateway_id INTEGER NOT NULL REFERENCES gateways(id),
        reason TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (gateway_id, reason)
    ) WITHOUT ROWID;
    CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        sensor TEXT NOT NULL,
        quantity TEXT NOT NULL,
        unit TEXT NOT NULL,
        UNIQUE (sensor, quantity, unit)
    );
    CREATE TABLE readings (
        gateway_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        series_id INTEGER NOT NULL,
        ts_ms INTEGER NOT NULL,
        value,
        text TEXT,
        flags INTEGER NOT NULL,
        PRIMARY KEY (gateway_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX readings_series_ts ON readings (series_id, ts_ms);
    """,
    # 2: the gateway's latest footprint (JSON) and the count of its readings held
    """
    ALTER TABLE gateways ADD COLUMN footprint TEXT;
    ALTER TABLE gateways ADD COLUMN readings INTEGER NOT NULL DEFAULT 0;
    UPDATE gateways SET readings = (
        SELECT count(*) FROM readings WHERE readings.gateway_id = gateways.id);
    """,
    # 3: each source's health and the settings waiting for a restart (JSON), as the
    # gateway's latest state message reported them
    """
    ALTER TABLE gateways ADD COLUMN sources TEXT;
    ALTER TABLE gateways ADD COLUMN restart_pending TEXT;
    """,
    # 4: the latest reading of each series, kept by ingest in the same transaction
    """
    CREATE TABLE latest (
        series_id INTEGER PRIMARY KEY,
        gateway_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        ts_ms INTEGER NOT NULL,
        value,
        text TEXT,
        flags INTEGER NOT NULL
    );
    INSERT INTO latest (series_id, gateway_id, seq, ts_ms, value, text, flags)
        SELECT series_id, gateway_id, seq, ts_ms, value, text, flags FROM (
            SELECT *, row_number() OVER (
                PARTITION BY series_id ORDER BY ts_ms DESC, seq DESC) AS rn
            FROM readings)
        WHERE rn = 1;
    """,
    # 5: alerts and numériscore (hub/storage/_alerts.py)
    _alerts.SQLITE,
    # 6: datasets, sensor metadata, erasures on request (hub/storage/_catalogue.py)
    _catalogue.SQLITE,
    # 7: the (series, time) index carries the values: a chart's range is read from the
    # index alone, not from the table
    "DROP INDEX IF EXISTS readings_series_ts; " + SERIES_INDEX,
    # 8: the catalogue's version, raised by every catalogue write (hub/storage/_catalogue.py)
    _catalogue.VERSION,
)

CHECKPOINT_S = 1.0  # seconds between the checkpointer's PASSIVE checkpoints
CHECKPOINT_BACKSTOP = 65_536  # WAL pages (256 MiB) past which the writer checkpoints itself

_INSERT = (
    "INSERT OR IGNORE INTO readings (gateway_id, seq, series_id, ts_ms, value, text, flags)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
# The stored reading (gateway, seq) becomes its series' latest if it is newer: read back from
# `readings`, so a resend that was ignored cannot put other values there (the candidates
# come from newest_per_series, which skips readings of implausible time).
_LATEST = (
    "INSERT INTO latest (series_id, gateway_id, seq, ts_ms, value, text, flags)"
    " SELECT series_id, gateway_id, seq, ts_ms, value, text, flags FROM readings"
    " WHERE gateway_id = ? AND seq = ?"
    " ON CONFLICT (series_id) DO UPDATE SET gateway_id = excluded.gateway_id,"
    " seq = excluded.seq, ts_ms = excluded.ts_ms, value = excluded.value,"
    " text = excluded.text, flags = excluded.flags"
    " WHERE (excluded.ts_ms, excluded.seq) > (latest.ts_ms, latest.seq)"
)


class SqliteStorage(Storage):
    """One writer connection (ingest, state; serialised by a lock) and a pool of `readers`
    read-only connections for queries: WAL lets them read while the writer commits."""

    name = "sqlite"
    int64_params = True  # sqlite3 raises OverflowError on a larger int
    series_index = SERIES_INDEX
    latest_json_query = (
        "SELECT json_group_array(json_object('sensor', sensor, 'quantity', quantity,"
        " 'unit', NULLIF(unit, ''), 'value', CASE WHEN text IS NOT NULL THEN text"
        "   WHEN abs(value) > 1.7976931348623157e308 THEN NULL ELSE value END,"
        f" 'value_special', CASE WHEN flags & {FLAG_NOT_A_NUMBER} THEN 'NaN'"
        "   WHEN value > 1.7976931348623157e308 THEN '+Inf'"
        "   WHEN value < -1.7976931348623157e308 THEN '-Inf' END,"
        " 'ts', strftime('%Y-%m-%dT%H:%M:%S', ts_ms / 1000, 'unixepoch') || '.'"
        "   || printf('%03d', ts_ms % 1000) || '+00:00',"
        " 'ts_ms', ts_ms, 'flags', flags, 'gateway', name)) FROM ("
        "   SELECT s.sensor, s.quantity, s.unit, l.value, l.text, l.ts_ms, l.flags, g.name"
        "   FROM latest l JOIN series s ON s.id = l.series_id"
        "   JOIN gateways g ON g.id = l.gateway_id/*where*/"
        "   ORDER BY s.sensor, s.quantity, s.unit LIMIT ? OFFSET ?)"
    )

    features_json_query = (
        "SELECT json_group_array(json(f)) FROM ("
        " SELECT json_object('type', 'Feature', 'id', m.sensor, 'geometry',"
        "   CASE WHEN m.lon IS NULL OR m.lat IS NULL THEN NULL ELSE json_object('type',"
        "   'Point', 'coordinates', json_array(m.lon, m.lat)) END,"
        "  'properties', json_object('sensor', m.sensor, 'site', m.site, 'kind', m.kind,"
        "   'description', m.description, 'latest', json(("
        "    SELECT json_group_array(json(v)) FROM ("
        "     SELECT json_object('quantity', s.quantity, 'unit', NULLIF(s.unit, ''),"
        f"      'value', CASE WHEN l.flags & {FLAG_NOT_A_NUMBER} THEN NULL"
        "        WHEN l.text IS NOT NULL THEN l.text"
        "        WHEN abs(l.value) > 1.7976931348623157e308 THEN NULL ELSE l.value END,"
        "      'ts', strftime('%Y-%m-%dT%H:%M:%S', l.ts_ms / 1000, 'unixepoch') || '.'"
        "        || printf('%03d', l.ts_ms % 1000) || '+00:00') AS v"
        "     FROM series s JOIN latest l ON l.series_id = s.id WHERE s.sensor = m.sensor"
        "     ORDER BY s.quantity, s.unit))))) AS f"
        " FROM sensor_meta m WHERE m.dataset = ? ORDER BY m.sensor LIMIT ? OFFSET ?)"
    )

    def __init__(self, path: str | Path, *, synchronous: str = "FULL", readers: int = 4) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.execute("PRAGMA foreign_keys=OFF")
            self._db.execute("PRAGMA cache_size=-262144")
        except (sqlite3.Error, OSError) as e:
            raise StorageError(f"cannot open SQLite database {self.path}: {e}") from e
        self._lock = threading.Lock()  # the writer connection, one thread at a time
        self._readers: ReadPool[sqlite3.Connection] = ReadPool(
            self._connect_reader, sqlite3.Connection.close, size=readers
        )
        self._series: dict[SeriesKey, int] = {}
        self._gateways: dict[str, int] = {}
        self._checkpointer: threading.Thread | None = None
        self._closing = threading.Event()
        self.checkpoints = 0  # PASSIVE checkpoints the checkpointer ran

    def _connect_reader(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            db.execute("PRAGMA query_only=1")
            db.execute("PRAGMA cache_size=-32768")
        except sqlite3.Error as e:
            raise StorageError(f"cannot open SQLite database {self.path}: {e}") from e
        return db

    # -- schema ---------------------------------------------------------------------------

    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> int:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                version = self.schema_version()
                for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                    for statement in script.split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version={number}")
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                self._rollback()
                raise StorageError(f"migration failed: {e}") from e
            return len(MIGRATIONS)

    # -- ingest ---------------------------------------------------------------------------

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _gateway_id(self, name: str) -> int:
        gid = self._gateways.get(name)
        if gid is None:
            self._db.execute("INSERT OR IGNORE INTO gateways (name) VALUES (?)", (name,))
            row = self._db.execute("SELECT id FROM gateways WHERE name = ?", (name,)).fetchone()
            gid = int(row[0])
            self._gateways[name] = gid
        return gid

    def _series_ids(self, keys: list[SeriesKey]) -> list[int]:
        cache = self._series
        missing = [k for k in keys if k not in cache]
        for sensor, quantity, unit in sorted(set(missing), key=lambda k: (k[0], k[1], k[2] or "")):
            u = unit or ""
            self._db.execute(
                "INSERT OR IGNORE INTO series (sensor, quantity, unit) VALUES (?, ?, ?)",
                (sensor, quantity, u),
            )
            row = self._db.execute(
                "SELECT id FROM series WHERE sensor = ? AND quantity = ? AND unit = ?",
                (sensor, quantity, u),
            ).fetchone()
            cache[(sensor, quantity, unit)] = int(row[0])
        return [cache[k] for k in keys]

    def _start_checkpointer(self) -> None:
        """Move the checkpoints off the ingest connection (first ingest call)."""
        self._db.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_BACKSTOP}")
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name=f"sqlite-checkpoint-{self.path.name}", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        except sqlite3.Error as e:
            log.error("checkpointer: cannot open %s: %s (the writer checkpoints)", self.path, e)
            with self._lock:
                self._db.execute("PRAGMA wal_autocheckpoint=1000")
            return
        try:
            while not self._closing.wait(CHECKPOINT_S):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error as e:  # busy: the next one
                    log.debug("checkpointer: %s", e)
        finally:
            db.close()

    def ingest(self, batches: Sequence[IngestBatch], now_ms: int) -> IngestResult:
        batches, erased = self.drop_erased(batches)
        attempted = sum(len(b) for b in batches)
        if self._checkpointer is None:
            with self._lock:
                if self._checkpointer is None:
                    self._start_checkpointer()
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                inserted = 0
                by_gateway: dict[str, int] = {}
                for batch in batches:
                    gid = self._gateway_id(batch.gateway)
                    ids = self._series_ids(batch.series)
                    cur = self._db.executemany(_INSERT, batch_rows(gid, ids, batch))
                    inserted += cur.rowcount
                    by_gateway[batch.gateway] = by_gateway.get(batch.gateway, 0) + cur.rowcount
                    self._db.executemany(
                        _LATEST,
                        [(g, seq) for _, seq, g in newest_per_series(gid, ids, batch).values()],
                    )
                self._touch_gateways(batches, now_ms, by_gateway)
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                self._rollback()
                self._series.clear()
                self._gateways.clear()
                raise StorageError(f"ingest failed: {e}") from e
        bump_generation()
        return IngestResult(inserted=inserted, duplicates=attempted - inserted, erased=erased)

    def _touch_gateways(
        self, batches: Sequence[IngestBatch], now_ms: int, inserted: dict[str, int]
    ) -> None:
        for name, count, backlog in batch_tallies(batches):
            self._db.execute(
                "UPDATE gateways SET last_seen_ms = ?, batches = batches + ?,"
                " readings = readings + ?, backlog = COALESCE(?, backlog) WHERE id = ?",
                (now_ms, count, inserted.get(name, 0), backlog, self._gateway_id(name)),
            )

    # -- state ----------------------------------------------------------------------------

    def record_state(self, gateway: str, state: GatewayState, now_ms: int) -> bool:
        return self.record_states([(gateway, state)], now_ms)[0]

    def record_states(self, states: Sequence[tuple[str, GatewayState]], now_ms: int) -> list[bool]:
        applied: list[bool] = []
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for gateway, state in states:
                    cur = self._db.execute(
                        _STATE, _state_params(self._gateway_id(gateway), state, now_ms)
                    )
                    applied.append(cur.rowcount > 0)
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                self._rollback()
                self._gateways.clear()
                raise StorageError(f"state update failed: {e}") from e
        return applied

    def record_rejection(self, gateway: str, reason: str, detail: str, now_ms: int) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                gid = self._gateway_id(gateway)
                self._db.execute(
                    "INSERT INTO gateway_rejections (gateway_id, reason, count) VALUES (?, ?, 1)"
                    " ON CONFLICT (gateway_id, reason) DO UPDATE SET count = count + 1",
                    (gid, reason),
                )
                self._db.execute(
                    "UPDATE gateways SET last_error = ?, last_error_ms = ? WHERE id = ?",
                    (detail[:500], now_ms, gid),
                )
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                self._rollback()
                self._gateways.clear()
                raise StorageError(f"rejection update failed: {e}") from e

    # -- reads ----------------------------------------------------------------------------

    def _fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._readers.connection() as db:
            try:
                return db.execute(query, params).fetchall()
            except sqlite3.Error as e:
                raise StorageError(f"query failed: {e}") from e

    def size_bytes(self) -> int | None:
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                total += self.path.with_name(self.path.name + suffix).stat().st_size
        return total or None

    def _write(self, ops: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                counts = [self._db.execute(q, params).rowcount for q, params in ops]
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                self._rollback()
                raise StorageError(f"write failed: {e}") from e
        bump_generation()
        return counts

    def close(self) -> None:
        self._closing.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=60)
        self._readers.close()
        with self._lock:
            self._db.close()


__all__ = ["MIGRATIONS", "SqliteStorage"]

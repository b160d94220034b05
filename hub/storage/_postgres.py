"""PostgreSQL backend (psycopg 3): for scale and for several ingest workers.

Each ingest transaction COPYs the batch into a temporary staging table and moves it with one
`INSERT ... SELECT ... ON CONFLICT DO NOTHING` (idempotent on (gateway, seq)). Values go to a
`numeric` column: Python floats are sent as their shortest repr, so 35.27 stays 35.27.
Schema migrations run under an advisory lock, so workers may start together.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from hub._errors import StorageError
from hub.storage._base import (
    Storage,
    batch_rows,
    batch_tallies,
    footprint_text,
    names_text,
    sources_text,
)
from hub.storage._types import (
    GatewayState,
    IngestBatch,
    IngestResult,
    SeriesKey,
)

MIGRATIONS: tuple[str, ...] = (
    # 1: gateways, series, readings
    """
    CREATE TABLE gateways (
        id serial PRIMARY KEY,
        name text NOT NULL UNIQUE,
        online boolean,
        session bigint,
        state_ts_ms bigint,
        last_seen_ms bigint,
        backlog bigint,
        batches bigint NOT NULL DEFAULT 0,
        last_error text,
        last_error_ms bigint
    );
    CREATE TABLE gateway_rejections (
        gateway_id integer NOT NULL REFERENCES gateways(id),
        reason text NOT NULL,
        count bigint NOT NULL,
        PRIMARY KEY (gateway_id, reason)
    );
    CREATE TABLE series (
        id serial PRIMARY KEY,
        sensor text NOT NULL,
        quantity text NOT NULL,
        unit text NOT NULL,
        UNIQUE (sensor, quantity, unit)
    );
    CREATE TABLE readings (
        gateway_id integer NOT NULL,
        seq bigint NOT NULL,
        series_id integer NOT NULL,
        ts_ms bigint NOT NULL,
        value numeric,
        text text,
        flags integer NOT NULL,
        PRIMARY KEY (gateway_id, seq)
    );
    CREATE INDEX readings_series_ts ON readings (series_id, ts_ms);
    """,
    # 2: the gateway's latest footprint (JSON) and the count of its readings held
    """
    ALTER TABLE gateways ADD COLUMN footprint text,
        ADD COLUMN readings bigint NOT NULL DEFAULT 0;
    UPDATE gateways g SET readings = c.n
        FROM (SELECT gateway_id, count(*) AS n FROM readings GROUP BY gateway_id) c
        WHERE c.gateway_id = g.id;
    """,
    # 3: each source's health and the settings waiting for a restart (JSON), as the
    # gateway's latest state message reported them
    """
    ALTER TABLE gateways ADD COLUMN sources text, ADD COLUMN restart_pending text;
    """,
)

_MIGRATION_LOCK = 0x657374726E  # "estrn": serialises concurrent migrations
_RETRIES = 3
_COLUMNS = "gateway_id, seq, series_id, ts_ms, value, text, flags"


class PostgresStorage(Storage):
    """One connection; use it from one thread at a time."""

    name = "postgresql"
    placeholder = "%s"
    # The latest reading of each series: the first row of each (sensor, quantity, unit).
    latest_query = (
        "SELECT s.sensor, s.quantity, s.unit, r.ts_ms, r.value, r.text, r.flags, g.name"
        " FROM series s CROSS JOIN LATERAL ("
        "   SELECT * FROM readings WHERE series_id = s.id"
        "   ORDER BY ts_ms DESC, seq DESC LIMIT 1) r"
        " JOIN gateways g ON g.id = r.gateway_id"
        " ORDER BY s.sensor, s.quantity, s.unit"
    )

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self._db = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as e:
            raise StorageError(f"cannot connect to PostgreSQL: {e}") from e
        self._lock = threading.Lock()
        self._series: dict[SeriesKey, int] = {}
        self._gateways: dict[str, int] = {}
        self._staging = False

    # -- schema ---------------------------------------------------------------------------

    def schema_version(self) -> int:
        with self._lock:
            return self._schema_version()

    def _schema_version(self) -> int:
        row = self._db.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return 0
        row = self._db.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def migrate(self) -> int:
        with self._lock:
            try:
                with self._db.transaction():
                    self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
                    self._db.execute("CREATE TABLE IF NOT EXISTS schema_version (version int)")
                    version = self._schema_version()
                    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                        self._db.execute(script.encode())
                        self._db.execute("INSERT INTO schema_version VALUES (%s)", (number,))
            except psycopg.Error as e:
                raise StorageError(f"migration failed: {e}") from e
        return len(MIGRATIONS)

    # -- ingest ---------------------------------------------------------------------------

    def _gateway_id(self, name: str) -> int:
        gid = self._gateways.get(name)
        if gid is None:
            row = self._db.execute(
                "INSERT INTO gateways (name) VALUES (%s) ON CONFLICT (name) DO NOTHING"
                " RETURNING id",
                (name,),
            ).fetchone()
            if row is None:
                row = self._db.execute(
                    "SELECT id FROM gateways WHERE name = %s", (name,)
                ).fetchone()
            assert row is not None
            gid = int(row[0])
            self._gateways[name] = gid
        return gid

    def _series_ids(self, keys: list[SeriesKey]) -> list[int]:
        cache = self._series
        missing = sorted(
            {k for k in keys if k not in cache}, key=lambda k: (k[0], k[1], k[2] or "")
        )
        for sensor, quantity, unit in missing:
            u = unit or ""
            row = self._db.execute(
                "INSERT INTO series (sensor, quantity, unit) VALUES (%s, %s, %s)"
                " ON CONFLICT (sensor, quantity, unit) DO NOTHING RETURNING id",
                (sensor, quantity, u),
            ).fetchone()
            if row is None:
                row = self._db.execute(
                    "SELECT id FROM series WHERE sensor = %s AND quantity = %s AND unit = %s",
                    (sensor, quantity, u),
                ).fetchone()
            assert row is not None
            cache[(sensor, quantity, unit)] = int(row[0])
        return [cache[k] for k in keys]

    def _ensure_staging(self) -> None:
        if not self._staging:
            self._db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS ingest_staging"
                " (LIKE readings INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            self._staging = True

    def ingest(self, batches: Sequence[IngestBatch], now_ms: int) -> IngestResult:
        attempted = sum(len(b) for b in batches)
        with self._lock:
            for attempt in range(_RETRIES):
                try:
                    by_gateway = self._ingest_once(batches)
                    break
                except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
                    if attempt == _RETRIES - 1:
                        raise StorageError("ingest failed: deadlock retries exhausted") from None
                except psycopg.Error as e:
                    self._forget()
                    raise StorageError(f"ingest failed: {e}") from e
            try:
                self._touch_gateways(batches, now_ms, by_gateway)
            except psycopg.Error:  # bookkeeping only: the readings are committed
                self._forget()
        inserted = sum(by_gateway.values())
        return IngestResult(inserted=inserted, duplicates=attempted - inserted)

    def _forget(self) -> None:
        self._series.clear()
        self._gateways.clear()
        self._staging = False

    def _ingest_once(self, batches: Sequence[IngestBatch]) -> dict[int, int]:
        """Readings inserted, by gateway id."""
        prepared: list[tuple[int, list[int], IngestBatch]] = []
        for batch in batches:  # ids are registered in their own short transactions
            prepared.append(
                (self._gateway_id(batch.gateway), self._series_ids(batch.series), batch)
            )
        self._ensure_staging()
        with self._db.transaction(), self._db.cursor() as cur:
            with cur.copy(f"COPY ingest_staging ({_COLUMNS}) FROM STDIN") as copy:
                for gid, ids, batch in prepared:
                    for row in batch_rows(gid, ids, batch):
                        copy.write_row(row)
            cur.execute(
                f"WITH inserted AS (INSERT INTO readings ({_COLUMNS})"
                f" SELECT {_COLUMNS} FROM ingest_staging"
                " ORDER BY gateway_id, seq ON CONFLICT DO NOTHING RETURNING gateway_id)"
                " SELECT gateway_id, count(*) FROM inserted GROUP BY gateway_id"
            )
            return {int(gid): int(n) for gid, n in cur.fetchall()}

    def _touch_gateways(
        self, batches: Sequence[IngestBatch], now_ms: int, inserted: dict[int, int]
    ) -> None:
        for name, count, backlog in batch_tallies(batches):
            gid = self._gateway_id(name)
            self._db.execute(
                "UPDATE gateways SET last_seen_ms = GREATEST(last_seen_ms, %s),"
                " batches = batches + %s, readings = readings + %s,"
                " backlog = COALESCE(%s, backlog) WHERE id = %s",
                (now_ms, count, inserted.get(gid, 0), backlog, gid),
            )

    # -- state ----------------------------------------------------------------------------

    def record_state(self, gateway: str, state: GatewayState, now_ms: int) -> bool:
        with self._lock:
            try:
                gid = self._gateway_id(gateway)
                cur = self._db.execute(
                    "UPDATE gateways SET online = %s, session = %s, state_ts_ms = %s,"
                    " last_seen_ms = %s, backlog = COALESCE(%s, backlog),"
                    " footprint = COALESCE(%s, footprint),"
                    " sources = COALESCE(%s, sources),"
                    " restart_pending = COALESCE(%s, restart_pending)"
                    " WHERE id = %s AND (session IS NULL OR session < %s"
                    "   OR (session = %s AND online))",
                    (
                        state.online,
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
                    ),
                )
            except psycopg.Error as e:
                self._forget()
                raise StorageError(f"state update failed: {e}") from e
        return cur.rowcount > 0

    def record_rejection(self, gateway: str, reason: str, detail: str, now_ms: int) -> None:
        with self._lock:
            try:
                gid = self._gateway_id(gateway)
                with self._db.transaction():
                    self._db.execute(
                        "INSERT INTO gateway_rejections (gateway_id, reason, count)"
                        " VALUES (%s, %s, 1) ON CONFLICT (gateway_id, reason)"
                        " DO UPDATE SET count = gateway_rejections.count + 1",
                        (gid, reason),
                    )
                    self._db.execute(
                        "UPDATE gateways SET last_error = %s, last_error_ms = %s WHERE id = %s",
                        (detail[:500].replace("\x00", "?"), now_ms, gid),
                    )
            except psycopg.Error as e:
                self._forget()
                raise StorageError(f"rejection update failed: {e}") from e

    # -- reads ----------------------------------------------------------------------------

    def _fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(query.encode(), params).fetchall()
            except psycopg.Error as e:
                raise StorageError(f"query failed: {e}") from e

    def close(self) -> None:
        with self._lock:
            self._db.close()


__all__ = ["MIGRATIONS", "PostgresStorage"]

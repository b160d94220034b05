"""PostgreSQL backend (psycopg 3): for scale and for several ingest workers.

Each ingest transaction COPYs the batch into a temporary staging table and moves it with one
`INSERT ... SELECT ... ON CONFLICT DO NOTHING` (idempotent on (gateway, seq)). Values go to a
`numeric` column: Python floats are sent as their shortest repr, so 35.27 stays 35.27.
Schema migrations run under an advisory lock, so workers may start together.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from hub._errors import StorageError
from hub.storage import _alerts, _catalogue
from hub.storage._base import (
    Storage,
    batch_rows,
    batch_tallies,
    bump_generation,
    footprint_text,
    names_text,
    sources_text,
)
from hub.storage._pool import ReadPool
from hub.storage._types import (
    GatewayState,
    IngestBatch,
    IngestResult,
    SeriesKey,
)
from protocols.reading import FLAG_IMPLAUSIBLE_TIME, FLAG_NOT_A_NUMBER

# The (series, time) index, with the values: what a chart's range query reads.
SERIES_INDEX = (
    "CREATE INDEX readings_series_ts ON readings (series_id, ts_ms) INCLUDE (value, text)"
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
    # 4: the latest reading of each series (kept by ingest in the same transaction), and the
    # readings partitioned by time (see _partition_readings)
    """
    CREATE TABLE latest (
        series_id integer PRIMARY KEY,
        gateway_id integer NOT NULL,
        seq bigint NOT NULL,
        ts_ms bigint NOT NULL,
        value numeric,
        text text,
        flags integer NOT NULL
    );
    INSERT INTO latest (series_id, gateway_id, seq, ts_ms, value, text, flags)
        SELECT DISTINCT ON (series_id) series_id, gateway_id, seq, ts_ms, value, text, flags
        FROM readings ORDER BY series_id, ts_ms DESC, seq DESC;
    """,
    # 5: alerts and numériscore (hub/storage/_alerts.py)
    _alerts.POSTGRES,
    # 6: datasets, sensor metadata, erasures on request (hub/storage/_catalogue.py)
    _catalogue.POSTGRES,
    # 7: the (series, time) index carries the values: a chart's range is read from the
    # index alone (index-only scan), not from one heap page per reading
    "DROP INDEX IF EXISTS readings_series_ts; " + SERIES_INDEX,
    # 8: the catalogue's version, raised by every catalogue write (hub/storage/_catalogue.py)
    _catalogue.VERSION_POSTGRES,
)
# Migrations that need more than SQL: run after the script of the same version.
_MIGRATION_STEPS: dict[int, str] = {4: "_partition_readings"}

_MIGRATION_LOCK = 0x657374726E  # "estrn": serialises concurrent migrations
_PARTITION_LOCK = 0x6573747270  # "estrp": serialises partition creation between workers
MONTHS_AHEAD = 2  # partitions made ahead of the current month
MONTHS_BACK = 120  # older months go to the default partition (a clock far off, say 1970)
CHUNK_MS = 7 * 86_400_000  # TimescaleDB chunk width
_RETRIES = 3
_COLUMNS = "gateway_id, seq, series_id, ts_ms, value, text, flags"
# One statement: the staged rows into readings (resends ignored), the newest of those
# inserted into `latest` when newer than what it holds (never one of implausible time:
# hub/_plausibility.py), and the count inserted per gateway.
_INSERT = (
    f"WITH inserted AS (INSERT INTO readings ({_COLUMNS})"
    f" SELECT {_COLUMNS} FROM ingest_staging"
    f" ORDER BY gateway_id, seq ON CONFLICT DO NOTHING RETURNING {_COLUMNS}),"
    f" newest AS (SELECT DISTINCT ON (series_id) {_COLUMNS} FROM inserted"
    f"   WHERE flags & {FLAG_IMPLAUSIBLE_TIME} = 0 ORDER BY series_id, ts_ms DESC, seq DESC),"
    f" kept AS (INSERT INTO latest AS l ({_COLUMNS}) SELECT {_COLUMNS} FROM newest"
    "   ORDER BY series_id ON CONFLICT (series_id) DO UPDATE SET"
    "   gateway_id = EXCLUDED.gateway_id, seq = EXCLUDED.seq, ts_ms = EXCLUDED.ts_ms,"
    "   value = EXCLUDED.value, text = EXCLUDED.text, flags = EXCLUDED.flags"
    "   WHERE (EXCLUDED.ts_ms, EXCLUDED.seq) > (l.ts_ms, l.seq) RETURNING 1)"
    " SELECT gateway_id, count(*) FROM inserted GROUP BY gateway_id"
)


def month_index(ts_ms: int) -> int:
    """Months since 1970-01 of an instant (UTC); far out of range: a month far away."""
    try:
        d = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return -(10**6) if ts_ms < 0 else 10**6
    return (d.year - 1970) * 12 + d.month - 1


def month_bounds(month: int) -> tuple[int, int]:
    """[start, end) of a month in epoch milliseconds."""
    y, m = divmod(month, 12)
    start = datetime(1970 + y, m + 1, 1, tzinfo=UTC)
    y2, m2 = divmod(month + 1, 12)
    end = datetime(1970 + y2, m2 + 1, 1, tzinfo=UTC)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def partition_name(month: int) -> str:
    y, m = divmod(month, 12)
    return f"readings_{1970 + y:04d}{m + 1:02d}"


class PostgresStorage(Storage):
    """One writer connection (ingest, state) and a pool of `readers` connections for
    queries."""

    name = "postgresql"
    series_index = SERIES_INDEX
    placeholder = "%s"
    latest_json_query = (
        "SELECT coalesce(json_agg(json_build_object('sensor', sensor, 'quantity', quantity,"
        " 'unit', NULLIF(unit, ''), 'value', CASE WHEN text IS NOT NULL THEN to_json(text)"
        "   WHEN value IN ('NaN', 'Infinity', '-Infinity') THEN NULL ELSE to_json(value) END,"
        f" 'value_special', CASE WHEN flags & {FLAG_NOT_A_NUMBER} <> 0 OR value = 'NaN'"
        "   THEN 'NaN' WHEN value = 'Infinity' THEN '+Inf' WHEN value = '-Infinity' THEN '-Inf'"
        "   END,"
        " 'ts', to_char(to_timestamp(ts_ms / 1000) AT TIME ZONE 'UTC',"
        "   'YYYY-MM-DD\"T\"HH24:MI:SS') || '.' || lpad((ts_ms %% 1000)::text, 3, '0')"
        "   || '+00:00',"
        " 'ts_ms', ts_ms, 'flags', flags, 'gateway', name)"
        " ORDER BY sensor, quantity, unit), '[]')::text FROM ("
        "   SELECT s.sensor, s.quantity, s.unit, l.value, l.text, l.ts_ms, l.flags, g.name"
        "   FROM latest l JOIN series s ON s.id = l.series_id"
        "   JOIN gateways g ON g.id = l.gateway_id/*where*/"
        "   ORDER BY s.sensor, s.quantity, s.unit LIMIT %s OFFSET %s) page"
    )

    features_json_query = (
        "SELECT coalesce(json_agg(f ORDER BY sensor), '[]')::text FROM ("
        " SELECT m.sensor, json_build_object('type', 'Feature', 'id', m.sensor, 'geometry',"
        "   CASE WHEN m.lon IS NULL OR m.lat IS NULL THEN NULL ELSE json_build_object('type',"
        "   'Point', 'coordinates', json_build_array(m.lon, m.lat)) END,"
        "  'properties', json_build_object('sensor', m.sensor, 'site', m.site, 'kind', m.kind,"
        "   'description', m.description, 'latest', ("
        "    SELECT coalesce(json_agg(json_build_object('quantity', s.quantity,"
        "      'unit', NULLIF(s.unit, ''),"
        f"     'value', CASE WHEN l.flags & {FLAG_NOT_A_NUMBER} <> 0 THEN NULL"
        "        WHEN l.text IS NOT NULL THEN to_json(l.text)"
        "        WHEN l.value IN ('NaN', 'Infinity', '-Infinity') THEN NULL"
        "        ELSE to_json(l.value) END,"
        "      'ts', to_char(to_timestamp(l.ts_ms / 1000) AT TIME ZONE 'UTC',"
        "        'YYYY-MM-DD\"T\"HH24:MI:SS') || '.' || lpad((l.ts_ms %% 1000)::text, 3, '0')"
        "        || '+00:00') ORDER BY s.quantity, s.unit), '[]')"
        "     FROM series s JOIN latest l ON l.series_id = s.id WHERE s.sensor = m.sensor)))"
        "  AS f"
        " FROM sensor_meta m WHERE m.dataset = %s ORDER BY m.sensor LIMIT %s OFFSET %s) page"
    )

    def __init__(self, url: str, *, readers: int = 4) -> None:
        self.url = url
        try:
            self._db = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as e:
            raise StorageError(f"cannot connect to PostgreSQL: {e}") from e
        self._lock = threading.Lock()
        self._readers: ReadPool[psycopg.Connection[Any]] = ReadPool(
            self._connect_reader, psycopg.Connection.close, size=readers
        )
        self._series: dict[SeriesKey, int] = {}
        self._gateways: dict[str, int] = {}
        self._staging = False
        self._months: set[int] | None = None  # partitions known to exist; None: not read yet
        self._partitioned: bool | None = None  # native partitions (not TimescaleDB, not v2)

    def _connect_reader(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.Error as e:
            raise StorageError(f"cannot connect to PostgreSQL: {e}") from e

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
                        step = _MIGRATION_STEPS.get(number)
                        if step is not None:
                            getattr(self, step)()
                        self._db.execute("INSERT INTO schema_version VALUES (%s)", (number,))
                self._months = None
                self._partitioned = None
                if self._schema_version() >= 4:
                    now = month_index(int(time.time() * 1000))
                    self._ensure_months(now, now + MONTHS_AHEAD)
            except psycopg.Error as e:
                raise StorageError(f"migration failed: {e}") from e
        return len(MIGRATIONS)

    def _partition_readings(self) -> None:
        """Migration 4: `readings` becomes a table partitioned by month on ts_ms (native
        declarative partitioning, a DEFAULT partition for what falls outside), or a
        TimescaleDB hypertable when the extension is installed in the database. The rows
        are copied over in the migration's transaction. A unique key of a partitioned table
        must hold the partition column: the key becomes (gateway_id, seq, ts_ms); a resend
        carries the same time, so it is still absorbed."""
        db = self._db
        timescale = db.execute(
            "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"
        ).fetchone()
        db.execute(
            "ALTER TABLE readings RENAME TO readings_v2;"
            " ALTER INDEX readings_series_ts RENAME TO readings_v2_series_ts;"
            " ALTER TABLE readings_v2 RENAME CONSTRAINT readings_pkey TO readings_v2_pkey"
        )
        columns = (
            "gateway_id integer NOT NULL, seq bigint NOT NULL, series_id integer NOT NULL,"
            " ts_ms bigint NOT NULL, value numeric, text text, flags integer NOT NULL,"
            " PRIMARY KEY (gateway_id, seq, ts_ms)"
        )
        if timescale:
            db.execute(f"CREATE TABLE readings ({columns})")
            db.execute(
                "SELECT create_hypertable('readings', 'ts_ms', chunk_time_interval => %s)",
                (CHUNK_MS,),
            )
        else:
            db.execute(f"CREATE TABLE readings ({columns}) PARTITION BY RANGE (ts_ms)")
            db.execute("CREATE TABLE readings_default PARTITION OF readings DEFAULT")
        db.execute("CREATE INDEX readings_series_ts ON readings (series_id, ts_ms)")
        if not timescale:
            row = db.execute("SELECT min(ts_ms), max(ts_ms) FROM readings_v2").fetchone()
            now = month_index(int(time.time() * 1000))
            first = now if row is None or row[0] is None else month_index(int(row[0]))
            last = now if row is None or row[1] is None else month_index(int(row[1]))
            self._partitioned = True
            self._months = set()
            self._create_months(range(min(first, now), max(last, now) + MONTHS_AHEAD + 1))
        db.execute(f"INSERT INTO readings ({_COLUMNS}) SELECT {_COLUMNS} FROM readings_v2")
        db.execute("DROP TABLE readings_v2")

    # -- partitions -------------------------------------------------------------------------

    def prepare_time_range(self, from_ms: int, to_ms: int) -> None:
        with self._lock:
            try:
                self._ensure_months(month_index(from_ms), month_index(to_ms))
            except psycopg.Error as e:
                self._forget()
                raise StorageError(f"cannot make partitions: {e}") from e

    def _is_partitioned(self) -> bool:
        if self._partitioned is None:
            row = self._db.execute(
                "SELECT relkind FROM pg_class WHERE oid = to_regclass('readings')"
            ).fetchone()
            self._partitioned = row is not None and row[0] == "p"
        return self._partitioned

    def _known_months(self) -> set[int]:
        if self._months is None:
            self._months = set()
            for (name,) in self._db.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = to_regclass('readings')"
            ).fetchall():
                if len(name) == 15 and name[9:].isdigit():
                    self._months.add((int(name[9:13]) - 1970) * 12 + int(name[13:]) - 1)
        return self._months

    def _ensure_months(self, first: int, last: int) -> None:
        """Make the monthly partitions of months first..last (within the window kept apart:
        MONTHS_BACK before now to MONTHS_AHEAD after; others stay in the default one)."""
        if not self._is_partitioned():
            return
        now = month_index(int(time.time() * 1000))
        known = self._known_months()
        lo, hi = max(first, now - MONTHS_BACK), min(last, now + MONTHS_AHEAD)
        missing = [m for m in range(lo, hi + 1) if m not in known]
        if missing:
            self._create_months(missing)

    def _create_months(self, months: Iterable[int]) -> None:
        """Each month its partition, in a transaction of its own under an advisory lock
        (several workers may want the same month): rows the default partition holds for
        that month move into it, then it is attached."""
        assert self._months is not None
        for month in months:
            name = partition_name(month)
            start, end = month_bounds(month)
            with self._db.transaction():
                self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_PARTITION_LOCK,))
                exists = self._db.execute("SELECT to_regclass(%s)", (name,)).fetchone()
                if not (exists and exists[0]):
                    self._db.execute(
                        f"CREATE TABLE {name} (LIKE readings INCLUDING DEFAULTS);"
                        f" WITH moved AS (DELETE FROM readings_default"
                        f"   WHERE ts_ms >= {start} AND ts_ms < {end} RETURNING {_COLUMNS})"
                        f" INSERT INTO {name} ({_COLUMNS}) SELECT {_COLUMNS} FROM moved;"
                        f" ALTER TABLE readings ATTACH PARTITION {name}"
                        f"   FOR VALUES FROM ({start}) TO ({end})"
                    )
            self._months.add(month)

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
        """Ids of the series, those not known yet registered in two statements whatever
        their number (a worker's first batches name thousands)."""
        cache = self._series
        missing = sorted(
            {k for k in keys if k not in cache}, key=lambda k: (k[0], k[1], k[2] or "")
        )
        if missing:
            columns = [
                [k[0] for k in missing],
                [k[1] for k in missing],
                [k[2] or "" for k in missing],
            ]
            self._db.execute(
                "INSERT INTO series (sensor, quantity, unit)"
                " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) ORDER BY 1, 2, 3"
                " ON CONFLICT (sensor, quantity, unit) DO NOTHING",
                columns,
            )
            ids = {
                (sensor, quantity, unit): int(sid)
                for sid, sensor, quantity, unit in self._db.execute(
                    "SELECT s.id, s.sensor, s.quantity, s.unit FROM series s"
                    " JOIN unnest(%s::text[], %s::text[], %s::text[]) AS k(sensor, quantity, unit)"
                    " ON s.sensor = k.sensor AND s.quantity = k.quantity AND s.unit = k.unit",
                    columns,
                ).fetchall()
            }
            for key in missing:
                cache[key] = ids[(key[0], key[1], key[2] or "")]
        return [cache[k] for k in keys]

    def _ensure_staging(self) -> None:
        if not self._staging:
            self._db.execute(
                "CREATE TEMP TABLE IF NOT EXISTS ingest_staging"
                " (LIKE readings INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            self._staging = True

    def ingest(self, batches: Sequence[IngestBatch], now_ms: int) -> IngestResult:
        batches, erased = self.drop_erased(batches)
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
        bump_generation()
        return IngestResult(inserted=inserted, duplicates=attempted - inserted, erased=erased)

    def _forget(self) -> None:
        self._series.clear()
        self._gateways.clear()
        self._staging = False
        self._months = None
        self._partitioned = None

    def _ingest_once(self, batches: Sequence[IngestBatch]) -> dict[int, int]:
        """Readings inserted, by gateway id."""
        prepared: list[tuple[int, list[int], IngestBatch]] = []
        months: list[int] = []
        for batch in batches:  # ids are registered in their own short transactions
            prepared.append(
                (self._gateway_id(batch.gateway), self._series_ids(batch.series), batch)
            )
            if batch.ts_ms:
                months += (month_index(min(batch.ts_ms)), month_index(max(batch.ts_ms)))
        if months:
            self._ensure_months(min(months), max(months))
        self._ensure_staging()
        with self._db.transaction(), self._db.cursor() as cur:
            with cur.copy(f"COPY ingest_staging ({_COLUMNS}) FROM STDIN") as copy:
                for gid, ids, batch in prepared:
                    for row in batch_rows(gid, ids, batch):
                        copy.write_row(row)
            cur.execute(_INSERT)
            return {int(gid): int(n) for gid, n in cur.fetchall()}

    def _touch_gateways(
        self, batches: Sequence[IngestBatch], now_ms: int, inserted: dict[int, int]
    ) -> None:
        """Every gateway of the group in one transaction (it was one autocommitted UPDATE,
        so one WAL flush, per gateway, before the group's acks), its rows locked in id
        order so that workers touching the same gateways never deadlock."""
        rows = sorted(
            (self._gateway_id(name), count, backlog)
            for name, count, backlog in batch_tallies(batches)
        )
        ids = [gid for gid, _, _ in rows]
        for attempt in range(_RETRIES):
            try:
                with self._db.transaction():
                    self._db.execute(
                        "SELECT id FROM gateways WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                        (ids,),
                    )
                    self._db.execute(
                        "UPDATE gateways g SET last_seen_ms = GREATEST(g.last_seen_ms, %s),"
                        " batches = g.batches + u.batches, readings = g.readings + u.readings,"
                        " backlog = COALESCE(u.backlog, g.backlog)"
                        " FROM unnest(%s::int[], %s::bigint[], %s::bigint[], %s::bigint[])"
                        " AS u(id, batches, readings, backlog) WHERE g.id = u.id",
                        (
                            now_ms,
                            ids,
                            [count for _, count, _ in rows],
                            [inserted.get(gid, 0) for gid in ids],
                            [backlog for _, _, backlog in rows],
                        ),
                    )
                return
            except (pg_errors.DeadlockDetected, pg_errors.SerializationFailure):
                if attempt == _RETRIES - 1:
                    raise

    # -- state ----------------------------------------------------------------------------

    def record_state(self, gateway: str, state: GatewayState, now_ms: int) -> bool:
        return self.record_states([(gateway, state)], now_ms)[0]

    def record_states(self, states: Sequence[tuple[str, GatewayState]], now_ms: int) -> list[bool]:
        applied: list[bool] = []
        with self._lock:
            try:
                ids = [self._gateway_id(gateway) for gateway, _ in states]
                with self._db.transaction():
                    for gid, (_, state) in zip(ids, states, strict=True):
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
                        applied.append(cur.rowcount > 0)
            except psycopg.Error as e:
                self._forget()
                raise StorageError(f"state update failed: {e}") from e
        return applied

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
        with self._readers.connection() as db:
            try:
                return db.execute(query.encode(), params).fetchall()
            except psycopg.Error as e:
                raise StorageError(f"query failed: {e}") from e

    def size_bytes(self) -> int | None:
        rows = self._fetch("SELECT pg_database_size(current_database())")
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def _write(self, ops: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        with self._lock:
            try:
                with self._db.transaction():
                    counts = [self._db.execute(q.encode(), params).rowcount for q, params in ops]
            except psycopg.Error as e:
                raise StorageError(f"write failed: {e}") from e
        bump_generation()
        return counts

    def close(self) -> None:
        self._readers.close()
        with self._lock:
            self._db.close()


__all__ = ["MIGRATIONS", "PostgresStorage"]

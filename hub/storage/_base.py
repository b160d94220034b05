"""The storage interface: one contract, two backends (SQLite, PostgreSQL).

Backends are synchronous (sqlite3 and psycopg's blocking API); the ingest worker drives one
from a dedicated thread (`hub.storage.StorageThread`), so the event loop never blocks on the
database. Every method is one transaction.
"""

from __future__ import annotations

import abc
import json
import math
import threading
from collections.abc import Collection, Iterator, Sequence
from decimal import Decimal
from itertools import repeat
from typing import Any

from hub.storage._catalogue import Catalogue
from hub.storage._predicate import Cmp, Predicate, fit_int64, render
from hub.storage._types import (
    Downsampled,
    Footprint,
    GatewayInfo,
    GatewayState,
    IngestBatch,
    IngestResult,
    Observation,
    ReadingRow,
    SensorLatest,
    SeriesInfo,
    SeriesKey,
    SeriesPoint,
    SourceStatus,
)
from protocols.reading import FLAG_IMPLAUSIBLE_TIME, FLAG_NOT_A_NUMBER

# Bounds of the read API.
MAX_QUERY_ROWS = 100_000
MAX_SERIES_POINTS = 10_000

# Bucket widths a chart may get (ms): the smallest that keeps the range within the points
# asked for. Beyond a week, whole days.
_SECONDS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)
BUCKETS_MS = (*(s * 1000 for s in _SECONDS), 86_400_000, 2 * 86_400_000, 7 * 86_400_000)


def bucket_for(from_ms: int, to_ms: int, points: int) -> int:
    """The bucket width for [from_ms, to_ms) in at most `points` buckets aligned on
    multiples of the width (alignment may add one bucket: it is counted)."""
    points = max(2, min(int(points), MAX_SERIES_POINTS))
    span = max(1, to_ms - from_ms)
    need = -(-span // (points - 1))  # ceil
    for width in BUCKETS_MS:
        if width >= need:
            return width
    day = 86_400_000
    return -(-need // day) * day


_generation = 0
_generation_lock = threading.Lock()


def write_generation() -> int:
    """A number that changes each time a storage of this process commits a write (readers'
    caches compare it)."""
    return _generation


def bump_generation() -> None:
    global _generation
    with _generation_lock:
        _generation += 1


class Storage(Catalogue):
    """Where committed readings live. Inserts are idempotent on (gateway, seq)."""

    name: str = "storage"
    placeholder: str = "?"  # how the driver marks a query parameter
    int64_params: bool = False  # the driver binds no whole number beyond 64 bits

    @abc.abstractmethod
    def migrate(self) -> int:
        """Bring the schema to the latest version; return that version."""

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The version of the schema in the database (0 when empty)."""

    @abc.abstractmethod
    def ingest(self, batches: Sequence[IngestBatch], now_ms: int) -> IngestResult:
        """Insert every reading of `batches` in one transaction; rows already there (same
        gateway and seq) are left as they are and counted as duplicates. Returns once
        committed: only then may the hub acknowledge."""

    def prepare_time_range(self, from_ms: int, to_ms: int) -> None:
        """Make ready to hold readings of [from_ms, to_ms) (PostgreSQL: the monthly
        partitions; nothing to do elsewhere). Ingest does this by itself; bulk loaders
        call it first."""
        del from_ms, to_ms  # nothing to make

    @abc.abstractmethod
    def record_state(self, gateway: str, state: GatewayState, now_ms: int) -> bool:
        """Apply a birth or death. A state from an older session than the one recorded is
        ignored (a late Will after a reconnect); returns whether it was applied."""

    def record_states(self, states: Sequence[tuple[str, GatewayState]], now_ms: int) -> list[bool]:
        """`record_state` of each (gateway, state) in order; the storages override it with
        one transaction for all (a connect storm brings a thousand births at once, and one
        commit each, with its fsync, made them queue up behind each other)."""
        return [self.record_state(gateway, state, now_ms) for gateway, state in states]

    @abc.abstractmethod
    def record_rejection(self, gateway: str, reason: str, detail: str, now_ms: int) -> None:
        """Count a payload the hub dropped, by reason, in the gateway's state."""

    def gateways(self, limit: int | None = None, offset: int = 0) -> list[GatewayInfo]:
        """Every known gateway (or one page of them, by name) with its state, last contact
        and reported backlog."""
        p = self.placeholder
        page = "" if limit is None else f" LIMIT {p} OFFSET {p}"
        rows = self._fetch(
            "SELECT id, name, online, session, last_seen_ms, backlog, batches, last_error,"
            " last_error_ms, readings, footprint, sources, restart_pending"
            " FROM gateways ORDER BY name" + page,
            () if limit is None else (max(0, limit), max(0, offset)),
        )
        rejected: dict[int, dict[str, int]] = {}
        for gid, reason, count in self._fetch(
            "SELECT gateway_id, reason, count FROM gateway_rejections"
        ):
            rejected.setdefault(gid, {})[reason] = int(count)
        return [
            GatewayInfo(
                gateway=name,
                state="unknown" if online is None else ("online" if online else "offline"),
                session=session,
                last_seen_ms=last_seen,
                backlog=backlog,
                batches=int(batches),
                rejected=rejected.get(gid, {}),
                last_error=last_error,
                last_error_ms=last_error_ms,
                readings=int(readings),
                footprint=footprint_value(footprint),
                sources=sources_value(sources),
                restart_pending=names_value(restart_pending),
            )
            for (
                gid,
                name,
                online,
                session,
                last_seen,
                backlog,
                batches,
                last_error,
                last_error_ms,
                readings,
                footprint,
                sources,
                restart_pending,
            ) in rows
        ]

    def sensors(
        self, limit: int | None = None, offset: int = 0, granted: Collection[str] | None = None
    ) -> list[SensorLatest]:
        """The latest reading of each series (sensor, quantity, unit), in that order; from
        the `latest` table ingest maintains, not a scan of the readings. `granted` (not
        None): only sensors of open datasets and of these closed ones."""
        p = self.placeholder
        page = "" if limit is None else f" LIMIT {p} OFFSET {p}"
        where, params = self.readable_clause("s.sensor", granted)
        if limit is not None:
            params += [max(0, limit), max(0, offset)]
        return [
            SensorLatest(sensor, quantity, unit or None, ts, merge_value(v, t, flags), flags, gw)
            for sensor, quantity, unit, ts, v, t, flags, gw in self._fetch(
                "SELECT s.sensor, s.quantity, s.unit, l.ts_ms, l.value, l.text, l.flags, g.name"
                " FROM latest l JOIN series s ON s.id = l.series_id"
                " JOIN gateways g ON g.id = l.gateway_id"
                + (f" WHERE {where}" if where else "")
                + " ORDER BY s.sensor, s.quantity, s.unit"
                + page,
                params,
            )
        ]

    series_index: str  # CREATE INDEX of the (series, time) index, for bulk loaders

    # One query that returns the page of `sensors()` as a JSON array (text), built by the
    # database: what /api/v1/sensors sends, without a Python object per row. Its WHERE
    # clause (which sensors the principal may read) goes where it says /*where*/.
    latest_json_query: str

    def sensors_json(
        self, limit: int, offset: int = 0, granted: Collection[str] | None = None
    ) -> str:
        """The page of `sensors(limit, offset, granted)` as JSON text: objects with sensor,
        quantity, unit, value (text or number, null when not finite), ts (ISO 8601, ms,
        UTC), ts_ms, flags, gateway."""
        where, params = self.readable_clause("s.sensor", granted)
        query = self.latest_json_query.replace("/*where*/", f" WHERE {where}" if where else "")
        rows = self._fetch(query, (*params, max(0, limit), max(0, offset)))
        return str(rows[0][0]) if rows and rows[0][0] is not None else "[]"

    # One query that returns one page of a dataset's sensors as GeoJSON Features (a JSON
    # array, text), built by the database: the point, the sensor's metadata and its latest
    # value of each quantity. Parameters: the dataset, limit, offset.
    features_json_query: str

    def dataset_features_json(self, dataset: str, limit: int, offset: int = 0) -> str:
        """The sensors of `dataset`, by id, one page, as GeoJSON Features (RFC 7946, WGS84):
        `id` the sensor, a Point (null geometry without a position), `properties` sensor,
        site, kind, description and `latest`: per quantity (by quantity, unit) quantity,
        unit, value (null when not finite) and ts (ISO 8601, ms, UTC)."""
        rows = self._fetch(self.features_json_query, (dataset, max(0, limit), max(0, offset)))
        return str(rows[0][0]) if rows and rows[0][0] is not None else "[]"

    def count_dataset_sensors(self, dataset: str) -> int:
        rows = self._fetch(
            f"SELECT count(*) FROM sensor_meta WHERE dataset = {self.placeholder}", (dataset,)
        )
        return int(rows[0][0])

    def count_series(self, granted: Collection[str] | None = None) -> int:
        """How many series have a latest value (the length of `sensors(granted=...)`)."""
        if granted is None:
            return int(self._fetch("SELECT count(*) FROM latest")[0][0])
        where, params = self.readable_clause("s.sensor", granted)
        return int(
            self._fetch(
                f"SELECT count(*) FROM latest l JOIN series s ON s.id = l.series_id WHERE {where}",
                params,
            )[0][0]
        )

    def gateway_names(self) -> dict[int, str]:
        """Every gateway's name by its id (how readings name their gateway)."""
        return {int(i): str(n) for i, n in self._fetch("SELECT id, name FROM gateways")}

    def count_gateways(self) -> int:
        return int(self._fetch("SELECT count(*) FROM gateways")[0][0])

    def series_list(self, sensor: str | None = None) -> list[SeriesInfo]:
        """Every series (or those of one sensor), by id."""
        if sensor is None:
            rows = self._fetch("SELECT id, sensor, quantity, unit FROM series ORDER BY id")
        else:
            rows = self._fetch(
                "SELECT id, sensor, quantity, unit FROM series"
                f" WHERE sensor = {self.placeholder} ORDER BY id",
                (sensor,),
            )
        return [SeriesInfo(int(i), s, q, u or None) for i, s, q, u in rows]

    def latest_of(self, series_ids: Sequence[int]) -> dict[int, SensorLatest]:
        """The latest reading of each of these series (by id), those that have one."""
        out: dict[int, SensorLatest] = {}
        ids = list(series_ids)
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            marks = ", ".join([self.placeholder] * len(chunk))
            for sid, sensor, quantity, unit, ts, v, t, flags, gw in self._fetch(
                "SELECT l.series_id, s.sensor, s.quantity, s.unit, l.ts_ms, l.value, l.text,"
                " l.flags, g.name FROM latest l JOIN series s ON s.id = l.series_id"
                f" JOIN gateways g ON g.id = l.gateway_id WHERE l.series_id IN ({marks})",
                chunk,
            ):
                out[int(sid)] = SensorLatest(
                    sensor, quantity, unit or None, ts, merge_value(v, t, flags), flags, gw
                )
        return out

    def first_ts(self, series_id: int) -> int | None:
        """The time of the oldest reading of one series (index (series_id, ts_ms))."""
        p = self.placeholder
        rows = self._fetch(
            f"SELECT ts_ms FROM readings WHERE series_id = {p} ORDER BY ts_ms LIMIT 1",
            (series_id,),
        )
        return int(rows[0][0]) if rows else None

    def readings(
        self,
        sensor: str,
        from_ms: int | None = None,
        to_ms: int | None = None,
        limit: int = 10_000,
        offset: int = 0,
    ) -> list[ReadingRow]:
        """Readings of one sensor (all its quantities) with from_ms <= ts < to_ms, in time
        order (then gateway and sequence order), at most `limit` (<= MAX_QUERY_ROWS), after
        skipping `offset`."""
        p = self.placeholder
        rows = self._fetch(
            "SELECT g.name, r.seq, s.sensor, s.quantity, s.unit, r.ts_ms, r.value, r.text,"
            " r.flags FROM series s"
            " JOIN readings r ON r.series_id = s.id"
            " JOIN gateways g ON g.id = r.gateway_id"
            f" WHERE s.sensor = {p} AND r.ts_ms >= {p} AND r.ts_ms < {p}"
            f" ORDER BY r.ts_ms, g.name, r.seq LIMIT {p} OFFSET {p}",
            (
                sensor,
                -(2**63) if from_ms is None else from_ms,
                2**63 - 1 if to_ms is None else to_ms,
                clamp_limit(limit),
                max(0, int(offset)),
            ),
        )
        return [
            ReadingRow(gw, seq, s, q, u or None, ts, merge_value(v, t, fl), fl)
            for gw, seq, s, q, u, ts, v, t, fl in rows
        ]

    def iter_readings(
        self,
        sensor: str,
        from_ms: int | None = None,
        to_ms: int | None = None,
        quantity: str | None = None,
        chunk: int = 10_000,
    ) -> Iterator[ReadingRow]:
        """Every reading of one sensor (or one of its quantities) with from_ms <= ts < to_ms,
        in (time, gateway id, sequence) order, read in chunks: no connection is held between
        two chunks, so a slow consumer (a streamed CSV download) blocks nobody."""
        p = self.placeholder
        series = [s for s in self.series_list(sensor) if quantity is None or s.quantity == quantity]
        if not series:
            return
        meta = {s.id: s for s in series}
        names = self.gateway_names()
        marks = ", ".join([p] * len(series))
        after: tuple[int, int, int] = (-(2**63), -1, -1)
        end = 2**63 - 1 if to_ms is None else to_ms
        start = -(2**63) if from_ms is None else from_ms
        while True:
            rows = self._fetch(
                "SELECT r.series_id, r.gateway_id, r.seq, r.ts_ms, r.value, r.text, r.flags"
                f" FROM readings r WHERE r.series_id IN ({marks})"
                f" AND r.ts_ms >= {p} AND r.ts_ms < {p}"
                f" AND (r.ts_ms, r.gateway_id, r.seq) > ({p}, {p}, {p})"
                f" ORDER BY r.ts_ms, r.gateway_id, r.seq LIMIT {p}",
                (*meta, start, end, *after, chunk),
            )
            for sid, gid, seq, ts, v, t, fl in rows:
                s = meta[int(sid)]
                gw = names.get(int(gid))
                if gw is None:  # a gateway registered after the names were read
                    names = self.gateway_names()
                    gw = names.get(int(gid), str(gid))
                yield ReadingRow(
                    gw, seq, s.sensor, s.quantity, s.unit, ts, merge_value(v, t, fl), fl
                )
            if len(rows) < chunk:
                return
            last = rows[-1]
            after = (int(last[3]), int(last[1]), int(last[2]))

    def series(
        self,
        sensor: str,
        quantity: str,
        from_ms: int,
        to_ms: int,
        points: int = 1000,
        unit: str | None = None,
    ) -> Downsampled:
        """One series downsampled for a chart: min, max, mean and count of its numeric
        values per bucket, the bucket chosen from the range (`bucket_for`) so that at most
        `points` buckets cover [from_ms, to_ms). Buckets are aligned on multiples of their
        width since the epoch (the same instant falls in the same bucket from one request
        to the next). Raises LookupError when the series does not exist, ValueError when
        (sensor, quantity) names several units and `unit` says none."""
        candidates = [
            s
            for s in self.series_list(sensor)
            if s.quantity == quantity and (unit is None or s.unit == (unit or None))
        ]
        if not candidates:
            raise LookupError(f"no series {sensor}/{quantity}" + (f" in {unit}" if unit else ""))
        if len(candidates) > 1:
            units = ", ".join(sorted(str(s.unit) for s in candidates))
            raise ValueError(f"{sensor}/{quantity} has several units ({units}): give unit")
        info = candidates[0]
        bucket = bucket_for(from_ms, to_ms, points)
        p = self.placeholder
        rows = self._fetch(
            f"SELECT r.ts_ms / {p} AS b, min(r.value), max(r.value), avg(r.value),"
            " count(r.value) FROM readings r"
            f" WHERE r.series_id = {p} AND r.ts_ms >= {p} AND r.ts_ms < {p}"
            " AND r.text IS NULL GROUP BY b ORDER BY b",
            (bucket, info.id, from_ms, to_ms),
        )
        out = []
        for b, lo, hi, mean, count in rows:
            lo_v, hi_v = merge_value(lo, None), merge_value(hi, None)
            out.append(
                SeriesPoint(
                    int(b) * bucket,
                    lo_v if not isinstance(lo_v, str | bool) else None,
                    hi_v if not isinstance(hi_v, str | bool) else None,
                    None if mean is None else float(mean),
                    int(count),
                )
            )
        return Downsampled(info, from_ms, to_ms, bucket, out)

    def observations(
        self,
        series_ids: Sequence[int] | None,
        where: Predicate | None = None,
        order: Sequence[tuple[str, bool]] = (),
        limit: int = 100,
        offset: int = 0,
    ) -> list[Observation]:
        """Readings as SensorThings Observations: of these series (None: every series), that
        match `where`, ordered by `order` ((field, descending) with field one of ts_ms,
        value, obs_id, series_id; then time and id), one page."""
        sql, params = self._observation_where(series_ids, where)
        keys = []
        for name, desc in order:
            direction = " DESC" if desc else ""
            if name == "obs_id":
                keys += [f"r.gateway_id{direction}", f"r.seq{direction}"]
            elif name == "value":
                keys += [f"r.value{direction}", f"r.text{direction}"]
            elif name in ("ts_ms", "series_id"):
                keys.append(f"r.{name}{direction}")
            else:
                raise ValueError(f"cannot order observations by {name}")
        keys += ["r.ts_ms", "r.gateway_id", "r.seq"]
        p = self.placeholder
        rows = self._fetch(
            "SELECT r.series_id, r.gateway_id, r.seq, r.ts_ms, r.value, r.text, r.flags"
            f" FROM readings r WHERE {sql} ORDER BY {', '.join(keys)} LIMIT {p} OFFSET {p}",
            (*params, clamp_limit(limit), max(0, int(offset))),
        )
        return [
            Observation(int(sid), int(gid), int(seq), int(ts), merge_value(v, t, int(fl)), int(fl))
            for sid, gid, seq, ts, v, t, fl in rows
        ]

    def count_observations(
        self, series_ids: Sequence[int] | None, where: Predicate | None = None
    ) -> int:
        sql, params = self._observation_where(series_ids, where)
        return int(self._fetch(f"SELECT count(*) FROM readings r WHERE {sql}", params)[0][0])

    def observation(self, oid: int) -> Observation | None:
        rows = self.observations(None, Cmp("obs_id", "eq", oid), limit=1)
        return rows[0] if rows else None

    def _observation_where(
        self, series_ids: Sequence[int] | None, where: Predicate | None
    ) -> tuple[str, list[object]]:
        parts: list[str] = []
        params: list[object] = []
        if series_ids is not None:
            ids = list(series_ids)
            if not ids:
                return "1 = 0", []
            parts.append(f"r.series_id IN ({', '.join([self.placeholder] * len(ids))})")
            params += ids
        if where is not None:
            sql, more = render(fit_int64(where) if self.int64_params else where, self.placeholder)
            parts.append(sql)
            params += more
        return (" AND ".join(parts) or "1 = 1"), params

    def conflicts(self, batch: IngestBatch, limit: int = 10) -> list[tuple[int, str, str]]:
        """Readings of `batch` already stored under the same (gateway, seq) with another
        series, time or value: (seq, stored, resent), at most `limit`."""
        p = self.placeholder
        want = {
            seq: (batch.series[batch.series_index[i]], batch.ts_ms[i], batch.values[i])
            for i, seq in enumerate(batch.seqs)
        }
        out: list[tuple[int, str, str]] = []
        for first, last in batch.ranges:
            rows = self._fetch(
                "SELECT r.seq, s.sensor, s.quantity, s.unit, r.ts_ms, r.value, r.text, r.flags"
                " FROM readings r JOIN series s ON s.id = r.series_id"
                " JOIN gateways g ON g.id = r.gateway_id"
                f" WHERE g.name = {p} AND r.seq >= {p} AND r.seq <= {p} ORDER BY r.seq",
                (batch.gateway, first, last),
            )
            for seq, sensor, quantity, unit, ts, v, t, fl in rows:
                stored = ((sensor, quantity, unit or None), ts, merge_value(v, t, fl))
                resent = want.get(seq)
                if resent is not None and not _same(stored, resent):
                    out.append((seq, _show(stored), _show(resent)))
                    if len(out) >= limit:
                        return out
        return out

    def count_readings(self, gateway: str | None = None) -> int:
        """How many readings are stored (for one gateway, or all)."""
        if gateway is None:
            rows = self._fetch("SELECT count(*) FROM readings")
        else:
            rows = self._fetch(
                "SELECT count(*) FROM readings r JOIN gateways g ON g.id = r.gateway_id"
                f" WHERE g.name = {self.placeholder}",
                (gateway,),
            )
        return int(rows[0][0])

    def export(self, gateway: str, chunk: int = 50_000) -> Iterator[ReadingRow]:
        """Every reading of one gateway, in sequence order (benchmarks and audits)."""
        p = self.placeholder
        after = -(2**63)
        while True:
            rows = self._fetch(
                "SELECT r.seq, s.sensor, s.quantity, s.unit, r.ts_ms, r.value, r.text, r.flags"
                " FROM readings r JOIN gateways g ON g.id = r.gateway_id"
                " JOIN series s ON s.id = r.series_id"
                f" WHERE g.name = {p} AND r.seq > {p} ORDER BY r.seq LIMIT {p}",
                (gateway, after, chunk),
            )
            if not rows:
                return
            for seq, s, q, u, ts, v, t, fl in rows:
                yield ReadingRow(gateway, seq, s, q, u or None, ts, merge_value(v, t, fl), fl)
            after = rows[-1][0]

    @abc.abstractmethod
    def _fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read query (parameters marked with `placeholder`) on a connection of the
        read pool, never the ingest one; every row."""

    @abc.abstractmethod
    def _write(self, ops: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Run statements (parameters marked with `placeholder`) in one transaction; the
        row count of each."""

    def size_bytes(self) -> int | None:
        """The database's size on disk (None when unknown)."""
        return None

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection."""

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def split_values(batch: IngestBatch) -> tuple[list[object], list[str | None] | None]:
    """Values as (numbers, texts or None): strings go to the text column, booleans are
    stored as 0 and 1."""
    if not batch.has_text:
        return [int(v) if isinstance(v, bool) else v for v in batch.values], None
    nums: list[object] = []
    texts: list[str | None] = []
    for v in batch.values:
        if isinstance(v, str):
            nums.append(None)
            texts.append(v)
        else:
            nums.append(int(v) if isinstance(v, bool) else v)
            texts.append(None)
    return nums, texts


def batch_rows(
    gateway_id: int, series_ids: list[int], batch: IngestBatch
) -> Iterator[tuple[object, ...]]:
    """The rows of the readings table for one batch, in its column order (gateway_id, seq,
    series_id, ts_ms, value, text, flags)."""
    nums, texts = split_values(batch)
    return zip(
        repeat(gateway_id),
        batch.seqs,
        [series_ids[i] for i in batch.series_index],
        batch.ts_ms,
        nums,
        texts if texts is not None else repeat(None),
        batch.flags,
        strict=False,
    )


def batch_tallies(batches: Sequence[IngestBatch]) -> list[tuple[str, int, int | None]]:
    """(gateway, batches, backlog its latest batch reported) for each gateway, by name."""
    latest: dict[str, IngestBatch] = {}
    counts: dict[str, int] = {}
    for b in batches:
        latest[b.gateway] = b
        counts[b.gateway] = counts.get(b.gateway, 0) + 1
    return [(name, counts[name], latest[name].backlog) for name in sorted(latest)]


def merge_value(num: object, text: str | None, flags: int = 0) -> int | float | str | bool | None:
    """One value from the (number, text) columns. PostgreSQL numerics come back as Decimal:
    integral ones are given as int, the others as float (their shortest repr round-trips).
    A NaN is flagged at ingest (SQLite stores it as NULL): the flag brings it back."""
    if flags & FLAG_NOT_A_NUMBER:
        return math.nan
    if text is not None:
        return text
    if num is None or isinstance(num, int | float):
        return num
    if isinstance(num, Decimal):
        if num.is_finite() and num == num.to_integral_value():
            return int(num)
        return float(num)
    raise TypeError(f"unexpected stored value {num!r}")


def _same(a: tuple[SeriesKey, int, object], b: tuple[SeriesKey, int, object]) -> bool:
    """The same reading as stored: booleans come back as 0 and 1, PostgreSQL's numeric
    gives 21.0 back as 21, and NaN equals NaN."""
    (ka, ta, va), (kb, tb, vb) = a, b
    return ka == (kb[0], kb[1], kb[2] or None) and ta == tb and _value_key(va) == _value_key(vb)


def _value_key(v: object) -> object:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, float):
        return ("nan",) if math.isnan(v) else (int(v) if v.is_integer() else v)
    if isinstance(v, int):
        return v
    return (type(v).__name__, v)  # text and None: never equal to a number


def _show(reading: tuple[SeriesKey, int, object]) -> str:
    (sensor, quantity, unit), ts, value = reading
    return f"{sensor}/{quantity}={value!r}{' ' + unit if unit else ''}@{ts}"


def footprint_text(footprint: Footprint | None) -> str | None:
    """The footprint column: compact JSON (the wire decoder let only finite numbers in)."""
    if footprint is None:
        return None
    return json.dumps(footprint, separators=(",", ":"), sort_keys=True, allow_nan=False)


def footprint_value(text: str | None) -> Footprint | None:
    if text is None:
        return None
    value = json.loads(text)
    return value if isinstance(value, dict) else None


def sources_text(sources: tuple[SourceStatus, ...] | None) -> str | None:
    """The sources column: compact JSON of each source's health."""
    if sources is None:
        return None
    return json.dumps([s.as_dict() for s in sources], separators=(",", ":"), sort_keys=True)


def sources_value(text: str | None) -> tuple[SourceStatus, ...] | None:
    if text is None:
        return None
    out = []
    for item in json.loads(text):
        if not isinstance(item, dict):
            continue
        last = item.get("last_reading_ms")
        errors = item.get("errors")
        detail = item.get("detail")
        out.append(
            SourceStatus(
                name=str(item.get("name")),
                status=str(item.get("status")),
                last_reading_ms=last if isinstance(last, int) else None,
                errors=(
                    {str(k): int(v) for k, v in errors.items()} if isinstance(errors, dict) else {}
                ),
                detail=detail if isinstance(detail, str) else None,
            )
        )
    return tuple(out)


def names_text(names: tuple[str, ...] | None) -> str | None:
    return None if names is None else json.dumps(list(names))


def names_value(text: str | None) -> tuple[str, ...]:
    value = json.loads(text) if text is not None else []
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def clamp_limit(limit: int) -> int:
    return max(1, min(int(limit), MAX_QUERY_ROWS))


def newest_per_series(
    gateway_id: int, series_ids: list[int], batch: IngestBatch
) -> dict[int, tuple[int, int, int]]:
    """For each series of a batch, (ts_ms, seq, gateway_id) of its newest reading: the
    candidate for the `latest` table (newest = greatest (ts_ms, seq)); a reading of
    implausible time is never one (hub/_plausibility.py)."""
    best: dict[int, tuple[int, int, int]] = {}
    ids = [series_ids[i] for i in range(len(batch.series))]
    rows = zip(batch.series_index, batch.ts_ms, batch.seqs, batch.flags, strict=True)
    for index, ts, seq, flags in rows:
        if flags & FLAG_IMPLAUSIBLE_TIME:
            continue
        sid = ids[index]
        current = best.get(sid)
        if current is None or (ts, seq) > (current[0], current[1]):
            best[sid] = (ts, seq, gateway_id)
    return best


__all__ = [
    "BUCKETS_MS",
    "MAX_QUERY_ROWS",
    "MAX_SERIES_POINTS",
    "Storage",
    "batch_rows",
    "batch_tallies",
    "bucket_for",
    "bump_generation",
    "clamp_limit",
    "footprint_text",
    "footprint_value",
    "merge_value",
    "names_text",
    "names_value",
    "newest_per_series",
    "sources_text",
    "sources_value",
    "split_values",
    "write_generation",
]

"""The storage interface: one contract, two backends (SQLite, PostgreSQL).

Backends are synchronous (sqlite3 and psycopg's blocking API); the ingest worker drives one
from a dedicated thread (`hub.storage.StorageThread`), so the event loop never blocks on the
database. Every method is one transaction.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from itertools import repeat
from typing import Any

from hub.storage._types import (
    Footprint,
    GatewayInfo,
    GatewayState,
    IngestBatch,
    IngestResult,
    ReadingRow,
    SensorLatest,
    SourceStatus,
)

# Bounds of the read API.
MAX_QUERY_ROWS = 100_000


class Storage(abc.ABC):
    """Where committed readings live. Inserts are idempotent on (gateway, seq)."""

    name: str = "storage"
    placeholder: str = "?"  # how the driver marks a query parameter
    # Rows (sensor, quantity, unit, ts_ms, value, text, flags, gateway), each series' latest
    # reading first: what `sensors` reads.
    latest_query: str

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

    @abc.abstractmethod
    def record_state(self, gateway: str, state: GatewayState, now_ms: int) -> bool:
        """Apply a birth or death. A state from an older session than the one recorded is
        ignored (a late Will after a reconnect); returns whether it was applied."""

    @abc.abstractmethod
    def record_rejection(self, gateway: str, reason: str, detail: str, now_ms: int) -> None:
        """Count a payload the hub dropped, by reason, in the gateway's state."""

    def gateways(self) -> list[GatewayInfo]:
        """Every known gateway with its state, last contact and reported backlog."""
        rows = self._fetch(
            "SELECT id, name, online, session, last_seen_ms, backlog, batches, last_error,"
            " last_error_ms, readings, footprint, sources, restart_pending"
            " FROM gateways ORDER BY name"
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

    def sensors(self) -> list[SensorLatest]:
        """The latest reading of each series (sensor, quantity, unit)."""
        return latest_per_series(
            SensorLatest(sensor, quantity, unit or None, ts, merge_value(v, t), flags, gw)
            for sensor, quantity, unit, ts, v, t, flags, gw in self._fetch(self.latest_query)
        )

    def readings(
        self,
        sensor: str,
        from_ms: int | None = None,
        to_ms: int | None = None,
        limit: int = 10_000,
    ) -> list[ReadingRow]:
        """Readings of one sensor (all its quantities) with from_ms <= ts < to_ms, in time
        order (then gateway and sequence order), at most `limit` (<= MAX_QUERY_ROWS)."""
        p = self.placeholder
        rows = self._fetch(
            "SELECT g.name, r.seq, s.sensor, s.quantity, s.unit, r.ts_ms, r.value, r.text,"
            " r.flags FROM series s"
            " JOIN readings r ON r.series_id = s.id"
            " JOIN gateways g ON g.id = r.gateway_id"
            f" WHERE s.sensor = {p} AND r.ts_ms >= {p} AND r.ts_ms < {p}"
            f" ORDER BY r.ts_ms, g.name, r.seq LIMIT {p}",
            (
                sensor,
                -(2**63) if from_ms is None else from_ms,
                2**63 - 1 if to_ms is None else to_ms,
                clamp_limit(limit),
            ),
        )
        return [
            ReadingRow(gw, seq, s, q, u or None, ts, merge_value(v, t), fl)
            for gw, seq, s, q, u, ts, v, t, fl in rows
        ]

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
                yield ReadingRow(gateway, seq, s, q, u or None, ts, merge_value(v, t), fl)
            after = rows[-1][0]

    @abc.abstractmethod
    def _fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read query (parameters marked with `placeholder`); every row."""

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


def merge_value(num: object, text: str | None) -> int | float | str | bool | None:
    """One value from the (number, text) columns. PostgreSQL numerics come back as Decimal:
    integral ones are given as int, the others as float (their shortest repr round-trips)."""
    if text is not None:
        return text
    if num is None or isinstance(num, int | float):
        return num
    if isinstance(num, Decimal):
        if num.is_finite() and num == num.to_integral_value():
            return int(num)
        return float(num)
    raise TypeError(f"unexpected stored value {num!r}")


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


def latest_per_series(rows: Iterable[SensorLatest]) -> list[SensorLatest]:
    """The first row of each series (rows come ordered so that the one to keep is first)."""
    seen: set[tuple[str, str, str | None]] = set()
    out: list[SensorLatest] = []
    for row in rows:
        key = (row.sensor, row.quantity, row.unit)
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


__all__ = [
    "MAX_QUERY_ROWS",
    "Storage",
    "batch_rows",
    "batch_tallies",
    "clamp_limit",
    "footprint_text",
    "footprint_value",
    "latest_per_series",
    "merge_value",
    "names_text",
    "names_value",
    "sources_text",
    "sources_value",
    "split_values",
]

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

from hub.storage._types import (
    Footprint,
    GatewayInfo,
    GatewayState,
    IngestBatch,
    IngestResult,
    ReadingRow,
    SensorLatest,
)

# Bounds of the read API.
MAX_QUERY_ROWS = 100_000


class Storage(abc.ABC):
    """Where committed readings live. Inserts are idempotent on (gateway, seq)."""

    name: str = "storage"

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

    @abc.abstractmethod
    def gateways(self) -> list[GatewayInfo]:
        """Every known gateway with its state, last contact and reported backlog."""

    @abc.abstractmethod
    def sensors(self) -> list[SensorLatest]:
        """The latest reading of each series (sensor, quantity, unit)."""

    @abc.abstractmethod
    def readings(
        self,
        sensor: str,
        from_ms: int | None = None,
        to_ms: int | None = None,
        limit: int = 10_000,
    ) -> list[ReadingRow]:
        """Readings of one sensor (all its quantities) with from_ms <= ts < to_ms, in time
        order (then gateway and sequence order), at most `limit` (<= MAX_QUERY_ROWS)."""

    @abc.abstractmethod
    def count_readings(self, gateway: str | None = None) -> int:
        """How many readings are stored (for one gateway, or all)."""

    @abc.abstractmethod
    def export(self, gateway: str, chunk: int = 50_000) -> Iterator[ReadingRow]:
        """Every reading of one gateway, in sequence order (benchmarks and audits)."""

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
    "clamp_limit",
    "footprint_text",
    "footprint_value",
    "latest_per_series",
    "merge_value",
    "split_values",
]

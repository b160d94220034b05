"""Hub storage: one interface (`Storage`), two backends (SQLite, PostgreSQL).

`open_storage(spec, data_dir)` picks the backend from a `--db` value:

- `sqlite` (default): `<data_dir>/estran.sqlite3`
- `sqlite:///absolute/path.sqlite3` or `sqlite:relative/path.sqlite3`
- `postgresql://user@host:port/dbname` (or `postgres://...`)

The PostgreSQL backend is imported only when asked for.
"""

from __future__ import annotations

from pathlib import Path

from hub._errors import ConfigError
from hub.storage._base import (
    MAX_QUERY_ROWS,
    MAX_SERIES_POINTS,
    Storage,
    bucket_for,
    write_generation,
)
from hub.storage._catalogue import (
    ETALAB,
    LICENCES,
    CatalogueEntry,
    CatalogueError,
    Dataset,
    Erasure,
    NotInCatalogue,
    SensorMeta,
)
from hub.storage._pool import ReadPool
from hub.storage._predicate import BoolOp, Cmp, Not, Predicate, obs_id, split_obs_id
from hub.storage._sqlite import SqliteStorage
from hub.storage._thread import StorageThread
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
    Value,
)


def sqlite_path(spec: str, data_dir: Path) -> Path | None:
    """The SQLite file a `--db` value names, or None when it is not a SQLite spec."""
    if spec == "sqlite":
        return data_dir / "estran.sqlite3"
    if spec.startswith("sqlite:///"):
        return Path(spec[len("sqlite://") :])
    if spec.startswith("sqlite:"):
        return Path(spec[len("sqlite:") :])
    return None


def check_db(spec: str, data_dir: Path) -> None:
    """Refuse a `--db` value no backend takes, before anything starts."""
    if sqlite_path(spec, data_dir) is None and not spec.startswith(
        ("postgresql://", "postgres://")
    ):
        shown = spec.partition("://")[0] + "://..." if "://" in spec else spec
        raise ConfigError(f"unknown --db {shown!r}: use sqlite, sqlite:///PATH or postgresql://...")


def open_storage(spec: str, data_dir: Path, *, migrate: bool = True, readers: int = 4) -> Storage:
    """Open (and by default migrate) the storage named by a `--db` value; `readers`: the
    size of its pool of read connections (separate from the ingest connection)."""
    check_db(spec, data_dir)
    path = sqlite_path(spec, data_dir)
    storage: Storage
    if path is not None:
        storage = SqliteStorage(path, readers=readers)
    else:
        from hub.storage._postgres import PostgresStorage

        storage = PostgresStorage(spec, readers=readers)
    if migrate:
        try:
            storage.migrate()
        except BaseException:
            storage.close()
            raise
    return storage


__all__ = [
    "ETALAB",
    "LICENCES",
    "MAX_QUERY_ROWS",
    "MAX_SERIES_POINTS",
    "BoolOp",
    "CatalogueEntry",
    "CatalogueError",
    "Cmp",
    "Dataset",
    "Downsampled",
    "Erasure",
    "Footprint",
    "GatewayInfo",
    "GatewayState",
    "IngestBatch",
    "IngestResult",
    "Not",
    "NotInCatalogue",
    "Observation",
    "Predicate",
    "ReadPool",
    "ReadingRow",
    "SensorLatest",
    "SensorMeta",
    "SeriesInfo",
    "SeriesKey",
    "SeriesPoint",
    "SourceStatus",
    "SqliteStorage",
    "Storage",
    "StorageThread",
    "Value",
    "bucket_for",
    "check_db",
    "obs_id",
    "open_storage",
    "split_obs_id",
    "sqlite_path",
    "write_generation",
]

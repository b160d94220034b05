"""Datasets, sensor metadata and erasures: who may read a sensor, where it is, and which
ranges of readings were deleted on request (and must not come back).

- `datasets`: name, open or closed, licence, description, steward.
- `sensor_meta`: per sensor its dataset (NULL: in none, so closed: admin only), location
  (WGS84 longitude, latitude), site, description, kind, `personal` (never in an open
  dataset: refused when configured, either way round).
- `erasures`: each deletion on request (sensor, [from, to), who, when, why, how many);
  ingest drops a resent reading that falls in one (the gateway's buffer drains, nothing
  comes back).

One migration per backend, appended to each backend's MIGRATIONS; `Catalogue` is the part of
the `Storage` interface that reads and writes them, on `_fetch` and `_write`.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from hub._errors import HubError
from hub.storage._types import IngestBatch

SQLITE = """
CREATE TABLE datasets (
    name TEXT PRIMARY KEY,
    open INTEGER NOT NULL,
    licence TEXT NOT NULL,
    description TEXT NOT NULL,
    steward TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE sensor_meta (
    sensor TEXT PRIMARY KEY,
    dataset TEXT,
    lon REAL,
    lat REAL,
    site TEXT,
    description TEXT NOT NULL,
    kind TEXT,
    personal INTEGER NOT NULL,
    updated_by TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX sensor_meta_dataset ON sensor_meta (dataset);
CREATE INDEX sensor_meta_site ON sensor_meta (site);
CREATE TABLE erasures (
    id INTEGER PRIMARY KEY,
    sensor TEXT NOT NULL,
    from_ms INTEGER NOT NULL,
    to_ms INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    ts_ms INTEGER NOT NULL
);
CREATE INDEX erasures_sensor ON erasures (sensor)
"""

POSTGRES = (
    SQLITE.replace("INTEGER PRIMARY KEY,", "bigserial PRIMARY KEY,")
    .replace("INTEGER", "bigint")
    .replace("REAL", "double precision")
    .replace("TEXT", "text")
)

# A later migration (8 on both backends): one number that every catalogue write (datasets,
# sensor metadata, erasures) raises in its own transaction. Caches of what the catalogue
# decides (open data, latest values, SensorThings entities) compare it on every request, so
# a dataset closed or readings erased show at once, whichever process made the change.
VERSION = """
CREATE TABLE catalogue_version (id INTEGER PRIMARY KEY, version INTEGER NOT NULL);
INSERT INTO catalogue_version (id, version) VALUES (1, 0)
"""
VERSION_POSTGRES = VERSION.replace("INTEGER PRIMARY KEY", "integer PRIMARY KEY").replace(
    "INTEGER", "bigint"
)
_BUMP = ("UPDATE catalogue_version SET version = version + 1 WHERE id = 1", ())

ETALAB = "etalab-2.0"
# Licences the hub names with a title and an address (any other identifier is kept as given).
LICENCES: dict[str, tuple[str, str]] = {
    ETALAB: (
        "Licence Ouverte / Open Licence 2.0 (Etalab)",
        "https://www.etalab.gouv.fr/licence-ouverte-open-licence/",
    ),
    "ODbL-1.0": (
        "Open Database License 1.0",
        "https://opendatacommons.org/licenses/odbl/1-0/",
    ),
    "CC-BY-4.0": (
        "Creative Commons Attribution 4.0",
        "https://creativecommons.org/licenses/by/4.0/",
    ),
    "CC0-1.0": ("Creative Commons Zero 1.0", "https://creativecommons.org/publicdomain/zero/1.0/"),
    "restricted": ("Restricted: closed data, no reuse without agreement", ""),
}


class CatalogueError(HubError):
    """A dataset or sensor configuration the hub refuses (with the reason)."""


class NotInCatalogue(CatalogueError):
    """No such dataset (or sensor)."""


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    open: bool
    licence: str
    description: str
    steward: str
    updated_by: str = ""
    updated_ms: int = 0

    @property
    def licence_title(self) -> str:
        return LICENCES.get(self.licence, (self.licence, ""))[0]

    @property
    def licence_url(self) -> str:
        return LICENCES.get(self.licence, ("", ""))[1]


@dataclass(frozen=True, slots=True)
class SensorMeta:
    sensor: str
    dataset: str | None = None
    location: tuple[float, float] | None = None  # WGS84 (longitude, latitude)
    site: str | None = None
    description: str = ""
    kind: str | None = None
    personal: bool = False


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """A sensor as the access rules and the open data see it."""

    sensor: str
    dataset: str | None  # None: in no dataset (closed, admin only)
    open: bool
    licence: str | None
    location: tuple[float, float] | None
    site: str | None
    description: str
    kind: str | None
    personal: bool


@dataclass(frozen=True, slots=True)
class Erasure:
    id: int
    sensor: str
    from_ms: int
    to_ms: int
    deleted: int
    reason: str
    actor: str
    ts_ms: int


def check_location(lon: float, lat: float) -> tuple[float, float]:
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise CatalogueError("location: finite numbers")
    if not -180.0 <= lon <= 180.0 or not -90.0 <= lat <= 90.0:
        raise CatalogueError("location: longitude -180..180, latitude -90..90 (WGS84)")
    return (float(lon), float(lat))


class Catalogue(abc.ABC):
    """Datasets, sensor metadata and erasures (a part of `Storage`)."""

    placeholder: str

    @abc.abstractmethod
    def _fetch(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @abc.abstractmethod
    def _write(self, ops: Sequence[tuple[str, Sequence[Any]]]) -> list[int]: ...

    def _marks(self, n: int) -> str:
        return ", ".join([self.placeholder] * n)

    # -- datasets ------------------------------------------------------------------------------

    _DATASET = "name, open, licence, description, steward, updated_by, updated_ms"

    def datasets(self) -> list[Dataset]:
        return [
            Dataset(n, bool(o), lic, d, s, by, int(ms))
            for n, o, lic, d, s, by, ms in self._fetch(
                f"SELECT {self._DATASET} FROM datasets ORDER BY name"
            )
        ]

    def dataset(self, name: str) -> Dataset:
        rows = self._fetch(
            f"SELECT {self._DATASET} FROM datasets WHERE name = {self.placeholder}", (name,)
        )
        if not rows:
            raise NotInCatalogue(f"no dataset {name[:64]!r}")
        n, o, lic, d, s, by, ms = rows[0]
        return Dataset(n, bool(o), lic, d, s, by, int(ms))

    def put_dataset(self, dataset: Dataset, actor: str, now_ms: int) -> Dataset:
        """Create or replace a dataset. Opening one that holds a personal sensor is refused."""
        p = self.placeholder
        if dataset.open:
            personal = self._fetch(
                f"SELECT sensor FROM sensor_meta WHERE dataset = {p} AND personal = 1"
                " ORDER BY sensor LIMIT 5",
                (dataset.name,),
            )
            if personal:
                names = ", ".join(r[0] for r in personal)
                raise CatalogueError(
                    f"dataset {dataset.name} holds personal sensors ({names}): it cannot be open"
                )
        self._write(
            [
                _BUMP,
                (f"DELETE FROM datasets WHERE name = {p}", (dataset.name,)),
                (
                    f"INSERT INTO datasets ({self._DATASET}) VALUES ({self._marks(7)})",
                    (
                        dataset.name,
                        int(dataset.open),
                        dataset.licence,
                        dataset.description,
                        dataset.steward,
                        actor,
                        now_ms,
                    ),
                ),
            ]
        )
        return self.dataset(dataset.name)

    def remove_dataset(self, name: str) -> int:
        """Remove a dataset; its sensors are in none afterwards (closed). How many."""
        self.dataset(name)
        p = self.placeholder
        _, moved, _ = self._write(
            [
                _BUMP,
                (f"UPDATE sensor_meta SET dataset = NULL WHERE dataset = {p}", (name,)),
                (f"DELETE FROM datasets WHERE name = {p}", (name,)),
            ]
        )
        return moved

    # -- sensors -------------------------------------------------------------------------------

    _META = "sensor, dataset, lon, lat, site, description, kind, personal"

    @staticmethod
    def _meta(row: Sequence[Any]) -> SensorMeta:
        sensor, dataset, lon, lat, site, description, kind, personal = row
        location = None if lon is None or lat is None else (float(lon), float(lat))
        return SensorMeta(sensor, dataset, location, site, description, kind, bool(personal))

    def sensor_meta(self, sensor: str) -> SensorMeta:
        """The metadata of one sensor (defaults when none was set)."""
        rows = self._fetch(
            f"SELECT {self._META} FROM sensor_meta WHERE sensor = {self.placeholder}", (sensor,)
        )
        return self._meta(rows[0]) if rows else SensorMeta(sensor)

    def put_sensor_meta(self, meta: SensorMeta, actor: str, now_ms: int) -> SensorMeta:
        """Set a sensor's metadata. A personal sensor in an open dataset is refused; an
        unknown dataset too."""
        if meta.dataset is not None:
            d = self.dataset(meta.dataset)
            if d.open and meta.personal:
                raise CatalogueError(
                    f"{meta.sensor} is personal: it cannot be in the open dataset {d.name}"
                )
        if meta.location is not None:
            check_location(*meta.location)
        lon, lat = meta.location if meta.location is not None else (None, None)
        p = self.placeholder
        self._write(
            [
                _BUMP,
                (f"DELETE FROM sensor_meta WHERE sensor = {p}", (meta.sensor,)),
                (
                    f"INSERT INTO sensor_meta ({self._META}, updated_by, updated_ms)"
                    f" VALUES ({self._marks(10)})",
                    (
                        meta.sensor,
                        meta.dataset,
                        lon,
                        lat,
                        meta.site,
                        meta.description,
                        meta.kind,
                        int(meta.personal),
                        actor,
                        now_ms,
                    ),
                ),
            ]
        )
        return self.sensor_meta(meta.sensor)

    def _catalogue_rows(self, where: str, params: Sequence[Any]) -> list[CatalogueEntry]:
        rows = self._fetch(
            "SELECT k.sensor, m.dataset, d.open, d.licence, m.lon, m.lat, m.site,"
            " m.description, m.kind, m.personal FROM ("
            "   SELECT sensor FROM series UNION SELECT sensor FROM sensor_meta) k"
            " LEFT JOIN sensor_meta m ON m.sensor = k.sensor"
            " LEFT JOIN datasets d ON d.name = m.dataset" + where + " ORDER BY k.sensor",
            params,
        )
        return [
            CatalogueEntry(
                sensor=sensor,
                dataset=dataset if is_open is not None else None,
                open=bool(is_open),
                licence=licence,
                location=None if lon is None or lat is None else (float(lon), float(lat)),
                site=site,
                description=description or "",
                kind=kind,
                personal=bool(personal),
            )
            for sensor, dataset, is_open, licence, lon, lat, site, description, kind, personal in rows
        ]

    def sensor_catalogue(
        self, granted: Collection[str] | None = None, dataset: str | None = None
    ) -> list[CatalogueEntry]:
        """Every sensor the hub knows (readings or metadata), by id, with its dataset, licence,
        location, site, description, kind and `personal`. `granted` None: all of them (an
        admin); otherwise those of open datasets and of the `granted` closed ones.
        `dataset`: only that dataset's."""
        clauses: list[str] = []
        params: list[Any] = []
        if granted is not None:
            marks = self._marks(len(granted))
            clauses.append("(d.open = 1" + (f" OR d.name IN ({marks}))" if granted else ")"))
            params += sorted(granted)
        if dataset is not None:
            clauses.append(f"m.dataset = {self.placeholder}")
            params.append(dataset)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return self._catalogue_rows(where, params)

    def sensor_access(self, sensor: str) -> tuple[str | None, bool]:
        """(dataset, open) of one sensor: what `Principal.can_read` decides on."""
        rows = self._fetch(
            "SELECT m.dataset, d.open FROM sensor_meta m JOIN datasets d ON d.name = m.dataset"
            f" WHERE m.sensor = {self.placeholder}",
            (sensor,),
        )
        if not rows:
            return None, False
        return str(rows[0][0]), bool(rows[0][1])

    def readable_clause(
        self, column: str, granted: Collection[str] | None
    ) -> tuple[str, list[Any]]:
        """A condition on a sensor `column` (and its parameters) that keeps the sensors of open
        datasets and of `granted` ones; ("", []) when `granted` is None (everything)."""
        if granted is None:
            return "", []
        names = sorted(granted)
        extra = f" OR d.name IN ({self._marks(len(names))})" if names else ""
        return (
            f"{column} IN (SELECT m.sensor FROM sensor_meta m"
            f" JOIN datasets d ON d.name = m.dataset WHERE d.open = 1{extra})",
            list(names),
        )

    def catalogue_version(self) -> int:
        """The number every catalogue write raises (datasets, sensor metadata, erasures,
        from any process): a cache of anything they decide is out of date when it changed."""
        rows = self._fetch("SELECT version FROM catalogue_version WHERE id = 1")
        return int(rows[0][0]) if rows else 0

    def site_sensors(self, site: str) -> list[str]:
        return [
            r[0]
            for r in self._fetch(
                f"SELECT sensor FROM sensor_meta WHERE site = {self.placeholder} ORDER BY sensor",
                (site,),
            )
        ]

    # -- erasure -------------------------------------------------------------------------------

    def erase_readings(
        self,
        sensors: Sequence[str],
        from_ms: int,
        to_ms: int,
        actor: str,
        now_ms: int,
        reason: str = "",
    ) -> int:
        """Delete the readings of `sensors` with from_ms <= ts < to_ms, in one transaction:
        the readings, their place as a series' latest value (the next older one takes it),
        the gateways' counts; and remember the range, so that ingest drops a resent reading
        in it. How many readings were deleted."""
        if from_ms >= to_ms:
            raise CatalogueError("from must be before to")
        sensors = sorted(set(sensors))
        if not sensors:
            raise CatalogueError("no sensor to erase")
        p = self.placeholder
        marks = self._marks(len(sensors))
        series_ids = [
            int(r[0])
            for r in self._fetch(f"SELECT id FROM series WHERE sensor IN ({marks})", sensors)
        ]
        found: dict[str, int] = {}
        ops: list[tuple[str, Sequence[Any]]] = [_BUMP]
        if series_ids:
            ids = ", ".join(str(i) for i in series_ids)  # integers from the database
            in_range = f"series_id IN ({ids}) AND ts_ms >= {p} AND ts_ms < {p}"
            found = {
                str(sensor): int(n)
                for sensor, n in self._fetch(
                    "SELECT s.sensor, count(*) FROM readings r JOIN series s ON s.id = r.series_id"
                    f" WHERE r.{in_range} GROUP BY s.sensor",
                    (from_ms, to_ms),
                )
            }
            ops.append(
                (
                    "UPDATE gateways SET readings = readings - (SELECT count(*) FROM readings r"
                    f" WHERE r.gateway_id = gateways.id AND r.{in_range})",
                    (from_ms, to_ms),
                )
            )
            ops.append((f"DELETE FROM readings WHERE {in_range}", (from_ms, to_ms)))
            ops.append((f"DELETE FROM latest WHERE {in_range}", (from_ms, to_ms)))
            for sid in series_ids:
                ops.append(
                    (
                        "INSERT INTO latest (series_id, gateway_id, seq, ts_ms, value, text,"
                        " flags) SELECT series_id, gateway_id, seq, ts_ms, value, text, flags"
                        f" FROM readings WHERE series_id = {p} AND NOT EXISTS ("
                        f"   SELECT 1 FROM latest WHERE series_id = {p})"
                        " ORDER BY ts_ms DESC, seq DESC LIMIT 1",
                        (sid, sid),
                    )
                )
        for sensor in sensors:
            ops.append(
                (
                    "INSERT INTO erasures (sensor, from_ms, to_ms, deleted, reason, actor, ts_ms)"
                    f" VALUES ({self._marks(7)})",
                    (sensor, from_ms, to_ms, found.get(sensor, 0), reason[:500], actor, now_ms),
                )
            )
        rows = self._write(ops)
        self._erased_seen = None  # reload on the next ingest
        return rows[2] if series_ids else 0

    def erasures(self, sensor: str | None = None, limit: int = 1000) -> list[Erasure]:
        p = self.placeholder
        where = "" if sensor is None else f" WHERE sensor = {p}"
        params: list[Any] = [] if sensor is None else [sensor]
        rows = self._fetch(
            "SELECT id, sensor, from_ms, to_ms, deleted, reason, actor, ts_ms FROM erasures"
            f"{where} ORDER BY id DESC LIMIT {p}",
            [*params, max(1, min(limit, 100_000))],
        )
        return [
            Erasure(int(i), str(sn), int(lo), int(hi), int(n), str(why), str(who), int(ts))
            for i, sn, lo, hi, n, why, who, ts in rows
        ]

    # -- ingest: resent readings of erased ranges ------------------------------------------------

    _erased_seen: tuple[int, int] | None = None
    _erased: dict[str, list[tuple[int, int]]]
    _erased_lock = threading.Lock()

    def _erased_ranges(self) -> dict[str, list[tuple[int, int]]]:
        """The erased ranges by sensor, reloaded when the erasures table changed (another
        process may have erased: its count and last id say so)."""
        n, last = self._fetch("SELECT count(*), max(id) FROM erasures")[0]
        seen = (int(n), int(last or 0))
        with self._erased_lock:
            if seen != self._erased_seen:
                ranges: dict[str, list[tuple[int, int]]] = {}
                if seen[0]:
                    for sensor, lo, hi in self._fetch(
                        "SELECT sensor, from_ms, to_ms FROM erasures"
                    ):
                        ranges.setdefault(sensor, []).append((int(lo), int(hi)))
                self._erased = ranges
                self._erased_seen = seen
            return self._erased

    def drop_erased(self, batches: Sequence[IngestBatch]) -> tuple[list[IngestBatch], int]:
        """The batches without their readings that fall in an erased range, and how many
        were dropped (their sequence numbers are acknowledged all the same: the gateway's
        buffer drains)."""
        ranges = self._erased_ranges()
        if not ranges:
            return list(batches), 0
        out: list[IngestBatch] = []
        dropped = 0
        for batch in batches:
            hit = [ranges.get(sensor) for sensor, _, _ in batch.series]
            if not any(hit):
                out.append(batch)
                continue
            keep = [
                i
                for i, (si, ts) in enumerate(zip(batch.series_index, batch.ts_ms, strict=True))
                if not any(lo <= ts < hi for lo, hi in hit[si] or ())
            ]
            dropped += len(batch) - len(keep)
            out.append(
                dataclasses.replace(
                    batch,
                    series_index=[batch.series_index[i] for i in keep],
                    seqs=[batch.seqs[i] for i in keep],
                    ts_ms=[batch.ts_ms[i] for i in keep],
                    values=[batch.values[i] for i in keep],
                    flags=[batch.flags[i] for i in keep],
                )
            )
        return out, dropped


__all__ = [
    "ETALAB",
    "LICENCES",
    "POSTGRES",
    "SQLITE",
    "VERSION",
    "VERSION_POSTGRES",
    "Catalogue",
    "CatalogueEntry",
    "CatalogueError",
    "Dataset",
    "Erasure",
    "NotInCatalogue",
    "SensorMeta",
    "check_location",
]

"""Datasets, sensor metadata, open data and erasure on request, over HTTP.

- `/open/v1/...`: open data without authentication (a token reads its closed datasets there
  too): the datasets, and per dataset the latest values with positions as GeoJSON and CSV,
  the licence in the document and in a `Link: <...>; rel="license"` header.
- `/api/v1/datasets`, `/api/v1/catalogue`: what the principal may read; changes are an
  admin's, audited.
- `/api/v1/erasures`: deletion of a sensor's or a site's readings over a time range (admin,
  audited); ingest drops what a gateway resends in an erased range.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, Field, model_validator

from hub._cache import FreshCache, etag_of, not_modified
from hub._decode import MAX_NAME
from hub._errors import StorageError
from hub._http import echo
from hub.auth import CurrentPrincipal, Principal, audit, require_role
from hub.storage import (
    ETALAB,
    CatalogueEntry,
    CatalogueError,
    Dataset,
    NotInCatalogue,
    SensorLatest,
    SensorMeta,
    Storage,
)

T = TypeVar("T")

NAME = r"^[a-z0-9][a-z0-9._@-]{0,63}$"
# A licence is an identifier (SPDX style: etalab-2.0, ODbL-1.0, LicenseRef-city-1): it goes
# into a response header (X-Licence), so nothing else.
LICENCE_ID = r"^[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}$"
MAX_PAGE = 10_000
Admin = Annotated[Principal, Depends(require_role("admin"))]
DatasetName = Annotated[str, Path(pattern=NAME)]
SensorId = Annotated[str, Path(min_length=1, max_length=MAX_NAME)]  # the wire format's


class DatasetBody(BaseModel):
    open: bool
    licence: str | None = Field(default=None, pattern=LICENCE_ID)
    description: str = Field(default="", max_length=4000)
    steward: str = Field(default="", max_length=200)


class SensorBody(BaseModel):
    dataset: str | None = Field(default=None, pattern=NAME)
    lon: float | None = Field(default=None, ge=-180, le=180)
    lat: float | None = Field(default=None, ge=-90, le=90)
    site: str | None = Field(default=None, max_length=128)
    description: str = Field(default="", max_length=4000)
    kind: str | None = Field(default=None, max_length=64)
    personal: bool = False

    @model_validator(mode="after")
    def _both(self) -> SensorBody:
        if (self.lon is None) != (self.lat is None):
            raise ValueError("lon and lat: both or neither")
        return self


class ErasureBody(BaseModel):
    sensor: str | None = Field(default=None, min_length=1, max_length=MAX_NAME)
    site: str | None = Field(default=None, min_length=1, max_length=128)
    from_: str = Field(alias="from", max_length=40)
    to: str = Field(max_length=40)
    reason: str = Field(default="", max_length=500)

    @model_validator(mode="after")
    def _one(self) -> ErasureBody:
        if (self.sensor is None) == (self.site is None):
            raise ValueError("give sensor or site (one of them)")
        return self


def stored(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except NotInCatalogue as e:
        raise HTTPException(404, str(e)[:300]) from e
    except CatalogueError as e:
        raise HTTPException(409, str(e)[:300]) from e
    except StorageError as e:
        raise HTTPException(503, str(e)[:300]) from e


def ensure_readable(storage: Storage, who: Principal, sensor: str) -> None:
    """404 unless `who` may read `sensor` (the same answer as for a sensor that does not
    exist: a closed sensor's existence is not disclosed)."""
    if who.is_admin:
        return
    dataset, is_open = stored(lambda: storage.sensor_access(sensor))
    if not who.can_read(dataset, is_open):
        raise HTTPException(404, f"no sensor {echo(sensor)!r} readable with these credentials")


def dataset_dict(d: Dataset, sensors: int | None = None) -> dict[str, object]:
    out: dict[str, object] = {
        "name": d.name,
        "open": d.open,
        "licence": {"id": d.licence, "title": d.licence_title, "url": d.licence_url or None},
        "description": d.description,
        "steward": d.steward,
        "updated_by": d.updated_by,
        "updated_ms": d.updated_ms,
        "links": {
            "geojson": f"/open/v1/datasets/{d.name}.geojson",
            "csv": f"/open/v1/datasets/{d.name}.csv",
        },
    }
    if sensors is not None:
        out["sensors"] = sensors
    return out


def entry_dict(e: CatalogueEntry) -> dict[str, object]:
    return {
        "sensor": e.sensor,
        "dataset": e.dataset,
        "open": e.open,
        "licence": e.licence,
        "location": None if e.location is None else {"lon": e.location[0], "lat": e.location[1]},
        "site": e.site,
        "description": e.description,
        "kind": e.kind,
        "personal": e.personal,
    }


def _licence_link(response: Response, d: Dataset) -> None:
    if d.licence_url:
        response.headers["Link"] = f'<{d.licence_url}>; rel="license"'
    if re.fullmatch(LICENCE_ID, d.licence):  # one stored before identifiers were checked
        response.headers["X-Licence"] = d.licence


def data_router(storage: Storage) -> APIRouter:
    # the API's helpers (it includes this router)
    from hub._api import LATEST_STALE, LATEST_TTL, iso, jsonable, paginate

    r = APIRouter()

    def readable_dataset(who: Principal, name: str) -> Dataset:
        try:
            d = storage.dataset(name)
        except NotInCatalogue:
            d = None
        except StorageError as e:
            raise HTTPException(503, str(e)[:300]) from e
        if d is None or not who.can_read(d.name, d.open):
            raise HTTPException(404, f"no dataset {echo(name)!r} readable with these credentials")
        return d

    def latest_by_sensor(who: Principal) -> dict[str, list[SensorLatest]]:
        out: dict[str, list[SensorLatest]] = {}
        for s in stored(lambda: storage.sensors(granted=who.granted)):
            out.setdefault(s.sensor, []).append(s)
        return out

    def page(
        request: Request, response: Response, rows: list[T], offset: int, limit: int
    ) -> list[T]:
        paginate(request, response, len(rows), offset, limit)
        return rows[offset : offset + limit]

    # -- datasets ------------------------------------------------------------------------------

    @r.get("/open/v1/datasets", tags=["open data"])
    @r.get("/api/v1/datasets", tags=["datasets"])
    def list_datasets(who: CurrentPrincipal) -> list[dict[str, object]]:
        """The datasets this principal may read (anonymous: the open ones), with their
        licence, description, steward, how many sensors, and where their data is."""
        counts: dict[str, int] = {}
        for e in stored(lambda: storage.sensor_catalogue(granted=who.granted)):
            if e.dataset is not None:
                counts[e.dataset] = counts.get(e.dataset, 0) + 1
        return [
            dataset_dict(d, counts.get(d.name, 0))
            for d in stored(storage.datasets)
            if who.can_read(d.name, d.open)
        ]

    @r.put("/api/v1/datasets/{name}", tags=["datasets"])
    def put_dataset(
        name: DatasetName, body: DatasetBody, request: Request, who: Admin
    ) -> dict[str, object]:
        """(admin) Create or replace a dataset. The licence defaults to Etalab's Licence
        Ouverte 2.0 for an open one, `restricted` for a closed one. Opening a dataset that
        holds a personal sensor is refused (409)."""
        licence = body.licence or (ETALAB if body.open else "restricted")
        d = Dataset(name, body.open, licence, body.description, body.steward)
        saved = stored(lambda: storage.put_dataset(d, who.user or "", now_ms()))
        audit(
            who,
            "dataset.put",
            name,
            {"open": saved.open, "licence": saved.licence, "steward": saved.steward},
            request,
        )
        return dataset_dict(saved)

    @r.delete("/api/v1/datasets/{name}", tags=["datasets"])
    def remove_dataset(name: DatasetName, request: Request, who: Admin) -> dict[str, object]:
        """(admin) Remove a dataset: its sensors are then in none (closed, admin only)."""
        moved = stored(lambda: storage.remove_dataset(name))
        audit(who, "dataset.remove", name, {"sensors": moved}, request)
        return {"removed": name, "sensors_closed": moved}

    # -- sensor metadata ---------------------------------------------------------------------

    @r.get("/api/v1/catalogue", tags=["datasets"])
    def catalogue(
        who: CurrentPrincipal,
        request: Request,
        response: Response,
        dataset: Annotated[str | None, Query(pattern=NAME)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1000,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> list[dict[str, object]]:
        """The sensors this principal may read: dataset, licence, location, site,
        description, kind, personal. Paged (`X-Total-Count`, `Link`)."""
        rows = stored(lambda: storage.sensor_catalogue(granted=who.granted, dataset=dataset))
        return [entry_dict(e) for e in page(request, response, rows, offset, limit)]

    @r.get("/api/v1/catalogue/{sensor}", tags=["datasets"])
    def catalogue_entry(sensor: SensorId, who: CurrentPrincipal) -> dict[str, object]:
        ensure_readable(storage, who, sensor)
        m = stored(lambda: storage.sensor_meta(sensor))
        dataset, is_open = stored(lambda: storage.sensor_access(sensor))
        return {
            "sensor": m.sensor,
            "dataset": dataset,
            "open": is_open,
            "location": None
            if m.location is None
            else {"lon": m.location[0], "lat": m.location[1]},
            "site": m.site,
            "description": m.description,
            "kind": m.kind,
            "personal": m.personal,
        }

    @r.put("/api/v1/catalogue/{sensor}", tags=["datasets"])
    def put_sensor(
        sensor: SensorId, body: SensorBody, request: Request, who: Admin
    ) -> dict[str, object]:
        """(admin) A sensor's metadata (the whole of it). A personal sensor in an open
        dataset is refused (409)."""
        location = None if body.lon is None or body.lat is None else (body.lon, body.lat)
        meta = SensorMeta(
            sensor, body.dataset, location, body.site, body.description, body.kind, body.personal
        )
        saved = stored(lambda: storage.put_sensor_meta(meta, who.user or "", now_ms()))
        audit(
            who,
            "sensor.meta",
            sensor,
            {"dataset": saved.dataset, "site": saved.site, "personal": saved.personal},
            request,
        )
        return catalogue_entry(sensor, who)

    # -- open data ---------------------------------------------------------------------------

    # The GeoJSON of a dataset is built once (by the database) and served again as bytes,
    # as /api/v1/sensors: until this process writes, or for LATEST_TTL seconds (another
    # process's writes) and LATEST_STALE more while it is rebuilt in the background; a
    # catalogue change (the dataset closed or changed, readings erased) shows at once.
    geojson_pages: FreshCache[tuple[str, int, int], tuple[bytes, int, str, Dataset]]
    geojson_pages = FreshCache(LATEST_TTL, stale_for=LATEST_STALE)

    def geojson_page(name: str, limit: int, offset: int) -> tuple[bytes, int, str, Dataset]:
        """One page of the dataset's GeoJSON, the count of its sensors, its entity tag and
        the dataset it was built from."""
        d = storage.dataset(name)
        features = storage.dataset_features_json(name, limit, offset).encode()
        total = storage.count_dataset_sensors(name)
        licence = {"id": d.licence, "title": d.licence_title, "url": d.licence_url or None}
        head = json.dumps(
            {"type": "FeatureCollection", "name": d.name, "dataset": dataset_dict(d, total)},
            separators=(",", ":"),
        )[:-1].encode()
        about = json.dumps(licence, separators=(",", ":")).encode()
        generated = json.dumps(iso(now_ms())).encode()
        body = b"".join((head, b',"licence":', about, b',"generated":', generated, b',"features":'))
        body += features + b"}"
        return body, total, etag_of(head, about, features), d

    @r.get("/open/v1/datasets/{name}.geojson", tags=["open data"])
    def dataset_geojson(
        name: DatasetName,
        who: CurrentPrincipal,
        request: Request,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = MAX_PAGE,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> Response:
        """The dataset's sensors as a GeoJSON FeatureCollection (RFC 7946, WGS84): a point per
        sensor (null geometry when it has no position) with its latest value of each
        quantity; the licence in `licence` and in a `Link` header. Served again for up to
        1 s (3 s while it is rebuilt), never after a catalogue change (the dataset closed,
        readings erased); `ETag`: a conditional GET (`If-None-Match`) of an unchanged
        document gets 304."""
        version = stored(storage.catalogue_version)  # before the dataset and its data
        readable_dataset(who, name)  # nothing is built for who may not read it
        try:
            body, total, etag, d = geojson_pages.get(
                (name, limit, offset), lambda: geojson_page(name, limit, offset), version
            )
        except NotInCatalogue as e:  # removed in between
            raise HTTPException(404, f"no dataset {echo(name)!r}") from e
        except StorageError as e:
            raise HTTPException(503, str(e)[:300]) from e
        if not who.can_read(d.name, d.open):  # changed in between
            raise HTTPException(404, f"no dataset {echo(name)!r} readable with these credentials")
        if not_modified(request.headers.get("if-none-match"), etag):
            out = Response(status_code=304)
        else:
            out = Response(body, media_type="application/geo+json")
        out.headers["ETag"] = etag
        paginate(request, out, total, offset, limit)
        _licence_link(out, d)
        return out

    @r.get("/open/v1/datasets/{name}.csv", tags=["open data"])
    def dataset_csv(
        name: DatasetName,
        who: CurrentPrincipal,
        request: Request,
        response: Response,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = MAX_PAGE,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> Response:
        """The dataset's latest values, one line per sensor and quantity, with the position:
        `sensor,lon,lat,site,kind,quantity,unit,value,ts,licence`. Paged by sensor."""
        d = readable_dataset(who, name)
        entries = stored(lambda: storage.sensor_catalogue(granted=who.granted, dataset=name))
        latest = latest_by_sensor(who)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(
            ("sensor", "lon", "lat", "site", "kind", "quantity", "unit", "value", "ts", "licence")
        )
        for e in page(request, response, entries, offset, limit):
            lon, lat = e.location if e.location is not None else ("", "")
            for s in latest.get(e.sensor, []):
                value = jsonable(s.value)
                w.writerow(
                    (
                        e.sensor,
                        lon,
                        lat,
                        e.site or "",
                        e.kind or "",
                        s.quantity,
                        s.unit or "",
                        "" if value is None else value,
                        iso(s.ts_ms),
                        d.licence,
                    )
                )
        out = Response(
            buf.getvalue(), media_type="text/csv; charset=utf-8", headers=dict(response.headers)
        )
        out.headers["Content-Disposition"] = f'inline; filename="{d.name}.csv"'
        _licence_link(out, d)
        return out

    # -- erasure on request ------------------------------------------------------------------

    @r.post("/api/v1/erasures", tags=["datasets"])
    def erase(body: ErasureBody, request: Request, who: Admin) -> dict[str, object]:
        """(admin) Delete a sensor's, or every sensor of a site's, readings with
        from <= ts < to, everywhere the hub keeps them; audited. Readings a gateway resends
        in that range later are dropped at ingest (counted as `erased`)."""
        from hub._api import parse_time

        from_ms = parse_time(body.from_, "from")
        to_ms = parse_time(body.to, "to")
        if from_ms is None or to_ms is None:  # an empty string
            raise HTTPException(422, f"{'from' if from_ms is None else 'to'}: required")
        if from_ms >= to_ms:
            raise HTTPException(422, "from: must be before to")
        if body.sensor is not None:
            sensors = [body.sensor]
        else:
            sensors = stored(lambda: storage.site_sensors(body.site or ""))
            if not sensors:
                raise HTTPException(404, f"no sensor at site {echo(body.site or '')!r}")
        deleted = stored(
            lambda: storage.erase_readings(
                sensors, from_ms, to_ms, who.user or "", now_ms(), body.reason
            )
        )
        audit(
            who,
            "readings.erase",
            body.sensor or f"site:{body.site}",
            {
                "sensors": sensors[:100],
                "from_ms": from_ms,
                "to_ms": to_ms,
                "deleted": deleted,
                "reason": body.reason,
            },
            request,
        )
        return {"sensors": sensors, "from": iso(from_ms), "to": iso(to_ms), "deleted": deleted}

    @r.get("/api/v1/erasures", tags=["datasets"])
    def erasures(
        _: Admin,
        sensor: Annotated[str | None, Query(min_length=1, max_length=MAX_NAME)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1000,
    ) -> list[dict[str, object]]:
        """(admin) Erasures done, newest first: sensor, range, how many, who, when, why."""
        return [
            {
                "id": e.id,
                "sensor": e.sensor,
                "from": iso(e.from_ms),
                "to": iso(e.to_ms),
                "from_ms": e.from_ms,
                "to_ms": e.to_ms,
                "deleted": e.deleted,
                "reason": e.reason,
                "actor": e.actor,
                "at": iso(e.ts_ms),
            }
            for e in stored(lambda: storage.erasures(sensor, limit))
        ]

    return r


def now_ms() -> int:
    return time.time_ns() // 1_000_000


__all__ = ["data_router", "ensure_readable"]

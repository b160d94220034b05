"""The read API (FastAPI). Endpoints are plain functions: FastAPI runs them in its thread
pool, on a storage connection of their own (never the ingest one). Every endpoint declares
what it needs (`hub.auth`): the fleet's gateways are staff's (admin, technician)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from hub import dashboard
from hub._cache import FreshCache, etag_of, not_modified
from hub._data_api import data_router, ensure_readable
from hub._decode import MAX_NAME
from hub._errors import StorageError
from hub._http import DEFAULT_MAX_BODY, ENROLL_MAX_BODY, BodyLimit, validation_error
from hub._plausibility import special
from hub._rollouts_api import MAX_UPLOAD, RELEASES_PATH
from hub.auth import Access, CurrentPrincipal, Principal, require_role
from hub.auth import router as access_router
from hub.storage import MAX_QUERY_ROWS, GatewayInfo, Storage

# The range of a time parameter: what a datetime can say (years 1 to 9999), in ms.
MIN_TIME_MS = -62_135_596_800_000
MAX_TIME_MS = 253_402_300_799_999

Staff = Annotated[Principal, Depends(require_role("admin", "technician"))]

PER_READING = ("bytes_sent", "flash_write_bytes")  # footprint figures also shown per reading


def iso(ts_ms: int | None) -> str | None:
    if ts_ms is None:
        return None
    try:
        return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return None


def jsonable(value: object) -> object:
    """A number JSON can carry: a non-finite one (an aggregate over NaN) becomes null."""
    return None if special(value) is not None else value


def value_fields(value: object) -> dict[str, object]:
    """`value` and `value_special`: JSON has no NaN or infinity, so a non-finite float is
    `"value": null` with `value_special` "NaN", "+Inf" or "-Inf", never mistaken for a
    real null (whose `value_special` is null)."""
    shown = special(value)
    return {"value": None if shown is not None else value, "value_special": shown}


def per_reading(g: GatewayInfo) -> dict[str, float | None] | None:
    """The gateway's cumulative figures divided by the readings the hub holds for it (the
    figures count since the gateway's daemon started, the readings since the first one)."""
    if g.footprint is None:
        return None
    out: dict[str, float | None] = {}
    for name in PER_READING:
        value = g.footprint.get(name)
        out[name] = round(value / g.readings, 2) if value is not None and g.readings else None
    return out


def parse_time(value: str | None, name: str) -> int | None:
    """Milliseconds since the epoch, or an ISO 8601 date-time (UTC unless it says so)."""
    if value is None or value == "":
        return None
    if len(value) > 40:
        raise HTTPException(422, f"{name}: expected epoch milliseconds or ISO 8601")
    try:
        ms = int(value)
    except ValueError:
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise HTTPException(422, f"{name}: expected epoch milliseconds or ISO 8601") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        try:
            ms = int(dt.timestamp() * 1000)
        except (OverflowError, ValueError):
            raise HTTPException(422, f"{name}: out of range") from None
    if not MIN_TIME_MS <= ms <= MAX_TIME_MS:
        raise HTTPException(422, f"{name}: out of range (years 1 to 9999)")
    return ms


MAX_PAGE = 10_000  # rows of one page of a list (sensors, gateways)
MAX_OFFSET = 100_000_000  # beyond: 422, not an overflow in the database
LATEST_TTL = 1.0  # seconds a page of latest values is served as it is
LATEST_STALE = 2.0  # seconds more it is served while it is rebuilt in the background


def paginate(request: Request, response: Response, total: int, offset: int, limit: int) -> None:
    """Page headers of a list: `X-Total-Count`, and `Link` with rel="next"/"prev" (RFC 8288),
    the same query with another offset."""
    response.headers["X-Total-Count"] = str(total)
    links = []
    if offset + limit < total:
        links.append((offset + limit, "next"))
    if offset > 0:
        links.append((max(0, offset - limit), "prev"))
    if links:
        response.headers["Link"] = ", ".join(
            f'<{request.url.include_query_params(offset=o, limit=limit)}>; rel="{rel}"'
            for o, rel in links
        )


def create_app(
    storage: Storage,
    health: Callable[[], dict[str, object]] | None = None,
    access: Access | None = None,
    max_body: int = DEFAULT_MAX_BODY,
) -> FastAPI:
    """The hub's app: the read API, and with `access` the users, tokens, audit and session
    endpoints (without it, every endpoint that needs a principal answers 503)."""
    latest_pages: FreshCache[tuple[int, int, frozenset[str] | None], tuple[bytes, int, str]]
    latest_pages = FreshCache(LATEST_TTL, stale_for=LATEST_STALE)
    app = FastAPI(
        title="Estran hub", version="0.1.0", docs_url="/api/docs", openapi_url="/api/openapi.json"
    )
    app.add_middleware(
        BodyLimit,
        limit=max_body,
        paths={
            "/api/v1/enroll": ENROLL_MAX_BODY,
            "/api/v1/enroll/challenge": ENROLL_MAX_BODY,
            RELEASES_PATH: MAX_UPLOAD,  # release bundles (hub._rollouts_api), streamed to disk
        },
    )
    app.add_exception_handler(RequestValidationError, validation_error)
    if access is not None:
        access.install(app)
        app.include_router(access_router(access))

    @app.get("/api/v1/health")
    def get_health() -> dict[str, object]:
        """Whether every ingest worker is subscribed, and the ingest counters."""
        return health() if health is not None else {"ready": True}

    @app.get("/api/v1/gateways")
    def gateways(
        _: Staff,
        request: Request,
        response: Response,
        limit: int = Query(1000, ge=1, le=MAX_PAGE),
        offset: int = Query(0, ge=0, le=MAX_OFFSET),
    ) -> list[dict[str, object]]:
        """(admin, technician) Every gateway: state (online/offline/unknown), last seen, backlog it reported, the
        readings held, its latest footprint and the footprint per reading, each source's
        health (ok, degraded, down) and the settings waiting for a daemon restart. One page,
        by id;
        `X-Total-Count` and `Link` (rel="next") say what follows."""
        try:
            rows = storage.gateways(limit, offset)
            paginate(request, response, storage.count_gateways(), offset, limit)
        except StorageError as e:
            raise HTTPException(503, str(e)) from e
        return [
            {
                "id": g.gateway,
                "state": g.state,
                "session": g.session,
                "last_seen": iso(g.last_seen_ms),
                "last_seen_ms": g.last_seen_ms,
                "backlog": g.backlog,
                "batches": g.batches,
                "rejected": g.rejected,
                "last_error": g.last_error,
                "last_error_at": iso(g.last_error_ms),
                "readings": g.readings,
                "footprint": g.footprint,
                "per_reading": per_reading(g),
                "sources": (
                    None
                    if g.sources is None
                    else [
                        {**src.as_dict(), "last_reading": iso(src.last_reading_ms)}
                        for src in g.sources
                    ]
                ),
                "restart_pending": list(g.restart_pending),
            }
            for g in rows
        ]

    @app.get("/api/v1/sensors", response_model=list[dict[str, object]])
    def sensors(
        who: CurrentPrincipal,
        request: Request,
        limit: int = Query(1000, ge=1, le=MAX_PAGE),
        offset: int = Query(0, ge=0, le=MAX_OFFSET),
    ) -> Response:
        """The latest value of each sensor quantity (kept on ingest, not searched for) of
        the sensors this principal may read (anonymous: open datasets): `sensor`,
        `quantity`, `unit`, `value`, `ts`, `ts_ms`, `flags`, `gateway`. One page, by
        sensor, quantity and unit; `X-Total-Count` and `Link` (rel="next"). The JSON is
        built by the database in one query; a page is served again until this process
        writes, or for up to 1 s (another process's writes; then rebuilt in the background
        while it is served, for at most 2 s more). A catalogue change (a dataset closed,
        readings erased) shows at once. `ETag`: a conditional GET (`If-None-Match`) of an
        unchanged page gets 304."""
        granted = who.granted

        def build() -> tuple[bytes, int, str]:
            body = storage.sensors_json(limit, offset, granted).encode()
            total = storage.count_series(granted)
            return body, total, etag_of(body, str(total).encode())

        try:
            version = storage.catalogue_version()
            body, total, etag = latest_pages.get((limit, offset, granted), build, version)
        except StorageError as e:
            raise HTTPException(503, str(e)) from e
        if not_modified(request.headers.get("if-none-match"), etag):
            response = Response(status_code=304)
        else:
            response = Response(body, media_type="application/json")
        response.headers["ETag"] = etag
        paginate(request, response, total, offset, limit)
        return response

    @app.get("/api/v1/readings")
    def readings(
        who: CurrentPrincipal,
        sensor: str = Query(min_length=1, max_length=MAX_NAME),
        from_: str | None = Query(None, alias="from"),
        to: str | None = Query(None),
        limit: int = Query(10_000, ge=1, le=MAX_QUERY_ROWS),
        offset: int = Query(0, ge=0, le=10_000_000),
    ) -> dict[str, object]:
        """Readings of one sensor (every quantity), from <= ts < to, in time order; one page
        (`limit`, `offset`). For whole ranges, `/api/v1/readings.csv` streams them."""
        from_ms = parse_time(from_, "from")
        to_ms = parse_time(to, "to")
        ensure_readable(storage, who, sensor)
        try:
            rows = storage.readings(sensor, from_ms, to_ms, limit, offset)
        except StorageError as e:
            raise HTTPException(503, str(e)) from e
        return {
            "sensor": sensor,
            "from": iso(from_ms),
            "to": iso(to_ms),
            "count": len(rows),
            "offset": offset,
            "next_offset": offset + len(rows) if len(rows) == limit else None,
            "readings": [
                {
                    "quantity": r.quantity,
                    "unit": r.unit,
                    **value_fields(r.value),
                    "ts": iso(r.ts_ms),
                    "ts_ms": r.ts_ms,
                    "flags": r.flags,
                    "gateway": r.gateway,
                    "seq": r.seq,
                }
                for r in rows
            ],
        }

    from hub._series_api import series_router  # they use the helpers above
    from hub.sta import sta_router

    app.include_router(series_router(storage))
    app.include_router(sta_router(storage))
    app.include_router(data_router(storage))
    app.include_router(dashboard.router(storage))
    return app


__all__ = [
    "LATEST_STALE",
    "LATEST_TTL",
    "MAX_PAGE",
    "FreshCache",
    "create_app",
    "iso",
    "jsonable",
    "paginate",
    "parse_time",
    "value_fields",
]

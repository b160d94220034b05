"""Charts and exports: `/api/v1/series` (one series downsampled) and `/api/v1/readings.csv`
(a sensor's readings over a range, streamed)."""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Iterator

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse

from hub._api import iso, jsonable, parse_time
from hub._decode import MAX_NAME
from hub._errors import StorageError
from hub.auth import CurrentPrincipal, Principal
from hub.storage import MAX_SERIES_POINTS, ReadingRow, Storage

DAY_MS = 86_400_000
MAX_CSV_ROWS = 10_000_000  # one export; more: split the range
CSV_COLUMNS = ("ts", "ts_ms", "sensor", "quantity", "unit", "value", "flags", "gateway", "seq")


def _csv_value(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    return "" if value is None else value


def csv_chunks(rows: Iterator[ReadingRow], limit: int, per_chunk: int = 2000) -> Iterator[str]:
    """The CSV text of `rows` (header first), in chunks of `per_chunk` lines."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(CSV_COLUMNS)
    for n, r in enumerate(rows, start=1):
        value = _csv_value(r.value)
        unit = r.unit or ""
        out.writerow(
            (iso(r.ts_ms), r.ts_ms, r.sensor, r.quantity, unit, value, r.flags, r.gateway, r.seq)
        )
        if n % per_chunk == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
        if n >= limit:
            break
    yield buf.getvalue()


def readable(storage: Storage, principal: Principal, sensor: str) -> bool:
    """Whether the principal may read this sensor's data (its dataset in the catalogue; a
    sensor in no dataset is closed: admin only)."""
    if principal.role == "admin":
        return True
    dataset, is_open = storage.sensor_access(sensor)
    return principal.can_read(dataset, is_open)


def series_router(storage: Storage) -> APIRouter:
    router = APIRouter()

    @router.get("/api/v1/series")
    def series(
        principal: CurrentPrincipal,
        sensor: str = Query(min_length=1, max_length=MAX_NAME),
        quantity: str = Query(min_length=1, max_length=MAX_NAME),
        unit: str | None = Query(None, max_length=64),
        from_: str | None = Query(None, alias="from"),
        to: str | None = Query(None),
        points: int = Query(1000, ge=2, le=MAX_SERIES_POINTS),
    ) -> dict[str, object]:
        """One series (sensor, quantity) over [from, to) for a chart: per bucket its
        minimum, maximum, mean and count. The bucket width is chosen from the range (1 s,
        2 s, 5 s … 1 h, 2 h … 1 day, 2 days, 1 week, then whole days) so that at most
        `points` buckets cover it; empty buckets are left out. `to` defaults to now, `from`
        to a day before `to`. A sensor of a dataset the caller may not read is 404."""
        to_ms = parse_time(to, "to")
        to_ms = int(time.time() * 1000) if to_ms is None else to_ms
        from_ms = parse_time(from_, "from")
        from_ms = to_ms - DAY_MS if from_ms is None else from_ms
        if from_ms >= to_ms:
            raise HTTPException(422, "from: must be before to")
        try:
            if not readable(storage, principal, sensor):
                raise LookupError(f"no series {sensor}/{quantity}")
            got = storage.series(sensor, quantity, from_ms, to_ms, points, unit)
        except LookupError as e:
            raise HTTPException(404, str(e.args[0])) from e
        except ValueError as e:
            raise HTTPException(422, f"unit: {e}") from e
        except StorageError as e:
            raise HTTPException(503, str(e)) from e
        return {
            "sensor": sensor,
            "quantity": quantity,
            "unit": got.series.unit,
            "from": iso(from_ms),
            "to": iso(to_ms),
            "from_ms": from_ms,
            "to_ms": to_ms,
            "bucket_ms": got.bucket_ms,
            "points": [
                {
                    "t": iso(p.start_ms),
                    "t_ms": p.start_ms,
                    "min": jsonable(p.min),
                    "max": jsonable(p.max),
                    "mean": jsonable(p.mean),
                    "count": p.count,
                }
                for p in got.points
            ],
        }

    @router.get("/api/v1/readings.csv", response_class=StreamingResponse)
    def readings_csv(
        principal: CurrentPrincipal,
        sensor: str = Query(min_length=1, max_length=MAX_NAME),
        quantity: str | None = Query(None, max_length=MAX_NAME),
        from_: str | None = Query(None, alias="from"),
        to: str | None = Query(None),
        limit: int = Query(MAX_CSV_ROWS, ge=1, le=MAX_CSV_ROWS),
    ) -> StreamingResponse:
        """Readings of one sensor (or one of its quantities), from <= ts < to, as CSV
        (RFC 4180, UTF-8, header line), in time order, streamed: read in chunks while it is
        sent, so any range can be exported without the hub holding it. A sensor of a dataset
        the caller may not read is 404."""
        from_ms = parse_time(from_, "from")
        to_ms = parse_time(to, "to")
        try:
            known = storage.series_list(sensor) if readable(storage, principal, sensor) else []
        except StorageError as e:
            raise HTTPException(503, str(e)) from e
        if not known or (quantity is not None and all(s.quantity != quantity for s in known)):
            raise HTTPException(
                404, f"no readings of {sensor}" + (f"/{quantity}" if quantity else "")
            )
        rows = storage.iter_readings(sensor, from_ms, to_ms, quantity)
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in sensor)
        return StreamingResponse(
            csv_chunks(rows, limit),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )

    return router


__all__ = ["CSV_COLUMNS", "MAX_CSV_ROWS", "csv_chunks", "readable", "series_router"]

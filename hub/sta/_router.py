"""The OGC SensorThings API v1.1 read endpoint: GET /sta/v1.1/...

Resource paths: an entity set (`Things`), an entity (`Things(1)`), a navigation from an
entity (`Things(1)/Datastreams`, `Datastreams(1)/Observations`, `Observations(5)/Datastream`,
chained: `Datastreams(1)/Thing/Locations`), a property (`Things(1)/name`) and its raw value
(`Things(1)/name/$value`). Query options: see hub.sta._query. A bad option is 400 with the
option named; an unknown path or entity 404; the database unavailable 503.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response

from hub._cache import FreshCache
from hub._errors import StorageError
from hub._http import echo
from hub.auth import CurrentPrincipal, Principal
from hub.sta._model import NAVIGATION, SETS, Record, Universe, catalogue_of, sta_time
from hub.sta._query import (
    Expr,
    Logical,
    Negation,
    Options,
    Path,
    QueryError,
    Value,
    parse_options,
    parse_time,
)
from hub.storage import BoolOp, Cmp, Not, Predicate, Storage, split_obs_id

CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
]
_SEGMENT = re.compile(r"^([A-Za-z@$][A-Za-z0-9@_.]*)(?:\(([^()]*)\))?$")
_ID = re.compile(r"[0-9]{1,19}|'[0-9]{1,19}'")  # ids are whole numbers, quoted or not
_OBS_FIELDS = {
    "phenomenonTime": "ts_ms",
    "resultTime": "ts_ms",
    "result": "value",
    "id": "obs_id",
    "@iot.id": "obs_id",
}
UNIVERSE_TTL = 5.0  # seconds a reader's view of Things, Datastreams... is reused

_FLIP = {"eq": "eq", "ne": "ne", "lt": "gt", "le": "ge", "gt": "lt", "ge": "le"}


class NotFound(Exception):
    pass


def _json(body: object, status: int = 200) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":"), allow_nan=False),
        status_code=status,
        media_type="application/json",
    )


def _error(status: int, message: str) -> Response:
    return _json({"code": status, "type": "error", "message": message}, status)


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


# -- $filter on records held in memory ------------------------------------------------------


def _as_ms(value: Any) -> int | None:
    if isinstance(value, str):
        return parse_time(value.split("/")[0])
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _compare(op: str, a: Any, b: Any) -> bool:
    if op == "eq":
        return _same(a, b)
    if op == "ne":
        return not _same(a, b)
    if a is None or b is None:
        return False
    numbers = (int, float)
    if (
        isinstance(a, numbers)
        and isinstance(b, numbers)
        and not isinstance(a, bool)
        and not isinstance(b, bool)
    ):
        pass
    elif type(a) is not type(b):
        return False
    try:
        if op == "lt":
            return bool(a < b)
        if op == "le":
            return bool(a <= b)
        if op == "gt":
            return bool(a > b)
        return bool(a >= b)
    except TypeError:
        return False


class _Query:
    """One request's view: the principal's universe, the storage, the gateways' names."""

    def __init__(self, storage: Storage, universe: Universe) -> None:
        self.storage = storage
        self.u = universe
        self._gateways: dict[int, str] | None = None

    def gateways(self) -> dict[int, str]:
        if self._gateways is None:
            self._gateways = self.storage.gateway_names()
        return self._gateways

    # -- in-memory sets --------------------------------------------------------------------

    def resolve(self, name: str, record: Record, path: Path, option: str) -> Any:
        parts = list(path.parts)
        if parts[0] in ("id", "@iot.id"):
            return record["@iot.id"]
        nav = NAVIGATION[name].get(parts[0])
        if nav is not None:
            target, many = nav
            if many or len(parts) < 2:
                raise QueryError(option, f"cannot compare {echo(str(path))} (a collection)")
            if target == "Observations":
                raise QueryError(option, f"cannot compare {echo(str(path))}")
            keep = self.u.related_filter(name, record, parts[0])
            found = next((r for r in self.u.records[target].values() if keep(r)), None)
            return (
                None
                if found is None
                else self.resolve(target, found, Path(tuple(parts[1:])), option)
            )
        if parts[0] not in record or parts[0].startswith("_") or "@" in parts[0]:
            raise QueryError(option, f"{name} has no property {echo(parts[0])}")
        value: Any = record[parts[0]]
        for part in parts[1:]:
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def evaluate(self, name: str, record: Record, expr: Expr) -> bool:
        if isinstance(expr, Logical):
            left = self.evaluate(name, record, expr.left)
            if expr.op == "and":
                return left and self.evaluate(name, record, expr.right)
            return left or self.evaluate(name, record, expr.right)
        if isinstance(expr, Negation):
            return not self.evaluate(name, record, expr.operand)
        sides = []
        for side in (expr.left, expr.right):
            if isinstance(side, Path):
                sides.append(self.resolve(name, record, side, "$filter"))
            else:
                sides.append(side.value)
        a, b = sides
        left_time = isinstance(expr.left, Value) and expr.left.is_time
        right_time = isinstance(expr.right, Value) and expr.right.is_time
        if right_time and not left_time:
            a = _as_ms(a)
        if left_time and not right_time:
            b = _as_ms(b)
        return _compare(expr.op, a, b)

    def sort(self, name: str, records: list[Record], opts: Options) -> list[Record]:
        for order in reversed(opts.orderby):

            def key(r: Record, order: Any = order) -> tuple[int, str, Any]:
                v = self.resolve(name, r, order.path, "$orderby")
                if v is None:
                    return (0, "", 0)
                if isinstance(v, dict | list):
                    v = json.dumps(v, sort_keys=True)
                return (1, "n" if isinstance(v, int | float) else type(v).__name__, v)

            records = sorted(records, key=key, reverse=order.desc)
        return records

    def enrich(self, name: str, page: list[Record]) -> None:
        """Times that cost a query each, for the page only: a Datastream's phenomenon and
        result time (first/last reading), a HistoricalLocation's time (its sensor's first
        reading)."""
        if name == "Datastreams" and page:
            latest = self.storage.latest_of([r["@iot.id"] for r in page])
            for r in page:
                last = latest.get(r["@iot.id"])
                first = self.storage.first_ts(r["@iot.id"])
                if last is not None and first is not None:
                    span = f"{sta_time(first)}/{sta_time(last.ts_ms)}"
                    r["phenomenonTime"] = span
                    r["resultTime"] = span
        if name == "HistoricalLocations":
            for r in page:
                r["time"] = sta_time(self.storage.first_ts(r["@iot.id"])) or sta_time(0)

    # -- Observations ----------------------------------------------------------------------

    def predicate(self, expr: Expr) -> Predicate:
        if isinstance(expr, Logical):
            return BoolOp(
                "and" if expr.op == "and" else "or",
                self.predicate(expr.left),
                self.predicate(expr.right),
            )
        if isinstance(expr, Negation):
            return Not(self.predicate(expr.operand))
        op = expr.op
        left, right = expr.left, expr.right
        if isinstance(left, Value) and isinstance(right, Path):
            left, right, op = right, left, _FLIP[op]
        if not isinstance(left, Path) or not isinstance(right, Value):
            raise QueryError("$filter", "Observations compare a property with a value")
        name = str(left)
        if name in ("Datastream/id", "Datastream/@iot.id"):
            field = "series_id"
        elif name in _OBS_FIELDS:
            field = _OBS_FIELDS[name]
        else:
            raise QueryError(
                "$filter",
                "Observations are filtered on phenomenonTime, resultTime, result, @iot.id and"
                f" Datastream/@iot.id, not {echo(name)}",
            )
        if field == "ts_ms" and not right.is_time:
            raise QueryError(
                "$filter",
                f"{echo(name)} is compared with a date-time (e.g. 2026-01-01T00:00:00Z)",
            )
        if field != "ts_ms" and right.is_time:
            raise QueryError("$filter", f"{echo(name)} is not a time")
        if field in ("obs_id", "series_id") and not isinstance(right.value, int):
            raise QueryError("$filter", f"{echo(name)} is compared with a whole number")
        return Cmp(field, op, right.value)  # type: ignore[arg-type]

    def order(self, opts: Options) -> list[tuple[str, bool]]:
        out = []
        for o in opts.orderby:
            name = str(o.path)
            field = (
                "series_id"
                if name in ("Datastream/id", "Datastream/@iot.id")
                else _OBS_FIELDS.get(name)
            )
            if field is None:
                raise QueryError(
                    "$orderby",
                    "Observations are ordered by phenomenonTime, resultTime, result or @iot.id,"
                    f" not {echo(name)}",
                )
            out.append((field, o.desc))
        return out or [("obs_id", False)]

    def observations(
        self, series: list[int] | None, opts: Options
    ) -> tuple[list[Record], bool, int | None]:
        where = None if opts.filter is None else self.predicate(opts.filter)
        order = self.order(opts)
        if series is not None and not series:
            return [], False, 0 if opts.count else None
        rows = self.storage.observations(series, where, order, opts.top + 1, opts.skip)
        count = self.storage.count_observations(series, where) if opts.count else None
        gateways = self.gateways()
        records = [self.u.observation(o, gateways) for o in rows[: opts.top]]
        for r in records:
            r["result"] = _finite(r["result"])
        return records, len(rows) > opts.top, count

    # -- any set ---------------------------------------------------------------------------

    def collection(
        self,
        name: str,
        opts: Options,
        keep: Callable[[Record], bool] | None = None,
        series: list[int] | None = None,
    ) -> tuple[list[Record], bool, int | None]:
        """One page of a set (restricted by `keep`, or for Observations to `series`), with
        whether more follow and the count when asked."""
        if name == "Observations":
            return self.observations(series, opts)
        records = [r for r in self.u.records[name].values() if keep is None or keep(r)]
        if opts.filter is not None:
            expr = opts.filter
            records = [r for r in records if self.evaluate(name, r, expr)]
        count = len(records) if opts.count else None
        records = self.sort(name, records, opts)
        page = [dict(r) for r in records[opts.skip : opts.skip + opts.top]]
        self.enrich(name, page)
        return page, opts.skip + opts.top < len(records), count

    def finish(self, name: str, record: Record, opts: Options) -> Record:
        """$expand then $select, and the private keys dropped."""
        out = {k: v for k, v in record.items() if not k.startswith("_")}
        for nav, inner in opts.expand.items():
            target_many = NAVIGATION[name].get(nav)
            if target_many is None:
                raise QueryError("$expand", f"{echo(nav)} is not a navigation property of {name}")
            target, many = target_many
            if target == "Observations":
                page, more, count = self.collection(
                    target, inner, series=self.u.related_series(name, record)
                )
            else:
                page, more, count = self.collection(
                    target, inner, keep=self.u.related_filter(name, record, nav)
                )
            finished = [self.finish(target, r, inner) for r in page]
            if many:
                out[nav] = finished
                if count is not None:
                    out[f"{nav}@iot.count"] = count
                if more and inner.top > 0:  # $top=0 cannot advance: no link to itself
                    out[f"{nav}@iot.nextLink"] = (
                        f"{out.get('@iot.selfLink', '')}/{nav}?$top={inner.top}&$skip={inner.skip + inner.top}"
                    )
            else:
                out[nav] = finished[0] if finished else None
        if opts.select is not None:
            known = set(out) | {"id"} | {k.split("@")[0] for k in out}
            wanted: set[str] = set()
            for s in opts.select:
                if s not in known:
                    raise QueryError("$select", f"{name} has no property {echo(s)}")
                wanted |= {"@iot.id"} if s in ("id", "@iot.id") else {s, f"{s}@iot.navigationLink"}
                if s == "@iot.selfLink" or s == "selfLink":
                    wanted.add("@iot.selfLink")
            wanted |= set(opts.expand)
            out = {k: v for k, v in out.items() if k in wanted}
        return out


def _segments(path: str) -> list[tuple[str, int | None, bool]]:
    """(name, id or None, quoted id) of each path segment."""
    out: list[tuple[str, int | None, bool]] = []
    for seg in path.strip("/").split("/"):
        m = _SEGMENT.match(seg)
        if m is None:
            raise NotFound(seg)
        ident = m.group(2)
        if ident is None:
            out.append((m.group(1), None, False))
        elif _ID.fullmatch(ident) is None:  # no entity has it: 404 naming the id given
            raise NotFound(f"{m.group(1)}({ident})")
        else:
            out.append((m.group(1), int(ident.strip("'")), ident.startswith("'")))
    return out


def sta_router(storage: Storage) -> APIRouter:
    router = APIRouter()

    # The entities but Observations change when a series appears or the catalogue changes:
    # built at most once per UNIVERSE_TTL seconds per base URL and set of grants, and again
    # as soon as the catalogue changes (a dataset closed is gone from the next answer).
    universes: FreshCache[tuple[str, frozenset[str] | None], Universe] = FreshCache(
        UNIVERSE_TTL, size=64, follow_writes=False
    )

    def universe(request: Request, principal: Principal) -> Universe:
        base = str(request.base_url).rstrip("/") + "/sta/v1.1"
        granted = principal.granted
        return universes.get(
            (base, granted),
            lambda: Universe(
                base,
                storage.series_list(),
                catalogue_of(storage, granted),
                principal.can_read,
                granted is None,
            ),
            storage.catalogue_version(),
        )

    @router.get("/sta/v1.1", include_in_schema=True)
    @router.get("/sta/v1.1/", include_in_schema=False)
    def sta_root(request: Request) -> Response:
        """The SensorThings service document: the entity sets and the conformance classes."""
        base = str(request.base_url).rstrip("/") + "/sta/v1.1"
        return _json(
            {
                "value": [{"name": name, "url": f"{base}/{name}"} for name in SETS],
                "serverSettings": {"conformance": CONFORMANCE},
            }
        )

    @router.get("/sta/v1.1/{path:path}")
    def sta_resource(path: str, request: Request, principal: CurrentPrincipal) -> Response:
        """OGC SensorThings API v1.1, read: Things, Locations, HistoricalLocations, Sensors,
        ObservedProperties, Datastreams, Observations, FeaturesOfInterest; $top (≤ 1000 a
        page), $skip, $count, $orderby, $select, $expand (one level), $filter (eq, ne, gt,
        ge, lt, le, and, or, not; Observations on phenomenonTime, resultTime, result,
        @iot.id, Datastream/@iot.id). Closed datasets only with a token that grants them."""
        try:
            opts = parse_options({k: v for k, v in request.query_params.items()})
            extra = [k for k in request.query_params if k.startswith("$")]
            if len(extra) != len(set(extra)):
                raise QueryError(extra[0], "given twice")
            return _serve(path, request, opts, universe(request, principal))
        except QueryError as e:
            return _error(400, f"{echo(e.option)}: {e.message}")
        except NotFound as e:
            return _error(
                404,
                f"nothing at {echo(path)}"
                if not e.args
                else f"no such resource: {echo(e.args[0])}",
            )
        except StorageError as e:
            return _error(503, str(e))

    def _serve(path: str, request: Request, opts: Options, u: Universe) -> Response:
        q = _Query(storage, u)
        segs = _segments(path)
        name, ident, _ = segs[0]
        if name not in SETS:
            raise NotFound(name)
        # The state: a set (with a restriction) or one entity, or a property of one.
        current_set = name
        entity: Record | None = None
        keep: Callable[[Record], bool] | None = None
        series: list[int] | None = u.visible_series()
        if ident is not None:
            entity = _entity(q, name, ident, series)
        for position, (seg_name, seg_id, _) in enumerate(segs[1:], start=1):
            if entity is None:
                raise NotFound(seg_name)  # nothing navigates from a collection
            nav = NAVIGATION[current_set].get(seg_name)
            if nav is None:
                if seg_id is not None or seg_name.startswith("$"):
                    raise NotFound(seg_name)
                return _property(entity, seg_name, [s[0] for s in segs[position + 1 :]])
            target, many = nav
            if target == "Observations":
                series = u.related_series(current_set, entity)
                keep = None
            else:
                keep = u.related_filter(current_set, entity, seg_name)
            if many and seg_id is None:
                current_set, entity = target, None
                continue
            if seg_id is not None and many:
                found = (
                    _entity(q, target, seg_id, series)
                    if target == "Observations"
                    else u.records[target].get(seg_id)
                )
                if found is None or (keep is not None and not keep(found)):
                    raise NotFound(f"{seg_name}({seg_id})")
                current_set, entity = target, found
                continue
            if seg_id is not None:
                raise NotFound(seg_name)
            found = next(
                (r for r in u.records[target].values() if keep is not None and keep(r)), None
            )
            if found is None:
                raise NotFound(seg_name)
            current_set, entity = target, dict(found)
            q.enrich(target, [entity])
        if entity is not None:
            return _json(q.finish(current_set, entity, opts))
        page, more, count = q.collection(current_set, opts, keep=keep, series=series)
        body: dict[str, object] = {}
        if count is not None:
            body["@iot.count"] = count
        if more and opts.top > 0:  # $top=0 cannot advance: no link to itself
            body["@iot.nextLink"] = str(
                request.url.include_query_params(
                    **{"$top": opts.top, "$skip": opts.skip + opts.top}
                )
            )
        body["value"] = [q.finish(current_set, r, opts) for r in page]
        return _json(body)

    def _entity(q: _Query, name: str, ident: int, series: list[int] | None) -> Record:
        if name != "Observations":
            record = q.u.records[name].get(ident)
            if record is None:
                raise NotFound(f"{name}({ident})")
            record = dict(record)
            q.enrich(name, [record])
            return record
        gateway_id = split_obs_id(ident)[0]
        # gateway ids are 32-bit: a larger id names nothing (and would overflow the column)
        found = q.storage.observation(ident) if gateway_id < 2**31 else None
        if (
            found is None
            or found.series_id not in q.u.series_by_id
            or (series is not None and found.series_id not in series)
        ):
            raise NotFound(f"Observations({ident})")
        record = q.u.observation(found, q.gateways())
        record["result"] = _finite(record["result"])
        return record

    def _property(entity: Record, prop: str, tail: list[str]) -> Response:
        key = "@iot.id" if prop in ("id", "@iot.id") else prop
        if key not in entity or key.startswith("_") or key.endswith("@iot.navigationLink"):
            raise NotFound(prop)
        value = entity[key]
        if tail == ["$value"]:
            text = value if isinstance(value, str) else json.dumps(value)
            return Response(text, media_type="text/plain; charset=utf-8")
        if tail:
            raise NotFound("/".join(tail))
        return _json({prop: value})

    return router


__all__ = ["CONFORMANCE", "sta_router"]

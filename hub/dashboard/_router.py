"""The dashboard's routes: server-rendered pages, the language switch and the static assets.

Plain (non-async) endpoints: FastAPI runs them in its thread pool, on the API's own storage
connection (never the ingest one), as hub._api does.
"""

from __future__ import annotations

import hashlib
import mimetypes
import time
from collections import Counter
from importlib import resources
from pathlib import PurePosixPath
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, RedirectResponse, Response

from fleet import Fleet, FleetError
from fleet import NotFound as FleetNotFound
from hub._errors import StorageError
from hub.alerts import AlertService, NotOpen
from hub.alerts import NotFound as AlertNotFound
from hub.auth._routes import _safe_next as safe_next  # the login's own check: one copy
from hub.dashboard import _views
from hub.dashboard._access import (
    Principal,
    csrf_token,
    current_principal,
    form_fields,
    get_access,
    login_token,
)
from hub.dashboard._i18n import COOKIE, LANGS, Translator
from hub.dashboard._pages import NavItem, language, render
from hub.dashboard._svgmap import Place, draw, tile_origin
from hub.numeriscore import Numeriscore
from hub.storage import SeriesPoint, Storage
from protocols import signed

FLEET_ROLES = frozenset({"admin", "technician"})
CHART_POINTS = 300
RANGES: dict[str, int] = {  # the period choices of a sensor page, in seconds
    "1h": 3600,
    "6h": 6 * 3600,
    "24h": 86400,
    "7d": 7 * 86400,
    "30d": 30 * 86400,
}
DEFAULT_RANGE = "24h"
FLEET_PAGE = 100  # gateways per page of the fleet overview
MAX_DAYS = 366  # the longest span a sensor page charts
ALERTS_SHOWN = 200
RESOLVED_SHOWN = 50
ALERT_ERRORS = ("gone", "closed", "engine")
LOGIN_ERRORS = ("credentials", "csrf", "rate")
NUMERISCORE_DAYS = 60
STA = "/sta/v1.1"  # the SensorThings service root (hub.sta, in every hub app)
COMMANDS = signed.COMMANDS  # what a gateway runs: reload, status, rescan, flush, reboot
COMMAND_ERRORS = ("unknown", "gone", "refused")
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}

Viewer = Annotated[Principal, Depends(current_principal)]


def _static_files() -> dict[str, str]:
    """Every file under static/, by its path there: nothing else can be served."""
    root = resources.files("hub.dashboard") / "static"
    found: dict[str, str] = {}
    todo = [(root, PurePosixPath())]
    while todo:
        node, rel = todo.pop()
        for child in node.iterdir():
            if child.is_dir():
                todo.append((child, rel / child.name))
            elif child.is_file():
                found[str(rel / child.name)] = str(child)
    return found


def nav_for(p: Principal) -> list[NavItem]:
    items = []
    if p.role in FLEET_ROLES:
        items += [NavItem("/fleet", "nav.fleet"), NavItem("/alerts", "nav.alerts")]
    items += [
        NavItem("/map", "nav.map"),
        NavItem("/open-data", "nav.open_data"),
        NavItem("/numeriscore", "nav.numeriscore"),
    ]
    return items


def viewer_info(p: Principal, csrf: str | None) -> dict[str, object]:
    return {
        "user": p.user,
        "role": p.role,
        "anonymous": p.role == "anonymous",
        "session": p.session is not None,
        "csrf": csrf,
    }


def router(storage: Storage) -> APIRouter:
    """The pages, reading `storage` and the fleet registry (`app.state.fleet`, when the hub
    runs one)."""
    r = APIRouter(include_in_schema=False)
    static = _static_files()

    def fleet_of(request: Request) -> Fleet | None:
        fleet: Fleet | None = getattr(request.app.state, "fleet", None)
        return fleet

    def page(
        request: Request,
        p: Principal,
        template: str,
        title: str,
        status: int = 200,
        images: str | None = None,
        **ctx: object,
    ) -> Response:
        return render(
            request,
            template,
            title=title,
            nav=nav_for(p),
            viewer=viewer_info(p, csrf_token(request, p)),
            status=status,
            images=images,
            **ctx,
        )

    def refuse(request: Request, p: Principal) -> Response:
        """Anonymous: to the login page (and back after); signed in: 403, said plainly."""
        if p.role == "anonymous":
            here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(here, safe='')}", status_code=303)
        return error_page(request, p, 403, "error.forbidden")

    def unavailable(request: Request, p: Principal, what: str) -> Response:
        return error_page(request, p, 503, what)

    def error_page(
        request: Request, p: Principal, status: int, what: str, **args: object
    ) -> Response:
        """The error page with `status` and the message `what` in the visitor's language."""
        t = Translator(language(request))
        return page(request, p, "error.html", t("error.title"), status, message=t(what, **args))

    # -- frame ------------------------------------------------------------------------------

    @r.get("/")
    def home(p: Viewer) -> Response:
        if p.role == "anonymous":
            target = "/open-data"
        elif p.role in FLEET_ROLES:
            target = "/fleet"
        else:
            target = "/map"
        return RedirectResponse(target, status_code=303)

    @r.get("/lang/{code}")
    def switch_language(
        code: str, next_: Annotated[str | None, Query(alias="next")] = None
    ) -> Response:
        response = RedirectResponse(safe_next(next_), status_code=303)
        if code in LANGS:
            response.set_cookie(COOKIE, code, max_age=365 * 86400, samesite="lax", httponly=True)
        return response

    @r.get("/static/{name:path}")
    def asset(name: str) -> Response:
        path = static.get(name)
        if path is None:
            return Response("not found", status_code=404, media_type="text/plain")
        suffix = PurePosixPath(name).suffix
        media = STATIC_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "text/plain"
        return FileResponse(
            path,
            media_type=media,
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
        )

    # -- fleet ------------------------------------------------------------------------------

    @r.get("/fleet")
    def fleet_page(
        request: Request,
        p: Viewer,
        show: Annotated[str | None, Query(max_length=16)] = None,
        page_no: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
    ) -> Response:
        if p.role not in FLEET_ROLES:
            return refuse(request, p)
        t = Translator(language(request))
        try:
            rows = _views.gateway_rows(storage, fleet_of(request))
        except StorageError:
            return unavailable(request, p, "error.storage")
        shown = [r for r in rows if r.needs_attention] if show == "attention" else rows
        return page(
            request,
            p,
            "fleet.html",
            t("fleet.title"),
            rows=shown[(page_no - 1) * FLEET_PAGE : page_no * FLEET_PAGE],
            page_no=page_no,
            pages=max(1, -(-len(shown) // FLEET_PAGE)),
            attention=sum(1 for r in rows if r.needs_attention),
            show=show if show == "attention" else "all",
            summary=_views.fleet_summary(rows),
        )

    @r.get("/gateways/{gateway_id}")
    def gateway_page(
        gateway_id: str,
        request: Request,
        p: Viewer,
        sent: Annotated[str | None, Query(max_length=16)] = None,
        seq: Annotated[int | None, Query(ge=0, le=2**62)] = None,
        command_error: Annotated[str | None, Query(max_length=16)] = None,
    ) -> Response:
        if p.role not in FLEET_ROLES:
            return refuse(request, p)
        t = Translator(language(request))
        fleet = fleet_of(request)
        try:
            row = _views.gateway_row(storage, fleet, gateway_id)
            sensor_views = _views.sensors(storage, gateway_id) if row else []
            readable_ids = {e.sensor for e in storage.sensor_catalogue(granted=p.granted)}
        except StorageError:
            return unavailable(request, p, "error.storage")
        if row is None:
            return error_page(request, p, 404, "gateway.not_found", id=gateway_id)
        return page(
            request,
            p,
            "gateway.html",
            t("gateway.title", id=gateway_id),
            gw=row,
            sensors=sensor_views,
            readable=lambda sensor: sensor in readable_ids,
            history=_views.history(fleet, gateway_id),
            commands=COMMANDS if row.group is not None and p.can_command(row.group) else (),
            csrf=csrf_token(request, p),
            sent=sent if sent in COMMANDS else None,
            sent_seq=seq,
            command_error=command_error if command_error in COMMAND_ERRORS else None,
        )

    @r.post("/gateways/{gateway_id}/commands")
    async def gateway_command(gateway_id: str, request: Request, p: Viewer) -> Response:
        """A signed command to one gateway, as `estran fleet cmd` sends it (audited with
        who and from where)."""
        if p.role not in FLEET_ROLES:
            return refuse(request, p)
        fleet = fleet_of(request)
        name = (await form_fields(request)).get("name", "")
        back = f"/gateways/{quote(gateway_id, safe='')}"
        if fleet is None or name not in COMMANDS:
            return RedirectResponse(f"{back}?command_error=unknown", status_code=303)
        address = get_access(request).address(request)

        def send() -> int:
            group = fleet.gateway(gateway_id).group
            if not p.can_command(group):
                raise PermissionError(group)
            with fleet.origin(address):
                return fleet.command(gateway_id, name, p.user or p.role)

        try:
            seq = await run_in_threadpool(send)
        except PermissionError:
            return error_page(request, p, 403, "error.forbidden")
        except FleetNotFound:
            return RedirectResponse(f"{back}?command_error=gone", status_code=303)
        except FleetError:  # revoked, or the registry busy
            return RedirectResponse(f"{back}?command_error=refused", status_code=303)
        return RedirectResponse(f"{back}?sent={name}&seq={seq}", status_code=303)

    # -- sensors ----------------------------------------------------------------------------

    @r.get("/sensors/{sensor_id}")
    def sensor_page(
        sensor_id: str,
        request: Request,
        p: Viewer,
        range_: Annotated[str, Query(alias="range", max_length=8)] = DEFAULT_RANGE,
        quantity: Annotated[str | None, Query(max_length=128)] = None,
        first: Annotated[str | None, Query(alias="from", max_length=10)] = None,
        last: Annotated[str | None, Query(alias="to", max_length=10)] = None,
    ) -> Response:
        t = Translator(language(request))
        if range_ not in RANGES:
            range_ = DEFAULT_RANGE
        now_ms = time.time_ns() // 1_000_000
        try:
            days = _views.day_span(first, last, now_ms, MAX_DAYS)
            range_error = None
        except ValueError as e:
            days, range_error = None, str(e)
        try:
            dataset, is_open = storage.sensor_access(sensor_id)
            # a sensor this visitor may not read is answered as one that does not exist
            views = _views.sensor(storage, sensor_id) if p.can_read(dataset, is_open) else None
            meta = storage.sensor_meta(sensor_id) if views is not None else None
        except StorageError:
            return unavailable(request, p, "error.storage")
        if not views:
            return error_page(request, p, 404, "sensor.not_found", id=sensor_id)
        view = views
        numeric = [s.quantity for s in view.latest if _views.is_number(s.value)]
        chosen = quantity if quantity in numeric else (numeric[0] if numeric else None)
        unit = next((s.unit for s in view.latest if s.quantity == chosen), None)
        if days is not None:
            from_ms, to_ms = days
        else:
            to_ms = now_ms
            from_ms = to_ms - RANGES[range_] * 1000
        points: list[SeriesPoint] = []
        bucket_ms = 0
        if chosen is not None:
            try:
                ds = storage.series(sensor_id, chosen, from_ms, to_ms, CHART_POINTS, unit=unit)
            except (LookupError, ValueError):  # gone since, or one name in several units
                ds = None
            except StorageError:
                return unavailable(request, p, "error.storage")
            if ds is not None:
                points = [b for b in ds.points if b.mean is not None and b.count]
                bucket_ms = ds.bucket_ms
        count = sum(b.count for b in points)
        chart = {
            "label": chosen,
            "unit": unit,
            "t": [b.start_ms / 1000 for b in points],
            "min": [b.min for b in points],
            "mean": [b.mean for b in points],
            "max": [b.max for b in points],
        }
        return page(
            request,
            p,
            "sensor.html",
            t("sensor.title", id=sensor_id),
            sensor=view,
            meta=meta,
            dataset=dataset,
            is_open=is_open,
            ranges=list(RANGES),
            range=range_,
            numeric=numeric,
            chosen=chosen,
            unit=unit,
            points=points,
            count=count,
            bucket_s=bucket_ms / 1000,
            first=first if days else "",
            last=last if days else "",
            span=days,
            range_error=range_error,
            max_days=MAX_DAYS,
            chart=chart,
        )

    # -- pages whose data come from features still to land -------------------------------------

    def alert_service(request: Request) -> AlertService | None:
        service: AlertService | None = getattr(request.app.state, "alerts", None)
        return service

    @r.get("/alerts")
    def alerts_page(
        request: Request,
        p: Viewer,
        done: Annotated[str | None, Query(max_length=16)] = None,
        error: Annotated[str | None, Query(max_length=16)] = None,
    ) -> Response:
        if p.role not in FLEET_ROLES:
            return refuse(request, p)
        t = Translator(language(request))
        service = alert_service(request)
        if service is None:
            return page(request, p, "alerts.html", t("alerts.title"), service=False)
        try:
            open_alerts = service.alerts("open", limit=ALERTS_SHOWN, viewer=p)
            resolved = service.alerts("resolved", limit=RESOLVED_SHOWN, viewer=p)
            counts = service.counts(p)
        except StorageError:
            return unavailable(request, p, "error.storage")
        return page(
            request,
            p,
            "alerts.html",
            t("alerts.title"),
            service=True,
            firing=[a for a in open_alerts if a.state == "firing"],
            acknowledged=[a for a in open_alerts if a.state == "acknowledged"],
            resolved=resolved,
            counts=counts,
            done=done if done in ("acknowledged", "resolved") else None,
            error=error if error in ALERT_ERRORS else None,
            csrf=csrf_token(request, p),
            loop_id=lambda a: hashlib.sha1(a.id.encode()).hexdigest()[:12],
        )

    async def alert_action(alert_id: str, request: Request, p: Principal, action: str) -> Response:
        if p.role not in FLEET_ROLES:
            return refuse(request, p)
        service = alert_service(request)
        if service is None:
            return RedirectResponse("/alerts", status_code=303)
        note = (await form_fields(request)).get("note", "")[:500]
        actor = p.user or p.role
        act = service.acknowledge if action == "acknowledged" else service.resolve
        try:
            await run_in_threadpool(act, alert_id[:128], actor, note, p)
        except AlertNotFound:
            return RedirectResponse("/alerts?error=gone", status_code=303)
        except NotOpen:
            return RedirectResponse("/alerts?error=closed", status_code=303)
        except (RuntimeError, TimeoutError, StorageError):
            return RedirectResponse("/alerts?error=engine", status_code=303)
        return RedirectResponse(f"/alerts?done={action}", status_code=303)

    @r.post("/alerts/{alert_id}/acknowledge")
    async def acknowledge(alert_id: str, request: Request, p: Viewer) -> Response:
        return await alert_action(alert_id, request, p, "acknowledged")

    @r.post("/alerts/{alert_id}/resolve")
    async def resolve(alert_id: str, request: Request, p: Viewer) -> Response:
        return await alert_action(alert_id, request, p, "resolved")

    @r.get("/map")
    def map_page(request: Request, p: Viewer) -> Response:
        """The sensors this visitor may read, where the catalogue places them."""
        t = Translator(language(request))
        try:
            entries = storage.sensor_catalogue(granted=p.granted)
        except StorageError:
            return unavailable(request, p, "error.storage")
        places = [
            Place(
                e.sensor,
                e.location[0],
                e.location[1],
                e.site or e.description or "",
                f"/sensors/{quote(e.sensor, safe='')}",
            )
            for e in entries
            if e.location is not None
        ]
        tiles: str | None = getattr(request.app.state, "map_tiles", None)
        picture = draw(places, language(request), tiles)
        return page(
            request,
            p,
            "map.html",
            t("map.title"),
            picture=picture,
            attribution=getattr(request.app.state, "map_attribution", None),
            images=tile_origin(tiles) if tiles and picture and picture.tiles else None,
        )

    @r.get("/open-data")
    def open_data_page(request: Request, p: Viewer) -> Response:
        """The datasets this visitor may read (open ones for everyone), their licences,
        downloads and the SensorThings endpoint."""
        t = Translator(language(request))
        try:
            datasets = [d for d in storage.datasets() if p.can_read(d.name, d.open)]
            counts = Counter(e.dataset for e in storage.sensor_catalogue(granted=p.granted))
        except StorageError:
            return unavailable(request, p, "error.storage")
        return page(
            request,
            p,
            "open_data.html",
            t("open.title"),
            datasets=[d for d in datasets if d.open],
            closed=[d for d in datasets if not d.open],
            counts=counts,
            sta=STA,
        )

    @r.get("/numeriscore")
    def numeriscore_page(request: Request, p: Viewer) -> Response:
        """Public, as /api/v1/numeriscore: the territory publishes what its service costs."""
        t = Translator(language(request))
        books: Numeriscore | None = getattr(request.app.state, "numeriscore", None)
        if books is None:
            return page(request, p, "numeriscore.html", t("num.title"), books=False)
        try:
            days = books.days()[:NUMERISCORE_DAYS]
        except StorageError:
            return unavailable(request, p, "error.storage")
        formula = books.formula()
        return page(
            request,
            p,
            "numeriscore.html",
            t("num.title"),
            books=True,
            days=days,
            latest=days[0] if days else None,
            thresholds=formula["thresholds"],
            hardware=formula["hardware"],
        )

    @r.get("/login")
    def login_page(
        request: Request,
        p: Viewer,
        next_: Annotated[str | None, Query(alias="next", max_length=512)] = None,
        error: Annotated[str | None, Query(max_length=16)] = None,
    ) -> Response:
        target = safe_next(next_)
        if p.session is not None:  # signed in already
            return RedirectResponse(target, status_code=303)
        t = Translator(language(request))
        cookies = Response()
        token = login_token(request, cookies)
        response = page(
            request,
            p,
            "login.html",
            t("login.title"),
            login_csrf=token,
            next=target,
            error=error if error in LOGIN_ERRORS else None,
            needed=next_ is not None and target != "/",
        )
        for name, value in cookies.raw_headers:
            if name == b"set-cookie":
                response.raw_headers.append((name, value))
        return response

    return r


__all__ = ["router"]

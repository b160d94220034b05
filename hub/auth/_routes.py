"""HTTP side of access control: users and tokens (admin), the audit log (admin), the browser
session (POST /login, POST /logout, GET /api/v1/session)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from fleet import (
    MAX_TOKEN_TTL_S,
    ApiToken,
    AuthRefused,
    Conflict,
    FleetError,
    NotFound,
    User,
)
from hub._http import echo
from hub.auth._access import (
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Access,
    CurrentPrincipal,
    form_fields,
    get_access,
    require_role,
)
from hub.auth._principal import Principal

T = TypeVar("T")

SESSION_MAX_AGE_S = 12 * 3600
MAX_LIST = 10_000
NAME = r"^[a-z0-9][a-z0-9._@-]{0,63}$"

Admin = Annotated[Principal, Depends(require_role("admin"))]
Someone = Annotated[Principal, Depends(require_role("admin", "technician", "reader"))]


class UserCreate(BaseModel):
    name: str = Field(pattern=NAME)
    role: Literal["admin", "technician", "reader"]
    password: str | None = Field(default=None, min_length=10, max_length=1024)
    datasets: list[str] = Field(default_factory=list, max_length=256)
    groups: list[str] = Field(default_factory=list, max_length=256)


class UserUpdate(BaseModel):
    role: Literal["admin", "technician", "reader"] | None = None
    password: str | None = Field(default=None, min_length=10, max_length=1024)
    datasets: list[str] | None = Field(default=None, max_length=256)
    groups: list[str] | None = Field(default=None, max_length=256)


class TokenCreate(BaseModel):
    user: str | None = Field(default=None, pattern=NAME)  # default: the caller
    name: str = Field(default="", max_length=128)
    ttl_s: float = Field(default=90 * 86400, gt=0, le=MAX_TOKEN_TTL_S)
    scopes: list[Literal["read", "write"]] | None = None
    datasets: list[str] | None = Field(default=None, max_length=256)


def user_dict(u: User) -> dict[str, object]:
    return {
        "name": u.name,
        "role": u.role,
        "datasets": list(u.datasets),
        "groups": list(u.groups),
        "password": u.has_password,
        "created_ms": u.created_ms,
        "created_by": u.created_by,
    }


def token_dict(t: ApiToken, now_ms: int) -> dict[str, object]:
    return {
        "id": t.id,
        "user": t.user,
        "name": t.name,
        "scopes": list(t.scopes),
        "datasets": None if t.datasets is None else list(t.datasets),
        "created_ms": t.created_ms,
        "created_by": t.created_by,
        "expires_ms": t.expires_ms,
        "revoked_ms": t.revoked_ms,
        "used_ms": t.used_ms,
        "used_from": t.used_from,
        "state": t.state(now_ms),
    }


def _call(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except NotFound as e:
        raise HTTPException(404, echo(str(e))) from e
    except Conflict as e:
        raise HTTPException(409, echo(str(e))) from e
    except FleetError as e:
        raise HTTPException(400, str(e)[:300]) from e


def _safe_next(target: str | None) -> str:
    """Only a path of this site (no scheme, no //host): no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target[:512]


def router(access: Access) -> APIRouter:
    accounts = access.accounts
    fleet = access.fleet
    r = APIRouter()

    def acting(request: Request, principal: Principal, fn: Callable[[str], T]) -> T:
        """Run a registry change as `principal`, audited with the client's address."""
        with fleet.origin(access.address(request)):
            return _call(lambda: fn(principal.user or "anonymous"))

    # -- users (admin) -----------------------------------------------------------------------

    @r.get("/api/v1/users", tags=["access"])
    def list_users(
        _: Admin,
        limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 1000,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> list[dict[str, object]]:
        """Users, by name: role, datasets granted, fleet groups commanded (never a secret).
        One page (`limit`, `offset`)."""
        return [user_dict(u) for u in accounts.users()[offset : offset + limit]]

    @r.post("/api/v1/users", status_code=201, tags=["access"])
    def add_user(body: UserCreate, request: Request, who: Admin) -> dict[str, object]:
        u = acting(
            request,
            who,
            lambda actor: accounts.add_user(
                body.name,
                body.role,
                actor,
                password=body.password,
                datasets=tuple(body.datasets),
                groups=tuple(body.groups),
            ),
        )
        return user_dict(u)

    @r.patch("/api/v1/users/{name}", tags=["access"])
    def update_user(
        name: Annotated[str, Path(max_length=64)],
        body: UserUpdate,
        request: Request,
        who: Admin,
    ) -> dict[str, object]:
        if body.role is not None or body.datasets is not None or body.groups is not None:
            acting(
                request,
                who,
                lambda actor: accounts.update_user(
                    name[:64],
                    actor,
                    role=body.role,
                    datasets=None if body.datasets is None else tuple(body.datasets),
                    groups=None if body.groups is None else tuple(body.groups),
                ),
            )
        if body.password is not None:
            acting(
                request, who, lambda actor: accounts.set_password(name[:64], body.password, actor)
            )
        return user_dict(_call(lambda: accounts.user(name[:64])))

    @r.delete("/api/v1/users/{name}", tags=["access"])
    def remove_user(
        name: Annotated[str, Path(max_length=64)], request: Request, who: Admin
    ) -> dict[str, str]:
        acting(request, who, lambda actor: accounts.remove_user(name[:64], actor))
        return {"removed": name[:64]}

    # -- tokens (admin: all; others: their own) --------------------------------------------

    @r.get("/api/v1/tokens", tags=["access"])
    def list_tokens(
        who: Someone,
        user: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 1000,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    ) -> list[dict[str, object]]:
        """API tokens (never their secret): state, expiry, last use and from where; an
        admin sees everyone's, others their own. One page (`limit`, `offset`), oldest
        first."""
        if not who.is_admin:
            user = who.user
        now = fleet._now_ms()
        return [token_dict(t, now) for t in accounts.tokens(user)[offset : offset + limit]]

    @r.post("/api/v1/tokens", status_code=201, tags=["access"])
    def create_token(body: TokenCreate, request: Request, who: Someone) -> dict[str, object]:
        """Issue a token (shown once). An admin issues for anyone; others for themselves,
        within their own scopes."""
        owner = body.user or who.user or ""
        if owner != who.user and not who.is_admin:
            raise HTTPException(403, "only an admin issues tokens for another user")
        scopes = None if body.scopes is None else tuple(body.scopes)
        if scopes is not None and not who.is_admin and not set(scopes) <= who.scopes:
            raise HTTPException(403, "a token cannot have more scopes than its issuer")
        datasets = None if body.datasets is None else tuple(body.datasets)
        issued = acting(
            request,
            who,
            lambda actor: accounts.create_token(
                owner, actor, name=body.name, ttl_s=body.ttl_s, scopes=scopes, datasets=datasets
            ),
        )
        return {"token": issued.token, **token_dict(issued.info, fleet._now_ms())}

    @r.delete("/api/v1/tokens/{token_id}", tags=["access"])
    def revoke_token(
        token_id: Annotated[str, Path(max_length=32)], request: Request, who: Someone
    ) -> dict[str, object]:
        t = _call(lambda: accounts.token(token_id[:32]))
        if t.user != who.user and not who.is_admin:
            raise HTTPException(404, f"no token {echo(token_id)!r}")
        revoked = acting(request, who, lambda actor: accounts.revoke_token(t.id, actor))
        return token_dict(revoked, fleet._now_ms())

    # -- audit (admin) ---------------------------------------------------------------------------

    @r.get("/api/v1/audit", tags=["access"])
    def read_audit(
        _: Admin,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
        actor: Annotated[str | None, Query(max_length=64)] = None,
        action: Annotated[str | None, Query(max_length=64)] = None,
        target: Annotated[str | None, Query(max_length=128)] = None,
    ) -> dict[str, object]:
        """Who did what, when and from where; newest last. `before` (an entry id) pages back;
        `action` matches a prefix (`user.`, `dataset.`, `readings.delete`)."""
        entries = fleet.audit(limit, target, actor=actor, action=action, before=before)
        return {
            "entries": [
                {
                    "id": e.id,
                    "ts_ms": e.ts_ms,
                    "actor": e.actor,
                    "action": e.action,
                    "target": e.target,
                    "remote": e.remote,
                    "detail": e.detail,
                }
                for e in entries
            ],
            "next_before": entries[0].id if len(entries) == limit and entries else None,
        }

    # -- browser sessions -----------------------------------------------------------------------

    @r.get("/api/v1/session", tags=["access"])
    def whoami(request: Request, response: Response, who: CurrentPrincipal) -> dict[str, object]:
        """Who the request speaks for. With a session: its CSRF token (for forms and
        X-CSRF-Token). Without: the login form's CSRF token (a cookie is set with it)."""
        out: dict[str, object] = {
            "user": who.user,
            "role": who.role,
            "datasets": sorted(who.datasets),
            "groups": sorted(who.groups),
            "scopes": sorted(who.scopes),
        }
        if who.session is not None:
            out["csrf_token"] = accounts.csrf_token(who.session)
        elif not who.authenticated:
            out["login_csrf_token"] = login_csrf(request, response)
        return out

    @r.post("/login", tags=["access"], response_model=None)
    async def login(request: Request) -> Response:
        """Form fields `username`, `password`, `csrf_token` (the login form's, from the
        cookie it set), `next` (a path of this site). 303 to `next` with a session cookie, or
        back to /login?error=...; with `Accept: application/json`, 200 or 401/403/429."""
        acc = get_access(request)
        wants_json = "application/json" in request.headers.get("accept", "")
        fields = await form_fields(request)
        address = acc.address(request)
        user = fields.get("username", "")[:64]

        def refuse(
            status: int, error: str, detail: str, headers: dict[str, str] | None = None
        ) -> Response:
            if wants_json:
                return JSONResponse({"detail": detail}, status_code=status, headers=headers)
            return RedirectResponse(f"/login?error={error}", status_code=303, headers=headers)

        token = fields.get(CSRF_FIELD, "")
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not token or not cookie or token != cookie:
            acc.stats.csrf_refused += 1
            return refuse(403, "csrf", "login form CSRF token missing or wrong")
        try:
            acc.check_limited(address, user)
        except HTTPException as e:
            return refuse(429, "rate", str(e.detail), dict(e.headers or {}))

        def check() -> tuple[str, User]:
            with fleet.origin(address):
                return accounts.login(user, fields.get("password", ""), address)

        try:
            secret, u = await run_in_threadpool(check)
        except AuthRefused as e:
            acc.failed(address, e.reason, user)
            return refuse(401, "credentials", "wrong user name or password")
        response: Response
        if wants_json:
            response = JSONResponse(
                {"user": u.name, "role": u.role, "csrf_token": accounts.csrf_token(secret)}
            )
        else:
            response = RedirectResponse(_safe_next(fields.get("next")), status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            secret,
            max_age=SESSION_MAX_AGE_S,
            path="/",
            httponly=True,
            secure=acc.https(request),
            samesite="lax",
        )
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return response

    @r.post("/logout", tags=["access"], response_model=None)
    def logout(request: Request, who: CurrentPrincipal) -> Response:
        """End the browser session (its CSRF token required, as for every form POST)."""
        if who.session is not None:
            with fleet.origin(access.address(request)):
                accounts.logout(who.session)
        if "application/json" in request.headers.get("accept", ""):
            response: Response = JSONResponse({"user": None})
        else:
            response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    return r


def login_csrf(request: Request, response: Response) -> str:
    """The CSRF token to put in a login form (field `csrf_token`); sets its cookie on
    `response` when the browser has none yet. The dashboard's GET /login calls this."""
    acc = get_access(request)
    token, fresh = acc.login_csrf(request)
    if fresh:
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            max_age=3600,
            path="/",
            httponly=True,
            secure=acc.https(request),
            samesite="strict",
        )
    return token


__all__ = ["login_csrf", "router"]

"""Authentication of HTTP requests: API tokens (`Authorization: Bearer`), browser sessions
(a cookie, with a CSRF token on every state-changing request), failures counted and
rate-limited per client address and per user name.

The users, tokens and sessions themselves are the registry's (`fleet.Accounts`): this module
turns a request into a `Principal`, and says no with the right status (401, 403, 429).
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from fleet import AuthRefused, Fleet, Identity
from hub._http import ForwardedScheme, Network, RateLimit, client_address, forwarded_https
from hub.auth._principal import ANONYMOUS, SAFE_METHODS, Principal

log = logging.getLogger("estran.hub.auth")

SESSION_COOKIE = "estran_session"
LOGIN_CSRF_COOKIE = "estran_login_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
MAX_FORM = 16 * 1024

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    bearerFormat="eat1.<id>.<secret>",
    description="An API token (`estran hub token create USER`).",
)
cookie_scheme = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    scheme_name="session",
    description="A browser session (POST /login). State-changing requests also carry the "
    "session's CSRF token (header X-CSRF-Token or form field csrf_token).",
)


@dataclass(frozen=True, slots=True)
class AccessSettings:
    trusted_proxies: tuple[Network, ...] = ()
    secure_cookies: bool | None = None  # None: when the request came over HTTPS
    failures_per_window: int = 10  # failed authentications per address (and per user name)
    failure_window_s: float = 300.0


class AuthStats:
    """Failed authentications by reason, and requests refused for too many of them."""

    def __init__(self) -> None:
        self.failures: Counter[str] = Counter()
        self.limited = 0
        self.csrf_refused = 0
        self._lock = threading.Lock()

    def fail(self, reason: str) -> None:
        with self._lock:
            self.failures[reason] += 1

    def as_dict(self) -> dict[str, object]:
        with self._lock:
            return {
                "failures": dict(self.failures),
                "failures_total": sum(self.failures.values()),
                "rate_limited": self.limited,
                "csrf_refused": self.csrf_refused,
            }


class Access:
    """The hub's access control over one registry. `install(app)` makes `current_principal`
    and `require_role` work in that app."""

    def __init__(self, fleet: Fleet, settings: AccessSettings | None = None) -> None:
        self.fleet = fleet
        self.accounts = fleet.accounts
        self.settings = settings or AccessSettings()
        self.stats = AuthStats()
        s = self.settings
        self.by_address = RateLimit(s.failures_per_window, window_s=s.failure_window_s)
        self.by_user = RateLimit(s.failures_per_window, window_s=s.failure_window_s)

    def install(self, app: FastAPI) -> None:
        app.state.access = self
        app.add_middleware(ForwardedScheme, proxies=lambda: self.settings.trusted_proxies)

    # -- requests ---------------------------------------------------------------------------

    def address(self, request: Request) -> str:
        return client_address(request, self.settings.trusted_proxies)

    def https(self, request: Request) -> bool:
        if self.settings.secure_cookies is not None:
            return self.settings.secure_cookies
        return forwarded_https(request, self.settings.trusted_proxies)

    def failed(self, address: str, reason: str, user: str | None = None) -> None:
        self.stats.fail(reason)
        self.by_address.allow(address)
        if user is not None:
            self.by_user.allow(user[:64])
        log.info("authentication refused from %s: %s", address, reason)

    def check_limited(self, address: str, user: str | None = None) -> None:
        """429 (with Retry-After) when the address, or the user name, failed too often."""
        for limiter, key in ((self.by_address, address), (self.by_user, (user or "")[:64])):
            if key and limiter.blocked(key):
                self.stats.limited += 1
                raise limiter.too_many(key, "failed authentications")

    @staticmethod
    def principal(identity: Identity) -> Principal:
        u = identity.user
        return Principal(
            user=u.name,
            role=u.role,
            datasets=identity.datasets,
            groups=frozenset(u.groups),
            scopes=identity.scopes,
            token_id=identity.token_id,
            session=identity.session,
        )

    async def resolve(
        self,
        request: Request,
        credentials: HTTPAuthorizationCredentials | None,
        session: str | None,
    ) -> Principal:
        address = self.address(request)
        header = request.headers.get("authorization")
        if header is not None:
            if credentials is None:
                self.failed(address, "scheme")
                raise unauthorized("Authorization: Bearer <token> expected")
            self.check_limited(address)
            try:
                identity = await run_in_threadpool(
                    self.accounts.authenticate_token, credentials.credentials[:512], address
                )
            except AuthRefused as e:
                self.failed(address, e.reason)
                raise unauthorized("invalid, expired or revoked token") from None
            principal = self.principal(identity)
        elif session:
            try:
                identity = await run_in_threadpool(
                    self.accounts.authenticate_session, session[:256]
                )
            except AuthRefused:
                return ANONYMOUS  # a stale cookie: as if none (the login page offers a new one)
            principal = self.principal(identity)
            if request.method not in SAFE_METHODS:
                await self._check_csrf(request, identity.session or "")
        else:
            return ANONYMOUS
        scope = "read" if request.method in SAFE_METHODS else "write"
        # ending one's own session is not a write: a reader logs out too (CSRF checked above)
        if scope not in principal.scopes and request.url.path != "/logout":
            raise HTTPException(403, f"this credential lacks the {scope} scope")
        return principal

    async def _check_csrf(self, request: Request, session: str) -> None:
        token = request.headers.get(CSRF_HEADER)
        if token is None:
            token = (await form_fields(request)).get(CSRF_FIELD)
        if not token or not self.accounts.check_csrf(session, token[:128]):
            self.stats.csrf_refused += 1
            raise HTTPException(403, "CSRF token missing or wrong (X-CSRF-Token or csrf_token)")

    # -- login CSRF (double submit: before a session exists) --------------------------------------

    def login_csrf(self, request: Request) -> tuple[str, bool]:
        """The login form's CSRF token, and whether the cookie carrying it must be set."""
        current = request.cookies.get(LOGIN_CSRF_COOKIE)
        if current and 20 <= len(current) <= 64:
            return current, False
        return secrets.token_urlsafe(24), True


async def form_fields(request: Request) -> dict[str, str]:
    """The fields of an urlencoded form body (first value of each), bounded; {} for any
    other body."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return {}
    body = await request.body()
    if len(body) > MAX_FORM:
        raise HTTPException(413, f"form over {MAX_FORM} bytes")
    try:
        parsed = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=32)
    except (UnicodeDecodeError, ValueError) as e:
        raise HTTPException(400, "malformed form") from e
    return {k: v[0] for k, v in parsed.items() if v}


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": 'Bearer realm="estran"'})


def get_access(request: Request) -> Access:
    access = getattr(request.app.state, "access", None)
    if not isinstance(access, Access):
        raise HTTPException(503, "access control not configured")
    return access


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    session: Annotated[str | None, Depends(cookie_scheme)],
) -> Principal:
    """FastAPI dependency: who is asking (anonymous when no credential). A credential that
    does not authenticate is 401, not anonymous; a cookie-authenticated state-changing
    request without its CSRF token is 403."""
    return await get_access(request).resolve(request, credentials, session)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_role(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
    """FastAPI dependency factory: the principal, if its role is one of `roles` (401 without
    credentials, 403 with the wrong role).

        @router.get("/api/v1/things")
        def things(who: Annotated[Principal, Depends(require_role("admin"))]) -> ...
    """
    wanted = frozenset(roles)

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if principal.role in wanted:
            return principal
        if not principal.authenticated:
            raise unauthorized(f"authentication required ({', '.join(sorted(wanted))})")
        raise HTTPException(403, f"role {principal.role} may not do this")

    dependency.__name__ = "require_" + "_or_".join(sorted(wanted))
    return dependency


__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "LOGIN_CSRF_COOKIE",
    "SESSION_COOKIE",
    "Access",
    "AccessSettings",
    "AuthStats",
    "CurrentPrincipal",
    "current_principal",
    "form_fields",
    "get_access",
    "require_role",
    "unauthorized",
]

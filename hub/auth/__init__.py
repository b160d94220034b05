"""Who may do what on the hub's HTTP interface.

    from hub.auth import Principal, current_principal, require_role, audit

- `Principal`: who is asking (user, role, closed datasets granted, fleet groups, scopes);
  `can_read(dataset, is_open)` decides on data.
- `current_principal`: FastAPI dependency, from `Authorization: Bearer <token>` or the
  browser session cookie; anonymous when neither.
- `require_role(*roles)`: dependency factory, 401 without credentials, 403 with the wrong
  role (`Depends(require_role("admin"))`).
- `audit(principal, action, target, detail, request)`: one entry in the hub's audit log.
- Browser sessions: POST /login, POST /logout, the cookie and its CSRF token
  (`login_csrf(request, response)` for the login form the dashboard renders).

Users and tokens are kept by the registry (`fleet.Accounts`); `estran hub user|token`
manage them on the hub's machine, /api/v1/users and /api/v1/tokens over HTTP.
"""

from hub.auth._access import (
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    Access,
    AccessSettings,
    AuthStats,
    CurrentPrincipal,
    current_principal,
    get_access,
    require_role,
)
from hub.auth._audit import audit, audit_async
from hub.auth._principal import ANONYMOUS, SAFE_METHODS, Principal
from hub.auth._routes import login_csrf, router

__all__ = [
    "ANONYMOUS",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "SAFE_METHODS",
    "SESSION_COOKIE",
    "Access",
    "AccessSettings",
    "AuthStats",
    "CurrentPrincipal",
    "Principal",
    "audit",
    "audit_async",
    "current_principal",
    "get_access",
    "login_csrf",
    "require_role",
    "router",
]

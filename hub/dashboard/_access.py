"""Who is looking: the pages' one seam with the hub's users, roles and sessions (hub.auth).

A browser signs in at /login (the form is the dashboard's, the check and the session cookie
are hub.auth's); an API token (`Authorization: Bearer ...`) works too. Every state-changing
form carries the session's CSRF token: hub.auth refuses a cookie-authenticated POST without it
(403) before the page's code runs.
"""

from __future__ import annotations

from fastapi import Request, Response

from hub.auth import ANONYMOUS, Principal, current_principal, get_access, login_csrf
from hub.auth._access import form_fields


def csrf_token(request: Request, principal: Principal) -> str | None:
    """The token a state-changing form carries: the session's; none with an API token (a
    browser never sends one by itself, so there is nothing to forge)."""
    if principal.session is None:
        return None
    return get_access(request).accounts.csrf_token(principal.session)


def login_token(request: Request, response: Response) -> str:
    """The login form's CSRF token (its cookie set on `response` when new)."""
    return login_csrf(request, response)


__all__ = [
    "ANONYMOUS",
    "Principal",
    "csrf_token",
    "current_principal",
    "form_fields",
    "get_access",
    "login_token",
]

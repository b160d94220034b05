"""Who is looking: the one seam between the pages and the hub's users and roles.

INTERIM until hub.auth lands (HUB-CONTRACTS.md): the fleet admin credential, sent as
`Authorization: Bearer ...`, is an admin; everyone else is anonymous. Replaced by
`hub.auth.current_principal` (sessions, roles, datasets) when it exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from fleet import Fleet


@dataclass(frozen=True, slots=True)
class Principal:
    user: str | None
    role: str
    datasets: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()

    def can_read(self, dataset: str | None, is_open: bool) -> bool:
        if self.role == "admin" or is_open:
            return True
        return dataset is not None and dataset in self.datasets


ANONYMOUS = Principal(None, "anonymous")


def current_principal(request: Request) -> Principal:
    fleet: Fleet | None = getattr(request.app.state, "fleet", None)
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if fleet is not None and scheme.lower() == "bearer" and fleet.check_admin(credential.strip()):
        return Principal("admin", "admin")
    return ANONYMOUS


def csrf_token(request: Request, principal: Principal) -> str | None:
    """The token a state-changing form carries (none with a Bearer credential: a browser
    never sends one by itself, so there is nothing to forge)."""
    return None


async def form_fields(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


__all__ = ["ANONYMOUS", "Principal", "csrf_token", "current_principal", "form_fields"]

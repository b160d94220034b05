"""One audit log for the hub: the registry's (`fleet.Fleet.audit`), where fleet actions,
users and tokens are recorded too. Endpoints of other modules record their admin actions
through `audit(...)`."""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from hub.auth._access import get_access
from hub.auth._principal import Principal


def audit(
    principal: Principal,
    action: str,
    target: str,
    detail: Mapping[str, object] | None = None,
    remote: Request | str | None = None,
) -> None:
    """Record that `principal` did `action` on `target` (who, what, when, from where).
    Pass the request as `remote`: the client's address is taken from it (forwarded headers
    only from trusted proxies) and so is the hub's audit log. Blocking (a short SQLite
    write): call it from a plain endpoint, or through `audit_async`."""
    if not isinstance(remote, Request):
        raise TypeError("audit(): pass the request as remote (it names the hub and the client)")
    access = get_access(remote)
    with access.fleet.origin(access.address(remote)):
        access.fleet.record(
            principal.user or "anonymous",
            action,
            target[:256],
            **dict(detail or {}),
        )


async def audit_async(
    principal: Principal,
    action: str,
    target: str,
    detail: Mapping[str, object] | None = None,
    remote: Request | None = None,
) -> None:
    await run_in_threadpool(audit, principal, action, target, detail, remote)


__all__ = ["audit", "audit_async"]

"""Test helpers: the hub's app over a storage, with access control from a registry in a
temporary directory, and an admin's API token."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from fleet import Fleet
from hub._api import create_app
from hub.auth import Access
from hub.storage import Storage


@contextlib.asynccontextmanager
async def admin_client(storage: Storage, data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of `create_app(storage)` (in process) speaking as an admin."""
    with Fleet(data_dir / "registry") as registry:
        token = registry.accounts.reset_admin("test").token
        app = create_app(storage, access=Access(registry))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://hub",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            yield client


__all__ = ["admin_client"]

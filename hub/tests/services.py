"""Service fixtures shared by hub tests and hil-tests: a throwaway PostgreSQL database, free
ports, a hub running in the test's event loop.

PostgreSQL is found at $ESTRAN_PG (default postgresql://root@127.0.0.1:5432/postgres). When it
is absent the tests skip with the reason, except under CI=true where they fail: CI must
exercise both databases.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

from estran.rig import free_port

if TYPE_CHECKING:
    from hub._service import Hub, HubConfig

ADMIN_URL = os.environ.get("ESTRAN_PG", "postgresql://root@127.0.0.1:5432/postgres")


def unavailable(reason: str) -> None:
    """Skip, or fail under CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: services are required)")
    pytest.skip(reason)


def _with_db(url: str, dbname: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{dbname}"


@contextlib.contextmanager
def temporary_database() -> Iterator[str]:
    """Create a uniquely named database, yield its URL, drop it afterwards."""
    try:
        import psycopg

        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception as e:  # any failure means "no PostgreSQL here"
        unavailable(f"PostgreSQL not reachable at {ADMIN_URL}: {e}")
        raise AssertionError("unreachable") from e
    name = f"estran_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield _with_db(ADMIN_URL, name)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def running_hub_task(config: HubConfig, ready_s: float = 20) -> AsyncIterator[Hub]:
    """The hub of `config` as a task of this event loop, once ready (within `ready_s`);
    cancelled on the way out, and waited for (20 s at most)."""
    from hub._service import Hub

    hub = Hub(config)
    task = asyncio.create_task(hub.run(), name="hub")
    try:
        await asyncio.wait_for(hub.ready.wait(), ready_s)
        yield hub
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 20)


__all__ = ["ADMIN_URL", "free_port", "running_hub_task", "temporary_database", "unavailable"]

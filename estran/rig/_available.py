"""What a machine has, asked before a test or a bench uses it: a program on the PATH, a
PostgreSQL server to make a scratch database on. Each answers with the thing, or raises
`Unavailable` with where it looked: the pytest plugin turns that into a skip with the reason,
and into a failure under CI=true (CI must have everything).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from typing import NoReturn

from estran.rig._errors import Unavailable

DEFAULT_PG = "postgresql://root@127.0.0.1:5432/postgres"


def unavailable(reason: str) -> NoReturn:
    """Stop here: `reason` says what this machine lacks (skipped, or failed under CI=true)."""
    raise Unavailable(reason)


def need_program(name: str, hint: str = "") -> str:
    """The path of program `name` on the PATH; Unavailable (with `hint`: how to install it)."""
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed" + (f" ({hint})" if hint else ""))
    return path


def postgresql_admin(dsn: str | None = None) -> str:
    """The DSN of the server's maintenance database: `dsn`, else $ESTRAN_PG, else local."""
    return dsn or os.environ.get("ESTRAN_PG") or DEFAULT_PG


def postgresql_execute(admin: str, sql: str) -> None:
    """Run one statement on the server (autocommit); Unavailable when it cannot be reached."""
    try:
        import psycopg

        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as connection:
            connection.execute(sql.encode())
    except Exception as e:  # any failure: no PostgreSQL here (or not one we may use)
        raise Unavailable(f"PostgreSQL not reachable at {admin}: {e}") from e


@contextlib.contextmanager
def temporary_postgresql(dsn: str | None = None, prefix: str = "estran_rig") -> Iterator[str]:
    """A database of its own on the PostgreSQL server of `dsn` ($ESTRAN_PG, else local),
    created empty, its DSN yielded (what `estran hub run --db` takes), dropped after."""
    admin = postgresql_admin(dsn)
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    postgresql_execute(admin, f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin.rpartition('/')[0]}/{name}"
    finally:
        with contextlib.suppress(Unavailable):
            postgresql_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


__all__ = [
    "DEFAULT_PG",
    "need_program",
    "postgresql_admin",
    "postgresql_execute",
    "temporary_postgresql",
    "unavailable",
]

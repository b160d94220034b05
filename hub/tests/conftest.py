from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.storage import Storage, open_storage
from hub.tests.services import temporary_database


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """One temporary PostgreSQL database for the whole test session."""
    with temporary_database() as url:
        yield url


def _reset_postgres(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A --db value for an empty database, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/hub.sqlite3"
    url: str = request.getfixturevalue("pg_database")
    _reset_postgres(url)
    return url


@pytest.fixture
def storage(storage_spec: str, tmp_path: Path) -> Iterator[Storage]:
    s = open_storage(storage_spec, tmp_path)
    try:
        yield s
    finally:
        s.close()

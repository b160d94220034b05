"""Every query and path parameter of every GET endpoint the OpenAPI document lists, given
hostile values as an admin and as anonymous: an answer with a reason (4xx), never a 500."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hub._api import create_app
from hub.fleet_api import FleetHub
from hub.storage import open_storage
from hub.tests.test_storage import SOIL, T0, batch

HOSTILE = (
    "9" * 40,
    "-" + "9" * 25,
    str(2**63),
    "-1",
    "1e999",
    "NaN",
    "x" * 5000,
    "\x00",
    "é/../..",
    "'; DROP TABLE readings; --",
    "$filter",
    "2026-13-45T99:99:99Z",
)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    storage = open_storage("sqlite", tmp_path)
    storage.ingest([batch("gw-1", 1, [(SOIL, T0, 1), (SOIL, T0 + 1, 2)])], now_ms=T0)
    fleet_hub = FleetHub(tmp_path)
    app = create_app(storage, access=fleet_hub.access)
    app.include_router(fleet_hub.router())
    admin = {"Authorization": f"Bearer {fleet_hub.new_admin_credential}"}
    with TestClient(app, base_url="http://hub", raise_server_exceptions=False) as c:
        yield c, admin
    fleet_hub.close()
    storage.close()


def get_operations(spec: dict[str, object]) -> Iterator[tuple[str, list[dict[str, object]]]]:
    paths = spec["paths"]
    assert isinstance(paths, dict)
    for path, ops in sorted(paths.items()):
        get = ops.get("get")
        if get is not None:
            yield path, list(get.get("parameters", []))


def test_no_parameter_value_makes_a_500(client: tuple[TestClient, dict[str, str]]) -> None:
    http, admin = client
    spec = http.get("/api/openapi.json").json()
    failures: list[str] = []
    tried = 0
    for path, params in get_operations(spec):
        query = [p["name"] for p in params if p.get("in") == "query"]
        for value in HOSTILE:
            quoted = urllib.parse.quote(value, safe="")
            concrete = re.sub(r"\{[^}]+\}", quoted.replace("\\", "\\\\"), path)
            plain = re.sub(r"\{[^}]+\}", "soil-001", path)
            attempts = [(concrete, {})] if concrete != path else []
            attempts += [(plain, {name: value}) for name in query]
            for url, q in attempts:
                for headers in (admin, {}):
                    tried += 1
                    r = http.get(url, params=q, headers=headers)
                    if r.status_code >= 500 and r.status_code != 503:
                        failures.append(f"{r.status_code} GET {url} {q!r:.80}")
    assert tried > 200
    assert not failures, "\n".join(failures[:40])

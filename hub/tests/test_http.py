"""HTTP hardening (issue 9): what black-box tests of the first release found, each held here."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from hub._api import create_app
from hub._http import LogRateLimit, parse_networks
from hub.fleet_api import FleetHub
from hub.storage import open_storage


@pytest.fixture
def fleet_hub(tmp_path: Path) -> Iterator[FleetHub]:
    h = FleetHub(tmp_path)
    yield h
    h.close()


@pytest.fixture
def http(fleet_hub: FleetHub, tmp_path: Path) -> Iterator[TestClient]:
    storage = open_storage("sqlite", tmp_path)
    app = create_app(storage, access=fleet_hub.access)
    app.include_router(fleet_hub.router())
    with TestClient(app, base_url="http://hub", raise_server_exceptions=False) as client:
        yield client
    storage.close()


def admin(fleet_hub: FleetHub) -> dict[str, str]:
    return {"Authorization": f"Bearer {fleet_hub.new_admin_credential}"}


@pytest.mark.parametrize(
    "value",
    ["1" + "0" * 30, "-" + "9" * 25, str(2**63), "99999-01-01T00:00:00", "1e999", "x" * 60_000],
)
def test_time_parameters_out_of_range_are_422(
    http: TestClient, fleet_hub: FleetHub, value: str
) -> None:
    for name in ("from", "to"):
        r = http.get(
            "/api/v1/readings", params={"sensor": "s", name: value}, headers=admin(fleet_hub)
        )
        assert r.status_code == 422, (name, r.text[:200])
        assert name in r.text and len(r.text) < 500


def test_a_huge_id_is_not_echoed_back(http: TestClient, fleet_hub: FleetHub) -> None:
    big = "a" * 60_000  # (httpx caps a URL component at 64 KiB)
    r = http.get("/api/v1/readings", params={"sensor": big}, headers=admin(fleet_hub))
    assert r.status_code == 422
    assert len(r.content) < 1000 and r.json()["detail"][0]["parameter"] == "sensor"
    r = http.get(f"/api/v1/fleet/gateways/{big}/config", headers=admin(fleet_hub))
    assert r.status_code == 422 and len(r.content) < 1000


def test_request_bodies_are_bounded(http: TestClient, fleet_hub: FleetHub) -> None:
    # the unauthenticated enrollment endpoint: refused before being read
    body = b'{"token": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    r = http.post("/api/v1/enroll", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 413

    # chunked (no Content-Length): cut at the limit
    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b"x" * 1024

    r = http.post("/api/v1/enroll/challenge", content=chunks())
    assert r.status_code == 413
    # the admin endpoints: 1 MiB
    big = {"sensors": ["x" * 1000] * 2000}
    r = http.put("/api/v1/fleet/config/fleet", json=big, headers=admin(fleet_hub))
    assert r.status_code == 413


def test_429_says_when_to_come_back(http: TestClient) -> None:
    statuses = []
    for _ in range(61):
        r = http.post("/api/v1/enroll/challenge", json={"token": "et1.a.b.c"})
        statuses.append(r.status_code)
    assert statuses[-1] == 429 and 0 < int(r.headers["retry-after"]) <= 60


async def test_forwarded_for_is_believed_only_from_trusted_proxies(
    fleet_hub: FleetHub, tmp_path: Path
) -> None:
    storage = open_storage("sqlite", tmp_path)
    app = create_app(storage, access=fleet_hub.access)
    app.include_router(fleet_hub.router())

    def client(peer: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://hub")

    # not trusted: a client cannot dodge the enrollment limit by inventing addresses
    async with client("203.0.113.7") as c:
        codes = [
            (
                await c.post(
                    "/api/v1/enroll/challenge",
                    json={"token": "et1.a.b.c"},
                    headers={"X-Forwarded-For": f"10.0.0.{i}"},
                )
            ).status_code
            for i in range(61)
        ]
    assert codes[-1] == 429
    # trusted proxy: the address it forwards is the client's (and one client's limit is not
    # another's)
    fleet_hub.access.settings = type(fleet_hub.access.settings)(
        trusted_proxies=parse_networks(["127.0.0.0/8"])
    )
    async with client("127.0.0.1") as c:
        r = await c.post(
            "/api/v1/enroll/challenge",
            json={"token": "et1.a.b.c"},
            headers={"X-Forwarded-For": "203.0.113.7, 127.0.0.5"},
        )
        assert r.status_code == 429  # 203.0.113.7 spent its minute above
        r = await c.post(
            "/api/v1/enroll/challenge",
            json={"token": "et1.a.b.c"},
            headers={"X-Forwarded-For": "198.51.100.1"},
        )
        assert r.status_code == 403  # a bad token, judged: not limited
    storage.close()


def test_error_logs_are_rate_limited() -> None:
    logger = logging.getLogger("estran.test.flood")
    flt = LogRateLimit(per_minute=5)
    logger.addFilter(flt)
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    try:
        for i in range(100):
            logger.error("boom %d", i)
        logger.warning("not an error: always through")
    finally:
        logger.removeHandler(handler)
        logger.removeFilter(flt)
    assert len(records) == 6 and flt.suppressed == 95


async def test_links_say_https_behind_a_trusted_tls_proxy_only(
    fleet_hub: FleetHub, tmp_path: Path
) -> None:
    """Behind a TLS terminator (--trusted-proxy, X-Forwarded-Proto: https) the links the hub
    writes (SensorThings' selfLink and nextLink, the Link header of a page) are https: a
    client following them must not fall back to plain HTTP. From anyone else the header is
    ignored."""
    from hub.tests.test_access_http import territory
    from hub.tests.test_storage import T0, batch

    storage = open_storage("sqlite", tmp_path)
    storage.ingest([batch("gw-1", 1, territory())], now_ms=T0)
    app = create_app(storage, access=fleet_hub.access)
    fleet_hub.access.settings = type(fleet_hub.access.settings)(
        trusted_proxies=parse_networks(["127.0.0.0/8"])
    )
    headers = {**admin(fleet_hub), "X-Forwarded-Proto": "https"}

    async def links(peer: str) -> list[str]:
        transport = httpx.ASGITransport(app=app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as c:
            sta = (await c.get("/sta/v1.1/Things", params={"$top": 1}, headers=headers)).json()
            page = await c.get("/api/v1/sensors", params={"limit": 1}, headers=headers)
        return [sta["@iot.nextLink"], sta["value"][0]["@iot.selfLink"], page.headers["link"]]

    assert all(link.lstrip("<").startswith("https://hub/") for link in await links("127.0.0.1"))
    assert all(link.lstrip("<").startswith("http://hub/") for link in await links("192.0.2.9"))
    storage.close()


def test_a_sensor_id_of_the_wire_format_longest_is_readable(
    fleet_hub: FleetHub, tmp_path: Path
) -> None:
    """A gateway may name a sensor with up to 256 characters (docs/wire-format.md): the hub
    stores it, lists it, and its readings, catalogue entry and erasure take that id too (they
    refused it past 128 characters with a 422)."""
    from hub._decode import MAX_NAME
    from hub.tests.test_storage import T0, batch

    long_id = "s" * MAX_NAME
    storage = open_storage("sqlite", tmp_path)
    storage.ingest([batch("gw-1", 1, [((long_id, "level", "cm"), T0, 7)])], now_ms=T0)
    app = create_app(storage, access=fleet_hub.access)
    with TestClient(app, base_url="http://hub", headers=admin(fleet_hub)) as c:
        assert [s["sensor"] for s in c.get("/api/v1/sensors").json()] == [long_id]
        r = c.get("/api/v1/readings", params={"sensor": long_id})
        assert r.status_code == 200 and r.json()["count"] == 1, r.text
        r = c.put(f"/api/v1/catalogue/{long_id}", json={"description": "a long name"})
        assert r.status_code == 200, r.text
        assert c.get(f"/api/v1/catalogue/{long_id}").json()["description"] == "a long name"
        r = c.post("/api/v1/erasures", json={"sensor": long_id, "from": "0", "to": str(T0 + 1)})
        assert r.status_code == 200 and r.json()["deleted"] == 1, r.text
        assert c.get("/api/v1/erasures", params={"sensor": long_id}).status_code == 200
        r = c.get("/api/v1/readings", params={"sensor": long_id + "s"})
        assert r.status_code == 422 and "sensor" in r.text
    storage.close()

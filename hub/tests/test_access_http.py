"""Who reads what, from outside: a running hub (its HTTP port), set up with the `estran hub`
commands, on SQLite and on PostgreSQL. Only what docs/hub.md and docs/security.md name."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from hub._http import LogRateLimit
from hub._service import Hub, HubConfig
from hub.cli import hub as hub_cli
from hub.storage import SeriesKey, Value, open_storage
from hub.tests.services import free_port, running_hub_task
from hub.tests.test_storage import T0, batch

PARK: SeriesKey = ("park-soil-01", "moisture", "%")
METER: SeriesKey = ("flat-12-water", "volume", "m3")
LINKY: SeriesKey = ("townhall-linky", "energy", "Wh")
BERTH: SeriesKey = ("marina-berth-01", "occupancy", None)


def run_cli(data: Path, db: str, *args: str, input: str | None = None) -> str:
    group, *rest = args
    argv = [group, "--data", str(data)]
    if group in ("dataset", "sensor", "erase"):
        argv += ["--db", db]
    result = CliRunner().invoke(hub_cli, [*argv, *rest], input=input, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


class Site:
    def __init__(self, data: Path, db: str, url: str, hub: Hub) -> None:
        self.data, self.db, self.url, self.hub = data, db, url, hub

    def cli(self, *args: str, input: str | None = None) -> str:
        return run_cli(self.data, self.db, *args, input=input)

    def token(self, user: str, *args: str) -> dict[str, str]:
        token = self.cli("token", "create", user, *args).split()[0]
        return {"Authorization": f"Bearer {token}"}


@contextlib.asynccontextmanager
async def running(data: Path, db: str) -> AsyncIterator[Site]:
    http_port = free_port()
    config = HubConfig(
        data_dir=data,
        db=db,
        mqtt_listen=f"127.0.0.1:{free_port()}",
        http=f"127.0.0.1:{http_port}",
        workers=0,
    )
    async with running_hub_task(config, ready_s=30) as hub:
        yield Site(data, db, f"http://127.0.0.1:{http_port}", hub)


def territory() -> list[tuple[SeriesKey, int, Value]]:
    """What gateway gw-1 sent: 10 readings of each sensor, sequences 1 to 40."""
    rows: list[tuple[SeriesKey, int, Value]] = []
    for i in range(10):
        rows += [(PARK, T0 + i * 1000, 30 + i), (METER, T0 + i * 1000, 100 + i)]
        rows += [(LINKY, T0 + i * 1000, 5000 + i), (BERTH, T0 + i * 1000, i % 2)]
    return rows


@pytest.fixture
async def site(storage_spec: str, tmp_path: Path) -> AsyncIterator[Site]:
    data = tmp_path / "hub"
    data.mkdir()
    with open_storage(storage_spec, data) as storage:
        storage.ingest([batch("gw-1", 1, territory())], now_ms=T0)
    async with running(data, storage_spec) as s:
        s.cli("dataset", "set", "parks", "--open", "--steward", "Parks department")
        s.cli("dataset", "set", "water", "--closed", "--description", "residents' meters")
        s.cli("dataset", "set", "energy", "--closed")
        s.cli(
            "sensor",
            "set",
            "park-soil-01",
            "--dataset",
            "parks",
            "--lon",
            "5.38",
            "--lat",
            "43.26",
            "--site",
            "parc-borely",
            "--kind",
            "soil",
        )
        s.cli(
            "sensor",
            "set",
            "flat-12-water",
            "--dataset",
            "water",
            "--personal",
            "--site",
            "rue-paradis-12",
        )
        s.cli("sensor", "set", "townhall-linky", "--dataset", "energy")
        # marina-berth-01: in no dataset (closed, admin only)
        s.cli("user", "add", "rita", "--role", "reader", "--dataset", "water")
        s.cli("user", "add", "tess", "--role", "technician", "--group", "marina")
        yield s


async def test_a_reader_sees_its_closed_dataset_and_nothing_else(site: Site) -> None:
    reader = site.token("rita")
    async with httpx.AsyncClient(base_url=site.url, headers=reader) as http:
        sensors = {r["sensor"] for r in (await http.get("/api/v1/sensors")).json()}
        assert sensors == {"park-soil-01", "flat-12-water"}  # open data, and its dataset
        r = await http.get("/api/v1/readings", params={"sensor": "flat-12-water"})
        assert r.status_code == 200 and r.json()["count"] == 10
        for other in ("townhall-linky", "marina-berth-01", "no-such-sensor"):
            r = await http.get("/api/v1/readings", params={"sensor": other})
            assert r.status_code == 404, other  # the same answer: existence not disclosed
            r = await http.get("/api/v1/readings.csv", params={"sensor": other})
            assert r.status_code == 404, other
            r = await http.get("/api/v1/series", params={"sensor": other, "quantity": "energy"})
            assert r.status_code == 404, other
        names = {d["name"] for d in (await http.get("/api/v1/datasets")).json()}
        assert names == {"parks", "water"}
        catalogue = {e["sensor"] for e in (await http.get("/api/v1/catalogue")).json()}
        assert catalogue == {"park-soil-01", "flat-12-water"}
        r = await http.get("/open/v1/datasets/water.csv")
        assert r.status_code == 200 and "flat-12-water" in r.text
        assert (await http.get("/open/v1/datasets/energy.csv")).status_code == 404
        assert (await http.get("/api/v1/gateways")).status_code == 403
        # read-only: a reader's token cannot change anything
        r = await http.put("/api/v1/datasets/water", json={"open": False})
        assert r.status_code == 403
    # a token narrowed to a dataset its user is not granted reads open data only
    narrowed = site.token("rita", "--dataset", "energy")
    async with httpx.AsyncClient(base_url=site.url, headers=narrowed) as http:
        sensors = {r["sensor"] for r in (await http.get("/api/v1/sensors")).json()}
        assert sensors == {"park-soil-01"}


async def test_anonymous_reads_open_data_only(site: Site) -> None:
    async with httpx.AsyncClient(base_url=site.url) as http:
        sensors = {r["sensor"] for r in (await http.get("/api/v1/sensors")).json()}
        assert sensors == {"park-soil-01"}
        r = await http.get("/api/v1/sensors")
        assert r.headers["x-total-count"] == "1"
        assert (await http.get("/api/v1/gateways")).status_code == 401
        assert (await http.get("/api/v1/users")).status_code == 401
        assert (await http.get("/api/v1/audit")).status_code == 401
        r = await http.get("/api/v1/readings", params={"sensor": "flat-12-water"})
        assert r.status_code == 404
        r = await http.get("/api/v1/readings", params={"sensor": "park-soil-01"})
        assert r.status_code == 200 and r.json()["count"] == 10
        # open data: GeoJSON and CSV, the licence in the document and in a Link header
        r = await http.get("/open/v1/datasets/parks.geojson")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/geo+json")
        assert 'rel="license"' in r.headers["link"] and "etalab" in r.headers["link"]
        doc = r.json()
        assert doc["type"] == "FeatureCollection" and doc["licence"]["id"] == "etalab-2.0"
        (feature,) = doc["features"]
        assert feature["geometry"] == {"type": "Point", "coordinates": [5.38, 43.26]}
        assert feature["properties"]["latest"][0]["value"] == 39
        r = await http.get("/open/v1/datasets/parks.csv")
        lines = r.text.splitlines()
        assert lines[0].startswith("sensor,lon,lat") and lines[1].startswith("park-soil-01,5.38")
        assert lines[1].endswith(",etalab-2.0") and 'rel="license"' in r.headers["link"]
        for closed in ("water", "energy", "nope"):
            assert (await http.get(f"/open/v1/datasets/{closed}.geojson")).status_code == 404
        names = [d["name"] for d in (await http.get("/open/v1/datasets")).json()]
        assert names == ["parks"]
        # the server's error log is rate-limited (a client cannot flood it with tracebacks)
        assert any(isinstance(f, LogRateLimit) for f in logging.getLogger("uvicorn.error").filters)
        # the OpenAPI document carries the security schemes
        spec = (await http.get("/api/openapi.json")).json()
        schemes = spec["components"]["securitySchemes"]
        assert schemes["token"]["scheme"] == "bearer" and schemes["session"]["in"] == "cookie"
        assert spec["paths"]["/api/v1/users"]["get"]["security"]


async def test_a_technician_cannot_manage_users_or_data(site: Site) -> None:
    tech = site.token("tess")
    async with httpx.AsyncClient(base_url=site.url, headers=tech) as http:
        assert (await http.get("/api/v1/gateways")).status_code == 200
        r = await http.post("/api/v1/users", json={"name": "eve", "role": "admin"})
        assert r.status_code == 403
        assert (await http.delete("/api/v1/users/rita")).status_code == 403
        r = await http.put("/api/v1/datasets/water", json={"open": True})
        assert r.status_code == 403
        r = await http.post(
            "/api/v1/erasures", json={"sensor": "park-soil-01", "from": "0", "to": "1"}
        )
        assert r.status_code == 403
        # the technician is granted no closed dataset: open data only
        sensors = {r["sensor"] for r in (await http.get("/api/v1/sensors")).json()}
        assert sensors == {"park-soil-01"}


async def test_expired_and_revoked_tokens_are_refused(site: Site) -> None:
    short = site.token("rita", "--ttl", "1s")
    revoked = site.token("rita", "--name", "to revoke")
    async with httpx.AsyncClient(base_url=site.url) as http:
        assert (await http.get("/api/v1/session", headers=revoked)).json()["user"] == "rita"
        token_id = revoked["Authorization"].split(".")[1]
        site.cli("token", "revoke", token_id)
        time.sleep(1.1)
        for headers in (short, revoked):
            r = await http.get("/api/v1/sensors", headers=headers)
            assert r.status_code == 401 and "invalid, expired or revoked" in r.text
        health = (await http.get("/api/v1/health")).json()
        assert health["auth"]["failures"] == {"expired": 1, "revoked": 1}
    listed = site.cli("token", "list", "--user", "rita")
    assert "revoked" in listed and "expired" in listed


async def test_csrf_is_required_with_a_session(site: Site) -> None:
    site.cli("user", "add", "ada", "--role", "admin", "--password", input="a long password\n")
    async with httpx.AsyncClient(base_url=site.url) as http:
        login = (await http.get("/api/v1/session")).json()["login_csrf_token"]
        r = await http.post(
            "/login",
            data={"username": "ada", "password": "a long password", "csrf_token": login},
        )
        assert r.status_code == 303 and r.headers["location"] == "/"
        me = (await http.get("/api/v1/session")).json()
        assert me["user"] == "ada" and me["csrf_token"]
        body = {"open": False, "description": "by session"}
        r = await http.put("/api/v1/datasets/energy", json=body)
        assert r.status_code == 403 and "CSRF" in r.text
        r = await http.put("/api/v1/datasets/energy", json=body, headers={"X-CSRF-Token": "forged"})
        assert r.status_code == 403
        r = await http.put(
            "/api/v1/datasets/energy", json=body, headers={"X-CSRF-Token": me["csrf_token"]}
        )
        assert r.status_code == 200 and r.json()["description"] == "by session"


async def test_erasure_removes_what_it_says_and_is_audited(site: Site, storage_spec: str) -> None:
    out = site.cli("admin-reset")  # the first admin's token was shown once: a new one
    headers = {"Authorization": f"Bearer {out.split()[0]}"}
    async with httpx.AsyncClient(base_url=site.url, headers=headers) as http:
        r = await http.post(
            "/api/v1/erasures",
            json={
                "site": "rue-paradis-12",
                "from": str(T0 + 3000),
                "to": "2100-01-01T00:00:00Z",
                "reason": "request 2026-114",
            },
        )
        assert r.status_code == 200, r.text
        assert r.json()["deleted"] == 7 and r.json()["sensors"] == ["flat-12-water"]
        got = (await http.get("/api/v1/readings", params={"sensor": "flat-12-water"})).json()
        assert [x["ts_ms"] for x in got["readings"]] == [T0, T0 + 1000, T0 + 2000]
        latest = {s["sensor"]: s for s in (await http.get("/api/v1/sensors")).json()}[
            "flat-12-water"
        ]
        assert latest["ts_ms"] == T0 + 2000
        # others untouched
        got = (await http.get("/api/v1/readings", params={"sensor": "park-soil-01"})).json()
        assert got["count"] == 10
        audit = (await http.get("/api/v1/audit", params={"action": "readings."})).json()
        (entry,) = audit["entries"]
        assert entry["target"] == "site:rue-paradis-12" and entry["remote"] == "127.0.0.1"
        assert entry["detail"]["deleted"] == 7 and entry["detail"]["reason"] == "request 2026-114"
        (erasure,) = (await http.get("/api/v1/erasures")).json()
        assert erasure["deleted"] == 7 and erasure["actor"] == "admin"
        # a personal sensor cannot go into an open dataset, nor its dataset be opened
        r = await http.put(
            "/api/v1/catalogue/flat-12-water", json={"dataset": "parks", "personal": True}
        )
        assert r.status_code == 409 and "personal" in r.text
        r = await http.put("/api/v1/datasets/water", json={"open": True})
        assert r.status_code == 409 and "personal" in r.text
        # a licence is an identifier (SPDX style): nothing that would break a response header
        for bad in ("\U000ec6bf", "CC-BY\r\nSet-Cookie: x=1", "a b"):
            r = await http.put("/api/v1/datasets/parks", json={"open": True, "licence": bad})
            assert r.status_code == 422 and "licence" in r.text, r.text
        r = await http.put("/api/v1/datasets/parks", json={"open": True, "licence": "CC-BY-SA-4.0"})
        assert r.status_code == 200, r.text
        for kind in ("geojson", "csv"):
            r = await http.get(f"/open/v1/datasets/parks.{kind}")
            assert r.status_code == 200 and "CC-BY-SA-4.0" in r.text, r.text
        # bad input is named, never a 500
        for bad, name in (
            ({"sensor": "x", "from": "1", "to": "0"}, "from"),
            ({"from": "0", "to": "1"}, "sensor"),
            ({"sensor": "x", "from": "", "to": "1"}, "from"),  # was a 500 (an assert)
            ({"sensor": "x", "from": "0", "to": ""}, "to"),
        ):
            r = await http.post("/api/v1/erasures", json=bad)
            assert r.status_code == 422 and name in r.text, r.text
    # a gateway that resends its buffer brings nothing back
    with open_storage(storage_spec, site.data) as storage:
        result = storage.ingest([batch("gw-1", 1, territory())], now_ms=T0)
        assert (result.erased, result.inserted, result.duplicates) == (7, 0, 33)


def test_dataset_cli_refuses_a_licence_that_is_not_an_identifier(tmp_path: Path) -> None:
    argv = ["dataset", "--data", str(tmp_path), "set", "parks", "--open"]
    result = CliRunner().invoke(hub_cli, [*argv, "--licence", "Licence\u00e9 \U000ec6bf"])
    assert result.exit_code == 2 and "--licence" in result.output, result.output


@pytest.mark.parametrize("times", [("", "1"), ("0", ""), ("1", "0"), ("0", "1e99")])
def test_erase_cli_refuses_bad_times_without_a_traceback(
    tmp_path: Path, times: tuple[str, str]
) -> None:
    start, end = times
    argv = ["erase", "--data", str(tmp_path), "--sensor", "x", "--from", start, "--to", end]
    result = CliRunner().invoke(hub_cli, [*argv, "--yes"])
    assert isinstance(result.exception, SystemExit), result.exception  # not an AssertionError
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output and ("from" in result.output or "to" in result.output)


@pytest.fixture
def long_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Documents served again for a minute (the hub made after this): what a change must
    get through at once."""
    import hub._api
    import hub.sta._router

    monkeypatch.setattr(hub._api, "LATEST_TTL", 60.0)
    monkeypatch.setattr(hub.sta._router, "UNIVERSE_TTL", 60.0)


def other_process(site: Site, *args: str) -> None:
    """An `estran hub` command in a process of its own (not this one's write counter)."""
    import subprocess
    import sys

    group, *rest = args
    argv = [sys.executable, "-c", "from hub.cli import hub; hub()", group]
    argv += ["--data", str(site.data), "--db", site.db, *rest]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


async def test_no_stale_open_data_after_an_erasure_or_a_dataset_change_elsewhere(
    long_cache: None, site: Site
) -> None:
    """The open data a hub serves again (latest values, GeoJSON, SensorThings) reflects an
    erasure and a dataset closed by another process on the very next request."""

    def latest(doc: dict[str, object]) -> object:
        (feature,) = doc["features"]  # type: ignore[misc]
        return feature["properties"]["latest"][0]["value"]

    async with httpx.AsyncClient(base_url=site.url) as http:
        geojson = "/open/v1/datasets/parks.geojson"
        assert latest((await http.get(geojson)).json()) == 39
        assert [s["value"] for s in (await http.get("/api/v1/sensors")).json()] == [39]
        assert "park-soil-01" in (await http.get("/sta/v1.1/Things")).text
        other_process(
            site,
            "erase",
            "--sensor",
            "park-soil-01",
            "--from",
            str(T0 + 5000),
            "--to",
            str(T0 + 60_000),
            "--yes",
        )
        assert latest((await http.get(geojson)).json()) == 34  # the readings 35..39 are gone
        assert [s["value"] for s in (await http.get("/api/v1/sensors")).json()] == [34]
        other_process(site, "dataset", "set", "parks", "--closed")
        assert (await http.get(geojson)).status_code == 404
        assert (await http.get("/api/v1/sensors")).json() == []
        assert "park-soil-01" not in (await http.get("/sta/v1.1/Things")).text

"""Who sees which alert, over HTTP (the API and the dashboard's page), on both databases: an
alert on a sensor only for those who may read the sensor's dataset, an alert on a gateway only
for admins and the technicians of its group; a hidden alert answers as a missing one (404),
to list, to read and to acknowledge or resolve. Anonymous visitors see none.

The defect this guards against: every signed-in reader or technician got every alert (a
reader granted `water` read a leak on a town-hall meter of a closed dataset; a marina
technician acknowledged it)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import fleet
from hub._api import create_app
from hub.alerts import Alert, AlertService
from hub.alerts._api import alerts_router
from hub.auth import Access
from hub.storage import Dataset, SensorMeta, open_storage
from hub.tests.alert_support import running_engine
from hub.tests.fleet_support import enroll_directly

CLOSED_METER = "townhall-water-44556677"
WATER_METER = "marina-water-001"
OPEN_BIN = "street-bin-002"

RULES: list[dict[str, object]] = [
    {"id": "meter-alarms", "kind": "meter_flag", "scope": {}},
    {
        "id": "bin-full",
        "kind": "threshold",
        "params": {"quantity": "fill", "op": ">=", "value": 80},
    },
    {"id": "gw-offline", "kind": "gateway_offline", "params": {"after": 0}},
]


@dataclass(frozen=True)
class World:
    http: httpx.AsyncClient
    service: AlertService
    ids: dict[str, str]  # name -> alert id
    headers: dict[str, dict[str, str]]  # who -> Authorization header


def _alert(
    aid: str, rule: str, kind: str, subject: str, sensor: str | None, gateway: str, summary: str
) -> Alert:
    now = int(time.time() * 1000)
    return Alert(
        aid, rule, 1, kind, subject, sensor, gateway, "warning", "firing", summary, True,
        now - 60_000, now,
    )  # fmt: skip


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[fleet.Fleet]:
    with fleet.Fleet(tmp_path / "registry") as f:
        yield f


@contextlib.asynccontextmanager
async def world(spec: str, tmp_path: Path, registry: fleet.Fleet) -> AsyncIterator[World]:
    town_gw, _ = enroll_directly(registry, "townhall")
    marina_gw, _ = enroll_directly(registry, "marina")
    accounts = registry.accounts
    people = {
        "reader": ("rita", "reader", {"datasets": ("water",)}),
        "marina_tech": ("tom", "technician", {"groups": ("marina",)}),
        "town_tech": (
            "tess",
            "technician",
            {"groups": ("townhall",), "datasets": ("territory-closed",)},
        ),
    }
    headers = {"admin": {"Authorization": f"Bearer {accounts.reset_admin('test').token}"}}
    for who, (name, role, grants) in people.items():
        accounts.add_user(name, role, "test", **grants)  # type: ignore[arg-type]
        headers[who] = {"Authorization": f"Bearer {accounts.create_token(name, 'test').token}"}
    headers["anonymous"] = {}

    storage = open_storage(spec, tmp_path)
    now = int(time.time() * 1000)
    storage.put_dataset(Dataset("territory-closed", False, "restricted", "Homes", "DSI"), "t", now)
    storage.put_dataset(Dataset("water", False, "restricted", "Marina water", "Port"), "t", now)
    storage.put_dataset(Dataset("bins", True, "etalab-2.0", "Bin fill levels", "Voirie"), "t", now)
    for sensor, dataset in ((CLOSED_METER, "territory-closed"), (WATER_METER, "water")):
        storage.put_sensor_meta(SensorMeta(sensor, dataset, kind="water"), "t", now)
    storage.put_sensor_meta(SensorMeta(OPEN_BIN, "bins", kind="bin"), "t", now)
    ids = {
        "closed_leak": "a-closed-leak",
        "water_leak": "a-water-leak",
        "open_bin": "a-open-bin",
        "town_gw": "a-town-gw",
        "marina_gw": "a-marina-gw",
    }
    service = AlertService(storage)
    service.store.record(
        [
            _alert(
                ids["closed_leak"], "meter-alarms", "meter_flag", f"{CLOSED_METER}/leak",
                CLOSED_METER, town_gw, f"{CLOSED_METER}: the meter reports leak",
            ),
            _alert(
                ids["water_leak"], "meter-alarms", "meter_flag", f"{WATER_METER}/leak",
                WATER_METER, marina_gw, f"{WATER_METER}: the meter reports leak",
            ),
            _alert(
                ids["open_bin"], "bin-full", "threshold", f"{OPEN_BIN}/fill", OPEN_BIN,
                town_gw, f"{OPEN_BIN}: fill 91 >= 80",
            ),
            _alert(
                ids["town_gw"], "gw-offline", "gateway_offline", town_gw, None, town_gw,
                f"{town_gw} offline",
            ),
            _alert(
                ids["marina_gw"], "gw-offline", "gateway_offline", marina_gw, None, marina_gw,
                f"{marina_gw} offline",
            ),
        ],
        [],
    )  # fmt: skip
    groups = {town_gw: "townhall", marina_gw: "marina"}
    try:
        async with running_engine(spec, tmp_path, RULES, groups=groups) as (engine, _n, _s):
            live = AlertService(storage, engine)
            live.gateway_group = lambda: groups  # as Alerting.service() sets it from the fleet
            app = create_app(storage, access=Access(registry))
            app.state.alerts = live
            app.include_router(alerts_router(live))
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
                yield World(http, live, ids, headers)
    finally:
        storage.close()


SEES = {
    "admin": {"closed_leak", "water_leak", "open_bin", "town_gw", "marina_gw"},
    "reader": {"water_leak", "open_bin"},
    "marina_tech": {"open_bin", "marina_gw"},
    "town_tech": {"closed_leak", "open_bin", "town_gw"},
}


async def test_each_principal_lists_and_reads_only_the_alerts_it_may_see(
    storage_spec: str, tmp_path: Path, registry: fleet.Fleet
) -> None:
    async with world(storage_spec, tmp_path, registry) as w:
        names = {v: k for k, v in w.ids.items()}
        for who, expected in SEES.items():
            r = await w.http.get("/api/v1/alerts", headers=w.headers[who])
            assert r.status_code == 200, (who, r.text)
            body = r.json()
            assert {names[a["id"]] for a in body["alerts"]} == expected, who
            assert body["counts"] == {"firing": len(expected), "acknowledged": 0, "resolved": 0}
            if who != "admin":
                assert CLOSED_METER not in r.text or who == "town_tech", who
            # filters never widen what is seen
            for query in (f"subject={CLOSED_METER}", "rule=meter-alarms", "state=open"):
                r = await w.http.get(f"/api/v1/alerts?{query}", headers=w.headers[who])
                assert {names[a["id"]] for a in r.json()["alerts"]} <= expected, (who, query)
            missing = await w.http.get("/api/v1/alerts/a-nowhere", headers=w.headers[who])
            assert missing.status_code == 404
            for name, aid in w.ids.items():
                r = await w.http.get(f"/api/v1/alerts/{aid}", headers=w.headers[who])
                if name in expected:
                    assert r.status_code == 200 and r.json()["id"] == aid, (who, name)
                else:  # hidden: exactly as a missing one
                    assert r.status_code == 404, (who, name)
                    assert r.json() == {"detail": f"no alert {aid!r}"}
                    assert missing.json() == {"detail": "no alert 'a-nowhere'"}
        # anonymous: nothing at all
        assert (await w.http.get("/api/v1/alerts")).status_code == 401
        for aid in w.ids.values():
            assert (await w.http.get(f"/api/v1/alerts/{aid}")).status_code == 401
            assert (await w.http.post(f"/api/v1/alerts/{aid}/ack")).status_code == 401


async def test_acknowledge_and_resolve_only_what_one_sees_and_may_act_on(
    storage_spec: str, tmp_path: Path, registry: fleet.Fleet
) -> None:
    async with world(storage_spec, tmp_path, registry) as w:
        ids, h = w.ids, w.headers
        for verb in ("ack", "resolve"):
            # the marina technician: the town hall's meter and gateway are as if missing
            for name in ("closed_leak", "town_gw", "water_leak"):
                r = await w.http.post(
                    f"/api/v1/alerts/{ids[name]}/{verb}", headers=h["marina_tech"]
                )
                assert r.status_code == 404, (verb, name, r.text)
                assert r.json() == {"detail": f"no alert {ids[name]!r}"}
            # a reader acts on nothing, seen or not (the same 403 whatever the id)
            for aid in (*ids.values(), "a-nowhere"):
                r = await w.http.post(f"/api/v1/alerts/{aid}/{verb}", headers=h["reader"])
                assert r.status_code == 403
        assert {a.state for a in w.service.alerts()} == {"firing"}
        # the right technician acts on their group's gateway and the meter they may read
        r = await w.http.post(f"/api/v1/alerts/{ids['closed_leak']}/ack", headers=h["town_tech"])
        assert r.status_code == 200 and r.json()["ack_by"] == "tess"
        r = await w.http.post(f"/api/v1/alerts/{ids['town_gw']}/resolve", headers=h["town_tech"])
        assert r.status_code == 200 and r.json()["resolved_by"] == "tess"
        # the marina technician, on their own gateway; the admin, on anything
        r = await w.http.post(f"/api/v1/alerts/{ids['marina_gw']}/ack", headers=h["marina_tech"])
        assert r.status_code == 200 and r.json()["ack_by"] == "tom"
        r = await w.http.post(f"/api/v1/alerts/{ids['water_leak']}/resolve", headers=h["admin"])
        assert r.status_code == 200
        # a resolved alert one does not see is still a 404, not a 409
        r = await w.http.post(f"/api/v1/alerts/{ids['town_gw']}/ack", headers=h["marina_tech"])
        assert r.status_code == 404
        states = {a.id: a.state for a in w.service.alerts()}
        assert states == {
            ids["closed_leak"]: "acknowledged",
            ids["town_gw"]: "resolved",
            ids["marina_gw"]: "acknowledged",
            ids["water_leak"]: "resolved",
            ids["open_bin"]: "firing",
        }


async def test_dashboard_alerts_page_shows_and_acts_on_what_one_sees(
    storage_spec: str, tmp_path: Path, registry: fleet.Fleet
) -> None:
    async with world(storage_spec, tmp_path, registry) as w:
        en = {"Accept-Language": "en"}
        page = await w.http.get("/alerts", headers={**w.headers["marina_tech"], **en})
        assert page.status_code == 200
        assert CLOSED_METER not in page.text and WATER_METER not in page.text
        assert "2 firing, 0 acknowledged, 0 resolved." in page.text
        assert f'action="/alerts/{w.ids["marina_gw"]}/acknowledge"' in page.text
        r = await w.http.post(
            f"/alerts/{w.ids['closed_leak']}/acknowledge", headers=w.headers["marina_tech"]
        )
        assert (r.status_code, r.headers["location"]) == (303, "/alerts?error=gone")
        assert w.service.alert(w.ids["closed_leak"]).state == "firing"
        page = await w.http.get("/alerts", headers={**w.headers["town_tech"], **en})
        assert f"{CLOSED_METER}: the meter reports leak" in page.text
        assert "3 firing, 0 acknowledged, 0 resolved." in page.text
        page = await w.http.get("/alerts", headers={**w.headers["admin"], **en})
        assert "5 firing, 0 acknowledged, 0 resolved." in page.text
        r = await w.http.get("/alerts")  # anonymous: sent to sign in
        assert r.status_code == 303 and r.headers["location"].startswith("/login")


async def test_rules_are_listed_to_admins_only(
    storage_spec: str, tmp_path: Path, registry: fleet.Fleet
) -> None:
    """A rule's scope can name a closed sensor or dataset: the rules are an admin's."""
    async with world(storage_spec, tmp_path, registry) as w:
        for who in ("reader", "marina_tech", "town_tech"):
            for path in ("/api/v1/alert-rules", "/api/v1/alert-rules/meter-alarms"):
                assert (await w.http.get(path, headers=w.headers[who])).status_code == 403
        r = await w.http.get("/api/v1/alert-rules", headers=w.headers["admin"])
        assert r.status_code == 200 and len(r.json()) == len(RULES)
        assert (await w.http.get("/api/v1/alert-rules")).status_code == 401

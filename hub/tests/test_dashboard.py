"""The dashboard's pages over HTTP (no browser: hil-tests/test_dashboard.py drives Chromium):
who sees what, languages, escaping, the static assets and their bounds."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

import fleet
from hub._api import create_app
from hub.auth import Access
from hub.dashboard import _format
from hub.dashboard._i18n import TEXTS, Translator, negotiate
from hub.storage import GatewayState, SeriesKey, SourceStatus, Storage, Value, open_storage
from hub.tests.fleet_support import enroll_directly
from hub.tests.test_storage import batch

SOIL: SeriesKey = ("soil-001", "moisture", "%")
NOTE: SeriesKey = ("soil-001", "status", None)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[fleet.Fleet]:
    with fleet.Fleet(tmp_path / "hub") as f:
        yield f


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    s = open_storage(f"sqlite:///{tmp_path}/hub.sqlite3", tmp_path)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def http(storage: Storage, registry: fleet.Fleet) -> Iterator[TestClient]:
    app = create_app(storage, access=Access(registry))
    app.state.fleet = registry
    with TestClient(app, base_url="http://hub", follow_redirects=False) as client:
        yield client


@pytest.fixture
def admin(registry: fleet.Fleet) -> dict[str, str]:
    """Headers of an admin's API token."""
    return {"Authorization": f"Bearer {registry.accounts.reset_admin('test').token}"}


PASSWORD = "correct horse battery"


def sign_in(http: TestClient, registry: fleet.Fleet, name: str, role: str, **grants: object) -> str:
    """A user made with a password, signed in through the login form as a browser does;
    returns the session's CSRF token (for the forms)."""
    registry.accounts.add_user(name, role, "test", password=PASSWORD, **grants)  # type: ignore[arg-type]
    form = http.get("/login?next=/fleet")
    assert form.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    r = http.post(
        "/login",
        data={"username": name, "password": PASSWORD, "csrf_token": token.group(1), "next": "/x"},
    )
    assert (r.status_code, r.headers["location"]) == (303, "/x"), r.text
    page = http.get("/open-data")
    csrf = re.search(
        r'action="/logout"><input type="hidden" name="csrf_token" value="([^"]+)"', page.text
    )
    assert csrf is not None, page.text
    return csrf.group(1)


def feed(storage: Storage, gateway: str = "marina-001", n: int = 60) -> int:
    """`n` readings of soil-001 over the last n minutes, and a birth; returns now (ms)."""
    now = time.time_ns() // 1_000_000
    rows: list[tuple[SeriesKey, int, Value]] = [
        (SOIL, now - (n - i) * 60_000, 20.0 + i % 7) for i in range(n)
    ]
    rows.append((NOTE, now - 1000, "ok"))
    storage.ingest([batch(gateway, 1, rows, backlog=3)], now_ms=now)
    storage.record_state(gateway, GatewayState(True, 1, now, backlog=3), now_ms=now)
    return now


# -- languages and words ---------------------------------------------------------------------


def test_every_text_has_both_languages_and_every_key_used_exists() -> None:
    for key, pair in TEXTS.items():
        assert len(pair) == 2 and all(pair), key
    used: set[str] = set()
    templates = resources.files("hub.dashboard") / "templates"
    for page in templates.iterdir():
        used |= set(re.findall(r"\bt\('([a-z0-9_.]+)'", page.read_text()))
    code = (resources.files("hub.dashboard") / "_router.py").read_text()
    used |= set(
        re.findall(r'"((?:nav|error|sensor|gateway|alerts|map|open|num|login)\.[a-z_.]+)"', code)
    )
    assert used, "no key found: the pattern is wrong"
    missing = sorted(k for k in used if k not in TEXTS and not k.endswith((".", ".html")))
    assert not missing, missing


@pytest.mark.parametrize(
    ("cookie", "header", "lang"),
    [
        (None, None, "fr"),
        (None, "en-GB,en;q=0.9", "en"),
        (None, "de-DE,de;q=0.9,en;q=0.5,fr;q=0.4", "en"),
        (None, "fr-FR,en;q=0.8", "fr"),
        (None, "en;q=0.2,fr;q=0.3", "fr"),
        (None, "en;q=0", "fr"),
        (None, "en;q=garbage", "fr"),
        ("en", "fr", "en"),
        ("xx", "en", "en"),
    ],
)
def test_language_negotiation(cookie: str | None, header: str | None, lang: str) -> None:
    assert negotiate(cookie, header) == lang


def test_numbers_read_as_people_write_them() -> None:
    assert _format.number(1234.5, "fr") == "1\u202f234,5"
    assert _format.number(1234.5, "en") == "1,234.5"
    assert _format.number(float("nan"), "en") == "—"
    assert _format.number(None, "fr") == "—"
    assert _format.number("ok", "fr") == "ok"
    assert _format.duration(3 * 86400 + 7200, "fr") == "3 j 2 h"
    assert _format.size(47_000_000, "en") == "47 MB"
    assert Translator("en")("fleet.summary", online=1, offline=2, unknown=0, total=3).startswith(
        "1 online"
    )


# -- who sees what ---------------------------------------------------------------------------


def test_anonymous_visitor_goes_to_open_data_and_is_sent_to_login(http: TestClient) -> None:
    r = http.get("/")
    assert (r.status_code, r.headers["location"]) == (303, "/open-data")
    for path in ("/fleet", "/gateways/marina-001", "/alerts"):
        r = http.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/login?next="), path
    # a sensor in no open dataset: answered as one that does not exist
    assert http.get("/sensors/soil-001").status_code == 404
    r = http.get("/open-data")
    assert r.status_code == 200
    assert 'href="/fleet"' not in r.text  # no fleet link for a visitor
    assert http.get("/numeriscore").status_code == 200  # published, as its API


def test_admin_home_is_the_fleet(http: TestClient, admin: dict[str, str]) -> None:
    r = http.get("/", headers=admin)
    assert (r.status_code, r.headers["location"]) == (303, "/fleet")


def test_pages_carry_a_strict_content_security_policy(http: TestClient) -> None:
    r = http.get("/open-data", headers={"Accept-Language": "en"})
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert '<html lang="en">' in r.text
    assert 'class="skip" href="#main"' in r.text


# -- the fleet pages -------------------------------------------------------------------------


def test_fleet_overview_joins_the_link_and_the_registry(
    http: TestClient, storage: Storage, registry: fleet.Fleet, admin: dict[str, str]
) -> None:
    gid, _ = enroll_directly(registry, "marina")
    feed(storage, "stray-gw")  # heard from, never enrolled
    time.sleep(0.002)
    feed(storage, gid)  # the latest readings of soil-001 come from it
    down = SourceStatus("serial-ttyUSB0", "down", None, {"timeout": 3}, "port missing")
    ok = SourceStatus("ble", "ok", int(time.time() * 1000))
    state = GatewayState(True, 1, 1, sources=(down, ok), restart_pending=("buffer",))
    assert storage.record_state(gid, state, now_ms=int(time.time() * 1000))
    r = http.get("/fleet", headers={**admin, "Accept-Language": "en"})
    assert r.status_code == 200, r.text
    assert f'href="/gateways/{gid}"' in r.text
    assert "group marina" in r.text
    assert "not enrolled" in r.text  # the stray one
    assert "2 online, 0 offline" in r.text
    assert "1 working, 0 with errors, 1 down" in r.text
    assert "serial-ttyUSB0: down" in r.text
    assert "yes, to apply: buffer" in r.text
    # the enrolled one needs attention (a reader down, a restart pending); the stray does not
    r = http.get("/fleet?show=attention", headers={**admin, "Accept-Language": "en"})
    assert "Needing attention (1)" in r.text
    assert f'href="/gateways/{gid}"' in r.text and 'href="/gateways/stray-gw"' not in r.text
    page = http.get(f"/gateways/{gid}", headers={**admin, "Accept-Language": "en"})
    assert page.status_code == 200
    assert "gateway.enroll" in page.text  # its history
    assert "port missing" in page.text and "timeout: 3" in page.text
    # a change of its group's layer shows in its history, with what changed
    registry.set_layer("group", "marina", {"buffer": {"quota": "2 GiB"}}, "ada")
    page = http.get(f"/gateways/{gid}", headers={**admin, "Accept-Language": "en"})
    assert "config.set (group:marina)" in page.text and "<code>buffer.quota</code>" in page.text
    assert 'href="/sensors/soil-001"' in page.text
    assert http.get("/gateways/nope", headers=admin).status_code == 404


def test_sensor_page_chart_data_and_table_agree(
    http: TestClient, storage: Storage, admin: dict[str, str]
) -> None:
    feed(storage)
    r = http.get("/sensors/soil-001?range=6h", headers=admin)
    assert r.status_code == 200
    found = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', r.text)
    assert found is not None
    chart = json.loads(found.group(1))
    assert chart["label"] == "moisture" and chart["unit"] == "%"
    assert len(chart["t"]) == len(chart["mean"]) > 10
    assert min(chart["min"]) == 20.0 and max(chart["max"]) == 26.0
    table = r.text[r.text.index("<details>") :]
    assert table.count("<tr><td>") == len(chart["t"])
    # chosen days instead of a period; wrong ones are said and ignored
    today = time.strftime("%Y-%m-%d", time.gmtime())
    r = http.get(
        f"/sensors/soil-001?from={today}&to={today}", headers={**admin, "Accept-Language": "en"}
    )
    assert f"From {today} 00:00:00 to " in r.text and 'value="' + today + '"' in r.text
    r = http.get("/sensors/soil-001?from=2026-13-01", headers={**admin, "Accept-Language": "en"})
    assert "Dates ignored: they are written YYYY-MM-DD." in r.text
    r = http.get(
        "/sensors/soil-001?from=2020-01-01&to=2024-01-01",
        headers={**admin, "Accept-Language": "en"},
    )
    assert "Dates ignored: 366 days at most." in r.text
    # a text quantity is not charted; an unknown range falls back to the default
    assert http.get("/sensors/soil-001?quantity=status&range=99y", headers=admin).status_code == 200
    assert http.get("/sensors/none", headers=admin).status_code == 404


def test_hostile_ids_are_escaped(http: TestClient, storage: Storage, admin: dict[str, str]) -> None:
    evil = '<img src=x onerror="alert(1)">'
    now = time.time_ns() // 1_000_000
    storage.ingest([batch(evil, 1, [((evil, "q", None), now, 1.0)])], now_ms=now)
    for path in ("/fleet", "/gateways/" + quote(evil, safe=""), "/sensors/" + quote(evil, safe="")):
        r = http.get(path, headers=admin)
        assert r.status_code == 200, path
        assert evil not in r.text and "&lt;img src=x" in r.text, path
    r = http.get("/gateways/" + quote('<script>"', safe=""), headers=admin)
    assert r.status_code == 404 and "<script>" not in r.text


# -- the language switch and the assets ------------------------------------------------------


def test_language_switch_sets_a_cookie_and_never_leaves_the_site(http: TestClient) -> None:
    r = http.get("/lang/en?next=/open-data")
    assert (r.status_code, r.headers["location"]) == (303, "/open-data")
    assert "estran_lang=en" in r.headers["set-cookie"]
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", ""):
        r = http.get("/lang/en", params={"next": target})
        assert r.headers["location"] == "/", target
    r = http.get("/lang/xx?next=/map")
    assert "set-cookie" not in r.headers


def test_static_assets_are_served_and_nothing_else(http: TestClient) -> None:
    r = http.get("/static/vendor/uplot/uPlot.iife.min.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    assert "uPlot" in r.text
    assert http.get("/static/vendor/uplot/LICENSE").status_code == 200
    assert http.get("/static/estran.css").headers["content-type"].startswith("text/css")
    for path in (
        "/static/../_router.py",
        "/static/%2e%2e/_router.py",
        "/static/..%2f_router.py",
        "/static/templates/base.html",
        "/static//etc/passwd",
        "/static/nothing.js",
    ):
        assert http.get(path).status_code == 404, path


# -- the map ---------------------------------------------------------------------------------


def test_map_places_sensors_north_up_at_one_scale() -> None:
    from hub.dashboard._svgmap import HEIGHT, PAD, WIDTH, Place, draw, round_distance

    places = [
        Place("mast", 5.3663, 43.2951, "marina"),
        Place("meter", 5.3698, 43.2965, "town hall"),
        Place("bin-2", 5.3776, 43.2899, "rue Paradis 12"),
        Place("bin-3", 5.3777, 43.2897, "rue Paradis 14"),
        Place("nowhere", float("nan"), 43.0, "broken"),
        Place("off", 500.0, 43.0, "broken"),
    ]
    picture = draw(places, "en")
    dots = {d.place.id: d for d in picture.dots}
    assert set(dots) == {"mast", "meter", "bin-2", "bin-3"}
    for d in dots.values():
        assert PAD - 0.5 <= d.x <= WIDTH - PAD + 0.5 and PAD - 0.5 <= d.y <= HEIGHT - PAD + 0.5
    assert dots["meter"].y < dots["mast"].y < dots["bin-2"].y  # north is up
    assert dots["mast"].x < dots["meter"].x < dots["bin-2"].x  # east is right
    # one scale both ways: on the ground (and so on a conformal map) 1° of longitude is
    # cos(latitude) of 1° of latitude
    dx = dots["bin-2"].x - dots["mast"].x
    dy = dots["bin-2"].y - dots["mast"].y
    assert abs(dx / dy - (0.0113 / 0.0052) * math.cos(math.radians(43.29))) < 0.01
    # labels of the two bins, 20 m apart, do not overlap
    assert abs(dots["bin-2"].label_y - dots["bin-3"].label_y) >= 16
    assert picture.scale is not None and picture.scale.text.endswith("m")
    assert (
        round_distance(737) == 500 and round_distance(0.3) == 0.2 and round_distance(2500) == 2000
    )
    alone = draw([Place("a", 2.35, 48.85, "Paris")])
    assert (alone.dots[0].x, alone.dots[0].y) == (WIDTH / 2, HEIGHT / 2)
    assert draw([]).dots == []


# -- alerts ----------------------------------------------------------------------------------


def test_alerts_page_lists_and_refuses_what_it_cannot_do(
    http: TestClient, storage: Storage, admin: dict[str, str]
) -> None:
    from hub.alerts import Alert, AlertService

    assert "not available" in http.get("/alerts", headers={**admin, "Accept-Language": "en"}).text
    service = AlertService(storage)  # no engine running: listing works, changes cannot
    http.app.state.alerts = service  # type: ignore[attr-defined]
    now = int(time.time() * 1000)
    fired = Alert(
        "a1",
        "bin-full",
        1,
        "threshold",
        "street-bin-02/fill",
        "street-bin-02",
        "street-001",
        "warning",
        "firing",
        "street-bin-02: fill 91 >= 80",
        91,
        now - 60_000,
        now,
    )
    service.store.record([fired], [])
    r = http.get("/alerts", headers={**admin, "Accept-Language": "en"})
    assert r.status_code == 200
    assert "street-bin-02: fill 91 &gt;= 80" in r.text
    assert 'action="/alerts/a1/acknowledge"' in r.text
    assert "1 firing, 0 acknowledged, 0 resolved." in r.text
    r = http.post("/alerts/a1/acknowledge", data={"note": "x"}, headers=admin)
    assert (r.status_code, r.headers["location"]) == (303, "/alerts?error=engine")
    r = http.post("/alerts/nope/resolve", headers=admin)
    assert r.headers["location"] == "/alerts?error=gone"
    r = http.post("/alerts/a1/acknowledge")  # nobody signed in
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert service.alert("a1").state == "firing"
    page = http.get("/alerts?error=engine&done=<b>", headers={**admin, "Accept-Language": "en"})
    assert "alert engine does not answer" in page.text and "<b>" not in page.text


# -- sessions, roles and forms ---------------------------------------------------------------


def test_reader_signs_in_and_cannot_open_fleet_pages(
    http: TestClient, registry: fleet.Fleet
) -> None:
    sign_in(http, registry, "rita", "reader")
    assert http.get("/").headers["location"] == "/map"
    for path in ("/fleet", "/gateways/x", "/alerts"):
        r = http.get(path, headers={"Accept-Language": "en"})
        assert r.status_code == 403, path
        assert "Your account cannot open this page." in r.text
    assert http.get("/numeriscore").status_code in (200, 503)
    assert http.get("/login").status_code == 303  # signed in already


def test_wrong_password_and_stale_form_say_so(http: TestClient, registry: fleet.Fleet) -> None:
    registry.accounts.add_user("ada", "admin", "test", password=PASSWORD)
    form = http.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    r = http.post(
        "/login", data={"username": "ada", "password": "nope", "csrf_token": token.group(1)}
    )
    assert r.headers["location"] == "/login?error=credentials"
    page = http.get(r.headers["location"], headers={"Accept-Language": "en"})
    assert "Wrong user name or password." in page.text
    r = http.post("/login", data={"username": "ada", "password": PASSWORD, "csrf_token": "forged"})
    assert r.headers["location"] == "/login?error=csrf"
    assert "error=<script>" not in http.get("/login?error=<script>").text


def test_commands_from_the_gateway_page(
    http: TestClient, storage: Storage, registry: fleet.Fleet
) -> None:
    gid, _ = enroll_directly(registry, "marina")
    other, _ = enroll_directly(registry, "street")
    csrf = sign_in(http, registry, "tom", "technician", groups=("marina",))
    page = http.get(f"/gateways/{gid}")
    assert page.status_code == 200
    assert f'action="/gateways/{gid}/commands"' in page.text
    # without the session's CSRF token hub.auth refuses before anything is sent
    assert http.post(f"/gateways/{gid}/commands", data={"name": "flush"}).status_code == 403
    before = len(registry.pending())
    r = http.post(f"/gateways/{gid}/commands", data={"name": "flush", "csrf_token": csrf})
    assert (r.status_code, r.headers["location"]) == (303, f"/gateways/{gid}?sent=flush&seq=1")
    assert len(registry.pending()) == before + 1
    entry = registry.audit(1, target=gid)[-1]
    assert (entry.actor, entry.action) == ("tom", "cmd.flush")
    assert (
        "Command “Send what is waiting now” sent (no. 1)."
        in http.get(r.headers["location"], headers={"Accept-Language": "en"}).text
    )
    # not his group: no form, and a forged post is refused
    theirs = http.get(f"/gateways/{other}", headers={"Accept-Language": "en"}).text
    assert "cannot send commands to this gateway" in theirs
    assert f'action="/gateways/{other}/commands"' not in theirs
    r = http.post(f"/gateways/{other}/commands", data={"name": "reboot", "csrf_token": csrf})
    assert r.status_code == 403
    r = http.post(f"/gateways/{gid}/commands", data={"name": "rm -rf", "csrf_token": csrf})
    assert r.headers["location"].endswith("command_error=unknown")
    assert len(registry.pending()) == before + 1
    # logging out (the button on every page) needs the session's CSRF token too
    assert http.post("/logout").status_code == 403
    assert http.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert http.get("/").headers["location"] == "/open-data"


# -- numériscore -----------------------------------------------------------------------------


async def test_numeriscore_page_shows_the_books_to_everyone(
    tmp_path: Path, storage: Storage, http: TestClient
) -> None:
    from hub.numeriscore import Numeriscore, NumeriscoreSettings, NumeriscoreTracker
    from hub.storage import StorageThread

    settings = NumeriscoreSettings()
    books = NumeriscoreTracker(
        StorageThread(open_storage(f"sqlite:///{tmp_path}/hub.sqlite3", tmp_path)), settings
    )
    await books.thread.call(books.load, books.thread.storage)
    for i, (sent, flash) in enumerate(((1000, 4000), (3000, 8000))):
        books.state(
            "gw-1",
            GatewayState(
                True,
                1,
                i,
                footprint={
                    "bytes_sent": sent,
                    "flash_write_bytes": flash,
                    "cpu_s": 1.0 + i / 10,
                    "uptime_s": 100.0 + 600 * i,
                },
            ),
            True,
        )
    books.committed([batch("gw-1", 1, [(SOIL, i, float(i)) for i in range(500)])], 0.01)
    books.close()

    http.app.state.numeriscore = Numeriscore(storage, settings)  # type: ignore[attr-defined]
    r = http.get("/numeriscore", headers={"Accept-Language": "en"})  # a visitor: published
    assert r.status_code == 200, r.text
    assert "gateway gw-1" in r.text
    assert "Bytes sent per reading" in r.text
    # 2000 bytes sent for 500 readings: 4 B per reading, grade A (docs/numeriscore.md)
    assert '<td class="num">4 <span class="grade grade-A">A</span></td>' in r.text
    assert "comparison: ThingsBoard IoT Gateway" in r.text
    assert 'href="/api/v1/numeriscore.csv"' in r.text


def test_map_tiles_only_when_configured() -> None:
    from hub.dashboard._svgmap import Place, check_tiles, draw, tile_origin

    places = [Place("a", 5.3663, 43.2951, "x"), Place("b", 5.3777, 43.2897, "y")]
    assert draw(places, "fr").tiles == []  # by default: no tile, no third-party server
    template = "https://tiles.example:8443/osm/{z}/{x}/{y}.png"
    picture = draw(places, "fr", check_tiles(template))
    assert 1 <= len(picture.tiles) <= 64
    z = {t.href.split("/")[4] for t in picture.tiles}
    assert len(z) == 1 and 14 <= int(z.pop()) <= 17  # a street-level zoom for ~1 km
    # the tiles cover the whole picture, and each sits where the projection puts it
    assert min(t.x for t in picture.tiles) <= 0 and min(t.y for t in picture.tiles) <= 0
    assert max(t.x + t.size for t in picture.tiles) >= picture.width
    assert max(t.y + t.size for t in picture.tiles) >= picture.height
    assert tile_origin(template) == "https://tiles.example:8443"
    for bad in ("ftp://x/{z}/{x}/{y}", "https://x/{z}/{x}.png", "/{z}/{x}/{y}"):
        with pytest.raises(ValueError):
            check_tiles(bad)


def test_map_page_allows_the_tile_server_in_its_csp(http: TestClient) -> None:
    r = http.get("/map")
    assert "tiles.example" not in r.headers["content-security-policy"]
    http.app.state.map_tiles = "https://tiles.example/{z}/{x}/{y}.png"  # type: ignore[attr-defined]
    r = http.get("/map")
    # no sensor with a position yet: no tile drawn, nothing more allowed
    assert "tiles.example" not in r.headers["content-security-policy"]


# -- the catalogue: open data, the map, who reads which sensor --------------------------------


def catalogue(storage: Storage) -> None:
    """An open dataset (the bins, placed) and a closed one (the meter, placed)."""
    from hub.storage import Dataset, SensorMeta

    now = int(time.time() * 1000)
    storage.put_dataset(Dataset("bins", True, "etalab-2.0", "Bin fill levels", "Voirie"), "t", now)
    storage.put_dataset(Dataset("energy", False, "restricted", "Meters", "Patrimoine"), "t", now)
    for sensor, dataset, lon, lat in (
        ("street-bin-02", "bins", 5.3776, 43.2899),
        ("street-bin-03", "bins", 5.3777, 43.2897),
        ("townhall-linky", "energy", 5.3698, 43.2965),
    ):
        storage.put_sensor_meta(
            SensorMeta(sensor, dataset, (lon, lat), f"site of {sensor}", "", "bin"), "t", now
        )
        storage.ingest(
            [batch("gw-" + sensor, 1, [((sensor, "fill", "%"), now - 1000, 42.0)])], now_ms=now
        )


def test_visitor_reads_open_sensors_only(http: TestClient, storage: Storage) -> None:
    catalogue(storage)
    en = {"Accept-Language": "en"}
    page = http.get("/sensors/street-bin-02", headers=en)
    assert page.status_code == 200
    assert "bins</a> (open)" in page.text and "site of street-bin-02" in page.text
    assert http.get("/sensors/townhall-linky").status_code == 404  # closed: as if unknown
    m = http.get("/map", headers=en)
    assert 'href="/sensors/street-bin-02"' in m.text and "street-bin-03" in m.text
    assert "townhall-linky" not in m.text
    assert "Map of 2 sensors" in m.text
    od = http.get("/open-data", headers=en)
    assert 'href="/open/v1/datasets/bins.csv"' in od.text
    assert (
        'href="https://www.etalab.gouv.fr/licence-ouverte-open-licence/" rel="license"' in od.text
    )
    assert "energy" not in od.text and "Closed datasets" not in od.text
    assert 'href="/sta/v1.1"' in od.text


def test_reader_granted_a_closed_dataset_sees_it(
    http: TestClient, storage: Storage, registry: fleet.Fleet
) -> None:
    catalogue(storage)
    sign_in(http, registry, "eve", "reader", datasets=("energy",))
    en = {"Accept-Language": "en"}
    assert http.get("/sensors/townhall-linky").status_code == 200
    od = http.get("/open-data", headers=en)
    assert "Closed datasets you may read" in od.text and 'id="ds-energy"' in od.text
    assert "Map of 3 sensors" in http.get("/map", headers=en).text


def test_map_with_tiles_allows_exactly_their_origin(http: TestClient, storage: Storage) -> None:
    catalogue(storage)
    http.app.state.map_tiles = "https://tiles.example/{z}/{x}/{y}.png"  # type: ignore[attr-defined]
    http.app.state.map_attribution = "© tiles.example"  # type: ignore[attr-defined]
    r = http.get("/map")
    assert "img-src 'self' data: https://tiles.example;" in r.headers["content-security-policy"]
    assert '<image href="https://tiles.example/' in r.text and "© tiles.example" in r.text
    # the other pages keep the strict policy
    assert "tiles.example" not in http.get("/open-data").headers["content-security-policy"]


def test_fleet_overview_pages_a_large_fleet(
    http: TestClient, storage: Storage, admin: dict[str, str]
) -> None:
    now = int(time.time() * 1000)
    for i in range(230):
        storage.record_state(f"gw-{i:04d}", GatewayState(i % 2 == 0, 1, now), now_ms=now)
    en = {**admin, "Accept-Language": "en"}
    first = http.get("/fleet", headers=en).text
    assert "Page 1 of 3" in first and 'href="/fleet?page=2" rel="next"' in first
    assert first.count('href="/gateways/gw-') == 100
    last = http.get("/fleet?page=3", headers=en).text
    assert last.count('href="/gateways/gw-') == 30 and "gw-0229" in last
    assert "115 online, 115 offline" in last
    # the offline half needs attention: paged too, the links keep the filter
    attention = http.get("/fleet?show=attention&page=2", headers=en).text
    assert "Page 2 of 2" in attention and 'href="/fleet?show=attention&amp;page=1"' in attention
    assert http.get("/fleet?page=0", headers=en).status_code == 422

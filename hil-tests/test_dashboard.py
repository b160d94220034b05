"""The dashboard in a real browser: Playwright driving Debian's Chromium headless against the
hub of `estran demo` (the territory: three gateways, thirteen simulated sensors), as a user
would open it.

Each page is opened, must load without a console error or a failed request, is checked with
axe-core (no serious or critical violation) and photographed into build/screenshots/ (the
test's artefacts; docs/img/ holds the ones the docs show). A chart must draw with data.

Chromium is Debian's (`apt-get install chromium`, done by `make install` / .ci/run), never a
browser downloaded by Playwright. Without it the tests skip, and fail under CI=true.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from estran.rig import estran_argv, free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "build" / "screenshots"
DEMO_S = 900  # the demo stops on its own after this, whatever happens to the test
READY_S = 150.0
SENSORS = 13  # at least: the territory's first thirteen (serial and BLE)
STOP_S = 60.0
PASSWORD = "tide-comes-in-twice"
# seconds of readings before the pages are looked at (docs/img was made with 240)
SETTLE_S = float(os.environ.get("ESTRAN_DASHBOARD_SETTLE_S", "15"))
USERS = {"alice": "admin", "rita": "reader"}
RULES = [
    {
        "id": "townhall-power",
        "kind": "threshold",
        "scope": {"sensor": "townhall-linky"},
        "params": {"quantity": "apparent_power", "op": ">=", "value": 100},
        "severity": "warning",
        "description": "The town hall draws more than 100 VA",
    },
    {
        "id": "bin-03-distance",
        "kind": "threshold",
        "scope": {"sensor": "street-bin-03"},
        "params": {"quantity": "distance", "op": ">=", "value": 0},
        "severity": "critical",
        "description": "Every distance of street-bin-03 (a rule to see one firing)",
    },
]


@dataclass
class Territory:
    url: str
    data: Path
    admin_credential: str
    log: Path


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=3) as response:
        body: bytes = response.read()
        return body


def _post(url: str, body: object, credential: str) -> object:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {credential}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def _get_with(url: str, credential: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {credential}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        body: bytes = response.read()
        return body


def _admin_credential(hub_log: Path) -> str:
    lines = hub_log.read_text(errors="replace").splitlines()
    for i, line in enumerate(lines):
        if "fleet admin credential" in line and i + 1 < len(lines):
            return lines[i + 1].strip()
    raise AssertionError(f"no admin credential in {hub_log}")


@pytest.fixture(scope="module")
def territory() -> Iterator[Territory]:
    """`estran demo` running (its data kept in a short temporary directory: the gateways'
    status sockets must fit in 107 bytes), with readings of every sensor at the hub."""
    root = Path(tempfile.mkdtemp(prefix="estran-d-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / "demo.out"
    out = log.open("w")
    proc = subprocess.Popen(
        estran_argv(
            "demo",
            "--duration",
            str(DEMO_S),
            "--http",
            f"127.0.0.1:{port}",
            "--data",
            str(root / "d"),
        ),
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "120"},
    )
    try:
        deadline = time.monotonic() + READY_S
        sensors: set[str] = set()
        credential = ""
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(OSError, ValueError, urllib.error.URLError, AssertionError):
                credential = credential or _admin_credential(root / "d" / "logs" / "hub.log")
                rows = json.loads(_get_with(url + "/api/v1/sensors", credential))
                sensors = {row["sensor"] for row in rows}
            if len(sensors) >= SENSORS:
                break
            time.sleep(1.0)
        assert len(sensors) >= SENSORS, f"{sorted(sensors)}\n{log.read_text()}"
        time.sleep(SETTLE_S)  # a few more readings: the charts need more than one point
        for name, role in USERS.items():  # as the territory's admin makes them
            subprocess.run(
                estran_argv(
                    "hub",
                    "user",
                    "--data",
                    str(root / "d" / "hub"),
                    "add",
                    name,
                    "--role",
                    role,
                    "--password",
                ),
                input=PASSWORD + "\n",
                text=True,
                check=True,
                capture_output=True,
                timeout=60,
            )
        for rule in RULES:  # what an admin would set up: alerts to look at
            _post(url + "/api/v1/alert-rules", rule, credential)
        yield Territory(url, root / "d", credential, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        out.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} missing: apt-get install -y chromium (make install does it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Visit:
    page: Any
    status: int
    problems: list[str] = field(default_factory=list)


def visit(context: Any, url: str, shot: str | None = None) -> Visit:
    """Open `url`; every console error, page error and failed request is a problem."""
    page = context.new_page()
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    response = page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    if shot is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)
    return Visit(page, response.status if response is not None else 0, problems)


def axe_violations(context: Any, url: str) -> list[str]:
    """axe-core's serious and critical violations of the page at `url`. `context` must be
    made with bypass_csp=True: the page's CSP lets only its own scripts run."""
    axe = (resources.files("axe_playwright_python") / "axe.min.js").read_text()
    page = context.new_page()
    try:
        page.goto(url, wait_until="networkidle")
        page.add_script_tag(content=axe)
        result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    finally:
        page.close()
    return [
        f"{v['impact']} {v['id']}: {v['help']} ({len(v['nodes'])}x: {v['nodes'][0]['target']})"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


_sessions: dict[tuple[str, str], Any] = {}


def signed_in(
    browser: Any, t: Territory, user: str, password: str = PASSWORD, **options: Any
) -> Any:
    """A browser context signed in as `user`: through the login form, as a person does, the
    first time; then with the same session cookie."""
    state = _sessions.get((t.url, user))
    if state is None:
        context = browser.new_context()
        page = context.new_page()
        page.goto(t.url + "/login", wait_until="load")
        page.locator("#username").fill(user)
        page.locator("#password").fill(password)
        page.locator("form.login button[type=submit]").click()
        page.wait_for_load_state("load")
        assert "/login" not in page.url, page.url
        state = _sessions[(t.url, user)] = context.storage_state()
        context.close()
    return browser.new_context(storage_state=state, **options)


ADMIN_PAGES = [
    ("/fleet", "fleet"),
    ("/gateways/townhall-001", "gateway"),
    ("/sensors/townhall-sdm630?range=1h&quantity=total_active_power", "sensor"),
    ("/alerts", "alerts"),
    ("/map", "map"),
    ("/open-data", "open-data"),
    ("/numeriscore", "numeriscore"),
]


@pytest.mark.parametrize(("path", "name"), ADMIN_PAGES, ids=[n for _, n in ADMIN_PAGES])
def test_page_loads_cleanly_and_passes_axe(
    territory: Territory, browser: Any, path: str, name: str
) -> None:
    context = signed_in(browser, territory, "alice", viewport={"width": 1280, "height": 900})
    try:
        v = visit(context, territory.url + path, shot=name)
        assert v.status in (200, 503), (path, v.status)
        assert not v.problems, v.problems
        assert v.page.locator("h1").count() == 1
        assert v.page.get_attribute("html", "lang") in ("fr", "en")
    finally:
        context.close()
    context = signed_in(browser, territory, "alice", bypass_csp=True)
    try:
        violations = axe_violations(context, territory.url + path)
    finally:
        context.close()
    assert not violations, "\n".join(violations)


def test_chart_draws_the_readings(territory: Territory, browser: Any) -> None:
    context = signed_in(browser, territory, "alice")
    try:
        v = visit(context, territory.url + "/sensors/street-bin-02?range=1h&quantity=distance")
        assert not v.problems, v.problems
        chart = v.page.locator("#chart[data-points]")
        chart.wait_for(timeout=5000)
        assert int(chart.get_attribute("data-points") or 0) >= 2
        canvas = v.page.locator("#chart canvas")
        assert canvas.count() == 1
        # something was drawn: the canvas is not one flat colour
        colours = v.page.evaluate(
            """() => { const c = document.querySelector('#chart canvas');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                const seen = new Set(); for (let i = 0; i < d.length; i += 4 * 97) seen.add(d[i] + ',' + d[i+1] + ',' + d[i+2] + ',' + d[i+3]);
                return seen.size; }"""
        )
        assert colours > 3, colours
        # and the table beside it holds the same points, for readers without the chart
        rows = v.page.locator("details table tbody tr").count()
        assert rows == int(chart.get_attribute("data-points") or 0)
    finally:
        context.close()


def test_reader_cannot_open_fleet_pages(territory: Territory, browser: Any) -> None:
    context = signed_in(browser, territory, "rita", locale="en-GB")
    try:
        home = visit(context, territory.url + "/")
        assert not home.problems, home.problems
        nav = home.page.locator("nav").inner_text()
        assert "Gateways" not in nav and "Alerts" not in nav, nav
        for path in ("/fleet", "/gateways/townhall-001", "/alerts"):
            v = visit(
                context, territory.url + path, shot="reader-refused" if path == "/fleet" else None
            )
            assert v.status == 403, (path, v.status)
            assert "Your account cannot open this page." in v.page.locator("main").inner_text()
        # nor act by posting a form (no session CSRF token to give: refused before anything)
        response = context.request.post(
            territory.url + "/gateways/townhall-001/commands", form={"name": "reboot"}
        )
        assert response.status == 403
    finally:
        context.close()


def test_anonymous_visitor_sees_only_open_data(territory: Territory, browser: Any) -> None:
    context = browser.new_context()
    try:
        v = visit(context, territory.url + "/", shot="anonymous-home")
        assert v.page.url.endswith("/open-data"), v.page.url
        assert not v.problems, v.problems
        nav = v.page.locator("nav").inner_text()
        assert "Passerelles" not in nav and "Gateways" not in nav
        for path in ("/fleet", "/gateways/townhall-001", "/alerts"):
            page = visit(context, territory.url + path).page
            assert "/login" in page.url, (path, page.url)
        login = visit(context, territory.url + "/login?next=/fleet", shot="login")
        assert not login.problems, login.problems
        # the map shows the open sensors; following one leads to its page and its chart
        m = visit(context, territory.url + "/map", shot="map-visitor")
        assert not m.problems, m.problems
        dots = m.page.locator("svg a")
        assert dots.count() >= 3, m.page.content()
        assert m.page.locator("svg a[href='/sensors/townhall-linky']").count() == 0  # closed
        dots.first.click()
        m.page.wait_for_load_state("load")
        assert "/sensors/" in m.page.url and m.page.locator("h1").count() == 1
    finally:
        context.close()
    context = browser.new_context(bypass_csp=True)
    try:
        for path in ("/login", "/open-data", "/map", "/numeriscore"):
            violations = axe_violations(context, territory.url + path)
            assert not violations, (path, violations)
    finally:
        context.close()


def test_language_follows_the_browser_and_the_switch(territory: Territory, browser: Any) -> None:
    context = signed_in(browser, territory, "alice", locale="en-GB")
    try:
        page = visit(context, territory.url + "/fleet").page
        assert page.get_attribute("html", "lang") == "en"
        assert page.locator("h1").inner_text() == "Gateways"
        page.get_by_role("link", name="Français").click()
        page.wait_for_load_state("load")
        assert page.get_attribute("html", "lang") == "fr"
        assert page.locator("h1").inner_text() == "Passerelles"
        assert page.url.endswith("/fleet")
    finally:
        context.close()


def test_keyboard_reaches_the_content_first(territory: Territory, browser: Any) -> None:
    context = signed_in(browser, territory, "alice")
    try:
        page = visit(context, territory.url + "/fleet").page
        page.keyboard.press("Tab")
        focused = page.evaluate("() => document.activeElement.getAttribute('href')")
        assert focused == "#main"
        page.keyboard.press("Enter")
        assert page.evaluate("() => document.activeElement.id") == "main"
    finally:
        context.close()


def test_axe_check_can_fail(browser: Any) -> None:
    """The accessibility check above is a real one: a page without a language, with an image
    without text and a button without a name is caught."""
    bad = "data:text/html,<title>x</title><img src='data:,'><button></button>"
    context = browser.new_context(bypass_csp=True)
    try:
        violations = "\n".join(axe_violations(context, bad))
    finally:
        context.close()
    for rule in ("html-has-lang", "image-alt", "button-name"):
        assert rule in violations, violations


def test_admin_acknowledges_an_alert(territory: Territory, browser: Any) -> None:
    context = signed_in(browser, territory, "alice")
    try:
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        row = page.locator("#h-firing ~ div tr", has_text="townhall-linky")
        deadline = time.monotonic() + 60
        while True:  # the rule fires on the next readings of the Linky
            page.goto(territory.url + "/alerts", wait_until="load")
            if row.count() or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert row.count() == 1, page.content()
        row.get_by_label("Note").first.fill("checked on site")
        row.get_by_role("button", name=re.compile("Acknowledge|Je m'en occupe")).click()
        page.wait_for_load_state("load")
        assert page.locator("[role=status]").count() == 1
        acked = page.locator("#h-acknowledged ~ div tr", has_text="townhall-linky")
        assert acked.count() == 1
        assert "alice" in acked.inner_text()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "alerts-acknowledged.png"), full_page=True)
        assert not problems, problems
    finally:
        context.close()
    # the hub says so too, with who and the note
    alerts = json.loads(
        _get_with(territory.url + "/api/v1/alerts?state=acknowledged", territory.admin_credential)
    )
    mine = [a for a in alerts["alerts"] if a["sensor"] == "townhall-linky"]
    assert mine and mine[0]["ack_by"] == "alice", alerts


def test_the_demo_login_it_prints_works(territory: Territory, browser: Any) -> None:
    """`make demo` prints the dashboard's address and a login: a newcomer signs in with it."""
    printed = re.search(
        r"dashboard +(http://\S+/) +\(in a browser; sign in as (\S+), password (\S+)\)",
        territory.log.read_text(),
    )
    assert printed is not None, territory.log.read_text()
    url, user, password = printed.groups()
    assert url == territory.url + "/"
    context = signed_in(browser, territory, user, password, locale="en-GB")
    try:
        v = visit(context, url)
        assert v.page.url.endswith("/fleet"), v.page.url  # a technician's first page
        assert "Signed in: demo (technician)" in v.page.locator("header").inner_text()
        gateway = visit(context, territory.url + "/gateways/townhall-001").page
        assert gateway.get_by_role("button", name="Send what is waiting now").count() == 1
    finally:
        context.close()

"""Users, roles, API tokens and browser sessions, through the HTTP interface and the CLI."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from fleet import Fleet
from hub._api import create_app
from hub.cli import hub as hub_cli
from hub.fleet_api import FleetHub
from hub.storage import open_storage


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


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
    with TestClient(app, base_url="http://hub") as client:
        yield client
    storage.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def cli(tmp_path: Path, *args: str, input: str | None = None) -> str:
    result = CliRunner().invoke(hub_cli, list(args), input=input, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_first_admin_is_a_user_with_a_token(fleet_hub: FleetHub, http: TestClient) -> None:
    token = fleet_hub.new_admin_credential
    assert token is not None and token.startswith("eat1.")
    r = http.get("/api/v1/session", headers=bearer(token))
    assert r.json()["user"] == "admin" and r.json()["role"] == "admin"
    users = http.get("/api/v1/users", headers=bearer(token)).json()
    assert [u["name"] for u in users] == ["admin"]
    # a registry keeps no secret in clear
    raw = (fleet_hub.fleet.directory / "fleet.sqlite").read_bytes()
    assert token.split(".")[2].encode() not in raw


def test_roles_decide(fleet_hub: FleetHub, http: TestClient) -> None:
    admin = bearer(fleet_hub.new_admin_credential or "")
    for name, role in (("tess", "technician"), ("rita", "reader")):
        r = http.post("/api/v1/users", json={"name": name, "role": role}, headers=admin)
        assert r.status_code == 201, r.text
    tech = bearer(http.post("/api/v1/tokens", json={"user": "tess"}, headers=admin).json()["token"])
    reader = bearer(
        http.post("/api/v1/tokens", json={"user": "rita"}, headers=admin).json()["token"]
    )
    # anonymous: 401 with a challenge; reader: 403; staff: 200
    r = http.get("/api/v1/gateways")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert http.get("/api/v1/gateways", headers=reader).status_code == 403
    assert http.get("/api/v1/gateways", headers=tech).status_code == 200
    assert http.get("/api/v1/fleet/gateways", headers=tech).status_code == 200
    # a technician cannot manage users, nor read the audit
    r = http.post("/api/v1/users", json={"name": "eve", "role": "admin"}, headers=tech)
    assert r.status_code == 403
    assert http.get("/api/v1/users", headers=tech).status_code == 403
    assert http.delete("/api/v1/users/admin", headers=tech).status_code == 403
    assert http.get("/api/v1/audit", headers=tech).status_code == 403
    # nor issue a token for someone else; a reader's own token is read-only
    r = http.post("/api/v1/tokens", json={"user": "admin"}, headers=tech)
    assert r.status_code == 403
    r = http.post("/api/v1/tokens", json={"scopes": ["write"]}, headers=reader)
    assert r.status_code == 403
    # the audit says who did what, from where
    entries = http.get("/api/v1/audit", params={"action": "user."}, headers=admin).json()
    added = [(e["actor"], e["action"], e["target"]) for e in entries["entries"]]
    assert ("admin", "user.add", "tess") in added and ("admin", "user.add", "rita") in added
    assert all(e["remote"] == "testclient" for e in entries["entries"] if e["actor"] == "admin")


def test_expired_and_revoked_tokens_are_refused(tmp_path: Path) -> None:
    clock = Clock()
    registry = Fleet(tmp_path, clock=clock)
    accounts = registry.accounts
    accounts.add_user("rita", "reader", "test")
    short = accounts.create_token("rita", "test", ttl_s=60).token
    revoked = accounts.create_token("rita", "test")
    storage = open_storage("sqlite", tmp_path)
    from hub.auth import Access

    access = Access(registry)
    client = TestClient(create_app(storage, access=access), base_url="http://hub")
    assert client.get("/api/v1/session", headers=bearer(short)).json()["user"] == "rita"
    assert client.get("/api/v1/session", headers=bearer(revoked.token)).status_code == 200
    accounts.revoke_token(revoked.info.id, "test")
    clock.t += 61
    for token in (short, revoked.token, "eat1.000000000000.nope", "garbage"):
        r = client.get("/api/v1/session", headers=bearer(token))
        assert r.status_code == 401, token
        assert "rita" not in r.text
    assert access.stats.failures["expired"] == 1 and access.stats.failures["revoked"] == 1
    # last use recorded, with where from
    t = accounts.token(revoked.info.id)
    assert t.used_ms is not None and t.used_from == "testclient"
    storage.close()
    registry.close()


def test_failed_authentication_is_rate_limited(fleet_hub: FleetHub, http: TestClient) -> None:
    for _ in range(fleet_hub.access.settings.failures_per_window):
        assert http.get("/api/v1/session", headers=bearer("eat1.0123456789ab.x")).status_code == 401
    r = http.get("/api/v1/session", headers=bearer(fleet_hub.new_admin_credential or ""))
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert fleet_hub.access.stats.limited == 1
    # anonymous reads are not locked out
    assert http.get("/api/v1/health").status_code == 200


def login(http: TestClient, user: str, password: str) -> str:
    """Log in as a browser does; the session's CSRF token."""
    csrf = http.get("/api/v1/session").json()["login_csrf_token"]
    r = http.post(
        "/login",
        data={"username": user, "password": password, "csrf_token": csrf, "next": "/fleet"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/fleet", r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    return str(http.get("/api/v1/session").json()["csrf_token"])


def test_browser_session_and_csrf(fleet_hub: FleetHub, http: TestClient) -> None:
    fleet_hub.fleet.accounts.add_user("bob", "technician", "test", password="correct horse battery")
    # the login form itself is CSRF-protected (double submit)
    r = http.post(
        "/login",
        data={"username": "bob", "password": "correct horse battery"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "error=csrf" in r.headers["location"]
    csrf = login(http, "bob", "correct horse battery")
    assert http.get("/api/v1/session").json()["user"] == "bob"
    assert http.get("/api/v1/gateways").status_code == 200
    # a state-changing request without the token: refused; with it: done
    assert http.post("/logout", follow_redirects=False).status_code == 403
    r = http.post("/logout", data={"csrf_token": "wrong"}, follow_redirects=False)
    assert r.status_code == 403
    assert fleet_hub.access.stats.csrf_refused >= 2
    r = http.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert http.get("/api/v1/session").json()["user"] is None
    # a wrong password: back to the form, counted
    fresh = http.get("/api/v1/session").json()["login_csrf_token"]
    r = http.post(
        "/login",
        data={"username": "bob", "password": "wrong password!", "csrf_token": fresh},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "error=credentials" in r.headers["location"]
    assert fleet_hub.access.stats.failures["password"] == 1
    # an open redirect is not offered
    r = http.post(
        "/login",
        data={
            "username": "bob",
            "password": "correct horse battery",
            "csrf_token": fresh,
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_a_reader_logs_out_too(fleet_hub: FleetHub, http: TestClient) -> None:
    """A reader's session holds only the read scope; ending it is not a write (it used to be
    refused with 403 "lacks the write scope"). Its CSRF token is still required."""
    fleet_hub.fleet.accounts.add_user("rita", "reader", "test", password="correct horse battery")
    csrf = login(http, "rita", "correct horse battery")
    assert http.post("/api/v1/tokens", json={}).status_code == 403  # still read-only
    assert http.post("/logout", follow_redirects=False).status_code == 403  # no CSRF token
    r = http.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303
    assert http.get("/api/v1/session").json()["user"] is None


def test_cli_users_tokens_and_admin_reset(tmp_path: Path) -> None:
    data = str(tmp_path)
    out = cli(
        tmp_path, "user", "--data", data, "add", "rita", "--role", "reader", "--dataset", "water"
    )
    assert "rita added" in out
    out = cli(
        tmp_path,
        "user",
        "--data",
        data,
        "add",
        "bob",
        "--role",
        "technician",
        "--password",
        input="long enough pw\n",
    )
    listed = json.loads(cli(tmp_path, "user", "--data", data, "list", "--json"))
    assert {(u["name"], u["role"], u["has_password"]) for u in listed} == {
        ("rita", "reader", False),
        ("bob", "technician", True),
    }
    token = cli(tmp_path, "token", "--data", data, "create", "rita", "--ttl", "1d").split()[0]
    assert re.fullmatch(r"eat1\.[0-9a-f]{12}\.[\w-]{43}", token)
    tokens = json.loads(cli(tmp_path, "token", "--data", data, "list", "--json"))
    assert tokens[0]["scopes"] == ["read"] and tokens[0]["state"] == "active"
    cli(tmp_path, "token", "--data", data, "revoke", tokens[0]["id"])
    tokens = json.loads(cli(tmp_path, "token", "--data", data, "list", "--json"))
    assert tokens[0]["state"] == "revoked"
    # a lost admin credential: reset on the hub's machine
    new = cli(tmp_path, "admin-reset", "--data", data).split()[0]
    with Fleet(tmp_path) as f:
        assert f.check_admin(new)
        assert [e.action for e in f.audit(1)] == ["token.create"]
        assert "admin.reset" in [e.action for e in f.audit(5)]
    again = cli(tmp_path, "admin-reset", "--data", data).split()[0]
    with Fleet(tmp_path) as f:
        assert f.check_admin(again) and not f.check_admin(new)
    # the last admin stays
    result = CliRunner().invoke(hub_cli, ["user", "--data", data, "remove", "admin"])
    assert result.exit_code != 0 and "last admin" in result.output


def test_first_release_admin_credential_becomes_a_token(tmp_path: Path) -> None:
    legacy = "ea1." + "x" * 43
    with Fleet(tmp_path) as f:
        f._db.execute(
            "INSERT INTO meta (k, v) VALUES ('admin_hash', ?)",
            (hashlib.sha256(legacy.encode()).hexdigest(),),
        )
        f._db.execute("DELETE FROM users")
    again = FleetHub(tmp_path)
    assert again.new_admin_credential is None
    assert again.fleet.check_admin(legacy)
    assert [t.id for t in again.fleet.accounts.tokens("admin")] == ["legacy-admin"]
    again.close()

"""The fleet in the hub: HTTP enrollment and admin endpoints, publishing and reports."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import aiomqtt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient

import fleet
from fleet import SourceState
from fleet.cli import fleet as fleet_cli
from hub._mqtt import BrokerAddress
from hub.fleet_api import FleetHub
from hub.tests.fleet_support import enroll_directly
from hub.tests.services import free_port
from hub.tests.test_acl import broker_with, client, next_message
from protocols import signed, wire


@pytest.fixture
def hub(tmp_path: Path) -> FleetHub:
    return FleetHub(tmp_path, broker_url="mqtt://hub.example:1883")


@pytest.fixture
def http(hub: FleetHub) -> TestClient:
    app = FastAPI()
    hub.access.install(app)
    app.include_router(hub.router())
    return TestClient(app)


def admin(hub: FleetHub) -> dict[str, str]:
    assert hub.new_admin_credential is not None
    return {"Authorization": f"Bearer {hub.new_admin_credential}"}


def http_enroll(http: TestClient, token: str) -> tuple[int, dict[str, object]]:
    r = http.post("/api/v1/enroll/challenge", json={"token": token})
    if r.status_code != 200:
        return r.status_code, r.json()
    nonce = r.json()["nonce"]
    key = Ed25519PrivateKey.generate()
    pub = fleet.raw_public(key)
    tid = fleet.parse_token(token)[0]
    proof = key.sign(
        signed.signing_input(signed.CONTEXT_ENROLL, fleet.enroll_proof_payload(tid, nonce, pub))
    )
    r = http.post(
        "/api/v1/enroll",
        json={
            "token": token,
            "public_key": base64.b64encode(pub).decode(),
            "nonce": nonce,
            "proof": base64.b64encode(proof).decode(),
        },
    )
    return r.status_code, r.json()


def test_admin_credential_made_once(tmp_path: Path) -> None:
    first = FleetHub(tmp_path)
    assert first.new_admin_credential is not None
    first.close()
    again = FleetHub(tmp_path)
    assert again.new_admin_credential is None
    assert again.fleet.check_admin(first.new_admin_credential)


def test_enrollment_over_http(hub: FleetHub, http: TestClient) -> None:
    r = http.post("/api/v1/fleet/tokens", json={"group": "marina"}, headers=admin(hub))
    assert r.status_code == 404 and "estran fleet group create" in r.json()["detail"]
    hub.fleet.create_group("marina", "alice")
    r = http.post(
        "/api/v1/fleet/tokens", json={"group": "marina", "ttl_s": 600}, headers=admin(hub)
    )
    assert r.status_code == 200
    token = r.json()["token"]
    status, body = http_enroll(http, token)
    assert status == 200, body
    answer = signed.decode_signed(base64.b64decode(str(body["answer"]))).document()
    assert answer["gateway"] == "marina-001" and answer["broker"] == "mqtt://hub.example:1883"
    # its broker account at once, before any watch round (the embedded broker's access)
    assert hub.broker_access.access.role("marina-001") == "gateway"
    assert hub.broker_access.access.role(hub.credentials[0]) == "hub"  # the others kept
    assert http.get("/api/v1/fleet/identity").json()["fingerprint"] == token.split(".")[3]
    status, body = http_enroll(http, token)
    assert status == 403 and "used already" in str(body["detail"])


def test_expired_and_unknown_tokens(hub: FleetHub, http: TestClient) -> None:
    hub.fleet.create_group("marina", "alice")
    status, body = http_enroll(http, "et1.00000000.nope." + hub.hub_key)
    assert status == 403 and body["detail"] == "unknown enrollment token"
    status, body = http_enroll(http, "nonsense")
    assert status == 403


def test_admin_endpoints(hub: FleetHub, http: TestClient) -> None:
    assert http.get("/api/v1/fleet/gateways").status_code == 401
    assert (
        http.get("/api/v1/fleet/gateways", headers={"Authorization": "Bearer x"}).status_code == 401
    )
    gw, _ = enroll_directly(hub.fleet)
    rows = http.get("/api/v1/fleet/gateways", headers=admin(hub)).json()
    assert [r["id"] for r in rows] == [gw] and rows[0]["drift"] is True
    r = http.put(
        "/api/v1/fleet/config/group?name=marina",
        json={"buffer": {"quota": "lots"}},
        headers=admin(hub),
    )
    assert r.status_code == 422
    assert any(i.startswith("buffer.quota:") for i in r.json()["detail"]["issues"])
    r = http.put(
        "/api/v1/fleet/config/group?name=marina",
        json={"buffer": {"quota": "1 GiB"}},
        headers=admin(hub),
    )
    assert r.status_code == 200 and [g["id"] for g in r.json()["changed"]] == [gw]
    body = http.get(f"/api/v1/fleet/gateways/{gw}/config", headers=admin(hub)).json()
    assert body["drift"] is True and body["applied"] is None
    assert body["changes"] == [
        {"op": "+", "path": "buffer.quota", "applied": None, "desired": "1 GiB"}
    ]
    assert http.get("/api/v1/fleet/groups", headers=admin(hub)).json()[0]["gateways"] == 1
    r = http.post(
        f"/api/v1/fleet/gateways/{gw}/commands", json={"name": "rescan"}, headers=admin(hub)
    )
    assert r.json()["seq"] == 1
    assert http.post(f"/api/v1/fleet/gateways/{gw}/revoke", headers=admin(hub)).status_code == 200
    assert http.post(f"/api/v1/fleet/gateways/{gw}/revoke", headers=admin(hub)).status_code == 409
    audit = http.get("/api/v1/fleet/audit", headers=admin(hub)).json()
    assert [e["action"] for e in audit][-3:] == ["config.set", "cmd.rescan", "gateway.revoke"]


async def test_configs_published_and_reports_recorded(hub: FleetHub) -> None:
    gw, pw = enroll_directly(hub.fleet)
    port = free_port()
    async with broker_with(hub, port) as broker:
        task = asyncio.create_task(hub.run(BrokerAddress("127.0.0.1", port), broker), name="fleet")
        try:
            async with asyncio.timeout(5):
                await hub.connected.wait()
            async with client(port, gw, gw, pw) as g:
                await g.subscribe(wire.topic(gw, "config"), qos=1)
                first = await next_message(g, 3)
                assert first is not None and isinstance(first.payload, bytes)
                # retained: a subscription made after it gets it (the first copy comes live,
                # not flagged retained, when the hub publishes while the subscription is made)
                await g.unsubscribe(wire.topic(gw, "config"))
                await g.subscribe(wire.topic(gw, "config"), qos=1)
                m = await next_message(g, 3)
                assert m is not None and isinstance(m.payload, bytes) and m.retain
                assert m.payload == first.payload
                doc = signed.decode_signed(
                    wire.decode_envelope(m.payload, wire.CONFIG).body
                ).document()
                version = doc["version"]
                assert isinstance(version, int)
                # the admin changes the group: a new version comes, retained
                await asyncio.to_thread(
                    hub.fleet.set_layer,
                    "group",
                    "marina",
                    {"daemon": {"queue_size": 4096}},
                    "alice",
                )
                m = await next_message(g, 3)
                assert m is not None and isinstance(m.payload, bytes)
                doc = signed.decode_signed(
                    wire.decode_envelope(m.payload, wire.CONFIG).body
                ).document()
                assert doc["config"] == {"daemon": {"queue_size": 4096}}
                v2 = doc["version"]
                assert isinstance(v2, int) and v2 > version
                # hostile reports are dropped, the link keeps going
                for junk in (b"\x00", wire.encode_envelope(wire.Envelope.of(wire.REPORT, [1]))):
                    await g.publish(wire.topic(gw, "report"), junk, qos=1)
                sources = [
                    wire.SourceHealth("ble", wire.SOURCE_OK, 1, {}),
                    wire.SourceHealth("linky", wire.SOURCE_DOWN, None, {"timeout": 2}, "no port"),
                ]
                state = wire.State(
                    True, 1, 1, software="0.1.0", sources=sources, restart_pending=["buffer"]
                )
                await g.publish(wire.topic(gw, "state"), wire.encode_state(state), qos=1)
                report = signed.report("config", signed.APPLIED, "changed daemon", v2, v2, 1)
                await g.publish(
                    wire.topic(gw, "report"),
                    wire.encode_envelope(wire.Envelope.of(wire.REPORT, report)),
                    qos=1,
                )
                async with asyncio.timeout(3):
                    while hub.reports == 0:
                        await asyncio.sleep(0.05)
            row = hub.fleet.gateway(gw)
            assert row.software == "0.1.0"
            assert row.applied_version == v2 and not row.drift and row.outcome == "applied"
            # the admin sees the source that is down and the restart the change waits for
            assert row.sources == (
                SourceState("ble", "ok"),
                SourceState("linky", "down", "no port"),
            )
            assert row.restart_pending == ("buffer",)
            out = (
                CliRunner()
                .invoke(fleet_cli, ["--data", str(hub.fleet.directory.parent), "gateways"])
                .output
            )
            line = next(line for line in out.splitlines() if line.startswith(gw))
            assert "applied, restart pending (buffer)" in line
            assert "sources 1/2 ok; linky down (no port)" in line
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert isinstance(aiomqtt.__version__, str)


def test_enrollment_endpoints_are_rate_limited(hub: FleetHub, http: TestClient) -> None:
    hub.enroll_limit.per_minute = 5
    codes = [
        http.post("/api/v1/enroll/challenge", json={"token": "nonsense"}).status_code
        for _ in range(7)
    ]
    assert codes == [403] * 5 + [429] * 2


def test_rate_limit_window_and_bound() -> None:
    from hub.fleet_api import RateLimit

    limit = RateLimit(per_minute=2, max_clients=2)
    assert limit.allow("a", 0) and limit.allow("a", 1) and not limit.allow("a", 2)
    assert limit.allow("a", 61)  # the first hit left the window
    limit.allow("b", 61)
    limit.allow("c", 61)
    assert list(limit._hits) == ["b", "c"]  # the table stays bounded


def test_the_config_json_schema_is_published(hub: FleetHub, http: TestClient) -> None:
    """The schema the hub validates with, as JSON Schema, without logging in; what it refuses
    a PUT refuses too, naming the field."""
    from protocols import settings

    r = http.get("/api/v1/fleet/config/schema")
    assert r.status_code == 200 and r.json() == settings.json_schema(hub=True)
    assert "broker" not in r.json()["properties"]["uplink"]["properties"]  # the gateway's own
    gateway = http.get("/api/v1/fleet/config/schema?target=gateway").json()
    assert "broker" in gateway["properties"]["uplink"]["properties"]
    assert "apply" not in gateway["properties"]
    assert http.get("/api/v1/fleet/config/schema?target=x").status_code == 422
    hub.fleet.create_group("marina", "alice")
    r = http.put(
        "/api/v1/fleet/config/group?name=marina",
        json={"buffer": {"commit_interval": 120}},
        headers=admin(hub),
    )
    assert r.status_code == 422
    assert r.json()["detail"]["issues"] == [
        "buffer.commit_interval: must be 0.01..60 seconds, got 120"
    ]


async def test_mosquitto_files_are_rewritten_only_when_accounts_change(tmp_path: Path) -> None:
    """Every report moves the registry's revision; the broker's accounts are derived from
    it again only when they changed (a push's thousand reports rebuilt the passwd and acl
    of a thousand gateways twice a second), and an enrollment or a revocation still
    reaches Mosquitto's files."""
    mq = tmp_path / "mosquitto"
    hub = FleetHub(tmp_path / "hub", mosquitto_dir=mq)
    try:
        gw, _ = enroll_directly(hub.fleet)
        assert await hub.refresh()
        passwd = mq / "passwd"
        assert gw in passwd.read_text()
        written = passwd.stat().st_mtime_ns
        v = hub.fleet.desired(gw)[0]
        hub.fleet.record_report(gw, signed.report("config", signed.APPLIED, "", v, v, 1))
        access = hub.broker_access.access
        assert await hub.refresh()  # the revision moved, the accounts did not
        assert hub.broker_access.access is access  # not rebuilt
        assert passwd.stat().st_mtime_ns == written
        other, _ = enroll_directly(hub.fleet)
        assert await hub.refresh()
        assert other in passwd.read_text()
        assert hub.broker_access.access.role(other) == "gateway"
        hub.fleet.revoke(gw, "test")
        assert await hub.refresh()
        assert gw not in passwd.read_text()
        assert hub.broker_access.access.role(gw) is None
    finally:
        hub.close()

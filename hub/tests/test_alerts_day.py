"""A day of the territory through the real hub, in compressed time: the reference workload
(200 sensors) plus two water meters, with a bin filling up, a night leak (and the meter's own
leak flag) and a soil probe going silent. Exactly the expected alerts fire, each once, and
each reaches a real HTTP server (webhook, signature checked), the MQTT broker and an SMTP
server (aiosmtpd). Everything goes through the public interfaces: MQTT in, HTTP API and CLI
for the rules and channels, the receivers out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
from aiosmtpd.controller import Controller
from click.testing import CliRunner

from fleet import Fleet
from hub._service import Hub, HubConfig
from hub.alerts import AlertSettings, DeliverySettings, verify
from hub.cli import hub as hub_cli
from hub.tests.fleet_support import enroll_directly
from hub.tests.services import free_port, running_hub_task
from protocols import wire
from protocols.block import encode_block
from protocols.reading import Reading
from protocols.tests.block_support import reference_readings

T0 = 1_764_547_200_000  # 2025-12-01T00:00:00Z, 01:00 in Paris
HOUR = 3_600_000
SECRET = "a-webhook-secret-of-some-length"


def workload_day() -> Iterator[Reading]:
    """The reference workload's first day (UTC) with the day's events written in."""
    readings = reference_readings()
    extra: list[Reading] = []
    for i in range(24 * 12):  # two water meters every 5 min
        ts = T0 + i * 300_000
        hour = (i // 12 + 1) % 24  # local (Paris) hour
        day_use = 0.8 if 7 <= hour < 22 else 0.0
        extra.append(Reading("water-001", "flow", "m3/h", round(0.15 + day_use, 3), ts))  # leaks
        extra.append(Reading("water-002", "flow", "m3/h", round(day_use * (i % 2), 3), ts))
    # the leaking meter raises its own flag at 03:10 local (02:10 UTC)
    extra.append(Reading("water-001", "leak", None, True, T0 + 2 * HOUR + 600_000))
    extra.append(Reading("water-002", "leak", None, False, T0 + 2 * HOUR + 600_000))
    extra.sort(key=lambda r: r.ts_ms)
    out: list[Reading] = []
    k = 0
    for r in readings(10**7):
        if r.ts_ms >= T0 + 24 * HOUR:
            break
        while k < len(extra) and extra[k].ts_ms <= r.ts_ms:
            out.append(extra[k])
            k += 1
        value = r.value
        if r.sensor == "soil-013" and r.ts_ms > T0 + 12 * HOUR:
            continue  # unplugged at noon
        if r.sensor == "bin-007" and r.ts_ms > T0 + 14 * HOUR:
            value = min(100.0, 82.0 + (r.ts_ms - T0 - 14 * HOUR) / HOUR)  # full from 14:00
        out.append(Reading(r.sensor, r.quantity, r.unit, value, r.ts_ms))
    out.extend(extra[k:])
    yield from out


class _Webhook(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def webhook_server() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Handler", (_Webhook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="webhook", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


class _Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 OK"


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[int, _Mailbox]]:
    box = _Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, box
    finally:
        controller.stop()


@contextlib.asynccontextmanager
async def running_hub(tmp_path: Path) -> AsyncIterator[tuple[Hub, int, int, str]]:
    with Fleet(tmp_path) as fleet:
        credential = fleet.ensure_admin() or fleet.accounts.create_token("admin", "test").token
    mqtt_port, http_port = free_port(), free_port()
    config = HubConfig(
        data_dir=tmp_path,
        broker="embedded",
        mqtt_listen=f"127.0.0.1:{mqtt_port}",
        http=f"127.0.0.1:{http_port}",
        alerts=AlertSettings(clock="event", tick_s=0.2, reload_s=0.5),
        delivery=DeliverySettings(attempts=3, backoff_s=0.05, timeout_s=5.0),
    )
    async with running_hub_task(config) as hub:
        yield hub, mqtt_port, http_port, credential


RULES: list[dict[str, Any]] = [
    {
        "id": "bin-full",
        "kind": "threshold",
        "scope": {"kind": "bin"},
        "params": {"quantity": "fill", "op": ">=", "value": 80, "clear": 70, "for": "10 min"},
        "channels": ["hook", "bus", "mail"],
    },
    {
        "id": "night-leak",
        "kind": "night_flow",
        "scope": {"kind": "water"},
        "params": {"quantity": "flow", "start": "02:00", "end": "04:00", "tz": "Europe/Paris"},
        "severity": "critical",
        "channels": ["hook", "bus", "mail"],
    },
    {
        "id": "meter-flags",
        "kind": "meter_flag",
        "scope": {"kind": "water"},
        "channels": ["hook", "bus", "mail"],
    },
    {
        "id": "soil-silent",
        "kind": "silence",
        "scope": {"kind": "soil"},
        "params": {"after": "1h"},
        "channels": ["hook", "bus", "mail"],
    },
    {  # a rule that must stay quiet all day: no soil probe dries out in the workload
        "id": "soil-dry",
        "kind": "threshold",
        "scope": {"kind": "soil"},
        "params": {"quantity": "moisture", "op": "<", "value": 5, "for": "30 min"},
        "channels": ["hook"],
    },
]

EXPECTED = {
    ("bin-full", "bin-007"),
    ("night-leak", "water-001"),
    ("meter-flags", "water-001/leak"),
    ("soil-silent", "soil-013"),
}


async def test_a_day_of_readings_raises_exactly_the_expected_alerts_delivered_three_ways(
    tmp_path: Path,
) -> None:
    day = list(workload_day())
    assert len(day) > 150_000
    # one rule by the CLI, before the hub starts (on the hub's data directory)
    cli = CliRunner().invoke(
        hub_cli, ["alert", "--data", str(tmp_path), "rule", "add", "-"], input=json.dumps(RULES[0])
    )
    assert cli.exit_code == 0, cli.output
    with webhook_server() as (hook_url, posts), smtp_server() as (smtp_port, mailbox):
        async with (
            running_hub(tmp_path) as (hub, mqtt_port, http_port, credential),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http,
            aiomqtt.Client("127.0.0.1", mqtt_port, identifier="other-system") as listener,
            aiomqtt.Client("127.0.0.1", mqtt_port, identifier="gw-day") as gw,
        ):
            admin = {"Authorization": f"Bearer {credential}"}
            # the API refuses without the admin credential
            r = await http.post("/api/v1/alert-rules", json=RULES[1])
            assert r.status_code == 401
            channels = {
                "hook": {"type": "webhook", "config": {"url": hook_url, "secret": SECRET}},
                "bus": {"type": "mqtt", "config": {"topic": "city/alerts"}},
                "mail": {
                    "type": "email",
                    "config": {
                        "host": "127.0.0.1",
                        "port": smtp_port,
                        "sender": "hub@estran.example",
                        "to": ["astreinte@estran.example"],
                    },
                },
            }
            for name, body in channels.items():
                r = await http.put(f"/api/v1/alert-channels/{name}", json=body, headers=admin)
                assert r.status_code == 200, r.text
            for rule in RULES[1:]:
                r = await http.post("/api/v1/alert-rules", json=rule, headers=admin)
                assert r.status_code == 201, r.text
            r = await http.post("/api/v1/alert-rules", json=RULES[1], headers=admin)
            assert r.status_code == 422  # exists
            await listener.subscribe("city/alerts/#", qos=1)
            await asyncio.sleep(1.0)  # the engine reloads its rules (reload_s)
            assert hub.alerting is not None
            await hub.alerting.engine.reload_rules()

            await gw.subscribe(wire.topic("gw-day", "ack"), qos=1)
            await gw.publish(
                wire.topic("gw-day", "state"),
                wire.encode_state(wire.State(True, 1, T0, backlog=0)),
                qos=1,
                retain=True,
            )
            sent = 0
            seq = 1
            per_message = 4000
            for batch_no, start in enumerate(range(0, len(day), per_message), start=1):
                chunk = day[start : start + per_message]
                blocks = [
                    encode_block(seq + i, chunk[i : i + 1000]) for i in range(0, len(chunk), 1000)
                ]
                payload = wire.encode_data(
                    wire.DataBatch(1, batch_no, seq, seq + len(chunk) - 1, len(chunk), blocks)
                )
                await gw.publish(wire.topic("gw-day", "data"), payload, qos=1)
                seq += len(chunk)
                sent += 1

            async def acks() -> None:
                n = 0
                async for _message in gw.messages:
                    n += 1
                    if n == sent:
                        return

            await asyncio.wait_for(acks(), 120)
            assert hub.stats.inserted == len(day)
            await hub.alerting.engine.drain()

            mqtt_seen: list[tuple[str, dict[str, Any]]] = []

            async def collect() -> None:
                async for message in listener.messages:
                    assert isinstance(message.payload, bytes)
                    mqtt_seen.append((message.topic.value, json.loads(message.payload)))
                    if len(mqtt_seen) == len(EXPECTED):
                        return

            await asyncio.wait_for(collect(), 30)
            for _ in range(300):
                if len(posts) >= len(EXPECTED) and len(mailbox.messages) >= len(EXPECTED):
                    break
                await asyncio.sleep(0.1)
            await asyncio.wait_for(hub.alerting.dispatcher.idle.wait(), 30)
            await asyncio.sleep(0.5)  # anything more would arrive now

            # the API: exactly the expected alerts, each once, firing
            body = (await http.get("/api/v1/alerts", headers=admin)).json()
            alerts = body["alerts"]
            assert sorted((a["rule"], a["subject"]) for a in alerts) == sorted(EXPECTED)
            assert {a["state"] for a in alerts} == {"firing"}
            by_rule = {a["rule"]: a for a in alerts}
            assert by_rule["night-leak"]["fired_ms"] == T0 + 3 * HOUR  # 04:00 in Paris
            assert by_rule["soil-silent"]["severity"] == "warning"
            assert by_rule["night-leak"]["severity"] == "critical"
            silent = by_rule["soil-silent"]
            # its last reading came in the quarter before noon (a 15 min period), + 1 h
            assert T0 + 12 * HOUR + 44 * 60_000 <= silent["fired_ms"] <= T0 + 13 * HOUR
            assert T0 + 14 * HOUR + 600_000 <= by_rule["bin-full"]["fired_ms"] <= T0 + 15 * HOUR
            ids = {a["id"] for a in alerts}

            # webhook: one signed POST per alert
            assert len(posts) == len(EXPECTED)
            for headers, raw in posts:
                assert verify(
                    SECRET, headers["x-estran-timestamp"], raw, headers["x-estran-signature"]
                )
                assert headers["x-estran-event"] == "fired"
            assert {json.loads(raw)["alert"]["id"] for _h, raw in posts} == ids
            # a tampered body does not verify
            h0, raw0 = posts[0]
            assert not verify(
                SECRET,
                h0["x-estran-timestamp"],
                raw0.replace(b"firing", b"resolved"),
                h0["x-estran-signature"],
            )
            # MQTT: one message per alert on city/alerts/{rule}/fired
            assert sorted(t for t, _ in mqtt_seen) == sorted(
                f"city/alerts/{rule}/fired" for rule, _s in EXPECTED
            )
            assert {m["alert"]["id"] for _t, m in mqtt_seen} == ids
            # e-mail: one message per alert, to the on-call address
            assert len(mailbox.messages) == len(EXPECTED)
            subjects = []
            for rcpt, content in mailbox.messages:
                assert rcpt == ["astreinte@estran.example"]
                msg = message_from_bytes(content)
                subjects.append(str(msg["Subject"]))
                assert msg["X-Estran-Alert"] in ids
            assert any("suspected leak" in s for s in subjects)

            # an admin acknowledges the leak; the history says who
            leak = by_rule["night-leak"]["id"]
            r = await http.post(
                f"/api/v1/alerts/{leak}/ack", json={"note": "crew sent"}, headers=admin
            )
            assert r.status_code == 200 and r.json()["state"] == "acknowledged"
            detail = (await http.get(f"/api/v1/alerts/{leak}", headers=admin)).json()
            assert [(e["event"], e["actor"]) for e in detail["events"]] == [
                ("fired", "system"),
                ("acknowledged", "admin"),
            ]
            r = await http.post(f"/api/v1/alerts/{leak}/ack", headers=admin)
            assert r.status_code == 200  # acknowledging twice changes nothing
            r = await http.post("/api/v1/alerts/nope/ack", headers=admin)
            assert r.status_code == 404
            versions = (
                await http.get("/api/v1/alert-rules/bin-full/versions", headers=admin)
            ).json()
            assert [(v["version"], v["action"]) for v in versions] == [(1, "created")]


async def test_roles_on_the_alert_routes(tmp_path: Path) -> None:
    """Anonymous: 401; a reader neither sees a gateway's alert nor acknowledges nor manages
    rules (403); a technician of the gateway's group sees and acknowledges it, one of another
    group is answered 404 as for a missing alert; only an admin manages rules. Changes land in
    the audit log."""
    with Fleet(tmp_path) as fleet:
        fleet.ensure_admin()
        gw_id, _password = enroll_directly(fleet, "marina")
        enroll_directly(fleet, "townhall")
        tokens = {}
        for name, role, groups in (
            ("rita", "reader", ()),
            ("theo", "technician", ("marina",)),
            ("olga", "technician", ("townhall",)),
        ):
            fleet.accounts.add_user(name, role, "test", groups=groups)
            tokens[name] = fleet.accounts.create_token(name, "test").token
    async with (
        running_hub(tmp_path) as (_hub, mqtt_port, http_port, credential),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http,
        aiomqtt.Client("127.0.0.1", mqtt_port, identifier="gw-roles") as gw,
    ):
        admin = {"Authorization": f"Bearer {credential}"}
        reader = {"Authorization": f"Bearer {tokens['rita']}"}
        tech = {"Authorization": f"Bearer {tokens['theo']}"}
        other = {"Authorization": f"Bearer {tokens['olga']}"}
        rule = {"id": "gw-off", "kind": "gateway_offline", "params": {"after": 0}, "damping": 0}
        assert (await http.get("/api/v1/alerts")).status_code == 401
        assert (
            await http.post("/api/v1/alert-rules", json=rule, headers=reader)
        ).status_code == 403
        assert (await http.post("/api/v1/alert-rules", json=rule, headers=tech)).status_code == 403
        assert (await http.post("/api/v1/alert-rules", json=rule, headers=admin)).status_code == 201
        bad = dict(rule, id="other", params={"after": "soon"})
        r = await http.post("/api/v1/alert-rules", json=bad, headers=admin)
        assert r.status_code == 422 and r.json()["detail"]["reason"] == "after"
        assert (await http.get("/api/v1/alert-channels", headers=reader)).status_code == 403
        await gw.publish(
            wire.topic(gw_id, "state"), wire.encode_state(wire.State(False, 1, 0)), qos=1
        )
        for _ in range(100):
            body = (await http.get("/api/v1/alerts", headers=tech)).json()
            if body["alerts"]:
                break
            await asyncio.sleep(0.05)
        [alert] = body["alerts"]
        assert alert["subject"] == gw_id and alert["state"] == "firing"
        for who in (reader, other):  # a gateway's alert: not a reader's, not another group's
            body = (await http.get("/api/v1/alerts", headers=who)).json()
            assert body["alerts"] == [] and body["counts"]["firing"] == 0
            r = await http.get(f"/api/v1/alerts/{alert['id']}", headers=who)
            assert r.status_code == 404
        r = await http.post(f"/api/v1/alerts/{alert['id']}/ack", headers=reader)
        assert r.status_code == 403
        r = await http.post(f"/api/v1/alerts/{alert['id']}/ack", headers=other)
        assert r.status_code == 404
        r = await http.post(
            f"/api/v1/alerts/{alert['id']}/ack", json={"note": "on it"}, headers=tech
        )
        assert r.status_code == 200 and r.json()["ack_by"] == "theo"
        r = await http.post(f"/api/v1/alerts/{alert['id']}/resolve", headers=tech)
        assert r.status_code == 200 and r.json()["resolved_by"] == "theo"
        r = await http.post(f"/api/v1/alerts/{alert['id']}/resolve", headers=tech)
        assert r.status_code == 409
        log = (await http.get("/api/v1/audit", headers=admin)).json()
        entries = log if isinstance(log, list) else log.get("entries", log)
        actions = {(e["actor"], e["action"]) for e in entries}
        assert {
            ("admin", "alert_rule.create"),
            ("theo", "alert.acknowledge"),
            ("theo", "alert.resolve"),
        } <= actions

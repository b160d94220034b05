"""GET /metrics of a running hub, scraped and parsed by prometheus_client's own text parser
(and by promtool when it is installed): the hub's counters, latencies by route, auth
failures, alerts, and each gateway's figures from its state messages."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from pathlib import Path

import aiomqtt
import httpx
from prometheus_client.parser import text_string_to_metric_families

from hub.metrics import GATEWAY_FIGURES
from hub.tests.test_alerts_day import running_hub
from hub.tests.test_ingest import data, next_ack
from protocols import wire


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_scrape(tmp_path: Path) -> None:
    async with (
        running_hub(tmp_path) as (hub, mqtt_port, http_port, credential),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http,
        aiomqtt.Client("127.0.0.1", mqtt_port, identifier="gw-metrics") as gw,
    ):
        admin = {"Authorization": f"Bearer {credential}"}
        await gw.subscribe(wire.topic("gw-1", "ack"), qos=1)
        state = wire.State(
            True,
            1,
            1_764_547_200_000,
            backlog=12,
            footprint={"cpu_s": 4.5, "bytes_sent": 3470, "rss_bytes": 32_600_000, "odd": 1},
            sources=[
                wire.SourceHealth("serial-0", "ok"),
                wire.SourceHealth("ble", "down", detail="no adapter"),
            ],
        )
        await gw.publish(wire.topic("gw-1", "state"), wire.encode_state(state), qos=1)
        await gw.publish(wire.topic("gw-1", "data"), data(1, 100, batch=1), qos=1)
        await next_ack(gw)
        await gw.publish(wire.topic("gw-1", "data"), b"\xff garbage", qos=1)
        r = await http.post(
            "/api/v1/alert-rules",
            json={"id": "gw-off", "kind": "gateway_offline", "params": {"after": 0}},
            headers=admin,
        )
        assert r.status_code == 201
        assert (await http.get("/api/v1/alerts")).status_code == 401
        bogus = {"Authorization": "Bearer not-a-token"}
        assert (await http.get("/api/v1/alerts", headers=bogus)).status_code == 401
        assert (await http.get("/api/v1/alerts/x", headers=admin)).status_code == 404
        await gw.publish(
            wire.topic("gw-2", "state"), wire.encode_state(wire.State(False, 1, 0)), qos=1
        )
        for _ in range(100):
            if hub.stats.states >= 2 and sum(hub.stats.rejected.values()) >= 1:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # the wall-clock ticker fires gw-2's alert (after 0)

        r = await http.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain; version=")
        text = r.text
        got = samples(text)

        def value(metric: str, **labels: str) -> float:
            return got[(metric, tuple(sorted(labels.items())))]

        assert value("estran_hub_ingest_inserted_total") == 100
        # every counter of the ingest stats is exported, whatever its name
        for name, count in hub.stats.as_dict().items():
            if isinstance(count, int) and name != "storage_errors":
                assert value(f"estran_hub_ingest_{name}_total") == count
        assert value("estran_hub_ingest_rejected_total", reason="malformed") == 1
        assert value("estran_hub_db_commit_seconds_count") >= 1
        assert value("estran_hub_ingest_lag_seconds_count") >= 1
        assert value("estran_hub_gateways", state="online") == 1
        assert value("estran_hub_gateways", state="offline") == 1
        assert value("estran_gateway_online", gateway="gw-1") == 1
        assert value("estran_gateway_backlog", gateway="gw-1") == 42  # the batch's report
        assert value("estran_gateway_cpu_seconds_total", gateway="gw-1") == 4.5
        assert value("estran_gateway_sent_bytes_total", gateway="gw-1") == 3470
        assert value("estran_gateway_resident_memory_bytes", gateway="gw-1") == 32_600_000
        assert value("estran_gateway_figure", gateway="gw-1", name="odd") == 1
        assert (
            value("estran_gateway_source_status", gateway="gw-1", source="ble", status="down") == 1
        )
        assert (
            value("estran_gateway_source_status", gateway="gw-1", source="serial-0", status="ok")
            == 1
        )
        assert value("estran_gateway_rejected_total", gateway="gw-1", reason="malformed") == 1
        assert value("estran_hub_alerts", state="firing", severity="warning") == 1
        assert value("estran_hub_alerts_fired_total") == 1
        assert value("estran_hub_auth_failures_total", route="/api/v1/alerts", status="401") == 2
        assert value("estran_hub_auth_refused_total", reason="malformed") == 1
        assert (
            value(
                "estran_hub_http_responses_total",
                method="GET",
                route="/api/v1/alerts/{alert_id}",
                status="404",
            )
            == 1
        )
        assert (
            value(
                "estran_hub_http_request_seconds_count", method="POST", route="/api/v1/alert-rules"
            )
            == 1
        )
        assert value("estran_hub_alert_delivery_failures_total", type="webhook") == 0
        # unknown paths are one label, not one per path (bounded cardinality)
        await http.get("/no/such/path/1")
        await http.get("/no/such/path/2")
        got = samples((await http.get("/metrics")).text)
        assert (
            value("estran_hub_http_responses_total", method="GET", route="unmatched", status="404")
            == 2
        )

        # the numériscore's books, written, served as JSON
        assert hub.numeriscore is not None
        await hub.numeriscore.flush()
        days = (await http.get("/api/v1/numeriscore")).json()["days"]
        [gw1] = [g for g in days[0]["gateways"] if g["gateway"] == "gw-1"]
        assert gw1["readings"] == 100
        assert days[0]["hub"]["readings"] == 100

        # every metric the sample Grafana dashboard queries exists
        dashboard = json.loads(
            (Path(__file__).parents[2] / "docs" / "grafana-hub.json").read_text()
        )
        queried = set()
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                queried |= set(re.findall(r"estran_[a-z_]+", target["expr"]))
        families = {
            f.name + ("_total" if f.type == "counter" else "")
            for f in text_string_to_metric_families(text)
        }
        known = {name for name, _labels in got} | families
        known |= {name for name, _kind, _text in GATEWAY_FIGURES.values()}
        assert queried <= known, queried - known

        promtool = shutil.which("promtool")
        if promtool is not None:
            check = subprocess.run(
                [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30
            )
            assert check.returncode == 0, check.stderr.decode() + check.stdout.decode()

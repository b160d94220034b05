"""The numériscore: grades and scores from the published thresholds, the day books kept
from the gateways' state messages (daemon restarts included) and ingest, on both databases,
and the JSON and CSV exports over HTTP."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hub.cli import hub as hub_cli
from hub.numeriscore import (
    HARDWARE,
    Numeriscore,
    NumeriscoreSettings,
    NumeriscoreTracker,
    gateway_figures,
    grade,
    numeriscore_router,
    score,
)
from hub.numeriscore._model import peer_figures
from hub.storage import GatewayState, StorageThread, open_storage
from hub.tests.alert_support import batch

DAY = 1_764_583_200.0  # 2025-12-01T10:00:00Z, the same day in Paris


def test_grades_and_scores() -> None:
    assert grade("wire_bytes_per_reading", 3.47) == "A"  # measured (benchmarks.md)
    assert grade("wire_bytes_per_reading", 6.0) == "A"
    assert grade("wire_bytes_per_reading", 6.01) == "B"
    assert grade("wire_bytes_per_reading", 94.0) == "E"  # the peer's JSON
    assert grade("flash_bytes_per_reading", 43.0) == "B"  # live rate, small commits
    assert grade("flash_bytes_per_reading", 170.0) == "E"  # the peer's storage
    assert grade("cpu_ms_per_reading", None) is None
    assert score({"a": "A", "b": "A", "c": "B"}) == "A"  # 4.67
    assert score({"a": "A", "b": "B"}) == "B"  # 4.5: halves go towards E
    assert score({"a": "A", "b": None, "c": "E"}) == "C"
    assert score({}) is None
    peer = peer_figures()
    assert (peer["grades"], peer["score"]) == (
        {"wire_bytes_per_reading": "E", "flash_bytes_per_reading": "E"},
        "E",
    )
    fig = gateway_figures(
        {
            "readings": 1000,
            "bytes_sent": 3470,
            "flash_write_bytes": 43000,
            "cpu_s": 0.2,
            "ran_s": 3600.0,
        },
        HARDWARE["rpi4"],
    )
    assert fig["wire_bytes_per_reading"] == 3.47
    assert fig["cpu_ms_per_reading"] == 0.2
    # 0.2 s x 0.93 W + 3600 s x 2.7 W = 9720.186 J = 2.7001 Wh
    assert fig["energy_wh"] == pytest.approx(2.7001, abs=1e-4)
    assert fig["grades"] == {
        "wire_bytes_per_reading": "A",
        "flash_bytes_per_reading": "B",
        "cpu_ms_per_reading": "A",
    }
    assert fig["score"] == "A"


async def test_books_across_a_daemon_restart_and_a_hub_restart(
    storage_spec: str, tmp_path: Path
) -> None:
    now = [DAY]
    settings = NumeriscoreSettings()

    def tracker() -> NumeriscoreTracker:
        return NumeriscoreTracker(
            StorageThread(open_storage(storage_spec, tmp_path)), settings, clock=lambda: now[0]
        )

    def state(**fp: float) -> GatewayState:
        return GatewayState(True, 1, 0, footprint=dict(fp))

    books = tracker()
    await books.thread.call(books.load, books.thread.storage)
    books.state(
        "gw-1", state(bytes_sent=1000, flash_write_bytes=5000, cpu_s=1.0, uptime_s=100), True
    )
    books.committed([batch("gw-1", [("s-1", "q", None, i, float(i)) for i in range(400)])], 0.01)
    books.state(
        "gw-1",
        state(bytes_sent=2400, flash_write_bytes=9000, cpu_s=1.1, uptime_s=700, rss_bytes=30e6),
        True,
    )
    # the daemon restarted: its figures start again from zero
    books.state(
        "gw-1", state(bytes_sent=400, flash_write_bytes=1000, cpu_s=0.02, uptime_s=50), True
    )
    books.committed(
        [batch("gw-1", [("s-1", "q", None, i, float(i)) for i in range(600)], 401)], 0.01
    )
    books.close()

    books = tracker()  # the hub restarted: today's books and the last figures come back
    await books.thread.call(books.load, books.thread.storage)
    books.state(
        "gw-1", state(bytes_sent=600, flash_write_bytes=2000, cpu_s=0.05, uptime_s=110), True
    )
    books.close()

    reader = open_storage(storage_spec, tmp_path)
    try:
        ns = Numeriscore(reader, settings)
        [day] = ns.days()
        assert day["day"] == "2025-12-01"
        [gw] = day["gateways"]
        assert gw["gateway"] == "gw-1"
        assert gw["readings"] == 1000
        assert gw["bytes_sent"] == 1400 + 400 + 200
        assert gw["flash_write_bytes"] == 4000 + 1000 + 1000
        assert gw["cpu_s"] == pytest.approx(0.1 + 0.02 + 0.03)
        assert gw["ran_s"] == pytest.approx(600 + 50 + 60)
        assert gw["rss_bytes_max"] == 30_000_000
        assert gw["wire_bytes_per_reading"] == 2.0
        assert day["hub"]["readings"] == 1000
        assert day["hub"]["storage_bytes"] > 0
        assert day["fleet"]["readings"] == 1000
        assert day["peer"]["score"] == "E"

        app = FastAPI()
        app.include_router(numeriscore_router(ns))
        http = TestClient(app)
        body = http.get("/api/v1/numeriscore").json()
        assert body["formula"]["hardware"]["gateways"]["idle_w"] == 2.7
        assert body["days"][0]["gateways"][0]["score"] in ("A", "B", "C", "D", "E")
        r = http.get("/api/v1/numeriscore.csv")
        assert r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert [row["service"] for row in rows] == ["gateway:gw-1", "hub", "fleet", "peer"]
        assert rows[0]["wire_bytes_per_reading"] == "2.0"
        assert rows[3]["wire_bytes_per_reading"] == "94.0"
        assert http.get("/api/v1/numeriscore", params={"from": "yesterday"}).status_code == 422
        assert http.get("/api/v1/numeriscore", params={"from": "2026-01-01"}).json()["days"] == []
        # the same books on the hub's machine: estran hub numeriscore
        base = ["numeriscore", "--data", str(tmp_path), "--db", storage_spec]
        out = CliRunner().invoke(hub_cli, [*base, "--format", "csv"])
        assert out.exit_code == 0 and out.output == r.text
        table = CliRunner().invoke(hub_cli, base).output.splitlines()
        assert [line.split()[1] for line in table[1:]] == ["gateway:gw-1", "hub", "fleet", "peer"]
        assert table[-1].split()[-1] == "E"
        bad = CliRunner().invoke(hub_cli, [*base, "--from", "yesterday"])
        assert bad.exit_code == 2 and "expected YYYY-MM-DD" in bad.output
    finally:
        reader.close()

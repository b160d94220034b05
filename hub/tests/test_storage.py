"""The storage contract, run against both backends (SQLite and PostgreSQL)."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from hub._api import create_app
from hub.storage import (
    GatewayState,
    IngestBatch,
    SeriesKey,
    SourceStatus,
    Storage,
    Value,
    open_storage,
)

T0 = 1_764_547_200_000


def batch(
    gateway: str,
    first_seq: int,
    rows: list[tuple[SeriesKey, int, Value]],
    *,
    historical: bool = False,
    backlog: int | None = None,
    batch_no: int = 1,
) -> IngestBatch:
    series: list[SeriesKey] = []
    index: dict[SeriesKey, int] = {}
    b = IngestBatch(
        gateway=gateway,
        session=1,
        batch_no=batch_no,
        historical=historical,
        backlog=backlog,
        ranges=[(first_seq, first_seq + len(rows) - 1)],
        series=series,
        series_index=[],
        seqs=list(range(first_seq, first_seq + len(rows))),
        ts_ms=[],
        values=[],
        flags=[],
    )
    for key, ts, value in rows:
        if key not in index:
            index[key] = len(series)
            series.append(key)
        b.series_index.append(index[key])
        b.ts_ms.append(ts)
        b.values.append(value)
        b.flags.append(1 if historical else 0)
        b.has_text = b.has_text or isinstance(value, str)
    return b


SOIL: SeriesKey = ("soil-001", "moisture", "%RH")
TEMP: SeriesKey = ("soil-001", "temperature", "Cel")
METER: SeriesKey = ("meter-001", "energy", "Wh")
STATE: SeriesKey = ("berth-001", "status", None)


def test_migrate_is_idempotent(storage: Storage, storage_spec: str, tmp_path: Path) -> None:
    assert storage.schema_version() == 3
    again = open_storage(storage_spec, tmp_path)
    try:
        assert again.schema_version() == 3
        assert again.migrate() == 3
    finally:
        again.close()


def test_migration_2_counts_the_readings_already_held(
    storage_spec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = open_storage(storage_spec, tmp_path, migrate=False)
    try:
        module = sys.modules[type(old).__module__]
        with monkeypatch.context() as m:
            m.setattr(module, "MIGRATIONS", module.MIGRATIONS[:1])
            old.migrate()
            assert old.schema_version() == 1
        db = old._db  # type: ignore[attr-defined]  # the version-1 code's rows, by hand
        db.execute("INSERT INTO gateways (name) VALUES ('gw-1')")
        for seq in range(7):
            db.execute(
                "INSERT INTO readings (gateway_id, seq, series_id, ts_ms, value, flags)"
                f" SELECT id, {seq}, 1, {T0}, {seq}, 0 FROM gateways"
            )
        old.migrate()
        assert old.schema_version() == 3
        (gw,) = old.gateways()
        assert (gw.readings, gw.footprint) == (7, None)
    finally:
        old.close()


def test_ingest_and_read_back_exact_values(storage: Storage) -> None:
    rows: list[tuple[SeriesKey, int, Value]] = [
        (SOIL, T0, 35.27),
        (TEMP, T0, 12.0),
        (METER, T0 + 1, 1_000_123),
        (STATE, T0 + 2, "charging"),
        (SOIL, T0 + 900_000, 35.3),
    ]
    result = storage.ingest([batch("gw-1", 100, rows)], now_ms=T0)
    assert (result.inserted, result.duplicates) == (5, 0)
    got = storage.readings("soil-001")
    assert [(r.quantity, r.ts_ms, r.value, r.seq) for r in got] == [
        ("moisture", T0, 35.27, 100),
        ("temperature", T0, 12.0, 101),
        ("moisture", T0 + 900_000, 35.3, 104),
    ]
    meter = storage.readings("meter-001")
    assert meter[0].value == 1_000_123 and isinstance(meter[0].value, int)
    assert storage.readings("berth-001")[0].value == "charging"
    assert storage.readings("berth-001")[0].unit is None
    assert storage.count_readings() == 5
    assert storage.count_readings("gw-1") == 5
    assert storage.count_readings("gw-2") == 0


def test_resend_is_idempotent(storage: Storage) -> None:
    rows: list[tuple[SeriesKey, int, Value]] = [(SOIL, T0 + i, i) for i in range(50)]
    first = storage.ingest([batch("gw-1", 1, rows)], now_ms=T0)
    again = storage.ingest([batch("gw-1", 1, rows), batch("gw-1", 51, rows[:10])], now_ms=T0)
    assert (first.inserted, first.duplicates) == (50, 0)
    assert (again.inserted, again.duplicates) == (10, 50)
    assert storage.count_readings("gw-1") == 60
    # same seqs from another gateway are other readings
    other = storage.ingest([batch("gw-2", 1, rows)], now_ms=T0)
    assert other.inserted == 50
    assert [r.seq for r in storage.export("gw-1")] == list(range(1, 61))


def test_bools_are_stored_as_numbers(storage: Storage) -> None:
    storage.ingest([batch("gw-1", 1, [(STATE, T0, True), (STATE, T0 + 1, False)])], now_ms=T0)
    assert [r.value for r in storage.readings("berth-001")] == [1, 0]


def test_time_window_and_limit(storage: Storage) -> None:
    rows: list[tuple[SeriesKey, int, Value]] = [(SOIL, T0 + 1000 * i, i) for i in range(10)]
    storage.ingest([batch("gw-1", 1, rows)], now_ms=T0)
    window = storage.readings("soil-001", from_ms=T0 + 2000, to_ms=T0 + 5000)
    assert [r.value for r in window] == [2, 3, 4]
    assert len(storage.readings("soil-001", limit=3)) == 3
    assert storage.readings("nobody") == []


def test_clock_going_backwards_keeps_every_reading(storage: Storage) -> None:
    rows: list[tuple[SeriesKey, int, Value]] = [
        (SOIL, T0 + 5000, 1),
        (SOIL, T0 + 6000, 2),
        (SOIL, T0 + 1000, 3),  # the gateway clock jumped back
        (SOIL, T0 + 1000, 4),  # and produced the same timestamp twice
    ]
    storage.ingest([batch("gw-1", 1, rows)], now_ms=T0)
    assert [r.seq for r in storage.export("gw-1")] == [1, 2, 3, 4]
    assert sorted(r.value for r in storage.readings("soil-001")) == [1, 2, 3, 4]  # type: ignore[type-var]


def test_sensors_gives_latest_value_of_each_series(storage: Storage) -> None:
    storage.ingest(
        [
            batch(
                "gw-1",
                1,
                [
                    (SOIL, T0, 30.0),
                    (SOIL, T0 + 2000, 31.5),
                    (SOIL, T0 + 1000, 99.0),
                    (TEMP, T0, 10),
                ],
            )
        ],
        now_ms=T0,
    )
    latest = {(s.sensor, s.quantity): (s.value, s.ts_ms, s.gateway) for s in storage.sensors()}
    assert latest == {
        ("soil-001", "moisture"): (31.5, T0 + 2000, "gw-1"),
        ("soil-001", "temperature"): (10, T0, "gw-1"),
    }


def test_gateway_state_birth_death_and_stale_will(storage: Storage) -> None:
    assert storage.record_state("gw-1", GatewayState(True, 5, T0, backlog=1000), now_ms=T0)
    (gw,) = storage.gateways()
    assert (gw.gateway, gw.state, gw.session, gw.backlog) == ("gw-1", "online", 5, 1000)
    # a reconnect: birth of session 6, then the late Will of session 5 arrives
    assert storage.record_state("gw-1", GatewayState(True, 6, T0 + 10), now_ms=T0 + 10)
    assert not storage.record_state("gw-1", GatewayState(False, 5, T0 + 11), now_ms=T0 + 11)
    assert storage.gateways()[0].state == "online"
    assert storage.gateways()[0].backlog == 1000
    assert storage.record_state("gw-1", GatewayState(False, 6, T0 + 12), now_ms=T0 + 12)
    assert storage.gateways()[0].state == "offline"
    # an unknown gateway is unknown until it says something
    storage.ingest([batch("gw-2", 1, [(SOIL, T0, 1)], backlog=7)], now_ms=T0 + 20)
    gw2 = storage.gateways()[1]
    assert (gw2.state, gw2.last_seen_ms, gw2.backlog, gw2.batches) == ("unknown", T0 + 20, 7, 1)


async def test_footprint_and_readings_per_gateway_in_the_api(storage: Storage) -> None:
    figures = {"bytes_sent": 4000, "flash_write_bytes": 1000, "cpu_s": 1.5, "rss_bytes": 31_000_000}
    rows: list[tuple[SeriesKey, int, Value]] = [(SOIL, T0 + i, i) for i in range(80)]
    storage.ingest([batch("gw-1", 1, rows)], now_ms=T0)
    storage.ingest([batch("gw-1", 41, rows[40:] + rows[:20], batch_no=2)], now_ms=T0)  # 40 again
    storage.ingest([batch("gw-2", 1, rows[:5])], now_ms=T0)
    assert storage.record_state("gw-1", GatewayState(True, 5, T0, footprint=figures), now_ms=T0)
    (gw, gw2) = storage.gateways()
    assert (gw.readings, gw.footprint, gw2.readings, gw2.footprint) == (100, figures, 5, None)
    # a newer figure replaces it; a Will (no figures) and a stale one leave it
    figures = {**figures, "bytes_sent": 8000}
    assert storage.record_state("gw-1", GatewayState(True, 6, T0 + 1, footprint=figures), T0 + 1)
    stale = {"bytes_sent": 1}
    assert not storage.record_state("gw-1", GatewayState(False, 5, T0 + 2, footprint=stale), T0 + 2)
    assert storage.record_state("gw-1", GatewayState(False, 6, T0 + 3), now_ms=T0 + 3)
    assert storage.gateways()[0].footprint == figures

    transport = httpx.ASGITransport(app=create_app(storage))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
        got = {g["id"]: g for g in (await http.get("/api/v1/gateways")).json()}
    assert got["gw-1"]["state"] == "offline"
    assert got["gw-1"]["readings"] == 100
    assert got["gw-1"]["footprint"] == figures
    assert got["gw-1"]["per_reading"] == {"bytes_sent": 80.0, "flash_write_bytes": 10.0}
    assert (got["gw-2"]["readings"], got["gw-2"]["footprint"], got["gw-2"]["per_reading"]) == (
        5,
        None,
        None,
    )


async def test_source_health_and_restart_pending_per_gateway(storage: Storage) -> None:
    """A sensor unplugged: the hub no longer says only "online" (issue 9)."""
    linky_down = SourceStatus("linky", "down", T0 - 5000, {"timeout": 3}, "no such port")
    sources = (SourceStatus("ble", "ok", T0, {}), linky_down)
    state = GatewayState(True, 5, T0, sources=sources, restart_pending=("buffer",))
    assert storage.record_state("gw-1", state, now_ms=T0)
    (gw,) = storage.gateways()
    assert gw.sources == sources and gw.restart_pending == ("buffer",)
    # a state of an older gateway (neither) and the Will keep them; a newer one replaces them
    assert storage.record_state("gw-1", GatewayState(True, 6, T0 + 1), T0 + 1)
    assert storage.gateways()[0].sources == sources
    up = (SourceStatus("ble", "ok", T0 + 2), SourceStatus("linky", "ok", T0 + 2))
    assert storage.record_state(
        "gw-1", GatewayState(True, 6, T0 + 2, sources=up, restart_pending=()), T0 + 2
    )
    assert storage.record_state("gw-1", GatewayState(False, 6, T0 + 3), T0 + 3)
    (gw,) = storage.gateways()
    assert gw.sources == up and gw.restart_pending == ()
    assert storage.record_state("gw-1", GatewayState(True, 7, T0 + 4, sources=sources), T0 + 4)

    transport = httpx.ASGITransport(app=create_app(storage))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
        (got,) = (await http.get("/api/v1/gateways")).json()
    assert got["sources"][1] == {
        "name": "linky",
        "status": "down",
        "last_reading_ms": T0 - 5000,
        "last_reading": "2025-11-30T23:59:55.000+00:00",
        "errors": {"timeout": 3},
        "detail": "no such port",
    }
    assert got["restart_pending"] == []


def test_rejections_are_counted_in_gateway_state(storage: Storage) -> None:
    storage.record_rejection("gw-1", "malformed", "bad block\x00", now_ms=T0)
    storage.record_rejection("gw-1", "malformed", "bad block again", now_ms=T0 + 1)
    storage.record_rejection("gw-1", "overflow", "too big", now_ms=T0 + 2)
    (gw,) = storage.gateways()
    assert gw.rejected == {"malformed": 2, "overflow": 1}
    assert gw.last_error == "too big" and gw.last_error_ms == T0 + 2


def test_many_series_and_large_batch(storage: Storage) -> None:
    keys: list[SeriesKey] = [(f"s-{i:03d}", "q", "W") for i in range(200)]
    rows: list[tuple[SeriesKey, int, Value]] = [
        (keys[i % 200], T0 + i, i * 0.5) for i in range(5000)
    ]
    assert storage.ingest([batch("gw-1", 10, rows)], now_ms=T0).inserted == 5000
    assert len(storage.sensors()) == 200
    exported = list(storage.export("gw-1", chunk=999))
    assert len(exported) == 5000
    assert exported[1].value == 0.5 and exported[-1].seq == 5009


def test_unknown_db_spec_is_a_config_error(tmp_path: Path) -> None:
    from hub import ConfigError

    with pytest.raises(ConfigError):
        open_storage("mysql://nope", tmp_path)

"""The storage contract, run against both backends (SQLite and PostgreSQL)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hub.storage import (
    GatewayState,
    IngestBatch,
    SeriesKey,
    SourceStatus,
    Storage,
    Value,
    open_storage,
)
from hub.tests.access_support import admin_client

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
    latest = len(sys.modules[type(storage).__module__].MIGRATIONS)
    assert storage.schema_version() == latest >= 3
    again = open_storage(storage_spec, tmp_path)
    try:
        assert again.schema_version() == latest
        assert again.migrate() == latest
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
        assert old.schema_version() == len(module.MIGRATIONS)
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


async def test_footprint_and_readings_per_gateway_in_the_api(
    storage: Storage, tmp_path: Path
) -> None:
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

    async with admin_client(storage, tmp_path) as http:
        assert (
            await http.get("/api/v1/gateways", headers={"Authorization": ""})
        ).status_code == 401
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


async def test_source_health_and_restart_pending_per_gateway(
    storage: Storage, tmp_path: Path
) -> None:
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

    async with admin_client(storage, tmp_path) as http:
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


def test_states_of_a_group_in_one_call_keep_their_order(storage: Storage) -> None:
    """`record_states` (one transaction for an ingest group's births and deaths) applies
    them in order, with the same stale-Will rule as one at a time."""
    applied = storage.record_states(
        [
            ("gw-1", GatewayState(True, 5, T0, backlog=3)),
            ("gw-2", GatewayState(True, 1, T0)),
            ("gw-1", GatewayState(True, 6, T0 + 1)),  # reconnect: session 6
            ("gw-1", GatewayState(False, 5, T0 + 2)),  # the late Will of session 5
            ("gw-2", GatewayState(False, 1, T0 + 3)),
        ],
        now_ms=T0 + 3,
    )
    assert applied == [True, True, True, False, True]
    states = {g.gateway: (g.state, g.session, g.backlog) for g in storage.gateways()}
    assert states == {"gw-1": ("online", 6, 3), "gw-2": ("offline", 1, None)}
    assert storage.record_states([], now_ms=T0 + 4) == []


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


# -- reads at scale: the latest table, the read pool, pages, downsampling, observations ---


def test_migration_4_fills_latest_from_readings_already_held(
    storage_spec: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = open_storage(storage_spec, tmp_path, migrate=False)
    try:
        module = sys.modules[type(old).__module__]
        with monkeypatch.context() as m:
            m.setattr(module, "MIGRATIONS", module.MIGRATIONS[:3])
            old.migrate()
        # version-3 ingest wrote readings and no latest table: write them by hand
        db = old._db  # type: ignore[attr-defined]
        db.execute("INSERT INTO gateways (name) VALUES ('gw-1')")
        db.execute(
            "INSERT INTO series (sensor, quantity, unit) VALUES ('soil-001', 'moisture', '%RH')"
        )
        for seq, ts, value in [(1, T0, 30), (2, T0 + 5000, 32), (3, T0 + 1000, 99)]:
            db.execute(
                "INSERT INTO readings (gateway_id, seq, series_id, ts_ms, value, flags)"
                f" VALUES (1, {seq}, 1, {ts}, {value}, 0)"
            )
        old.migrate()
        (s,) = old.sensors()
        assert (s.sensor, s.value, s.ts_ms) == ("soil-001", 32, T0 + 5000)
        assert old.count_readings() == 3
        assert [r.seq for r in old.export("gw-1")] == [1, 2, 3]
        # and ingest keeps it from there, resends still absorbed
        storage_rows: list[tuple[SeriesKey, int, Value]] = [(SOIL, T0 + 9000, 41.5)]
        assert old.ingest([batch("gw-1", 4, storage_rows)], now_ms=T0).inserted == 1
        assert old.ingest([batch("gw-1", 4, storage_rows)], now_ms=T0).duplicates == 1
        assert old.sensors()[0].value == 41.5
    finally:
        old.close()


def test_latest_is_kept_on_ingest_across_batches_and_gateways(storage: Storage) -> None:
    storage.ingest([batch("gw-1", 1, [(SOIL, T0 + 2000, 20.5), (TEMP, T0, 8)])], now_ms=T0)
    # an older reading arriving later (backlog) does not replace the latest
    storage.ingest([batch("gw-1", 3, [(SOIL, T0 + 1000, 1.0)], historical=True)], now_ms=T0)
    assert {(s.quantity, s.value) for s in storage.sensors()} == {
        ("moisture", 20.5),
        ("temperature", 8),
    }
    # another gateway heard the same sensor later: it becomes the latest
    storage.ingest([batch("gw-2", 1, [(SOIL, T0 + 3000, 21.0)])], now_ms=T0)
    soil = next(s for s in storage.sensors() if s.quantity == "moisture")
    assert (soil.value, soil.gateway, soil.ts_ms) == (21.0, "gw-2", T0 + 3000)
    # a resend of an acknowledged seq with another value changes nothing (the stored row
    # wins; on PostgreSQL a reading is keyed (gateway, seq, time): a resend has the same time)
    assert storage.ingest([batch("gw-2", 1, [(SOIL, T0 + 3000, 77.0)])], now_ms=T0).duplicates

    soil = next(s for s in storage.sensors() if s.quantity == "moisture")
    assert (soil.value, soil.ts_ms) == (21.0, T0 + 3000)
    # text values too
    storage.ingest([batch("gw-1", 10, [(STATE, T0, "free"), (STATE, T0 + 1, "busy")])], T0)
    berth = next(s for s in storage.sensors() if s.sensor == "berth-001")
    assert (berth.value, berth.unit) == ("busy", None)


def test_sensors_and_gateways_are_paged(storage: Storage) -> None:
    keys: list[SeriesKey] = [(f"s-{i:02d}", "q", "W") for i in range(25)]
    storage.ingest([batch("gw-1", 1, [(k, T0, i) for i, k in enumerate(keys)])], now_ms=T0)
    for g in range(5):
        storage.record_state(f"gw-{g + 2}", GatewayState(True, 1, T0), now_ms=T0)
    assert storage.count_series() == 25
    pages = [storage.sensors(limit=10, offset=o) for o in (0, 10, 20, 30)]
    assert [len(p) for p in pages] == [10, 10, 5, 0]
    assert [s.sensor for p in pages for s in p] == [k[0] for k in keys]
    assert storage.count_gateways() == 6
    assert [g.gateway for g in storage.gateways(limit=4, offset=2)] == [
        "gw-3",
        "gw-4",
        "gw-5",
        "gw-6",
    ]
    assert len(storage.readings("s-03", limit=5, offset=1)) == 0
    assert len(storage.readings("s-03", limit=5, offset=0)) == 1


def test_reads_do_not_wait_for_the_writer(storage: Storage) -> None:
    """A read goes through the pool, not the ingest connection: while the writer holds an
    open transaction (and its lock), sensors() still answers."""
    storage.ingest([batch("gw-1", 1, [(SOIL, T0, 1)])], now_ms=T0)
    lock = storage._lock  # type: ignore[attr-defined]
    with lock:  # the ingest side is busy
        assert [s.value for s in storage.sensors()] == [1]
        assert storage.readings("soil-001")[0].value == 1


def test_series_downsampled_min_max_mean_count(storage: Storage) -> None:
    hour = 3_600_000
    day0 = T0 - T0 % 86_400_000
    rows: list[tuple[SeriesKey, int, Value]] = []
    for h in range(48):  # two days, one reading every 10 min, value = hour index
        for k in range(6):
            rows.append((SOIL, day0 + h * hour + k * 600_000, h + k / 10))
    rows.append((TEMP, day0, 5))
    storage.ingest([batch("gw-1", 1, rows)], now_ms=T0)
    got = storage.series("soil-001", "moisture", day0, day0 + 48 * hour, points=24)
    assert got.bucket_ms == 3 * hour  # 48 h / 23 gaps -> 2.09 h -> the next width: 3 h
    assert len(got.points) == 16
    first = got.points[0]
    assert (first.start_ms, first.min, first.max, first.count) == (day0, 0, 2.5, 18)
    assert first.mean is not None and abs(first.mean - (0 + 1 + 2) / 3 - 0.25) < 1e-9
    assert sum(p.count for p in got.points) == 288
    # a window inside, in 1,000 points: 10-minute readings in buckets of at least 1 min
    fine = storage.series("soil-001", "moisture", day0, day0 + 2 * hour, points=1000)
    assert fine.bucket_ms == 10_000 and [p.count for p in fine.points] == [1] * 12
    assert storage.series("soil-001", "moisture", T0 - 10 * hour, T0 - 9 * hour, 10).points == []
    with pytest.raises(LookupError):
        storage.series("soil-001", "nothing", day0, day0 + hour)


def test_series_with_several_units_needs_one(storage: Storage) -> None:
    storage.ingest(
        [batch("gw-1", 1, [(("m-1", "energy", "Wh"), T0, 1), (("m-1", "energy", "kWh"), T0, 2)])],
        now_ms=T0,
    )
    with pytest.raises(ValueError, match="several units"):
        storage.series("m-1", "energy", T0, T0 + 1000)
    assert storage.series("m-1", "energy", T0, T0 + 1000, unit="kWh").points[0].max == 2


def test_iter_readings_in_chunks_in_order(storage: Storage) -> None:
    rows: list[tuple[SeriesKey, int, Value]] = [
        (SOIL if i % 2 else TEMP, T0 + (i // 3) * 1000, i) for i in range(100)
    ]
    storage.ingest([batch("gw-1", 1, rows)], now_ms=T0)
    storage.ingest([batch("gw-2", 1, rows[:10])], now_ms=T0)
    got = list(storage.iter_readings("soil-001", chunk=7))
    assert len(got) == 110
    assert [(r.ts_ms, r.gateway, r.seq) for r in got] == sorted(
        (r.ts_ms, r.gateway, r.seq) for r in got
    )
    assert len({(r.gateway, r.seq) for r in got}) == 110
    moisture = list(storage.iter_readings("soil-001", T0 + 3000, T0 + 6000, "moisture", chunk=2))
    assert [(r.gateway, r.value) for r in moisture] == [
        ("gw-1", 9),
        ("gw-1", 11),
        ("gw-2", 9),
        ("gw-1", 13),
        ("gw-1", 15),
        ("gw-1", 17),
    ]
    assert list(storage.iter_readings("nobody")) == []


def test_observations_filtered_ordered_paged(storage: Storage) -> None:
    from hub.storage import BoolOp, Cmp, Not, obs_id

    rows: list[tuple[SeriesKey, int, Value]] = [(SOIL, T0 + i * 1000, i * 1.5) for i in range(20)]
    rows += [(STATE, T0, "free")]
    storage.ingest([batch("gw-1", 1, rows)], now_ms=T0)
    soil = next(s.id for s in storage.series_list("soil-001") if s.quantity == "moisture")
    window = BoolOp("and", Cmp("ts_ms", "ge", T0 + 5000), Cmp("ts_ms", "lt", T0 + 10_000))
    got = storage.observations([soil], window)
    assert [o.value for o in got] == [7.5, 9.0, 10.5, 12.0, 13.5]
    assert storage.count_observations([soil], window) == 5
    desc = storage.observations([soil], Cmp("value", "gt", 20), [("value", True)], limit=3)
    assert [o.value for o in desc] == [28.5, 27.0, 25.5]
    either = BoolOp("or", Cmp("value", "eq", 0), Cmp("value", "eq", "free"))
    assert {o.value for o in storage.observations(None, either)} == {0, "free"}
    assert storage.count_observations(None, Not(either)) == 19
    third = storage.observations([soil], None, [("ts_ms", False)], limit=1, offset=2)[0]
    oid = obs_id(third.gateway_id, third.seq)
    assert storage.observation(oid) == third
    assert storage.observation(oid + (1 << 50)) is None
    after = storage.observations([soil], Cmp("obs_id", "gt", oid), limit=100)
    assert len(after) == 17
    assert storage.observations([], None) == []


def test_bucket_widths() -> None:
    from hub.storage import bucket_for

    year = 365 * 86_400_000
    assert bucket_for(0, year, 1000) == 43_200_000  # a year / 999 = 8.8 h -> 12 h: 731 buckets
    assert bucket_for(7, year + 7, 730) == 86_400_000
    assert bucket_for(0, 1000, 1000) == 1000
    assert bucket_for(0, 100 * year, 10) > year
    assert bucket_for(0, 3_600_000, 10_000_000) == 1000


def test_postgres_readings_are_partitioned_by_month(
    pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from hub.storage import _postgres
    from hub.tests.conftest import _reset_postgres

    _reset_postgres(pg_database)
    storage = open_storage(pg_database, tmp_path)
    try:
        db = storage._db  # type: ignore[attr-defined]
        now_ms = int(time.time() * 1000)
        this = _postgres.month_index(now_ms)
        parts = {
            name
            for (name,) in db.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'readings'::regclass"
            ).fetchall()
        }
        ahead = {_postgres.partition_name(m) for m in range(this, this + 3)}
        assert ahead | {"readings_default"} <= parts  # made ahead at start

        def where(seq: int) -> str:
            row = db.execute(
                "SELECT tableoid::regclass::text FROM readings WHERE seq = %s", (seq,)
            ).fetchone()
            return str(row[0])

        five_back = _postgres.month_bounds(this - 5)[0] + 3_600_000
        with monkeypatch.context() as m:
            m.setattr(_postgres, "MONTHS_BACK", 1)  # five months back is out of the window
            storage.ingest([batch("gw-1", 1, [(SOIL, five_back, 1)])], now_ms=now_ms)
        assert where(1) == "readings_default"
        storage._months = None  # type: ignore[attr-defined]  # a restarted worker
        storage.ingest(
            [batch("gw-1", 2, [(SOIL, five_back + 1000, 2), (SOIL, 1000, 3), (SOIL, now_ms, 4)])],
            now_ms=now_ms,
        )
        # the month's partition was made, and the row the default held moved into it
        assert where(1) == where(2) == _postgres.partition_name(this - 5)
        assert where(3) == "readings_default"  # 1970: a clock far off
        assert where(4) == _postgres.partition_name(this)
        assert storage.count_readings() == 4
        # resends still absorbed, wherever the row lives
        again = storage.ingest(
            [batch("gw-1", 1, [(SOIL, five_back, 1), (SOIL, five_back + 1000, 2)])], now_ms
        )
        assert (again.inserted, again.duplicates) == (0, 2)
        # the range query prunes to the partition of the month
        plan = "\n".join(
            r[0]
            for r in db.execute(
                "EXPLAIN SELECT * FROM readings WHERE series_id = 1 AND ts_ms >= %s AND ts_ms < %s",
                (five_back, five_back + 86_400_000),
            ).fetchall()
        )
        assert _postgres.partition_name(this - 5) in plan
        assert "readings_default" not in plan and _postgres.partition_name(this) not in plan
    finally:
        storage.close()


def test_sensors_json_is_the_sensors_list(storage: Storage) -> None:
    """The JSON the database builds says what the rows say, value for value."""
    import json

    from hub._api import iso, value_fields

    rows: list[tuple[SeriesKey, int, Value]] = [
        (SOIL, T0 + 1, 35.27),
        (TEMP, T0 + 999, 12),
        (METER, T0 + 1000, 1_000_123),
        (STATE, T0 + 5, 'occupied "A", quay 2'),
        (("neg-1", "level", "mm"), 1_000_000_000_007, -0.5),
        (("inf-1", "level", "mm"), T0, float("inf")),
    ]
    storage.ingest([batch("gw-1", 1, rows)], now_ms=T0)
    got = json.loads(storage.sensors_json(100))
    want = [
        {
            "sensor": s.sensor,
            "quantity": s.quantity,
            "unit": s.unit,
            **value_fields(s.value),
            "ts": iso(s.ts_ms),
            "ts_ms": s.ts_ms,
            "flags": s.flags,
            "gateway": s.gateway,
        }
        for s in storage.sensors()
    ]
    assert got == want
    assert json.loads(storage.sensors_json(2, 2)) == want[2:4]
    assert json.loads(storage.sensors_json(10, 100)) == []


def test_sqlite_checkpoints_run_off_the_ingest_connection(tmp_path: Path) -> None:
    """Once a SQLite storage ingests, its WAL is copied back by a checkpointer thread of its
    own; the ingest connection checkpoints only past a backstop (SQLite's default: every
    1,000 pages, inside the ingest's COMMIT). Nothing committed is lost on the way."""
    import sqlite3
    import time

    from hub.storage._sqlite import CHECKPOINT_BACKSTOP, SqliteStorage

    path = tmp_path / "hub.sqlite3"
    storage = SqliteStorage(path)
    storage.migrate()
    assert storage._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    rows = [(SOIL, T0 + i, i) for i in range(5000)]
    storage.ingest([batch("gw-1", 1, rows)], now_ms=T0)
    assert storage._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == CHECKPOINT_BACKSTOP
    deadline = time.monotonic() + 10
    while storage.checkpoints < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert storage.checkpoints >= 1
    with sqlite3.connect(path) as other:  # every frame of the WAL is in the database file
        busy, frames, done = other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert busy == 0 and frames == done
    storage.close()
    assert storage._checkpointer is not None and not storage._checkpointer.is_alive()
    with SqliteStorage(path) as again:
        assert again.count_readings() == 5000


def test_one_group_of_many_gateways_counts_each_gateway(storage: Storage) -> None:
    """A group of batches from several gateways (in any order, one of them twice, one a
    resend) updates each gateway's counters once and exactly (PostgreSQL: one statement for
    all of them, rows locked in id order)."""
    names = [f"gw-{i:02d}" for i in range(12)]
    storage.ingest([batch(n, 1, [(SOIL, T0, 1)]) for n in names[:3]], now_ms=T0)  # registered
    group = [
        batch(n, 10, [(SOIL, T0 + 1, 2), (TEMP, T0 + 1, 3.5)], backlog=i)
        for i, n in reversed(list(enumerate(names)))
    ]
    group.append(batch("gw-05", 20, [(SOIL, T0 + 2, 4)], backlog=99))
    group.append(batch("gw-00", 10, [(SOIL, T0 + 1, 2), (TEMP, T0 + 1, 3.5)], backlog=0))
    result = storage.ingest(group, now_ms=T0 + 50)
    assert (result.inserted, result.duplicates) == (25, 2)
    got = {g.gateway: g for g in storage.gateways()}
    for i, n in enumerate(names):
        g = got[n]
        held = (1 if i < 3 else 0) + 2 + (1 if n == "gw-05" else 0)
        groups = (1 if i < 3 else 0) + 1 + (1 if n in ("gw-05", "gw-00") else 0)
        assert (g.readings, g.batches, g.last_seen_ms) == (held, groups, T0 + 50), n
        assert g.backlog == (99 if n == "gw-05" else i), n

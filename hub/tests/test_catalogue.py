"""Datasets, sensor metadata and erasures in the hub's storage, on both backends."""

from __future__ import annotations

import pytest

from hub.storage import (
    ETALAB,
    CatalogueError,
    Dataset,
    NotInCatalogue,
    SensorMeta,
    SeriesKey,
    Storage,
    Value,
)
from hub.tests.test_storage import METER, SOIL, T0, TEMP, batch

BERTH: SeriesKey = ("berth-001", "occupancy", None)


def fill(storage: Storage) -> None:
    rows: list[tuple[SeriesKey, int, Value]] = []
    for i in range(10):
        rows += [(SOIL, T0 + i * 1000, 20 + i), (TEMP, T0 + i * 1000, 10 + i)]
        rows += [(METER, T0 + i * 1000, 1000 * i), (BERTH, T0 + i * 1000, i % 2)]
    storage.ingest([batch("gw-1", 1, rows)], now_ms=T0)


def configure(storage: Storage) -> None:
    storage.put_dataset(Dataset("parks", True, ETALAB, "soil in the parks", "Parcs"), "t", T0)
    storage.put_dataset(Dataset("water", False, "restricted", "meters", "Eau"), "t", T0)
    storage.put_sensor_meta(
        SensorMeta("soil-001", "parks", (-1.15, 46.16), "parc-charruyer", "probe", "soil"), "t", T0
    )
    storage.put_sensor_meta(
        SensorMeta("meter-001", "water", (-1.16, 46.15), "rue-x", "meter", "water", True), "t", T0
    )


def test_catalogue_and_what_each_may_read(storage: Storage) -> None:
    fill(storage)
    configure(storage)
    every = {e.sensor: e for e in storage.sensor_catalogue()}
    assert set(every) == {"soil-001", "meter-001", "berth-001"}
    assert every["berth-001"].dataset is None and not every["berth-001"].open  # secure default
    assert every["soil-001"].open and every["soil-001"].licence == ETALAB
    assert every["soil-001"].location == (-1.15, 46.16)
    assert every["meter-001"].personal and not every["meter-001"].open
    # anonymous: open datasets only; a reader of "water": that too
    assert [e.sensor for e in storage.sensor_catalogue(granted=())] == ["soil-001"]
    assert [e.sensor for e in storage.sensor_catalogue(granted={"water"})] == [
        "meter-001",
        "soil-001",
    ]
    assert {s.sensor for s in storage.sensors(granted=())} == {"soil-001"}
    assert storage.count_series(granted=()) == 2 and storage.count_series() == 4
    assert {s.sensor for s in storage.sensors(granted={"water"})} == {"soil-001", "meter-001"}
    assert storage.sensor_access("meter-001") == ("water", False)
    assert storage.sensor_access("berth-001") == (None, False)
    assert storage.site_sensors("rue-x") == ["meter-001"]


def test_a_personal_sensor_never_goes_into_an_open_dataset(storage: Storage) -> None:
    configure(storage)
    with pytest.raises(CatalogueError, match="personal"):
        storage.put_sensor_meta(SensorMeta("meter-001", "parks", personal=True), "t", T0)
    with pytest.raises(CatalogueError, match="personal"):  # nor by opening its dataset
        storage.put_dataset(Dataset("water", True, ETALAB, "", ""), "t", T0)
    assert not storage.dataset("water").open
    with pytest.raises(NotInCatalogue):
        storage.put_sensor_meta(SensorMeta("x", "nope"), "t", T0)
    with pytest.raises(CatalogueError, match="WGS84"):
        storage.put_sensor_meta(SensorMeta("x", None, (200.0, 0.0)), "t", T0)
    # removing a dataset leaves its sensors in none: closed
    assert storage.remove_dataset("parks") == 1
    assert storage.sensor_access("soil-001") == (None, False)


def test_erasure_removes_the_range_and_keeps_it_erased(storage: Storage) -> None:
    fill(storage)
    configure(storage)
    assert storage.count_readings() == 40
    deleted = storage.erase_readings(["soil-001"], T0 + 5000, T0 + 100_000, "alice", T0, "GDPR")
    assert deleted == 10  # 5 moisture, 5 temperature
    left = storage.readings("soil-001")
    assert len(left) == 10 and max(r.ts_ms for r in left) == T0 + 4000
    # the latest values went back to the newest that remain
    latest = {(s.sensor, s.quantity): s for s in storage.sensors()}
    assert latest[("soil-001", "moisture")].ts_ms == T0 + 4000
    assert latest[("soil-001", "moisture")].value == 24
    assert latest[("meter-001", "energy")].ts_ms == T0 + 9000  # untouched
    (gw,) = storage.gateways()
    assert gw.readings == 30
    (e,) = storage.erasures()
    assert (e.sensor, e.from_ms, e.to_ms, e.deleted, e.actor, e.reason) == (
        "soil-001",
        T0 + 5000,
        T0 + 100_000,
        10,
        "alice",
        "GDPR",
    )
    # the gateway resends from its buffer (another session): acknowledged, not stored again
    again: list[tuple[SeriesKey, int, Value]] = [(SOIL, T0 + i * 1000, 20 + i) for i in range(10)]
    result = storage.ingest([batch("gw-1", 1000, again)], now_ms=T0 + 1)
    assert (result.erased, result.inserted, result.duplicates) == (5, 5, 0)
    assert len(storage.readings("soil-001", from_ms=T0 + 5000)) == 0
    # a site's readings: every sensor of the site
    n = storage.erase_readings(storage.site_sensors("rue-x"), T0, T0 + 3000, "alice", T0, "")
    assert n == 3 and storage.count_readings() == 32


def test_erasure_made_by_another_connection_is_seen_by_ingest(
    storage: Storage, storage_spec: str, tmp_path: object
) -> None:
    from pathlib import Path

    from hub.storage import open_storage

    fill(storage)
    assert storage.ingest([batch("gw-1", 500, [(SOIL, T0 + 50, 1)])], T0).erased == 0
    with open_storage(storage_spec, Path(str(tmp_path))) as other:  # e.g. the CLI
        assert other.erase_readings(["soil-001"], T0, T0 + 60, "bob", T0) == 3
    r = storage.ingest([batch("gw-1", 501, [(SOIL, T0 + 51, 2), (SOIL, T0 + 70, 3)])], T0)
    assert (r.erased, r.inserted) == (1, 1)

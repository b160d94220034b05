"""/api/v1/series, /api/v1/readings.csv and the pages of the lists, over HTTP, on both
backends: as a chart, a spreadsheet and a careless client would use them."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from hub.storage import Dataset, ReadingRow, SensorMeta, SeriesKey, Storage, Value
from hub.tests.access_support import admin_client
from hub.tests.test_storage import SOIL, STATE, T0, TEMP, batch

HOUR = 3_600_000


@pytest.fixture
async def http(storage: Storage, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with admin_client(storage, tmp_path) as client:
        yield client


def fill(storage: Storage) -> None:
    rows: list[tuple[SeriesKey, int, Value]] = [
        (SOIL, T0 + i * 60_000, 20 + (i % 10)) for i in range(24 * 60)
    ]
    rows += [(TEMP, T0, 11.5), (STATE, T0, 'free, "quoted"'), (STATE, T0 + 1, "busy")]
    storage.ingest([batch("gw-1", 1, rows)], now_ms=T0)


async def test_series_for_a_chart(storage: Storage, http: httpx.AsyncClient) -> None:
    fill(storage)
    params = {
        "sensor": "soil-001",
        "quantity": "moisture",
        "from": str(T0),
        "to": str(T0 + 24 * HOUR),
    }
    got = (await http.get("/api/v1/series", params={**params, "points": "100"})).json()
    assert got["bucket_ms"] == 15 * 60_000 and got["unit"] == "%RH"
    assert len(got["points"]) == 96
    first = got["points"][0]
    assert (first["min"], first["max"], first["count"]) == (20, 29, 15)
    assert first["t_ms"] == T0 and first["t"].startswith("2025-12-01T00:00")
    assert sum(p["count"] for p in got["points"]) == 24 * 60
    iso = {**params, "from": "2025-12-01T00:00:00Z", "to": "2025-12-01T01:00:00+00:00"}
    got = (await http.get("/api/v1/series", params=iso)).json()
    assert got["bucket_ms"] == 5000 and len(got["points"]) == 60  # 1,000 points by default


@pytest.mark.parametrize(
    ("params", "status", "named"),
    [
        ({"quantity": "moisture"}, 422, "sensor"),
        ({"sensor": "soil-001"}, 422, "quantity"),
        ({"sensor": "soil-001", "quantity": "moisture", "points": "1"}, 422, "points"),
        ({"sensor": "soil-001", "quantity": "moisture", "points": "10001"}, 422, "points"),
        ({"sensor": "soil-001", "quantity": "moisture", "points": "lots"}, 422, "points"),
        ({"sensor": "soil-001", "quantity": "moisture", "from": "yesterday"}, 422, "from"),
        ({"sensor": "soil-001", "quantity": "moisture", "from": "2", "to": "1"}, 422, "from"),
        ({"sensor": "soil-001", "quantity": "nothing", "from": "0"}, 404, "nothing"),
        ({"sensor": "x" * 257, "quantity": "moisture"}, 422, "sensor"),
    ],
)
async def test_series_bad_input_is_named(
    storage: Storage, http: httpx.AsyncClient, params: dict[str, str], status: int, named: str
) -> None:
    fill(storage)
    r = await http.get("/api/v1/series", params=params)
    assert r.status_code == status
    assert named in r.text


async def test_names_as_long_as_the_wire_format_allows_are_served(
    storage: Storage, http: httpx.AsyncClient
) -> None:
    """A sensor id and quantity of 256 characters (the wire format's limit, stored by ingest)
    are charted and exported, not refused at 128 as they were."""
    from hub._decode import MAX_NAME

    key: SeriesKey = ("s" * MAX_NAME, "q" * MAX_NAME, "Cel")
    storage.ingest([batch("gw-1", 1, [(key, T0 + i * 1000, i) for i in range(10)])], now_ms=T0)
    params = {"sensor": key[0], "quantity": key[1], "from": str(T0), "to": str(T0 + HOUR)}
    got = await http.get("/api/v1/series", params=params)
    assert got.status_code == 200, got.text[:300]
    assert got.json()["sensor"] == key[0] and sum(p["count"] for p in got.json()["points"]) == 10
    r = await http.get("/api/v1/readings.csv", params={"sensor": key[0], "quantity": key[1]})
    assert r.status_code == 200, r.text[:300]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["value"] for row in rows] == [str(i) for i in range(10)]
    assert {row["sensor"] for row in rows} == {key[0]}


async def test_open_geojson_is_built_once_and_fresh_after_a_write(
    storage: Storage, http: httpx.AsyncClient
) -> None:
    """The GeoJSON of a dataset is served again (the same document, `generated` included)
    until this process writes: a new reading or a catalogue change shows at once."""
    import asyncio

    fill(storage)
    storage.put_dataset(Dataset("parks", True, "etalab-2.0", "", "parks dept"), "test", T0)
    storage.put_sensor_meta(SensorMeta("soil-001", "parks", (-1.15, 46.16)), "test", T0)
    storage.put_sensor_meta(SensorMeta("berth-001", "parks", kind="berth"), "test", T0)
    url = "/open/v1/datasets/parks.geojson"
    first = await http.get(url)
    assert first.status_code == 200 and first.headers["x-licence"] == "etalab-2.0"
    assert first.headers["x-total-count"] == "2"
    await asyncio.sleep(0.02)
    again = await http.get(url)
    assert again.content == first.content  # not rebuilt: the same `generated`
    doc = first.json()
    soil = next(f for f in doc["features"] if f["id"] == "soil-001")
    assert {x["quantity"]: x["value"] for x in soil["properties"]["latest"]} == {
        "moisture": 29,
        "temperature": 11.5,
    }
    storage.ingest([batch("gw-1", 10_000, [(SOIL, T0 + 48 * HOUR, 77)])], now_ms=T0)
    soil = next(f for f in (await http.get(url)).json()["features"] if f["id"] == "soil-001")
    assert soil["properties"]["latest"][0]["value"] == 77
    storage.put_dataset(Dataset("parks", True, "ODbL-1.0", "trees", "parks dept"), "test", T0)
    changed = await http.get(url)
    assert changed.json()["licence"]["id"] == "ODbL-1.0" and changed.headers["x-licence"] == (
        "ODbL-1.0"
    )
    one = await http.get(url, params={"limit": 1, "offset": 1})
    assert one.headers["x-total-count"] == "2" and len(one.json()["features"]) == 1
    assert (
        one.json()["features"][0]["id"]
        != (await http.get(url, params={"limit": 1})).json()["features"][0]["id"]
    )


async def test_csv_export_streams_every_reading(storage: Storage, http: httpx.AsyncClient) -> None:
    fill(storage)
    async with http.stream("GET", "/api/v1/readings.csv", params={"sensor": "soil-001"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/csv")
        assert 'filename="soil-001.csv"' in r.headers["content-disposition"]
        chunks = [c async for c in r.aiter_text()]
    rows = list(csv.DictReader(io.StringIO("".join(chunks))))
    assert len(rows) == 24 * 60 + 1
    assert rows[0]["ts"] == "2025-12-01T00:00:00.000+00:00" and rows[0]["value"] in ("20", "11.5")
    moisture = [r for r in rows if r["quantity"] == "moisture"]
    assert [int(r["value"]) for r in moisture[:3]] == [20, 21, 22]
    # a text with a comma and quotes survives the round trip
    r2 = await http.get("/api/v1/readings.csv", params={"sensor": "berth-001"})
    texts = [row["value"] for row in csv.DictReader(io.StringIO(r2.text))]
    assert texts == ['free, "quoted"', "busy"]
    # a window and a quantity, and the limit
    r3 = await http.get(
        "/api/v1/readings.csv",
        params={"sensor": "soil-001", "quantity": "moisture", "from": str(T0 + HOUR), "limit": "5"},
    )
    got = list(csv.DictReader(io.StringIO(r3.text)))
    assert [int(row["ts_ms"]) for row in got] == [T0 + HOUR + i * 60_000 for i in range(5)]
    assert (await http.get("/api/v1/readings.csv", params={"sensor": "nobody"})).status_code == 404
    bad = await http.get("/api/v1/readings.csv", params={"sensor": "soil-001", "limit": "0"})
    assert bad.status_code == 422 and "limit" in bad.text


async def test_lists_are_paged_with_link_headers(storage: Storage, http: httpx.AsyncClient) -> None:
    keys: list[SeriesKey] = [(f"s-{i:02d}", "q", "W") for i in range(25)]
    storage.ingest([batch("gw-1", 1, [(k, T0, i) for i, k in enumerate(keys)])], now_ms=T0)
    seen: list[str] = []
    url: str | None = "/api/v1/sensors?limit=10"
    while url is not None:
        r = await http.get(url)
        assert r.headers["x-total-count"] == "25"
        seen += [s["sensor"] for s in r.json()]
        links = httpx.Response(200, headers={"link": r.headers.get("link", "")}).links
        url = links.get("next", {}).get("url")
    assert seen == [k[0] for k in keys]
    r = await http.get("/api/v1/sensors", params={"limit": "10001"})
    assert r.status_code == 422 and "limit" in r.text
    r = await http.get("/api/v1/gateways", params={"offset": "-1"})
    assert r.status_code == 422 and "offset" in r.text
    page = (await http.get("/api/v1/readings", params={"sensor": "s-01", "limit": 1})).json()
    assert page["next_offset"] == 1 and page["count"] == 1


def test_csv_is_produced_as_it_is_read(storage: Storage) -> None:
    """The body is a generator over chunked reads: the first lines exist before the rows
    after them have been read."""
    from hub._series_api import csv_chunks

    fill(storage)
    pulled = 0

    def counting() -> Iterator[ReadingRow]:
        nonlocal pulled
        for row in storage.iter_readings("soil-001", chunk=100):
            pulled += 1
            yield row

    body = csv_chunks(counting(), limit=10_000, per_chunk=50)
    first = next(body)
    assert first.startswith("ts,ts_ms,") and first.count("\n") == 51
    assert pulled == 50
    assert sum(c.count("\n") for c in body) == 24 * 60 + 1 - 50


async def test_latest_values_are_fresh_after_a_write_in_this_process(
    storage: Storage, http: httpx.AsyncClient
) -> None:
    storage.ingest([batch("gw-1", 1, [(SOIL, T0, 1)])], now_ms=T0)
    assert [s["value"] for s in (await http.get("/api/v1/sensors")).json()] == [1]
    storage.ingest([batch("gw-1", 2, [(SOIL, T0 + 1, 2)])], now_ms=T0)
    assert [s["value"] for s in (await http.get("/api/v1/sensors")).json()] == [2]


def test_fresh_cache_serves_stale_while_one_caller_recomputes() -> None:
    import threading
    import time

    from hub._api import FreshCache
    from hub.storage._base import bump_generation

    cache: FreshCache[str, int] = FreshCache(ttl=60)
    calls = []
    assert cache.get("k", lambda: calls.append(1) or 1) == 1
    assert cache.get("k", lambda: calls.append(2) or 2) == 1  # fresh: not recomputed
    bump_generation()  # a write in this process
    entered, release = threading.Event(), threading.Event()

    def slow() -> int:
        entered.set()
        release.wait(5)
        return 3

    t = threading.Thread(target=lambda: cache.get("k", slow))
    t.start()
    assert entered.wait(5)
    assert cache.get("k", lambda: 99) == 1  # the previous value while it recomputes
    release.set()
    t.join(5)
    assert cache.get("k", lambda: 99) == 3
    short: FreshCache[str, int] = FreshCache(ttl=0.05)
    short.get("k", lambda: 1)
    time.sleep(0.06)
    assert short.get("k", lambda: 2) == 2  # another process's writes: seen after ttl


async def test_series_and_csv_of_closed_datasets_need_a_grant(
    storage: Storage, tmp_path: Path
) -> None:
    from fleet import Fleet
    from hub._api import create_app
    from hub.auth import Access

    fill(storage)
    storage.put_dataset(Dataset("parks", False, "restricted", "", "parks dept"), "test", T0)
    storage.put_sensor_meta(SensorMeta("soil-001", "parks"), "test", T0)
    params = {"sensor": "soil-001", "quantity": "moisture", "from": str(T0), "to": str(T0 + HOUR)}
    with Fleet(tmp_path / "registry") as registry:
        registry.accounts.add_user("ana", "reader", "test", datasets=("parks",))
        registry.accounts.add_user("bob", "reader", "test", datasets=("harbour",))
        tokens = {u: registry.accounts.create_token(u, "test").token for u in ("ana", "bob")}
        transport = httpx.ASGITransport(app=create_app(storage, access=Access(registry)))
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            for who, status in ((None, 404), ("bob", 404), ("ana", 200)):
                headers = {"Authorization": f"Bearer {tokens[who]}"} if who else {}
                r = await http.get("/api/v1/series", params=params, headers=headers)
                assert r.status_code == status, (who, r.text)
                r = await http.get(
                    "/api/v1/readings.csv", params={"sensor": "soil-001"}, headers=headers
                )
                assert r.status_code == status, (who, r.text)
            # berth-001 is in no dataset: admin only
            headers = {"Authorization": f"Bearer {tokens['ana']}"}
            r = await http.get(
                "/api/v1/readings.csv", params={"sensor": "berth-001"}, headers=headers
            )
            assert r.status_code == 404


def test_fresh_cache_rebuilds_in_the_background_while_it_serves_the_last_one() -> None:
    """Past `ttl` (within `stale_for`) a caller is served at once and the entry is rebuilt
    once in the background; past `ttl + stale_for` (nobody asked) the caller rebuilds it."""
    import threading
    import time

    from hub._cache import FreshCache

    cache: FreshCache[str, int] = FreshCache(ttl=0.05, stale_for=60, follow_writes=False)
    assert cache.get("k", lambda: 1) == 1
    time.sleep(0.06)
    started, release = threading.Event(), threading.Event()

    def slow() -> int:
        started.set()
        release.wait(5)
        return 2

    t0 = time.monotonic()
    assert cache.get("k", slow) == 1  # not waiting for the rebuild
    assert time.monotonic() - t0 < 1 and started.wait(5)
    assert cache.get("k", lambda: 99) == 1  # one rebuild at a time: 99 never computed
    release.set()
    deadline = time.monotonic() + 5
    while cache.get("k", lambda: 98) != 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cache.get("k", lambda: 97) == 2 and cache.background_rebuilds == 1
    idle: FreshCache[str, int] = FreshCache(ttl=0.01, stale_for=0.02, follow_writes=False)
    idle.get("k", lambda: 1)
    time.sleep(0.05)
    assert idle.get("k", lambda: 2) == 2  # too old to be served: the caller rebuilt it


def test_fresh_cache_never_serves_an_entry_of_another_version() -> None:
    """A catalogue change (the version) is seen by the very next call, even while a
    background rebuild of the old version is running: it never gets the old value."""
    import threading
    import time

    from hub._cache import FreshCache

    cache: FreshCache[str, str] = FreshCache(ttl=0.01, stale_for=60, follow_writes=False)
    assert cache.get("k", lambda: "before", version=1) == "before"
    time.sleep(0.02)
    release = threading.Event()

    def old_rebuild() -> str:
        release.wait(5)
        return "old rebuild"

    assert cache.get("k", old_rebuild, version=1) == "before"
    assert cache.get("k", lambda: "after erasure", version=2) == "after erasure"
    release.set()  # the old version's rebuild lands later: it is not served under version 2
    time.sleep(0.1)
    assert cache.get("k", lambda: "rebuilt", version=2) in ("after erasure", "rebuilt")
    assert cache.get("k", lambda: "v3", version=3) == "v3"


async def test_latest_values_and_geojson_answer_a_conditional_get(
    storage: Storage, http: httpx.AsyncClient
) -> None:
    """An ETag on the latest values and on the open GeoJSON: a client that has the current
    document gets 304 without it; after a change, the new one with another tag."""
    fill(storage)
    storage.put_dataset(Dataset("parks", True, "etalab-2.0", "", "parks dept"), "test", T0)
    storage.put_sensor_meta(SensorMeta("soil-001", "parks", (-1.15, 46.16)), "test", T0)
    for url in ("/api/v1/sensors", "/open/v1/datasets/parks.geojson"):
        first = await http.get(url)
        etag = first.headers["etag"]
        assert first.status_code == 200 and etag.startswith('W/"')
        again = await http.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
        other = await http.get(url, headers={"If-None-Match": 'W/"0123", "x"'})
        assert other.status_code == 200 and other.content == first.content
    storage.ingest([batch("gw-1", 10_000, [(SOIL, T0 + 48 * HOUR, 77)])], now_ms=T0)
    for url in ("/api/v1/sensors", "/open/v1/datasets/parks.geojson"):
        r = await http.get(url, headers={"If-None-Match": etag})
        assert r.status_code == 200 and b"77" in r.content


async def test_open_geojson_is_the_document_the_python_side_would_build(
    storage: Storage, http: httpx.AsyncClient
) -> None:
    """The features are built by the database: the same values, types and times as the
    latest values endpoint gives, text and a null position included."""
    fill(storage)
    storage.put_dataset(Dataset("parks", True, "etalab-2.0", "", "parks dept"), "test", T0)
    storage.put_sensor_meta(
        SensorMeta("soil-001", "parks", (-1.15, 46.16), "parc", 'a "quoted" one', "soil"),
        "test",
        T0,
    )
    storage.put_sensor_meta(SensorMeta("berth-001", "parks", kind="berth"), "test", T0)
    doc = (await http.get("/open/v1/datasets/parks.geojson")).json()
    latest = (await http.get("/api/v1/sensors")).json()
    assert [f["id"] for f in doc["features"]] == ["berth-001", "soil-001"]
    berth, soil = doc["features"]
    assert berth["geometry"] is None and berth["properties"]["kind"] == "berth"
    assert soil["geometry"] == {"type": "Point", "coordinates": [-1.15, 46.16]}
    assert soil["properties"]["description"] == 'a "quoted" one'
    for feature in doc["features"]:
        want = [
            {"quantity": s["quantity"], "unit": s["unit"], "value": s["value"], "ts": s["ts"]}
            for s in latest
            if s["sensor"] == feature["id"]
        ]
        assert feature["properties"]["latest"] == want and want
    assert {x["quantity"]: x["value"] for x in berth["properties"]["latest"]} == {"status": "busy"}
    assert {type(x["value"]) for x in soil["properties"]["latest"]} == {int, float}
    assert doc["dataset"]["sensors"] == 2 and doc["licence"]["id"] == "etalab-2.0"

"""/sta/v1.1 over HTTP on both backends, as a SensorThings client, a reader with a token, an
anonymous visitor and a careless or hostile one would use it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet import Fleet
from hub._api import create_app
from hub.auth import Access
from hub.storage import Dataset, SensorMeta, SeriesKey, Storage, Value
from hub.tests.test_storage import METER, SOIL, STATE, T0, TEMP, batch

BASE = "/sta/v1.1"
MINUTE = 60_000


def catalogue(storage: Storage) -> None:
    """soil-001 in an open dataset with a position, meter-001 in a closed one, berth-001 in
    none (closed: admin only)."""
    storage.put_dataset(Dataset("parks", True, "etalab-2.0", "", "parks dept"), "test", T0)
    storage.put_dataset(Dataset("buildings", False, "restricted", "", "energy"), "test", T0)
    storage.put_sensor_meta(
        SensorMeta(
            "soil-001",
            "parks",
            (-1.1528, 46.1591),
            "Parc Charruyer",
            "soil probe by the pond",
            "soil",
        ),
        "test",
        T0,
    )
    storage.put_sensor_meta(SensorMeta("meter-001", "buildings", kind="meter"), "test", T0)


@dataclass
class Hub:
    anonymous: httpx.AsyncClient
    reader: httpx.AsyncClient
    admin: httpx.AsyncClient
    ids: dict[str, int]  # series id by "sensor/quantity"


def fill(storage: Storage) -> None:
    rows: list[tuple[SeriesKey, int, Value]] = [(SOIL, T0 + i * MINUTE, 30 + i) for i in range(20)]
    rows += [(TEMP, T0 + i * MINUTE, 10.5 + i) for i in range(5)]
    rows += [(METER, T0 + i * MINUTE, 1000 * i) for i in range(3)]
    rows += [(STATE, T0, "free"), (STATE, T0 + MINUTE, "busy")]
    storage.ingest([batch("gw-1", 1, rows)], now_ms=T0)


@pytest.fixture
async def hub(storage: Storage, tmp_path: Path) -> AsyncIterator[Hub]:
    fill(storage)
    catalogue(storage)
    with Fleet(tmp_path / "registry") as registry:
        admin_token = registry.accounts.reset_admin("test").token
        registry.accounts.add_user("ana", "reader", "test", datasets=("buildings",))
        reader_token = registry.accounts.create_token("ana", "test").token
        app = create_app(storage, access=Access(registry))
        transport = httpx.ASGITransport(app=app)

        def client(token: str | None) -> httpx.AsyncClient:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return httpx.AsyncClient(transport=transport, base_url="http://hub", headers=headers)

        ids = {f"{s.sensor}/{s.quantity}": s.id for s in storage.series_list()}
        async with (
            client(None) as anon,
            client(reader_token) as reader,
            client(admin_token) as admin,
        ):
            yield Hub(anon, reader, admin, ids)


async def get(http: httpx.AsyncClient, path: str, status: int = 200, **params: Any) -> Any:
    r = await http.get(BASE + path, params=params)
    assert r.status_code == status, (path, params, r.text)
    return r.json() if r.headers["content-type"].startswith("application/json") else r.text


async def every(http: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every entity of a collection, following @iot.nextLink."""
    page = await get(http, path, **params)
    out = list(page["value"])
    while "@iot.nextLink" in page:
        r = await http.get(page["@iot.nextLink"])
        assert r.status_code == 200, r.text
        page = r.json()
        out += page["value"]
    return out


async def test_service_document(hub: Hub) -> None:
    doc = await get(hub.anonymous, "")
    assert [v["name"] for v in doc["value"]] == [
        "Things",
        "Locations",
        "HistoricalLocations",
        "Sensors",
        "ObservedProperties",
        "Datastreams",
        "Observations",
        "FeaturesOfInterest",
    ]
    assert doc["value"][0]["url"] == "http://hub/sta/v1.1/Things"
    assert any("request-data" in c for c in doc["serverSettings"]["conformance"])


async def test_each_principal_sees_its_datasets_only(hub: Hub) -> None:
    names = {}
    for who, http in (("anonymous", hub.anonymous), ("reader", hub.reader), ("admin", hub.admin)):
        things = await every(http, "/Things")
        names[who] = sorted(t["name"] for t in things)
        datastreams = await every(http, "/Datastreams")
        observations = await every(http, "/Observations", **{"$top": 7})
        sensors = {d["name"].split()[0] for d in datastreams}
        assert sensors == set(names[who])
        assert len(observations) == {"anonymous": 25, "reader": 28, "admin": 30}[who]
    assert names == {
        "anonymous": ["soil-001"],
        "reader": ["meter-001", "soil-001"],
        "admin": ["berth-001", "meter-001", "soil-001"],
    }
    meter = hub.ids["meter-001/energy"]
    await get(hub.anonymous, f"/Datastreams({meter})", 404)
    await get(hub.anonymous, f"/Datastreams({meter})/Observations", 404)
    assert len((await get(hub.reader, f"/Datastreams({meter})/Observations"))["value"]) == 3
    obs = (await get(hub.reader, f"/Datastreams({meter})/Observations"))["value"][0]
    await get(hub.anonymous, f"/Observations({obs['@iot.id']})", 404)
    berth = hub.ids["berth-001/status"]
    await get(hub.reader, f"/Things({berth})", 404)
    assert (await get(hub.admin, f"/Things({berth})"))["name"] == "berth-001"
    bad = await hub.anonymous.get(BASE + "/Things", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401


async def test_entities_carry_the_model(hub: Hub) -> None:
    soil = hub.ids["soil-001/moisture"]
    thing = await get(hub.anonymous, f"/Things({soil})")
    assert thing["properties"] == {
        "sensor": "soil-001",
        "kind": "soil",
        "site": "Parc Charruyer",
        "dataset": "parks",
        "licence": "etalab-2.0",
        "access": "open",
    }
    assert thing["Datastreams@iot.navigationLink"].endswith(f"/Things({soil})/Datastreams")
    (location,) = (await get(hub.anonymous, f"/Things({soil})/Locations"))["value"]
    assert location["location"] == {"type": "Point", "coordinates": [-1.1528, 46.1591]}
    assert location["encodingType"] == "application/geo+json"
    (hl,) = (await get(hub.anonymous, f"/Things({soil})/HistoricalLocations"))["value"]
    assert hl["time"] == "2025-12-01T00:00:00.000Z"
    ds = await get(hub.anonymous, f"/Datastreams({soil})")
    assert ds["unitOfMeasurement"]["symbol"] == "%RH"
    assert ds["observationType"].endswith("OM_Measurement")
    assert ds["phenomenonTime"] == "2025-12-01T00:00:00.000Z/2025-12-01T00:19:00.000Z"
    assert (await get(hub.anonymous, f"/Datastreams({soil})/Thing"))["name"] == "soil-001"
    assert (await get(hub.anonymous, f"/Datastreams({soil})/ObservedProperty"))[
        "name"
    ] == "moisture"
    assert (await get(hub.anonymous, f"/Datastreams({soil})/Sensor"))["name"] == "soil-001"
    first = (await get(hub.anonymous, f"/Datastreams({soil})/Observations", **{"$top": 1}))[
        "value"
    ][0]
    assert (first["result"], first["phenomenonTime"]) == (30, "2025-12-01T00:00:00.000Z")
    oid = first["@iot.id"]
    assert (await get(hub.anonymous, f"/Observations({oid})"))["result"] == 30
    assert (await get(hub.anonymous, f"/Observations({oid})/Datastream"))["@iot.id"] == soil
    foi = await get(hub.anonymous, f"/Observations({oid})/FeatureOfInterest")
    assert foi["feature"]["type"] == "Point"
    assert (
        len(
            (await get(hub.anonymous, f"/FeaturesOfInterest({foi['@iot.id']})/Observations"))[
                "value"
            ]
        )
        == 25
    )
    assert await get(hub.anonymous, f"/Things({soil})/name") == {"name": "soil-001"}
    assert await get(hub.anonymous, f"/Things({soil})/name/$value") == "soil-001"
    assert (await get(hub.anonymous, f"/Datastreams({soil})/Thing/Locations"))["value"][0][
        "@iot.id"
    ] == soil
    texts = await get(hub.admin, f"/Datastreams({hub.ids['berth-001/status']})/Observations")
    assert [o["result"] for o in texts["value"]] == ["free", "busy"]


async def test_paging_count_and_top(hub: Hub) -> None:
    soil = hub.ids["soil-001/moisture"]
    page = await get(
        hub.anonymous, f"/Datastreams({soil})/Observations", **{"$top": 8, "$count": "true"}
    )
    assert page["@iot.count"] == 20 and len(page["value"]) == 8
    assert "%24skip=8" in page["@iot.nextLink"] or "$skip=8" in page["@iot.nextLink"]
    got = await every(hub.anonymous, f"/Datastreams({soil})/Observations", **{"$top": 8})
    assert [o["result"] for o in got] == list(range(30, 50))
    last = await get(
        hub.anonymous, f"/Datastreams({soil})/Observations", **{"$top": 8, "$skip": 16}
    )
    assert len(last["value"]) == 4 and "@iot.nextLink" not in last
    big = await get(hub.admin, "/Observations", **{"$top": 5000})
    assert len(big["value"]) == 30  # a $top over 1,000 is served 1,000 at most a page
    things = await get(hub.anonymous, "/Things", **{"$count": "true", "$top": 0})
    assert things["@iot.count"] == 1 and things["value"] == []


async def test_filter_on_time_result_and_ids(hub: Hub) -> None:
    soil = hub.ids["soil-001/moisture"]
    path = f"/Datastreams({soil})/Observations"

    async def results(expr: str, **more: Any) -> list[Any]:
        return [
            o["result"]
            for o in (await get(hub.anonymous, path, **{"$filter": expr, **more}))["value"]
        ]

    assert await results("phenomenonTime ge 2025-12-01T00:05:00Z and result lt 40") == [
        35,
        36,
        37,
        38,
        39,
    ]
    assert await results("phenomenonTime lt '2025-12-01T01:02:00+01:00'") == [30, 31]
    assert await results("result gt 47 or result eq 30") == [30, 48, 49]
    assert await results("not (result lt 48)") == [48, 49]
    assert await results("(result ge 40 and result le 41) or (result eq 45)") == [40, 41, 45]
    assert await results("45 lt result") == [46, 47, 48, 49]
    assert await results("resultTime gt 2025-12-01T00:18:30.5Z") == [49]
    one = (await get(hub.anonymous, path, **{"$top": 1, "$skip": 3}))["value"][0]["@iot.id"]
    assert await results(f"@iot.id eq {one}") == [33]
    assert await results(f"id gt {one}") == list(range(34, 50))
    every_ds = await get(
        hub.anonymous,
        "/Observations",
        **{"$filter": f"Datastream/@iot.id eq {soil} and result ge 48"},
    )
    assert [o["result"] for o in every_ds["value"]] == [48, 49]
    texts = await get(hub.admin, "/Observations", **{"$filter": "result eq 'busy'"})
    assert [o["result"] for o in texts["value"]] == ["busy"]
    things = await get(
        hub.admin, "/Things", **{"$filter": "properties/kind eq 'meter' or name eq 'berth-001'"}
    )
    assert sorted(t["name"] for t in things["value"]) == ["berth-001", "meter-001"]
    streams = await get(
        hub.admin, "/Datastreams", **{"$filter": "unitOfMeasurement/symbol eq 'Cel'"}
    )
    assert [d["name"] for d in streams["value"]] == ["soil-001 temperature"]
    by_thing = await get(hub.admin, "/Datastreams", **{"$filter": f"Thing/@iot.id eq {soil}"})
    assert len(by_thing["value"]) == 2


async def test_numbers_beyond_64_bits_compare_as_numbers(hub: Hub, storage: Storage) -> None:
    """A whole number no 64-bit column holds is still compared (SQLite's driver cannot bind
    it: it was a 500), exactly, with integers and doubles at the edges of the range."""
    big: SeriesKey = ("big-001", "count", None)
    edges: list[Value] = [2**63 - 1, 1e19, -(2**63), -1e19]
    storage.ingest(
        [batch("gw-2", 1, [(big, T0 + i * MINUTE, v) for i, v in enumerate(edges)])], now_ms=T0
    )
    series = hub.ids["soil-001/moisture"]
    every_number = [*range(30, 50), *(10.5 + i for i in range(5)), 0, 1000, 2000, *edges]

    async def results(expr: str) -> list[Any]:
        got = await every(hub.admin, "/Observations", **{"$filter": expr, "$top": 1000})
        return sorted(o["result"] for o in got if not isinstance(o["result"], str))

    beyond = 9999999999999999999999999
    assert await results(f"result gt {beyond}") == []
    assert await results(f"result ge {beyond}") == []
    assert await results(f"result lt {beyond}") == sorted(every_number)
    assert await results(f"{beyond} gt result") == sorted(every_number)
    assert await results(f"result ne {beyond}") == sorted(every_number)
    assert await results(f"not (result eq {beyond})") == sorted(every_number)
    assert await results("result eq -9223372036854775809") == []
    assert await results("result le -9223372036854775809") == [-1e19]
    assert await results("result gt -9223372036854775809") == sorted([*every_number])[1:]
    assert await results("result gt 9223372036854775808") == [1e19]  # 2^63, a double
    assert await results("result ge 9223372036854775808") == [1e19]
    assert await results("result gt 9223372036854775809") == [1e19]
    assert await results("result lt 9223372036854775809") == sorted(every_number)[:-1]
    assert await results(f"result gt {10**400}") == []
    assert await results(f"result lt -{10**400}") == []
    assert await results(f"result ge -{10**400}") == sorted(every_number)
    assert await results(f"result eq {10**19}") == [1e19]  # exactly 1e19
    assert await results(f"result eq {10**19 + 1}") == []
    assert await results(f"@iot.id gt {beyond}") == []
    assert len(await results(f"@iot.id lt {beyond}")) == len(every_number)
    assert await results(f"@iot.id eq -{beyond}") == []
    assert await results(f"Datastream/@iot.id eq {beyond} or Datastream/@iot.id ne -{beyond}")
    assert await results(f"Datastream/@iot.id eq {series} and result gt {beyond}") == []
    soil = await results(f"Datastream/@iot.id eq {series} and Datastream/@iot.id lt {beyond}")
    assert soil == list(range(30, 50))


async def test_orderby_select_expand(hub: Hub) -> None:
    soil = hub.ids["soil-001/moisture"]
    latest = await get(
        hub.anonymous,
        f"/Datastreams({soil})/Observations",
        **{"$orderby": "phenomenonTime desc", "$top": 1},
    )
    assert latest["value"][0]["result"] == 49
    by_result = await get(
        hub.admin,
        "/Observations",
        **{"$orderby": "result desc", "$top": 2, "$filter": "result lt 100"},
    )
    assert [o["result"] for o in by_result["value"]] == [49, 48]
    names = await get(hub.admin, "/Things", **{"$orderby": "name desc", "$select": "id,name"})
    assert [set(t) for t in names["value"]] == [{"@iot.id", "name"}] * 3
    assert [t["name"] for t in names["value"]] == ["soil-001", "meter-001", "berth-001"]
    expanded = await get(hub.anonymous, "/Things", **{"$expand": "Datastreams,Locations"})
    (thing,) = expanded["value"]
    assert sorted(d["name"] for d in thing["Datastreams"]) == [
        "soil-001 moisture",
        "soil-001 temperature",
    ]
    assert thing["Locations"][0]["location"]["type"] == "Point"
    with_obs = await get(
        hub.anonymous,
        f"/Datastreams({soil})",
        **{
            "$expand": "Observations($top=2;$orderby=phenomenonTime desc;$select=result),Thing($select=name)"
        },
    )
    assert with_obs["Observations"] == [{"result": 49}, {"result": 48}]
    assert "Observations@iot.nextLink" in with_obs
    assert with_obs["Thing"] == {"name": "soil-001"}
    filtered = await get(
        hub.anonymous,
        "/Datastreams",
        **{"$expand": "Observations($filter=result ge 48;$count=true)"},
    )
    moisture = next(d for d in filtered["value"] if d["@iot.id"] == soil)
    assert [o["result"] for o in moisture["Observations"]] == [48, 49]
    assert moisture["Observations@iot.count"] == 2


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("/Things", {"$top": "-1"}, "$top"),
        ("/Things", {"$top": "ten"}, "$top"),
        ("/Things", {"$skip": "1e3"}, "$skip"),
        ("/Things", {"$skip": "99999999999"}, "$skip"),
        ("/Things", {"$count": "maybe"}, "$count"),
        ("/Things", {"$orderby": "name sideways"}, "$orderby"),
        ("/Things", {"$orderby": "nothing"}, "$orderby"),
        ("/Observations", {"$orderby": "parameters/gateway"}, "$orderby"),
        ("/Things", {"$select": "name,nothing"}, "$select"),
        ("/Things", {"$select": "na me"}, "$select"),
        ("/Things", {"$expand": "Datastreams/Observations"}, "$expand"),
        ("/Things", {"$expand": "Datastreams($expand=Observations)"}, "$expand"),
        ("/Things", {"$expand": "Nothing"}, "$expand"),
        ("/Things", {"$expand": "Datastreams($top=x)"}, "$top"),
        ("/Things", {"$filter": "name eq"}, "$filter"),
        ("/Things", {"$filter": "name eq 'x' and"}, "$filter"),
        ("/Things", {"$filter": "(name eq 'x'"}, "$filter"),
        ("/Things", {"$filter": "nothing eq 1"}, "$filter"),
        ("/Things", {"$filter": "substringof('x', name)"}, "$filter"),
        ("/Things", {"$filter": "1 eq 1"}, "$filter"),
        ("/Things", {"$filter": "name ~ 'x'"}, "$filter"),
        ("/Things", {"$filter": "(" * 100 + "name eq 'x'" + ")" * 100}, "$filter"),
        ("/Things", {"$filter": "name eq '" + "x" * 3000 + "'"}, "$filter"),
        ("/Observations", {"$filter": "parameters/gateway eq 'gw-1'"}, "$filter"),
        ("/Observations", {"$filter": "phenomenonTime gt 5"}, "$filter"),
        ("/Observations", {"$filter": "result gt 2025-01-01T00:00:00Z"}, "$filter"),
        ("/Observations", {"$filter": "phenomenonTime gt 2025-13-45T00:00:00Z"}, "$filter"),
        ("/Observations", {"$filter": "@iot.id eq 'x'"}, "$filter"),
        ("/Things", {"$unknown": "1"}, "$unknown"),
        ("/Things", {"$resultFormat": "dataArray"}, "$resultFormat"),
    ],
)
async def test_bad_query_options_are_400_and_named(
    hub: Hub, path: str, params: dict[str, str], named: str
) -> None:
    r = await hub.anonymous.get(BASE + path, params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == 400 and body["message"].startswith(named), body


@pytest.mark.parametrize(
    "path",
    [
        "/Nothing",
        "/Things(99999)",
        "/Things(abc)",
        "/Things('soil-001')",
        "/Things(1)/Nothing",
        "/Things/Datastreams",
        "/Observations(1)",
        "/Observations(99999999999999999)",
        "/Things(1)/name/x",
        "/Datastreams(1)/Observations(123)",
    ],
)
async def test_unknown_paths_are_404(hub: Hub, path: str) -> None:
    r = await hub.admin.get(BASE + path)
    assert r.status_code == 404, r.text
    assert r.json()["code"] == 404


async def test_top_zero_gives_no_link_to_itself(hub: Hub) -> None:
    """$top=0 cannot advance: a client following @iot.nextLink would loop for ever."""
    soil = hub.ids["soil-001/moisture"]
    for path in ("/Things", "/Datastreams", "/Observations", f"/Datastreams({soil})/Observations"):
        page = await get(hub.admin, path, **{"$count": "true", "$top": 0})
        assert page["value"] == [] and page["@iot.count"] > 0, page
        assert "@iot.nextLink" not in page, page
        got = await every(hub.admin, path, **{"$top": 0, "$skip": 1})  # ends
        assert got == []
    thing = await get(hub.admin, f"/Things({soil})", **{"$expand": "Datastreams($top=0)"})
    assert thing["Datastreams"] == [] and "Datastreams@iot.nextLink" not in thing, thing
    one = await get(hub.admin, f"/Things({soil})", **{"$expand": "Datastreams($top=1)"})
    assert "$skip=1" in one["Datastreams@iot.nextLink"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/" + "x" * 60_000, {}),
        ("/Things(1)/" + "x" * 60_000, {}),
        ("/Things(" + "x" * 60_000 + ")", {}),
        ("/Things('" + "9" * 60_000 + "')", {}),
        ("/Things(" + "9" * 60_000 + ")", {}),
        ("/Things", {"$" + "x" * 50_000: "1"}),
        ("/Things", {"$orderby": "x" * 50_000}),
        ("/Things", {"$select": "x" * 50_000}),
        ("/Things", {"$expand": "x" * 50_000}),
        ("/Things", {"$expand": "Datastreams(" + "x" * 50_000 + ")"}),
        ("/Things", {"$top": "9" * 50_000}),
        ("/Observations", {"$filter": "a" * 1990 + " eq 1"}),
        ("/Observations", {"$orderby": "a" * 1990}),
        ("/Things", {"$filter": "a" * 1990 + " eq 1"}),
        ("/Things", {"$filter": "name eq 1 " + "b" * 1990}),
        ("/Things", {"$expand": "Datastreams,Thing,Locations," + "Y" * 5000}),
    ],
)
async def test_errors_echo_a_bounded_part_of_what_was_given(
    hub: Hub, path: str, params: dict[str, str]
) -> None:
    r = await hub.admin.get(BASE + path, params=params)
    assert r.status_code in (400, 404), r.text[:300]
    assert len(r.content) < 400, r.text[:300]
    assert r.json()["code"] == r.status_code


@pytest.mark.parametrize("ident", ["'a'", "a", "-1", "'-1'", "1.5", "'soil-001'", "''", " 1"])
async def test_an_id_that_is_no_whole_number_is_named_in_the_404(hub: Hub, ident: str) -> None:
    for path in (
        f"/Things({ident})",
        f"/Observations({ident})",
        f"/Things(1)/Datastreams({ident})",
    ):
        r = await hub.admin.get(BASE + path)
        assert r.status_code == 404, r.text
        message = r.json()["message"]
        assert f"({ident})" in message and "(-1)" not in message.replace(f"({ident})", ""), message
    quoted = await get(hub.admin, f"/Things('{hub.ids['soil-001/moisture']}')")
    assert quoted["name"] == "soil-001"


FILTER_TOKENS = [*"()' /@.:-TZ0123456789abcdegilnoqrstu", "eq ", " and ", " or ", "not "]
FILTER_TOKENS += ["result", "phenomenonTime", "2025-12-01T00:00:00Z", "@iot.id", "name", " gt "]
FILTER_TOKENS += ["'x'", "null"]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.sampled_from(FILTER_TOKENS),
        max_size=25,
    ).map("".join)
)
async def test_random_filters_never_break_the_server(hub: Hub, text: str) -> None:
    for path in ("/Observations", "/Things"):
        r = await hub.admin.get(BASE + path, params={"$filter": text, "$top": "3"})
        assert r.status_code in (200, 400), (text, r.text)


def test_filter_parser_reads_the_grammar() -> None:
    from hub.sta._query import Compare, Logical, Negation, Path, Value, parse_filter

    expr = parse_filter("not (result gt 5 and Datastream/@iot.id eq 1) or name eq 'it''s'")
    assert isinstance(expr, Logical) and expr.op == "or"
    assert isinstance(expr.left, Negation)
    assert expr.right == Compare("eq", Path(("name",)), Value("it's"))
    t = parse_filter("phenomenonTime ge 2016-11-18T11:04:15.790Z")
    assert isinstance(t, Compare) and t.right == Value(1479467055790, is_time=True)


@pytest.fixture
def live_hub(storage: Storage, tmp_path: Path) -> Iterator[str]:
    """The app served over real HTTP (uvicorn on a free port), anonymous access."""
    import threading
    import time

    import uvicorn

    from hub.tests.services import free_port

    fill(storage)
    catalogue(storage)
    with Fleet(tmp_path / "registry") as registry:
        port = free_port()
        app = create_app(storage, access=Access(registry))
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, name="uvicorn")
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started
        try:
            yield f"http://127.0.0.1:{port}{BASE}"
        finally:
            server.should_exit = True
            thread.join(10)


def test_frost_sta_client_lists_things_datastreams_and_filtered_observations(
    live_hub: str, storage: Storage
) -> None:
    """frost-sta-client (Fraunhofer IOSB, PyPI) against the endpoint, as anonymous."""
    import frost_sta_client as frost

    service = frost.SensorThingsService(live_hub)
    things = list(service.things().query().list())
    assert [t.name for t in things] == ["soil-001"]
    assert things[0].properties["licence"] == "etalab-2.0"
    datastreams = list(service.datastreams().query().list())
    assert sorted(d.name for d in datastreams) == ["soil-001 moisture", "soil-001 temperature"]
    moisture = next(d for d in datastreams if d.name == "soil-001 moisture")
    assert moisture.unit_of_measurement.symbol == "%RH"
    filtered = list(
        service.observations()
        .query()
        .filter("result gt 45 and phenomenonTime lt 2025-12-01T00:19:00Z")
        .orderby("phenomenonTime", "ASC")
        .list()
    )
    assert [o.result for o in filtered] == [46, 47, 48]
    # the client follows @iot.nextLink by itself
    paged = list(service.observations().query().top(4).list())
    assert len(paged) == 25
    one = service.datastreams().find(moisture.id)
    assert one.name == "soil-001 moisture"
    obs = list(one.get_observations().query().filter("result eq 30").list())
    assert [o.result for o in obs] == [30]


# Requests of the examples of OGC 18-088 (SensorThings API Part 1: Sensing, v1.1), §9.2 and
# §9.3, on this hub's ids ("1" in the specification: the first Thing or Datastream here).
SPEC_EXAMPLES = [
    ("/Things(T)", lambda b: b["name"] == "soil-001"),
    ("/Things(T)/Locations", lambda b: len(b["value"]) == 1),
    ("/Datastreams(D)/Observations", lambda b: len(b["value"]) == 20),
    ("/Things(T)/name/$value", lambda b: b == "soil-001"),
    ("/Things?$expand=Datastreams", lambda b: len(b["value"][0]["Datastreams"]) == 2),
    (
        "/Observations?$select=result,resultTime",
        lambda b: set(b["value"][0]) == {"result", "resultTime"},
    ),
    ("/Observations?$orderby=result", lambda b: b["value"][0]["result"] == 10.5),
    ("/Things?$top=5", lambda b: len(b["value"]) == 1),
    ("/Observations?$skip=2", lambda b: len(b["value"]) == 23),
    ("/Things?$count=true", lambda b: b["@iot.count"] == 1),
    ("/Observations?$filter=result lt 10.00", lambda b: b["value"] == []),
    (
        "/Observations?$filter=result lt 11.00",
        lambda b: [o["result"] for o in b["value"]] == [10.5],
    ),
    ("/Things?$expand=Datastreams/ObservedProperty", None),  # two levels: refused, 400
]


@pytest.mark.parametrize(("request_path", "check"), SPEC_EXAMPLES)
async def test_examples_of_the_specification(hub: Hub, request_path: str, check: Any) -> None:
    soil = hub.ids["soil-001/moisture"]
    path, _, query = (
        request_path.replace("(T)", f"({soil})").replace("(D)", f"({soil})").partition("?")
    )
    params = dict(p.split("=", 1) for p in query.split("&")) if query else {}
    if check is None:
        await get(hub.anonymous, path, 400, **params)
        return
    assert check(await get(hub.anonymous, path, **params))

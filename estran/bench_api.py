"""`estran bench api`: the hub's reads at city scale, the query they replaced beside them.

    estran bench api [--backend sqlite|postgresql|both] [--sensors 10000] [--readings N]
                     [--cache DIR] [--pg URL] [--clients 20] [--seconds 10] [--json]

1. The data set, generated once and reused: S sensors (one series each) on S/100 gateways,
   N readings spread evenly over the year before the generation (default N: 100 million on
   PostgreSQL, 10 million on SQLite). SQLite: a file in the cache directory
   (~/.cache/estran/bench-api); PostgreSQL: a database `estran_bench_api_S_N` on the server
   of --pg. The rows are made by the database itself (generate_series, a recursive CTE), the
   (series, ts) index built afterwards and `latest` filled from the last reading of each
   series: the tables ingest would have written, in minutes instead of hours. Not timed.
2. Storage, in this process: the latest value of every series with the query the hub used
   before schema 4 (the anchor: a correlated subquery on SQLite, a LATERAL per series on
   PostgreSQL, through one shared connection as the API had) and with `Storage.sensors`
   (the `latest` table, a pool of read connections): one client, then `--clients` threads.
3. HTTP, against `estran hub run` in a child process (embedded broker): GET
   /api/v1/sensors?limit=S (every latest value), /api/v1/series (a random sensor over the
   year in 1,000 points), and the open-data GeoJSON when the hub has one (found in its
   OpenAPI document): one client, then `--clients` concurrent clients for --seconds each;
   p50, p99 and requests/s.
4. Ingest lag: gateways of the data set publish over MQTT at --ingest-rate readings/s
   (batches of 100) for --ingest-seconds while `--clients` clients keep reading; the lag of
   a batch is from its publication to its acknowledgement (the hub acks after COMMIT).

With `--json` the last line is the result object.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click

from estran.bench_sync import wait_hub_ready, wait_log
from estran.rig import Child, PrivateMosquitto, estran_argv, free_port

YEAR_MS = 365 * 86_400_000
PER_GATEWAY = 100  # sensors per gateway
OPEN_DATASET = "bench-open"  # every sensor of the data set, for the open GeoJSON
DEFAULT_PG = os.environ.get("ESTRAN_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
QUANTITIES = ("temperature", "moisture", "level", "energy")
UNITS = ("Cel", "%RH", "mm", "Wh")

# The latest-per-series queries of schema 3 (hub.storage before the `latest` table).
ANCHOR_LATEST = {
    "sqlite": (
        "SELECT s.sensor, s.quantity, s.unit, r.ts_ms, r.value, r.text, r.flags, g.name"
        " FROM series s"
        " JOIN readings r ON r.series_id = s.id AND r.ts_ms = ("
        "   SELECT max(ts_ms) FROM readings WHERE series_id = s.id)"
        " JOIN gateways g ON g.id = r.gateway_id"
        " ORDER BY s.sensor, s.quantity, s.unit, r.seq DESC"
    ),
    "postgresql": (
        "SELECT s.sensor, s.quantity, s.unit, r.ts_ms, r.value, r.text, r.flags, g.name"
        " FROM series s CROSS JOIN LATERAL ("
        "   SELECT * FROM readings WHERE series_id = s.id"
        "   ORDER BY ts_ms DESC, seq DESC LIMIT 1) r"
        " JOIN gateways g ON g.id = r.gateway_id"
        " ORDER BY s.sensor, s.quantity, s.unit"
    ),
}


def say(msg: str) -> None:
    click.echo(f"[bench api {time.strftime('%H:%M:%S')}] {msg}", err=True)


def figures(samples: list[float], wall: float | None = None) -> dict[str, object]:
    """p50/p99/max in ms of latencies in seconds, requests/s over `wall`, and the load
    average at the end (the machine is shared: every figure carries its load)."""
    if not samples:
        return {"requests": 0}
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 2)

    out: dict[str, object] = {
        "requests": len(samples),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(ordered[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(samples) * 1000, 2),
    }
    if wall:
        out["requests_per_s"] = round(len(samples) / wall, 1)
    out["load_1m"] = round(os.getloadavg()[0], 2)  # the machine's load when it ended
    return out


# -- the data set -----------------------------------------------------------------------


def sensor_name(i: int) -> str:
    return f"bench-{i:05d}"


def gateway_name(g: int) -> str:
    return f"bench-gw-{g:03d}"


class Dataset:
    """Where the data set lives and its shape; `ensure()` makes it once."""

    def __init__(self, backend: str, sensors: int, readings: int, cache: Path, pg: str) -> None:
        if sensors % PER_GATEWAY:
            raise click.BadParameter(f"a multiple of {PER_GATEWAY}", param_hint="--sensors")
        self.backend = backend
        self.sensors = sensors
        self.per_sensor = max(1, readings // sensors)
        self.readings = self.per_sensor * sensors
        self.gateways = sensors // PER_GATEWAY
        name = f"estran_bench_api_{sensors}_{self.readings}"
        if backend == "sqlite":
            self.spec = f"sqlite:///{cache / (name + '.sqlite3')}"
            self.path: Path | None = cache / (name + ".sqlite3")
        else:
            base, _, _ = pg.rpartition("/")
            self.admin = pg
            self.dbname = name
            self.spec = f"{base}/{name}"
            self.path = None
        self.end_ms = 0
        self.generated_s: float | None = None
        self.migrated_s: float | None = None

    @property
    def step_ms(self) -> int:
        return YEAR_MS // self.per_sensor

    def _meta(self) -> int | None:
        """The data set's end time when it is complete, else None."""
        from hub.storage import open_storage

        try:
            if self.backend == "sqlite":
                assert self.path is not None
                if not self.path.exists():
                    return None
            elif not self._pg_exists():
                return None
            s = open_storage(self.spec, Path("."), migrate=False, readers=1)
        except Exception:
            return None
        try:
            rows = s._fetch("SELECT v FROM bench_meta WHERE k = 'end_ms'")
            return int(rows[0][0]) if rows else None
        except Exception:
            return None
        finally:
            s.close()

    def _pg_exists(self) -> bool:
        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as db:
            row = db.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.dbname,))
            return row.fetchone() is not None

    def ensure(self) -> None:
        end = self._meta()
        if end is not None:
            self.end_ms = end
            say(f"{self.backend}: reusing the data set {self.spec}; migrating it if needed")
            from hub.storage import open_storage

            t = time.monotonic()
            storage = open_storage(self.spec, Path("."), readers=1)
            try:
                self.migrated_s = round(time.monotonic() - t, 1)
                self._publish(storage)
            finally:
                storage.close()
            return
        self._drop()
        t = time.monotonic()
        self._generate()
        from hub.storage import open_storage

        storage = open_storage(self.spec, Path("."), readers=1)
        try:
            self._publish(storage)
        finally:
            storage.close()
        self.generated_s = round(time.monotonic() - t, 1)
        say(f"{self.backend}: generated in {self.generated_s} s")

    def _publish(self, storage: Any) -> None:
        """Every sensor in the open dataset OPEN_DATASET, on a grid around La Rochelle (the
        open-data GeoJSON of all sensors), once."""
        from hub.storage import Dataset as OpenDataset
        from hub.storage import SensorMeta

        if any(d.name == OPEN_DATASET for d in storage.datasets()):
            return
        say(f"{self.backend}: putting the {self.sensors:,} sensors in an open dataset")
        now = int(time.time() * 1000)
        storage.put_dataset(
            OpenDataset(OPEN_DATASET, True, "etalab-2.0", "bench", "bench"), "bench", now
        )
        for i in range(self.sensors):
            lon = round(-1.25 + (i % 100) * 0.002, 5)
            lat = round(46.10 + (i // 100) * 0.001, 5)
            meta = SensorMeta(
                sensor_name(i), OPEN_DATASET, (lon, lat), f"site-{i // 10}", "", QUANTITIES[i % 4]
            )
            storage.put_sensor_meta(meta, "bench", now)

    def _drop(self) -> None:
        if self.backend == "sqlite":
            assert self.path is not None
            self.path.parent.mkdir(parents=True, exist_ok=True)
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    Path(str(self.path) + suffix).unlink()
        else:
            import psycopg

            with psycopg.connect(self.admin, autocommit=True) as db:
                db.execute(f'DROP DATABASE IF EXISTS "{self.dbname}" WITH (FORCE)')
                db.execute(f'CREATE DATABASE "{self.dbname}"')

    def _generate(self) -> None:
        from hub.storage import open_storage

        storage = open_storage(self.spec, Path("."), readers=1)
        self.end_ms = end = (int(time.time() * 1000) // 86_400_000) * 86_400_000
        t0 = end - YEAR_MS
        storage.prepare_time_range(t0, end)
        db: Any = storage._db  # type: ignore[attr-defined]  # bulk load on the writer
        pg = self.backend == "postgresql"
        run = db.execute
        try:
            if not pg:
                run("PRAGMA synchronous=OFF")
                run("BEGIN")
            run("DROP INDEX readings_series_ts")
            for g in range(self.gateways):
                run(
                    "INSERT INTO gateways (name) VALUES (" + ("%s" if pg else "?") + ")",
                    (gateway_name(g),),
                )
            for i in range(self.sensors):
                q = i % len(QUANTITIES)
                run(
                    "INSERT INTO series (sensor, quantity, unit) VALUES "
                    + ("(%s, %s, %s)" if pg else "(?, ?, ?)"),
                    (sensor_name(i), QUANTITIES[q], UNITS[q]),
                )
            per, step, p = self.per_sensor, self.step_ms, PER_GATEWAY
            chunk = max(1, 1_000_000 // p)  # readings steps per statement
            done = 0
            last_say = time.monotonic()
            for g in range(self.gateways):
                for a in range(0, per, chunk):
                    b = min(per, a + chunk) - 1
                    value = "20 + ((x * 7 + y * 13) % 1000) / 100.0"
                    select = (
                        f"SELECT {g + 1}, x * {p} + y + 1, {g * p} + y + 1,"
                        f" {t0} + x * {step} + y * {step // p}, {value}, NULL, 0"
                    )
                    if pg:
                        run(
                            "INSERT INTO readings (gateway_id, seq, series_id, ts_ms, value,"
                            f" text, flags) {select}"
                            f" FROM generate_series({a}::bigint, {b}) x, generate_series(0::bigint, {p - 1}) y"
                            " ORDER BY x, y"
                        )
                    else:
                        run(
                            f"WITH RECURSIVE xs(x) AS (SELECT {a} UNION ALL SELECT x + 1 FROM xs"
                            f" WHERE x < {b}), ys(y) AS (SELECT 0 UNION ALL SELECT y + 1 FROM ys"
                            f" WHERE y < {p - 1}) INSERT INTO readings (gateway_id, seq,"
                            f" series_id, ts_ms, value, text, flags) {select}"
                            " FROM xs, ys ORDER BY x, y"
                        )
                    done += (b - a + 1) * p
                    if time.monotonic() - last_say > 30:
                        say(f"{self.backend}: {done:,} / {self.readings:,} readings")
                        last_say = time.monotonic()
            say(f"{self.backend}: {done:,} readings; indexing (series, ts)")
            run(storage.series_index)
            last = (per - 1) * p
            run(
                "INSERT INTO latest (series_id, gateway_id, seq, ts_ms, value, text, flags)"
                " SELECT series_id, gateway_id, seq, ts_ms, value, text, flags FROM readings"
                f" WHERE seq > {last}"
                + ("" if not pg else f" AND ts_ms >= {t0 + (per - 1) * step}")
            )
            run(f"UPDATE gateways SET readings = {per * p}")
            run("CREATE TABLE bench_meta (k text PRIMARY KEY, v text)")
            run(f"INSERT INTO bench_meta VALUES ('end_ms', '{end}')")
            if not pg:
                run("COMMIT")
                run("ANALYZE")
            else:
                run("VACUUM ANALYZE readings")
                run("ANALYZE")
        finally:
            storage.close()


# -- storage-level timing ---------------------------------------------------------------


def time_calls(
    fn: Callable[[], object], clients: int, seconds: float, max_calls: int = 100_000
) -> dict[str, object]:
    """Call fn from `clients` threads for `seconds` (each at least once)."""
    samples: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        first = True
        while first or (time.monotonic() < deadline and len(samples) < max_calls):
            first = False
            t = time.perf_counter()
            try:
                fn()
            except Exception as e:  # counted: a pool wait that timed out, say
                with lock:
                    errors.append(str(e)[:100])
                continue
            dt = time.perf_counter() - t
            with lock:
                samples.append(dt)

    start = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    out = figures(samples, time.monotonic() - start)
    out["errors"] = len(errors)
    if errors:
        out["first_error"] = errors[0]
    return out


def storage_figures(ds: Dataset, clients: int, seconds: float) -> dict[str, object]:
    from hub._api import iso
    from hub.storage import open_storage
    from hub.storage._base import merge_value

    storage = open_storage(ds.spec, Path("."), migrate=False, readers=8)
    try:
        shared = threading.Lock()  # the old API: one connection, one query at a time
        anchor_sql = ANCHOR_LATEST[ds.backend]

        def anchor() -> object:
            with shared:
                return storage._fetch(anchor_sql)

        def latest() -> object:
            return storage.sensors_json(ds.sensors)

        def anchor_response() -> object:
            """What the schema-3 endpoint did per request: the query on the shared
            connection, a dict per row, JSON."""
            rows = anchor()
            return json.dumps(
                [
                    {
                        "sensor": s,
                        "quantity": q,
                        "unit": u or None,
                        "value": merge_value(v, t),
                        "ts": iso(ts),
                        "ts_ms": ts,
                        "flags": fl,
                        "gateway": gw,
                    }
                    for s, q, u, ts, v, t, fl, gw in rows  # type: ignore[attr-defined]
                ]
            )

        out: dict[str, object] = {}
        say(f"{ds.backend}: storage, anchor query, 1 client")
        rows = len(storage._fetch(anchor_sql))
        out["anchor_latest_1"] = time_calls(anchor, 1, seconds, max_calls=20)
        say(f"{ds.backend}: storage, anchor query, {clients} clients")
        out[f"anchor_latest_{clients}"] = time_calls(anchor, clients, seconds, max_calls=200)
        say(f"{ds.backend}: storage, anchor query and its JSON, 1 client")
        out["anchor_response_1"] = time_calls(anchor_response, 1, seconds, max_calls=20)
        say(f"{ds.backend}: storage, latest table")
        got = len(json.loads(storage.sensors_json(ds.sensors)))
        out["latest_1"] = time_calls(latest, 1, seconds)
        out[f"latest_{clients}"] = time_calls(latest, clients, seconds)
        out["rows"] = {"anchor": rows, "latest": got}
        return out
    finally:
        storage.close()


# -- HTTP -------------------------------------------------------------------------------


def per_request(cpu_s: float, fig: dict[str, object]) -> float | None:
    n = fig.get("requests")
    return round(cpu_s * 1000 / n, 2) if isinstance(n, int) and n else None


async def http_load(
    make: Callable[[], Awaitable[Any]],
    clients: int,
    seconds: float,
    max_requests: int = 50_000,
    ok: int = 200,
) -> dict[str, object]:
    samples: list[float] = []
    errors = 0
    failures: list[str] = []
    deadline = time.monotonic() + seconds

    async def client() -> None:
        nonlocal errors
        while time.monotonic() < deadline and len(samples) < max_requests:
            t = time.perf_counter()
            try:
                r = await make()
            except Exception as e:  # counted (a connection the server dropped), not timed
                failures.append(f"{type(e).__name__}: {e}"[:100])
                await asyncio.sleep(0.01)
                continue
            samples.append(time.perf_counter() - t)
            if r.status_code != ok:
                errors += 1

    start = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    out = figures(samples, time.monotonic() - start)
    out["errors"] = errors + len(failures)
    if failures:
        out["transport_errors"] = len(failures)
        out["first_transport_error"] = failures[0]
    return out


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except (OSError, TypeError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """CPU time so far of every PostgreSQL server process of this machine (the backends
    that run ingest's and the API's statements; 0 without access to them)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if "(postgres)" in text:
            total += cpu_seconds(int(stat.parent.name))
    return total


def geojson_path(openapi: dict[str, Any]) -> str | None:
    """The open-data GeoJSON of one dataset, as the hub's OpenAPI document names it."""
    paths = [p for p in openapi.get("paths", {}) if p.lower().endswith(".geojson")]
    return sorted(paths)[0] if paths else None


async def http_figures(
    ds: Dataset, clients: int, seconds: float, ingest: dict[str, float], topology: str
) -> dict[str, object]:
    import httpx

    workdir = Path(tempfile.mkdtemp(prefix="estran-bench-api-"))
    http_port, mqtt_port = free_port(), free_port()
    children: list[Child] = []
    ingest_hub: Child | None = None  # the single topology's one process does it all
    common = ["--data", str(workdir), "--db", ds.spec, "--broker-access", "open"]
    if topology == "single":  # one process: embedded broker, ingest worker and API
        hub = Child(
            "hub",
            estran_argv(
                "hub",
                "run",
                *common,
                "--broker",
                "embedded",
                "--mqtt-listen",
                f"127.0.0.1:{mqtt_port}",
                "--http",
                f"127.0.0.1:{http_port}",
                "--log-level",
                "warning",
            ),
            workdir,
        )
        children.append(hub)
        await hub.start()
    else:  # docs/hub.md's topology: Mosquitto, an ingest process, an API process
        broker = PrivateMosquitto(workdir, mqtt_port)
        children.append(broker)
        await broker.start()
        url = f"mqtt://127.0.0.1:{mqtt_port}"
        ingest_hub = Child(
            "ingest",
            estran_argv("hub", "run", *common, "--broker", url, "--http", "none", "--workers", "1"),
            workdir,
        )
        children.append(ingest_hub)
        await ingest_hub.start()
        await wait_log(ingest_hub, "hub ready", 120)
        hub = Child(
            "api",
            estran_argv(
                "hub",
                "run",
                *common,
                "--broker",
                url,
                "--workers",
                "0",
                "--http",
                f"127.0.0.1:{http_port}",
                "--log-level",
                "warning",
            ),
            workdir,
        )
        children.append(hub)
        await hub.start()
    out: dict[str, object] = {}
    try:
        await wait_hub_ready(http_port, hub, timeout=120)
        base = f"http://127.0.0.1:{http_port}"
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        reset = await asyncio.create_subprocess_exec(
            *estran_argv("hub", "admin-reset", "--data", str(workdir)),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        token = (await reset.communicate())[0].decode().split("\n")[0].strip()
        headers = {"Authorization": f"Bearer {token}"}  # an admin reads every dataset
        async with (
            httpx.AsyncClient(base_url=base, timeout=60, limits=limits, headers=headers) as http,
            httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as anon,  # open data
        ):
            rnd = random.Random(1)
            frm, to = ds.end_ms - YEAR_MS, ds.end_ms

            def sensors() -> Awaitable[Any]:
                return http.get("/api/v1/sensors", params={"limit": ds.sensors})

            def series() -> Awaitable[Any]:
                i = rnd.randrange(ds.sensors)
                return http.get(
                    "/api/v1/series",
                    params={
                        "sensor": sensor_name(i),
                        "quantity": QUANTITIES[i % len(QUANTITIES)],
                        "from": frm,
                        "to": to,
                        "points": 1000,
                    },
                )

            endpoints: dict[str, Callable[[], Awaitable[Any]]] = {
                "sensors_all": sensors,
                "series_year_1000": series,
            }
            geo = geojson_path((await http.get("/api/openapi.json")).json())
            if geo is not None:
                geo = geo.replace("{name}", OPEN_DATASET)
                endpoints["open_geojson"] = lambda: anon.get(geo, params={"limit": ds.sensors})
            out["geojson_endpoint"] = geo
            first = await sensors()
            out["sensors_rows"] = len(first.json())
            out["sensors_bytes"] = len(first.content)
            p = (await series()).json()
            out["series_points"] = len(p.get("points", []))
            if geo is not None:
                g = await endpoints["open_geojson"]()
                out["geojson_status"] = g.status_code
                out["geojson_features"] = (
                    len(g.json().get("features", [])) if g.status_code == 200 else 0
                )
                out["geojson_bytes"] = len(g.content)
                etag = g.headers.get("etag")
                if etag is not None:  # a client polling with the document it has: 304
                    conditional = {"If-None-Match": etag}
                    endpoints["open_geojson_conditional"] = lambda: anon.get(
                        geo, params={"limit": ds.sensors}, headers=conditional
                    )
            api_pid = hub.pid
            for name, make in endpoints.items():
                ok = 304 if name.endswith("_conditional") else 200
                say(f"{ds.backend}: http {name}, 1 client")
                cpu = cpu_seconds(api_pid)
                one = await http_load(make, 1, seconds, max_requests=200, ok=ok)
                one["api_cpu_ms_per_request"] = per_request(cpu_seconds(api_pid) - cpu, one)
                say(f"{ds.backend}: http {name}, {clients} clients")
                cpu = cpu_seconds(api_pid)
                many = await http_load(make, clients, seconds, ok=ok)
                many["api_cpu_ms_per_request"] = per_request(cpu_seconds(api_pid) - cpu, many)
                out[name] = {"1": one, str(clients): many}
            readers = int(ingest["readers"])
            say(f"{ds.backend}: ingest at {ingest['rate']:.0f} readings/s with {readers} readers")
            # The readers run in a process of their own: in this one, their 2 MB responses
            # would hold up the event loop that timestamps the acknowledgements, and the lag
            # measured would be the benchmark's as much as the hub's.
            spec = {
                "base": base,
                "token": token,
                "clients": readers,
                "seconds": ingest["seconds"],
                "sensors": ds.sensors,
                "from": frm,
                "to": to,
            }
            load = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "from estran.bench_api import readers_main; readers_main()",
                json.dumps(spec),
                stdout=asyncio.subprocess.PIPE,
            )
            reads = asyncio.create_task(load.communicate())
            ingest_pid = ingest_hub.pid if ingest_hub is not None else None
            cpu_before = {
                "ingest": cpu_seconds(ingest_pid),
                "api": cpu_seconds(api_pid),
                "postgresql": postgres_cpu_seconds(),
            }
            started = time.monotonic()
            out["ingest"] = await ingest_lag(ds, mqtt_port, ingest["rate"], ingest["seconds"])
            # CPU the hub's processes used per second of the run (1.0: a whole core), beside
            # the 2 cores of this machine and the load average: what limits the lag.
            wall = time.monotonic() - started
            cpu_after = {
                "ingest": cpu_seconds(ingest_pid),
                "api": cpu_seconds(api_pid),
                "postgresql": postgres_cpu_seconds(),
            }
            out["ingest"]["cpu_per_s"] = {  # type: ignore[index]
                k: round((cpu_after[k] - cpu_before[k]) / wall, 3) for k in cpu_before
            }
            out["ingest"]["readers"] = readers  # type: ignore[index]
            stdout = (await reads)[0].decode().strip().splitlines()
            out["ingest"]["reads_meanwhile"] = (  # type: ignore[index]
                json.loads(stdout[-1]) if stdout else {"error": f"exit {load.returncode}"}
            )
    finally:
        for child in reversed(children):
            await child.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def readers_main() -> None:
    """The readers of the ingest-lag measurement, in their own process: `clients` clients
    reading the latest values of all sensors and a random sensor's year, as an admin, for
    `seconds`; prints the figures as JSON."""
    import httpx

    spec = json.loads(sys.argv[1])
    clients = int(spec["clients"])

    async def run() -> dict[str, object]:
        if clients == 0:
            return {"requests": 0}
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        headers = {"Authorization": f"Bearer {spec['token']}"}
        rnd = random.Random(3)
        async with httpx.AsyncClient(
            base_url=spec["base"], timeout=60, limits=limits, headers=headers
        ) as http:

            def one() -> Awaitable[Any]:
                if rnd.random() < 0.5:
                    return http.get("/api/v1/sensors", params={"limit": spec["sensors"]})
                i = rnd.randrange(int(spec["sensors"]))
                params = {
                    "sensor": sensor_name(i),
                    "quantity": QUANTITIES[i % len(QUANTITIES)],
                    "from": spec["from"],
                    "to": spec["to"],
                    "points": 1000,
                }
                return http.get("/api/v1/series", params=params)

            return await http_load(one, clients, float(spec["seconds"]))

    click.echo(json.dumps(asyncio.run(run())))


async def ingest_lag(ds: Dataset, mqtt_port: int, rate: float, seconds: float) -> dict[str, object]:
    """Publish batches of 100 readings (one per sensor of a gateway) at `rate` readings/s;
    the lag of each is publication to acknowledgement (the hub acks after COMMIT). The
    payloads are encoded beforehand; first one batch per gateway, acknowledged before the
    timing starts (the hub's first batch of a gateway registers its series: a warm-up,
    reported apart)."""
    import aiomqtt

    from protocols import wire
    from protocols.block import encode_block
    from protocols.reading import Reading

    per_batch = PER_GATEWAY
    interval = per_batch / rate
    total = int(rate * seconds / per_batch)
    next_seq = [ds.per_sensor * PER_GATEWAY + 1] * ds.gateways  # after the data set's last
    now = int(time.time() * 1000)
    rnd = random.Random(7)
    payloads: list[tuple[str, int, bytes]] = []
    for k in range(ds.gateways + total):
        g = k % ds.gateways
        seq = next_seq[g]
        ts = now + int(max(0, k - ds.gateways) * interval * 1000)
        readings = [
            Reading(
                sensor_name(g * PER_GATEWAY + j),
                QUANTITIES[(g * PER_GATEWAY + j) % len(QUANTITIES)],
                UNITS[(g * PER_GATEWAY + j) % len(UNITS)],
                round(20 + rnd.random() * 10, 2),
                ts,
            )
            for j in range(per_batch)
        ]
        batch = wire.DataBatch(
            1, k + 1, seq, seq + per_batch - 1, per_batch, [encode_block(seq, readings)]
        )
        payloads.append((gateway_name(g), k + 1, wire.encode_data(batch)))
        next_seq[g] = seq + per_batch
    sent: dict[tuple[str, int], float] = {}
    lags: list[float] = []
    acked = asyncio.Event()
    async with aiomqtt.Client("127.0.0.1", mqtt_port, identifier="bench-api-gateways") as client:
        await client.subscribe("estran/v1/gw/+/ack", qos=1)

        async def receive() -> None:
            async for message in client.messages:
                gw, _ = wire.parse_topic(message.topic.value)
                assert isinstance(message.payload, bytes)
                ack = wire.decode_ack(message.payload)
                t = sent.pop((gw, ack.batch), None)
                if t is not None:
                    lags.append(time.perf_counter() - t)
                if not sent:
                    acked.set()

        receiver = asyncio.create_task(receive())
        warm_start = time.perf_counter()
        for gw, no, payload in payloads[: ds.gateways]:
            sent[(gw, no)] = time.perf_counter()
            await client.publish(wire.topic(gw, "data"), payload, qos=1)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(acked.wait(), 300)
        warm_up = time.perf_counter() - warm_start
        lags.clear()
        acked.clear()
        start = time.perf_counter()
        for k, (gw, no, payload) in enumerate(payloads[ds.gateways :]):
            sent[(gw, no)] = time.perf_counter()
            await client.publish(wire.topic(gw, "data"), payload, qos=1)
            delay = start + (k + 1) * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        wall = time.perf_counter() - start
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(acked.wait(), 60)
        receiver.cancel()
    out = figures(lags)
    out.update(
        {
            "target_readings_per_s": rate,
            "published_readings_per_s": round(total * per_batch / wall, 1),
            "batches": total,
            "unacknowledged": len(sent),
            "warm_up_s": round(warm_up, 2),
        }
    )
    return out


# -- the command ------------------------------------------------------------------------


@click.command("api")
@click.option(
    "--backend",
    type=click.Choice(["sqlite", "postgresql", "both"]),
    default="both",
    show_default=True,
)
@click.option("--sensors", type=int, default=10_000, show_default=True)
@click.option(
    "--readings",
    type=int,
    default=None,
    help="default: 100,000,000 on PostgreSQL, 10,000,000 on SQLite",
)
@click.option(
    "--cache",
    type=click.Path(path_type=Path),
    default=Path.home() / ".cache" / "estran" / "bench-api",
    show_default=True,
)
@click.option("--pg", default=DEFAULT_PG, show_default=True, help="PostgreSQL server (admin URL)")
@click.option("--clients", type=int, default=20, show_default=True)
@click.option("--seconds", type=float, default=10.0, show_default=True, help="per measurement")
@click.option("--ingest-rate", type=float, default=10_000.0, show_default=True)
@click.option("--ingest-seconds", type=float, default=30.0, show_default=True)
@click.option(
    "--ingest-readers",
    type=int,
    default=None,
    help="clients reading while ingest runs (default: --clients; 0: ingest alone)",
)
@click.option(
    "--topology",
    type=click.Choice(["split", "single"]),
    default="split",
    show_default=True,
    help="split: Mosquitto, an ingest process and an API process (docs/hub.md); single: one hub process with its embedded broker",
)
@click.option("--no-http", is_flag=True, help="storage figures only")
@click.option("--no-storage", is_flag=True, help="HTTP and ingest figures only")
@click.option("--json", "as_json", is_flag=True)
def bench_api(
    backend: str,
    sensors: int,
    readings: int | None,
    cache: Path,
    pg: str,
    clients: int,
    seconds: float,
    ingest_rate: float,
    ingest_seconds: float,
    ingest_readers: int | None,
    topology: str,
    no_http: bool,
    no_storage: bool,
    as_json: bool,
) -> None:
    """The hub's read API at city scale, the pre-schema-4 query as anchor."""
    result: dict[str, object] = {
        "sensors": sensors,
        "clients": clients,
        "cpus": os.cpu_count(),
        "topology": topology,
    }
    for name in ("sqlite", "postgresql") if backend == "both" else (backend,):
        n = (
            readings
            if readings is not None
            else (100_000_000 if name == "postgresql" else 10_000_000)
        )
        ds = Dataset(name, sensors, n, cache, pg)
        ds.ensure()
        part: dict[str, object] = {
            "readings": ds.readings,
            "gateways": ds.gateways,
            "span_days": 365,
            "generated_s": ds.generated_s,
            "migrated_s": ds.migrated_s,
            "load_1m": round(os.getloadavg()[0], 2),
        }
        if not no_storage:
            part["storage"] = storage_figures(ds, clients, seconds)
        if not no_http:
            part["http"] = asyncio.run(
                http_figures(
                    ds,
                    clients,
                    seconds,
                    {
                        "rate": ingest_rate,
                        "seconds": ingest_seconds,
                        "readers": clients if ingest_readers is None else ingest_readers,
                    },
                    topology,
                )
            )
        part["load_1m_after"] = round(os.getloadavg()[0], 2)
        result[name] = part
        if not as_json:
            click.echo(json.dumps({name: part}, indent=2))
    if as_json:
        click.echo(json.dumps(result))


__all__ = ["ANCHOR_LATEST", "Dataset", "bench_api"]

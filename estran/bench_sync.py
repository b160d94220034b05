"""`estran bench sync`: a gateway's backlog drained to the hub, and the peer's path beside it.

    estran bench sync --readings 1000000 --broker mosquitto --db sqlite [--workers K] [--faults] [--json]

1. Fills a gateway buffer (edge.buffer.SegmentLog) with the first N readings of the
   reference workload (../shared/bench/workload.py, or $ESTRAN_WORKLOAD). Not timed.
2. Starts the broker (`embedded`: hub.broker inside the hub process; `mosquitto`: a private
   Mosquitto from the `mosquitto` binary on a free port; or `mqtt://host:port`), the hub
   (`estran hub run`) and the gateway (`estran edge run`) as separate processes. The
   gateway reaches the broker through a byte-counting TCP proxy in this process: wire bytes
   are every byte of its MQTT connections, both ways, MQTT framing included.
3. Times the drain: from the gateway's start until the hub's database holds all N readings.
   With `--faults`, at random points of the drain (seeded): the broker is restarted (kill -9;
   with the embedded broker that is the hub process), the hub is killed with SIGKILL and
   restarted, the gateway likewise.
4. Counts lost and duplicated readings from the hub's database against the workload.
5. The anchor, same run, same broker, same database: the ThingsBoard-style path, one JSON
   message per reading (`v1/gateway/telemetry`, QoS 1, no end-to-end ack) into a table of
   the same database, written in batches by a subscriber.

With `--json` the last line is the result object.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import click

from estran.rig import Child, LinkProxy, PrivateMosquitto, RigError, estran_argv, free_port

ANCHOR_TOPIC = "v1/gateway/telemetry"


# -- the workload -----------------------------------------------------------------------


def load_workload() -> ModuleType:
    """The reference workload module: $ESTRAN_WORKLOAD or ../shared/bench/workload.py."""
    env = os.environ.get("ESTRAN_WORKLOAD")
    root = Path(__file__).resolve().parent.parent
    path = Path(env) if env else root.parent / "shared" / "bench" / "workload.py"
    if not path.is_file():
        raise click.ClickException(f"reference workload not found at {path} (set ESTRAN_WORKLOAD)")
    spec = importlib.util.spec_from_file_location("estran_workload", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["estran_workload"] = module
    spec.loader.exec_module(module)
    return module


def workload_readings(n: int) -> Iterator[Any]:
    yield from load_workload().readings(n)


# -- processes, ports, broker and link: estran.rig ----------------------------------------


# -- the database, from the bench's side -------------------------------------------------


@dataclass
class Tally:
    rows: int = 0
    found: int = 0
    duplicates: int = 0
    corrupt: int = 0

    def lost(self, n: int) -> int:
        return n - self.found


def audit_ours(db: str, data_dir: Path, gateway: str, n: int, seq0: int) -> Tally:
    """Every stored reading of the bench gateway checked against the workload."""
    from hub.storage import open_storage

    expected = list(workload_readings(n))
    seen_seq = bytearray(n)
    seen_key: set[tuple[str, str, int]] = set()
    tally = Tally()
    storage = open_storage(db, data_dir, migrate=False)
    try:
        for row in storage.export(gateway):
            tally.rows += 1
            key = (row.sensor, row.quantity, row.ts_ms)
            if key in seen_key:
                tally.duplicates += 1
                continue
            seen_key.add(key)
            i = row.seq - seq0
            if not 0 <= i < n:
                tally.corrupt += 1
                continue
            w = expected[i]
            if (w.sensor, w.quantity, w.unit, w.ts_ms) != (
                row.sensor,
                row.quantity,
                row.unit,
                row.ts_ms,
            ) or w.value != row.value:
                tally.corrupt += 1
                continue
            if not seen_seq[i]:
                seen_seq[i] = 1
                tally.found += 1
    finally:
        storage.close()
    return tally


class Counter:
    """`SELECT count(*)` of one table, cheap enough to poll."""

    def __init__(self, db: str, data_dir: Path, sql: str, params: tuple[object, ...]) -> None:
        from hub.storage import sqlite_path

        self._path = sqlite_path(db, data_dir)
        self._db = db
        self._sql = sql
        self._params = params
        self._conn: Any = None

    def __call__(self) -> int:
        try:
            if self._conn is None:
                if self._path is not None:
                    if not self._path.exists():
                        return 0
                    self._conn = sqlite3.connect(self._path, timeout=5)
                else:
                    import psycopg

                    self._conn = psycopg.connect(self._db, autocommit=True)
            sql = self._sql if self._path is not None else self._sql.replace("?", "%s")
            row = self._conn.execute(sql, self._params).fetchone()
            return int(row[0]) if row else 0
        except (sqlite3.Error, OSError) as e:
            click.echo(f"  (count failed: {e})", err=True)
            self.close()
            return -1
        except Exception as e:  # psycopg errors: the hub may be migrating
            click.echo(f"  (count failed: {e})", err=True)
            self.close()
            return -1

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


# -- the anchor: ThingsBoard-style, one JSON message per reading -------------------------

ANCHOR_TABLE = "anchor_tb_telemetry"


def _anchor_sql(pg: bool) -> tuple[str, str]:
    create = (
        f"CREATE TABLE IF NOT EXISTS {ANCHOR_TABLE} (device TEXT NOT NULL, key TEXT NOT NULL,"
        f" ts BIGINT NOT NULL, value {'numeric' if pg else ''})"
    )
    insert = f"INSERT INTO {ANCHOR_TABLE} (device, key, ts, value) VALUES " + (
        "(%s, %s, %s, %s)" if pg else "(?, ?, ?, ?)"
    )
    return create, insert


async def anchor_hub(broker_port: int, db: str, data_dir: Path) -> None:
    """The subscriber of the anchor path: JSON telemetry into a table, in batches."""
    import aiomqtt

    from hub.storage import sqlite_path

    path = sqlite_path(db, data_dir)
    pg = path is None
    create, insert = _anchor_sql(pg)
    conn: Any
    if pg:
        import psycopg

        conn = psycopg.connect(db, autocommit=False)
    else:
        assert path is not None
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"DROP TABLE IF EXISTS {ANCHOR_TABLE}")
    conn.execute(create)
    conn.commit()
    queue: asyncio.Queue[bytes] = asyncio.Queue(10_000)

    async def receive(client: aiomqtt.Client) -> None:
        async for message in client.messages:
            if isinstance(message.payload, bytes):
                await asyncio.wait_for(queue.put(message.payload), 60)

    async def write() -> None:
        while True:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < 5000:
                batch.append(queue.get_nowait())
            rows = []
            for payload in batch:
                with contextlib.suppress(ValueError, AttributeError, TypeError):
                    for device, entries in json.loads(payload).items():
                        for entry in entries:
                            for key, value in entry["values"].items():
                                rows.append((device, key, entry["ts"], value))
            await asyncio.to_thread(_anchor_write, conn, insert, rows)

    async with aiomqtt.Client(
        "127.0.0.1", broker_port, identifier="anchor-hub", max_queued_incoming_messages=20_000
    ) as client:
        await client.subscribe(ANCHOR_TOPIC, qos=1)
        print("anchor hub ready", flush=True)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(receive(client), name="anchor-receive")
            tg.create_task(write(), name="anchor-write")


def _anchor_write(conn: Any, insert: str, rows: Sequence[tuple[object, ...]]) -> None:
    cur = conn.cursor()
    cur.executemany(insert, rows)
    conn.commit()


async def anchor_gateway(broker_port: int, n: int, in_flight: int = 256) -> None:
    """The gateway side of the anchor: each reading published as its own JSON message."""
    import aiomqtt

    readings = list(workload_readings(n))
    async with aiomqtt.Client(
        "127.0.0.1", broker_port, identifier="anchor-gw", max_inflight_messages=in_flight
    ) as client:
        client.pending_calls_threshold = 10 * in_flight
        slots = asyncio.Semaphore(in_flight)

        async def publish(payload: bytes) -> None:
            try:
                await client.publish(ANCHOR_TOPIC, payload, qos=1, timeout=60)
            finally:
                slots.release()

        async with asyncio.TaskGroup() as tg:
            for i, r in enumerate(readings):
                payload = json.dumps(
                    {r.sensor: [{"ts": r.ts_ms, "values": {r.quantity: r.value}}]},
                    separators=(",", ":"),
                ).encode()
                await asyncio.wait_for(slots.acquire(), 120)
                tg.create_task(publish(payload), name=f"anchor-publish-{i}")


def audit_anchor(db: str, data_dir: Path, n: int) -> Tally:
    from hub.storage import sqlite_path

    path = sqlite_path(db, data_dir)
    expected = {(r.sensor, r.quantity, r.ts_ms): r.value for r in workload_readings(n)}
    conn: Any
    if path is None:
        import psycopg

        conn = psycopg.connect(db)
    else:
        conn = sqlite3.connect(path)
    tally = Tally()
    seen: set[tuple[str, str, int]] = set()
    try:
        for device, key, ts, value in conn.execute(
            f"SELECT device, key, ts, value FROM {ANCHOR_TABLE}"
        ):
            tally.rows += 1
            k = (device, key, int(ts))
            if k in seen:
                tally.duplicates += 1
                continue
            seen.add(k)
            if k in expected and float(expected[k]) == float(value):
                tally.found += 1
            else:
                tally.corrupt += 1
    finally:
        conn.close()
    return tally


# -- the run ----------------------------------------------------------------------------


@dataclass
class Setup:
    n: int
    broker: str
    db: str
    workers: int
    faults: bool
    anchor_n: int
    seed: int
    workdir: Path
    events: list[dict[str, object]] = field(default_factory=list)
    gateway: str = field(
        default_factory=lambda: f"bench-{os.getpid()}-{random.randrange(1 << 32):08x}"
    )
    backlog_rate: float = 0.0  # the gateway's token bucket (0: unlimited)


def fill_buffer(buffer_dir: Path, readings: Iterable[Any]) -> tuple[int, int, float, int]:
    """(first seq, count, seconds, bytes on disk) of `readings` appended to a new buffer.
    Readings are protocols.reading.Reading or workload readings (same field names)."""
    from edge.buffer import BufferConfig, SegmentLog
    from protocols.reading import Reading

    t = time.perf_counter()
    n = 0

    def convert() -> Iterator[Reading]:
        nonlocal n
        for r in readings:
            n += 1
            yield Reading(r.sensor, r.quantity, r.unit, r.value, r.ts_ms, getattr(r, "flags", 0))

    log = SegmentLog.open(
        BufferConfig(directory=buffer_dir, quota_bytes=1 << 34, commit_interval_s=0.1)
    )
    try:
        last = log.append_many(convert())
        log.commit()
    finally:
        log.close()
    size = sum(p.stat().st_size for p in buffer_dir.rglob("*") if p.is_file())
    return last - n + 1, n, time.perf_counter() - t, size


def gateway_config(s: Setup, broker_port: int) -> Path:
    path = s.workdir / "gateway.toml"
    path.write_text(
        "[gateway]\n"
        f'id = "{s.gateway}"\n'
        f'data_dir = "{s.workdir / "gw"}"\n'
        "\n[uplink]\n"
        f'broker = "mqtt://127.0.0.1:{broker_port}"\n'
        f"backlog_rate = {s.backlog_rate}\n"  # 0, unlimited: the bench measures the drain
        "state_interval = 5\n"
    )
    return path


async def measure_drain(
    count: Counter,
    total: int,
    on_progress: Any = None,
    stall_s: float = 90.0,
) -> tuple[float, int, bool]:
    """Poll count() until it reaches total or stops moving for stall_s: (seconds until the
    last progress, the last count, whether it reached total)."""
    t0 = time.monotonic()
    last, last_change = 0, t0
    while True:
        await asyncio.sleep(0.25)
        c = count()
        now = time.monotonic()
        if c > last:
            last, last_change = c, now
        if on_progress is not None:
            await on_progress(last, now - t0)
        if last >= total:
            return now - t0, last, True
        if now - last_change > stall_s:
            return last_change - t0, last, False


async def run(s: Setup, progress: bool) -> dict[str, object]:
    def say(msg: str) -> None:
        if progress:
            click.echo(msg, err=True)

    gw_dir = s.workdir / "gw"
    hub_dir = s.workdir / "hub"
    hub_dir.mkdir(parents=True)
    say(f"filling the gateway buffer with {s.n} workload readings ...")
    seq0, _, fill_s, buffer_bytes = fill_buffer(gw_dir / "buffer", workload_readings(s.n))
    say(f"  {fill_s:.1f} s, {buffer_bytes / s.n:.2f} bytes per reading on disk")

    async with contextlib.AsyncExitStack() as stack:
        mosquitto: PrivateMosquitto | None = None
        embedded = s.broker == "embedded"
        if s.broker == "mosquitto":
            mosquitto = PrivateMosquitto(s.workdir)
            await mosquitto.start()
            stack.push_async_callback(mosquitto.stop)
            broker_port = mosquitto.port
            hub_broker = f"mqtt://127.0.0.1:{broker_port}"
        elif embedded:
            broker_port = free_port()
            hub_broker = "embedded"
        else:
            from hub._mqtt import BrokerAddress

            address = BrokerAddress.parse(s.broker)
            if address.host not in ("127.0.0.1", "localhost"):
                raise click.ClickException("the byte-counting proxy needs a local broker")
            broker_port = address.port
            hub_broker = str(address)
        http_port = free_port()
        hub = Child(
            "hub",
            estran_argv(
                "hub", "run", "--data", str(hub_dir), "--db", s.db, "--broker", hub_broker,
                "--mqtt-listen", f"127.0.0.1:{broker_port}", "--http", f"127.0.0.1:{http_port}",
                "--workers", str(s.workers), "--log-level", "warning",
                "--broker-access", "open",  # the bench gateway has no enrollment
            ),
            s.workdir / "hub.log",
        )  # fmt: skip
        stack.push_async_callback(hub.stop)
        await hub.start()
        await wait_hub_ready(http_port, hub)
        proxy = await stack.enter_async_context(LinkProxy(broker_port))
        config = gateway_config(s, proxy.port)
        gateway = Child(
            "gateway", estran_argv("edge", "run", "--config", str(config)), s.workdir / "gw.log"
        )
        stack.push_async_callback(gateway.stop)
        count = Counter(
            s.db,
            hub_dir,
            "SELECT count(*) FROM readings r JOIN gateways g ON g.id = r.gateway_id"
            " WHERE g.name = ?",
            (s.gateway,),
        )
        stack.callback(count.close)

        rng = random.Random(s.seed)
        kinds = ["broker", "hub", "gateway"]
        rng.shuffle(kinds)
        points = sorted(rng.uniform(0.1, 0.8) for _ in kinds)
        schedule = list(zip(points, kinds, strict=True)) if s.faults else []
        if s.faults and not embedded and mosquitto is None:
            schedule = [(p, k) for p, k in schedule if k != "broker"]

        async def inject(done: int, elapsed: float) -> None:
            while schedule and done >= schedule[0][0] * s.n:
                _point, kind = schedule.pop(0)
                event: dict[str, object] = {
                    "fault": kind,
                    "at_readings": done,
                    "at_s": round(elapsed, 2),
                }
                if kind == "broker" and mosquitto is not None:
                    await mosquitto.kill_and_wait()
                    await mosquitto.start()
                elif kind in ("broker", "hub"):  # the embedded broker lives in the hub
                    if kind == "broker":
                        event["note"] = "embedded broker: the hub process restarted"
                    await hub.kill_and_wait()
                    await hub.start()
                else:
                    await gateway.kill_and_wait()
                    await gateway.start()
                event["back_after_s"] = round(time.monotonic() - t0 - elapsed, 2)
                s.events.append(event)
                say(f"  fault: {kind} at {done} readings ({elapsed:.1f} s)")

        async def report(done: int, elapsed: float) -> None:
            if progress and int(elapsed * 4) % 8 == 0:
                say(f"  {elapsed:5.1f} s: {done} committed")
            await inject(done, elapsed)

        say(f"draining through {s.broker} into {s.db} ...")
        t0 = time.monotonic()
        await gateway.start()
        seconds, done, complete = await measure_drain(count, s.n, report)
        say(f"  {done} of {s.n} committed in {seconds:.2f} s")
        await gateway.stop()
        wire_bytes = proxy.total_bytes

        # The anchor, same broker, same database.
        anchor: dict[str, object] | None = None
        if s.anchor_n > 0:
            anchor = await run_anchor(s, broker_port, hub_dir, say)
        await hub.stop()
        if not complete:
            say("gateway log:\n" + gateway.tail())
            say("hub log:\n" + hub.tail())

    tally = audit_ours(s.db, hub_dir, s.gateway, s.n, seq0)
    result: dict[str, object] = {
        "readings": s.n,
        "drain_per_s": round(done / seconds, 1) if seconds > 0 else None,
        "lost": tally.lost(s.n),
        "duplicates": tally.duplicates,
        "wire_bytes_per_reading": round(wire_bytes / s.n, 3),
        "anchors": [anchor] if anchor else [],
        "seconds": round(seconds, 3),
        "corrupt": tally.corrupt,
        "broker": s.broker,
        "db": "sqlite" if s.db.startswith("sqlite") else "postgresql",
        "workers": s.workers,
        "faults": s.events,
        "fill_s": round(fill_s, 2),
        "buffer_bytes_per_reading": round(buffer_bytes / s.n, 3),
        "wire_bytes": wire_bytes,
    }
    return result


async def wait_hub_ready(http_port: int, hub: Child, timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            if not hub.alive():
                raise click.ClickException("the hub exited:\n" + hub.tail())
            with contextlib.suppress(httpx.HTTPError):
                r = await http.get(f"http://127.0.0.1:{http_port}/api/v1/health")
                if r.status_code == 200 and r.json().get("ready"):
                    return
            await asyncio.sleep(0.1)
    raise click.ClickException("the hub did not become ready:\n" + hub.tail())


async def run_anchor(s: Setup, broker_port: int, hub_dir: Path, say: Any) -> dict[str, object]:
    say(f"anchor: {s.anchor_n} readings as one JSON message each ...")
    proxy = LinkProxy(broker_port)
    async with proxy:
        me = [sys.executable, "-c", "import estran.bench_sync as b; b._child_main()"]
        sub = Child(
            "anchor-hub",
            [*me, "anchor-hub", str(broker_port), s.db, str(hub_dir)],
            s.workdir / "anchor-hub.log",
        )
        pub = Child(
            "anchor-gw",
            [*me, "anchor-gw", str(proxy.port), str(s.anchor_n)],
            s.workdir / "anchor-gw.log",
        )
        try:
            await sub.start()
            await wait_log(sub, "anchor hub ready", 60)
            count = Counter(s.db, hub_dir, f"SELECT count(*) FROM {ANCHOR_TABLE}", ())
            await pub.start()
            seconds, done, _complete = await measure_drain(count, s.anchor_n, stall_s=15.0)
            count.close()
        finally:
            await pub.stop()
            await sub.stop()
        wire = proxy.total_bytes
    tally = audit_anchor(s.db, hub_dir, s.anchor_n)
    say(f"  {done} of {s.anchor_n} arrived")
    return {
        "name": "thingsboard-style: one JSON message per reading, QoS 1, no end-to-end ack",
        "readings": s.anchor_n,
        "drain_per_s": round(done / seconds, 1) if seconds > 0 else None,
        "lost": tally.lost(s.anchor_n),
        "duplicates": tally.duplicates,
        "wire_bytes_per_reading": round(wire / s.anchor_n, 3),
        "faults": [],
    }


async def wait_log(child: Child, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in child.tail(50):
            return
        if not child.alive():
            break
        await asyncio.sleep(0.05)
    raise click.ClickException(f"{child.name} did not start:\n{child.tail()}")


def _child_main() -> None:
    """Entry of the anchor's processes: `anchor-hub PORT DB DIR` or `anchor-gw PORT N`."""
    role, *args = sys.argv[1:]
    if role == "anchor-hub":
        coro = anchor_hub(int(args[0]), args[1], Path(args[2]))
    else:
        coro = anchor_gateway(int(args[0]), int(args[1]))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(coro)


@click.command("sync")
@click.option("--readings", "n", type=click.IntRange(1, 50_000_000), required=True)
@click.option(
    "--broker",
    default="embedded",
    show_default=True,
    help="embedded, mosquitto or mqtt://host:port",
)
@click.option("--db", default="sqlite", show_default=True, help="sqlite or postgresql://...")
@click.option("--workers", type=click.IntRange(1, 32), default=1, show_default=True)
@click.option("--faults", is_flag=True, help="Restart the broker, kill -9 the hub and the gateway.")
@click.option("--json", "as_json", is_flag=True, help="End with the result as one JSON line.")
@click.option(
    "--anchor-readings",
    type=click.IntRange(0, 50_000_000),
    default=None,
    help="Readings for the anchor (default: N, at most 100000; 20000 on the embedded broker).",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the fault schedule.")
@click.option(
    "--backlog-rate",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="The gateway's backlog drain limit, readings/s (0: unlimited, the bench's figure); "
    "a limit keeps the drain going long enough for --faults to land mid-way.",
)
@click.option("--keep", is_flag=True, help="Keep the working directory (logs, buffer, database).")
def bench_sync(
    n: int,
    broker: str,
    db: str,
    workers: int,
    faults: bool,
    as_json: bool,
    anchor_readings: int | None,
    seed: int,
    backlog_rate: float,
    keep: bool,
) -> None:
    """Drain N readings of the reference workload from a gateway buffer to the hub."""
    if broker not in ("embedded", "mosquitto") and not broker.startswith("mqtt://"):
        raise click.BadParameter("embedded, mosquitto or mqtt://host:port", param_hint="--broker")
    if anchor_readings is None:
        anchor_readings = min(n, 20_000 if broker == "embedded" else 100_000)
    workdir = Path(tempfile.mkdtemp(prefix="estran-bench-sync-"))
    db_spec = f"sqlite:///{workdir / 'hub' / 'estran.sqlite3'}" if db == "sqlite" else db
    setup = Setup(n, broker, db_spec, workers, faults, anchor_readings, seed, workdir)
    setup.backlog_rate = backlog_rate
    try:
        result = asyncio.run(run(setup, progress=True))
    except RigError as e:  # no mosquitto, a child that did not start: one line, no traceback
        raise click.ClickException(str(e)) from e
    finally:
        if keep:
            click.echo(f"kept {workdir}", err=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if as_json:
        click.echo(json.dumps(result))
    else:
        for key, value in result.items():
            click.echo(f"{key}: {value}")


__all__ = ["bench_sync", "load_workload", "run", "wait_hub_ready", "wait_log"]

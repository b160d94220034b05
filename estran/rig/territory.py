"""The territory scenario (docs/hil.md): a day of the territory compressed into minutes.

    figures = await run_territory(workdir, day_s=180.0, say=print)

3 sites of 4 gateways (each a process of its own: `python -m estran.rig.swarm` with the
territory's sensors, enrolled in its site's group) share the reference workload's 200
sensors and the scripted ones of the alerts; each site reaches Mosquitto through a proxy of
its own (the site's network link). The hub (`estran hub run`) runs on SQLite with alert
rules: a bin full, a night leak, a berth taken. Over the day:

- each site in turn has an outage: its link cut (the proxy resets every connection) for a
  while, then the power cut of one of its gateways (kill -9) and its restart, then a hub
  restart (kill -9 and start);
- in the middle: a configuration push to every gateway, then a broker restart (kill -9 of
  Mosquitto and start).

At the end the sensors fall silent, every buffer drains, and the hub's database is read:
each gateway's ledger (what it committed) against what the hub holds (`gateway, seq`), and
no reading twice. Recovery times, the gateways' memory (their budget: the daemon unit's
`MemoryMax=128M`), the alerts and the machine's load average are reported.

A wait that does not end raises `TerritoryStalled`, whose message says, for each gateway
that was waited on, what its swarm process reported (uplink, fleet link, buffer depth,
readings produced and acknowledged), what the hub reports of it (`GET /api/v1/gateways`),
what its buffer still holds (`estran edge buffer stats|dump`: sequence ranges and sensors)
and which of its committed readings the hub lacks (its ledger against the database).
The audit names each gateway and sensor a reading is missing for, extra, or twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from estran.rig._child import Child, estran_argv
from estran.rig._errors import RigError
from estran.rig._proxy import LinkProxy
from estran.rig.swarm import ProcessSampler, SwarmHub, raise_fd_limit
from estran.rig.swarm._enroll import enroll_many
from estran.rig.swarm._territory import (
    DAY_MS,
    LEDGER,
    Clock,
    TerritoryProducer,
    day_readings,
    read_ledger,
    read_ledger_entries,
    split,
    territory_sensors,
)

SITES = ("site-a", "site-b", "site-c")
PER_SITE = 4
MEMORY_BUDGET = 128 << 20  # edge/systemd/estran-edge.service: MemoryMax=128M
DRAIN_S = 180.0  # the final drain's bound (a few seconds when nothing is stuck)

RULES: list[dict[str, object]] = [
    {
        "id": "bin-full",
        "kind": "threshold",
        "scope": {"kind": "bin"},
        "params": {"quantity": "fill", "op": ">=", "value": 80, "clear": 70},
    },
    {
        "id": "night-leak",
        "kind": "night_flow",
        "scope": {"kind": "water"},
        "severity": "critical",
        # The engine's clock is the wall clock (docs/alerts.md): a night of a compressed day
        # lasts seconds, and its timer closes it at the next tick, one reading in.
        "params": {"quantity": "flow", "min_readings": 1},
    },
    {
        "id": "berth-taken",
        "kind": "change",
        "scope": {"kind": "berth"},
        "params": {"quantity": "occupied"},
    },
]


class TerritoryStalled(RigError):
    """A wait of the scenario did not end in time; the message says who is stuck on what."""


class _GatewayChild(Child):
    """A swarm process running one gateway; its latest status line kept."""

    latest: dict[str, Any]

    def __init__(self, name: str, argv: list[str], log: Path) -> None:
        super().__init__(name, argv, log, pipe_stdout=True)
        self.latest = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await super().start()
        self.latest = {}
        self._reader = asyncio.create_task(self._read(), name=f"{self.name}-status")

    async def _read(self) -> None:
        while self.alive():
            try:
                line = await self.readline(60.0)
            except (TimeoutError, ValueError):
                continue
            if not line:
                return
            with contextlib.suppress(ValueError):
                self.latest = json.loads(line)


@dataclass
class Gateway:
    site: int
    index: int
    data_dir: Path
    child: _GatewayChild
    gateway_id: str = ""
    rss_max: int = 0

    @property
    def status(self) -> dict[str, Any]:
        """The swarm process's latest status line ({} before the first, after a start)."""
        return self.child.latest

    def connected(self) -> bool:
        s = self.status
        return bool(s.get("uplink") == 1 and s.get("fleet") == 1)

    def drained(self) -> bool:
        """Connected, with nothing left in its buffer (once the sensors are silent)."""
        s = self.status
        return bool(s.get("uplink") == 1 and int(s.get("depth", 1)) == 0)

    def caught_up(self, upto: int) -> bool:
        """Every reading it produced up to `upto` (its count then) acknowledged."""
        s = self.status
        return bool(s.get("uplink") == 1 and int(s.get("acked", 0)) >= upto)


@dataclass
class Territory:
    workdir: Path
    day_s: float
    hub: SwarmHub
    proxies: list[LinkProxy] = field(default_factory=list)
    gateways: list[Gateway] = field(default_factory=list)
    events: list[dict[str, object]] = field(default_factory=list)
    say: Callable[[str], None] = lambda _: None
    t0: float = 0.0

    def event(self, what: str, **figures: object) -> None:
        entry = {"t_s": round(time.monotonic() - self.t0, 1), "event": what, **figures}
        self.events.append(entry)
        self.say(json.dumps(entry))

    async def until(
        self,
        check: Callable[[Gateway], bool],
        gateways: list[Gateway],
        timeout: float,
        what: str,
    ) -> float:
        """Seconds until `check` holds for every one of `gateways`; TerritoryStalled naming
        those it does not hold for, and why, after `timeout`."""
        t = time.monotonic()
        while not all(check(g) for g in gateways):
            if time.monotonic() - t > timeout:
                stuck = [g for g in gateways if not check(g)]
                report = await diagnose(self, stuck)
                raise TerritoryStalled(
                    f"{what}: not within {timeout:g} s for "
                    f"{', '.join(g.gateway_id for g in stuck)}\n{report}"
                )
            await asyncio.sleep(0.1)
        return round(time.monotonic() - t, 2)


# -- what a failure says ---------------------------------------------------------------------


def ranges(seqs: Iterable[int]) -> str:
    """ "1-5, 9, 12-20" (at most 8 ranges, then how many more)."""
    out: list[list[int]] = []
    for s in sorted(seqs):
        if out and out[-1][1] == s - 1:
            out[-1][1] = s
        else:
            out.append([s, s])
    text = ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in out[:8])
    return text + (f" (+{len(out) - 8} more ranges)" if len(out) > 8 else "")


def by_sensor(whats: Iterable[str], top: int = 6) -> str:
    """ "meter-003 energy: 12, ..." from "sensor quantity ts_ms" entries."""
    counts = Counter(" ".join(w.split(" ")[:2]) for w in whats)
    text = ", ".join(f"{k}: {n}" for k, n in counts.most_common(top))
    return text + (f" (+{len(counts) - top} more series)" if len(counts) > top else "")


def _buffer_cli(g: Gateway, command: str) -> list[dict[str, Any]]:
    """`estran edge buffer COMMAND --json` on the gateway's buffer (read-only: the running
    gateway keeps it), one object per line."""
    argv = estran_argv(
        "edge",
        "buffer",
        command,
        "--dir",
        str(g.data_dir / "buffer"),
        "--seq-path",
        str(g.data_dir / "buffer" / "seq.cbor"),
        "--json",
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RigError(f"estran edge buffer {command}: {done.stderr.strip()[-300:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _held_at_hub(db_path: Path, gateway_id: str) -> set[int]:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute(
            "SELECT r.seq FROM readings r JOIN gateways w ON w.id = r.gateway_id WHERE w.name = ?",
            (gateway_id,),
        ).fetchall()
    finally:
        db.close()
    return {int(r[0]) for r in rows}


def _describe(g: Gateway, db_path: Path, hub_rows: dict[str, dict[str, object]]) -> str:
    s = g.status
    lines = [
        f"- {g.gateway_id} (process {'alive' if g.child.alive() else 'not running'}): "
        + (
            "uplink {uplink}, fleet link {fleet}, buffer depth {depth}, produced {produced}, "
            "acknowledged {acked}, uplink connects {connects}".format(
                **{k: s.get(k, "?") for k in ("uplink", "fleet", "depth", "produced")},
                acked=s.get("acked", "?"),
                connects=s.get("connects", "?"),
            )
            if s
            else "no status line yet"
        )
    ]
    row = hub_rows.get(g.gateway_id)
    if row is not None:
        lines.append(
            f"  hub: {row.get('state')}, backlog it reported {row.get('backlog')}, "
            f"last seen {row.get('last_seen')}, readings {row.get('readings')}, "
            f"last error {row.get('last_error')}"
        )
    try:
        stats = _buffer_cli(g, "stats")[0]
        left = _buffer_cli(g, "dump") if stats.get("depth") else []
        lines.append(
            f"  buffer: depth {stats.get('depth')}, segments {stats.get('segments')}, "
            f"durable seq {stats.get('durable_seq')}, dropped {stats.get('dropped_total')}"
        )
        if left:
            held = _held_at_hub(db_path, g.gateway_id)
            seqs = [int(r["seq"]) for r in left]
            series = [f"{r['sensor']} {r['quantity']}" for r in left]
            lines.append(
                f"  unacknowledged in its buffer: seqs {ranges(seqs)}; "
                f"{sum(q in held for q in seqs)} of them already at the hub; "
                f"sensors: {by_sensor(series)}"
            )
    except (RigError, OSError, subprocess.TimeoutExpired, ValueError, IndexError) as e:
        lines.append(f"  buffer: not read ({e})")
    try:
        entries = read_ledger_entries(g.data_dir / LEDGER)
        missing = sorted(set(entries) - _held_at_hub(db_path, g.gateway_id))
        lines.append(
            f"  ledger: {len(entries)} committed, {len(missing)} not at the hub"
            + (
                f": seqs {ranges(missing)}; sensors: {by_sensor(entries[q] for q in missing)}"
                if missing
                else ""
            )
        )
    except (OSError, sqlite3.Error, ValueError) as e:
        lines.append(f"  ledger: not compared ({e})")
    return "\n".join(lines)


async def diagnose(t: Territory, gateways: list[Gateway]) -> str:
    """What the gateways, their buffers, their ledgers and the hub say about `gateways`."""
    hub_rows: dict[str, dict[str, object]] = {}
    with contextlib.suppress(httpx.HTTPError, ValueError, RigError):
        async with t.hub.client(timeout=10) as http:
            for row in await t.hub.get_all(http, "/api/v1/gateways"):
                hub_rows[str(row.get("id"))] = row
    db_path = t.hub.data / "estran.sqlite3"
    parts = await asyncio.gather(
        *(asyncio.to_thread(_describe, g, db_path, hub_rows) for g in gateways)
    )
    return "\n".join(parts)


# -- the day ---------------------------------------------------------------------------------


async def _outage(t: Territory, site: int, cut_s: float) -> None:
    """The site's link cut, then a gateway's power cut, then a hub restart."""
    gws = [g for g in t.gateways if g.site == site]
    proxy = t.proxies[site]
    t.event(f"{SITES[site]}: network cut")
    proxy.cut()
    await asyncio.sleep(cut_s)
    proxy.restore()
    upto = {g.gateway_id: int(g.status.get("produced", 0)) for g in gws}
    back = await t.until(Gateway.connected, gws, 120, "reconnect after the network cut")
    drained = await t.until(
        lambda g: g.caught_up(upto[g.gateway_id]), gws, 180, "backlog after the network cut"
    )
    t.event(f"{SITES[site]}: network back", reconnected_s=back, backlog_acked_s=drained)
    victim = gws[0]
    t.event(f"{SITES[site]}: power cut of {victim.gateway_id} (kill -9)")
    await victim.child.kill_and_wait()
    await asyncio.sleep(cut_s / 2)
    start = time.monotonic()
    await victim.child.start()
    up = await t.until(Gateway.connected, [victim], 120, "restart after the power cut")
    t.event(
        f"{SITES[site]}: {victim.gateway_id} powered again",
        connected_s=up,
        since_power_s=round(time.monotonic() - start, 2),
    )
    restart = await t.hub.restart(kill=True)
    upto = {g.gateway_id: int(g.status.get("produced", 0)) for g in t.gateways}
    again = await t.until(
        lambda g: g.caught_up(upto[g.gateway_id]), t.gateways, 180, "after the hub restart"
    )
    t.event("hub restarted (kill -9)", ready_s=round(restart, 2), all_caught_up_after_s=again)


async def _push_and_broker(t: Territory, http: httpx.AsyncClient) -> None:
    await t.hub.set_fleet_config(http, {"uplink": {"backlog_rate": 7000.0}})
    ids = {g.gateway_id for g in t.gateways}
    rows: list[dict[str, object]] = []
    start = time.monotonic()
    while True:
        rows = [r for r in await t.hub.get_all(http, "/api/v1/fleet/gateways") if r["id"] in ids]
        late = [
            r
            for r in rows
            if r["outcome"] != "applied" or r["applied_version"] != r["desired_version"]
        ]
        if not late:
            break
        if time.monotonic() - start > 120:
            raise TerritoryStalled(f"configuration push: not applied within 120 s: {late}")
        await asyncio.sleep(0.5)
    t.event("configuration pushed", applied_and_reported_s=round(time.monotonic() - start, 2))
    away = await t.hub.restart_broker()
    back = await t.until(Gateway.connected, t.gateways, 120, "reconnect after the broker restart")
    t.event("broker restarted (kill -9)", away_s=round(away, 2), all_reconnected_s=back)


def audit(t: Territory) -> dict[str, object]:
    """Each gateway's ledger against the hub's database (SQLite, docs/hub.md): `problems`
    names the gateway, the sequence numbers and the sensors of whatever is missing, extra
    or twice."""
    db = sqlite3.connect(f"file:{t.hub.data / 'estran.sqlite3'}?mode=ro", uri=True)
    problems: list[str] = []
    try:
        out: dict[str, object] = {}
        missing = extra = twice = 0
        for g in t.gateways:
            rows = db.execute(
                "SELECT r.seq, s.sensor, s.quantity FROM readings r"
                " JOIN gateways w ON w.id = r.gateway_id JOIN series s ON s.id = r.series_id"
                " WHERE w.name = ?",
                (g.gateway_id,),
            ).fetchall()
            held = {int(r[0]): f"{r[1]} {r[2]}" for r in rows}
            ledger = read_ledger(g.data_dir / LEDGER)
            entries = read_ledger_entries(g.data_dir / LEDGER)
            lacking = sorted(set(ledger) - set(held))
            beyond = sorted(set(held) - set(ledger))
            repeats = len(ledger) - len(set(ledger))
            missing += len(lacking)
            extra += len(beyond)
            twice += repeats
            if lacking:
                problems.append(
                    f"{g.gateway_id}: {len(lacking)} committed readings not at the hub: seqs "
                    f"{ranges(lacking)}; sensors: {by_sensor(entries[q] for q in lacking)}"
                )
            if beyond:
                problems.append(
                    f"{g.gateway_id}: {len(beyond)} readings at the hub it never committed: "
                    f"seqs {ranges(beyond)}; sensors: {by_sensor(held[q] for q in beyond)}"
                )
            if repeats:
                counts = Counter(ledger)
                problems.append(
                    f"{g.gateway_id}: sequence numbers committed twice: "
                    f"{ranges(q for q, n in counts.items() if n > 1)}"
                )
            out[g.gateway_id] = {"committed": len(ledger), "held": len(held)}
        dups = db.execute(
            "SELECT s.sensor, s.quantity, r.ts_ms, count(*) FROM readings r"
            " JOIN series s ON s.id = r.series_id GROUP BY r.series_id, r.ts_ms"
            " HAVING count(*) > 1 LIMIT 20"
        ).fetchall()
        dup = db.execute(
            "SELECT count(*) FROM (SELECT series_id, ts_ms FROM readings"
            " GROUP BY series_id, ts_ms HAVING count(*) > 1)"
        ).fetchone()[0]
        if dup:
            problems.append(
                f"{dup} readings stored twice (same series and time), e.g. "
                + ", ".join(f"{a} {b} at {c} ({n} times)" for a, b, c, n in dups[:6])
            )
        total = db.execute("SELECT count(*) FROM readings").fetchone()[0]
    finally:
        db.close()
    return {
        "gateways": out,
        "readings_at_hub": total,
        "missing": missing,
        "extra": extra,
        "ledger_repeats": twice,
        "same_reading_twice": dup,
        "problems": problems,
    }


def _recovery(events: list[dict[str, object]]) -> dict[str, list[object]]:
    """The recovery times of the day's events, by kind (for docs/benchmarks.md)."""
    keys = {
        "network back": ("reconnected_s", "backlog_acked_s"),
        "powered again": ("connected_s",),
        "hub restarted": ("ready_s", "all_caught_up_after_s"),
        "broker restarted": ("all_reconnected_s",),
        "configuration pushed": ("applied_and_reported_s",),
        "every buffer drained": ("seconds",),
    }
    out: dict[str, list[object]] = {}
    for e in events:
        for marker, names in keys.items():
            if marker in str(e["event"]):
                for name in names:
                    out.setdefault(f"{marker}: {name}", []).append(e.get(name))
    return out


async def _stop_all(gateways: list[Gateway], timeout: float) -> None:
    await asyncio.gather(*(g.child.stop(timeout) for g in gateways), return_exceptions=True)


async def run_territory(
    workdir: Path,
    *,
    day_s: float = 180.0,
    say: Callable[[str], None] = lambda _: None,
    drain_s: float = DRAIN_S,
) -> dict[str, object]:
    """The day in `day_s` seconds of wall time; the figures (events, audit, memory, alerts,
    recovery, load). TerritoryStalled when a wait does not end, RigError when a part of the
    rig does not start."""
    raise_fd_limit()
    started = time.monotonic()
    load_start = os.getloadavg()
    cpu_start = os.times()
    hub = SwarmHub(workdir / "hub-rig", "sqlite")
    t = Territory(workdir, day_s, hub, say=say)
    sampler = ProcessSampler()
    figures: dict[str, object] = {
        "day_s": day_s,
        "speed": round(DAY_MS / 1000 / day_s, 1),
        "day_readings_at_most": day_readings(territory_sensors()),
    }
    try:
        await hub.start()
        for site in SITES:
            await hub.create_group(site)
        async with hub.client() as http:
            for rule in RULES:
                r = await http.post("/api/v1/alert-rules", json=rule)
                if r.status_code >= 300:
                    raise RigError(f"rule {rule['id']}: {r.text}")
            await _start_gateways(t)
            first = await t.until(Gateway.connected, t.gateways, 120, "start")
            t.event("all gateways connected", seconds=first)

            async def sample() -> None:
                while True:
                    pids = {g.gateway_id: g.child.pid for g in t.gateways if g.child.alive()}
                    sampler.sample({k: v for k, v in pids.items() if v}, {})
                    sampler.sample(hub.pids())
                    for g in t.gateways:
                        g.rss_max = max(g.rss_max, int(g.status.get("rss", 0)))
                    await asyncio.sleep(1.0)

            sampling = asyncio.create_task(sample(), name="territory-sample")
            try:
                await _the_day(t, http)
                t.event("end of the day: sensors silenced")
                for g in t.gateways:
                    g.child.send_signal(signal.SIGUSR1)  # the sensors fall silent
                await asyncio.sleep(1.0)
                drained = await t.until(Gateway.drained, t.gateways, drain_s, "final drain")
                t.event("every buffer drained", seconds=drained)
                r = await http.get("/api/v1/alerts", params={"limit": 1000})
                r.raise_for_status()
                alerts = r.json()["alerts"]
            finally:
                sampling.cancel()
        await _stop_all(t.gateways, 20.0)
        figures["events"] = t.events
        figures["recovery"] = _recovery(t.events)
        figures["audit"] = await asyncio.to_thread(audit, t)
        figures["alerts"] = sorted({str(a["rule"]) for a in alerts})
        figures["alert_subjects"] = sorted({f"{a['rule']}:{a['subject']}" for a in alerts})[:20]
        figures["memory"] = {
            "budget": MEMORY_BUDGET,
            "max_rss_by_gateway": {g.gateway_id: g.rss_max for g in t.gateways},
        }
        figures["processes"] = {
            n: [s.get("first"), s.get("max"), s.get("slope_per_hour")]
            for n, s in sampler.summary().items()
            if n.endswith(".rss")
        }
    finally:
        await _stop_all(t.gateways, 5.0)
        for p in t.proxies:
            await p.close()
        await hub.stop()
    cpu_end = os.times()
    figures["wall_s"] = round(time.monotonic() - started, 1)
    figures["cpu_s_children"] = round(
        (cpu_end.children_user + cpu_end.children_system)
        - (cpu_start.children_user + cpu_start.children_system),
        1,
    )
    figures["load_average"] = {
        "start": [round(x, 2) for x in load_start],
        "end": [round(x, 2) for x in os.getloadavg()],
    }
    return figures


async def _start_gateways(t: Territory) -> None:
    hub = t.hub
    sensors = split(territory_sensors(), len(SITES) * PER_SITE)
    now = time.time()
    clock = Clock(int((now - 86_400) * 1000), now, DAY_MS / 1000 / t.day_s)
    for s, site in enumerate(SITES):
        proxy = LinkProxy(hub.broker_port, mqtt=True)
        await proxy.start()
        t.proxies.append(proxy)
        dirs = [t.workdir / "gateways" / f"{site}-{i}" for i in range(PER_SITE)]
        ids, _ = await asyncio.to_thread(
            enroll_many,
            hub.url,
            hub.admin_token,
            site,
            dirs,
            first_index=s * PER_SITE,
            site=site,
        )
        for i, (d, gid) in enumerate(zip(dirs, ids, strict=True)):
            spec = d / "territory.json"
            TerritoryProducer.write_file(spec, sensors[s * PER_SITE + i], clock)
            (d / "dirs").write_text(f"{d}\n")
            argv = [
                sys.executable, "-m", "estran.rig.swarm", str(d / "dirs"),
                "--territory", str(spec),
                "--broker", f"mqtt://127.0.0.1:{proxy.port}",
                "--status-interval", "0.2",
            ]  # fmt: skip
            child = _GatewayChild(gid, argv, t.workdir / f"{gid}.log")
            t.gateways.append(Gateway(s, i, d, child, gid))
    t.t0 = time.monotonic()
    for g in t.gateways:
        await g.child.start()


async def _the_day(t: Territory, http: httpx.AsyncClient) -> None:
    """The outages at their time of day (10 %, 30 %, 65 %), the push and the broker restart
    at 50 %; until the end of the day. An event that runs late delays the next ones; the
    sensors read nothing past the end of the simulated day all the same (`Clock`)."""
    cut = max(3.0, t.day_s / 30)
    schedule: list[tuple[float, Callable[[], Awaitable[None]]]] = [
        (0.1, lambda: _outage(t, 0, cut)),
        (0.3, lambda: _outage(t, 1, cut)),
        (0.5, lambda: _push_and_broker(t, http)),
        (0.65, lambda: _outage(t, 2, cut)),
    ]
    for at, action in schedule:
        wait = t.t0 + at * t.day_s - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        await action()
    wait = t.t0 + t.day_s - time.monotonic()
    if wait > 0:
        await asyncio.sleep(wait)


__all__ = [
    "DRAIN_S",
    "MEMORY_BUDGET",
    "PER_SITE",
    "RULES",
    "SITES",
    "Gateway",
    "Territory",
    "TerritoryStalled",
    "audit",
    "diagnose",
    "run_territory",
]

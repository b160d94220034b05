"""`estran bench territory`: the territory scenario, a day compressed into minutes.

3 sites of 4 gateways (each a process of its own: estran.rig.swarm with the territory's
sensors, enrolled in its site's group) share the reference workload's 200 sensors and the
scripted ones of the alerts; each site reaches Mosquitto through a proxy of its own (the
site's network link). The hub runs on SQLite with alert rules: a bin full, a night leak, a
berth taken. Over the day:

- each site in turn has an outage: its link cut (the proxy resets every connection) for a
  while, then the power cut of one of its gateways (kill -9) and its restart, then a hub
  restart (kill -9 and start);
- in the middle: a configuration push to every gateway, then a broker restart (kill -9 of
  Mosquitto and start).

At the end the sensors fall silent, every buffer drains, and the hub's database is read:
each gateway's ledger (what it committed) against what the hub holds (`gateway, seq`), and
no reading twice. Recovery times, the gateways' memory (their budget: the daemon unit's
`MemoryMax=128M`) and the alerts are reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from estran.rig import Child, LinkProxy
from estran.rig.swarm import ProcessSampler, SwarmHub, raise_fd_limit
from estran.rig.swarm._enroll import enroll_many
from estran.rig.swarm._territory import (
    LEDGER,
    Clock,
    TerritoryProducer,
    read_ledger,
    split,
    territory_sensors,
)

SITES = ("site-a", "site-b", "site-c")
PER_SITE = 4
MEMORY_BUDGET = 128 << 20  # edge/systemd/estran-edge.service: MemoryMax=128M
DAY_MS = 86_400_000

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


@dataclass
class Gateway:
    site: int
    index: int
    data_dir: Path
    child: Child
    gateway_id: str = ""
    rss_max: int = 0


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


async def _until(check: Callable[[], bool], timeout: float, what: str) -> float:
    t = time.monotonic()
    while not check():
        if time.monotonic() - t > timeout:
            raise click.ClickException(f"{what}: not within {timeout:g} s")
        await asyncio.sleep(0.1)
    return round(time.monotonic() - t, 2)


def _connected(g: Gateway) -> bool:
    s = g.child.latest  # type: ignore[attr-defined]
    return bool(s.get("uplink") == 1 and s.get("fleet") == 1)


def _drained(g: Gateway) -> bool:
    """Connected, with nothing left in its buffer (once the sensors are silent)."""
    s = g.child.latest  # type: ignore[attr-defined]
    return bool(s.get("uplink") == 1 and int(s.get("depth", 1)) == 0)


def _produced(gws: list[Gateway]) -> dict[str, int]:
    return {g.gateway_id: int(g.child.latest.get("produced", 0)) for g in gws}  # type: ignore[attr-defined]


def _caught_up(gws: list[Gateway], upto: dict[str, int]) -> bool:
    """Every reading each gateway produced up to `upto` (its count then) acknowledged."""
    return all(
        g.child.latest.get("uplink") == 1  # type: ignore[attr-defined]
        and int(g.child.latest.get("acked", 0)) >= upto[g.gateway_id]  # type: ignore[attr-defined]
        for g in gws
    )


async def _outage(t: Territory, site: int, cut_s: float) -> dict[str, object]:
    """The site's link cut, then a gateway's power cut, then a hub restart."""
    gws = [g for g in t.gateways if g.site == site]
    proxy = t.proxies[site]
    t.event(f"{SITES[site]}: network cut")
    proxy.cut()
    await asyncio.sleep(cut_s)
    proxy.restore()
    upto = _produced(gws)
    back = await _until(lambda: all(_connected(g) for g in gws), 120, "reconnect")
    drained = await _until(lambda: _caught_up(gws, upto), 180, "backlog drained")
    t.event(f"{SITES[site]}: network back", reconnected_s=back, backlog_acked_s=drained)
    victim = gws[0]
    t.event(f"{SITES[site]}: power cut of {victim.gateway_id} (kill -9)")
    await victim.child.kill_and_wait()
    await asyncio.sleep(cut_s / 2)
    start = time.monotonic()
    await victim.child.start()
    up = await _until(lambda: _connected(victim), 120, "restart after power cut")
    t.event(
        f"{SITES[site]}: {victim.gateway_id} powered again",
        connected_s=up,
        since_power_s=round(time.monotonic() - start, 2),
    )
    restart = await t.hub.restart(kill=True)
    upto = _produced(t.gateways)
    again = await _until(lambda: _caught_up(t.gateways, upto), 180, "after hub restart")
    t.event(
        "hub restarted (kill -9)",
        ready_s=round(restart, 2),
        all_caught_up_after_s=again,
    )
    return {"site": SITES[site]}


async def _push_and_broker(t: Territory, http: Any) -> None:
    await t.hub.set_fleet_config(http, {"uplink": {"backlog_rate": 7000.0}})
    rows = await t.hub.get_all(http, "/api/v1/fleet/gateways")
    ids = {g.gateway_id for g in t.gateways}

    async def applied() -> bool:
        rows = await t.hub.get_all(http, "/api/v1/fleet/gateways")
        return all(
            r["outcome"] == "applied" and r["applied_version"] == r["desired_version"]
            for r in rows
            if r["id"] in ids
        )

    start = time.monotonic()
    while not await applied():
        if time.monotonic() - start > 120:
            raise click.ClickException(f"configuration push: not applied: {rows}")
        await asyncio.sleep(0.5)
    t.event("configuration pushed", applied_and_reported_s=round(time.monotonic() - start, 2))
    away = await t.hub.restart_broker()
    back = await _until(lambda: all(_connected(g) for g in t.gateways), 120, "after broker")
    t.event("broker restarted (kill -9)", away_s=round(away, 2), all_reconnected_s=back)


def audit(t: Territory) -> dict[str, object]:
    """Each gateway's ledger against the hub's database (SQLite, docs/hub.md)."""
    db = sqlite3.connect(f"file:{t.hub.data / 'estran.sqlite3'}?mode=ro", uri=True)
    try:
        out: dict[str, object] = {}
        missing = extra = twice = 0
        for g in t.gateways:
            rows = db.execute(
                "SELECT r.seq FROM readings r JOIN gateways w ON w.id = r.gateway_id"
                " WHERE w.name = ?",
                (g.gateway_id,),
            ).fetchall()
            held = [r[0] for r in rows]
            ledger = read_ledger(g.data_dir / LEDGER)
            missing += len(set(ledger) - set(held))
            extra += len(set(held) - set(ledger))
            twice += len(ledger) - len(set(ledger))
            out[g.gateway_id] = {"committed": len(ledger), "held": len(held)}
        dup = db.execute(
            "SELECT count(*) FROM (SELECT series_id, ts_ms FROM readings"
            " GROUP BY series_id, ts_ms HAVING count(*) > 1)"
        ).fetchone()[0]
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
    }


async def run_territory(
    workdir: Path,
    *,
    day_s: float = 180.0,
    say: Callable[[str], None] = lambda _: None,
) -> dict[str, object]:
    raise_fd_limit()
    hub = SwarmHub(workdir / "hub-rig", "sqlite")
    t = Territory(workdir, day_s, hub, say=say)
    sampler = ProcessSampler()
    figures: dict[str, object] = {"day_s": day_s, "speed": round(DAY_MS / 1000 / day_s, 1)}
    try:
        await hub.start()
        for site in SITES:
            await hub.create_group(site)
        async with hub.client() as http:
            for rule in RULES:
                r = await http.post("/api/v1/alert-rules", json=rule)
                if r.status_code >= 300:
                    raise click.ClickException(f"rule {rule['id']}: {r.text}")
            sensors = split(territory_sensors(), len(SITES) * PER_SITE)
            now = time.time()
            clock = Clock(int((now - 86_400) * 1000), now, DAY_MS / 1000 / day_s)
            for s, site in enumerate(SITES):
                proxy = LinkProxy(hub.broker_port, mqtt=True)
                await proxy.start()
                t.proxies.append(proxy)
                dirs = [workdir / "gateways" / f"{site}-{i}" for i in range(PER_SITE)]
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
                    k = s * PER_SITE + i
                    spec = d / "territory.json"
                    TerritoryProducer.write_file(spec, sensors[k], clock)
                    (d / "dirs").write_text(f"{d}\n")
                    argv = [
                        sys.executable, "-m", "estran.rig.swarm", str(d / "dirs"),
                        "--territory", str(spec),
                        "--broker", f"mqtt://127.0.0.1:{proxy.port}",
                        "--status-interval", "0.2",
                    ]  # fmt: skip
                    child = _GatewayChild(gid, argv, workdir / f"{gid}.log")
                    t.gateways.append(Gateway(s, i, d, child, gid))
            t.t0 = time.monotonic()
            for g in t.gateways:
                await g.child.start()
            first = await _until(lambda: all(_connected(g) for g in t.gateways), 120, "start")
            t.event("all gateways connected", seconds=first)

            async def sample() -> None:
                while True:
                    pids = {g.gateway_id: g.child.pid for g in t.gateways if g.child.alive()}
                    sampler.sample({k: v for k, v in pids.items() if v}, {})
                    sampler.sample(hub.pids())
                    for g in t.gateways:
                        rss = int(g.child.latest.get("rss", 0))  # type: ignore[attr-defined]
                        g.rss_max = max(g.rss_max, rss)
                    await asyncio.sleep(1.0)

            sampling = asyncio.create_task(sample(), name="territory-sample")
            try:
                cut = max(3.0, day_s / 30)
                schedule: list[tuple[float, int | None]] = [
                    (0.1, 0),
                    (0.3, 1),
                    (0.5, None),
                    (0.65, 2),
                ]
                for at, target in schedule:
                    wait = t.t0 + at * day_s - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    if target is None:
                        await _push_and_broker(t, http)
                    else:
                        await _outage(t, target, cut)
                wait = t.t0 + day_s - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                t.event("end of the day: sensors silenced")
                for g in t.gateways:
                    g.child.send_signal(signal.SIGUSR1)  # the sensors fall silent
                await asyncio.sleep(1.0)
                drained = await _until(
                    lambda: all(_drained(g) for g in t.gateways), 180, "final drain"
                )
                t.event("every buffer drained", seconds=drained)
                r = await http.get("/api/v1/alerts", params={"limit": 1000})
                r.raise_for_status()
                alerts = r.json()["alerts"]
            finally:
                sampling.cancel()
        for g in t.gateways:
            await g.child.stop(20.0)
        figures["events"] = t.events
        figures["audit"] = audit(t)
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
        for g in t.gateways:
            await g.child.stop(5.0)
        for p in t.proxies:
            await p.close()
        await hub.stop()
    return figures


@click.command("territory")
@click.option("--day", "day_s", type=float, default=180.0, show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None)
def bench_territory(day_s: float, workdir: Path | None) -> None:
    """The territory scenario: 3 sites, 12 gateways, a day in `--day` seconds, outages."""

    def say(text: str) -> None:
        click.echo(text, err=True)

    with tempfile.TemporaryDirectory(prefix="estran-territory-") as tmp:
        figures = asyncio.run(run_territory(workdir or Path(tmp), day_s=day_s, say=say))
    click.echo(json.dumps(figures, indent=2))

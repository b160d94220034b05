"""A fleet-scale run: a hub (1 or more processes) with its private Mosquitto, and a swarm
of enrolled gateways; each phase returns its figures (`estran bench fleet`,
hil-tests/test_fleet_scale.py).

1. connect storm: every worker process started at once; the time until every gateway's
   uplink and fleet link are connected (the swarm's count) and the hub shows every one
   online (`GET /api/v1/gateways`);
2. configuration push: one change of the fleet layer (`PUT /api/v1/fleet/config/fleet`);
   the time until every gateway has verified, applied and reported it (the swarm's count
   and the hub's `GET /api/v1/fleet/gateways`: applied = desired, outcome applied);
3. live rate: the workload for some seconds: the hub's ingest lag (its
   `estran_hub_ingest_lag_seconds` histograms, every hub process), the gateways' end to
   end lag (append to ack), and the rate;
4. drain: sensors silenced, every buffer drained; the hub must hold exactly what the
   gateways produced (readings held per gateway, summed, against the swarm's count).

Every phase also says how many CPU seconds each process (hub, Mosquitto, swarm) used in it
(`cpu_s`): on a shared machine the wall times measure the machine, the CPU seconds what the
code costs.
"""

from __future__ import annotations

import asyncio
import os
import random
import resource
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from estran.rig import RigError
from estran.rig.swarm._gateway import LAG_BUCKETS, Workload
from estran.rig.swarm._hub import SwarmHub, diff_buckets, histogram, quantile
from estran.rig.swarm._sample import CpuMeter, ProcessSampler
from estran.rig.swarm._swarm import Swarm
from estran.rig.swarm._worker import raise_fd_limit

TARGETS = {"connect_storm_s": 30.0, "config_push_s": 10.0, "ingest_lag_s": 2.0}
GROUP = "swarm"
FDS_PER_GATEWAY = 6  # at Mosquitto: 2 connections; in the swarm: 2 sockets, wake-ups, buffer
# open files a swarm gateway holds in its process: 2 sockets, the buffer's lock and its
# open segment, a sealed one at times (4.1 measured with 5,000 gateways in a process)
SWARM_FDS_PER_GATEWAY = 5


def check_fd_limit(limit: int, gateways: int, swarm_processes: int) -> None:
    """RigError when `limit` (open files, what Mosquitto and the swarm's processes inherit)
    is too low for the run: Mosquitto holds two connections per gateway, and a storm that
    cannot hold them all never ends."""
    if limit == resource.RLIM_INFINITY:
        return
    broker = 2 * gateways + 64  # and its listener, the hub's clients, its log
    if limit < broker:
        raise RigError(
            f"open files limited to {limit} (ulimit -Hn): Mosquitto needs {broker} for "
            f"{gateways} gateways (two connections each); at most {(limit - 64) // 2} "
            "gateways here"
        )
    share = -(-gateways // max(1, swarm_processes))
    swarm = SWARM_FDS_PER_GATEWAY * share + 256
    if limit < swarm:
        more = -(-gateways * SWARM_FDS_PER_GATEWAY // (limit - 256))
        raise RigError(
            f"open files limited to {limit}: a swarm process of {share} gateways needs "
            f"{swarm}; use --swarm-processes {more} or more"
        )


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _lag_summary(counts: list[int], bounds: tuple[float, ...]) -> dict[str, object]:
    total = sum(counts)
    cum: list[tuple[float, float]] = []
    acc = 0
    for le, c in zip(bounds, counts, strict=True):
        acc += c
        cum.append((le, float(acc)))
    within = {f"le_{le:g}s": round(c / total, 4) for le, c in cum if le <= 5.0} if total else {}
    return {
        "samples": total,
        "p50_le_s": quantile(cum, 0.5),
        "p99_le_s": quantile(cum, 0.99),
        "max_le_s": quantile(cum, 1.0),
        "fraction_within": within,
    }


def _compact(summary: dict[str, dict[str, object]]) -> dict[str, object]:
    """Each sampled figure as [first, last, slope per hour, flat]."""
    return {
        name: [s.get("first"), s.get("last"), s.get("slope_per_hour"), s.get("flat")]
        for name, s in summary.items()
    }


async def _sampling(
    sampler: ProcessSampler, pids: Callable[[], dict[str, int]], period: float
) -> None:
    while True:
        sampler.sample(pids())
        await asyncio.sleep(period)


async def _hub_online(hub: SwarmHub, ids: set[str], http: Any) -> int:
    rows = await hub.get_all(http, "/api/v1/gateways")
    return sum(1 for r in rows if r["id"] in ids and r["state"] == "online")


async def _hub_applied(hub: SwarmHub, ids: set[str], http: Any, above: dict[str, int]) -> int:
    rows = await hub.get_all(http, "/api/v1/fleet/gateways")
    return sum(
        1
        for r in rows
        if r["id"] in ids
        and r["applied_version"] is not None
        and r["applied_version"] == r["desired_version"]
        and int(str(r["applied_version"])) > above.get(str(r["id"]), 0)
        and r["outcome"] == "applied"
    )


async def _until(
    what: str, check: Callable[[], Awaitable[bool]], timeout: float, poll: float = 0.5
) -> float:
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        if await check():
            return time.monotonic() - t
        await asyncio.sleep(poll)
    raise RigError(f"{what}: not within {timeout:g} s")


class FleetScale:
    """The rig of a fleet-scale run: a hub (1 or more processes) with its Mosquitto, and a
    swarm of enrolled gateways; each phase returns its figures.

        async with FleetScale(workdir, 1000, db=pg) as run:
            await run.enroll(); await run.storm(); await run.push(); await run.live(20)
            await run.drain(); await run.scale(3); await run.storm(); ...
    """

    def __init__(
        self,
        workdir: Path,
        gateways: int,
        *,
        db: str = "sqlite",
        hub_processes: int = 1,
        workload: Workload | None = None,
        swarm_processes: int = 2,
        data_root: Path | None = None,
        say: Callable[[str], None] = lambda _: None,
        timeout_scale: float = 1.0,
    ) -> None:
        self.n = gateways
        self.db = db
        self.workload = workload or Workload(10, 60.0, 1.0)
        self.fd_limit = raise_fd_limit(gateways * FDS_PER_GATEWAY + 1024)
        check_fd_limit(self.fd_limit, gateways, swarm_processes)
        self.hub = SwarmHub(workdir / "hub-rig", db, processes=hub_processes)
        self.swarm = Swarm(
            workdir / "swarm",
            gateways,
            processes=swarm_processes,
            workload=self.workload,
            data_root=data_root,
            # each status line reads every gateway of the process: twice a second up to
            # 1,250 gateways, less often above (at 10,000, every 4 s)
            status_interval=max(0.5, gateways / 2500),
        )
        self.sampler = ProcessSampler()
        self.cpu = CpuMeter()
        self.say = say
        self.timeout = 120 * timeout_scale
        self.ids: set[str] = set()
        self._http: Any = None
        self._held_before = 0
        self._produced_before = 0  # readings of the swarm before this phase (`resume`)
        self._sampling: asyncio.Task[None] | None = None

    def _pids(self) -> dict[str, int]:
        return {**self.hub.pids(), **self.swarm.pids()}

    def _cpu_start(self) -> None:
        self.cpu.start(self._pids())

    def _cpu(self) -> dict[str, float]:
        """CPU seconds of each process since `_cpu_start` (the phase's cost)."""
        return self.cpu.read(self._pids())

    def header(self) -> dict[str, object]:
        w = self.workload
        return {
            "gateways": self.n,
            "hub_processes": len(self.hub.processes) or 1,
            "swarm_processes": self.swarm.processes,
            "db": "postgresql" if self.db.startswith("postgresql") else "sqlite",
            "workload": {
                "sensors_per_gateway": w.sensors,
                "period_s": w.period_s,
                "speed": w.speed,
                "readings_per_s": round(self.n * w.sensors / w.interval_s, 1),
            },
            "fd_limit": self.fd_limit,
            "targets": TARGETS,
        }

    async def __aenter__(self) -> FleetScale:
        self.say(f"hub and Mosquitto ({self.db.split(':')[0]}) ...")
        await self.hub.start()
        await self.hub.create_group(GROUP)
        self._http = self.hub.client()
        self._sampling = asyncio.create_task(
            _sampling(self.sampler, self._pids, 1.0),
            name="sample",
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._sampling is not None:
            self._sampling.cancel()
        if self._http is not None:
            await self._http.aclose()
        await self.swarm.stop()
        await self.hub.stop()

    async def enroll(self) -> dict[str, object]:
        self.say(f"enrolling {self.n} gateways through the API ...")
        seconds = await self.swarm.enroll(self.hub.url, self.hub.admin_token, GROUP)
        self.ids = set(self.swarm.ids)
        return {"enroll_s": round(seconds, 2), "enrolled": len(self.ids)}

    async def _held(self) -> int:
        """Readings the hub holds for the swarm's gateways (`GET /api/v1/gateways`)."""
        rows = await self.hub.get_all(self._http, "/api/v1/gateways")
        return sum(int(str(r["readings"] or 0)) for r in rows if r["id"] in self.ids)

    async def storm(self) -> dict[str, object]:
        """Every swarm process started at once: until every gateway is connected (both
        sessions) and online at the hub, and has reported its configuration."""
        self.say("connect storm ...")
        n = self.n
        self._held_before = await self._held()
        self._cpu_start()
        self.swarm.loop_late_max = 0.0
        t0 = time.monotonic()
        await self.swarm.start()
        swarm_s = await self.swarm.until(
            "connect storm", lambda s: s["uplink"] == n and s["fleet"] == n, self.timeout
        )

        async def online() -> bool:
            return await _hub_online(self.hub, self.ids, self._http) == n

        await _until("all online at the hub", online, self.timeout)
        online_s = time.monotonic() - t0
        total = self.swarm.total()
        return {
            "all_connected_s": round(swarm_s, 2),
            "all_online_at_hub_s": round(online_s, 2),
            # uplink sessions (more than the gateways: reconnections), batches sent again
            # for want of an ack in time, the latest a swarm loop woke for its status line
            "swarm": {
                "uplink_sessions": total["connects"],
                "resent_batches": total["resent"],
                "ack_timeouts": total["ack_timeouts"],
                "loop_late_max_s": round(self.swarm.loop_late_max, 2),
            },
            "cpu_s": self._cpu(),
            "loadavg": loadavg(),
        }

    async def push(self) -> dict[str, object]:
        """One change of the fleet layer: until every gateway has applied and reported it."""
        n = self.n
        await self.swarm.until(
            "configuration at start",
            lambda s: s["versioned"] == n,
            self.timeout,
        )
        rows = await self.hub.get_all(self._http, "/api/v1/fleet/gateways")
        before = {str(r["id"]): int(r["applied_version"] or 0) for r in rows}  # type: ignore[call-overload]
        applied0 = int(self.swarm.total()["outcomes"].get("applied", 0))  # type: ignore[attr-defined]
        self.say("configuration push ...")
        self._cpu_start()
        t0 = time.monotonic()
        await self.hub.set_fleet_config(
            self._http, {"uplink": {"backlog_rate": float(random.randint(5000, 9000))}}
        )
        signed_s = time.monotonic() - t0
        marks: dict[str, float] = {}

        def pushed(s: dict[str, object]) -> bool:
            done = int(s["outcomes"].get("applied", 0)) - applied0  # type: ignore[attr-defined]
            for share in (0.1, 0.5, 0.9):
                if done >= share * n and f"{share:g}" not in marks:
                    marks[f"{share:g}"] = round(time.monotonic() - t0, 2)
            return done >= n

        await self.swarm.until("configuration push", pushed, self.timeout)
        applied_s = time.monotonic() - t0

        async def reported() -> bool:
            return await _hub_applied(self.hub, self.ids, self._http, before) == n

        await _until("configuration reported", reported, self.timeout, poll=0.25)
        reported_s = time.monotonic() - t0
        cpu = self._cpu()
        return {
            "signed_s": round(signed_s, 2),  # the PUT: every document signed and queued
            "applied_at_gateways_s_by_share": marks,
            "all_applied_at_gateways_s": round(applied_s, 2),
            "all_reported_at_hub_s": round(reported_s, 2),
            "outcomes": self.swarm.total()["outcomes"],
            "cpu_s": cpu,
            "loadavg": loadavg(),
        }

    async def live(self, seconds: float) -> dict[str, object]:
        """The workload's rate for `seconds`: the hub's ingest lag (every hub process) and
        the gateways' end-to-end lag (append to ack)."""
        self.say(f"live rate for {seconds:g} s ...")
        m0 = histogram(await self.hub.metrics(self._http), "estran_hub_ingest_lag_seconds")
        s0 = self.swarm.total()
        c0 = await self.hub.ingest_counts(self._http)
        self._cpu_start()
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        s1 = self.swarm.total()
        dt = time.monotonic() - t0
        cpu = self._cpu()
        m1 = histogram(await self.hub.metrics(self._http), "estran_hub_ingest_lag_seconds")
        c1 = await self.hub.ingest_counts(self._http)
        hub_buckets = diff_buckets(m1[0], m0[0])
        gw_counts = [
            int(b) - int(a)
            for a, b in zip(s0["lag_counts"], s1["lag_counts"], strict=True)  # type: ignore[call-overload]
        ]
        batches = m1[1] - m0[1]
        return {
            "seconds": round(dt, 1),
            "produced_per_s": round((int(s1["produced"]) - int(s0["produced"])) / dt, 1),  # type: ignore[call-overload]
            "acked_per_s": round((int(s1["acked"]) - int(s0["acked"])) / dt, 1),  # type: ignore[call-overload]
            "hub_ingest_lag": {
                "batches": batches,
                "mean_s": round((m1[2] - m0[2]) / batches, 3) if batches else None,
                "p50_le_s": quantile(hub_buckets, 0.5),
                "p99_le_s": quantile(hub_buckets, 0.99),
                "max_le_s": quantile(hub_buckets, 1.0),
            },
            "end_to_end_lag": _lag_summary(gw_counts, LAG_BUCKETS),
            "ingested_by_hub_process": [b - a for a, b in zip(c0, c1, strict=True)],
            "cpu_s": cpu,
            "cpu_share": {k: round(v / dt, 3) for k, v in cpu.items()},  # cores used
            "loadavg": loadavg(),
        }

    async def drain(self, *, stop: bool = True) -> dict[str, object]:
        """Sensors silenced, buffers drained: what the hub holds against what the gateways
        produced since the storm (or `resume`); then the swarm stopped, or left connected
        and silent (`stop=False`: `resume` starts its sensors again)."""
        self.say("drain and count ...")
        t0 = time.monotonic()
        self.swarm.quiesce()
        await asyncio.sleep(1.0)  # a reading may be between the sensor and the buffer
        await self.swarm.until("drain", lambda s: s["depth"] == 0, self.timeout)
        total = self.swarm.total()
        produced = int(total["produced"]) - self._produced_before  # type: ignore[call-overload]

        async def counted() -> bool:
            return bool(await self._held() - self._held_before >= produced)

        await _until("the hub holding every reading", counted, 60)
        out = {
            "produced": produced,
            "held_at_hub": await self._held() - self._held_before,
            "drain_s": round(time.monotonic() - t0, 2),
            "swarm_rss_per_gateway": int(int(total["rss"]) / self.n),  # type: ignore[call-overload]
            "swarm_fds": total["fds"],
        }
        if stop:
            await self.swarm.stop()
            self.swarm = self.swarm.fresh()
            self._produced_before = 0
        return out

    async def resume(self) -> dict[str, object]:
        """After `drain(stop=False)` (and a `scale` of the hub, say): until every gateway is
        still connected and online at the hub, then their sensors read again."""
        n = self.n
        t0 = time.monotonic()
        await self.swarm.until(
            "gateways connected", lambda s: s["uplink"] == n and s["fleet"] == n, self.timeout
        )

        async def online() -> bool:
            return await _hub_online(self.hub, self.ids, self._http) == n

        await _until("all online at the hub", online, self.timeout)
        self._held_before = await self._held()
        self._produced_before = int(self.swarm.total()["produced"])  # type: ignore[call-overload]
        self.swarm.resume()
        return {"all_online_at_hub_s": round(time.monotonic() - t0, 2)}

    async def scale(self, processes: int) -> dict[str, object]:
        """The hub again as `processes` processes (the same data, database and broker)."""
        self.say(f"hub as {processes} processes ...")
        seconds = await self.hub.scale(processes)
        return {"hub_processes": processes, "restart_s": round(seconds, 2)}

    def processes(self) -> dict[str, object]:
        return _compact(self.sampler.summary(skip_s=10.0))


async def run_fleet(
    workdir: Path,
    *,
    gateways: int,
    hub_processes: int = 1,
    db: str = "sqlite",
    workload: Workload | None = None,
    swarm_processes: int = 2,
    live_s: float = 20.0,
    data_root: Path | None = None,
    say: Callable[[str], None] = lambda _: None,
    timeout_scale: float = 1.0,
) -> dict[str, object]:
    """Every phase, once (raises RigError when a phase never ends)."""
    run = FleetScale(
        workdir,
        gateways,
        db=db,
        hub_processes=hub_processes,
        workload=workload,
        swarm_processes=swarm_processes,
        data_root=data_root,
        say=say,
        timeout_scale=timeout_scale,
    )
    figures: dict[str, object] = {"loadavg_start": loadavg()}
    async with run:
        figures.update(run.header())
        figures.update(await run.enroll())
        figures["connect_storm"] = await run.storm()
        figures["config_push"] = await run.push()
        figures["live"] = await run.live(live_s)
        figures["exactly_once"] = await run.drain()
    figures["processes"] = run.processes()
    figures["loadavg_end"] = loadavg()
    return figures


__all__ = [
    "FDS_PER_GATEWAY",
    "GROUP",
    "SWARM_FDS_PER_GATEWAY",
    "TARGETS",
    "FleetScale",
    "check_fd_limit",
    "loadavg",
    "run_fleet",
]

"""A swarm process: many simulated gateways on one asyncio loop, a status line a tick.

    python -m estran.rig.swarm DIRS_FILE [--sensors 10] [--period 60] [--speed 1] ...

`DIRS_FILE` lists the gateways' data directories, one a line (each enrolled). Every
`--status-interval` seconds one JSON line goes to stdout: how many gateways have their
uplink and fleet link connected, readings produced and acknowledged, buffer depth and bytes,
configuration versions applied, and the process's RSS and open file descriptors. SIGUSR1
silences the sensors (the uplinks drain on), SIGUSR2 makes them read again; SIGTERM stops the gateways cleanly (each says
goodbye to the hub); SIGKILL is their power cut.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import signal
import sys
import time
from pathlib import Path

from estran.rig.swarm._gateway import LAG_BUCKETS, SimGateway, Workload, run_all
from estran.rig.swarm._sample import open_fds, rss_bytes
from estran.rig.swarm._territory import TerritoryProducer


def raise_fd_limit(want: int = 0) -> int:
    """Lift this process's soft limit of open files to its hard limit, or to `want` when that
    is higher and the process may raise its hard limit (root); the soft limit now. Children
    started afterwards (Mosquitto, the swarm's processes) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if want > hard != resource.RLIM_INFINITY:
        with contextlib.suppress(ValueError, OSError):  # not root: the hard limit stays
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def status(gateways: list[SimGateway]) -> dict[str, object]:
    out: dict[str, object] = {"t": time.time(), "n": len(gateways), "pid": os.getpid()}
    versioned = 0  # gateways running a configuration the hub sent
    outcomes: dict[str, int] = {}
    sums = dict.fromkeys(
        ("uplink", "fleet", "produced", "acked", "depth", "buffer_bytes", "connects"), 0
    )
    for g in gateways:
        f = g.figures()
        for k in sums:
            sums[k] += int(f[k])  # type: ignore[call-overload]
        if f["applied_version"] is not None:
            versioned += 1
        for name, count in g.outcomes.items():
            outcomes[name] = outcomes.get(name, 0) + count
    lag = [0] * len(LAG_BUCKETS)
    lag_max = 0.0
    for g in gateways:
        if g.buffer is not None:
            lag = [a + b for a, b in zip(lag, g.buffer.lag_counts, strict=True)]
            lag_max = max(lag_max, g.buffer.lag_max)
    out.update(sums)
    out["lag_counts"] = lag
    out["lag_max"] = round(lag_max, 3)
    out["versioned"] = versioned
    out["outcomes"] = outcomes
    out["rss"] = rss_bytes(os.getpid())
    out["fds"] = open_fds(os.getpid())
    return out


async def serve(gateways: list[SimGateway], interval: float) -> None:
    async def report() -> None:
        while True:
            sys.stdout.write(json.dumps(status(gateways)) + "\n")
            sys.stdout.flush()
            await asyncio.sleep(interval)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(run_all(gateways), name="gateways")
        tg.create_task(report(), name="status")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m estran.rig.swarm")
    p.add_argument("dirs_file", type=Path)
    p.add_argument("--sensors", type=int, default=10)
    p.add_argument("--period", type=float, default=60.0, help="seconds between two readings")
    p.add_argument("--speed", type=float, default=1.0, help="time compression")
    p.add_argument("--broker", default=None, help="override the enrolled broker URL")
    p.add_argument("--status-interval", type=float, default=0.5)
    p.add_argument("--no-fleet-link", action="store_true")
    p.add_argument(
        "--territory",
        type=Path,
        default=None,
        help="sensors and clock of the territory (estran.rig.swarm._territory), one gateway",
    )
    p.add_argument("--log-level", default="warning")
    a = p.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, a.log_level.upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    raise_fd_limit()
    workload = Workload(a.sensors, a.period, a.speed)
    dirs = [Path(line) for line in a.dirs_file.read_text().split() if line]
    gateways = [
        SimGateway(
            d,
            workload,
            broker=a.broker,
            seed=i,
            fleet_link=not a.no_fleet_link,
            producer=TerritoryProducer.from_file(a.territory, seed=i) if a.territory else None,
        )
        for i, d in enumerate(dirs)
    ]

    def quiesce() -> None:
        for g in gateways:
            g.producing = False

    def resume() -> None:
        for g in gateways:
            g.producing = True

    async def run() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        loop.add_signal_handler(signal.SIGINT, task.cancel)
        loop.add_signal_handler(signal.SIGUSR1, quiesce)
        loop.add_signal_handler(signal.SIGUSR2, resume)
        await serve(gateways, a.status_interval)

    with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
        asyncio.run(run())


__all__ = ["main", "raise_fd_limit", "status"]

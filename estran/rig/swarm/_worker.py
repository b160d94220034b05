"""A swarm process: many simulated gateways on one asyncio loop, a status line a tick.

    python -m estran.rig.swarm DIRS_FILE [--sensors 10] [--period 60] [--speed 1] ...

`DIRS_FILE` lists the gateways' data directories, one a line (each enrolled). Every
`--status-interval` seconds one JSON line goes to stdout: how many gateways have their
uplink and fleet link connected, readings produced and acknowledged, buffer depth and bytes,
configuration versions applied, the process's RSS and open file descriptors, and how late
its event loop woke for the line (`loop_late_s`: a starved loop sends keepalives late). SIGUSR1
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
from collections.abc import Callable
from pathlib import Path

import aiomqtt
from paho.mqtt.client import MQTT_ERR_SUCCESS

from estran.rig.swarm._gateway import LAG_BUCKETS, SimGateway, Workload, run_all
from estran.rig.swarm._sample import open_fds, rss_bytes
from estran.rig.swarm._territory import TerritoryProducer

CONNECTING = 64  # MQTT handshakes at a time per swarm process (gate_connects)
HOUSEKEEPING_S = 5.0  # each MQTT connection's keepalive check (space_housekeeping)


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


def gate_connects(limit: int) -> Callable[[], None]:
    """At most `limit` MQTT connection handshakes at a time in this process (CONNECT to
    CONNACK, `aiomqtt.Client.__aenter__`); the others wait their turn before their connect
    timeout starts.

    A real gateway has a CPU of its own for its two handshakes. Thousands of simulated
    ones share one event loop and aiomqtt's executor (it connects the socket in a thread):
    started at once, their 10-s CONNACK timeouts all run while the loop works through the
    queue, and when the queue holds more than 10 s of work, they all time out together,
    reconnect together, and the storm never ends (10,000 gateways on this machine's two
    cores: docs/benchmarks.md, fleet scale). Gated, the same work is done once. Returns
    what takes the gate away again."""
    gate = asyncio.Semaphore(limit)
    enter = aiomqtt.Client.__aenter__

    async def gated(self: aiomqtt.Client) -> aiomqtt.Client:
        async with gate:
            return await enter(self)

    aiomqtt.Client.__aenter__ = gated  # type: ignore[assignment,method-assign]

    def ungate() -> None:
        aiomqtt.Client.__aenter__ = enter  # type: ignore[method-assign]

    return ungate


def space_housekeeping(period_s: float) -> Callable[[], None]:
    """aiomqtt's housekeeping of each connection (`loop_misc`: keepalive pings) every
    `period_s` seconds instead of every second; returns what undoes it.

    A real gateway's two connections wake their loop twice a second for it; 5,000 gateways
    on one loop woke it 10,000 times a second, a fifth of the idle swarm's CPU. Within a
    keepalive of 30 s (the uplink's) or 60 s (the fleet link's), a ping `period_s` late is
    still in time (Mosquitto waits 1.5 keepalives)."""
    misc = aiomqtt.Client._misc_loop

    async def spaced(self: aiomqtt.Client) -> None:
        while self._client.loop_misc() == MQTT_ERR_SUCCESS:
            await asyncio.sleep(period_s)

    aiomqtt.Client._misc_loop = spaced  # type: ignore[method-assign]

    def undo() -> None:
        aiomqtt.Client._misc_loop = misc  # type: ignore[method-assign]

    return undo


# The figures a status line sums over its gateways (with `n` and `versioned`: what the
# swarm sums over its processes, estran.rig.swarm._swarm.SUMMED)
SUMMED_PER_GATEWAY = (
    "uplink",
    "fleet",
    "produced",
    "acked",
    "depth",
    "buffer_bytes",
    "connects",
    "resent",
    "ack_timeouts",
)


def status(gateways: list[SimGateway]) -> dict[str, object]:
    out: dict[str, object] = {"t": time.time(), "n": len(gateways), "pid": os.getpid()}
    versioned = 0  # gateways running a configuration the hub sent
    outcomes: dict[str, int] = {}
    sums = dict.fromkeys(SUMMED_PER_GATEWAY, 0)
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
        loop = asyncio.get_running_loop()
        late = 0.0
        while True:
            line = status(gateways)
            line["loop_late_s"] = round(late, 3)  # how late the loop woke this line: starved
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
            t = loop.time()
            await asyncio.sleep(interval)
            late = loop.time() - t - interval

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
    p.add_argument(
        "--connecting",
        type=int,
        default=CONNECTING,
        help="MQTT handshakes at a time in this process (0: no limit)",
    )
    p.add_argument("--log-level", default="warning")
    a = p.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, a.log_level.upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    raise_fd_limit()
    if a.connecting > 0:
        gate_connects(a.connecting)
    space_housekeeping(HOUSEKEEPING_S)
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


__all__ = [
    "CONNECTING",
    "HOUSEKEEPING_S",
    "gate_connects",
    "main",
    "raise_fd_limit",
    "space_housekeeping",
    "status",
]

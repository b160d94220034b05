"""`estran bench fleet`: N simulated gateways against one hub and a private Mosquitto.

    estran bench fleet --gateways 1000 [--hub-processes 3 --db postgresql://...] [--speed 6]

The gateways (estran.rig.swarm: real identity, buffer, uplink and fleet link each, many per
process) are enrolled through the hub's API, then:

1. connect storm: every worker process started at once; the time until every gateway's
   uplink and fleet link are connected (the swarm's count) and the hub shows every one
   online (`GET /api/v1/gateways`);
2. configuration push: one change of the fleet layer (`PUT /api/v1/fleet/config/fleet`);
   the time until every gateway has verified, applied and reported it (the swarm's count
   and the hub's `GET /api/v1/fleet/gateways`: applied = desired, outcome applied);
3. live rate: `--sensors` sensors per gateway, one reading each every `--period` seconds,
   time compressed by `--speed`, for `--live` seconds: the hub's ingest lag (its
   `estran_hub_ingest_lag_seconds` histograms, every hub process) and the gateways' end to
   end lag (append to ack), and the rate;
4. drain: sensors silenced, every buffer drained; the hub must hold exactly what the
   gateways produced (readings held per gateway, summed, against the swarm's count).

Prints one JSON document: the figures, the targets beside them, the load average, and the
RSS and open files of every process sampled over the run (slopes per hour).
"""

from __future__ import annotations

import asyncio
import json
import signal
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from estran.rig import RigError
from estran.rig.swarm import Workload, run_fleet

T = TypeVar("T")


@click.command("fleet")
@click.option("--gateways", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@click.option("--hub-processes", type=click.IntRange(1, 16), default=1, show_default=True)
@click.option(
    "--db",
    default="sqlite",
    show_default=True,
    help="sqlite, or a PostgreSQL URL (a throwaway database: the run fills it).",
)
@click.option("--sensors", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--period", type=float, default=60.0, show_default=True)
@click.option("--speed", type=float, default=1.0, show_default=True, help="time compression")
@click.option("--swarm-processes", type=click.IntRange(1, 64), default=2, show_default=True)
@click.option("--live", "live_s", type=float, default=20.0, show_default=True)
@click.option(
    "--data-root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the gateways' data directories go (default: the work directory; /dev/shm "
    "spares the disk).",
)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None)
def bench_fleet(
    gateways: int,
    hub_processes: int,
    db: str,
    sensors: int,
    period: float,
    speed: float,
    swarm_processes: int,
    live_s: float,
    data_root: Path | None,
    workdir: Path | None,
) -> None:
    """N simulated gateways against one hub: connect storm, configuration push, live rate."""

    def say(text: str) -> None:
        click.echo(text, err=True)

    with tempfile.TemporaryDirectory(prefix="estran-fleet-") as tmp:
        try:
            figures = asyncio.run(
                _stopped_by_sigterm(
                    run_fleet(
                        workdir or Path(tmp),
                        gateways=gateways,
                        hub_processes=hub_processes,
                        db=db,
                        workload=Workload(sensors, period, speed),
                        swarm_processes=swarm_processes,
                        live_s=live_s,
                        data_root=data_root,
                        say=say,
                        timeout_scale=max(1.0, gateways / 1000),
                    )
                )
            )
        except RigError as e:
            raise click.ClickException(str(e)) from e
        except asyncio.CancelledError:
            raise click.ClickException(
                "stopped (SIGTERM): hub, Mosquitto and swarm stopped"
            ) from None
    click.echo(json.dumps(figures, indent=2))


async def _stopped_by_sigterm(run: Coroutine[Any, Any, T]) -> T:
    """`run`, cancelled on SIGTERM, so that what it started (hub, Mosquitto, the swarm's
    processes) is stopped by its own exits, as on Ctrl-C; a bare SIGTERM left them running."""
    task = asyncio.ensure_future(run)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await task
    finally:
        loop.remove_signal_handler(signal.SIGTERM)

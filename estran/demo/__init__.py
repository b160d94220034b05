"""`estran demo`: the whole territory on one machine.

The embedded hub (its own MQTT broker, SQLite, HTTP API) and three gateway daemons — a public
building, the marina, a street and its park — reading simulated serial and BLE sensors, with
a live view of the readings arriving at the hub. See estran/demo/_run.py.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click


@click.command()
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=None,
    metavar="S",
    help="Stop after S seconds (default: run until Ctrl-C).",
)
@click.option(
    "--http",
    default=None,
    metavar="HOST:PORT",
    help="Where the hub's HTTP API listens (default: a free port on 127.0.0.1, printed).",
)
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="DIR",
    help="Keep everything here (hub database, gateway buffers, logs); "
    "default: a temporary directory, removed at exit.",
)
@click.option(
    "--broker-access",
    type=click.Choice(["fleet", "open"]),
    default="fleet",
    show_default=True,
    hidden=True,
    help="fleet: the gateways are enrolled, each confined to its topics; "
    "open: an open broker (development only).",
)
def demo(
    duration: float | None, http: str | None, data_dir: Path | None, broker_access: str
) -> None:
    """Run the territory on one machine: the hub and three gateways on simulated sensors.

    \b
    A public building: Linky (TIC), SDM630 (Modbus RTU), water meter (M-Bus), three street
    water meters over the air (wireless M-Bus dongle; one leaks at night: a hub alert).
    The marina: BTHome berth sensors (one encrypted), an NMEA instrument, a pedestal meter,
    the canal's level gauge (FMR20 radar, level above the datum).
    A street and park: ultrasonic bins, SDI-12 and Mi Flora soil probes, BTHome sensors,
    a PMS5003 air-quality station.

    The live view reads the hub's HTTP API; Ctrl-C stops everything cleanly.
    """
    from rich.console import Console

    from estran.demo._run import DemoOptions, run_demo

    console = Console()
    options = DemoOptions(duration=duration, http=http, data=data_dir, broker_access=broker_access)
    sys.exit(asyncio.run(run_demo(options, console)))


__all__ = ["demo"]

"""`estran bench territory`: the territory scenario, a day compressed into minutes
(`estran.rig.territory`, docs/hil.md): 3 sites of 4 gateways, the reference workload's 200
sensors, per site a network cut, a power cut and a hub restart, a configuration push and a
broker restart in the middle; each gateway's ledger against the hub's database, memory,
alerts, recovery times and the load average, as JSON on stdout (the events on stderr as
they happen)."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import click

from estran.rig import RigError
from estran.rig.territory import run_territory


@click.command("territory")
@click.option("--day", "day_s", type=float, default=180.0, show_default=True)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="keep the hub, the gateways' buffers and ledgers, and the logs here",
)
def bench_territory(day_s: float, workdir: Path | None) -> None:
    """The territory scenario: 3 sites, 12 gateways, a day in `--day` seconds, outages."""

    def say(text: str) -> None:
        click.echo(text, err=True)

    with tempfile.TemporaryDirectory(prefix="estran-territory-") as tmp:
        try:
            figures = asyncio.run(run_territory(workdir or Path(tmp), day_s=day_s, say=say))
        except RigError as e:
            raise click.ClickException(str(e)) from e
    click.echo(json.dumps(figures, indent=2))

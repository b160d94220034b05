"""`estran bench soak`: the territory of `estran demo` left running, its processes watched.

    estran bench soak --duration 3600 --period 10 --warmup 300 --out soak-hour.json
    estran bench soak --duration 86400 --period 60 --warmup 600 --out soak-day.json

`estran demo` runs the hub (embedded broker, SQLite) and three gateway daemons (`estran edge
run`) on simulated serial and BLE sensors. Every `--period` seconds this samples the resident
memory and open file descriptors of the hub and of each gateway daemon, the bytes of each
gateway's buffer directory, and each daemon's buffer depth (readings not yet acknowledged)
and segment count from its status socket; at the end it fits a least-squares line through
each series after the warm-up and says whether it is flat within noise
(`estran.rig.SoakSeries`). It prints one JSON document (and writes it to `--out`): the
slopes per hour, what is not flat and why, the load average over the run. Exit status 1
when something is not flat.

The hub's database grows by design (it keeps the readings): its size is reported, not judged.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path

import click

from estran.rig import RigError, run_demo_soak


@click.command("soak")
@click.option("--duration", "duration_s", type=float, default=180.0, show_default=True)
@click.option("--period", "period_s", type=float, default=2.0, show_default=True)
@click.option("--warmup", "warmup_s", type=float, default=30.0, show_default=True)
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="JSON here too."
)
@click.option(
    "--samples",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Every sample appended here as it is taken (JSON lines).",
)
def bench_soak(
    duration_s: float,
    period_s: float,
    warmup_s: float,
    workdir: Path | None,
    out: Path | None,
    samples: Path | None,
) -> None:
    """The demo's hub and gateways left running: memory, files, buffers and their slopes."""

    def say(text: str) -> None:
        click.echo(text, err=True)

    with tempfile.TemporaryDirectory(prefix="estran-soak-") as tmp:
        try:
            figures = asyncio.run(
                run_demo_soak(
                    (workdir or Path(tmp)) / "territory",
                    duration_s,
                    period_s=period_s,
                    warmup_s=warmup_s,
                    say=say,
                    samples=samples,
                )
            )
        except RigError as e:
            raise click.ClickException(str(e)) from e
    text = json.dumps(figures, indent=2)
    if out is not None:
        out.write_text(text + "\n")
    click.echo(text)
    if figures["not_flat"]:
        raise SystemExit(1)

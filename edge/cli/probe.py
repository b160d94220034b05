"""`estran edge probe PORT`: which protocol, speed and parity a serial port speaks.

A live table of the candidates as they are tried, then what was found, a sample frame
decoded and a configuration snippet to paste; each step says how long it took, and the
whole probe is bounded (``ProbeOptions.budget``). ``--json`` prints one JSON object
instead: ``{"port", "protocol", "params", "sample", "config", "seconds", "steps"}``. Exit status: 0 found, 1 nothing
recognised, 2 the port cannot be opened. The engine is
`edge.probe`; this module is the command only.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from edge.probe import ProbeResult, ProbeStep


class _Display:
    """The live table: rich re-renders it (``__rich__``) several times a second."""

    def __init__(self) -> None:
        self.steps: list[ProbeStep] = []
        self.current: ProbeStep | None = None
        self.started = time.monotonic()

    def update(self, step: ProbeStep) -> None:
        from edge.probe import RUNNING

        if step.state == RUNNING:
            self.current, self.started = step, time.monotonic()
        else:
            self.steps.append(step)
            self.current = None

    def __rich__(self) -> Table:
        from rich.spinner import Spinner
        from rich.table import Table

        table = Table(box=None, pad_edge=False, header_style="bold")
        table.add_column("candidate")
        table.add_column("result")
        table.add_column("time", justify="right")
        table.add_column("seen")
        style = {"found": "bold green", "nothing": "dim", "skipped": "dim"}
        for step in self.steps:
            table.add_row(
                step.label,
                f"[{style.get(step.state, '')}]{step.state}[/]",
                f"{step.seconds:.1f} s",
                step.detail,
            )
        if self.current is not None:
            table.add_row(
                self.current.label,
                Spinner("dots", text="trying"),
                f"{time.monotonic() - self.started:.1f} s",
                "",
            )
        return table


def _show_result(console: Console, result: ProbeResult) -> None:
    from rich.panel import Panel
    from rich.syntax import Syntax

    took = f"probe took {result.seconds:.1f} s ({len(result.steps)} steps)"
    if result.protocol is None or result.line is None:
        text = f"Nothing recognised on {result.port} ({took})."
        if result.note:
            text += f" ({result.note})"
        text += (
            " Check the wiring (A/B swapped on RS-485?), the power of the device, and that"
            " no other program holds the port."
        )
        console.print(Panel(text, title="probe", border_style="yellow"))
        return
    mode = f", {result.mode}" if result.mode else ""
    console.print(
        f"[bold green]{result.port}[/] speaks [bold]{result.protocol}[/] at "
        f"[bold]{result.line}[/]{mode} ({took})"
    )
    if result.sample is not None:
        readings = result.sample.get("readings")
        if isinstance(readings, list) and readings:
            shown = ", ".join(
                f"{r.get('name')}={r.get('value')}{' ' + str(r['unit']) if r.get('unit') else ''}"
                for r in readings[:8]
                if isinstance(r, dict)
            )
            more = f" (+{len(readings) - 8} more)" if len(readings) > 8 else ""
            console.print(f"sample: {shown}{more}")
    config = result.config
    if config and not console.is_terminal:
        # a pipe or a file: the snippet as it is, ready to append to the configuration
        click.echo("# paste into the gateway configuration\n" + config.rstrip())
    elif config:
        console.print(
            Panel(
                Syntax(config.rstrip(), "toml", theme="ansi_dark", background_color="default"),
                title="paste into the gateway configuration",
                border_style="green",
            )
        )


async def _run_live(port: str, console: Console) -> ProbeResult:
    from rich.live import Live

    from edge.probe import Prober

    prober = Prober(port)
    display = _Display()
    if not console.is_terminal:
        # Piped or logged: no live redraw, one line per candidate once it is tried.
        async for step in prober.steps():
            display.update(step)
            if step is not display.current:
                click.echo(f"{step.label}\t{step.state}\t{step.seconds:.1f} s\t{step.detail}")
        return prober.result
    with Live(display, console=console, refresh_per_second=8):
        async for step in prober.steps():
            display.update(step)
    return prober.result


@click.command("probe")
@click.argument("port")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object, no live display")
def probe(port: str, as_json: bool) -> None:
    """Find which protocol, speed and parity PORT speaks (TIC, NMEA, ultrasonic, SDI-12,
    M-Bus, Modbus RTU), with a decoded sample and a configuration snippet."""
    from rich.console import Console

    from edge.probe import PortUnavailable
    from edge.probe import probe as run_probe

    try:
        if as_json:
            result = asyncio.run(run_probe(port))
            click.echo(json.dumps(result.as_json(), indent=2))
        else:
            console = Console()
            console.soft_wrap = not console.is_terminal  # a log or a pipe: lines stay whole
            console.print(f"probing [bold]{port}[/]: listening first, then asking politely")
            result = asyncio.run(_run_live(port, console))
            _show_result(console, result)
    except PortUnavailable as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    sys.exit(0 if result.protocol is not None else 1)
